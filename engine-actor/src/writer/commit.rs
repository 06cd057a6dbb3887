//! Committing and validating payloads: newPayload on every session (the primary's status is
//! authoritative), then forkchoiceUpdated(head = block), then the state file.

use std::sync::Arc;

use alloy_consensus::{Sealed, TxEnvelope, transaction::SignerRecoverable};
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, ForkchoiceState};
use alloy_rpc_types_eth::{Block, BlockTransactions, Header, Transaction, TransactionInfo};
use engine_clients::ExecutionClient;
use engine_types::{EngineError, require_valid};
use futures_util::future::join_all;
use tracing::warn;

use super::env::{Changes, WriteEnv, forkchoice_everywhere, persist};
use crate::engine::CommittedBlock;

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

/// newPayload on every session; Ok only if the primary said VALID. The others' disagreements
/// are logged (the primary is the EL this node builds on).
pub(crate) async fn validate<C: ExecutionClient>(
    env: &WriteEnv<C>,
    data: ExecutionData,
) -> Result<((), Changes), EngineError> {
    let hash = data.payload.block_hash();
    let data = Arc::new(data);
    let calls = env.all.iter().map(|s| {
        let data = Arc::clone(&data);
        s.call(|c| async move { c.new_payload(&data).await })
    });
    let mut results = join_all(calls).await.into_iter();
    let primary = results.next().ok_or_else(|| EngineError::Unavailable {
        reason: "no execution client session".into(),
    })??;
    for (other, result) in env.all.iter().skip(1).zip(results) {
        match result {
            Ok(s) if s.status == primary.status => {}
            Ok(s) => {
                warn!(session = other.index(), status = ?s.status, primary = ?primary.status, %hash, "execution clients disagree on a payload")
            }
            Err(e) => {
                warn!(session = other.index(), error = %e, %hash, "secondary execution client failed newPayload")
            }
        }
    }
    require_valid(&primary, hash)?;
    Ok(((), Changes::default()))
}

/// newPayload → VALID → forkchoiceUpdated(head = block) → persist. Anything else leaves the
/// forkchoice as it was.
pub(crate) async fn commit<C: ExecutionClient>(
    env: &WriteEnv<C>,
    data: ExecutionData,
) -> Result<(B256, Changes), EngineError> {
    let hash = data.payload.block_hash();
    let number = data.payload.block_number();
    let timestamp = data.payload.timestamp();
    let (block, size_bytes) =
        block_from_payload(&data).map_or((None, 0), |(b, size)| (Some(Arc::new(b)), size));
    let transactions = data.payload.transactions().len();
    let gas_used = data.payload.as_v1().gas_used;
    // Withdrawal indices continue after the committed chain's, whoever built the block (a
    // block imported from a peer or built by the legacy path during a migration).
    let after_withdrawals = data
        .payload
        .withdrawals()
        .and_then(|ws| ws.last())
        .map(|w| w.index.saturating_add(1));
    validate(env, data).await?;
    let state = ForkchoiceState {
        head_block_hash: hash,
        safe_block_hash: env.snapshot.safe,
        finalized_block_hash: env.snapshot.finalized,
    };
    forkchoice_everywhere(env, state, hash).await?;
    let mut snapshot = env.snapshot;
    if let Some(next) = after_withdrawals {
        snapshot.next_withdrawal_index = snapshot.next_withdrawal_index.max(next);
    }
    snapshot.head = hash;
    snapshot.head_number = number;
    snapshot.head_timestamp = timestamp;
    persist(&env.config, snapshot).await?;
    let changes = Changes {
        snapshot: Some(snapshot),
        committed: Some(CommittedBlock {
            hash,
            number,
            block,
            size_bytes,
            transactions,
            gas_used,
            span: tracing::Span::current(),
        }),
        ..Changes::default()
    };
    Ok((hash, changes))
}
