//! Moving finality forward and the head back: both aim at a block on the head's chain, no
//! older than the finalized one.

use alloy_eips::BlockId;
use alloy_primitives::B256;
use alloy_rpc_types_engine::ForkchoiceState;
use engine_clients::ExecutionClient;
use engine_types::EngineError;

use super::env::{
    Changes, WriteEnv, block_header, forkchoice_everywhere, persist, require_canonical,
};

/// The (number, timestamp) of `hash` after checking it can be the target of a finalize or
/// revert: known to the EL, not above the head, not older than the finalized block
/// (`past_finality` says why that is refused), and on the head's chain.
async fn checked_target<C: ExecutionClient>(
    env: &WriteEnv<C>,
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

/// forkchoiceUpdated(head, safe = finalized = hash) → persist.
pub(crate) async fn finalize<C: ExecutionClient>(
    env: &WriteEnv<C>,
    hash: B256,
) -> Result<((), Changes), EngineError> {
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
            finalized: Some(hash),
            ..Changes::default()
        },
    ))
}

/// forkchoiceUpdated(head = ancestor, safe = finalized) → the EL's head checked → persist. A
/// client may answer VALID and keep its head (Reth, see `Quirks::ignores_forkchoice_to_ancestor`):
/// then nothing changes and the error says so.
pub(crate) async fn revert<C: ExecutionClient>(
    env: &WriteEnv<C>,
    hash: B256,
) -> Result<((), Changes), EngineError> {
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
    let el_head = env
        .primary
        .call(|c| async move { c.block(BlockId::latest(), false).await })
        .await?
        .map(|b| b.header.hash)
        .unwrap_or_default();
    if el_head != hash {
        return Err(EngineError::HeadNotMoved {
            requested: hash,
            el_head,
            hint: env.primary.quirks().unwind_hint().to_owned(),
        });
    }
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
