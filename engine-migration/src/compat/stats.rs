//! The compat client's figures: per-operation call statistics and comparisons, recorded as calls
//! run, and reported as [`CompatReport`] and as the [`HealthSample`] of the health check.

use std::{
    fmt,
    sync::atomic::{AtomicU64, Ordering},
    time::Instant,
};

use engine_clients::ExecutionClient;
use engine_types::EngineError;
use serde::Serialize;
use tracing::warn;

use super::{CompatClient, CompatMode, CompatOperation, Version};
use crate::health::{HealthSample, PathSample, PathStats};

/// One operation's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperationReport {
    /// The operation.
    pub operation: CompatOperation,
    /// Its flag (None: the client's mode applies).
    pub flag: Option<CompatMode>,
    /// v4 calls, errors, latency percentiles.
    pub v4: PathSample,
    /// v5 calls, errors, latency percentiles.
    pub v5: PathSample,
    /// Comparisons that agreed.
    pub matches: u64,
    /// Comparisons that disagreed.
    pub mismatches: u64,
    /// The last disagreement: both answers, v4's first.
    pub last_mismatch: Option<String>,
}

/// The compat client's figures since its mode last changed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CompatReport {
    /// The client's mode.
    pub mode: CompatMode,
    /// Per operation.
    pub operations: Vec<OperationReport>,
}

#[derive(Debug, Default)]
pub(super) struct OperationStats {
    versions: [PathStats; 2],
    matches: AtomicU64,
    mismatches: AtomicU64,
    last_mismatch: std::sync::Mutex<Option<String>>,
}

impl<C: ExecutionClient> CompatClient<C> {
    /// The figures since the last mode switch.
    pub fn report(&self) -> CompatReport {
        CompatReport {
            mode: self.mode(),
            operations: CompatOperation::ALL
                .iter()
                .map(|&op| {
                    let s = &self.stats[op.index()];
                    OperationReport {
                        operation: op,
                        flag: CompatMode::decode(self.flags[op.index()].load(Ordering::Acquire)),
                        v4: s.versions[Version::V4.index()].sample(),
                        v5: s.versions[Version::V5.index()].sample(),
                        matches: s.matches.load(Ordering::Relaxed),
                        mismatches: s.mismatches.load(Ordering::Relaxed),
                        last_mismatch: s.last_mismatch.lock().ok().and_then(|m| m.clone()),
                    }
                })
                .collect(),
        }
    }

    /// v4 (baseline) against v5 (candidate) over every operation, for the health check.
    pub fn health(&self) -> HealthSample {
        let mut sample = HealthSample::default();
        // Latency percentiles do not add up across operations: take the operation with the
        // most v5 calls as representative (newPayload in a producing node).
        let mut busiest = 0;
        for s in &self.stats {
            let (a, b) = (
                s.versions[Version::V4.index()].sample(),
                s.versions[Version::V5.index()].sample(),
            );
            sample.baseline.calls += a.calls;
            sample.baseline.errors += a.errors;
            sample.candidate.calls += b.calls;
            sample.candidate.errors += b.errors;
            let matches = s.matches.load(Ordering::Relaxed);
            let mismatches = s.mismatches.load(Ordering::Relaxed);
            sample.comparisons += matches + mismatches;
            sample.mismatches += mismatches;
            if b.calls >= busiest && a.calls > 0 {
                busiest = b.calls;
                (
                    sample.baseline.p50,
                    sample.baseline.p95,
                    sample.baseline.p99,
                ) = (a.p50, a.p95, a.p99);
                (
                    sample.candidate.p50,
                    sample.candidate.p95,
                    sample.candidate.p99,
                ) = (b.p50, b.p95, b.p99);
            }
        }
        sample
    }

    pub(super) fn reset_stats(&self) {
        for s in &self.stats {
            for v in &s.versions {
                v.reset();
            }
            s.matches.store(0, Ordering::Relaxed);
            s.mismatches.store(0, Ordering::Relaxed);
        }
    }

    pub(super) async fn timed<T>(
        &self,
        op: CompatOperation,
        version: Version,
        call: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        self.stats[op.index()].versions[version.index()].record(elapsed, result.is_ok());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .calls
            .with_label_values(&[version.as_str(), op.as_str(), outcome])
            .inc();
        self.metrics
            .call_duration
            .with_label_values(&[version.as_str(), op.as_str()])
            .observe(elapsed.as_secs_f64());
        result
    }

    pub(super) fn compared(&self, op: CompatOperation, agree: bool, detail: impl fmt::Debug) {
        let s = &self.stats[op.index()];
        let outcome = if agree {
            s.matches.fetch_add(1, Ordering::Relaxed);
            "match"
        } else {
            s.mismatches.fetch_add(1, Ordering::Relaxed);
            warn!(
                operation = op.as_str(),
                ?detail,
                "Lighthouse v4 and v5 paths disagree"
            );
            if let Ok(mut last) = s.last_mismatch.lock() {
                *last = Some(format!("{detail:?}"));
            }
            "mismatch"
        };
        self.metrics
            .comparisons
            .with_label_values(&[op.as_str(), outcome])
            .inc();
    }
}
