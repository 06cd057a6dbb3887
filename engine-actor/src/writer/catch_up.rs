//! Bringing an execution client that lacks blocks of the engine's chain up to it: one that
//! restarted without its last blocks (Reth keeps recent blocks in memory), a secondary that was
//! down while the primary produced, a client that answers SYNCING to a block whose parent it
//! never saw.
//!
//! The missing blocks are found walking back from the target through parent hashes until a
//! block the client knows; their payloads come from the engine's [`PayloadStore`], or else from
//! another session that has the block (its full block, turned back into a payload). They are
//! replayed oldest first with newPayload; the caller then repeats the call that found the gap.

use std::sync::Arc;

use alloy_eips::BlockId;
use alloy_primitives::B256;
use alloy_rpc_types_engine::ExecutionData;
use engine_clients::ExecutionClient;
use engine_types::{EngineError, require_valid};
use tokio::time::Instant;
use tracing::{debug, info};

use super::{env::WriteEnv, store::PayloadStore};
use crate::session::SessionLink;

/// What a catch-up did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CatchUp {
    /// Blocks replayed.
    pub(crate) replayed: usize,
    /// Whether the client now has the target (`false`: the time budget ran out first).
    pub(crate) complete: bool,
}

/// Whether the client behind `link` has block `hash`.
async fn knows<C: ExecutionClient>(link: &SessionLink<C>, hash: B256) -> Result<bool, EngineError> {
    Ok(link
        .call(|c| async move { c.block(BlockId::Hash(hash.into()), false).await })
        .await?
        .is_some())
}

/// The payload of block `hash`: from the store, else from a session other than `lacking` that
/// has it.
async fn payload_of<C: ExecutionClient>(
    store: &PayloadStore,
    sessions: &[SessionLink<C>],
    lacking: &SessionLink<C>,
    hash: B256,
) -> Option<Arc<ExecutionData>> {
    if let Some(data) = store.get(&hash) {
        return Some(data);
    }
    for other in sessions.iter().filter(|s| s.index() != lacking.index()) {
        let block = other
            .call(|c| async move { c.block(BlockId::Hash(hash.into()), true).await })
            .await;
        if let Ok(Some(block)) = block
            && let Some(data) = engine_clients::execution_data_from_block(block)
        {
            let data = Arc::new(data);
            store.insert(Arc::clone(&data));
            return Some(data);
        }
    }
    None
}

/// Replay into `link` the blocks of the chain ending in `target` that its client lacks, oldest
/// first, stopping at `budget` (a deadline) if given. Errors when a missing block has no source,
/// when more than `max_catch_up_blocks` are missing, or when the client refuses a replayed one.
pub(crate) async fn catch_up<C: ExecutionClient>(
    env: &WriteEnv<C>,
    link: &SessionLink<C>,
    target: B256,
    budget: Option<Instant>,
) -> Result<CatchUp, EngineError> {
    let endpoint = link.endpoint().to_owned();
    let impossible = |reason: String| EngineError::CatchUpImpossible {
        endpoint: endpoint.clone(),
        target,
        reason,
    };
    let limit = env.config.recovery.max_catch_up_blocks;
    let mut missing: Vec<Arc<ExecutionData>> = Vec::new();
    let mut cursor = target;
    while !cursor.is_zero() && !knows(link, cursor).await? {
        if missing.len() >= limit {
            return Err(impossible(format!(
                "it lacks more than {limit} blocks (recovery.max_catch_up_blocks); let it sync \
                 from its peers, or raise the limit"
            )));
        }
        let Some(data) = payload_of(&env.store, &env.all, link, cursor).await else {
            return Err(impossible(format!(
                "it lacks block {cursor}, which neither the engine's store nor another \
                 execution client has; let it sync from its peers"
            )));
        };
        cursor = data.payload.parent_hash();
        missing.push(data);
    }
    let total = missing.len();
    let mut replayed = 0;
    for data in missing.into_iter().rev() {
        if budget.is_some_and(|b| Instant::now() >= b) {
            debug!(%endpoint, replayed, total, "catch-up paused: out of time for this write");
            return Ok(CatchUp {
                replayed,
                complete: false,
            });
        }
        let hash = data.payload.block_hash();
        let status = link
            .call(|c| async move { c.new_payload(&data).await })
            .await?;
        require_valid(&status, hash)?;
        replayed += 1;
        env.store.note_replayed(1);
    }
    if total > 0 {
        info!(%endpoint, replayed, %target, "caught the execution client up: replayed the blocks it lacked");
    }
    Ok(CatchUp {
        replayed,
        complete: true,
    })
}
