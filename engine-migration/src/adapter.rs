//! The legacy `Engine` → `EngineActor` migration adapter.
//!
//! [`MigrationAdapter`] implements [`LegacyEngine`] itself, so the node swaps it in where it
//! held the old engine, and routes every call by the current [`MigrationMode`]:
//!
//! | mode | answers | also runs |
//! |---|---|---|
//! | `LegacyOnly` | legacy | — |
//! | `Shadow` | legacy | the actor, in the background (between legacy's calls, never during one), on the same calls; results compared |
//! | `Canary(p)` | the actor for p % of slots (by timestamp, so a replay splits the same way), else legacy; when the actor cannot answer (not on a verdict such as INVALID), legacy does | the other path re-applies each committed block and finalization |
//! | `Parallel` | both, legacy first (the actor only after legacy succeeded), compared; legacy's answer is returned (agreement or not) | — |
//! | `ActorPrimary` | the actor; legacy when the actor cannot answer (not on a verdict) | legacy re-applies each committed block |
//! | `ActorOnly` | the actor | — |
//! | `Rollback` | legacy (entered by an operator or by the health check) | — |
//!
//! Calls that change the execution client's state (build, commit, finalize, adoption) never
//! overlap, whichever path makes them: one node has one EL, and EthereumJS, asked to build the
//! same payload twice at once, returned two blocks with different state roots.
//!
//! Every state change (commit, finalize, adoption) gets a sequence number per path; a path that
//! has not applied the other's latest (the actor after `LegacyOnly`, legacy after `ActorOnly`, a
//! follower whose repeat failed) adopts the other path's forkchoice and withdrawal index (one
//! forkchoiceUpdated) before its next call. The mode lives in one atomic: a switch is effective
//! on the next call, and a call in flight finishes in the mode it started in. Shadow work queued
//! before a switch is dropped.
//!
//! After every call the adapter updates the health score and, when the configured
//! [`Thresholds`] are crossed in a mode that uses the actor, switches itself to `Rollback`.

use std::{
    fmt,
    str::FromStr,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU16, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayload};
use alloy_rpc_types_eth::{Block, TransactionReceipt};
use engine_types::{AddBalance, EngineError, Severity};
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use crate::{
    ab::{AbSplit, Side},
    health::{HealthSample, PathSample, PathStats, RollbackReason, RollbackRecord, Thresholds},
    legacy::{LegacyEngine, MigrationPath, Mismatch, StateValidator},
    metrics::MigrationMetrics,
};

/// How the adapter routes calls. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum MigrationMode {
    /// The legacy path only.
    LegacyOnly,
    /// Legacy answers; the actor runs the same calls in the background and is compared.
    Shadow,
    /// The actor answers this percentage of slots.
    Canary(u8),
    /// Both run (legacy first, the actor only if legacy succeeded); legacy's answer is returned.
    Parallel,
    /// The actor answers, legacy on actor errors.
    ActorPrimary,
    /// The actor only.
    ActorOnly,
    /// Rolled back: the legacy path only.
    Rollback,
}

impl MigrationMode {
    /// A canary mode; `percent` must be 0–100.
    pub fn canary(percent: u8) -> Result<Self, EngineError> {
        AbSplit::new(percent).map(|s| Self::Canary(s.percent()))
    }

    /// The value of the `engine_migration_mode` gauge (1–7; 0 means no migration).
    pub const fn code(self) -> i64 {
        match self {
            Self::LegacyOnly => 1,
            Self::Shadow => 2,
            Self::Canary(_) => 3,
            Self::Parallel => 4,
            Self::ActorPrimary => 5,
            Self::ActorOnly => 6,
            Self::Rollback => 7,
        }
    }

    /// Whether calls reach the actor in this mode.
    pub const fn uses_actor(self) -> bool {
        !matches!(self, Self::LegacyOnly | Self::Rollback)
    }

    const fn encode(self) -> u16 {
        // A percentage above 100 (the variant is public) means everything: clamp it, so
        // every reader of the mode sees the same 0–100 value.
        let percent = match self {
            Self::Canary(p) if p > 100 => 100,
            Self::Canary(p) => p as u16,
            _ => 0,
        };
        ((self.code() as u16) << 8) | percent
    }

    const fn decode(bits: u16) -> Self {
        match bits >> 8 {
            2 => Self::Shadow,
            3 => Self::Canary((bits & 0xff) as u8),
            4 => Self::Parallel,
            5 => Self::ActorPrimary,
            6 => Self::ActorOnly,
            7 => Self::Rollback,
            _ => Self::LegacyOnly,
        }
    }
}

impl fmt::Display for MigrationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LegacyOnly => f.write_str("legacy-only"),
            Self::Shadow => f.write_str("shadow"),
            Self::Canary(p) => write!(f, "canary:{p}"),
            Self::Parallel => f.write_str("parallel"),
            Self::ActorPrimary => f.write_str("actor-primary"),
            Self::ActorOnly => f.write_str("actor-only"),
            Self::Rollback => f.write_str("rollback"),
        }
    }
}

impl FromStr for MigrationMode {
    type Err = EngineError;

    /// `legacy-only`, `shadow`, `canary:25`, `parallel`, `actor-primary`, `actor-only`,
    /// `rollback` (the [`Display`](fmt::Display) form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || {
            EngineError::invalid_request(
                "mode",
                format!(
                    "`{s}` is not a migration mode; use legacy-only, shadow, canary:<0-100>, parallel, actor-primary, actor-only or rollback"
                ),
            )
        };
        Ok(match s.trim() {
            "legacy-only" => Self::LegacyOnly,
            "shadow" => Self::Shadow,
            "parallel" => Self::Parallel,
            "actor-primary" => Self::ActorPrimary,
            "actor-only" => Self::ActorOnly,
            "rollback" => Self::Rollback,
            other => {
                let percent = other
                    .strip_prefix("canary:")
                    .and_then(|p| p.parse::<u8>().ok())
                    .ok_or_else(unknown)?;
                Self::canary(percent)?
            }
        })
    }
}

/// The adapter's operations (metric labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `build_block`.
    Build,
    /// `commit_block`.
    Commit,
    /// `set_finalized`.
    Finalize,
    /// `get_block_with_txs`.
    GetBlock,
    /// `get_transaction_receipt`.
    GetReceipt,
}

impl Operation {
    const COUNT: usize = 5;

    const fn index(self) -> usize {
        match self {
            Self::Build => 0,
            Self::Commit => 1,
            Self::Finalize => 2,
            Self::GetBlock => 3,
            Self::GetReceipt => 4,
        }
    }

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Build => "build",
            Self::Commit => "commit",
            Self::Finalize => "finalize",
            Self::GetBlock => "get_block",
            Self::GetReceipt => "get_receipt",
        }
    }
}

/// The legacy or the actor path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Path {
    Legacy,
    Actor,
}

impl Path {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Actor => "actor",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Legacy => 0,
            Self::Actor => 1,
        }
    }

    const fn other(self) -> Self {
        match self {
            Self::Legacy => Self::Actor,
            Self::Actor => Self::Legacy,
        }
    }
}

/// How the adapter compares, when it rolls back, and how much shadow work it queues.
#[derive(Debug, Clone, Copy)]
pub struct AdapterConfig {
    /// How payloads are compared.
    pub validator: StateValidator,
    /// When the adapter rolls itself back ([`Thresholds::disabled`] to never).
    pub thresholds: Thresholds,
    /// Shadow jobs queued at most; beyond it a job is dropped (and counted) rather than the
    /// legacy caller kept waiting for queue space. (A legacy write does wait for the one shadow
    /// call in flight, if any: writes to the EL never overlap.)
    pub shadow_queue: usize,
    /// In shadow mode, how long a legacy commit waits for the actor's shadow build of the same
    /// slot (which must run before the head moves); a build still pending after that is
    /// skipped and counted as dropped. Default 500 ms.
    pub shadow_wait: Duration,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            validator: StateValidator::default(),
            thresholds: Thresholds::default(),
            shadow_queue: 64,
            shadow_wait: Duration::from_millis(500),
        }
    }
}

/// The adapter's figures since the current mode began (`recent_mismatches` and
/// `last_rollback` span modes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdapterReport {
    /// The mode now.
    pub mode: MigrationMode,
    /// Legacy (baseline) vs actor (candidate), comparisons and mismatches.
    pub health: HealthSample,
    /// The health score, 0–100.
    pub score: f64,
    /// Actor errors answered by legacy.
    pub fallbacks: u64,
    /// Shadow jobs dropped: the queue was full, legacy had moved on before the job ran, or the
    /// mode changed.
    pub shadow_dropped: u64,
    /// The last rollback, if any.
    pub last_rollback: Option<RollbackRecord>,
    /// The most recent disagreements (up to [`RECENT_MISMATCHES`]), oldest first.
    pub recent_mismatches: Vec<MismatchRecord>,
}

/// How many disagreements the report keeps.
pub const RECENT_MISMATCHES: usize = 16;

/// One disagreement between the paths.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MismatchRecord {
    /// The operation (`build`, `commit`).
    pub operation: &'static str,
    /// How the results differed.
    pub mismatches: Vec<Mismatch>,
}

/// What both paths share with the shadow worker.
struct Shared<L, A> {
    legacy: L,
    actor: A,
    validator: StateValidator,
    /// Calls, errors and latency per path and operation (the health check compares latency
    /// operation by operation; a path's calls and errors are the sums).
    op_stats: [[PathStats; Operation::COUNT]; 2],
    /// The sequence number of the last state change (commit, finalize, adoption) each path
    /// has applied; a path behind the other adopts the other's state before it is used.
    applied: [AtomicU64; 2],
    /// State changes so far (the source of those sequence numbers).
    writes: AtomicU64,
    /// Bumped at every mode change; shadow jobs of an older epoch are dropped.
    epoch: AtomicU64,
    comparisons: AtomicU64,
    mismatches: AtomicU64,
    fallbacks: AtomicU64,
    shadow_dropped: AtomicU64,
    recent: Mutex<std::collections::VecDeque<MismatchRecord>>,
    /// Held by every call that changes the EL's state, so no two overlap.
    el_writes: tokio::sync::Mutex<()>,
    metrics: MigrationMetrics,
}

/// How a successful state change is numbered.
#[derive(Debug, Clone, Copy)]
enum Numbering {
    /// A new change (the answering path).
    New,
    /// A repeat of change `seq` (a follower).
    Repeat(u64),
}

/// A numbered state change: the path had applied `before`, the change is `seq`.
#[derive(Debug, Clone, Copy)]
struct Change {
    before: u64,
    seq: u64,
}

/// A message for the shadow worker.
enum ShadowJob {
    /// Repeat a legacy call on the actor, unless the mode changed since `epoch`.
    Work { epoch: u64, work: ShadowWork },
    /// Answer once every earlier job has run.
    Flush(oneshot::Sender<()>),
}

/// A legacy call to repeat on the actor.
enum ShadowWork {
    Build {
        timestamp: Duration,
        parent: B256,
        add_balances: Vec<AddBalance>,
        legacy: Box<ExecutionPayload>,
    },
    /// Legacy committed `payload` as state change `change`.
    Commit {
        payload: Box<ExecutionData>,
        change: Change,
    },
    /// Legacy finalized `hash` as state change `change`.
    Finalize { hash: B256, change: Change },
}

/// Runs the legacy engine and the actor side by side; see the [module docs](self).
pub struct MigrationAdapter<L, A> {
    shared: Arc<Shared<L, A>>,
    mode: AtomicU16,
    thresholds: Thresholds,
    last_rollback: Mutex<Option<RollbackRecord>>,
    shadow: mpsc::Sender<ShadowJob>,
    shadow_wait: Duration,
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
        let shared = Arc::new(Shared {
            legacy,
            actor,
            validator: config.validator,
            op_stats: Default::default(),
            // The actor starts one change behind: it adopts legacy's state before its first call.
            applied: [AtomicU64::new(1), AtomicU64::new(0)],
            writes: AtomicU64::new(1),
            epoch: AtomicU64::new(0),
            comparisons: AtomicU64::new(0),
            mismatches: AtomicU64::new(0),
            fallbacks: AtomicU64::new(0),
            shadow_dropped: AtomicU64::new(0),
            recent: Mutex::new(std::collections::VecDeque::new()),
            el_writes: tokio::sync::Mutex::new(()),
            metrics,
        });
        let (tx, rx) = mpsc::channel(config.shadow_queue.max(1));
        tokio::spawn(shadow_worker(Arc::clone(&shared), rx));
        Self {
            shared,
            mode: AtomicU16::new(mode.encode()),
            thresholds: config.thresholds,
            last_rollback: Mutex::new(None),
            shadow: tx,
            shadow_wait: config.shadow_wait,
        }
    }

    /// The mode now.
    pub fn mode(&self) -> MigrationMode {
        MigrationMode::decode(self.mode.load(Ordering::Acquire))
    }

    /// Switch to `mode`; effective on the next call. Statistics restart (a new stage begins).
    /// Returns the previous mode.
    pub fn set_mode(&self, mode: MigrationMode) -> MigrationMode {
        let previous = MigrationMode::decode(self.mode.swap(mode.encode(), Ordering::AcqRel));
        self.new_epoch();
        self.reset_stats();
        self.shared.metrics.mode.set(mode.code());
        info!(%previous, %mode, "migration mode switched");
        previous
    }

    /// The legacy path.
    pub fn legacy(&self) -> &L {
        &self.shared.legacy
    }

    /// The actor path.
    pub fn actor(&self) -> &A {
        &self.shared.actor
    }

    /// The metrics.
    pub fn metrics(&self) -> &MigrationMetrics {
        &self.shared.metrics
    }

    /// Make the actor adopt the legacy engine's head, safe, finalized and next withdrawal index
    /// now (one call; one forkchoiceUpdated). Refused, changing nothing, when legacy is behind
    /// the actor (after `ActorOnly`, say): that would rewind the execution client.
    pub async fn initialize_actor_from_legacy(&self) -> Result<(), EngineError> {
        self.shared.adopt(Path::Actor, true).await
    }

    /// Roll back now, for `reason`: the mode becomes `Rollback`, statistics restart (the
    /// record keeps the health that led here) and the legacy path is brought in sync. Returns the record (also kept as the last rollback), or None when the adapter
    /// was not using the actor (nothing to roll back).
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
        self.shared.metrics.mode.set(MigrationMode::Rollback.code());
        self.new_epoch();
        let health = self.shared.health();
        self.reset_stats();
        if let Err(e) = self.shared.ensure_synced(Path::Legacy).await {
            warn!(error = %e, "rollback: the legacy path could not adopt the actor's forkchoice yet; it will retry on the next call");
        }
        let record = RollbackRecord {
            reason,
            from: from.to_string(),
            took: started.elapsed(),
            health,
        };
        self.shared.metrics.rollbacks.inc();
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
        let health = self.shared.health();
        AdapterReport {
            mode: self.mode(),
            health,
            score: health.score(),
            fallbacks: self.shared.fallbacks.load(Ordering::Relaxed),
            shadow_dropped: self.shared.shadow_dropped.load(Ordering::Relaxed),
            last_rollback: self.last_rollback.lock().ok().and_then(|r| r.clone()),
            recent_mismatches: self
                .shared
                .recent
                .lock()
                .map(|r| r.iter().cloned().collect())
                .unwrap_or_default(),
        }
    }

    /// Wait until every shadow job queued so far has run (tests, and before a mode switch
    /// that should judge the shadow's results).
    pub async fn shadow_idle(&self) {
        let (tx, rx) = oneshot::channel();
        if self.shadow.send(ShadowJob::Flush(tx)).await.is_ok() {
            let _ = rx.await;
        }
    }

    fn reset_stats(&self) {
        let s = &self.shared;
        for stats in s.op_stats.iter().flatten() {
            stats.reset();
        }
        for counter in [
            &s.comparisons,
            &s.mismatches,
            &s.fallbacks,
            &s.shadow_dropped,
        ] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    /// A new mode epoch: queued shadow jobs are dropped (an actor that misses their writes is
    /// behind and adopts the legacy state before its next call).
    fn new_epoch(&self) {
        self.shared.epoch.fetch_add(1, Ordering::AcqRel);
    }

    /// Queue `work` for the shadow worker, stamped with the epoch its call began in.
    fn enqueue(&self, epoch: u64, work: ShadowWork) {
        if self
            .shadow
            .try_send(ShadowJob::Work { epoch, work })
            .is_err()
        {
            self.shared.shadow_dropped.fetch_add(1, Ordering::Relaxed);
            self.shared.metrics.shadow_dropped.inc();
        }
    }

    /// After a call: refresh the score and roll back if the thresholds say so.
    async fn after_call(&self, mode: MigrationMode) {
        let health = self.shared.health();
        self.shared.metrics.health_score.set(health.score());
        if mode.uses_actor()
            && self.mode() == mode
            && let Some(reason) = self.thresholds.check(&health)
        {
            self.rollback(reason).await;
        }
    }

    /// Answer with `answer` (by the canary split or the mode), falling back to legacy on an
    /// actor error when `fallback` is set. Returns the path that answered.
    async fn primary_with_fallback<T, F, Fut>(
        &self,
        op: Operation,
        answer: Path,
        fallback: bool,
        call: F,
    ) -> (Path, Result<T, EngineError>, Option<Change>)
    where
        F: Fn(Path) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        // (result, its number, whether the path could not answer at all)
        let (first, change, unable) = match self.shared.ensure_synced(answer).await {
            Ok(()) => {
                let (result, change) = self.shared.timed(answer, op, call(answer)).await;
                let unable = result
                    .as_ref()
                    .is_err_and(|e| e.severity() != Severity::Rejected);
                (result, change, unable)
            }
            // It could not even catch up: whatever the error, it cannot answer.
            Err(e) => {
                self.shared.op_stats[answer.index()][op.index()].record_failure();
                (Err(e), None, true)
            }
        };
        match first {
            // A verdict (INVALID, a bad request) is an answer, not a failure of the actor:
            // legacy is asked only when the actor could not answer.
            Err(e) if fallback && answer == Path::Actor && unable => {
                warn!(operation = op.as_str(), error = %e, "actor failed; the legacy path answers");
                self.shared.fallbacks.fetch_add(1, Ordering::Relaxed);
                self.shared
                    .metrics
                    .fallbacks
                    .with_label_values(&[op.as_str()])
                    .inc();
                let (second, change) = match self.shared.ensure_synced(Path::Legacy).await {
                    Ok(()) => {
                        self.shared
                            .timed(Path::Legacy, op, call(Path::Legacy))
                            .await
                    }
                    Err(e) => (Err(e), None),
                };
                (Path::Legacy, second, change)
            }
            other => (answer, other, change),
        }
    }

    /// The answer of [`Self::primary_with_fallback`] and the number of its change.
    async fn answer_with<T, F, Fut>(
        &self,
        op: Operation,
        answer: Path,
        fallback: bool,
        call: F,
    ) -> (Result<T, EngineError>, Option<Change>)
    where
        F: Fn(Path) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let (_, result, change) = self.primary_with_fallback(op, answer, fallback, call).await;
        (result, change)
    }

    /// Parallel mode: both paths brought up to date first, then legacy's call, then — only if
    /// it succeeded — the actor's. Legacy's result, and the actor's when it ran.
    async fn parallel<T>(
        &self,
        op: Operation,
        legacy: impl Future<Output = Result<T, EngineError>>,
        actor: impl Future<Output = Result<T, EngineError>>,
    ) -> (Result<T, EngineError>, Option<Result<T, EngineError>>) {
        let s = &self.shared;
        let actor_ready = s.ensure_synced(Path::Actor).await;
        let (legacy, change) = match s.ensure_synced(Path::Legacy).await {
            Ok(()) => s.timed(Path::Legacy, op, legacy).await,
            Err(e) => (Err(e), None),
        };
        if legacy.is_err() {
            return (legacy, None);
        }
        let numbering = change.map_or(Numbering::New, |c| Numbering::Repeat(c.seq));
        let actor = match actor_ready {
            Ok(()) => s.timed_numbered(Path::Actor, op, actor, numbering).await.0,
            Err(e) => {
                s.op_stats[Path::Actor.index()][op.index()].record_failure();
                Err(e)
            }
        };
        (legacy, Some(actor))
    }

    /// A read, keyed by the hash it reads: routed by the mode (by the key in canary mode),
    /// falling back to legacy when the actor cannot answer in canary and actor-primary.
    async fn read<T, F, Fut>(&self, op: Operation, key: &B256, call: F) -> Result<T, EngineError>
    where
        F: Fn(Path) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let mode = self.mode();
        let fallback = matches!(mode, MigrationMode::ActorPrimary | MigrationMode::Canary(_));
        let (result, _) = self
            .answer_with(op, Self::reading(mode, key), fallback, call)
            .await;
        self.after_call(mode).await;
        result
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
    fn reading(mode: MigrationMode, key: &B256) -> Path {
        match mode {
            MigrationMode::Canary(p) => match AbSplit::new(p)
                .map(|s| s.side(key.as_slice()))
                .unwrap_or(Side::Baseline)
            {
                Side::Candidate => Path::Actor,
                Side::Baseline => Path::Legacy,
            },
            other => Self::answering(other, 0),
        }
    }

    /// A write both paths must see (commit, finalize): the answering path runs it, then the
    /// following path (if the mode has one) re-applies it; a path that sits it out is behind.
    async fn write_everywhere<T, F, Fut>(
        &self,
        mode: MigrationMode,
        op: Operation,
        answer: Path,
        call: F,
    ) -> Result<T, EngineError>
    where
        F: Fn(Path) -> Fut,
        Fut: Future<Output = Result<T, EngineError>>,
    {
        let follows = matches!(mode, MigrationMode::ActorPrimary | MigrationMode::Canary(_));
        // The follower must be up to date before the write it is to repeat.
        let follower = answer.other();
        let follower_ready = follows && self.shared.ensure_synced(follower).await.is_ok();
        let (answered, result, change) =
            self.primary_with_fallback(op, answer, follows, &call).await;
        // (When legacy answered after the actor failed, the actor is simply behind.)
        if let Some(change) = change
            && answered == answer
            && follower_ready
        {
            let (repeated, _) = self
                .shared
                .timed_numbered(follower, op, call(follower), Numbering::Repeat(change.seq))
                .await;
            if let Err(e) = repeated {
                self.shared.follower_failed(follower, op, &e);
            }
        }
        result
    }
}

impl<L, A> Shared<L, A>
where
    L: MigrationPath,
    A: MigrationPath,
{
    /// Calls and errors over all operations; latencies of the operation both paths ran most
    /// (reads only reach legacy in several modes, so mixing operations would compare cheap
    /// reads with writes).
    fn health(&self) -> HealthSample {
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

    /// A path's calls and errors over every operation.
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

    /// Whether `path` has applied every state change the other path has.
    fn in_sync(&self, path: Path) -> bool {
        self.applied[path.index()].load(Ordering::Acquire)
            >= self.applied[path.other().index()].load(Ordering::Acquire)
    }

    /// `path` applied a new state change; its sequence number.
    fn wrote(&self, path: Path) -> u64 {
        let seq = self.writes.fetch_add(1, Ordering::AcqRel) + 1;
        self.applied[path.index()].fetch_max(seq, Ordering::AcqRel);
        seq
    }

    /// `path` repeated the state change `seq`.
    fn followed(&self, path: Path, seq: u64) {
        self.applied[path.index()].fetch_max(seq, Ordering::AcqRel);
    }

    /// One call on `path`, timed and counted; calls that change the EL's state take the write
    /// lock first. A successful commit or finalization is numbered as a new state change.
    async fn timed<T>(
        &self,
        path: Path,
        op: Operation,
        call: impl Future<Output = Result<T, EngineError>>,
    ) -> (Result<T, EngineError>, Option<Change>) {
        self.timed_numbered(path, op, call, Numbering::New).await
    }

    /// [`Self::timed`], numbering a success as `numbering` says. The number is taken before the
    /// write lock is released, so no other write can land between a change and its number.
    async fn timed_numbered<T>(
        &self,
        path: Path,
        op: Operation,
        call: impl Future<Output = Result<T, EngineError>>,
        numbering: Numbering,
    ) -> (Result<T, EngineError>, Option<Change>) {
        let _writing = match op {
            Operation::Build | Operation::Commit | Operation::Finalize => {
                Some(self.el_writes.lock().await)
            }
            Operation::GetBlock | Operation::GetReceipt => None,
        };
        let result = self.timed_holding_lock(path, op, call).await;
        let change = match (&result, op) {
            (Ok(_), Operation::Commit | Operation::Finalize) => match numbering {
                Numbering::New => {
                    let before = self.applied[path.index()].load(Ordering::Acquire);
                    Some(Change {
                        before,
                        seq: self.wrote(path),
                    })
                }
                Numbering::Repeat(seq) => {
                    self.followed(path, seq);
                    None
                }
            },
            _ => None,
        };
        (result, change)
    }

    /// [`Self::timed`] for a caller that already holds the write lock.
    async fn timed_holding_lock<T>(
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

    fn follower_failed(&self, path: Path, op: Operation, error: &EngineError) {
        warn!(path = path.as_str(), operation = op.as_str(), %error, "the following path could not re-apply the call; it will adopt the forkchoice before its next call");
        self.metrics
            .follower_errors
            .with_label_values(&[path.as_str()])
            .inc();
    }

    /// Bring `path` up to the other path's state if it is behind. The other path's state is
    /// read under the write lock, so a write in flight on it lands first and is what gets
    /// adopted.
    async fn ensure_synced(&self, path: Path) -> Result<(), EngineError> {
        if self.in_sync(path) {
            return Ok(());
        }
        self.adopt(path, false).await
    }

    /// `path` adopts the other path's state (when behind, or always with `force` — but never
    /// from a source that is itself behind: that would rewind the EL).
    async fn adopt(&self, path: Path, force: bool) -> Result<(), EngineError> {
        let _writing = self.el_writes.lock().await;
        if !force && self.in_sync(path) {
            return Ok(());
        }
        let source = path.other();
        if !self.in_sync(source) {
            return Err(EngineError::invalid_request(
                "path",
                format!(
                    "the {} path is behind the {} path (it has not applied the latest commit or finalization); adopting its state would rewind the execution client",
                    source.as_str(),
                    path.as_str()
                ),
            ));
        }
        let source_applied = self.applied[source.index()].load(Ordering::Acquire);
        let state = match source {
            Path::Legacy => self.legacy.path_state().await?,
            Path::Actor => self.actor.path_state().await?,
        };
        match path {
            Path::Legacy => self.legacy.adopt(state).await?,
            Path::Actor => self.actor.adopt(state).await?,
        }
        self.applied[path.index()].fetch_max(source_applied, Ordering::AcqRel);
        self.metrics
            .adoptions
            .with_label_values(&[path.as_str()])
            .inc();
        info!(path = path.as_str(), head = %state.forkchoice.head_block_hash, "path adopted the current forkchoice");
        Ok(())
    }

    fn compared(&self, op: Operation, mismatches: &[Mismatch]) {
        self.comparisons.fetch_add(1, Ordering::Relaxed);
        let outcome = if mismatches.is_empty() {
            "match"
        } else {
            self.mismatches.fetch_add(1, Ordering::Relaxed);
            for m in mismatches {
                self.metrics.mismatches.with_label_values(&[m.kind()]).inc();
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

    /// Compare two outcomes of the same call. Errors are counted as errors, not mismatches,
    /// unless one path found the payload INVALID while the other accepted it: that is a
    /// consensus disagreement.
    fn compare_outcomes<T>(
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
                let legacy_ok = legacy.is_ok();
                self.compared(
                    op,
                    &[Mismatch::Outcome {
                        legacy: if legacy_ok {
                            "accepted".into()
                        } else {
                            e.to_string()
                        },
                        actor: if legacy_ok {
                            e.to_string()
                        } else {
                            "accepted".into()
                        },
                    }],
                );
            }
            _ => {}
        }
    }
}

async fn shadow_worker<L, A>(shared: Arc<Shared<L, A>>, mut jobs: mpsc::Receiver<ShadowJob>)
where
    L: MigrationPath,
    A: MigrationPath,
{
    while let Some(job) = jobs.recv().await {
        let (epoch, work) = match job {
            ShadowJob::Flush(done) => {
                let _ = done.send(());
                continue;
            }
            ShadowJob::Work { epoch, work } => {
                if epoch != shared.epoch.load(Ordering::Acquire) {
                    shared.shadow_dropped();
                    continue;
                }
                (epoch, work)
            }
        };
        // Ready when the actor has applied everything legacy had before this job's own change
        // (which the job repeats); otherwise it adopts legacy's state first.
        let ready = match &work {
            ShadowWork::Build { .. } => shared.in_sync(Path::Actor),
            ShadowWork::Commit { change, .. } | ShadowWork::Finalize { change, .. } => {
                shared.applied[Path::Actor.index()].load(Ordering::Acquire) >= change.before
            }
        };
        if !ready && let Err(e) = shared.ensure_synced(Path::Actor).await {
            let op = match &work {
                ShadowWork::Build { .. } => Operation::Build,
                ShadowWork::Commit { .. } => Operation::Commit,
                ShadowWork::Finalize { .. } => Operation::Finalize,
            };
            shared.op_stats[Path::Actor.index()][op.index()].record_failure();
            warn!(error = %e, "shadow: the actor could not adopt the legacy state");
            continue;
        }
        shared.run_shadow_work(epoch, work).await;
    }
}

impl<L, A> Shared<L, A>
where
    L: MigrationPath,
    A: MigrationPath,
{
    /// A shadow job comes too late to be repeated (legacy moved on, or the mode changed):
    /// count it. (An actor that misses a write this way is behind, and adopts later.)
    fn shadow_dropped(&self) {
        self.shadow_dropped.fetch_add(1, Ordering::Relaxed);
        self.metrics.shadow_dropped.inc();
    }

    /// One shadow job, under the write lock: the check that legacy is still where the job
    /// expects and the actor's call happen with no legacy write in between, so the actor
    /// never moves the EL's head or finalized block backwards.
    async fn run_shadow_work(&self, epoch: u64, work: ShadowWork) {
        let _writing = self.el_writes.lock().await;
        // Checked again under the lock: a switch may have come while the job waited for it.
        if epoch != self.epoch.load(Ordering::Acquire) || !self.in_sync(Path::Legacy) {
            // The actor has applied changes legacy has not (another mode ran since): legacy's
            // view is not the chain's any more, so this job has nothing left to compare.
            self.shadow_dropped();
            return;
        }
        let (legacy, actor) = match (
            self.legacy.path_state().await,
            self.actor.path_state().await,
        ) {
            (Ok(l), Ok(a)) => (l.forkchoice, a.forkchoice),
            (Err(e), _) | (_, Err(e)) => {
                warn!(error = %e, "shadow: could not read the paths' state; job dropped");
                self.shadow_dropped();
                return;
            }
        };
        // The actor's call carries its whole forkchoice: it may run only if that forkchoice
        // (with the job's own change) is the EL's, or it would move the EL back.
        let same_safe_and_finalized = legacy.safe_block_hash == actor.safe_block_hash
            && legacy.finalized_block_hash == actor.finalized_block_hash;
        match work {
            ShadowWork::Build {
                timestamp,
                parent,
                add_balances,
                legacy: legacy_payload,
            } => {
                if legacy.head_block_hash != parent || !same_safe_and_finalized {
                    // Legacy moved past this build's parent (or finalized since): building
                    // there now would ask the EL to rewind (which the spec lets it refuse).
                    self.shadow_dropped();
                    return;
                }
                let built = self
                    .timed_holding_lock(
                        Path::Actor,
                        Operation::Build,
                        self.actor
                            .build_block(timestamp, Some(parent), add_balances),
                    )
                    .await;
                if let Ok(built) = built {
                    let mismatches = self.validator.compare(&legacy_payload, &built.payload);
                    self.compared(Operation::Build, &mismatches);
                }
            }
            ShadowWork::Commit { payload, change } => {
                let seq = change.seq;
                let expected = payload.payload.block_hash();
                if legacy.head_block_hash != expected || !same_safe_and_finalized {
                    self.shadow_dropped();
                    return;
                }
                let committed = self
                    .timed_holding_lock(
                        Path::Actor,
                        Operation::Commit,
                        self.actor.commit_block(*payload),
                    )
                    .await;
                match committed {
                    Ok(hash) => {
                        self.followed(Path::Actor, seq);
                        self.compared(
                            Operation::Commit,
                            &hash_mismatch(expected, hash)
                                .into_iter()
                                .collect::<Vec<_>>(),
                        );
                    }
                    Err(e) => {
                        self.compare_outcomes(
                            Operation::Commit,
                            &Ok::<B256, EngineError>(expected),
                            &Err(e.clone()),
                            |_, _| Vec::new(),
                        );
                        self.follower_failed(Path::Actor, Operation::Commit, &e);
                    }
                }
            }
            ShadowWork::Finalize { hash, change } => {
                let seq = change.seq;
                if legacy.finalized_block_hash != hash
                    || legacy.head_block_hash != actor.head_block_hash
                {
                    self.shadow_dropped();
                    return;
                }
                match self
                    .timed_holding_lock(
                        Path::Actor,
                        Operation::Finalize,
                        self.actor.set_finalized(hash),
                    )
                    .await
                {
                    Ok(()) => self.followed(Path::Actor, seq),
                    Err(e) => self.follower_failed(Path::Actor, Operation::Finalize, &e),
                }
            }
        }
    }
}

fn hash_mismatch(legacy: B256, actor: B256) -> Option<Mismatch> {
    (legacy != actor).then_some(Mismatch::BlockHash { legacy, actor })
}

impl<L, A> LegacyEngine for MigrationAdapter<L, A>
where
    L: MigrationPath + 'static,
    A: MigrationPath + 'static,
{
    async fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> Result<ExecutionData, EngineError> {
        // The epoch before the mode: a call that began in shadow mode and ends after a switch
        // queues its shadow work under the old epoch, so it is dropped.
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let mode = self.mode();
        let s = &self.shared;
        let result = match mode {
            MigrationMode::Parallel => {
                let (l, a) = self
                    .parallel(
                        Operation::Build,
                        s.legacy
                            .build_block(timestamp, payload_head, add_balances.clone()),
                        s.actor
                            .build_block(timestamp, payload_head, add_balances.clone()),
                    )
                    .await;
                if let Some(a) = &a {
                    s.compare_outcomes(Operation::Build, &l, a, |l, a| {
                        s.validator.compare(&l.payload, &a.payload)
                    });
                }
                l
            }
            MigrationMode::Shadow => {
                let (result, _) = self
                    .answer_with(Operation::Build, Path::Legacy, false, |_| {
                        s.legacy
                            .build_block(timestamp, payload_head, add_balances.clone())
                    })
                    .await;
                if let Ok(built) = &result {
                    // The actor builds on the parent legacy built on, whatever its own head.
                    self.enqueue(
                        epoch,
                        ShadowWork::Build {
                            timestamp,
                            parent: built.payload.parent_hash(),
                            add_balances: add_balances.clone(),
                            legacy: Box::new(built.payload.clone()),
                        },
                    );
                }
                result
            }
            _ => {
                let answer = Self::answering(mode, timestamp.as_secs());
                let fallback =
                    matches!(mode, MigrationMode::ActorPrimary | MigrationMode::Canary(_));
                self.answer_with(Operation::Build, answer, fallback, |path| {
                    let peg_ins = add_balances.clone();
                    async move {
                        match path {
                            Path::Legacy => {
                                s.legacy.build_block(timestamp, payload_head, peg_ins).await
                            }
                            Path::Actor => {
                                s.actor.build_block(timestamp, payload_head, peg_ins).await
                            }
                        }
                    }
                })
                .await
                .0
            }
        };
        self.after_call(mode).await;
        result
    }

    async fn commit_block(&self, payload: ExecutionData) -> Result<B256, EngineError> {
        // The epoch before the mode: a call that began in shadow mode and ends after a switch
        // queues its shadow work under the old epoch, so it is dropped.
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let mode = self.mode();
        let s = &self.shared;
        let result = match mode {
            MigrationMode::Parallel => {
                let (l, a) = self
                    .parallel(
                        Operation::Commit,
                        s.legacy.commit_block(payload.clone()),
                        s.actor.commit_block(payload.clone()),
                    )
                    .await;
                if let Some(a) = &a {
                    s.compare_outcomes(Operation::Commit, &l, a, |l, a| {
                        hash_mismatch(*l, *a).into_iter().collect()
                    });
                    // (If the actor's commit failed where legacy's held, it is behind and
                    // adopts the forkchoice before its next call.)
                }
                l
            }
            MigrationMode::Shadow => {
                // Let the shadow build of this slot run first (it must build on the parent
                // before legacy moves the head), but never wait long for the actor.
                let _ = tokio::time::timeout(self.shadow_wait, self.shadow_idle()).await;
                let (result, change) = self
                    .answer_with(Operation::Commit, Path::Legacy, false, |_| {
                        s.legacy.commit_block(payload.clone())
                    })
                    .await;
                if let Some(change) = change {
                    self.enqueue(
                        epoch,
                        ShadowWork::Commit {
                            payload: Box::new(payload),
                            change,
                        },
                    );
                }
                result
            }
            _ => {
                let answer = Self::answering(mode, payload.payload.timestamp());
                self.write_everywhere(mode, Operation::Commit, answer, |path| {
                    let payload = payload.clone();
                    async move {
                        match path {
                            Path::Legacy => s.legacy.commit_block(payload).await,
                            Path::Actor => s.actor.commit_block(payload).await,
                        }
                    }
                })
                .await
            }
        };
        self.after_call(mode).await;
        result
    }

    async fn set_finalized(&self, hash: B256) -> Result<(), EngineError> {
        // The epoch before the mode: a call that began in shadow mode and ends after a switch
        // queues its shadow work under the old epoch, so it is dropped.
        let epoch = self.shared.epoch.load(Ordering::Acquire);
        let mode = self.mode();
        let s = &self.shared;
        let result = match mode {
            MigrationMode::Parallel => {
                let (l, a) = self
                    .parallel(
                        Operation::Finalize,
                        s.legacy.set_finalized(hash),
                        s.actor.set_finalized(hash),
                    )
                    .await;
                if let Some(Err(e)) = &a {
                    s.follower_failed(Path::Actor, Operation::Finalize, e);
                }
                l
            }
            MigrationMode::Shadow => {
                // As for a commit: the shadow commit of this block runs first, so the actor's
                // forkchoiceUpdated never carries an older finalized block than the EL's.
                let _ = tokio::time::timeout(self.shadow_wait, self.shadow_idle()).await;
                let (result, change) = self
                    .answer_with(Operation::Finalize, Path::Legacy, false, |_| {
                        s.legacy.set_finalized(hash)
                    })
                    .await;
                if let Some(change) = change {
                    self.enqueue(epoch, ShadowWork::Finalize { hash, change });
                }
                result
            }
            _ => {
                // Finalization has no slot of its own: in canary the actor answers when its
                // share is at least half, and legacy follows (or the other way round).
                let answer = match mode {
                    MigrationMode::Canary(p) if p >= 50 => Path::Actor,
                    MigrationMode::Canary(_) => Path::Legacy,
                    other => Self::answering(other, 0),
                };
                self.write_everywhere(mode, Operation::Finalize, answer, |path| async move {
                    match path {
                        Path::Legacy => s.legacy.set_finalized(hash).await,
                        Path::Actor => s.actor.set_finalized(hash).await,
                    }
                })
                .await
            }
        };
        self.after_call(mode).await;
        result
    }

    async fn get_block_with_txs(&self, hash: &B256) -> Result<Option<Block>, EngineError> {
        let (s, hash) = (&self.shared, *hash);
        self.read(Operation::GetBlock, &hash, |path| async move {
            match path {
                Path::Legacy => s.legacy.get_block_with_txs(&hash).await,
                Path::Actor => s.actor.get_block_with_txs(&hash).await,
            }
        })
        .await
    }

    async fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        let s = &self.shared;
        self.read(Operation::GetReceipt, &tx, |path| async move {
            match path {
                Path::Legacy => s.legacy.get_transaction_receipt(tx).await,
                Path::Actor => s.actor.get_transaction_receipt(tx).await,
            }
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_the_atomic_encoding_and_text() {
        let modes = [
            MigrationMode::LegacyOnly,
            MigrationMode::Shadow,
            MigrationMode::Canary(0),
            MigrationMode::Canary(37),
            MigrationMode::Canary(100),
            MigrationMode::Parallel,
            MigrationMode::ActorPrimary,
            MigrationMode::ActorOnly,
            MigrationMode::Rollback,
        ];
        for mode in modes {
            assert_eq!(MigrationMode::decode(mode.encode()), mode);
            assert_eq!(mode.to_string().parse::<MigrationMode>().unwrap(), mode);
        }
        assert!("canary:101".parse::<MigrationMode>().is_err());
        let err = "actor-first".parse::<MigrationMode>().unwrap_err();
        assert!(err.to_string().contains("actor-primary"), "{err}");
    }
}
