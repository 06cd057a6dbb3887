//! A per-session circuit breaker: closed → open after repeated failures → half-open probe.

use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;

/// Breaker position, as reported in status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CircuitState {
    /// Calls flow.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// One probe call is allowed; its outcome closes or reopens the breaker.
    HalfOpen,
}

impl CircuitState {
    /// The metric label: `closed`, `open`, `half_open`.
    pub const fn label(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "open",
            Self::HalfOpen => "half_open",
        }
    }
}

/// How often the breaker went from one state to another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct CircuitChange {
    /// The state it left.
    pub from: CircuitState,
    /// The state it entered.
    pub to: CircuitState,
    /// How many times.
    pub count: u64,
}

/// Adds `n` changes from → to into `changes`.
pub(crate) fn add_change(
    changes: &mut Vec<CircuitChange>,
    from: CircuitState,
    to: CircuitState,
    n: u64,
) {
    match changes.iter_mut().find(|c| c.from == from && c.to == to) {
        Some(change) => change.count += n,
        None => changes.push(CircuitChange { from, to, count: n }),
    }
}

/// Consecutive-failure circuit breaker on tokio time (so tests can pause the clock).
#[derive(Debug, Clone)]
pub struct CircuitBreaker {
    failure_threshold: u32,
    open_for: Duration,
    consecutive_failures: u32,
    opened_at: Option<Instant>,
    probe_in_flight: bool,
    transitions: u64,
    changes: Vec<CircuitChange>,
}

impl CircuitBreaker {
    /// Opens after `failure_threshold` consecutive failures, stays open for `open_for`.
    pub fn new(failure_threshold: u32, open_for: Duration) -> Self {
        Self {
            failure_threshold: failure_threshold.max(1),
            open_for,
            consecutive_failures: 0,
            opened_at: None,
            probe_in_flight: false,
            transitions: 0,
            changes: Vec::new(),
        }
    }

    /// The current position.
    pub fn state(&self) -> CircuitState {
        match self.opened_at {
            None => CircuitState::Closed,
            Some(at) if at.elapsed() < self.open_for => CircuitState::Open,
            Some(_) => CircuitState::HalfOpen,
        }
    }

    /// How many times the state changed.
    pub const fn transitions(&self) -> u64 {
        self.transitions
    }

    /// The state changes by from → to (for the state-change metric).
    pub fn changes(&self) -> &[CircuitChange] {
        &self.changes
    }

    fn changed(&mut self, from: CircuitState, to: CircuitState) {
        self.transitions += 1;
        add_change(&mut self.changes, from, to, 1);
    }

    /// Whether a call may go out now. In half-open only one probe is let through.
    pub fn try_acquire(&mut self) -> bool {
        match self.state() {
            CircuitState::Closed => true,
            CircuitState::Open => false,
            CircuitState::HalfOpen if self.probe_in_flight => false,
            CircuitState::HalfOpen => {
                self.probe_in_flight = true;
                true
            }
        }
    }

    /// A probe let through by [`Self::try_acquire`] will not report (its call was dropped):
    /// let the next call be the probe.
    pub fn abandon_probe(&mut self) {
        self.probe_in_flight = false;
    }

    /// Record a call that reached the client and got an answer.
    pub fn record_success(&mut self) {
        if self.opened_at.is_some() {
            let from = self.state();
            self.changed(from, CircuitState::Closed);
        }
        self.consecutive_failures = 0;
        self.opened_at = None;
        self.probe_in_flight = false;
    }

    /// Record a call that failed for transport reasons (timeout, refused, 5xx).
    pub fn record_failure(&mut self) {
        self.probe_in_flight = false;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        let from = self.state();
        if from == CircuitState::HalfOpen
            || (self.opened_at.is_none() && self.consecutive_failures >= self.failure_threshold)
        {
            self.opened_at = Some(Instant::now());
            self.changed(from, CircuitState::Open);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn opens_half_opens_and_closes() {
        let mut b = CircuitBreaker::new(3, Duration::from_secs(5));
        for _ in 0..2 {
            assert!(b.try_acquire());
            b.record_failure();
        }
        assert_eq!(b.state(), CircuitState::Closed);
        b.record_failure();
        assert_eq!(b.state(), CircuitState::Open);
        assert!(!b.try_acquire());
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(b.state(), CircuitState::HalfOpen);
        assert!(b.try_acquire(), "one probe");
        assert!(!b.try_acquire(), "only one probe");
        b.record_failure();
        assert_eq!(b.state(), CircuitState::Open, "failed probe reopens");
        tokio::time::advance(Duration::from_secs(5)).await;
        assert!(b.try_acquire());
        b.record_success();
        assert_eq!(b.state(), CircuitState::Closed);
        assert_eq!(b.transitions(), 3);
        let count = |from, to| {
            b.changes()
                .iter()
                .find(|c| c.from == from && c.to == to)
                .map_or(0, |c| c.count)
        };
        assert_eq!(count(CircuitState::Closed, CircuitState::Open), 1);
        assert_eq!(count(CircuitState::HalfOpen, CircuitState::Open), 1);
        assert_eq!(count(CircuitState::HalfOpen, CircuitState::Closed), 1);
    }
}
