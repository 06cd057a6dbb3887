//! Building payloads: the attributes a request turns into, the forkchoiceUpdated that starts a
//! build, and preparation ahead of the slot (a later identical build only calls getPayload).

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes, PayloadId};
use engine_clients::{BuiltPayload, ExecutionClient};
use engine_types::{BuildPayloadRequest, EngineError, withdrawals_from_peg_ins};
use tokio::time::Instant;
use tracing::debug;

use super::env::{Changes, WriteEnv, block_header, forkchoice_everywhere, require_fcu_valid};

/// A forkchoiceUpdated with attributes sent ahead of the slot, and what it was for.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) parent: B256,
    pub(crate) attributes: PayloadAttributes,
    pub(crate) payload_id: PayloadId,
    /// When the EL started building it.
    pub(crate) started: Instant,
}

/// What a write did to the preparation.
#[derive(Debug)]
pub(crate) enum PreparationChange {
    /// A new preparation (replacing any older one, which is then wasted).
    Made(Box<Prepared>),
    /// The build used the preparation.
    Used,
    /// The build matched, but the EL no longer knew the payload (-38001): built afresh.
    UnknownToEl,
    /// The build did not match (e.g. peg-ins changed): the preparation was dropped.
    Wasted,
    /// There was no preparation.
    None,
}

impl PreparationChange {
    /// The metric label of the outcome (`None` when there was nothing to count).
    pub(crate) const fn label(&self) -> Option<&'static str> {
        match self {
            Self::Made(_) => Some("made"),
            Self::Used => Some("used"),
            Self::UnknownToEl => Some("unknown_to_el"),
            Self::Wasted => Some("wasted"),
            Self::None => None,
        }
    }
}

/// The attributes a build request turns into, the same way for preparing and building, so a
/// preparation matches its build exactly when the caller asked for the same thing.
pub(crate) async fn attributes_for<C: ExecutionClient>(
    env: &WriteEnv<C>,
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
    let withdrawals = withdrawals_from_peg_ins(&req.peg_ins, env.snapshot.next_withdrawal_index);
    let mut attributes = PayloadAttributes {
        timestamp: req.timestamp,
        suggested_fee_recipient: req.fee_recipient.unwrap_or(env.config.fee_recipient),
        ..PayloadAttributes::default()
    }
    .with_withdrawals(withdrawals);
    if fork.has_blob_fields() {
        attributes = attributes
            .with_parent_beacon_block_root(req.parent_beacon_block_root.unwrap_or_default());
    }
    Ok((parent, attributes))
}

/// forkchoiceUpdated(head = parent, attributes) on the primary → the payload id.
async fn start_build<C: ExecutionClient>(
    env: &WriteEnv<C>,
    parent: B256,
    attributes: PayloadAttributes,
) -> Result<PayloadId, EngineError> {
    let state = ForkchoiceState {
        head_block_hash: parent,
        safe_block_hash: env.snapshot.safe,
        finalized_block_hash: env.snapshot.finalized,
    };
    let updated = env
        .primary
        .call(|c| async move { c.forkchoice_updated(state, Some(attributes)).await })
        .await?;
    require_fcu_valid(&updated, parent)?;
    updated
        .payload_id
        .ok_or_else(|| EngineError::MissingInResponse {
            method: "engine_forkchoiceUpdated".into(),
            missing: format!(
                "a payload id for the build on {parent}{}",
                if parent == env.snapshot.head {
                    ""
                } else {
                    env.primary.quirks().build_on_ancestor_hint()
                }
            ),
        })
}

/// A build on another block than the engine's head made that block the EL's head (that is
/// what a forkchoiceUpdated does): announce the engine's forkchoice again, so the EL's head is
/// the engine's once more.
async fn restore_head_after_build_on<C: ExecutionClient>(
    env: &WriteEnv<C>,
    parent: B256,
) -> Result<(), EngineError> {
    if parent == env.snapshot.head || !env.snapshot.is_initialized() {
        return Ok(());
    }
    let state = ForkchoiceState {
        head_block_hash: env.snapshot.head,
        safe_block_hash: env.snapshot.safe,
        finalized_block_hash: env.snapshot.finalized,
    };
    forkchoice_everywhere(env, state, env.snapshot.head).await?;
    Ok(())
}

/// Start building for `req` now; the payload id is remembered for the build at slot time.
pub(crate) async fn prepare<C: ExecutionClient>(
    env: &WriteEnv<C>,
    req: BuildPayloadRequest,
) -> Result<(PayloadId, Changes), EngineError> {
    let (parent, attributes) = attributes_for(env, &req).await?;
    let payload_id = start_build(env, parent, attributes.clone()).await?;
    restore_head_after_build_on(env, parent).await?;
    let prepared = Prepared {
        parent,
        attributes,
        payload_id,
        started: Instant::now(),
    };
    Ok((
        payload_id,
        Changes {
            preparation: Some(PreparationChange::Made(Box::new(prepared))),
            ..Changes::default()
        },
    ))
}

/// On a client whose getPayload stops the build (Geth's first block is empty), leave it the
/// configured fill time since `build_started` before asking; other clients wait themselves.
async fn let_the_build_fill<C: ExecutionClient>(env: &WriteEnv<C>, build_started: Instant) {
    if env.primary.quirks().get_payload_stops_build {
        tokio::time::sleep_until(build_started + env.config.build_fill()).await;
    }
}

/// forkchoiceUpdated with attributes → getPayload on the primary, or only getPayload when a
/// preparation for exactly this parent and these attributes exists.
pub(crate) async fn build<C: ExecutionClient>(
    env: &WriteEnv<C>,
    req: BuildPayloadRequest,
) -> Result<(BuiltPayload, Changes), EngineError> {
    let started = Instant::now();
    let (parent, attributes) = attributes_for(env, &req).await?;
    let root = attributes.parent_beacon_block_root;
    let timestamp = req.timestamp;
    let get_payload = |payload_id: PayloadId, build_started: Instant| async move {
        let_the_build_fill(env, build_started).await;
        env.primary
            .call(move |c| async move { c.get_payload(payload_id, timestamp, root).await })
            .await
    };
    let (built, preparation) = match &env.prepared {
        // The EL has been building since the preparation: only getPayload is left to do.
        Some(p) if p.parent == parent && p.attributes == attributes => {
            match get_payload(p.payload_id, p.started).await {
                Ok(built) => (built, PreparationChange::Used),
                Err(EngineError::UnknownPayload { .. }) => {
                    debug!(payload_id = %p.payload_id, "prepared payload unknown to the EL; building afresh");
                    let build_started = Instant::now();
                    let id = start_build(env, parent, attributes).await?;
                    (
                        get_payload(id, build_started).await?,
                        PreparationChange::UnknownToEl,
                    )
                }
                Err(e) => return Err(e),
            }
        }
        stale => {
            let build_started = Instant::now();
            let id = start_build(env, parent, attributes).await?;
            let change = if stale.is_some() {
                PreparationChange::Wasted
            } else {
                PreparationChange::None
            };
            (get_payload(id, build_started).await?, change)
        }
    };
    restore_head_after_build_on(env, parent).await?;
    // The withdrawal index follows the committed chain (see `commit`), not builds: building
    // the same slot twice gives the same block, and another engine adopting this one's state
    // mid-slot gets the index the slot's build used.
    let changes = Changes {
        built: Some(built.clone()),
        build_latency: Some((
            matches!(preparation, PreparationChange::Used),
            started.elapsed(),
        )),
        preparation: Some(preparation),
        ..Changes::default()
    };
    Ok((built, changes))
}
