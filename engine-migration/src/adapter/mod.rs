//! The legacy `Engine` → `EngineActor` migration adapter.
//!
//! [`MigrationAdapter`] implements [`LegacyEngine`](crate::LegacyEngine) itself, so the node swaps it in where it
//! held the old engine, and routes every call by the current [`MigrationMode`]:
//!
//! | mode | answers | also runs |
//! |---|---|---|
//! | `LegacyOnly` | legacy | — |
//! | `Shadow` | legacy | the actor, in the background, on the same calls, only while no production call wants the EL; results compared |
//! | `Canary(p)` | the actor for p % of slots (by timestamp, so a replay splits the same way), else legacy; when the actor cannot answer (not on a verdict such as INVALID), legacy does | the other path re-applies each committed block and finalization |
//! | `Parallel` | both, legacy first (the actor only after legacy succeeded), compared; legacy's answer is returned (agreement or not) | — |
//! | `ActorPrimary` | the actor; legacy when the actor cannot answer (not on a verdict) | legacy re-applies each committed block |
//! | `ActorOnly` | the actor | — |
//! | `Rollback` | legacy (entered by an operator or by the health check) | — |
//!
//! Calls that change the execution client's state (build, commit, finalize, adoption) are made
//! holding one turn (`turn.rs`), whichever path makes them: the answering write and its repeat
//! by the other path are one step, and no two writes overlap at the EL (one node has one EL,
//! and EthereumJS, asked to build the same payload twice at once, returned two blocks with
//! different state roots). Shadow work takes the turn only when no production call wants it and
//! gives it up mid-call when one arrives, so it never delays production; the work queue is
//! bounded and drops what does not fit.
//!
//! Every state change (commit, finalize, adoption) gets a sequence number per path; a path that
//! has not applied the other's latest (the actor after `LegacyOnly`, legacy after `ActorOnly`, a
//! follower whose repeat failed) adopts the other path's forkchoice and withdrawal index (one
//! forkchoiceUpdated) before its next call; the numbers live under the turn. The mode lives in
//! one atomic: a switch is effective on the next call, and a call in flight finishes in the mode
//! it started in. Shadow work queued before a switch is dropped.
//!
//! After every call the adapter updates the health score and, when the configured
//! [`Thresholds`] are crossed in a mode that uses the actor, switches itself to `Rollback`.

//!
//! | file | what |
//! |---|---|
//! | `mode.rs` | [`MigrationMode`] |
//! | `turn.rs` | the EL-write turn and the ledger of applied changes |
//! | `paths.rs` | the two paths, statistics, comparisons, adoption |
//! | `shadow.rs` | shadow mode's bounded, preemptible background work |
//! | `config.rs` | [`AdapterConfig`] and the [`Operation`]s it counts |
//! | `legacy_engine.rs` | [`LegacyEngine`](crate::LegacyEngine) for the adapter: each call routed by the mode |

mod config;
mod legacy_engine;
mod mode;
mod paths;
mod shadow;
mod turn;

use std::{
    fmt,
    future::Future,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicU64, Ordering},
    },
    time::Instant,
};

pub use config::{AdapterConfig, Operation};
use engine_types::{EngineError, Severity};
pub use mode::MigrationMode;
use paths::Paths;
use serde::Serialize;
use shadow::{Change, ShadowJob, ShadowWork, shadow_worker};
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};
use turn::{Ledger, Path};

use crate::{
    ab::{AbSplit, Side},
    health::{HealthSample, RollbackReason, RollbackRecord, Thresholds},
    legacy::{MigrationPath, Mismatch},
    metrics::MigrationMetrics,
};

/// What [`MigrationAdapter::report`] returns.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct AdapterReport {
    /// The current mode.
    pub mode: MigrationMode,
    /// Calls, errors, latency and comparisons since the mode began.
    pub health: HealthSample,
    /// The health score of that sample, 0–100.
    pub score: f64,
    /// Actor failures answered by legacy instead.
    pub fallbacks: u64,
    /// Shadow jobs dropped (queue full, stale, mode changed, stopped by production).
    pub shadow_dropped: u64,
    /// Shadow jobs stopped mid-call so a production call could go (part of `shadow_dropped`).
    pub shadow_preempted: u64,
    /// The last rollback, if any.
    pub last_rollback: Option<RollbackRecord>,
    /// The last disagreements, oldest first.
    pub recent_mismatches: Vec<MismatchRecord>,
}

/// How many disagreements [`AdapterReport::recent_mismatches`] keeps.
pub const RECENT_MISMATCHES: usize = 16;

/// One disagreement between the paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MismatchRecord {
    /// The operation (`build`, `commit`).
    pub operation: &'static str,
    /// How the results differed.
    pub mismatches: Vec<Mismatch>,
}

/// Runs the legacy engine and the actor side by side; see the [module docs](self).
pub struct MigrationAdapter<L, A> {
    paths: Arc<Paths<L, A>>,
    mode: AtomicU16,
    /// Bumped at every mode change; shadow jobs of an older epoch are dropped.
    epoch: Arc<AtomicU64>,
    thresholds: Thresholds,
    /// Failed health checks in a row, and how many roll back.
    failed_checks: std::sync::atomic::AtomicU32,
    failed_checks_to_roll_back: u32,
    last_rollback: Mutex<Option<RollbackRecord>>,
    shadow: mpsc::Sender<ShadowJob>,
}

impl<L, A> fmt::Debug for MigrationAdapter<L, A> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrationAdapter")
            .field(
                "mode",
                &MigrationMode::decode(self.mode.load(Ordering::Acquire)),
            )
            .finish_non_exhaustive()
    }
}

impl<L, A> MigrationAdapter<L, A>
where
    L: MigrationPath + 'static,
    A: MigrationPath + 'static,
{
    /// Both paths in `mode`. The actor starts behind: before its first call it adopts the
    /// legacy forkchoice (or call [`Self::initialize_actor_from_legacy`] now). Needs a Tokio
    /// runtime (it spawns the shadow worker).
    pub fn new(
        legacy: L,
        actor: A,
        mode: MigrationMode,
        config: AdapterConfig,
        metrics: MigrationMetrics,
    ) -> Self {
        metrics.mode.set(mode.code());
        let paths = Arc::new(Paths::new(legacy, actor, config.validator, metrics));
        let epoch = Arc::new(AtomicU64::new(0));
        let (tx, rx) = mpsc::channel(config.shadow_queue.max(1));
        tokio::spawn(shadow_worker(Arc::clone(&paths), Arc::clone(&epoch), rx));
        Self {
            paths,
            mode: AtomicU16::new(mode.encode()),
            epoch,
            thresholds: config.thresholds,
            failed_checks: std::sync::atomic::AtomicU32::new(0),
            failed_checks_to_roll_back: config.failed_checks_to_roll_back,
            last_rollback: Mutex::new(None),
            shadow: tx,
        }
    }

    /// The current mode.
    pub fn mode(&self) -> MigrationMode {
        MigrationMode::decode(self.mode.load(Ordering::Acquire))
    }

    /// Switch to `mode` (effective on the next call; calls in flight finish in theirs); the
    /// statistics start again. Returns the previous mode.
    pub fn set_mode(&self, mode: MigrationMode) -> MigrationMode {
        let previous = MigrationMode::decode(self.mode.swap(mode.encode(), Ordering::AcqRel));
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.paths.reset_stats();
        self.paths.metrics.mode.set(mode.code());
        info!(%previous, %mode, "migration mode switched");
        previous
    }

    /// The legacy path.
    pub fn legacy(&self) -> &L {
        &self.paths.legacy
    }

    /// The actor path.
    pub fn actor(&self) -> &A {
        &self.paths.actor
    }

    /// The adapter's metrics.
    pub fn metrics(&self) -> &MigrationMetrics {
        &self.paths.metrics
    }

    /// Make the actor adopt the legacy path's forkchoice and withdrawal index now (one
    /// forkchoiceUpdated). Refused when legacy is behind the actor: that would rewind the EL.
    pub async fn initialize_actor_from_legacy(&self) -> Result<(), EngineError> {
        let mut ledger = self.paths.turn.production().await;
        self.paths.adopt(Path::Actor, &mut ledger).await
    }

    /// Roll back to the legacy path (from a mode that uses the actor; otherwise nothing
    /// happens and `None` is returned). The statistics start again (the record keeps the
    /// health that led here) and the legacy path is brought in sync.
    pub async fn rollback(&self, reason: RollbackReason) -> Option<RollbackRecord> {
        let started = Instant::now();
        // One atomic step: only a mode that uses the actor becomes Rollback.
        let from = self
            .mode
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |bits| {
                MigrationMode::decode(bits)
                    .uses_actor()
                    .then(|| MigrationMode::Rollback.encode())
            })
            .map(MigrationMode::decode)
            .ok()?;
        self.paths.metrics.mode.set(MigrationMode::Rollback.code());
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let health = self.paths.health();
        self.paths.reset_stats();
        {
            let mut ledger = self.paths.turn.production().await;
            if let Err(e) = self.paths.ensure_synced(Path::Legacy, &mut ledger).await {
                warn!(error = %e, "rollback: the legacy path could not adopt the actor's forkchoice yet; it will retry on the next call");
            }
        }
        let record = RollbackRecord {
            reason,
            from: from.to_string(),
            took: started.elapsed(),
            health,
        };
        self.paths.metrics.rollbacks.inc();
        warn!(from = %record.from, reason = %record.reason, took = ?record.took, "migration rolled back");
        if let Ok(mut last) = self.last_rollback.lock() {
            *last = Some(record.clone());
        }
        Some(record)
    }

    /// The last rollback, while the adapter is still in `Rollback` mode.
    pub fn active_rollback(&self) -> Option<RollbackRecord> {
        if self.mode() != MigrationMode::Rollback {
            return None;
        }
        self.last_rollback.lock().ok().and_then(|r| r.clone())
    }

    /// The figures since the current mode began.
    pub fn report(&self) -> AdapterReport {
        let p = &self.paths;
        let health = p.health();
        AdapterReport {
            mode: self.mode(),
            health,
            score: health.score(),
            fallbacks: p.fallbacks.load(Ordering::Relaxed),
            shadow_dropped: p.shadow_dropped.load(Ordering::Relaxed),
            shadow_preempted: p.shadow_preempted.load(Ordering::Relaxed),
            last_rollback: self.last_rollback.lock().ok().and_then(|r| r.clone()),
            recent_mismatches: p.recent_mismatches(),
        }
    }

    /// Wait until the shadow work queued so far has run (or been dropped).
    pub async fn shadow_idle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shadow.send(ShadowJob::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    /// Queue shadow work; a full queue drops it (counted).
    fn enqueue(&self, epoch: u64, work: ShadowWork) {
        if self
            .shadow
            .try_send(ShadowJob::Work { epoch, work })
            .is_err()
        {
            self.paths.dropped_shadow_work();
        }
    }

    /// After a call: update the health score, and roll back when the thresholds are crossed
    /// in `failed_checks_to_roll_back` checks in a row, in a mode that uses the actor (and the
    /// mode did not change meanwhile).
    async fn after_call(&self, mode: MigrationMode) {
        let health = self.paths.health();
        self.paths.metrics.health_score.set(health.score());
        if !mode.uses_actor() || self.mode() != mode {
            self.failed_checks.store(0, Ordering::Relaxed);
            return;
        }
        let Some(reason) = self.thresholds.check(&health) else {
            self.failed_checks.store(0, Ordering::Relaxed);
            return;
        };
        let in_a_row = self.failed_checks.fetch_add(1, Ordering::Relaxed) + 1;
        if in_a_row >= self.failed_checks_to_roll_back {
            self.failed_checks.store(0, Ordering::Relaxed);
            self.rollback(reason).await;
        }
    }

    /// Which path answers slot-bound calls in `mode` for the slot at `timestamp`.
    fn answering(mode: MigrationMode, timestamp: u64) -> Path {
        match mode {
            MigrationMode::LegacyOnly
            | MigrationMode::Shadow
            | MigrationMode::Parallel
            | MigrationMode::Rollback => Path::Legacy,
            MigrationMode::ActorPrimary | MigrationMode::ActorOnly => Path::Actor,
            MigrationMode::Canary(p) => match AbSplit::new(p)
                .map(|s| s.side_for_slot(timestamp))
                .unwrap_or(Side::Baseline)
            {
                Side::Candidate => Path::Actor,
                Side::Baseline => Path::Legacy,
            },
        }
    }

    /// Which path answers reads (keyed by the hash read) in `mode`.
    fn reading(mode: MigrationMode, key: &[u8]) -> Path {
        match mode {
            MigrationMode::Canary(p) => match AbSplit::new(p)
                .map(|s| s.side(key))
                .unwrap_or(Side::Baseline)
            {
                Side::Candidate => Path::Actor,
                Side::Baseline => Path::Legacy,
            },
            other => Self::answering(other, 0),
        }
    }

    /// `call(path)`, timed; on success of a state change, numbered in the ledger. Needs the
    /// turn (`ledger`) for every call that writes to the EL.
    async fn timed_write<T, Fut>(
        &self,
        path: Path,
        op: Operation,
        call: Fut,
        ledger: &mut Ledger,
    ) -> (Result<T, EngineError>, Option<Change>)
    where
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let before = ledger.applied(path);
        let result = self.paths.timed(path, op, call).await;
        let change = (result.is_ok() && op.changes_state()).then(|| Change {
            before,
            seq: ledger.record_change(path),
        });
        (result, change)
    }

    /// `answer` runs `call`, after catching up if it is behind; with `fallback`, when the
    /// actor cannot answer at all (not a verdict such as INVALID), legacy answers instead.
    /// Returns who answered, the result and the change it made.
    async fn answer<T, F, Fut>(
        &self,
        op: Operation,
        answer: Path,
        fallback: bool,
        call: &F,
        ledger: &mut Ledger,
    ) -> (Path, Result<T, EngineError>, Option<Change>)
    where
        F: Fn(Path) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let (first, change, unable) = match self.paths.ensure_synced(answer, ledger).await {
            Ok(()) => {
                let (result, change) = self.timed_write(answer, op, call(answer), ledger).await;
                let unable = result
                    .as_ref()
                    .is_err_and(|e| e.severity() != Severity::Rejected);
                (result, change, unable)
            }
            // It could not even catch up: whatever the error, it cannot answer.
            Err(e) => {
                self.paths.could_not_call(answer, op);
                (Err(e), None, true)
            }
        };
        match first {
            Err(e) if fallback && answer == Path::Actor && unable => {
                warn!(operation = op.as_str(), error = %e, "actor failed; the legacy path answers");
                self.paths.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.paths
                    .metrics
                    .fallbacks
                    .with_label_values(&[op.as_str()])
                    .inc();
                let (second, change) = match self.paths.ensure_synced(Path::Legacy, ledger).await {
                    Ok(()) => {
                        self.timed_write(Path::Legacy, op, call(Path::Legacy), ledger)
                            .await
                    }
                    Err(e) => (Err(e), None),
                };
                (Path::Legacy, second, change)
            }
            other => (answer, other, change),
        }
    }

    /// A call that changes the EL's state, in one turn: `answer` runs it (with the fallback
    /// of [`Self::answer`] in canary and actor-primary); in those modes the other path then
    /// repeats a successful state change. Shadow work stopped for it is re-announced.
    async fn write<T, F, Fut>(
        &self,
        mode: MigrationMode,
        op: Operation,
        answer: Path,
        call: F,
    ) -> (Result<T, EngineError>, Option<Change>)
    where
        F: Fn(Path) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let follows = matches!(mode, MigrationMode::ActorPrimary | MigrationMode::Canary(_));
        let mut ledger = self.paths.turn.production().await;
        // The follower must be up to date before the write it is to repeat.
        let follower = answer.other();
        let follower_ready = follows
            && op.changes_state()
            && self
                .paths
                .ensure_synced(follower, &mut ledger)
                .await
                .is_ok();
        let (answered, result, change) = self.answer(op, answer, follows, &call, &mut ledger).await;
        // (When legacy answered after the actor failed, the actor is simply behind.)
        if let Some(change) = change
            && answered == answer
            && follower_ready
        {
            match self.paths.timed(follower, op, call(follower)).await {
                Ok(_) => ledger.caught_up(follower, change.seq),
                Err(e) => self.paths.follower_failed(follower, op, &e),
            }
        }
        self.paths.reassert(answered, &mut ledger).await;
        (result, change)
    }

    /// Parallel mode, in one turn: legacy first, then (only if legacy succeeded) the actor
    /// on the same call; legacy's answer is returned with the actor's for comparison.
    async fn parallel<T>(
        &self,
        op: Operation,
        legacy: impl Future<Output = Result<T, EngineError>>,
        actor: impl Future<Output = Result<T, EngineError>>,
    ) -> (Result<T, EngineError>, Option<Result<T, EngineError>>) {
        let mut ledger = self.paths.turn.production().await;
        let actor_ready = self.paths.ensure_synced(Path::Actor, &mut ledger).await;
        let (legacy, change) = match self.paths.ensure_synced(Path::Legacy, &mut ledger).await {
            Ok(()) => {
                self.timed_write(Path::Legacy, op, legacy, &mut ledger)
                    .await
            }
            Err(e) => (Err(e), None),
        };
        if legacy.is_err() {
            return (legacy, None);
        }
        let actor = match actor_ready {
            Ok(()) => {
                let result = self.paths.timed(Path::Actor, op, actor).await;
                if let (Ok(_), Some(change)) = (&result, change) {
                    ledger.caught_up(Path::Actor, change.seq);
                }
                result
            }
            Err(e) => {
                self.paths.could_not_call(Path::Actor, op);
                Err(e)
            }
        };
        (legacy, Some(actor))
    }

    /// A read, keyed by the hash it reads: routed by the mode (by the key in canary mode),
    /// falling back to legacy when the actor cannot answer in canary and actor-primary. Reads
    /// change nothing: no turn.
    async fn read<T, F, Fut>(&self, op: Operation, key: &[u8], call: F) -> Result<T, EngineError>
    where
        F: Fn(Path) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let mode = self.mode();
        let fallback = matches!(mode, MigrationMode::ActorPrimary | MigrationMode::Canary(_));
        let path = Self::reading(mode, key);
        let first = self.paths.timed(path, op, call(path)).await;
        let result = match first {
            Err(e) if fallback && path == Path::Actor && e.severity() != Severity::Rejected => {
                self.paths.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.paths
                    .metrics
                    .fallbacks
                    .with_label_values(&[op.as_str()])
                    .inc();
                self.paths.timed(Path::Legacy, op, call(Path::Legacy)).await
            }
            other => other,
        };
        self.after_call(mode).await;
        result
    }
}
