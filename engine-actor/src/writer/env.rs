//! What a write works with ([`WriteEnv`]), what it changes ([`Changes`]), and the steps every
//! write shares: looking a block up, forkchoiceUpdated on every session, persisting.

use std::sync::Arc;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ForkchoiceState, ForkchoiceUpdated, PayloadStatusEnum};
use engine_clients::{BuiltPayload, ExecutionClient, HttpExecutionClient};
use engine_types::{EngineConfig, EngineError};
use futures_util::future::join_all;
use tracing::warn;

use super::build::{PreparationChange, Prepared};
use crate::{ForkchoiceSnapshot, engine::CommittedBlock, persistence, session::SessionLink};

/// Everything a write needs: the configuration, the forkchoice it starts from, the sessions
/// it may use (the first is the primary: builds go there and its answer is authoritative) and
/// the preparation made ahead of the slot, if any.
pub(crate) struct WriteEnv<C = HttpExecutionClient> {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) snapshot: ForkchoiceSnapshot,
    pub(crate) primary: SessionLink<C>,
    pub(crate) all: Vec<SessionLink<C>>,
    pub(crate) prepared: Option<Prepared>,
}

impl<C: ExecutionClient> WriteEnv<C> {
    /// Over `all` healthy sessions, the first being the primary; `None` without any.
    pub(crate) fn new(
        config: Arc<EngineConfig>,
        snapshot: ForkchoiceSnapshot,
        all: Vec<SessionLink<C>>,
        prepared: Option<Prepared>,
    ) -> Option<Self> {
        let primary = all.first()?.clone();
        Some(Self {
            config,
            snapshot,
            primary,
            all,
            prepared,
        })
    }
}

/// What a successful write changed, applied by the writer before it answers.
#[derive(Debug, Default)]
pub(crate) struct Changes {
    /// The new forkchoice (already persisted).
    pub(crate) snapshot: Option<ForkchoiceSnapshot>,
    /// A payload to cache (by id and block hash).
    pub(crate) built: Option<BuiltPayload>,
    /// A committed block: cache it (if it decoded) and fetch its receipts (peg-outs).
    pub(crate) committed: Option<CommittedBlock>,
    /// A block that became finalized: pin it in the cache.
    pub(crate) finalized: Option<B256>,
    /// What the write did to the preparation.
    pub(crate) preparation: Option<PreparationChange>,
    /// Build latency, and whether a preparation served it.
    pub(crate) build_latency: Option<(bool, std::time::Duration)>,
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

/// forkchoiceUpdated to every session; the primary's answer is authoritative (it must be
/// VALID: it is the EL the node builds on), the others' disagreements are logged.
pub(crate) async fn forkchoice_everywhere<C: ExecutionClient>(
    env: &WriteEnv<C>,
    state: ForkchoiceState,
    subject: B256,
) -> Result<ForkchoiceUpdated, EngineError> {
    let calls = env
        .all
        .iter()
        .map(|s| s.call(|c| async move { c.forkchoice_updated(state, None).await }));
    let mut results = join_all(calls).await.into_iter();
    let primary = results.next().ok_or_else(|| EngineError::Unavailable {
        reason: "no execution client session".into(),
    })??;
    for (other, result) in env.all.iter().skip(1).zip(results) {
        match result {
            Ok(u) if u.payload_status.is_valid() => {}
            Ok(u) => {
                warn!(session = other.index(), status = ?u.payload_status.status, "secondary execution client disagrees on forkchoice")
            }
            Err(e) => {
                warn!(session = other.index(), error = %e, "secondary execution client failed forkchoiceUpdated")
            }
        }
    }
    require_fcu_valid(&primary, subject)?;
    Ok(primary)
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
