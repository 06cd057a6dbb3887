//! `EngineActor`: owns all engine state (forkchoice, caches, queue of writes) and serialises
//! writes. IO never runs in its mailbox: a write's calls run in a spawned task whose outcome
//! comes back as [`EngineMsg::WriteDone`]; reads are answered from the caches or handed to a
//! session task that replies to the caller directly.

use std::{
    collections::{HashMap, VecDeque},
    sync::Arc,
    time::Duration,
};

use alloy_consensus::{Sealed, TxEnvelope, transaction::SignerRecoverable};
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::B256;
use alloy_rpc_types_engine::{
    ExecutionData, ForkchoiceState, ForkchoiceUpdated, PayloadAttributes, PayloadId,
    PayloadStatusEnum,
};
use alloy_rpc_types_eth::{
    Block, BlockTransactions, Header, Transaction, TransactionInfo, TransactionReceipt,
};
use engine_clients::{BuiltPayload, ExecutionClient};
use engine_types::{
    BuildPayloadRequest, EngineConfig, EngineError, FinalizeRequest, RevertRequest, require_valid,
    validate_execution_data, withdrawals_from_peg_ins,
};
use futures_util::future::join_all;
use ractor::{Actor, ActorProcessingErr};
use tokio::sync::{broadcast, watch};
use tracing::{Instrument, debug, error, info, warn};

use crate::{
    cache::TtlCache,
    messages::{
        BlockRef, CachesStatus, EngineEvent, EngineMsg, EngineRef, EngineStatus, PayloadRef,
        PreparationStats, ReadRequest, Reply, RequestContext, WriteRequest,
    },
    metrics::EngineMetrics,
    pegout::peg_outs_in_receipts,
    persistence::{self, ForkchoiceSnapshot},
    session::{SessionRef, SessionStatus, run_on},
};

/// How long initialisation waits for a connected session before trying again later.
const SESSION_WAIT: Duration = Duration::from_secs(5);
/// Delay between initialisation attempts while the EL is unreachable.
const INIT_RETRY: Duration = Duration::from_millis(500);

/// Construction arguments of the EngineActor.
pub struct EngineArgs {
    /// Configuration (fork schedule, bounds, state path, caches, bridge).
    pub config: Arc<EngineConfig>,
    /// Status of every session, in endpoint order (0 is the primary).
    pub sessions: Vec<watch::Receiver<SessionStatus>>,
    /// Where events (peg-outs) are published.
    pub events: broadcast::Sender<EngineEvent>,
    /// Where the engine's metrics are recorded.
    pub metrics: Arc<EngineMetrics>,
    /// Shared by every EngineActor of one tree, across restarts: held by a write task for its
    /// whole run and by initialisation while it loads the state file. A write still in flight
    /// when its actor crashed thus finishes (EL calls and state file) before the successor
    /// reads the file and re-announces it, so the successor's memory, the file and the EL
    /// agree. It guards no data, only orders the writers of the EL and the file.
    pub write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// A state change computed by a write task, applied by the actor before it replies.
#[derive(Default)]
pub struct Changes {
    snapshot: Option<ForkchoiceSnapshot>,
    built: Option<BuiltPayload>,
    committed_block: Option<Arc<Block>>,
    pin: Option<B256>,
    fetch_receipts: Option<(B256, u64)>,
    initialized: bool,
    preparation: Option<PreparationChange>,
    build_latency: Option<(bool, Duration)>,
    payload_stats: Option<(usize, usize, u64)>,
}

/// A forkchoiceUpdated with attributes sent ahead of the slot, and what it was for.
#[derive(Debug, Clone)]
pub struct Prepared {
    parent: B256,
    attributes: PayloadAttributes,
    payload_id: PayloadId,
}

/// What a write did to the preparation.
#[derive(Debug)]
enum PreparationChange {
    /// A new preparation (replacing any older one, which is then wasted).
    Made(Prepared),
    /// The build used the preparation.
    Used,
    /// The build matched, but the EL no longer knew the payload (-38001): built afresh.
    UnknownToEl,
    /// The build did not match (e.g. peg-ins changed): the preparation was dropped.
    Wasted,
    /// There was no preparation.
    None,
}

/// What a write task sends back: the changes and how to answer the caller.
pub struct WriteOutcome {
    changes: Changes,
    reply: Box<dyn FnOnce() + Send>,
    op: &'static str,
    elapsed: Duration,
    ok: bool,
    span: tracing::Span,
}

/// Everything a write task needs, copied out of the actor.
struct WriteEnv {
    config: Arc<EngineConfig>,
    snapshot: ForkchoiceSnapshot,
    primary: SessionRef,
    all: Vec<SessionRef>,
    prepared: Option<Prepared>,
}

/// State of the EngineActor.
pub struct EngineState {
    config: Arc<EngineConfig>,
    sessions: Vec<watch::Receiver<SessionStatus>>,
    events: broadcast::Sender<EngineEvent>,
    metrics: Arc<EngineMetrics>,
    write_lock: Arc<tokio::sync::Mutex<()>>,
    snapshot: ForkchoiceSnapshot,
    initialized: bool,
    initializing: bool,
    init_error: Option<String>,
    writing: bool,
    queue: VecDeque<(RequestContext, WriteRequest)>,
    payloads: TtlCache<PayloadId, BuiltPayload>,
    payload_ids: TtlCache<B256, PayloadId>,
    blocks: TtlCache<B256, (Arc<Block>, bool)>,
    receipts: TtlCache<B256, Arc<Vec<TransactionReceipt>>>,
    tx_blocks: TtlCache<B256, B256>,
    /// Post-commit receipt fetches in flight, with the reads waiting on them (one
    /// `eth_getBlockReceipts` per block, however many callers ask meanwhile).
    receipts_in_flight: HashMap<B256, Vec<Reply<Vec<TransactionReceipt>>>>,
    receipts_joined: u64,
    prepared: Option<Prepared>,
    preparation: PreparationStats,
}

/// The engine actor.
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineActor;

impl EngineState {
    fn statuses(&self) -> Vec<SessionStatus> {
        self.sessions.iter().map(|s| s.borrow().clone()).collect()
    }

    fn healthy(&self) -> Vec<SessionRef> {
        self.sessions
            .iter()
            .filter_map(|s| {
                let s = s.borrow();
                s.is_healthy().then(|| s.actor.clone()).flatten()
            })
            .collect()
    }

    fn no_session_error(&self) -> EngineError {
        let detail: Vec<String> = self
            .statuses()
            .iter()
            .map(|s| {
                format!(
                    "{} (connected: {}, circuit: {:?}{})",
                    s.endpoint,
                    s.connected,
                    s.circuit,
                    s.last_error
                        .as_deref()
                        .map(|e| format!(", last error: {e}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        EngineError::Unavailable {
            reason: format!("no healthy execution client session: {}", detail.join("; ")),
        }
    }

    /// The session builds go to: the first healthy one in endpoint order (failover).
    fn primary(&self) -> Result<SessionRef, EngineError> {
        self.healthy()
            .into_iter()
            .next()
            .ok_or_else(|| self.no_session_error())
    }

    fn write_env(&self) -> Result<WriteEnv, EngineError> {
        let all = self.healthy();
        let primary = all
            .first()
            .cloned()
            .ok_or_else(|| self.no_session_error())?;
        Ok(WriteEnv {
            config: Arc::clone(&self.config),
            snapshot: self.snapshot,
            primary,
            all,
            prepared: self.prepared.clone(),
        })
    }

    fn caches_status(&self) -> CachesStatus {
        CachesStatus {
            payloads: self.payloads.stats(),
            blocks: self.blocks.stats(),
            receipts: self.receipts.stats(),
            receipts_joined_in_flight: self.receipts_joined,
        }
    }

    fn cache_block(&mut self, block: Arc<Block>, full: bool) {
        let hash = block.header.hash;
        // Do not replace a full-transaction entry with a hashes-only one.
        if !full && self.blocks.peek(&hash).is_some_and(|(_, f)| *f) {
            return;
        }
        let finalized = self.snapshot.finalized_number;
        if !self.snapshot.finalized.is_zero() && block.header.number <= finalized {
            self.blocks.insert_pinned(hash, (block, full));
        } else {
            self.blocks.insert(hash, (block, full));
        }
    }

    fn cache_receipts(&mut self, block_hash: B256, receipts: Arc<Vec<TransactionReceipt>>) {
        for r in receipts.iter() {
            self.tx_blocks.insert(r.transaction_hash, block_hash);
        }
        self.receipts.insert(block_hash, receipts);
    }

    fn resolve(&self, block: BlockRef) -> Option<B256> {
        let non_zero = |h: B256| (!h.is_zero()).then_some(h);
        match block {
            BlockRef::Hash(h) => Some(h),
            BlockRef::Latest => non_zero(self.snapshot.head),
            BlockRef::Safe => non_zero(self.snapshot.safe),
            BlockRef::Finalized => non_zero(self.snapshot.finalized),
            BlockRef::Number(n) if n == self.snapshot.head_number => non_zero(self.snapshot.head),
            BlockRef::Number(n) if n == self.snapshot.finalized_number => {
                non_zero(self.snapshot.finalized)
            }
            BlockRef::Number(_) | BlockRef::Pending => None,
        }
    }
}

/// Render a cached block as asked: full transactions or hashes.
fn block_view(block: &Block, full: bool) -> Block {
    let mut out = block.clone();
    if !full {
        out.transactions = std::mem::take(&mut out.transactions).into_hashes();
    }
    out
}

/// The rpc block of a committed payload, with full (signer-recovered) transactions, so the
/// node's "block with transactions right after commit" is a cache hit; and the block's RLP
/// size. `None` if the payload does not decode (the EL will have said INVALID anyway).
pub fn block_from_payload(data: &ExecutionData) -> Option<(Block, usize)> {
    let hash = data.payload.block_hash();
    let block = data
        .payload
        .clone()
        .try_into_block_with_sidecar::<TxEnvelope>(&data.sidecar)
        .ok()?;
    let size = alloy_rlp::Encodable::length(&block);
    let number = block.header.number;
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
                    ..Default::default()
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

fn finish<T: Send + 'static>(
    result: Result<(T, Changes), EngineError>,
    reply: crate::messages::Reply<T>,
) -> WriteOutcome {
    match result {
        Ok((value, changes)) => WriteOutcome {
            changes,
            reply: Box::new(move || {
                let _ = reply.send(Ok(value));
            }),
            op: "",
            elapsed: Duration::ZERO,
            ok: true,
            span: tracing::Span::none(),
        },
        Err(e) => WriteOutcome {
            changes: Changes::default(),
            reply: Box::new(move || {
                let _ = reply.send(Err(e));
            }),
            op: "",
            elapsed: Duration::ZERO,
            ok: false,
            span: tracing::Span::none(),
        },
    }
}

/// A block header's (number, timestamp), from the EL.
async fn block_header(
    session: &SessionRef,
    hash: B256,
    what: &str,
) -> Result<(u64, u64), EngineError> {
    let block = run_on(session, move |c| async move {
        c.block(BlockId::Hash(hash.into()), false).await
    })
    .await?;
    block
        .map(|b| (b.header.number, b.header.timestamp))
        .ok_or_else(|| EngineError::NotFound {
            what: format!("{what} {hash} (unknown to the execution client)"),
        })
}

/// Checks `hash` (at `number`) is on the chain of the EL's current head.
async fn require_canonical(
    session: &SessionRef,
    hash: B256,
    number: u64,
    what: &str,
) -> Result<(), EngineError> {
    let canonical = run_on(session, move |c| async move {
        c.block(BlockId::Number(BlockNumberOrTag::Number(number)), false)
            .await
    })
    .await?
    .map(|b| b.header.hash);
    if canonical != Some(hash) {
        return Err(EngineError::invalid_request(
            "hash",
            format!("{what} {hash} (#{number}) is not an ancestor of the head"),
        ));
    }
    Ok(())
}

/// forkchoiceUpdated to every session in `env.all`; the primary's answer is authoritative (it
/// must be VALID), the others are logged when they disagree.
async fn forkchoice_everywhere(
    env: &WriteEnv,
    state: ForkchoiceState,
    subject: B256,
) -> Result<ForkchoiceUpdated, EngineError> {
    let calls = env.all.iter().map(|s| {
        run_on(s, move |c| async move {
            c.forkchoice_updated(state, None).await
        })
    });
    let mut results = join_all(calls).await.into_iter();
    let primary = results.next().ok_or_else(|| EngineError::Unavailable {
        reason: "no session".into(),
    })??;
    for (i, other) in results.enumerate() {
        match other {
            Ok(u) if u.payload_status.is_valid() => {}
            Ok(u) => {
                warn!(session = i + 1, status = ?u.payload_status.status, "secondary execution client disagrees on forkchoice")
            }
            Err(e) => {
                warn!(session = i + 1, error = %e, "secondary execution client failed forkchoiceUpdated")
            }
        }
    }
    require_fcu_valid(&primary, subject)?;
    Ok(primary)
}

fn require_fcu_valid(updated: &ForkchoiceUpdated, subject: B256) -> Result<(), EngineError> {
    match &updated.payload_status.status {
        PayloadStatusEnum::Valid => Ok(()),
        PayloadStatusEnum::Invalid { validation_error } => Err(EngineError::InvalidPayload {
            block_hash: subject,
            validation_error: Some(validation_error.clone()),
            latest_valid_hash: updated.payload_status.latest_valid_hash,
        }),
        PayloadStatusEnum::Syncing | PayloadStatusEnum::Accepted => Err(EngineError::Syncing {
            block_hash: subject,
        }),
    }
}

async fn persist(config: &EngineConfig, snapshot: ForkchoiceSnapshot) -> Result<(), EngineError> {
    let Some(path) = config.state_path.clone() else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || persistence::save(&path, &snapshot))
        .await
        .map_err(|e| EngineError::Unavailable {
            reason: format!("state writer failed: {e}"),
        })?
}

/// The attributes a build request turns into, the same way for preparing and building, so a
/// preparation matches its build exactly when the caller asked for the same thing.
async fn attributes_for(
    env: &WriteEnv,
    req: &BuildPayloadRequest,
) -> Result<(B256, PayloadAttributes), EngineError> {
    let parent = req.parent.unwrap_or(env.snapshot.head);
    let parent_timestamp = if parent == env.snapshot.head {
        env.snapshot.head_timestamp
    } else {
        block_header(&env.primary, parent, "parent block").await?.1
    };
    req.validate_against_parent(parent_timestamp)?;
    let fork = env.config.fork_schedule.fork_at(req.timestamp);
    let root = fork
        .has_blob_fields()
        .then(|| req.parent_beacon_block_root.unwrap_or_default());
    let withdrawals = withdrawals_from_peg_ins(&req.peg_ins, env.snapshot.next_withdrawal_index);
    let attributes = PayloadAttributes {
        timestamp: req.timestamp,
        prev_randao: B256::ZERO,
        suggested_fee_recipient: req.fee_recipient.unwrap_or(env.config.fee_recipient),
        withdrawals: Some(withdrawals),
        parent_beacon_block_root: root,
        ..Default::default()
    };
    Ok((parent, attributes))
}

/// forkchoiceUpdated(head = parent, attributes) on the primary → the payload id.
async fn start_build(
    env: &WriteEnv,
    parent: B256,
    attributes: PayloadAttributes,
) -> Result<PayloadId, EngineError> {
    let state = ForkchoiceState {
        head_block_hash: parent,
        safe_block_hash: env.snapshot.safe,
        finalized_block_hash: env.snapshot.finalized,
    };
    let updated = run_on(&env.primary, move |c| async move {
        c.forkchoice_updated(state, Some(attributes)).await
    })
    .await?;
    require_fcu_valid(&updated, parent)?;
    updated
        .payload_id
        .ok_or_else(|| EngineError::MissingInResponse {
            method: "engine_forkchoiceUpdated".into(),
            missing: "a payload id for the build".into(),
        })
}

async fn prepare(
    env: &WriteEnv,
    req: BuildPayloadRequest,
) -> Result<(PayloadId, Changes), EngineError> {
    let (parent, attributes) = attributes_for(env, &req).await?;
    let payload_id = start_build(env, parent, attributes.clone()).await?;
    let prepared = Prepared {
        parent,
        attributes,
        payload_id,
    };
    Ok((
        payload_id,
        Changes {
            preparation: Some(PreparationChange::Made(prepared)),
            ..Changes::default()
        },
    ))
}

async fn build(
    env: &WriteEnv,
    req: BuildPayloadRequest,
) -> Result<(BuiltPayload, Changes), EngineError> {
    let started = tokio::time::Instant::now();
    let (parent, attributes) = attributes_for(env, &req).await?;
    let root = attributes.parent_beacon_block_root;
    let timestamp = req.timestamp;
    let get_payload = |payload_id: PayloadId| {
        run_on(&env.primary, move |c| async move {
            c.get_payload(payload_id, timestamp, root).await
        })
    };
    // A preparation for exactly this parent and these attributes: the EL has been building
    // since, so only getPayload is left to do.
    let (built, preparation) = match &env.prepared {
        Some(p) if p.parent == parent && p.attributes == attributes => {
            match get_payload(p.payload_id).await {
                Ok(built) => (built, PreparationChange::Used),
                Err(EngineError::UnknownPayload { .. }) => {
                    debug!(payload_id = %p.payload_id, "prepared payload unknown to the EL; building afresh");
                    let id = start_build(env, parent, attributes).await?;
                    (get_payload(id).await?, PreparationChange::UnknownToEl)
                }
                Err(e) => return Err(e),
            }
        }
        stale => {
            let id = start_build(env, parent, attributes).await?;
            let change = if stale.is_some() {
                PreparationChange::Wasted
            } else {
                PreparationChange::None
            };
            (get_payload(id).await?, change)
        }
    };
    let latency = started.elapsed();
    // The withdrawal index follows the committed chain (see `commit`), not builds: building
    // the same slot twice gives the same block, and another engine adopting this one's state
    // mid-slot gets the index the slot's build used.
    let changes = Changes {
        built: Some(built.clone()),
        build_latency: Some((matches!(preparation, PreparationChange::Used), latency)),
        preparation: Some(preparation),
        ..Changes::default()
    };
    Ok((built, changes))
}

async fn validate(env: &WriteEnv, data: ExecutionData) -> Result<((), Changes), EngineError> {
    let hash = data.payload.block_hash();
    let data = Arc::new(data);
    let calls = env.all.iter().map(|s| {
        let data = Arc::clone(&data);
        run_on(s, move |c| async move { c.new_payload(&data).await })
    });
    let mut results = join_all(calls).await.into_iter();
    let primary = results.next().ok_or_else(|| EngineError::Unavailable {
        reason: "no session".into(),
    })??;
    for (i, other) in results.enumerate() {
        match other {
            Ok(s) if s.status == primary.status => {}
            Ok(s) => {
                warn!(session = i + 1, status = ?s.status, primary = ?primary.status, %hash, "execution clients disagree on a payload")
            }
            Err(e) => {
                warn!(session = i + 1, error = %e, %hash, "secondary execution client failed newPayload")
            }
        }
    }
    require_valid(&primary, hash)?;
    Ok(((), Changes::default()))
}

async fn commit(env: &WriteEnv, data: ExecutionData) -> Result<(B256, Changes), EngineError> {
    let hash = data.payload.block_hash();
    let number = data.payload.block_number();
    let timestamp = data.payload.timestamp();
    let (block, size) =
        block_from_payload(&data).map_or((None, 0), |(b, size)| (Some(Arc::new(b)), size));
    let payload_stats = (
        size,
        data.payload.transactions().len(),
        data.payload.as_v1().gas_used,
    );
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
        committed_block: block,
        fetch_receipts: Some((hash, number)),
        payload_stats: Some(payload_stats),
        ..Changes::default()
    };
    Ok((hash, changes))
}

/// The (number, timestamp) of `hash` after checking it can become the head's ancestor target of
/// a finalize or revert: known to the EL, not above the head, not older than the finalized
/// block (`past_finality` says why that is refused), and on the head's chain.
async fn checked_target(
    env: &WriteEnv,
    hash: B256,
    what: &str,
    above_head: &str,
    past_finality: &str,
) -> Result<(u64, u64), EngineError> {
    // The head is on its own chain and its number is known: no lookups (finalizing the head
    // is what Alys does most).
    let is_head = hash == env.snapshot.head;
    let (number, timestamp) = if is_head {
        (env.snapshot.head_number, env.snapshot.head_timestamp)
    } else {
        block_header(&env.primary, hash, what).await?
    };
    if number > env.snapshot.head_number {
        return Err(EngineError::invalid_request(
            "hash",
            format!(
                "{what} {hash} (#{number}) is above the head (#{}); {above_head}",
                env.snapshot.head_number
            ),
        ));
    }
    if !env.snapshot.finalized.is_zero() && number < env.snapshot.finalized_number {
        return Err(EngineError::invalid_request(
            "hash",
            format!(
                "{what} #{number} is older than the finalized block #{}; {past_finality}",
                env.snapshot.finalized_number
            ),
        ));
    }
    if !is_head {
        require_canonical(&env.primary, hash, number, what).await?;
    }
    Ok((number, timestamp))
}

async fn finalize(env: &WriteEnv, hash: B256) -> Result<((), Changes), EngineError> {
    let (number, _) = checked_target(
        env,
        hash,
        "block to finalize",
        "commit it first",
        "finality cannot move back",
    )
    .await?;
    let state = ForkchoiceState {
        head_block_hash: env.snapshot.head,
        safe_block_hash: hash,
        finalized_block_hash: hash,
    };
    forkchoice_everywhere(env, state, env.snapshot.head).await?;
    let mut snapshot = env.snapshot;
    snapshot.safe = hash;
    snapshot.finalized = hash;
    snapshot.finalized_number = number;
    persist(&env.config, snapshot).await?;
    Ok((
        (),
        Changes {
            snapshot: Some(snapshot),
            pin: Some(hash),
            ..Changes::default()
        },
    ))
}

async fn revert(env: &WriteEnv, hash: B256) -> Result<((), Changes), EngineError> {
    let (number, timestamp) = checked_target(
        env,
        hash,
        "block to revert to",
        "it is not an ancestor of the head",
        "cannot revert past finality",
    )
    .await?;
    let state = ForkchoiceState {
        head_block_hash: hash,
        safe_block_hash: env.snapshot.finalized,
        finalized_block_hash: env.snapshot.finalized,
    };
    forkchoice_everywhere(env, state, hash).await?;
    let mut snapshot = env.snapshot;
    snapshot.head = hash;
    snapshot.head_number = number;
    snapshot.head_timestamp = timestamp;
    snapshot.safe = snapshot.finalized;
    persist(&env.config, snapshot).await?;
    Ok((
        (),
        Changes {
            snapshot: Some(snapshot),
            ..Changes::default()
        },
    ))
}

/// forkchoiceUpdated with exactly `state`; the next withdrawal index is `next_withdrawal_index`
/// when given (adopting another engine's state), else unchanged.
async fn set_forkchoice(
    env: &WriteEnv,
    state: ForkchoiceState,
    next_withdrawal_index: Option<u64>,
) -> Result<(ForkchoiceSnapshot, Changes), EngineError> {
    if state.head_block_hash.is_zero() {
        return Err(EngineError::invalid_request("head_block_hash", "zero hash"));
    }
    let (head_number, head_timestamp) =
        block_header(&env.primary, state.head_block_hash, "head block").await?;
    let finalized_number = if state.finalized_block_hash.is_zero() {
        0
    } else {
        block_header(&env.primary, state.finalized_block_hash, "finalized block")
            .await?
            .0
    };
    forkchoice_everywhere(env, state, state.head_block_hash).await?;
    let snapshot = ForkchoiceSnapshot {
        head: state.head_block_hash,
        head_number,
        head_timestamp,
        safe: state.safe_block_hash,
        finalized: state.finalized_block_hash,
        finalized_number,
        next_withdrawal_index: next_withdrawal_index.unwrap_or(env.snapshot.next_withdrawal_index),
    };
    persist(&env.config, snapshot).await?;
    Ok((
        snapshot,
        Changes {
            snapshot: Some(snapshot),
            ..Changes::default()
        },
    ))
}

async fn execute(env: WriteEnv, request: WriteRequest) -> WriteOutcome {
    let op = request.name();
    let started = tokio::time::Instant::now();
    let mut outcome = execute_request(env, request).await;
    outcome.op = op;
    outcome.elapsed = started.elapsed();
    outcome.span = tracing::Span::current();
    outcome
}

async fn execute_request(env: WriteEnv, request: WriteRequest) -> WriteOutcome {
    match request {
        WriteRequest::BuildPayload(req, reply) => finish(build(&env, req).await, reply),
        WriteRequest::PreparePayload(req, reply) => finish(prepare(&env, req).await, reply),
        WriteRequest::CommitPayload(data, reply) => finish(commit(&env, *data).await, reply),
        WriteRequest::ValidatePayload(data, reply) => finish(validate(&env, *data).await, reply),
        WriteRequest::FinalizeBlock(hash, reply) => finish(finalize(&env, hash).await, reply),
        WriteRequest::RevertToBlock(hash, reply) => finish(revert(&env, hash).await, reply),
        WriteRequest::UpdateForkchoice(state, reply) => finish(
            set_forkchoice(&env, state, None)
                .await
                .map(|(_, c)| ((), c)),
            reply,
        ),
        WriteRequest::InitializeFromLegacy(state, next_withdrawal_index, reply) => {
            let result = set_forkchoice(&env, state, next_withdrawal_index)
                .await
                .map(|(snap, mut c)| {
                    c.initialized = true;
                    (snap, c)
                });
            finish(result, reply)
        }
    }
}

/// Checks done before any IO; on failure the request is answered at once.
fn precheck(state: &EngineState, request: &WriteRequest) -> Result<(), EngineError> {
    let config = &state.config;
    match request {
        WriteRequest::BuildPayload(req, _) | WriteRequest::PreparePayload(req, _) => {
            req.validate(config.max_withdrawals_per_block, &config.fork_schedule)
        }
        WriteRequest::CommitPayload(data, _) | WriteRequest::ValidatePayload(data, _) => {
            validate_execution_data(data, &config.fork_schedule)
        }
        WriteRequest::FinalizeBlock(hash, _) => FinalizeRequest { hash: *hash }.validate(),
        WriteRequest::RevertToBlock(hash, _) => RevertRequest { hash: *hash }.validate(),
        WriteRequest::UpdateForkchoice(s, _) | WriteRequest::InitializeFromLegacy(s, _, _) => {
            if s.head_block_hash.is_zero() {
                Err(EngineError::invalid_request("head_block_hash", "zero hash"))
            } else {
                Ok(())
            }
        }
    }
}

fn fail_request(request: WriteRequest, error: EngineError) {
    match request {
        WriteRequest::BuildPayload(_, r) => drop(r.send(Err(error))),
        WriteRequest::PreparePayload(_, r) => drop(r.send(Err(error))),
        WriteRequest::CommitPayload(_, r) => drop(r.send(Err(error))),
        WriteRequest::ValidatePayload(_, r)
        | WriteRequest::FinalizeBlock(_, r)
        | WriteRequest::RevertToBlock(_, r)
        | WriteRequest::UpdateForkchoice(_, r) => drop(r.send(Err(error))),
        WriteRequest::InitializeFromLegacy(_, _, r) => drop(r.send(Err(error))),
    }
}

impl EngineActor {
    /// Start the next queued write if none is in flight.
    fn pump(myself: &EngineRef, state: &mut EngineState) {
        while !state.writing {
            let Some((ctx, request)) = state.queue.pop_front() else {
                return;
            };
            let may_run =
                state.initialized || matches!(request, WriteRequest::InitializeFromLegacy(..));
            if !may_run {
                if state.initializing {
                    // Wait for the initialisation in progress.
                    state.queue.push_front((ctx, request));
                    return;
                }
                let reason = format!(
                    "not synchronised with the execution client yet: {}",
                    state.init_error.as_deref().unwrap_or("initialising")
                );
                fail_request(request, EngineError::Unavailable { reason });
                continue;
            }
            if let Err(e) = precheck(state, &request) {
                fail_request(request, e);
                continue;
            }
            let env = match state.write_env() {
                Ok(env) => env,
                Err(e) => {
                    fail_request(request, e);
                    continue;
                }
            };
            state.writing = true;
            let me = myself.clone();
            let span = ctx.span.clone();
            // Taken here, in the mailbox, so a successor cannot slip in before the task runs;
            // only a crashed predecessor's write still running makes the task wait for it.
            let write_lock = Arc::clone(&state.write_lock);
            let taken = Arc::clone(&write_lock).try_lock_owned();
            tokio::spawn(
                async move {
                    let _writer = match taken {
                        Ok(guard) => guard,
                        Err(_) => write_lock.lock_owned().await,
                    };
                    let outcome = execute(env, request).await;
                    let _ = me.cast(EngineMsg::WriteDone(Box::new(outcome)));
                }
                .instrument(span),
            );
        }
    }

    fn apply(myself: &EngineRef, state: &mut EngineState, changes: Changes, span: &tracing::Span) {
        if let Some(snapshot) = changes.snapshot {
            state.snapshot = snapshot;
        }
        if changes.initialized {
            state.initialized = true;
            state.init_error = None;
        }
        if let Some(built) = changes.built {
            state
                .payload_ids
                .insert(built.block_hash(), built.payload_id);
            state.payloads.insert(built.payload_id, built);
        }
        if let Some(change) = changes.preparation {
            let outcome = match &change {
                PreparationChange::Made(_) => Some("made"),
                PreparationChange::Used => Some("used"),
                PreparationChange::UnknownToEl => Some("unknown_to_el"),
                PreparationChange::Wasted => Some("wasted"),
                PreparationChange::None => None,
            };
            if let Some(outcome) = outcome {
                state
                    .metrics
                    .preparations
                    .with_label_values(&[outcome])
                    .inc();
            }
            let replaced = matches!(change, PreparationChange::Made(_)) && state.prepared.is_some();
            if replaced {
                state
                    .metrics
                    .preparations
                    .with_label_values(&["wasted"])
                    .inc();
            }
            let stats = &mut state.preparation;
            match change {
                PreparationChange::Made(prepared) => {
                    stats.made += 1;
                    if state.prepared.replace(prepared).is_some() {
                        stats.wasted += 1;
                    }
                }
                PreparationChange::Used => {
                    stats.used += 1;
                    state.prepared = None;
                }
                PreparationChange::UnknownToEl => {
                    stats.unknown_to_el += 1;
                    state.prepared = None;
                }
                PreparationChange::Wasted => {
                    stats.wasted += 1;
                    state.prepared = None;
                }
                PreparationChange::None => {}
            }
        }
        if let Some((prepared, latency)) = changes.build_latency {
            state
                .metrics
                .build_duration
                .with_label_values(&[if prepared { "true" } else { "false" }])
                .observe(latency.as_secs_f64());
            let l = if prepared {
                &mut state.preparation.prepared_builds
            } else {
                &mut state.preparation.unprepared_builds
            };
            l.record(latency);
        }
        if let Some(block) = changes.committed_block {
            state.cache_block(block, true);
        }
        if let Some(hash) = changes.pin {
            state.blocks.pin(&hash);
        }
        if let Some((hash, number)) = changes.fetch_receipts {
            // Peg-out detection: one receipts call per block, off the mailbox.
            match state.primary() {
                Ok(session) => {
                    state.receipts_in_flight.entry(hash).or_default();
                    let me = myself.clone();
                    tokio::spawn(
                        async move {
                            let block = BlockId::Number(BlockNumberOrTag::Number(number));
                            let result = run_on(&session, move |c| async move {
                                c.block_receipts(block).await?.ok_or_else(|| {
                                    EngineError::NotFound {
                                        what: format!(
                                            "receipts of committed block #{number} {hash}"
                                        ),
                                    }
                                })
                            })
                            .await
                            .map(Arc::new);
                            let _ = me.cast(EngineMsg::ReceiptsFetched(hash, result));
                        }
                        .instrument(span.clone()),
                    );
                }
                Err(e) => warn!(%hash, error = %e, "cannot fetch receipts of a committed block"),
            }
        }
    }

    fn start_initialization(myself: &EngineRef, state: &mut EngineState) {
        if state.initializing {
            return;
        }
        state.initializing = true;
        let config = Arc::clone(&state.config);
        let sessions = state.sessions.clone();
        let write_lock = Arc::clone(&state.write_lock);
        let me = myself.clone();
        tokio::spawn(async move {
            let result = initialize(config, sessions, write_lock).await;
            let _ = me.cast(EngineMsg::Initialized(result));
        });
    }

    fn handle_read(
        myself: &EngineRef,
        state: &mut EngineState,
        ctx: RequestContext,
        request: ReadRequest,
    ) {
        let reader = state.primary();
        let span = ctx.span.clone();
        // Answer from `reader` in a task; on no session, answer the error at once.
        macro_rules! offload {
            ($reply:expr, $call:expr) => {{
                let reply = $reply;
                match reader {
                    Ok(session) => {
                        tokio::spawn(
                            async move {
                                let _ = reply.send(run_on(&session, $call).await);
                            }
                            .instrument(span),
                        );
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }};
        }
        match request {
            ReadRequest::GetBlock {
                block,
                full_transactions,
                reply,
            } => {
                if let Some(hash) = state.resolve(block) {
                    match state.blocks.get(&hash) {
                        Some((cached, has_full)) if has_full || !full_transactions => {
                            let _ = reply.send(Ok(Some(block_view(&cached, full_transactions))));
                            return;
                        }
                        _ => {}
                    }
                }
                let id = block.to_block_id();
                // Immutable by hash: remember what we fetched.
                let cacheable = matches!(block, BlockRef::Hash(_));
                let me = myself.clone();
                offload!(reply, move |c| async move {
                    let found = c.block(id, full_transactions).await?;
                    if let (true, Some(b)) = (cacheable, &found) {
                        let _ = me.cast(EngineMsg::CacheBlock(
                            Box::new(b.clone()),
                            full_transactions,
                        ));
                    }
                    Ok(found)
                });
            }
            ReadRequest::GetPayload(payload, reply) => {
                let id = match payload {
                    PayloadRef::Id(id) => Some(id),
                    PayloadRef::BlockHash(hash) => state.payload_ids.get(&hash),
                };
                let answer = id.and_then(|id| state.payloads.get(&id)).ok_or_else(|| EngineError::NotFound {
                    what: format!("payload {payload:?} (not built by this engine, or expired from the cache)"),
                });
                let _ = reply.send(answer);
            }
            ReadRequest::GetLogs(filter, reply) => {
                offload!(reply, move |c| async move { c.logs(&filter).await });
            }
            ReadRequest::GetTransactionReceipt(tx, reply) => {
                let cached = state
                    .tx_blocks
                    .get(&tx)
                    .and_then(|block| state.receipts.get(&block))
                    .and_then(|receipts| {
                        receipts.iter().find(|r| r.transaction_hash == tx).cloned()
                    });
                if let Some(found) = cached {
                    let _ = reply.send(Ok(Some(found)));
                    return;
                }
                offload!(
                    reply,
                    move |c| async move { c.transaction_receipt(tx).await }
                );
            }
            ReadRequest::GetReceipts(block, reply) => {
                if let Some(waiters) = state.receipts_in_flight.get_mut(&block) {
                    waiters.push(reply);
                    state.receipts_joined += 1;
                    return;
                }
                if let Some(receipts) = state.receipts.get(&block) {
                    let _ = reply.send(Ok(receipts.as_ref().clone()));
                    return;
                }
                let me = myself.clone();
                offload!(reply, move |c| async move {
                    let receipts = c
                        .block_receipts(BlockId::Hash(block.into()))
                        .await?
                        .ok_or_else(|| EngineError::NotFound {
                            what: format!("receipts of block {block}"),
                        })?;
                    let _ = me.cast(EngineMsg::CacheReceipts(block, Arc::new(receipts.clone())));
                    Ok(receipts)
                });
            }
            ReadRequest::GetSyncStatus(reply) => {
                offload!(reply, move |c| async move { c.sync_state().await });
            }
            ReadRequest::GetPayloadBodiesByHash(hashes, reply) => {
                offload!(reply, move |c| async move {
                    c.payload_bodies_by_hash(hashes).await
                });
            }
            ReadRequest::SendRawTransaction(raw, reply) => {
                offload!(
                    reply,
                    move |c| async move { c.send_raw_transaction(raw).await }
                );
            }
        }
    }
}

/// Synchronise with the EL: reload persisted forkchoice and re-announce it with one
/// forkchoiceUpdated, or adopt the EL's own head when there is no saved state.
async fn initialize(
    config: Arc<EngineConfig>,
    sessions: Vec<watch::Receiver<SessionStatus>>,
    write_lock: Arc<tokio::sync::Mutex<()>>,
) -> Result<ForkchoiceSnapshot, EngineError> {
    let deadline = tokio::time::Instant::now() + SESSION_WAIT;
    let all = loop {
        let healthy: Vec<SessionRef> = sessions
            .iter()
            .filter_map(|s| {
                let s = s.borrow();
                s.is_healthy().then(|| s.actor.clone()).flatten()
            })
            .collect();
        if !healthy.is_empty() {
            break healthy;
        }
        if tokio::time::Instant::now() >= deadline {
            let why: Vec<String> = sessions
                .iter()
                .map(|s| {
                    let s = s.borrow();
                    format!(
                        "{}: {}",
                        s.endpoint,
                        s.last_error
                            .clone()
                            .unwrap_or_else(|| "not connected".into())
                    )
                })
                .collect();
            return Err(EngineError::Unavailable {
                reason: format!("no execution client session connected ({})", why.join("; ")),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let primary = all[0].clone();
    // A write of a crashed predecessor finishes first; its outcome is then in the file.
    let _writer = write_lock.lock().await;
    let saved = match &config.state_path {
        Some(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || persistence::load(&path))
                .await
                .map_err(|e| EngineError::Unavailable {
                    reason: format!("state reader failed: {e}"),
                })??
        }
        None => None,
    };
    let env = WriteEnv {
        config: Arc::clone(&config),
        snapshot: saved.unwrap_or_default(),
        primary: primary.clone(),
        all,
        prepared: None,
    };
    if let Some(saved) = saved.filter(ForkchoiceSnapshot::is_initialized) {
        // The head must still be known to the EL, then tell it our forkchoice once.
        block_header(&primary, saved.head, "persisted head").await?;
        let state = ForkchoiceState {
            head_block_hash: saved.head,
            safe_block_hash: saved.safe,
            finalized_block_hash: saved.finalized,
        };
        forkchoice_everywhere(&env, state, saved.head).await?;
        info!(head = %saved.head, number = saved.head_number, finalized = %saved.finalized, "reloaded persisted forkchoice and re-announced it");
        return Ok(saved);
    }
    let tag = |t: BlockNumberOrTag| {
        let session = primary.clone();
        async move {
            run_on(&session, move |c| async move {
                c.block(BlockId::Number(t), false).await
            })
            .await
        }
    };
    let head = tag(BlockNumberOrTag::Latest)
        .await?
        .ok_or_else(|| EngineError::NotFound {
            what: "the execution client's latest block".into(),
        })?;
    let finalized = tag(BlockNumberOrTag::Finalized).await.ok().flatten();
    let safe = tag(BlockNumberOrTag::Safe).await.ok().flatten();
    let snapshot = ForkchoiceSnapshot {
        head: head.header.hash,
        head_number: head.header.number,
        head_timestamp: head.header.timestamp,
        safe: safe.map(|b| b.header.hash).unwrap_or_default(),
        finalized: finalized
            .as_ref()
            .map(|b| b.header.hash)
            .unwrap_or_default(),
        finalized_number: finalized.map(|b| b.header.number).unwrap_or_default(),
        next_withdrawal_index: 0,
    };
    persist(&config, snapshot).await?;
    info!(head = %snapshot.head, number = snapshot.head_number, "adopted the execution client's head");
    Ok(snapshot)
}

impl Actor for EngineActor {
    type Msg = EngineMsg;
    type State = EngineState;
    type Arguments = EngineArgs;

    async fn pre_start(
        &self,
        _myself: EngineRef,
        args: EngineArgs,
    ) -> Result<EngineState, ActorProcessingErr> {
        let c = args.config.cache;
        let ttl = Duration::from_millis(c.ttl_ms);
        Ok(EngineState {
            config: args.config,
            sessions: args.sessions,
            events: args.events,
            metrics: args.metrics,
            write_lock: args.write_lock,
            snapshot: ForkchoiceSnapshot::default(),
            initialized: false,
            initializing: false,
            init_error: None,
            writing: false,
            queue: VecDeque::new(),
            payloads: TtlCache::new(c.payload_capacity, ttl),
            payload_ids: TtlCache::new(c.payload_capacity, ttl),
            blocks: TtlCache::new(c.block_capacity, ttl),
            receipts: TtlCache::new(c.receipt_capacity, ttl),
            tx_blocks: TtlCache::new(c.receipt_capacity.saturating_mul(64), ttl),
            receipts_in_flight: HashMap::new(),
            receipts_joined: 0,
            prepared: None,
            preparation: PreparationStats::default(),
        })
    }

    async fn post_start(
        &self,
        myself: EngineRef,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        Self::start_initialization(&myself, state);
        Ok(())
    }

    async fn handle(
        &self,
        myself: EngineRef,
        msg: EngineMsg,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EngineMsg::Write(ctx, request) => {
                debug!(
                    op = request.name(),
                    correlation_id = ctx.correlation_id,
                    queued = state.queue.len(),
                    "write received"
                );
                state.queue.push_back((ctx, request));
                Self::pump(&myself, state);
            }
            EngineMsg::Read(ctx, request) => Self::handle_read(&myself, state, ctx, request),
            EngineMsg::WriteDone(outcome) => {
                let WriteOutcome {
                    changes,
                    reply,
                    op,
                    elapsed,
                    ok,
                    span,
                } = *outcome;
                let m = &state.metrics;
                m.write_duration
                    .with_label_values(&[op, if ok { "ok" } else { "error" }])
                    .observe(elapsed.as_secs_f64());
                if ok {
                    match op {
                        "build_payload" => m.blocks_built.inc(),
                        "commit_payload" => {
                            m.blocks_committed.inc();
                            m.commit_duration.observe(elapsed.as_secs_f64());
                        }
                        "finalize_block" => {
                            m.blocks_finalized.inc();
                            m.finalize_duration.observe(elapsed.as_secs_f64());
                        }
                        _ => {}
                    }
                }
                if let Some((size, txs, gas)) = changes.payload_stats {
                    m.observe_payload(size, txs, gas);
                }
                Self::apply(&myself, state, changes, &span);
                reply();
                state.writing = false;
                Self::pump(&myself, state);
            }
            EngineMsg::GetForkchoiceState(reply) => {
                let _ = reply.send(state.snapshot);
            }
            EngineMsg::GetStatus(reply) => {
                let _ = reply.send(EngineStatus {
                    forkchoice: state.snapshot,
                    initialized: state.initialized,
                    sessions: state.statuses(),
                    caches: state.caches_status(),
                    queued_writes: state.queue.len(),
                    preparation: state.preparation,
                });
            }
            EngineMsg::SweepCaches(reply) => {
                let swept = state.payloads.sweep()
                    + state.payload_ids.sweep()
                    + state.blocks.sweep()
                    + state.receipts.sweep()
                    + state.tx_blocks.sweep();
                let _ = reply.send(swept);
            }
            EngineMsg::Initialize => Self::start_initialization(&myself, state),
            EngineMsg::Initialized(result) => {
                state.initializing = false;
                match result {
                    Ok(snapshot) => {
                        state.snapshot = snapshot;
                        state.initialized = true;
                        state.init_error = None;
                    }
                    Err(e) => {
                        warn!(error = %e, "engine initialisation failed; retrying");
                        state.init_error = Some(e.to_string());
                        myself.send_after(INIT_RETRY, || EngineMsg::Initialize);
                    }
                }
                Self::pump(&myself, state);
            }
            EngineMsg::CacheBlock(block, full) => state.cache_block(Arc::new(*block), full),
            EngineMsg::CacheReceipts(hash, receipts) => state.cache_receipts(hash, receipts),
            EngineMsg::ReceiptsFetched(hash, result) => {
                let waiters = state.receipts_in_flight.remove(&hash).unwrap_or_default();
                match result {
                    Ok(receipts) => {
                        for event in peg_outs_in_receipts(state.config.bridge_address, &receipts) {
                            info!(tx = %event.tx_hash, value_wei = %event.value_wei, "peg-out requested");
                            // No subscribers is fine: nobody asked for events.
                            let _ = state.events.send(EngineEvent::PegOutRequested(event));
                        }
                        for waiter in waiters {
                            let _ = waiter.send(Ok(receipts.as_ref().clone()));
                        }
                        state.cache_receipts(hash, receipts);
                    }
                    Err(e) => {
                        warn!(%hash, error = %e, "could not fetch receipts of a committed block; peg-outs of this block were not read");
                        for waiter in waiters {
                            let _ = waiter.send(Err(e.clone()));
                        }
                    }
                }
            }
            EngineMsg::Crash => {
                error!("injected EngineActor crash");
                panic!("injected EngineActor crash");
            }
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: EngineRef,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        for waiter in state.receipts_in_flight.drain().flat_map(|(_, w)| w) {
            let _ = waiter.send(Err(EngineError::Unavailable {
                reason: "the engine stopped".into(),
            }));
        }
        for (_, request) in state.queue.drain(..) {
            fail_request(
                request,
                EngineError::Unavailable {
                    reason: "the engine stopped".into(),
                },
            );
        }
        Ok(())
    }
}
