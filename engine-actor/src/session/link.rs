//! [`SessionLink`]: how the engine and the writer reach a connected client. A call runs in the
//! caller's own task (no mailbox hop) and its outcome feeds the session's circuit breaker.

use std::{
    future::Future,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use engine_clients::{ExecutionClient, HttpExecutionClient};
use engine_types::EngineError;
use tokio::sync::watch;
use tracing::info;

use super::{
    CircuitBreaker, CircuitState, SessionStatus,
    breaker::{CircuitChange, add_change},
};

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

/// The circuit breaker of one session, shared by everyone calling through its link, and where
/// its position is published.
#[derive(Debug)]
pub(crate) struct LinkHealth {
    endpoint: String,
    breaker: Mutex<CircuitBreaker>,
    status: Option<Arc<watch::Sender<SessionStatus>>>,
    /// Breaker changes made before this session (re)started: the published counts never drop.
    transitions_before: u64,
    changes_before: Vec<CircuitChange>,
    /// Calls refused while the breaker was open.
    rejections: std::sync::atomic::AtomicU64,
}

impl LinkHealth {
    /// A breaker opening after `failure_threshold` consecutive connectivity failures for
    /// `open_for`, published on `status` (if any).
    pub(crate) fn new(
        endpoint: String,
        failure_threshold: u32,
        open_for: Duration,
        status: Option<Arc<watch::Sender<SessionStatus>>>,
    ) -> Self {
        let (transitions_before, changes_before, rejections_before) =
            status.as_ref().map_or((0, Vec::new(), 0), |s| {
                let s = s.borrow();
                (
                    s.circuit_transitions,
                    s.circuit_changes.clone(),
                    s.breaker_rejections,
                )
            });
        Self {
            endpoint,
            breaker: Mutex::new(CircuitBreaker::new(failure_threshold, open_for)),
            status,
            transitions_before,
            changes_before,
            rejections: std::sync::atomic::AtomicU64::new(rejections_before),
        }
    }

    fn breaker(&self) -> MutexGuard<'_, CircuitBreaker> {
        self.breaker.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a call may go out now (a half-open breaker lets one probe through).
    pub(crate) fn try_acquire(&self) -> bool {
        let (acquired, state) = {
            let mut b = self.breaker();
            (b.try_acquire(), b.state())
        };
        // Open turns half-open by time alone: publish it when a caller notices.
        self.publish(state);
        acquired
    }

    /// A call came back; `connectivity_failure` says whether it failed for transport reasons.
    pub(crate) fn record(&self, connectivity_failure: bool) {
        let (before, after) = {
            let mut b = self.breaker();
            let before = b.state();
            if connectivity_failure {
                b.record_failure();
            } else {
                b.record_success();
            }
            (before, b.state())
        };
        if before != after {
            info!(endpoint = %self.endpoint, ?before, ?after, "circuit breaker changed");
        }
        self.publish(after);
    }

    /// A probe that will never report (its call was dropped): let the next one through.
    fn abandon(&self) {
        self.breaker().abandon_probe();
    }

    fn publish(&self, state: CircuitState) {
        let Some(status) = &self.status else {
            return;
        };
        let (transitions, mut changes) = {
            let b = self.breaker();
            (
                self.transitions_before + b.transitions(),
                b.changes().to_vec(),
            )
        };
        for before in &self.changes_before {
            add_change(&mut changes, before.from, before.to, before.count);
        }
        let rejections = self.rejections.load(std::sync::atomic::Ordering::Relaxed);
        status.send_if_modified(|s| {
            let changed = s.circuit != state
                || s.circuit_transitions != transitions
                || s.breaker_rejections != rejections;
            s.circuit = state;
            s.circuit_transitions = transitions;
            s.circuit_changes = changes;
            s.breaker_rejections = rejections;
            changed
        });
    }
}

/// Records a call's outcome into the breaker exactly once, also when the call is dropped.
struct Outcome<'a> {
    health: &'a LinkHealth,
    recorded: bool,
}

impl Drop for Outcome<'_> {
    fn drop(&mut self) {
        if !self.recorded {
            self.health.abandon();
        }
    }
}

/// A connected client and its breaker. Cheap to clone.
#[derive(Debug)]
pub(crate) struct SessionLink<C = HttpExecutionClient> {
    index: usize,
    client: Arc<C>,
    health: Arc<LinkHealth>,
}

impl<C> Clone for SessionLink<C> {
    fn clone(&self) -> Self {
        Self {
            index: self.index,
            client: Arc::clone(&self.client),
            health: Arc::clone(&self.health),
        }
    }
}

impl<C: ExecutionClient> SessionLink<C> {
    /// Endpoint `index` reached through `client`, with `health` as its breaker.
    pub(crate) const fn new(index: usize, client: Arc<C>, health: Arc<LinkHealth>) -> Self {
        Self {
            index,
            client,
            health,
        }
    }

    /// Position in the endpoint list (0 is the primary).
    pub(crate) const fn index(&self) -> usize {
        self.index
    }

    /// The client's Engine API URL.
    pub(crate) fn endpoint(&self) -> &str {
        self.client.endpoint()
    }

    /// What is special about the connected client.
    pub(crate) fn quirks(&self) -> engine_clients::Quirks {
        self.client.quirks()
    }

    /// Run `call` on the client in the caller's task. Refused without IO while the breaker is
    /// open; a connectivity failure counts against it, any answer resets it.
    pub(crate) async fn call<T, F, Fut>(&self, call: F) -> Result<T, EngineError>
    where
        F: FnOnce(Arc<C>) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        if !self.health.try_acquire() {
            self.health
                .rejections
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let state = self.health.breaker().state();
            self.health.publish(state);
            return Err(EngineError::Unavailable {
                reason: format!(
                    "circuit breaker open for {}; the execution client failed repeatedly",
                    self.health.endpoint
                ),
            });
        }
        let mut outcome = Outcome {
            health: &self.health,
            recorded: false,
        };
        let result = call(Arc::clone(&self.client)).await;
        outcome.recorded = true;
        self.health
            .record(result.as_ref().err().is_some_and(is_connectivity_failure));
        result
    }
}
