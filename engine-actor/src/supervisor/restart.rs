//! [`RestartPolicy`]: when a stopped child comes back (exponential backoff) and when the
//! supervisor gives up (too many stops within a window). Pure, on tokio time.

use std::{collections::VecDeque, time::Duration};

use engine_types::SupervisionConfig;
use tokio::time::Instant;

/// What to do about a child that stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RestartDecision {
    /// Spawn it again after this delay.
    After(Duration),
    /// Give up: `stops` stops within `window` exceed the limit.
    Escalate {
        /// Stops counted within the window, this one included.
        stops: u32,
        /// The window.
        window: Duration,
    },
}

/// Counts stops of any child within the configured window.
#[derive(Debug)]
pub(crate) struct RestartPolicy {
    config: SupervisionConfig,
    recent: VecDeque<Instant>,
}

impl RestartPolicy {
    pub(crate) const fn new(config: SupervisionConfig) -> Self {
        Self {
            config,
            recent: VecDeque::new(),
        }
    }

    /// A child stopped at `now`: restart it after `backoff_initial_ms × 2^(k-1)` (k = stops in
    /// the window, capped at `backoff_max_ms`), or escalate past `max_restarts` stops.
    pub(crate) fn on_stop(&mut self, now: Instant) -> RestartDecision {
        let window = Duration::from_millis(self.config.window_ms);
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            self.recent.pop_front();
        }
        let stops = u32::try_from(self.recent.len()).unwrap_or(u32::MAX);
        if stops > self.config.max_restarts {
            return RestartDecision::Escalate { stops, window };
        }
        let exponent = stops.saturating_sub(1).min(16);
        let delay = Duration::from_millis(
            self.config
                .backoff_initial_ms
                .saturating_mul(1u64 << exponent),
        )
        .min(Duration::from_millis(self.config.backoff_max_ms));
        RestartDecision::After(delay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RestartPolicy {
        RestartPolicy::new(SupervisionConfig {
            max_restarts: 4,
            window_ms: 10_000,
            backoff_initial_ms: 100,
            backoff_max_ms: 500,
        })
    }

    fn ms(n: u64) -> RestartDecision {
        RestartDecision::After(Duration::from_millis(n))
    }

    #[tokio::test(start_paused = true)]
    async fn backoff_doubles_per_recent_stop_up_to_the_cap_then_escalates() {
        let mut p = policy();
        let decisions: Vec<_> = (0..5).map(|_| p.on_stop(Instant::now())).collect();
        assert_eq!(decisions[..4], [ms(100), ms(200), ms(400), ms(500)]);
        assert_eq!(
            decisions[4],
            RestartDecision::Escalate {
                stops: 5,
                window: Duration::from_secs(10)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn stops_older_than_the_window_are_forgotten() {
        let mut p = policy();
        for _ in 0..4 {
            p.on_stop(Instant::now());
            tokio::time::advance(Duration::from_secs(1)).await;
        }
        // Stops at 0, 1, 2 and 3 s; at 12.5 s the first three are older than the window.
        tokio::time::advance(Duration::from_millis(8_500)).await;
        assert_eq!(
            p.on_stop(Instant::now()),
            ms(200),
            "two stops in the window now"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_zero_limit_escalates_at_the_first_stop() {
        let mut p = RestartPolicy::new(SupervisionConfig {
            max_restarts: 0,
            ..SupervisionConfig::default()
        });
        assert!(matches!(
            p.on_stop(Instant::now()),
            RestartDecision::Escalate { stops: 1, .. }
        ));
    }
}
