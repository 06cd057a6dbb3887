//! `EngineSupervisor`: spawns the tree, restarts a failed child on its own (one-for-one) after
//! an exponential backoff, and gives up (escalates, with the reason) after too many restarts in
//! a window. [`EngineSystem`] is the running tree as callers hold it.
//!
//! | file | what |
//! |---|---|
//! | `restart.rs` | [`RestartPolicy`](restart::RestartPolicy): backoff and escalation |
//! | `system.rs` | [`EngineSystem`]: start, handle, metrics, shutdown |
//! | `test_hooks.rs` | (feature `test-hooks`) crashing or killing a child |

mod restart;
mod system;
#[cfg(feature = "test-hooks")]
mod test_hooks;

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use restart::{RestartDecision, RestartPolicy};
pub use system::EngineSystem;
use tokio::time::Instant;
use tracing::{error, info, warn};

use crate::{
    engine::{EngineActor, EngineArgs},
    poller::{CacheJanitor, HealthPoller, IntervalArgs, PollSessions, SweepCaches},
    session::{ClientSession, SessionArgs},
    wiring::Wiring,
    writer::{Writer, WriterArgs},
};

/// A child of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ChildKind {
    /// The EngineActor (reads, caches).
    Engine,
    /// The writer (every state change).
    Writer,
    /// The ClientSession of endpoint `n`.
    Session(usize),
    /// The HealthPoller.
    HealthPoller,
    /// The CacheJanitor.
    CacheJanitor,
}

impl ChildKind {
    /// The metric label (`engine_actor_restarts_total{child}`).
    const fn label(self) -> &'static str {
        match self {
            Self::Engine => "EngineActor",
            Self::Writer => "Writer",
            Self::Session(_) => "client_session",
            Self::HealthPoller => "HealthPoller",
            Self::CacheJanitor => "CacheJanitor",
        }
    }
}

impl fmt::Display for ChildKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(n) => write!(f, "ClientSession[{n}]"),
            other => f.write_str(other.label()),
        }
    }
}

/// Messages of the supervisor.
pub(crate) enum SupervisorMsg {
    /// Spawn `ChildKind` again (sent to itself after the backoff).
    Restart(ChildKind),
    /// Stop the writer (after the write in flight), then every other child, then itself.
    Shutdown(RpcReplyPort<()>),
    /// Restarts so far, per child.
    GetRestarts(RpcReplyPort<HashMap<ChildKind, u32>>),
    /// Test hook: make a child panic in its handler, or kill it (interrupting its handler).
    #[cfg(feature = "test-hooks")]
    Sabotage(ChildKind, test_hooks::Sabotage),
}

/// State of the supervisor.
pub(crate) struct SupervisorState {
    wiring: Arc<Wiring>,
    children: HashMap<ActorId, (ChildKind, ActorCell)>,
    policy: RestartPolicy,
    restarts: HashMap<ChildKind, u32>,
    stopping: bool,
}

/// The supervisor actor.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EngineSupervisor;

impl EngineSupervisor {
    async fn spawn_child(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        kind: ChildKind,
    ) -> Result<(), ActorProcessingErr> {
        let wiring = &state.wiring;
        let supervisor = myself.get_cell();
        let cell = match kind {
            ChildKind::Writer => {
                let args = WriterArgs {
                    config: Arc::clone(&wiring.config),
                    metrics: Arc::clone(&wiring.metrics),
                    sessions: wiring.sessions.clone(),
                    forkchoice: Arc::clone(&wiring.forkchoice),
                    status: Arc::clone(&wiring.writer_status),
                    engine: wiring.engine.subscribe(),
                    queued_writes: Arc::clone(&wiring.queued_writes),
                    store: Arc::clone(&wiring.store),
                };
                let (writer, _) = Actor::spawn_linked(None, Writer, args, supervisor).await?;
                wiring.writer.send_replace(Some(writer.clone()));
                writer.get_cell()
            }
            ChildKind::Engine => {
                let args = EngineArgs {
                    config: Arc::clone(&wiring.config),
                    sessions: wiring.sessions.clone(),
                    forkchoice: wiring.forkchoice.subscribe(),
                    writer_status: wiring.writer_status.subscribe(),
                    queued_writes: Arc::clone(&wiring.queued_writes),
                    events: wiring.events.clone(),
                    peg_outs: Arc::clone(&wiring.peg_outs),
                    metrics: Arc::clone(&wiring.metrics),
                    counters: Arc::clone(&wiring.cache_counters),
                };
                let (engine, _) = Actor::spawn_linked(None, EngineActor, args, supervisor).await?;
                wiring.engine.send_replace(Some(engine.clone()));
                engine.get_cell()
            }
            ChildKind::Session(n) => {
                let options = wiring
                    .client_options
                    .get(n)
                    .cloned()
                    .ok_or("no such endpoint")?;
                let status = wiring.sessions.sender(n).ok_or("no such endpoint")?;
                let health = wiring.config.health;
                let args = SessionArgs {
                    options,
                    status,
                    failure_threshold: health.failure_threshold,
                    open_for: Duration::from_millis(health.open_ms),
                };
                Actor::spawn_linked(None, ClientSession, args, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
            ChildKind::HealthPoller => {
                let args = IntervalArgs {
                    interval: Duration::from_millis(wiring.config.health.poll_interval_ms),
                    work: PollSessions {
                        sessions: wiring.sessions.clone(),
                    },
                };
                Actor::spawn_linked(None, HealthPoller::default(), args, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
            ChildKind::CacheJanitor => {
                let args = IntervalArgs {
                    interval: Duration::from_millis(wiring.config.cache.sweep_interval_ms),
                    work: SweepCaches {
                        engine: wiring.engine.subscribe(),
                        swept: 0,
                    },
                };
                Actor::spawn_linked(None, CacheJanitor::default(), args, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
        };
        state.children.insert(cell.get_id(), (kind, cell));
        Ok(())
    }

    fn child_exited(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        id: ActorId,
        why: String,
    ) {
        if let Some((kind, _)) = state.children.remove(&id) {
            Self::schedule_restart(myself, state, kind, why);
        }
    }

    /// Count a stop of `kind` and restart it after the backoff, or escalate.
    fn schedule_restart(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        kind: ChildKind,
        why: String,
    ) {
        if state.stopping {
            return;
        }
        match kind {
            ChildKind::Engine => drop(state.wiring.engine.send_replace(None)),
            ChildKind::Writer => drop(state.wiring.writer.send_replace(None)),
            _ => {}
        }
        match state.policy.on_stop(Instant::now()) {
            RestartDecision::Escalate { stops, window } => {
                let reason = format!(
                    "{kind} stopped {stops} times within {window:?} (limit {}); last: {why}",
                    state.wiring.config.supervision.max_restarts
                );
                error!(%reason, "engine supervisor escalating");
                state.wiring.escalation.send_replace(Some(reason.clone()));
                state
                    .wiring
                    .stop(format!("the engine supervisor gave up: {reason}"));
                state.stopping = true;
                myself.stop(Some(reason));
            }
            RestartDecision::After(delay) => {
                *state.restarts.entry(kind).or_default() += 1;
                state
                    .wiring
                    .metrics
                    .restarts
                    .with_label_values(&[kind.label()])
                    .inc();
                warn!(%kind, %why, ?delay, "restarting child");
                myself.send_after(delay, move || SupervisorMsg::Restart(kind));
            }
        }
    }

    #[cfg(feature = "test-hooks")]
    fn cell_of(state: &SupervisorState, kind: ChildKind) -> Option<ActorCell> {
        state
            .children
            .values()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| c.clone())
    }
}

/// Arguments of the supervisor.
pub(crate) struct SupervisorArgs {
    pub(crate) wiring: Arc<Wiring>,
}

impl Actor for EngineSupervisor {
    type Msg = SupervisorMsg;
    type State = SupervisorState;
    type Arguments = SupervisorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<SupervisorMsg>,
        args: SupervisorArgs,
    ) -> Result<SupervisorState, ActorProcessingErr> {
        Ok(SupervisorState {
            policy: RestartPolicy::new(args.wiring.config.supervision),
            wiring: args.wiring,
            children: HashMap::new(),
            restarts: HashMap::new(),
            stopping: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        for n in 0..state.wiring.client_options.len() {
            Self::spawn_child(&myself, state, ChildKind::Session(n)).await?;
        }
        Self::spawn_child(&myself, state, ChildKind::Engine).await?;
        Self::spawn_child(&myself, state, ChildKind::Writer).await?;
        Self::spawn_child(&myself, state, ChildKind::HealthPoller).await?;
        Self::spawn_child(&myself, state, ChildKind::CacheJanitor).await?;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<SupervisorMsg>,
        msg: SupervisorMsg,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupervisorMsg::Restart(kind) => {
                if state.stopping {
                    return Ok(());
                }
                if let Err(e) = Self::spawn_child(&myself, state, kind).await {
                    // A child that cannot even be spawned counts as another failure.
                    Self::schedule_restart(&myself, state, kind, format!("respawn failed: {e}"));
                } else {
                    info!(%kind, "child restarted");
                }
            }
            SupervisorMsg::Shutdown(reply) => {
                state.stopping = true;
                // No new writes; the one in flight finishes (a stop is handled between
                // messages), then the state file holds the last write.
                if let Some(writer) = state.wiring.writer.send_replace(None) {
                    let _ = writer
                        .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(30)))
                        .await;
                }
                state.wiring.stop("the engine was shut down".into());
                myself
                    .stop_children_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10)))
                    .await;
                let _ = reply.send(());
                myself.stop(Some("shutdown".into()));
            }
            SupervisorMsg::GetRestarts(reply) => {
                let _ = reply.send(state.restarts.clone());
            }
            #[cfg(feature = "test-hooks")]
            SupervisorMsg::Sabotage(kind, how) => {
                if let Some(cell) = Self::cell_of(state, kind) {
                    test_hooks::sabotage(&cell, kind, how);
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<SupervisorMsg>,
        event: SupervisionEvent,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        // Not ractor's default, which stops the supervisor when any child stops.
        match event {
            SupervisionEvent::ActorFailed(cell, err) => {
                Self::child_exited(
                    &myself,
                    state,
                    cell.get_id(),
                    format!("panicked or failed: {err}"),
                );
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                let why = reason.unwrap_or_else(|| "stopped".into());
                Self::child_exited(&myself, state, cell.get_id(), why);
            }
            _ => {}
        }
        Ok(())
    }
}
