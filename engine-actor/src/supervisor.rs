//! `EngineSupervisor`: spawns the tree, restarts a failed child on its own (one-for-one) after
//! an exponential backoff, and gives up (escalates, with the reason) after too many restarts in
//! a window.

use std::{
    collections::{HashMap, VecDeque},
    fmt,
    sync::Arc,
    time::Duration,
};

use engine_clients::ClientOptions;
use engine_types::{EngineConfig, EngineError};
use ractor::{
    Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent,
};
use tokio::{
    sync::{broadcast, watch},
    time::Instant,
};
use tracing::{error, info, warn};

use crate::{
    engine::{EngineActor, EngineArgs},
    handle::EngineHandle,
    messages::{EngineEvent, EngineMsg, EngineRef},
    metrics::EngineMetrics,
    poller::{CacheJanitor, CacheJanitorArgs, HealthPoller, HealthPollerArgs, TickMsg},
    session::{ClientSession, SessionArgs, SessionMsg, SessionStatus},
};

/// A child of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChildKind {
    /// The EngineActor.
    Engine,
    /// The ClientSession of endpoint `n`.
    Session(usize),
    /// The HealthPoller.
    HealthPoller,
    /// The CacheJanitor.
    CacheJanitor,
}

impl fmt::Display for ChildKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Engine => f.write_str("EngineActor"),
            Self::Session(n) => write!(f, "ClientSession[{n}]"),
            Self::HealthPoller => f.write_str("HealthPoller"),
            Self::CacheJanitor => f.write_str("CacheJanitor"),
        }
    }
}

/// Messages of the supervisor.
pub enum SupervisorMsg {
    /// Spawn `ChildKind` again (sent to itself after the backoff).
    Restart(ChildKind),
    /// Stop every child, wait for them, then stop.
    Shutdown(RpcReplyPort<()>),
    /// Restarts so far, per child.
    GetRestarts(RpcReplyPort<HashMap<ChildKind, u32>>),
    /// Test hook: make a child panic.
    #[doc(hidden)]
    CrashChild(ChildKind),
}

/// Everything shared between the supervisor, its children and the handle.
struct Shared {
    config: Arc<EngineConfig>,
    client_options: Vec<ClientOptions>,
    sessions: Vec<Arc<watch::Sender<SessionStatus>>>,
    engine: Arc<watch::Sender<Option<EngineRef>>>,
    events: broadcast::Sender<EngineEvent>,
    escalation: Arc<watch::Sender<Option<String>>>,
    metrics: Arc<EngineMetrics>,
    /// Orders the EL/state-file writes of successive EngineActors (see [`EngineArgs`]).
    write_lock: Arc<tokio::sync::Mutex<()>>,
}

/// State of the supervisor.
pub struct SupervisorState {
    shared: Shared,
    children: HashMap<ActorId, (ChildKind, ActorCell)>,
    recent_restarts: VecDeque<Instant>,
    restarts: HashMap<ChildKind, u32>,
    stopping: bool,
}

/// The supervisor actor.
#[derive(Debug, Default, Clone, Copy)]
pub struct EngineSupervisor;

impl EngineSupervisor {
    async fn spawn_child(
        myself: &ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
        kind: ChildKind,
    ) -> Result<(), ActorProcessingErr> {
        let shared = &state.shared;
        let supervisor = myself.get_cell();
        let cell = match kind {
            ChildKind::Engine => {
                let args = EngineArgs {
                    config: Arc::clone(&shared.config),
                    sessions: shared.sessions.iter().map(|s| s.subscribe()).collect(),
                    events: shared.events.clone(),
                    metrics: Arc::clone(&shared.metrics),
                    write_lock: Arc::clone(&shared.write_lock),
                };
                let (engine, _) = Actor::spawn_linked(None, EngineActor, args, supervisor).await?;
                shared.engine.send_replace(Some(engine.clone()));
                engine.get_cell()
            }
            ChildKind::Session(n) => {
                let options = shared
                    .client_options
                    .get(n)
                    .cloned()
                    .ok_or("no such endpoint")?;
                let status = shared.sessions.get(n).cloned().ok_or("no such endpoint")?;
                let health = shared.config.health;
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
                let args = HealthPollerArgs {
                    interval: Duration::from_millis(shared.config.health.poll_interval_ms),
                    sessions: shared.sessions.iter().map(|s| s.subscribe()).collect(),
                };
                Actor::spawn_linked(None, HealthPoller, args, supervisor)
                    .await?
                    .0
                    .get_cell()
            }
            ChildKind::CacheJanitor => {
                let args = CacheJanitorArgs {
                    interval: Duration::from_millis(shared.config.cache.sweep_interval_ms),
                    engine: shared.engine.subscribe(),
                };
                Actor::spawn_linked(None, CacheJanitor, args, supervisor)
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
        if kind == ChildKind::Engine {
            state.shared.engine.send_replace(None);
        }
        let policy = state.shared.config.supervision;
        let now = Instant::now();
        let window = Duration::from_millis(policy.window_ms);
        state.recent_restarts.push_back(now);
        while state
            .recent_restarts
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            state.recent_restarts.pop_front();
        }
        let recent = state.recent_restarts.len() as u32;
        if recent > policy.max_restarts {
            let reason = format!(
                "{kind} stopped {recent} times within {window:?} (limit {}); last: {why}",
                policy.max_restarts
            );
            error!(%reason, "engine supervisor escalating");
            state.shared.escalation.send_replace(Some(reason.clone()));
            state.stopping = true;
            myself.stop(Some(reason));
            return;
        }
        *state.restarts.entry(kind).or_default() += 1;
        let child = match kind {
            ChildKind::Session(_) => "client_session".to_owned(),
            other => other.to_string(),
        };
        state
            .shared
            .metrics
            .restarts
            .with_label_values(&[child.as_str()])
            .inc();
        let exponent = recent.saturating_sub(1).min(16);
        let delay = Duration::from_millis(policy.backoff_initial_ms.saturating_mul(1 << exponent))
            .min(Duration::from_millis(policy.backoff_max_ms));
        warn!(%kind, %why, ?delay, "restarting child");
        myself.send_after(delay, move || SupervisorMsg::Restart(kind));
    }

    fn cell_of(state: &SupervisorState, kind: ChildKind) -> Option<ActorCell> {
        state
            .children
            .values()
            .find(|(k, _)| *k == kind)
            .map(|(_, c)| c.clone())
    }
}

/// Arguments of the supervisor.
pub struct SupervisorArgs {
    shared: Shared,
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
            shared: args.shared,
            children: HashMap::new(),
            recent_restarts: VecDeque::new(),
            restarts: HashMap::new(),
            stopping: false,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<SupervisorMsg>,
        state: &mut SupervisorState,
    ) -> Result<(), ActorProcessingErr> {
        for n in 0..state.shared.client_options.len() {
            Self::spawn_child(&myself, state, ChildKind::Session(n)).await?;
        }
        Self::spawn_child(&myself, state, ChildKind::Engine).await?;
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
                state.shared.engine.send_replace(None);
                myself
                    .stop_children_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10)))
                    .await;
                let _ = reply.send(());
                myself.stop(Some("shutdown".into()));
            }
            SupervisorMsg::GetRestarts(reply) => {
                let _ = reply.send(state.restarts.clone());
            }
            SupervisorMsg::CrashChild(kind) => {
                if let Some(cell) = Self::cell_of(state, kind) {
                    let _ = match kind {
                        ChildKind::Engine => cell.send_message(EngineMsg::Crash).map_err(|_| ()),
                        ChildKind::Session(_) => {
                            cell.send_message(SessionMsg::Crash).map_err(|_| ())
                        }
                        ChildKind::HealthPoller | ChildKind::CacheJanitor => {
                            cell.send_message(TickMsg::Crash).map_err(|_| ())
                        }
                    };
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

/// A running engine: the supervised tree plus the handle callers use.
pub struct EngineSystem {
    handle: EngineHandle,
    supervisor: ActorRef<SupervisorMsg>,
    join: ractor::concurrency::JoinHandle<()>,
    escalation: watch::Receiver<Option<String>>,
    metrics: Arc<EngineMetrics>,
}

impl fmt::Debug for EngineSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineSystem")
            .field("supervisor", &self.supervisor.get_id())
            .finish_non_exhaustive()
    }
}

impl EngineSystem {
    /// Validate `config`, load the JWT secrets, spawn the tree and wait (up to
    /// `health.startup_timeout_ms`) until the engine has synchronised with the EL.
    ///
    /// Errors name what is wrong: a bad key, an unreadable secret file, or why no execution
    /// client could be reached (then the tree is stopped again).
    pub async fn start(config: EngineConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let client_options = config
            .endpoints
            .iter()
            .map(|ep| ClientOptions::from_config(&config, ep))
            .collect::<Result<Vec<_>, _>>()?;
        Self::start_with_options(config, client_options).await
    }

    /// Like [`EngineSystem::start`] with client options built by the caller (e.g. a secret
    /// held in memory); there is one session per entry of `client_options`.
    pub async fn start_with_options(
        config: EngineConfig,
        client_options: Vec<ClientOptions>,
    ) -> Result<Self, EngineError> {
        config.validate()?;
        if client_options.is_empty() {
            return Err(EngineError::config(
                "endpoints",
                "no execution client endpoint configured",
            ));
        }
        let startup = Duration::from_millis(config.health.startup_timeout_ms);
        let metrics = Arc::new(EngineMetrics::new().map_err(|e| EngineError::Unavailable {
            reason: format!("cannot create metrics: {e}"),
        })?);
        let client_options = client_options
            .into_iter()
            .map(|o| o.with_observer(Arc::clone(&metrics) as Arc<dyn engine_clients::RpcObserver>))
            .collect::<Vec<_>>();
        let (engine_tx, engine_rx) = watch::channel(None);
        let (escalation_tx, escalation_rx) = watch::channel(None);
        let (events, _) = broadcast::channel(1024);
        let sessions = client_options
            .iter()
            .enumerate()
            .map(|(i, o)| Arc::new(watch::channel(SessionStatus::new(i, o.engine_url.clone())).0))
            .collect();
        let shared = Shared {
            config: Arc::new(config),
            client_options,
            sessions,
            engine: Arc::new(engine_tx),
            events: events.clone(),
            escalation: Arc::new(escalation_tx),
            metrics: Arc::clone(&metrics),
            write_lock: Arc::new(tokio::sync::Mutex::new(())),
        };
        let (supervisor, join) = Actor::spawn(None, EngineSupervisor, SupervisorArgs { shared })
            .await
            .map_err(|e| EngineError::Unavailable {
                reason: format!("cannot start the engine supervisor: {e}"),
            })?;
        let handle = EngineHandle::new(engine_rx, events, Arc::clone(&metrics));
        let system = Self {
            handle,
            supervisor,
            join,
            escalation: escalation_rx,
            metrics,
        };
        if let Err(e) = system.wait_until_ready(startup).await {
            system.shutdown().await;
            return Err(e);
        }
        Ok(system)
    }

    async fn wait_until_ready(&self, timeout: Duration) -> Result<(), EngineError> {
        let deadline = Instant::now() + timeout;
        let mut last = None;
        while Instant::now() < deadline {
            if let Some(reason) = self.escalation() {
                return Err(EngineError::Unavailable { reason });
            }
            match self.handle.status().await {
                Ok(status) if status.initialized => return Ok(()),
                Ok(status) => {
                    last = status.sessions.iter().find_map(|s| s.last_error.clone());
                }
                Err(e) => last = Some(e.to_string()),
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        Err(EngineError::Unavailable {
            reason: format!(
                "the engine did not synchronise with the execution client within {timeout:?}: {}",
                last.unwrap_or_else(|| "no answer".into())
            ),
        })
    }

    /// The handle callers use (cheap to clone).
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// This engine's metrics (its own Prometheus registry).
    pub fn metrics(&self) -> Arc<EngineMetrics> {
        Arc::clone(&self.metrics)
    }

    /// Serve `GET /metrics` on `addr` (`127.0.0.1:0` picks a port); returns the bound address.
    /// The server stops when the returned task is aborted.
    pub async fn serve_metrics(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), EngineError> {
        crate::metrics::serve(addr, self.metrics(), self.handle()).await
    }

    /// The supervisor, e.g. to link it under the node's own supervisor.
    pub const fn supervisor(&self) -> &ActorRef<SupervisorMsg> {
        &self.supervisor
    }

    /// Why the supervisor gave up, if it did.
    pub fn escalation(&self) -> Option<String> {
        self.escalation.borrow().clone()
    }

    /// Restarts so far, per child.
    pub async fn restarts(&self) -> HashMap<ChildKind, u32> {
        match self
            .supervisor
            .call(SupervisorMsg::GetRestarts, Some(Duration::from_secs(5)))
            .await
        {
            Ok(ractor::rpc::CallResult::Success(r)) => r,
            _ => HashMap::new(),
        }
    }

    /// Test hook: make a child panic.
    #[doc(hidden)]
    pub fn crash_child(&self, kind: ChildKind) {
        let _ = self.supervisor.cast(SupervisorMsg::CrashChild(kind));
    }

    /// Wait until the supervisor has stopped (after [`EngineSystem::shutdown`] or an
    /// escalation).
    pub async fn wait_stopped(self) {
        let _ = self.join.await;
    }

    /// Graceful shutdown: stop every child, wait for them, then the supervisor.
    pub async fn shutdown(self) {
        let _ = self
            .supervisor
            .call(SupervisorMsg::Shutdown, Some(Duration::from_secs(15)))
            .await;
        let _ = self.join.await;
    }
}
