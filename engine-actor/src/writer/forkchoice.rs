//! Setting the forkchoice outright (an operator's update, or adopting another engine's state)
//! and synchronising with the EL at start.

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_rpc_types_engine::ForkchoiceState;
use engine_clients::ExecutionClient;
use engine_types::{EngineConfig, EngineError};
use tracing::{info, warn};

use super::{
    env::{Changes, WriteEnv, block_header, forkchoice_everywhere, load_persisted, persist},
    store::PayloadStore,
};
use crate::{ForkchoiceSnapshot, session::SessionLink};

/// forkchoiceUpdated with exactly `state`; the next withdrawal index is `next_withdrawal_index`
/// when given (adopting another engine's state), else unchanged.
pub(crate) async fn set_forkchoice<C: ExecutionClient>(
    env: &WriteEnv<C>,
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

/// The primary's head, when it descends from `saved.head` on the primary's chain (the EL
/// applied a commit whose state file write was lost): the snapshot that adopts it.
async fn descendant_head<C: ExecutionClient>(
    env: &WriteEnv<C>,
    saved: &ForkchoiceSnapshot,
) -> Result<Option<ForkchoiceSnapshot>, EngineError> {
    let Some(head) = env
        .primary
        .call(|c| async move { c.block(BlockId::latest(), false).await })
        .await?
    else {
        return Ok(None);
    };
    if head.header.hash == saved.head || head.header.number <= saved.head_number {
        return Ok(None);
    }
    let number = saved.head_number;
    let ancestor = env
        .primary
        .call(|c| async move {
            c.block(BlockId::Number(BlockNumberOrTag::Number(number)), false)
                .await
        })
        .await?
        .map(|b| b.header.hash);
    if ancestor != Some(saved.head) {
        return Ok(None);
    }
    Ok(Some(ForkchoiceSnapshot {
        head: head.header.hash,
        head_number: head.header.number,
        head_timestamp: head.header.timestamp,
        next_withdrawal_index: head
            .withdrawals
            .as_ref()
            .and_then(|w| w.last())
            .map_or(saved.next_withdrawal_index, |w| {
                saved.next_withdrawal_index.max(w.index.saturating_add(1))
            }),
        ..*saved
    }))
}

/// Synchronise with the EL: reload the persisted forkchoice and re-announce it with one
/// forkchoiceUpdated (a client lacking the head is caught up first), follow the primary's head
/// when it descends from the persisted one (never rewind it), or adopt the EL's own head when
/// there is no saved state.
pub(crate) async fn initialize<C: ExecutionClient>(
    config: &std::sync::Arc<EngineConfig>,
    all: Vec<SessionLink<C>>,
    store: std::sync::Arc<PayloadStore>,
) -> Result<ForkchoiceSnapshot, EngineError> {
    let saved = load_persisted(config).await?;
    let env = WriteEnv::new(
        std::sync::Arc::clone(config),
        saved.unwrap_or_default(),
        all,
        None,
        store,
    )
    .ok_or_else(|| EngineError::Unavailable {
        reason: "no execution client session connected yet".into(),
    })?;
    if let Some(saved) = saved.filter(ForkchoiceSnapshot::is_initialized) {
        let (snapshot, how) = match descendant_head(&env, &saved).await? {
            Some(adopted) => {
                warn!(persisted = %saved.head, persisted_number = saved.head_number, adopted = %adopted.head, number = adopted.head_number, "the execution client's head descends from the persisted head: following it (a commit was applied after the state file was last written)");
                persist(config, adopted).await?;
                (adopted, "followed the execution client's newer head")
            }
            None => (saved, "reloaded persisted forkchoice"),
        };
        let state = ForkchoiceState {
            head_block_hash: snapshot.head,
            safe_block_hash: snapshot.safe,
            finalized_block_hash: snapshot.finalized,
        };
        forkchoice_everywhere(&env, state, snapshot.head).await?;
        info!(head = %snapshot.head, number = snapshot.head_number, finalized = %snapshot.finalized, "{how} and re-announced it");
        return Ok(snapshot);
    }
    let tag = |t: BlockNumberOrTag| {
        env.primary
            .call(move |c| async move { c.block(BlockId::Number(t), false).await })
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
        // Carry on after the head's last peg-in (the EL keeps no running index).
        next_withdrawal_index: head
            .withdrawals
            .as_ref()
            .and_then(|w| w.last())
            .map_or(0, |w| w.index.saturating_add(1)),
    };
    persist(config, snapshot).await?;
    info!(head = %snapshot.head, number = snapshot.head_number, "adopted the execution client's head");
    Ok(snapshot)
}
