//! What `/livez` and `/readyz` answer: whether the tree is alive, and whether it can produce
//! and commit blocks now (with the reasons it cannot).

use std::time::Duration;

use alloy_primitives::B256;
use serde::Serialize;
use tokio::{sync::watch, time::Instant};

use crate::{EngineStatus, ForkchoiceSnapshot};

/// When the engine's head last moved (or the tree started): the head's age for readiness.
#[derive(Debug, Clone)]
pub(crate) struct HeadClock(watch::Receiver<Instant>);

impl HeadClock {
    /// Follow `forkchoice` until its sender goes away (the tree is dropped).
    pub(crate) fn follow(mut forkchoice: watch::Receiver<Option<ForkchoiceSnapshot>>) -> Self {
        let (moved, clock) = watch::channel(Instant::now());
        tokio::spawn(async move {
            let mut head = forkchoice.borrow_and_update().map(|s| s.head);
            while forkchoice.changed().await.is_ok() {
                let now = forkchoice.borrow_and_update().map(|s| s.head);
                if now != head {
                    head = now;
                    moved.send_replace(Instant::now());
                }
            }
        });
        Self(clock)
    }

    /// How long ago the head last moved.
    pub(crate) fn age(&self) -> Duration {
        self.0.borrow().elapsed()
    }
}

/// Whether the actor tree is alive (`/livez`): false only once the supervisor gave up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Liveness {
    /// The tree runs (it may still be unready).
    pub live: bool,
    /// Why it stopped, when it did.
    pub reason: Option<String>,
}

impl Liveness {
    /// Liveness from the supervisor's escalation, if any.
    pub(crate) fn from_escalation(escalation: Option<String>) -> Self {
        Self {
            live: escalation.is_none(),
            reason: escalation,
        }
    }
}

/// Whether the engine can build and commit blocks now (`/readyz`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Readiness {
    /// Ready: synchronised with its execution clients, and at least one of them connected,
    /// breaker closed or half-open, and synced.
    pub ready: bool,
    /// Why not, one line each (empty when ready).
    pub reasons: Vec<String>,
    /// The engine's head.
    pub head: B256,
    /// Its number.
    pub head_number: u64,
    /// How long ago the head last moved (or the engine started), in ms.
    pub head_age_ms: u64,
    /// Execution clients that can take writes (connected, breaker not open).
    pub writable_clients: usize,
    /// Of those, the ones that are synced (can build).
    pub synced_clients: usize,
    /// Payloads the execution clients disagreed on since the start.
    pub disagreements: u64,
}

impl Readiness {
    /// Unready because the engine's status could not be read.
    pub(crate) fn unavailable(reason: String) -> Self {
        Self {
            ready: false,
            reasons: vec![reason],
            head: B256::ZERO,
            head_number: 0,
            head_age_ms: 0,
            writable_clients: 0,
            synced_clients: 0,
            disagreements: 0,
        }
    }

    /// Readiness as `status` shows it, with the head `head_age` old; unready when that is more
    /// than `max_head_age` (if set).
    pub(crate) fn from_status(
        status: &EngineStatus,
        head_age: Duration,
        max_head_age: Option<Duration>,
    ) -> Self {
        let mut reasons = Vec::new();
        if let Some(max) = max_head_age
            && status.initialized
            && head_age > max
        {
            reasons.push(format!(
                "the head (#{}) has not moved for {} s (limit {} s: recovery.ready_max_head_age_slots)",
                status.forkchoice.head_number,
                head_age.as_secs(),
                max.as_secs()
            ));
        }
        if !status.initialized {
            reasons.push(match &status.writer.init_error {
                Some(why) => format!("not synchronised with the execution client: {why}"),
                None => "not synchronised with the execution client yet".to_owned(),
            });
        }
        let writable: Vec<_> = status.sessions.iter().filter(|s| s.is_writable()).collect();
        let synced = status.sessions.iter().filter(|s| s.is_healthy()).count();
        if writable.is_empty() {
            for s in &status.sessions {
                let why = s.last_error.as_deref().unwrap_or(if s.connected {
                    "circuit breaker open"
                } else {
                    "not connected"
                });
                reasons.push(format!("{}: {why}", s.endpoint));
            }
            if status.sessions.is_empty() {
                reasons.push("no execution client configured".to_owned());
            }
        } else if synced == 0 {
            reasons.push(format!(
                "every reachable execution client is syncing ({})",
                writable
                    .iter()
                    .map(|s| s.endpoint.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Self {
            ready: reasons.is_empty(),
            reasons,
            head: status.forkchoice.head,
            head_number: status.forkchoice.head_number,
            head_age_ms: u64::try_from(head_age.as_millis()).unwrap_or(u64::MAX),
            writable_clients: writable.len(),
            synced_clients: synced,
            disagreements: status.writer.disagreements,
        }
    }
}
