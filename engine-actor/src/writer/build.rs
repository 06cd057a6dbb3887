//! Building payloads: the attributes a request turns into, the forkchoiceUpdated that starts a
//! build on every session, preparation ahead of the slot (a later identical build only calls
//! getPayload), and a getPayload hedged on a secondary when the primary cannot deliver in time.

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes, PayloadId};
use engine_clients::{BuiltPayload, ExecutionClient};
use engine_types::{BuildPayloadRequest, EngineError, withdrawals_from_peg_ins};
use futures_util::future::join_all;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::{
    catch_up::catch_up,
    env::{Changes, WriteEnv, block_header, forkchoice_everywhere, require_fcu_valid},
};
use crate::session::{SessionLink, is_connectivity_failure};

/// A build started on one session: which session, and the payload id it gave.
#[derive(Debug, Clone)]
pub(crate) struct SessionBuild {
    /// The session's position in the endpoint list.
    pub(crate) session: usize,
    /// Its payload id.
    pub(crate) payload_id: PayloadId,
}

/// A forkchoiceUpdated with attributes sent ahead of the slot, and what it was for.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    pub(crate) parent: B256,
    pub(crate) attributes: PayloadAttributes,
    /// The builds it started, in endpoint order (the primary's first, when it answered).
    pub(crate) builds: Vec<SessionBuild>,
    /// When the ELs started building.
    pub(crate) started: Instant,
}

impl Prepared {
    /// The payload id the first session gave (what `prepare_payload` answers).
    pub(crate) fn payload_id(&self) -> Option<PayloadId> {
        self.builds.first().map(|b| b.payload_id)
    }
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

/// forkchoiceUpdated(head = parent, attributes) on one session (caught up and asked again if it
/// lacks the parent) → its payload id.
async fn start_build_on<C: ExecutionClient>(
    env: &WriteEnv<C>,
    link: &SessionLink<C>,
    state: ForkchoiceState,
    attributes: &PayloadAttributes,
) -> Result<PayloadId, EngineError> {
    let parent = state.head_block_hash;
    let call = || {
        let attributes = attributes.clone();
        link.call(|c| async move { c.forkchoice_updated(state, Some(attributes)).await })
    };
    let mut updated = call().await?;
    if updated.payload_status.is_syncing()
        && catch_up(env, link, parent, env.secondary_budget(link))
            .await?
            .complete
    {
        updated = call().await?;
    }
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
                    link.quirks().build_on_ancestor_hint()
                }
            ),
        })
}

/// forkchoiceUpdated(head = parent, attributes) on every session, so each builds the slot and
/// a secondary can deliver it when the primary cannot. The first session that answered decides
/// success (a refusal there is the build's error); sessions that failed are left out.
async fn start_build<C: ExecutionClient>(
    env: &WriteEnv<C>,
    parent: B256,
    attributes: &PayloadAttributes,
) -> Result<Vec<SessionBuild>, EngineError> {
    let state = ForkchoiceState {
        head_block_hash: parent,
        safe_block_hash: env.snapshot.safe,
        finalized_block_hash: env.snapshot.finalized,
    };
    let calls = env
        .all
        .iter()
        .map(|link| start_build_on(env, link, state, attributes));
    let results = join_all(calls).await;
    let mut builds = Vec::new();
    let mut first_error = None;
    for (link, result) in env.all.iter().zip(results) {
        match result {
            Ok(payload_id) => builds.push(SessionBuild {
                session: link.index(),
                payload_id,
            }),
            // Only a session that could not be reached is passed over: a refusal from the
            // first one that answered is the answer.
            Err(e) if builds.is_empty() && !is_connectivity_failure(&e) => return Err(e),
            Err(e) => {
                warn!(session = link.index(), endpoint = link.endpoint(), error = %e, "this execution client could not start the build");
                first_error.get_or_insert(e);
            }
        }
    }
    if builds.is_empty() {
        return Err(first_error.unwrap_or_else(|| EngineError::Unavailable {
            reason: "no execution client session".into(),
        }));
    }
    Ok(builds)
}

/// getPayload from the first build; if that session fails to answer, from the next, and if it
/// has not answered after `recovery.hedge_after_ms`, from the next one too (the first answer
/// wins). One session: a plain getPayload.
async fn get_payload_hedged<C: ExecutionClient>(
    env: &WriteEnv<C>,
    builds: &[SessionBuild],
    timestamp: u64,
    root: Option<B256>,
) -> Result<BuiltPayload, EngineError> {
    let get = |build: &SessionBuild| {
        let session = build.session;
        let link = env.all.iter().find(|l| l.index() == session).cloned();
        let payload_id = build.payload_id;
        async move {
            let link = link.ok_or_else(|| EngineError::Unavailable {
                reason: format!("session {session} is no longer usable"),
            })?;
            link.call(move |c| async move { c.get_payload(payload_id, timestamp, root).await })
                .await
        }
    };
    let Some((first, rest)) = builds.split_first() else {
        return Err(EngineError::Unavailable {
            reason: "no build was started".into(),
        });
    };
    let primary = get(first);
    if rest.is_empty() {
        return primary.await;
    }
    tokio::pin!(primary);
    let early = tokio::select! {
        answer = &mut primary => Some(answer),
        () = tokio::time::sleep(env.config.recovery.hedge_after(env.config.slot_duration_ms)) => None,
    };
    match early {
        Some(Ok(built)) => Ok(built),
        Some(Err(e)) if !is_connectivity_failure(&e) => Err(e),
        Some(Err(e)) => {
            warn!(error = %e, "the primary could not deliver the payload; taking a secondary's");
            for build in rest {
                if let Ok(built) = get(build).await {
                    return Ok(built);
                }
            }
            Err(e)
        }
        None => {
            debug!("the primary is slow to deliver the payload; asking a secondary too");
            let secondary = get(&rest[0]);
            tokio::pin!(secondary);
            tokio::select! {
                answer = &mut primary => match answer {
                    Ok(built) => Ok(built),
                    Err(_) => secondary.await,
                },
                answer = &mut secondary => match answer {
                    Ok(built) => Ok(built),
                    Err(_) => primary.await,
                },
            }
        }
    }
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
    let started = Instant::now();
    let builds = start_build(env, parent, &attributes).await?;
    restore_head_after_build_on(env, parent).await?;
    let prepared = Prepared {
        parent,
        attributes,
        builds,
        started,
    };
    let payload_id = prepared
        .payload_id()
        .ok_or_else(|| EngineError::Unavailable {
            reason: "no build was started".into(),
        })?;
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
    let get_payload = |builds: Vec<SessionBuild>, build_started: Instant| async move {
        let_the_build_fill(env, build_started).await;
        get_payload_hedged(env, &builds, timestamp, root).await
    };
    let (built, preparation) = match &env.prepared {
        // The ELs have been building since the preparation: only getPayload is left to do.
        Some(p) if p.parent == parent && p.attributes == attributes => {
            match get_payload(p.builds.clone(), p.started).await {
                Ok(built) => (built, PreparationChange::Used),
                Err(EngineError::UnknownPayload { .. }) => {
                    debug!(payload_id = ?p.payload_id(), "prepared payload unknown to the EL; building afresh");
                    let build_started = Instant::now();
                    let builds = start_build(env, parent, &attributes).await?;
                    (
                        get_payload(builds, build_started).await?,
                        PreparationChange::UnknownToEl,
                    )
                }
                Err(e) => return Err(e),
            }
        }
        stale => {
            let build_started = Instant::now();
            let builds = start_build(env, parent, &attributes).await?;
            let change = if stale.is_some() {
                PreparationChange::Wasted
            } else {
                PreparationChange::None
            };
            (get_payload(builds, build_started).await?, change)
        }
    };
    env.store
        .insert(std::sync::Arc::new(built.execution_data.clone()));
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
