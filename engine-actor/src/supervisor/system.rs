//! [`EngineSystem`]: a running engine, the supervised tree plus the handle callers use.

use std::{collections::HashMap, fmt, sync::Arc, time::Duration};

use engine_clients::{ClientOptions, RpcObserver};
use engine_types::{EngineConfig, EngineError};
use ractor::{Actor, ActorRef};
use tokio::sync::{broadcast, watch};

use super::{ChildKind, EngineSupervisor, SupervisorArgs, SupervisorMsg};
use crate::{
    EngineHandle, WriterStatus,
    cache::CacheCounterSet,
    health::{HeadClock, Liveness, Readiness},
    metrics::Probe,
    metrics::{EngineMetrics, StatusCollector},
    pegout::PegOutLog,
    session::SessionSet,
    wiring::Wiring,
    writer::PayloadStore,
};

/// Capacity of the peg-out event channel (a subscriber further behind misses events; use
/// [`EngineHandle::peg_outs_from`] to miss none).
const EVENT_CAPACITY: usize = 1024;
/// Scanned blocks whose peg-outs a resuming subscriber can still get (a day of 2 s slots).
const PEG_OUT_HISTORY_BLOCKS: usize = 43_200;

/// A running engine: the supervised tree plus the handle callers use.
pub struct EngineSystem {
    handle: EngineHandle,
    wiring: Arc<Wiring>,
    supervisor: ActorRef<SupervisorMsg>,
    join: ractor::concurrency::JoinHandle<()>,
    head_clock: HeadClock,
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
        let startup = Duration::from_millis(config.health.startup_timeout_ms);
        let system = Self::spawn(config, client_options).await?;
        if let Err(e) = system.wait_until_ready(startup).await {
            system.shutdown().await;
            return Err(e);
        }
        Ok(system)
    }

    /// Spawn the tree and return at once; it connects and synchronises in the background
    /// (calls made meanwhile wait for it within their deadline, `status().initialized` says
    /// when it is done).
    pub async fn spawn(
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
        let metrics = Arc::new(EngineMetrics::new().map_err(|e| EngineError::Unavailable {
            reason: format!("cannot create metrics: {e}"),
        })?);
        let client_options = client_options
            .into_iter()
            .map(|o| o.with_observer(Arc::clone(&metrics) as Arc<dyn RpcObserver>))
            .collect::<Vec<_>>();
        let sessions = SessionSet::new(client_options.iter().map(|o| o.engine_url.clone()));
        let cache_counters = Arc::new(CacheCounterSet::default());
        let peg_outs = Arc::new(PegOutLog::new(PEG_OUT_HISTORY_BLOCKS));
        let collector = StatusCollector::new(
            sessions.clone(),
            Arc::clone(&cache_counters),
            Arc::clone(&peg_outs),
        )
        .map_err(|e| EngineError::Unavailable {
            reason: format!("cannot create the status metrics: {e}"),
        })?;
        metrics
            .registry()
            .register(Box::new(collector))
            .map_err(|e| EngineError::Unavailable {
                reason: format!("cannot register the status metrics: {e}"),
            })?;
        let store = Arc::new(PayloadStore::new(config.recovery.stored_payloads));
        let wiring = Arc::new(Wiring {
            config: Arc::new(config),
            client_options,
            sessions,
            forkchoice: Arc::new(watch::channel(None).0),
            writer_status: Arc::new(watch::channel(WriterStatus::default()).0),
            engine: Arc::new(watch::channel(None).0),
            writer: watch::channel(None).0,
            queued_writes: Default::default(),
            store,
            peg_outs: Arc::clone(&peg_outs),
            events: broadcast::channel(EVENT_CAPACITY).0,
            escalation: watch::channel(None).0,
            stopped: watch::channel(None).0,
            metrics: Arc::clone(&metrics),
            cache_counters,
        });
        let args = SupervisorArgs {
            wiring: Arc::clone(&wiring),
        };
        let (supervisor, join) = Actor::spawn(None, EngineSupervisor, args)
            .await
            .map_err(|e| EngineError::Unavailable {
                reason: format!("cannot start the engine supervisor: {e}"),
            })?;
        Ok(Self {
            handle: EngineHandle::new(Arc::clone(&wiring)),
            head_clock: HeadClock::follow(wiring.forkchoice.subscribe()),
            wiring,
            supervisor,
            join,
        })
    }

    /// Wait until the engine has synchronised with the EL, the supervisor gave up, or
    /// `timeout` passed.
    pub async fn wait_until_ready(&self, timeout: Duration) -> Result<(), EngineError> {
        let mut forkchoice = self.wiring.forkchoice.subscribe();
        let mut escalation = self.wiring.escalation.subscribe();
        let ready = async {
            tokio::select! {
                ready = forkchoice.wait_for(Option::is_some) => ready.map(drop).map_err(|_| None),
                gave_up = escalation.wait_for(Option::is_some) => {
                    Err(gave_up.ok().and_then(|r| r.clone()))
                }
            }
        };
        match tokio::time::timeout(timeout, ready).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(reason)) => Err(EngineError::Unavailable {
                reason: reason.unwrap_or_else(|| "the engine stopped".into()),
            }),
            Err(_) => {
                let why = self
                    .wiring
                    .writer_status
                    .borrow()
                    .init_error
                    .clone()
                    .or_else(|| {
                        self.wiring
                            .sessions
                            .statuses()
                            .iter()
                            .find_map(|s| s.last_error.clone())
                    })
                    .unwrap_or_else(|| "no answer".into());
                Err(EngineError::Unavailable {
                    reason: format!(
                        "the engine did not synchronise with the execution client within {timeout:?}: {why}"
                    ),
                })
            }
        }
    }

    /// The handle callers use (cheap to clone).
    pub fn handle(&self) -> EngineHandle {
        self.handle.clone()
    }

    /// This engine's metrics (its own Prometheus registry).
    pub fn metrics(&self) -> Arc<EngineMetrics> {
        Arc::clone(&self.wiring.metrics)
    }

    /// Whether the tree is alive (false once the supervisor gave up).
    pub fn liveness(&self) -> Liveness {
        Liveness::from_escalation(self.escalation())
    }

    /// Whether the engine can build and commit now, and why not.
    pub async fn readiness(&self) -> Readiness {
        readiness_of(&self.handle, &self.head_clock, &self.wiring.config).await
    }

    /// Serve the operations endpoint on `addr` (`127.0.0.1:0` picks a port): `GET /metrics`
    /// (Prometheus), `/livez` (200 while the tree runs, 503 once the supervisor gave up),
    /// `/readyz` (200 when the engine can build and commit now, else 503 with the reasons) and
    /// `/status` (everything [`EngineHandle::status`] reports), the last three as JSON.
    /// Returns the bound address; the server stops when the returned task is aborted.
    pub async fn serve_metrics(
        &self,
        addr: std::net::SocketAddr,
    ) -> Result<(std::net::SocketAddr, tokio::task::JoinHandle<()>), EngineError> {
        let handle = self.handle.clone();
        let escalation = self.wiring.escalation.subscribe();
        let clock = self.head_clock.clone();
        let config = Arc::clone(&self.wiring.config);
        let probe: Probe = Arc::new(move |path: String| {
            let (handle, clock, config) = (handle.clone(), clock.clone(), Arc::clone(&config));
            let escalation = escalation.borrow().clone();
            Box::pin(async move { probe(&handle, &clock, &config, escalation, &path).await })
        });
        crate::metrics::serve(addr, self.metrics(), probe).await
    }

    /// Why the supervisor gave up, if it did.
    pub fn escalation(&self) -> Option<String> {
        self.wiring.escalation.borrow().clone()
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

    /// Test hook: make `kind` panic in its message handler (the writer between writes).
    #[cfg(feature = "test-hooks")]
    pub fn crash_child(&self, kind: ChildKind) {
        let _ = self.supervisor.cast(SupervisorMsg::Sabotage(
            kind,
            super::test_hooks::Sabotage::Panic,
        ));
    }

    /// Test hook: kill `kind` at once, interrupting whatever its handler is doing (a write in
    /// flight included).
    #[cfg(feature = "test-hooks")]
    pub fn kill_child(&self, kind: ChildKind) {
        let _ = self.supervisor.cast(SupervisorMsg::Sabotage(
            kind,
            super::test_hooks::Sabotage::Kill,
        ));
    }

    /// Wait until the supervisor has stopped (after [`EngineSystem::shutdown`] or an
    /// escalation).
    pub async fn wait_stopped(self) {
        let _ = self.join.await;
    }

    /// Graceful shutdown through a shared reference (an engine held in an `Arc`): no new
    /// writes, the write in flight finishes, every child stops; returns when the supervisor
    /// has stopped them. [`EngineSystem::shutdown`] also waits for the supervisor's task.
    pub async fn stop(&self) {
        let _ = self
            .supervisor
            .call(SupervisorMsg::Shutdown, Some(Duration::from_secs(45)))
            .await;
    }

    /// Graceful shutdown: no new writes, the write in flight finishes, then every child and the
    /// supervisor stop.
    pub async fn shutdown(self) {
        let _ = self
            .supervisor
            .call(SupervisorMsg::Shutdown, Some(Duration::from_secs(45)))
            .await;
        let _ = self.join.await;
    }
}

/// How long `/readyz` and `/status` wait for the engine's status before answering 503.
const PROBE_DEADLINE: Duration = Duration::from_secs(2);

/// Readiness from the engine's status; unready with the reason when the status cannot be read.
async fn readiness_of(
    handle: &EngineHandle,
    clock: &HeadClock,
    config: &EngineConfig,
) -> Readiness {
    let slots = u32::try_from(config.recovery.ready_max_head_age_slots).unwrap_or(u32::MAX);
    let max_head_age = (slots > 0).then(|| config.slot_duration().saturating_mul(slots));
    match tokio::time::timeout(PROBE_DEADLINE, handle.status()).await {
        Ok(Ok(status)) => Readiness::from_status(&status, clock.age(), max_head_age),
        Ok(Err(e)) => Readiness::unavailable(format!("status unavailable: {e}")),
        Err(_) => Readiness::unavailable(format!(
            "the engine did not report its status within {PROBE_DEADLINE:?}"
        )),
    }
}

/// The answer of the operations endpoint for `path` (besides `/metrics`).
async fn probe(
    handle: &EngineHandle,
    clock: &HeadClock,
    config: &EngineConfig,
    escalation: Option<String>,
    path: &str,
) -> Option<(hyper::StatusCode, String)> {
    use hyper::StatusCode;
    let json = |ok: bool, body: Result<String, serde_json::Error>| match body {
        Ok(body) if ok => (StatusCode::OK, body),
        Ok(body) => (StatusCode::SERVICE_UNAVAILABLE, body),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{{\"error\":\"cannot encode the answer: {e}\"}}"),
        ),
    };
    match path {
        "/livez" => {
            let live = Liveness::from_escalation(escalation);
            Some(json(live.live, serde_json::to_string(&live)))
        }
        "/readyz" => {
            let ready = readiness_of(handle, clock, config).await;
            Some(json(ready.ready, serde_json::to_string(&ready)))
        }
        "/status" => Some(
            match tokio::time::timeout(PROBE_DEADLINE, handle.status()).await {
                Ok(Ok(status)) => {
                    // The status, with the head's age beside the forkchoice.
                    let body = serde_json::to_value(&status).map(|mut v| {
                        let age = u64::try_from(clock.age().as_millis()).unwrap_or(u64::MAX);
                        v["head_age_ms"] = serde_json::Value::from(age);
                        v.to_string()
                    });
                    json(true, body)
                }
                Ok(Err(e)) => json(false, Ok(serde_json::json!({ "error": e.to_string() }).to_string())),
                Err(_) => json(
                    false,
                    Ok(serde_json::json!({ "error": format!("no status within {PROBE_DEADLINE:?}") })
                        .to_string()),
                ),
            },
        ),
        _ => None,
    }
}
