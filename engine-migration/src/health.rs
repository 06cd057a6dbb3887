//! Health of a migration: per-path call statistics, the 0–100 health score, and the thresholds
//! whose crossing rolls a migration back.
//!
//! Both migrations (legacy → actor, v4 → v5) compare a *baseline* path (the one in production
//! today) with a *candidate* path (the one being rolled out). A [`HealthSample`] is what the
//! two paths did since the current stage began; [`Thresholds::check`] turns it into a
//! [`RollbackReason`] when the candidate is worse than allowed.

use std::{
    fmt,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency the histograms track exactly (longer calls are clamped to it): one minute.
const MAX_TRACKED_MICROS: u64 = 60_000_000;

/// Calls, errors and latencies of one path (legacy, actor, v4 or v5) since the last reset.
#[derive(Debug)]
pub(crate) struct PathStats {
    calls: AtomicU64,
    errors: AtomicU64,
    /// None only if the histogram could not be made (its bounds are constants, so never in
    /// practice); percentiles are then absent rather than a panic.
    latency_micros: Mutex<Option<Histogram<u64>>>,
}

impl Default for PathStats {
    fn default() -> Self {
        Self::new()
    }
}

impl PathStats {
    /// Empty statistics.
    pub(crate) fn new() -> Self {
        // 2 significant figures (1 % resolution) from 1 µs to a minute: ~37 KiB, cheap to reset
        // at every stage change.
        let histogram = Histogram::new_with_bounds(1, MAX_TRACKED_MICROS, 2).ok();
        Self {
            calls: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            latency_micros: Mutex::new(histogram),
        }
    }

    /// Record one call that took `elapsed` and succeeded (`ok`) or not.
    pub(crate) fn record(&self, elapsed: Duration, ok: bool) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        let micros = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, MAX_TRACKED_MICROS);
        if let Ok(mut guard) = self.latency_micros.lock()
            && let Some(h) = guard.as_mut()
        {
            h.saturating_record(micros);
        }
    }

    /// Record a call that failed before it reached the path (e.g. the path could not catch
    /// up first): an error, with no latency to skew the percentiles.
    pub(crate) fn record_failure(&self) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// What was recorded so far.
    pub(crate) fn sample(&self) -> PathSample {
        let percentiles = |h: &Histogram<u64>| {
            let at = |q: f64| Some(Duration::from_micros(h.value_at_quantile(q)));
            (at(0.50), at(0.95), at(0.99))
        };
        let (p50, p95, p99) = match self.latency_micros.lock() {
            Ok(guard) => guard
                .as_ref()
                .filter(|h| !h.is_empty())
                .map_or((None, None, None), percentiles),
            Err(_) => (None, None, None),
        };
        PathSample {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            p50,
            p95,
            p99,
        }
    }

    /// Forget everything (a new stage starts).
    pub(crate) fn reset(&self) {
        self.calls.store(0, Ordering::Relaxed);
        self.errors.store(0, Ordering::Relaxed);
        if let Ok(mut guard) = self.latency_micros.lock()
            && let Some(h) = guard.as_mut()
            && !h.is_empty()
        {
            h.reset();
        }
    }

    /// Calls and errors only (no percentiles: cheap enough for every call).
    pub(crate) fn counts(&self) -> PathSample {
        PathSample {
            calls: self.calls.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            ..PathSample::default()
        }
    }
}

/// One path's figures at a moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct PathSample {
    /// Calls made.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// Median latency (None before the first call).
    pub p50: Option<Duration>,
    /// 95th percentile latency.
    pub p95: Option<Duration>,
    /// 99th percentile latency.
    pub p99: Option<Duration>,
}

impl PathSample {
    /// errors / calls (0 without calls).
    pub fn error_rate(&self) -> f64 {
        if self.calls == 0 {
            0.0
        } else {
            self.errors as f64 / self.calls as f64
        }
    }
}

/// What the baseline and the candidate did since the stage began.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct HealthSample {
    /// The path in production today (legacy engine, Lighthouse v4).
    pub baseline: PathSample,
    /// The path being rolled out (actor, Lighthouse v5).
    pub candidate: PathSample,
    /// Results of both paths compared.
    pub comparisons: u64,
    /// Comparisons that disagreed.
    pub mismatches: u64,
}

impl HealthSample {
    /// mismatches / comparisons (0 without comparisons).
    pub fn mismatch_rate(&self) -> f64 {
        if self.comparisons == 0 {
            0.0
        } else {
            self.mismatches as f64 / self.comparisons as f64
        }
    }

    /// How much slower the candidate's median is than the baseline's (0.05 = 5 % slower;
    /// negative when faster); None until both have latencies.
    pub fn latency_regression(&self) -> Option<f64> {
        let (base, cand) = (self.baseline.p50?, self.candidate.p50?);
        let base = base.as_secs_f64();
        (base > 0.0).then(|| cand.as_secs_f64() / base - 1.0)
    }

    /// The health score, 0 (roll back) to 100 (as good as the baseline):
    /// `100 × (1 − candidate error rate) × (1 − mismatch rate) × min(1, baseline p50 / candidate p50)`.
    /// Each factor is 1 while it has no data.
    pub fn score(&self) -> f64 {
        let errors = 1.0 - self.candidate.error_rate();
        let mismatches = 1.0 - self.mismatch_rate();
        let latency = self
            .latency_regression()
            .map_or(1.0, |r| (1.0 / (1.0 + r)).min(1.0));
        (100.0 * errors * mismatches * latency).clamp(0.0, 100.0)
    }
}

/// When a migration rolls back. `None` disables a check.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Thresholds {
    /// Candidate error rate above which it rolls back (default 0.01 = 1 %).
    pub max_error_rate: Option<f64>,
    /// Mismatch rate above which it rolls back (default 0.0: any mismatch).
    pub max_mismatch_rate: Option<f64>,
    /// Candidate median latency regression above which it rolls back (default 0.05 = 5 %).
    pub max_latency_regression: Option<f64>,
    /// Calls each path needs before error rate and latency are judged (mismatches are judged
    /// at once). Default 50.
    pub min_calls: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            max_error_rate: Some(0.01),
            max_mismatch_rate: Some(0.0),
            max_latency_regression: Some(0.05),
            min_calls: 50,
        }
    }
}

impl Thresholds {
    /// No automatic rollback at all.
    pub const fn disabled() -> Self {
        Self {
            max_error_rate: None,
            max_mismatch_rate: None,
            max_latency_regression: None,
            min_calls: 0,
        }
    }

    /// Why `sample` calls for a rollback, if it does. Mismatches first (a consensus
    /// disagreement is the worst news), then errors, then latency.
    pub fn check(&self, sample: &HealthSample) -> Option<RollbackReason> {
        if let Some(limit) = self.max_mismatch_rate {
            let rate = sample.mismatch_rate();
            if sample.mismatches > 0 && rate > limit {
                return Some(RollbackReason::Mismatches {
                    mismatches: sample.mismatches,
                    comparisons: sample.comparisons,
                    limit,
                });
            }
        }
        let enough = sample.candidate.calls >= self.min_calls.max(1);
        if let Some(limit) = self.max_error_rate {
            let rate = sample.candidate.error_rate();
            if enough && rate > limit {
                return Some(RollbackReason::ErrorRate {
                    errors: sample.candidate.errors,
                    calls: sample.candidate.calls,
                    limit,
                });
            }
        }
        if let (Some(limit), Some(regression)) =
            (self.max_latency_regression, sample.latency_regression())
        {
            let both = enough && sample.baseline.calls >= self.min_calls.max(1);
            if both && regression > limit {
                return Some(RollbackReason::LatencyRegression {
                    baseline_p50: sample.baseline.p50.unwrap_or_default(),
                    candidate_p50: sample.candidate.p50.unwrap_or_default(),
                    limit,
                });
            }
        }
        None
    }
}

/// Why a migration was rolled back.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum RollbackReason {
    /// The candidate failed too often.
    ErrorRate {
        /// Failed calls.
        errors: u64,
        /// All calls.
        calls: u64,
        /// The allowed rate.
        limit: f64,
    },
    /// The two paths disagreed.
    Mismatches {
        /// Disagreements.
        mismatches: u64,
        /// Comparisons made.
        comparisons: u64,
        /// The allowed rate.
        limit: f64,
    },
    /// The candidate got slower than allowed.
    LatencyRegression {
        /// Baseline median.
        baseline_p50: Duration,
        /// Candidate median.
        candidate_p50: Duration,
        /// The allowed regression.
        limit: f64,
    },
    /// An operator asked for it.
    Manual(String),
    /// A stage could not be entered (e.g. the actor could not adopt the legacy forkchoice).
    Failed(String),
}

impl fmt::Display for RollbackReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ErrorRate {
                errors,
                calls,
                limit,
            } => write!(
                f,
                "candidate error rate {errors}/{calls} ({:.2} %) is above {:.2} %",
                100.0 * *errors as f64 / (*calls).max(1) as f64,
                100.0 * limit
            ),
            Self::Mismatches {
                mismatches,
                comparisons,
                limit,
            } => write!(
                f,
                "{mismatches} of {comparisons} comparisons disagreed (allowed rate {:.2} %)",
                100.0 * limit
            ),
            Self::LatencyRegression {
                baseline_p50,
                candidate_p50,
                limit,
            } => write!(
                f,
                "candidate median latency {candidate_p50:?} is more than {:.1} % above the baseline's {baseline_p50:?}",
                100.0 * limit
            ),
            Self::Manual(why) => write!(f, "operator: {why}"),
            Self::Failed(why) => f.write_str(why),
        }
    }
}

/// A rollback that happened: why, from which stage or mode, and how long it took until the
/// baseline path was serving again.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RollbackRecord {
    /// Why.
    pub reason: RollbackReason,
    /// The mode or stage it left (its display form).
    pub from: String,
    /// From the decision to the baseline path being in effect, including its catching up with
    /// the candidate's state when it had sat out (if that failed, it is retried on the next
    /// call and is not included).
    pub took: Duration,
    /// The health that led here.
    pub health: HealthSample,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn side(calls: u64, errors: u64, p50_ms: u64) -> PathSample {
        PathSample {
            calls,
            errors,
            p50: Some(Duration::from_millis(p50_ms)),
            p95: None,
            p99: None,
        }
    }

    #[test]
    fn score_is_100_when_the_candidate_matches_the_baseline() {
        let s = HealthSample {
            baseline: side(100, 0, 10),
            candidate: side(100, 0, 10),
            comparisons: 100,
            mismatches: 0,
        };
        assert!((s.score() - 100.0).abs() < 1e-9);
        assert_eq!(Thresholds::default().check(&s), None);
    }

    #[test]
    fn score_falls_with_errors_mismatches_and_latency() {
        let s = HealthSample {
            baseline: side(100, 0, 10),
            candidate: side(100, 10, 20),
            comparisons: 100,
            mismatches: 50,
        };
        // 100 × 0.9 × 0.5 × 0.5
        assert!((s.score() - 22.5).abs() < 1e-9, "{}", s.score());
    }

    #[test]
    fn any_mismatch_rolls_back_by_default_even_before_min_calls() {
        let s = HealthSample {
            baseline: side(1, 0, 10),
            candidate: side(1, 0, 10),
            comparisons: 1,
            mismatches: 1,
        };
        assert!(matches!(
            Thresholds::default().check(&s),
            Some(RollbackReason::Mismatches { mismatches: 1, .. })
        ));
    }

    #[test]
    fn error_rate_and_latency_wait_for_min_calls() {
        let t = Thresholds::default();
        let few = HealthSample {
            baseline: side(10, 0, 10),
            candidate: side(10, 5, 50),
            ..HealthSample::default()
        };
        assert_eq!(t.check(&few), None);
        let errors = HealthSample {
            baseline: side(100, 0, 10),
            candidate: side(100, 2, 10),
            ..HealthSample::default()
        };
        assert!(matches!(
            t.check(&errors),
            Some(RollbackReason::ErrorRate { errors: 2, .. })
        ));
        let slow = HealthSample {
            baseline: side(100, 0, 100),
            candidate: side(100, 0, 106),
            ..HealthSample::default()
        };
        let reason = t.check(&slow).unwrap();
        assert!(reason.to_string().contains("5.0 %"), "{reason}");
        let ok = HealthSample {
            baseline: side(100, 0, 100),
            candidate: side(100, 1, 104),
            ..HealthSample::default()
        };
        assert_eq!(t.check(&ok), None);
    }

    #[test]
    fn path_stats_report_percentiles_and_reset() {
        let stats = PathStats::new();
        for ms in 1..=100 {
            stats.record(Duration::from_millis(ms), ms % 10 != 0);
        }
        let s = stats.sample();
        assert_eq!((s.calls, s.errors), (100, 10));
        let p50 = s.p50.unwrap().as_millis();
        assert!((49..=51).contains(&p50), "{p50}");
        assert!(s.p99.unwrap() >= s.p95.unwrap());
        stats.reset();
        assert_eq!(stats.sample(), PathSample::default());
    }
}
