//! What a write works with ([`WriteEnv`]), what it changes ([`Changes`]), and the steps every
//! write shares: looking a block up, forkchoiceUpdated on every session (catching up a session
//! that lacks the head, reconciling an answer that never came), persisting.

use std::sync::Arc;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ForkchoiceState, ForkchoiceUpdated, PayloadStatusEnum};
use engine_clients::{BuiltPayload, ExecutionClient, HttpExecutionClient};
use engine_types::{EngineConfig, EngineError};
use futures_util::future::join_all;
use tracing::{info, warn};

use tokio::time::Instant;

use super::{
    build::{PreparationChange, Prepared},
    catch_up::catch_up,
    store::PayloadStore,
};
use crate::{ForkchoiceSnapshot, engine::CommittedBlock, persistence, session::SessionLink};

/// Everything a write needs: the configuration, the forkchoice it starts from, the sessions
/// it may use (in endpoint order; the first is the primary: builds start there and the first
/// session that answers is authoritative), the preparation made ahead of the slot, if any, and
/// the payloads kept to catch a session up.
pub(crate) struct WriteEnv<C = HttpExecutionClient> {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) snapshot: ForkchoiceSnapshot,
    pub(crate) primary: SessionLink<C>,
    pub(crate) all: Vec<SessionLink<C>>,
    pub(crate) prepared: Option<Prepared>,
    pub(crate) store: Arc<PayloadStore>,
}

impl<C: ExecutionClient> WriteEnv<C> {
    /// Over the usable sessions `all`, the first being the primary; `None` without any.
    pub(crate) fn new(
        config: Arc<EngineConfig>,
        snapshot: ForkchoiceSnapshot,
        all: Vec<SessionLink<C>>,
        prepared: Option<Prepared>,
        store: Arc<PayloadStore>,
    ) -> Option<Self> {
        let primary = all.first()?.clone();
        Some(Self {
            config,
            snapshot,
            primary,
            all,
            prepared,
            store,
        })
    }

    /// How long a secondary may spend catching up inside one write: half a slot, so a
    /// secondary far behind never holds up the primary's commit for long (it goes on at the
    /// next write).
    pub(crate) fn secondary_budget(&self, link: &SessionLink<C>) -> Option<Instant> {
        (link.index() != self.primary.index())
            .then(|| Instant::now() + self.config.slot_duration() / 2)
    }
}

/// Whether a failed call may still have been applied by the client (its answer was lost or
/// late), so the client must be asked what it did.
pub(crate) const fn is_ambiguous(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Timeout { .. } | EngineError::Transport { .. }
    )
}

/// The first answer in endpoint order, and the errors of the sessions before it; every error
/// if no session answered.
pub(crate) fn first_answer<T, C: ExecutionClient>(
    sessions: &[SessionLink<C>],
    results: Vec<Result<T, EngineError>>,
    what: &str,
) -> Result<(usize, T, Vec<T>), EngineError> {
    let mut authority = None;
    let mut others = Vec::new();
    let mut first_error = None;
    for (link, result) in sessions.iter().zip(results) {
        match result {
            Ok(answer) if authority.is_none() => authority = Some((link.index(), answer)),
            Ok(answer) => others.push(answer),
            Err(e) => {
                warn!(session = link.index(), endpoint = link.endpoint(), error = %e, "{what} failed on this execution client");
                first_error.get_or_insert(e);
            }
        }
    }
    match authority {
        Some((index, answer)) => Ok((index, answer, others)),
        None => Err(first_error.unwrap_or_else(|| EngineError::Unavailable {
            reason: "no execution client session".into(),
        })),
    }
}

/// What a successful write changed, applied by the writer before it answers.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// The new forkchoice (already persisted).
    pub(crate) snapshot: Option<ForkchoiceSnapshot>,
    /// A payload to cache (by id and block hash).
    pub(crate) built: Option<BuiltPayload>,
    /// Committed blocks, in order: cache each (if it decoded) and scan its receipts (peg-outs).
    pub(crate) committed: Vec<CommittedBlock>,
    /// A block that became finalized: pin it in the cache.
    pub(crate) finalized: Option<B256>,
    /// What the write did to the preparation.
    pub(crate) preparation: Option<PreparationChange>,
    /// Build latency, and whether a preparation served it.
    pub(crate) build_latency: Option<(bool, std::time::Duration)>,
    /// A disagreement between clients that the policy let through (what it was).
    pub(crate) disagreement: Option<String>,
}

/// A block header's (number, timestamp), from the EL.
pub(crate) async fn block_header<C: ExecutionClient>(
    session: &SessionLink<C>,
    hash: B256,
    what: &str,
) -> Result<(u64, u64), EngineError> {
    let block = session
        .call(|c| async move { c.block(BlockId::Hash(hash.into()), false).await })
        .await?;
    block
        .map(|b| (b.header.number, b.header.timestamp))
        .ok_or_else(|| EngineError::NotFound {
            what: format!("{what} {hash} (unknown to the execution client)"),
        })
}

/// Checks `hash` (at `number`) is on the chain of the EL's current head.
pub(crate) async fn require_canonical<C: ExecutionClient>(
    session: &SessionLink<C>,
    hash: B256,
    number: u64,
    what: &str,
) -> Result<(), EngineError> {
    let canonical = session
        .call(|c| async move {
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

/// forkchoiceUpdated(`state`) on every session. A session that does not know the head is
/// caught up and asked again; a session whose answer was lost is asked what its head is. The
/// first session in endpoint order that answered is authoritative (it must say VALID); the
/// others' disagreements are logged.
pub(crate) async fn forkchoice_everywhere<C: ExecutionClient>(
    env: &WriteEnv<C>,
    state: ForkchoiceState,
    subject: B256,
) -> Result<ForkchoiceUpdated, EngineError> {
    let calls = env.all.iter().map(|link| forkchoice_on(env, link, state));
    let results = join_all(calls).await;
    let (_, authority, others) = first_answer(&env.all, results, "forkchoiceUpdated")?;
    for other in others.iter().filter(|u| !u.payload_status.is_valid()) {
        warn!(status = ?other.payload_status.status, head = %subject, "an execution client disagrees on the forkchoice");
    }
    require_fcu_valid(&authority, subject)?;
    Ok(authority)
}

/// forkchoiceUpdated(`state`) on one session, caught up and repeated if it lacks the head,
/// reconciled if the answer was lost.
async fn forkchoice_on<C: ExecutionClient>(
    env: &WriteEnv<C>,
    link: &SessionLink<C>,
    state: ForkchoiceState,
) -> Result<ForkchoiceUpdated, EngineError> {
    let call = || link.call(|c| async move { c.forkchoice_updated(state, None).await });
    let answer = match call().await {
        Err(e) if is_ambiguous(&e) => return reconcile_forkchoice(link, state, e).await,
        other => other?,
    };
    if !answer.payload_status.is_syncing() {
        return Ok(answer);
    }
    let caught = catch_up(env, link, state.head_block_hash, env.secondary_budget(link)).await?;
    if !caught.complete {
        return Ok(answer);
    }
    match call().await {
        Err(e) if is_ambiguous(&e) => reconcile_forkchoice(link, state, e).await,
        other => other,
    }
}

/// A forkchoiceUpdated whose answer timed out or was lost may still have been applied (an EL
/// can move its head and answer late): the client's head, safe and finalized blocks decide.
/// Applied: a VALID answer; not applied: the original error.
pub(crate) async fn reconcile_forkchoice<C: ExecutionClient>(
    link: &SessionLink<C>,
    state: ForkchoiceState,
    error: EngineError,
) -> Result<ForkchoiceUpdated, EngineError> {
    let tag = |tag: BlockNumberOrTag| async move {
        link.call(|c| async move { c.block(BlockId::Number(tag), false).await })
            .await
            .ok()
            .flatten()
            .map(|b| b.header.hash)
    };
    let head = tag(BlockNumberOrTag::Latest).await;
    let applied = head == Some(state.head_block_hash)
        && (state.safe_block_hash.is_zero()
            || tag(BlockNumberOrTag::Safe).await == Some(state.safe_block_hash))
        && (state.finalized_block_hash.is_zero()
            || tag(BlockNumberOrTag::Finalized).await == Some(state.finalized_block_hash));
    if !applied {
        return Err(error);
    }
    info!(endpoint = link.endpoint(), head = %state.head_block_hash, error = %error, "forkchoiceUpdated went unanswered, but the execution client applied it");
    Ok(ForkchoiceUpdated::from_status(PayloadStatusEnum::Valid)
        .with_latest_valid_hash(state.head_block_hash))
}

/// A forkchoiceUpdated answer as success (VALID) or the typed error of its status.
pub(crate) fn require_fcu_valid(
    updated: &ForkchoiceUpdated,
    subject: B256,
) -> Result<(), EngineError> {
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

/// Write `snapshot` to the configured state file (a blocking task: fsync takes milliseconds).
pub(crate) async fn persist(
    config: &EngineConfig,
    snapshot: ForkchoiceSnapshot,
) -> Result<(), EngineError> {
    let Some(path) = config.state_path.clone() else {
        return Ok(());
    };
    tokio::task::spawn_blocking(move || persistence::save(&path, &snapshot))
        .await
        .map_err(|e| EngineError::Unavailable {
            reason: format!("the state writer task failed: {e}"),
        })?
}

/// Read the configured state file, if any.
pub(crate) async fn load_persisted(
    config: &EngineConfig,
) -> Result<Option<ForkchoiceSnapshot>, EngineError> {
    let Some(path) = config.state_path.clone() else {
        return Ok(None);
    };
    tokio::task::spawn_blocking(move || persistence::load(&path))
        .await
        .map_err(|e| EngineError::Unavailable {
            reason: format!("the state reader task failed: {e}"),
        })?
}
