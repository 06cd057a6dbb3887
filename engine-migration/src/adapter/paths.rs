//! [`Paths`]: the two engines and what the adapter knows about them — per-path statistics,
//! comparisons, the last mismatches — and the steps every mode shares: a timed call, a path
//! adopting the other's state, comparing two answers.

use std::{
    collections::VecDeque,
    future::Future,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::Instant,
};

use engine_types::EngineError;
use tracing::{info, warn};

use super::{
    MismatchRecord, Operation, RECENT_MISMATCHES,
    turn::{Ledger, Path, Turn},
};
use crate::{
    health::{HealthSample, PathSample, PathStats},
    legacy::{MigrationPath, Mismatch, StateValidator},
    metrics::MigrationMetrics,
};

/// The two paths and everything shared by the adapter and its shadow worker.
pub(super) struct Paths<L, A> {
    pub(super) legacy: L,
    pub(super) actor: A,
    pub(super) validator: StateValidator,
    /// The EL-write turn and the ledger of applied changes.
    pub(super) turn: Turn,
    op_stats: [[PathStats; Operation::COUNT]; 2],
    comparisons: AtomicU64,
    mismatches: AtomicU64,
    pub(super) fallbacks: AtomicU64,
    pub(super) shadow_dropped: AtomicU64,
    pub(super) shadow_preempted: AtomicU64,
    recent: Mutex<VecDeque<MismatchRecord>>,
    pub(super) metrics: MigrationMetrics,
}

impl<L, A> Paths<L, A>
where
    L: MigrationPath,
    A: MigrationPath,
{
    pub(super) fn new(
        legacy: L,
        actor: A,
        validator: StateValidator,
        metrics: MigrationMetrics,
    ) -> Self {
        Self {
            legacy,
            actor,
            validator,
            turn: Turn::new(),
            op_stats: Default::default(),
            comparisons: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            shadow_dropped: AtomicU64::new(0),
            shadow_preempted: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::new()),
            metrics,
        }
    }

    /// Forget the statistics (a new mode starts from zero).
    pub(super) fn reset_stats(&self) {
        for stats in self.op_stats.iter().flatten() {
            stats.reset();
        }
        for counter in [
            &self.comparisons,
            &self.mismatches,
            &self.fallbacks,
            &self.shadow_dropped,
            &self.shadow_preempted,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// The health sample: counts of every operation, latency of the one both paths ran most.
    pub(super) fn health(&self) -> HealthSample {
        let mut sample = HealthSample {
            baseline: self.counts(Path::Legacy),
            candidate: self.counts(Path::Actor),
            comparisons: self.comparisons.load(Ordering::Relaxed),
            mismatches: self.mismatches.load(Ordering::Relaxed),
        };
        // Pick the operation by counts first; only its two histograms are read.
        let busiest = (0..Operation::COUNT)
            .filter(|&op| self.op_stats[Path::Legacy.index()][op].counts().calls > 0)
            .max_by_key(|&op| self.op_stats[Path::Actor.index()][op].counts().calls)
            .filter(|&op| self.op_stats[Path::Actor.index()][op].counts().calls > 0);
        if let Some(op) = busiest {
            for (side, path) in [
                (&mut sample.baseline, Path::Legacy),
                (&mut sample.candidate, Path::Actor),
            ] {
                let from = self.op_stats[path.index()][op].sample();
                (side.p50, side.p95, side.p99) = (from.p50, from.p95, from.p99);
            }
        }
        sample
    }

    fn counts(&self, path: Path) -> PathSample {
        self.op_stats[path.index()]
            .iter()
            .map(PathStats::counts)
            .fold(PathSample::default(), |sum, c| PathSample {
                calls: sum.calls + c.calls,
                errors: sum.errors + c.errors,
                ..sum
            })
    }

    /// The last mismatches, oldest first.
    pub(super) fn recent_mismatches(&self) -> Vec<MismatchRecord> {
        self.recent
            .lock()
            .map(|r| r.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `call` on `path`, timed into the statistics and metrics.
    pub(super) async fn timed<T>(
        &self,
        path: Path,
        op: Operation,
        call: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let started = Instant::now();
        let result = call.await;
        let elapsed = started.elapsed();
        self.op_stats[path.index()][op.index()].record(elapsed, result.is_ok());
        let outcome = if result.is_ok() { "ok" } else { "error" };
        self.metrics
            .calls
            .with_label_values(&[path.as_str(), op.as_str(), outcome])
            .inc();
        self.metrics
            .call_duration
            .with_label_values(&[path.as_str(), op.as_str()])
            .observe(elapsed.as_secs_f64());
        result
    }

    /// A call of `path` that never started counts as its failure.
    pub(super) fn could_not_call(&self, path: Path, op: Operation) {
        self.op_stats[path.index()][op.index()].record_failure();
    }

    /// `path`'s repeat of a change failed: it is behind now and adopts before its next call.
    pub(super) fn follower_failed(&self, path: Path, op: Operation, error: &EngineError) {
        warn!(path = path.as_str(), operation = op.as_str(), %error, "the following path could not re-apply the call; it will adopt the forkchoice before its next call");
        self.metrics
            .follower_errors
            .with_label_values(&[path.as_str()])
            .inc();
    }

    /// Shadow work was dropped (queue full, stale, or stopped by production).
    pub(super) fn dropped_shadow_work(&self) {
        self.shadow_dropped.fetch_add(1, Ordering::Relaxed);
        self.metrics.shadow_dropped.inc();
    }

    /// Shadow work gave the turn up mid-call to a production call.
    pub(super) fn preempted_shadow_work(&self) {
        self.shadow_preempted.fetch_add(1, Ordering::Relaxed);
        self.metrics.shadow_preempted.inc();
        self.dropped_shadow_work();
    }

    /// Bring `path` up to date (adopt the other's state) if it is behind. Needs the turn.
    pub(super) async fn ensure_synced(
        &self,
        path: Path,
        ledger: &mut Ledger,
    ) -> Result<(), EngineError> {
        if ledger.in_sync(path) {
            return Ok(());
        }
        self.adopt(path, ledger).await
    }

    /// `path` takes the other's forkchoice and withdrawal index (one forkchoiceUpdated). The
    /// source must not be behind itself: adopting its state would rewind the EL.
    pub(super) async fn adopt(&self, path: Path, ledger: &mut Ledger) -> Result<(), EngineError> {
        let source = path.other();
        if !ledger.in_sync(source) {
            return Err(EngineError::invalid_request(
                "path",
                format!(
                    "the {} path is behind the {} path (it has not applied the latest commit or finalization); adopting its state would rewind the execution client",
                    source.as_str(),
                    path.as_str()
                ),
            ));
        }
        let state = match source {
            Path::Legacy => self.legacy.path_state().await?,
            Path::Actor => self.actor.path_state().await?,
        };
        match path {
            Path::Legacy => self.legacy.adopt(state).await?,
            Path::Actor => self.actor.adopt(state).await?,
        }
        ledger.caught_up(path, ledger.applied(source));
        self.metrics
            .adoptions
            .with_label_values(&[path.as_str()])
            .inc();
        info!(path = path.as_str(), head = %state.forkchoice.head_block_hash, "path adopted the current forkchoice");
        Ok(())
    }

    /// After shadow work was stopped mid-call, announce `path`'s forkchoice once more: a
    /// stale shadow request the EL processes late cannot leave it on an older head.
    pub(super) async fn reassert(&self, path: Path, ledger: &mut Ledger) {
        if !std::mem::take(&mut ledger.shadow_preempted) {
            return;
        }
        let announced = match path {
            Path::Legacy => match self.legacy.path_state().await {
                Ok(state) => self.legacy.adopt(state).await,
                Err(e) => Err(e),
            },
            Path::Actor => match self.actor.path_state().await {
                Ok(state) => self.actor.adopt(state).await,
                Err(e) => Err(e),
            },
        };
        if let Err(e) = announced {
            warn!(path = path.as_str(), error = %e, "could not re-announce the forkchoice after stopping shadow work");
        }
    }

    /// Count a comparison of the two paths' answers.
    pub(super) fn compared(&self, op: Operation, mismatches: &[Mismatch]) {
        self.comparisons.fetch_add(1, Ordering::Relaxed);
        let outcome = if mismatches.is_empty() {
            "match"
        } else {
            self.mismatches.fetch_add(1, Ordering::Relaxed);
            for m in mismatches {
                self.metrics.mismatches.with_label_values(&[m.kind()]).inc();
                self.metrics.state_validation_failures.inc();
            }
            warn!(
                operation = op.as_str(),
                ?mismatches,
                "legacy and actor disagree"
            );
            if let Ok(mut recent) = self.recent.lock() {
                if recent.len() == RECENT_MISMATCHES {
                    recent.pop_front();
                }
                recent.push_back(MismatchRecord {
                    operation: op.as_str(),
                    mismatches: mismatches.to_vec(),
                });
            }
            "mismatch"
        };
        self.metrics
            .comparisons
            .with_label_values(&[op.as_str(), outcome])
            .inc();
    }

    /// Compare two outcomes: both answers with `same`; one path finding INVALID what the other
    /// accepted is an outcome mismatch; other failures are not comparisons.
    pub(super) fn compare_outcomes<T>(
        &self,
        op: Operation,
        legacy: &Result<T, EngineError>,
        actor: &Result<T, EngineError>,
        same: impl Fn(&T, &T) -> Vec<Mismatch>,
    ) {
        match (legacy, actor) {
            (Ok(l), Ok(a)) => self.compared(op, &same(l, a)),
            (Ok(_), Err(e @ EngineError::InvalidPayload { .. }))
            | (Err(e @ EngineError::InvalidPayload { .. }), Ok(_)) => {
                let (legacy, actor) = if legacy.is_ok() {
                    ("accepted".into(), e.to_string())
                } else {
                    (e.to_string(), "accepted".into())
                };
                self.compared(op, &[Mismatch::Outcome { legacy, actor }]);
            }
            _ => {}
        }
    }
}
