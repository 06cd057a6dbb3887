//! Committing and validating payloads: newPayload on every session (a session lacking the
//! parent is caught up first; the first session to answer is authoritative; a VALID/INVALID
//! split between sessions follows the disagreement policy), then forkchoiceUpdated(head =
//! block), then the state file.

use std::sync::Arc;

use alloy_consensus::{Sealed, TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::BlockId;
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, ForkchoiceState, PayloadStatus, PayloadStatusEnum};
use alloy_rpc_types_eth::{Block, BlockTransactions, Header, Transaction, TransactionInfo};
use engine_clients::ExecutionClient;
use engine_types::{DisagreementPolicy, EngineError, require_valid};
use futures_util::future::join_all;
use tracing::{info, warn};

use super::{
    catch_up::catch_up,
    env::{Changes, WriteEnv, first_answer, forkchoice_everywhere, is_ambiguous, persist},
};
use crate::{ForkchoiceSnapshot, ImportReport, engine::CommittedBlock, session::SessionLink};

/// The rpc block of a committed payload, with full (signer-recovered) transactions, so the
/// node's "block with transactions right after commit" is a cache hit; and the block's RLP
/// size. `None` if the payload does not decode (the EL will have said INVALID anyway).
pub(crate) fn block_from_payload(data: &ExecutionData) -> Option<(Block, usize)> {
    let hash = data.payload.block_hash();
    let block = data
        .payload
        .clone()
        .try_into_block_with_sidecar::<TxEnvelope>(&data.sidecar)
        .ok()?;
    let size = alloy_rlp::Encodable::length(&block);
    let number = block.header.number;
    let timestamp = block.header.timestamp;
    let base_fee = block.header.base_fee_per_gas;
    let transactions = block
        .body
        .transactions
        .into_iter()
        .enumerate()
        .map(|(index, tx)| {
            let tx_hash = *tx.tx_hash();
            let recovered = tx.try_into_recovered().ok()?;
            Some(Transaction::from_transaction(
                recovered,
                TransactionInfo {
                    hash: Some(tx_hash),
                    index: Some(index as u64),
                    block_hash: Some(hash),
                    block_number: Some(number),
                    base_fee,
                    block_timestamp: Some(timestamp),
                },
            ))
        })
        .collect::<Option<Vec<_>>>()?;
    Some((
        Block {
            header: Header::from_consensus(Sealed::new_unchecked(block.header, hash), None, None),
            uncles: Vec::new(),
            transactions: BlockTransactions::Full(transactions),
            withdrawals: block.body.withdrawals,
        },
        size,
    ))
}

/// newPayload on one session: a session that lacks the parent is caught up and asked again; a
/// session whose answer was lost is asked whether it has the block.
async fn new_payload_on<C: ExecutionClient>(
    env: &WriteEnv<C>,
    link: &SessionLink<C>,
    data: Arc<ExecutionData>,
) -> Result<PayloadStatus, EngineError> {
    let hash = data.payload.block_hash();
    let send = || {
        let data = Arc::clone(&data);
        link.call(|c| async move { c.new_payload(&data).await })
    };
    let status = match send().await {
        Err(e) if is_ambiguous(&e) => return reconcile_new_payload(link, hash, e).await,
        other => other?,
    };
    if !matches!(
        status.status,
        PayloadStatusEnum::Syncing | PayloadStatusEnum::Accepted
    ) {
        return Ok(status);
    }
    let parent = data.payload.parent_hash();
    let caught = catch_up(env, link, parent, env.secondary_budget(link)).await?;
    if caught.replayed == 0 || !caught.complete {
        return Ok(status);
    }
    match send().await {
        Err(e) if is_ambiguous(&e) => reconcile_new_payload(link, hash, e).await,
        other => other,
    }
}

/// A newPayload whose answer timed out or was lost: a client that has the block now has
/// validated it (clients store only valid blocks); otherwise the original error.
async fn reconcile_new_payload<C: ExecutionClient>(
    link: &SessionLink<C>,
    hash: B256,
    error: EngineError,
) -> Result<PayloadStatus, EngineError> {
    let known = link
        .call(|c| async move { c.block(BlockId::Hash(hash.into()), false).await })
        .await;
    match known {
        Ok(Some(_)) => {
            info!(endpoint = link.endpoint(), %hash, error = %error, "newPayload went unanswered, but the execution client has the block");
            Ok(PayloadStatus::new(PayloadStatusEnum::Valid, Some(hash)))
        }
        _ => Err(error),
    }
}

/// Sessions that answered VALID and INVALID to one payload, for a disagreement.
fn disagreement<C: ExecutionClient>(
    sessions: &[SessionLink<C>],
    results: &[Result<PayloadStatus, EngineError>],
) -> Option<(String, String)> {
    let mut valid = Vec::new();
    let mut invalid = Vec::new();
    for (link, result) in sessions.iter().zip(results) {
        match result {
            Ok(s) if s.is_valid() => valid.push(link.endpoint().to_owned()),
            Ok(PayloadStatus {
                status: PayloadStatusEnum::Invalid { validation_error },
                ..
            }) => invalid.push(format!("{} ({validation_error})", link.endpoint())),
            _ => {}
        }
    }
    (!valid.is_empty() && !invalid.is_empty()).then(|| (valid.join(", "), invalid.join(", ")))
}

/// newPayload on every session (each caught up if it lacks the parent). The first session in
/// endpoint order that answered is authoritative and must say VALID. VALID on one session and
/// INVALID on another is refused (`recovery.disagreement = "refuse"`) or follows the
/// authoritative answer (`"follow_primary"`); either way it is reported in the changes.
pub(crate) async fn validate<C: ExecutionClient>(
    env: &WriteEnv<C>,
    data: ExecutionData,
) -> Result<((), Changes), EngineError> {
    let hash = data.payload.block_hash();
    let data = Arc::new(data);
    env.store.insert(Arc::clone(&data));
    let calls = env
        .all
        .iter()
        .map(|link| new_payload_on(env, link, Arc::clone(&data)));
    let results = join_all(calls).await;
    let split = disagreement(&env.all, &results);
    if let Some((valid_on, invalid_on)) = &split {
        warn!(%hash, %valid_on, %invalid_on, policy = ?env.config.recovery.disagreement, "execution clients disagree on a payload");
        if env.config.recovery.disagreement == DisagreementPolicy::Refuse {
            return Err(EngineError::Disagreement {
                block_hash: hash,
                valid_on: valid_on.clone(),
                invalid_on: invalid_on.clone(),
            });
        }
    }
    let (_, authority, others) = first_answer(&env.all, results, "newPayload")?;
    for other in others.iter().filter(|s| s.status != authority.status) {
        warn!(status = ?other.status, authority = ?authority.status, %hash, "an execution client answers a payload differently");
    }
    require_valid(&authority, hash)?;
    Ok((
        (),
        Changes {
            disagreement: split.map(|(valid_on, invalid_on)| {
                format!("{hash}: VALID on {valid_on}, INVALID on {invalid_on}")
            }),
            ..Changes::default()
        },
    ))
}

/// What committing a payload records: the block for the caches and the peg-out scan, and
/// where the withdrawal index goes on after it.
fn committed_block(data: &ExecutionData) -> (CommittedBlock, Option<u64>, u64) {
    let hash = data.payload.block_hash();
    let (block, size_bytes) =
        block_from_payload(data).map_or((None, 0), |(b, size)| (Some(Arc::new(b)), size));
    // Withdrawal indices continue after the committed chain's, whoever built the block (a
    // block imported from a peer or built by the legacy path during a migration).
    let after_withdrawals = data
        .payload
        .withdrawals()
        .and_then(|ws| ws.last())
        .map(|w| w.index.saturating_add(1));
    let block = CommittedBlock {
        hash,
        number: data.payload.block_number(),
        block,
        size_bytes,
        transactions: data.payload.transactions().len(),
        gas_used: data.payload.as_v1().gas_used,
        span: tracing::Span::current(),
    };
    (block, after_withdrawals, data.payload.timestamp())
}

/// forkchoiceUpdated(head = `head`, safe and finalized unchanged) everywhere → the snapshot
/// with that head, persisted.
async fn move_head<C: ExecutionClient>(
    env: &WriteEnv<C>,
    mut snapshot: ForkchoiceSnapshot,
    head: (B256, u64, u64),
    after_withdrawals: Option<u64>,
) -> Result<ForkchoiceSnapshot, EngineError> {
    let (hash, number, timestamp) = head;
    let state = ForkchoiceState {
        head_block_hash: hash,
        safe_block_hash: snapshot.safe,
        finalized_block_hash: snapshot.finalized,
    };
    forkchoice_everywhere(env, state, hash).await?;
    if let Some(next) = after_withdrawals {
        snapshot.next_withdrawal_index = snapshot.next_withdrawal_index.max(next);
    }
    snapshot.head = hash;
    snapshot.head_number = number;
    snapshot.head_timestamp = timestamp;
    persist(&env.config, snapshot).await?;
    Ok(snapshot)
}

/// newPayload → VALID → forkchoiceUpdated(head = block) → persist. Anything else leaves the
/// forkchoice as it was.
pub(crate) async fn commit<C: ExecutionClient>(
    env: &WriteEnv<C>,
    data: ExecutionData,
) -> Result<(B256, Changes), EngineError> {
    let (block, after_withdrawals, timestamp) = committed_block(&data);
    let (hash, number) = (block.hash, block.number);
    let ((), validated) = validate(env, data).await?;
    let snapshot = move_head(
        env,
        env.snapshot,
        (hash, number, timestamp),
        after_withdrawals,
    )
    .await?;
    let changes = Changes {
        snapshot: Some(snapshot),
        disagreement: validated.disagreement,
        committed: vec![block],
        ..Changes::default()
    };
    Ok((hash, changes))
}

/// A run of payloads, each a child of the one before: newPayload for each in order, and one
/// forkchoiceUpdated to the last every `fcu_every` blocks and at the end. Stops at the first
/// payload that fails; what was made head before that stays committed (the report says where
/// it stopped and why). Fails without changing anything if nothing could be made head.
pub(crate) async fn import<C: ExecutionClient>(
    env: &WriteEnv<C>,
    payloads: Vec<ExecutionData>,
    fcu_every: usize,
) -> Result<(ImportReport, Changes), EngineError> {
    let fcu_every = fcu_every.max(1);
    let total = payloads.len();
    let mut snapshot = env.snapshot;
    let mut changes = Changes::default();
    let mut unannounced: Vec<(CommittedBlock, Option<u64>, u64)> = Vec::new();
    let mut stopped = None;
    for (i, data) in payloads.into_iter().enumerate() {
        let entry = committed_block(&data);
        if let Err(e) = validate(env, data).await {
            stopped = Some((i, e));
            break;
        }
        unannounced.push(entry);
        if unannounced.len() == fcu_every || i + 1 == total {
            match announce(env, snapshot, &mut unannounced).await {
                Ok(moved) => {
                    snapshot = moved.0;
                    changes.committed.extend(moved.1);
                }
                Err(e) => {
                    stopped = Some((i, e));
                    break;
                }
            }
        }
    }
    if stopped.is_some() && !unannounced.is_empty() {
        // Validated blocks before the failure: make the last of them head too.
        if let Ok(moved) = announce(env, snapshot, &mut unannounced).await {
            snapshot = moved.0;
            changes.committed.extend(moved.1);
        }
    }
    let imported = changes.committed.len();
    if imported == 0
        && let Some((_, e)) = stopped
    {
        return Err(e);
    }
    changes.snapshot = Some(snapshot);
    let report = ImportReport {
        imported,
        head: snapshot.head,
        head_number: snapshot.head_number,
        stopped: stopped.map(|(index, e)| (index, e.to_string())),
    };
    Ok((report, changes))
}

/// Make the last of `blocks` head (they are validated, in order) and hand them out.
async fn announce<C: ExecutionClient>(
    env: &WriteEnv<C>,
    snapshot: ForkchoiceSnapshot,
    blocks: &mut Vec<(CommittedBlock, Option<u64>, u64)>,
) -> Result<(ForkchoiceSnapshot, Vec<CommittedBlock>), EngineError> {
    let Some((last, _, timestamp)) = blocks.last() else {
        return Ok((snapshot, Vec::new()));
    };
    let head = (last.hash, last.number, *timestamp);
    let after_withdrawals = blocks.iter().filter_map(|(_, after, _)| *after).max();
    let moved = move_head(env, snapshot, head, after_withdrawals).await?;
    Ok((moved, blocks.drain(..).map(|(b, _, _)| b).collect()))
}
