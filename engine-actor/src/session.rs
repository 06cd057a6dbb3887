//! `ClientSession`: one per execution-client endpoint. Owns the authenticated client, its
//! capabilities and identity, and a circuit breaker; runs every call in a spawned task and the
//! caller gets the answer directly, so the session's mailbox never waits on the network.

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use engine_clients::{
    Capabilities, ClientOptions, ExecutionClient, HttpExecutionClient, SyncState,
};
use engine_types::{ClientIdentity, EngineError};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use serde::Serialize;
use tokio::sync::{oneshot, watch};
use tracing::{Instrument, debug, info, warn};

use crate::breaker::{CircuitBreaker, CircuitState};

/// A reference to a session actor.
pub type SessionRef = ActorRef<SessionMsg>;

/// The client a session hands to a job.
pub type SessionClient = Arc<HttpExecutionClient>;

/// A unit of IO run against a session's client. It receives the client (or why there is
/// none) and reports whether it failed for connectivity reasons (for the circuit breaker).
pub type SessionJob = Box<
    dyn FnOnce(Result<SessionClient, EngineError>) -> Pin<Box<dyn Future<Output = bool> + Send>>
        + Send,
>;

/// What a session publishes about itself (read by the EngineActor, the handle and status).
#[derive(Debug, Clone, Serialize)]
pub struct SessionStatus {
    /// Position in the configured endpoint list (0 is the primary).
    pub index: usize,
    /// Engine API URL.
    pub endpoint: String,
    /// The running session actor, if any.
    #[serde(skip)]
    pub actor: Option<SessionRef>,
    /// Whether `connect()` succeeded.
    pub connected: bool,
    /// Who the client is.
    pub identity: ClientIdentity,
    /// What it supports.
    pub capabilities: Capabilities,
    /// Circuit breaker position.
    pub circuit: CircuitState,
    /// Circuit breaker state changes so far.
    pub circuit_transitions: u64,
    /// Last `eth_syncing` answer.
    pub sync: Option<SyncState>,
    /// Last connectivity error.
    pub last_error: Option<String>,
}

impl SessionStatus {
    /// Initial status of endpoint `index`.
    pub fn new(index: usize, endpoint: String) -> Self {
        Self {
            index,
            endpoint,
            actor: None,
            connected: false,
            identity: ClientIdentity::default(),
            capabilities: Capabilities::unknown(),
            circuit: CircuitState::Closed,
            circuit_transitions: 0,
            sync: None,
            last_error: None,
        }
    }

    /// Usable for calls: running, connected, breaker not open, not known to be syncing.
    pub fn is_healthy(&self) -> bool {
        self.actor.is_some()
            && self.connected
            && self.circuit != CircuitState::Open
            && self.sync.is_none_or(|s| s.is_synced())
    }
}

/// Messages of a [`ClientSession`].
pub enum SessionMsg {
    /// Run a job against the client.
    Run(SessionJob),
    /// A job finished; `failed` means a connectivity failure.
    Outcome {
        /// Connectivity failure?
        failed: bool,
    },
    /// (Re)connect: exchange capabilities and identify the client.
    Connect,
    /// Connection attempt finished.
    Connected(Result<SessionClient, EngineError>),
    /// Health poll: `eth_syncing` and `engine_exchangeCapabilities`.
    Poll,
    /// Health poll finished.
    Polled(Result<(SyncState, Capabilities), EngineError>),
    /// Test hook: panic inside the handler (supervision tests).
    #[doc(hidden)]
    Crash,
}

/// Construction arguments of a session.
pub struct SessionArgs {
    /// Client options (URL, secret, versions, timeouts).
    pub options: ClientOptions,
    /// Where the session publishes its status.
    pub status: Arc<watch::Sender<SessionStatus>>,
    /// Consecutive connectivity failures that open the breaker.
    pub failure_threshold: u32,
    /// How long the breaker stays open.
    pub open_for: Duration,
}

/// State of a running session.
pub struct SessionState {
    options: ClientOptions,
    status: Arc<watch::Sender<SessionStatus>>,
    client: Option<SessionClient>,
    breaker: CircuitBreaker,
    connecting: bool,
}

/// The session actor.
#[derive(Debug, Default, Clone, Copy)]
pub struct ClientSession;

/// Whether an error means the endpoint is unreachable or misbehaving (counts against the
/// breaker), as opposed to an answer the EL chose to give.
pub fn is_connectivity_failure(e: &EngineError) -> bool {
    matches!(
        e,
        EngineError::Transport { .. }
            | EngineError::Timeout { .. }
            | EngineError::Decode { .. }
            | EngineError::Auth { .. }
    )
}

/// Run `f` on `session`'s client and wait for the answer. Errors if the session is gone, not
/// connected, or its breaker is open.
pub async fn run_on<T, F, Fut>(session: &SessionRef, f: F) -> Result<T, EngineError>
where
    T: Send + 'static,
    F: FnOnce(SessionClient) -> Fut + Send + 'static,
    Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
{
    let (tx, rx) = oneshot::channel();
    // The session runs the job in its own task: carry the caller's span there.
    let span = tracing::Span::current();
    let job: SessionJob = Box::new(move |client| {
        Box::pin(async move {
            let result = match client {
                Ok(c) => f(c).instrument(span).await,
                Err(e) => Err(e),
            };
            let failed = result.as_ref().err().is_some_and(is_connectivity_failure);
            let _ = tx.send(result);
            failed
        })
    });
    session
        .cast(SessionMsg::Run(job))
        .map_err(|_| EngineError::Unavailable {
            reason: "the client session stopped".into(),
        })?;
    rx.await.map_err(|_| EngineError::Unavailable {
        reason: "the client session dropped the call".into(),
    })?
}

impl ClientSession {
    fn publish(state: &SessionState, f: impl FnOnce(&mut SessionStatus)) {
        let circuit = state.breaker.state();
        let transitions = state.breaker.transitions();
        state.status.send_modify(|s| {
            s.circuit = circuit;
            s.circuit_transitions = transitions;
            f(s);
        });
    }
}

impl Actor for ClientSession {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: SessionRef,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        args.status.send_modify(|s| {
            s.actor = Some(myself.clone());
            s.connected = false;
        });
        Ok(SessionState {
            options: args.options,
            status: args.status,
            client: None,
            breaker: CircuitBreaker::new(args.failure_threshold, args.open_for),
            connecting: false,
        })
    }

    async fn post_start(
        &self,
        myself: SessionRef,
        _state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        // Connect here, not in pre_start: a failing pre_start produces no supervision event.
        let _ = myself.cast(SessionMsg::Connect);
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: SessionRef,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        state.status.send_modify(|s| {
            s.actor = None;
            s.connected = false;
        });
        Ok(())
    }

    async fn handle(
        &self,
        myself: SessionRef,
        msg: SessionMsg,
        state: &mut SessionState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SessionMsg::Run(job) => {
                let client = match &state.client {
                    None => Err(EngineError::Unavailable {
                        reason: format!("not connected to {}", state.options.engine_url),
                    }),
                    Some(_) if !state.breaker.try_acquire() => Err(EngineError::Unavailable {
                        reason: format!("circuit breaker open for {}", state.options.engine_url),
                    }),
                    Some(c) => Ok(Arc::clone(c)),
                };
                let counted = client.is_ok();
                let me = myself.clone();
                tokio::spawn(async move {
                    let failed = job(client).await;
                    if counted {
                        let _ = me.cast(SessionMsg::Outcome { failed });
                    }
                });
                Self::publish(state, |_| {});
            }
            SessionMsg::Outcome { failed } => {
                let before = state.breaker.state();
                if failed {
                    state.breaker.record_failure()
                } else {
                    state.breaker.record_success()
                }
                let after = state.breaker.state();
                if before != after {
                    info!(endpoint = %state.options.engine_url, ?before, ?after, "circuit breaker changed");
                }
                Self::publish(state, |_| {});
            }
            SessionMsg::Connect => {
                if state.connecting || state.client.is_some() {
                    return Ok(());
                }
                state.connecting = true;
                let options = state.options.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = HttpExecutionClient::connect(options).await.map(Arc::new);
                    let _ = me.cast(SessionMsg::Connected(result));
                });
            }
            SessionMsg::Connected(result) => {
                state.connecting = false;
                match result {
                    Ok(client) => {
                        info!(endpoint = %state.options.engine_url, kind = %client.identity().kind, version = %client.identity().version, "execution client session connected");
                        let identity = client.identity().clone();
                        let capabilities = client.capabilities().clone();
                        state.client = Some(client);
                        state.breaker.record_success();
                        Self::publish(state, |s| {
                            s.connected = true;
                            s.identity = identity;
                            s.capabilities = capabilities;
                            s.last_error = None;
                        });
                    }
                    Err(e) => {
                        warn!(endpoint = %state.options.engine_url, error = %e, "execution client session could not connect");
                        state.breaker.record_failure();
                        let text = e.to_string();
                        Self::publish(state, |s| {
                            s.connected = false;
                            s.last_error = Some(text);
                        });
                    }
                }
            }
            SessionMsg::Poll => {
                let Some(client) = state.client.clone() else {
                    // Not connected yet: the poll is the reconnect attempt.
                    let _ = myself.cast(SessionMsg::Connect);
                    return Ok(());
                };
                let acquired = state.breaker.try_acquire();
                // Also when the poll is the half-open probe: status and metrics show it.
                Self::publish(state, |_| {});
                if !acquired {
                    return Ok(());
                }
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = async {
                        let sync = client.sync_state().await?;
                        let caps = client.exchange_capabilities().await?;
                        Ok((sync, caps))
                    }
                    .await;
                    let _ = me.cast(SessionMsg::Polled(result));
                });
            }
            SessionMsg::Polled(result) => match result {
                Ok((sync, caps)) => {
                    state.breaker.record_success();
                    debug!(endpoint = %state.options.engine_url, ?sync, "health poll");
                    Self::publish(state, |s| {
                        s.sync = Some(sync);
                        s.capabilities = caps;
                        s.last_error = None;
                    });
                }
                Err(e) => {
                    if is_connectivity_failure(&e) {
                        state.breaker.record_failure();
                    }
                    let text = e.to_string();
                    Self::publish(state, |s| s.last_error = Some(text));
                }
            },
            SessionMsg::Crash => panic!("injected ClientSession crash"),
        }
        Ok(())
    }
}
