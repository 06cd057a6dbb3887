//! What a session publishes about itself.

use engine_clients::{Capabilities, SyncState};
use engine_types::ClientIdentity;
use serde::Serialize;

use super::{CircuitChange, CircuitState, SessionLink, SessionRef};

/// What a session publishes about itself (read by the engine, the writer, the poller, the
/// metrics collector and `status()`).
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct SessionStatus {
    /// Position in the configured endpoint list (0 is the primary).
    pub index: usize,
    /// Engine API URL.
    pub endpoint: String,
    /// The running session actor, if any (the HealthPoller asks it to poll).
    #[serde(skip)]
    pub(crate) actor: Option<SessionRef>,
    /// How calls reach the connected client; `None` while not connected.
    #[serde(skip)]
    pub(crate) link: Option<SessionLink>,
    /// Whether `connect()` succeeded.
    pub connected: bool,
    /// Who the client is.
    pub identity: ClientIdentity,
    /// What it supports.
    pub capabilities: Capabilities,
    /// Circuit breaker position.
    pub circuit: CircuitState,
    /// Circuit breaker state changes since the engine started (across session restarts).
    pub circuit_transitions: u64,
    /// The same, by from → to.
    pub circuit_changes: Vec<CircuitChange>,
    /// Calls refused without IO because the breaker was open.
    pub breaker_rejections: u64,
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
            link: None,
            connected: false,
            identity: ClientIdentity::default(),
            capabilities: Capabilities::unknown(),
            circuit: CircuitState::Closed,
            circuit_transitions: 0,
            circuit_changes: Vec::new(),
            breaker_rejections: 0,
            sync: None,
            last_error: None,
        }
    }

    /// Usable for calls: connected, breaker not open, not known to be syncing.
    pub fn is_healthy(&self) -> bool {
        self.link.is_some()
            && self.connected
            && self.circuit != CircuitState::Open
            && self.sync.is_none_or(|s| s.is_synced())
    }

    /// Whether the endpoint answers right now: connected, breaker not open, last call or poll
    /// without a connectivity error (`engine_connection_status`).
    pub fn is_reachable(&self) -> bool {
        self.connected && self.circuit != CircuitState::Open && self.last_error.is_none()
    }

    /// Usable for writes: connected and breaker not open, synced or not (a client that is
    /// behind is caught up by the writes themselves).
    pub fn is_writable(&self) -> bool {
        self.link.is_some() && self.connected && self.circuit != CircuitState::Open
    }

    /// The link, when the session is writable.
    pub(crate) fn writable_link(&self) -> Option<SessionLink> {
        self.is_writable().then(|| self.link.clone()).flatten()
    }

    /// The link, when the session is healthy.
    pub(crate) fn healthy_link(&self) -> Option<SessionLink> {
        self.is_healthy().then(|| self.link.clone()).flatten()
    }

    /// One line for error messages: endpoint, connection, circuit, last error.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} (connected: {}, circuit: {:?}{})",
            self.endpoint,
            self.connected,
            self.circuit,
            self.last_error
                .as_deref()
                .map(|e| format!(", last error: {e}"))
                .unwrap_or_default()
        )
    }
}
