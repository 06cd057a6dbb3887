//! `ClientSession`: one per execution-client endpoint. Connects (capabilities, identity),
//! reconnects when asked, answers health polls, and publishes its [`SessionStatus`] with a
//! [`SessionLink`] through which the engine and the writer call the client directly.

mod breaker;
mod link;
mod set;
mod status;

use std::{sync::Arc, time::Duration};

pub use breaker::{CircuitBreaker, CircuitChange, CircuitState};
use engine_clients::{
    Capabilities, ClientOptions, ExecutionClient, HttpExecutionClient, SyncState,
};
use engine_types::EngineError;
pub use link::is_connectivity_failure;
pub(crate) use link::{LinkHealth, SessionLink};
use ractor::{Actor, ActorProcessingErr, ActorRef};
pub(crate) use set::SessionSet;
pub use status::SessionStatus;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// A reference to a session actor.
pub(crate) type SessionRef = ActorRef<SessionMsg>;

/// Messages of a [`ClientSession`].
pub(crate) enum SessionMsg {
    /// (Re)connect: exchange capabilities and identify the client.
    Connect,
    /// Connection attempt finished.
    Connected(Box<Result<HttpExecutionClient, EngineError>>),
    /// Health poll: `eth_syncing` and `engine_exchangeCapabilities`.
    Poll,
    /// Health poll finished.
    Polled(Result<(SyncState, Capabilities), EngineError>),
    /// Test hook: panic inside the handler.
    #[cfg(feature = "test-hooks")]
    Crash,
}

/// Construction arguments of a session.
pub(crate) struct SessionArgs {
    /// Client options (URL, secret, versions, timeouts).
    pub(crate) options: ClientOptions,
    /// Where the session publishes its status.
    pub(crate) status: Arc<watch::Sender<SessionStatus>>,
    /// Consecutive connectivity failures that open the breaker.
    pub(crate) failure_threshold: u32,
    /// How long the breaker stays open.
    pub(crate) open_for: Duration,
}

/// State of a running session.
pub(crate) struct SessionState {
    options: ClientOptions,
    status: Arc<watch::Sender<SessionStatus>>,
    health: Arc<LinkHealth>,
    link: Option<SessionLink>,
    connecting: bool,
    polling: bool,
}

/// The session actor.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ClientSession;

impl Actor for ClientSession {
    type Msg = SessionMsg;
    type State = SessionState;
    type Arguments = SessionArgs;

    async fn pre_start(
        &self,
        myself: SessionRef,
        args: SessionArgs,
    ) -> Result<SessionState, ActorProcessingErr> {
        let health = Arc::new(LinkHealth::new(
            args.options.engine_url.clone(),
            args.failure_threshold,
            args.open_for,
            Some(Arc::clone(&args.status)),
        ));
        args.status.send_modify(|s| {
            s.actor = Some(myself.clone());
            s.link = None;
            s.connected = false;
            s.circuit = CircuitState::Closed;
        });
        Ok(SessionState {
            options: args.options,
            status: args.status,
            health,
            link: None,
            connecting: false,
            polling: false,
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
            s.link = None;
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
            SessionMsg::Connect => {
                if state.connecting || state.link.is_some() {
                    return Ok(());
                }
                state.connecting = true;
                let options = state.options.clone();
                let me = myself.clone();
                tokio::spawn(async move {
                    let result = HttpExecutionClient::connect(options).await;
                    let _ = me.cast(SessionMsg::Connected(Box::new(result)));
                });
            }
            SessionMsg::Connected(result) => {
                state.connecting = false;
                match *result {
                    Ok(client) => {
                        info!(endpoint = %state.options.engine_url, kind = %client.identity().kind, version = %client.identity().version, "execution client session connected");
                        let identity = client.identity().clone();
                        let capabilities = client.capabilities().clone();
                        let index = state.status.borrow().index;
                        let link =
                            SessionLink::new(index, Arc::new(client), Arc::clone(&state.health));
                        state.health.record(false);
                        state.link = Some(link.clone());
                        state.status.send_modify(|s| {
                            s.link = Some(link);
                            s.connected = true;
                            s.identity = identity;
                            s.capabilities = capabilities;
                            s.last_error = None;
                        });
                    }
                    Err(e) => {
                        warn!(endpoint = %state.options.engine_url, error = %e, "execution client session could not connect");
                        state.health.record(is_connectivity_failure(&e));
                        let text = e.to_string();
                        state.status.send_modify(|s| {
                            s.connected = false;
                            s.last_error = Some(text);
                        });
                    }
                }
            }
            SessionMsg::Poll => {
                let Some(link) = state.link.clone() else {
                    // Not connected yet: the poll is the reconnect attempt.
                    let _ = myself.cast(SessionMsg::Connect);
                    return Ok(());
                };
                if state.polling {
                    return Ok(());
                }
                state.polling = true;
                let me = myself.clone();
                tokio::spawn(async move {
                    // Through the link: the poll is also the half-open probe of an open breaker.
                    let result = link
                        .call(|client| async move {
                            let sync = client.sync_state().await?;
                            let caps = client.exchange_capabilities().await?;
                            Ok((sync, caps))
                        })
                        .await;
                    let _ = me.cast(SessionMsg::Polled(result));
                });
            }
            SessionMsg::Polled(result) => {
                state.polling = false;
                match result {
                    Ok((sync, caps)) => {
                        debug!(endpoint = %state.options.engine_url, ?sync, "health poll");
                        state.status.send_modify(|s| {
                            s.sync = Some(sync);
                            s.capabilities = caps;
                            s.last_error = None;
                        });
                    }
                    // The breaker refused the poll: nothing new to report.
                    Err(EngineError::Unavailable { .. }) => {}
                    Err(e) => {
                        let text = e.to_string();
                        state.status.send_modify(|s| s.last_error = Some(text));
                    }
                }
            }
            #[cfg(feature = "test-hooks")]
            SessionMsg::Crash => panic!("injected ClientSession crash"),
        }
        Ok(())
    }
}
