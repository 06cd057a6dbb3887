//! The migration controller: walks a migration (legacy → actor, or Lighthouse v4 → v5) through
//! its stages, watching health, and rolls it back automatically.
//!
//! ```text
//! PreMigration ─begin→ ParallelTesting ─(parallel_duration)→ Canary(step 1) ─(step_duration)→
//!   Canary(step 2) … Canary(last step) ─(step_duration)→ Complete
//! any stage but Complete ─(health check fails, or an operator asks)→ RolledBack(reason)
//! ```
//!
//! Every `check_interval` the controller asks its target for a [`HealthSample`] and checks it
//! against the [`Thresholds`] (by default: candidate error rate above 1 %, median latency more
//! than 5 % above the baseline's, any mismatch). Durations run on Tokio's clock, so tests drive
//! a whole migration on paused time; the rollback's own duration is measured on the wall clock.

use std::{
    fmt,
    future::Future,
    sync::Mutex,
    time::{Duration, Instant},
};

use engine_types::EngineError;
use serde::Serialize;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    adapter::{MigrationAdapter, MigrationMode},
    compat::{CompatClient, CompatMode, CompatOperation},
    health::{HealthSample, RollbackReason, RollbackRecord, Thresholds},
    legacy::MigrationPath,
};

/// A stage of a migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Stage {
    /// Only the baseline runs.
    PreMigration,
    /// Both run and are compared; the baseline answers.
    ParallelTesting,
    /// The candidate answers this percentage.
    Canary(u8),
    /// Only the candidate runs.
    Complete,
    /// Back on the baseline, for a reason (see [`MigrationController::rollback_record`]).
    RolledBack,
}

impl Stage {
    /// Whether the controller is done (complete or rolled back).
    pub const fn is_terminal(self) -> bool {
        matches!(self, Self::Complete | Self::RolledBack)
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PreMigration => f.write_str("pre-migration"),
            Self::ParallelTesting => f.write_str("parallel-testing"),
            Self::Canary(p) => write!(f, "canary:{p}"),
            Self::Complete => f.write_str("complete"),
            Self::RolledBack => f.write_str("rolled-back"),
        }
    }
}

/// Stage durations, canary steps and rollback thresholds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ControllerConfig {
    /// How long both paths run side by side before the canary (default 1 h).
    pub parallel_duration: Duration,
    /// Canary percentages in order; the first is the canary, the rest the gradual steps
    /// (default 5, 25, 50, 75). After the last step, complete.
    pub canary_steps: Vec<u8>,
    /// How long each canary step lasts (default 1 h).
    pub step_duration: Duration,
    /// How often health is checked (default 10 s).
    pub check_interval: Duration,
    /// When to roll back.
    pub thresholds: Thresholds,
    /// Consecutive failed health checks that roll back (ALYS-011 says three): one noisy sample
    /// does not roll a fleet back. 0 or 1: the first failed check does. Default 3.
    pub failed_checks_to_roll_back: u32,
}

impl Default for ControllerConfig {
    fn default() -> Self {
        Self {
            parallel_duration: Duration::from_secs(3600),
            canary_steps: vec![5, 25, 50, 75],
            step_duration: Duration::from_secs(3600),
            check_interval: Duration::from_secs(10),
            thresholds: Thresholds::default(),
            failed_checks_to_roll_back: 3,
        }
    }
}

impl ControllerConfig {
    /// Checks the steps (1–100, rising) and durations.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.check_interval.is_zero() {
            return Err(EngineError::invalid_request(
                "check_interval",
                "must be above zero",
            ));
        }
        let mut last = 0;
        for &step in &self.canary_steps {
            if step == 0 || step > 100 || step <= last {
                return Err(EngineError::invalid_request(
                    "canary_steps",
                    format!(
                        "{:?}: each step must be 1–100 and above the one before",
                        self.canary_steps
                    ),
                ));
            }
            last = step;
        }
        Ok(())
    }
}

/// What a controller drives: the adapter or the compat client.
pub trait Migratable: Send + Sync {
    /// Put the target in `stage`'s mode; its statistics restart.
    fn enter(&self, stage: Stage) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// Return to the baseline at once.
    fn roll_back(&self, reason: RollbackReason) -> impl Future<Output = ()> + Send;
    /// Baseline against candidate since the stage began.
    fn health(&self) -> HealthSample;
    /// A rollback the target made by itself (the adapter's own thresholds) and is still in.
    fn self_rollback(&self) -> Option<RollbackRecord> {
        None
    }
}

/// A shared target (the node keeps using the adapter while the controller drives it).
impl<T: Migratable> Migratable for std::sync::Arc<T> {
    fn enter(&self, stage: Stage) -> impl Future<Output = Result<(), EngineError>> + Send {
        T::enter(self, stage)
    }

    fn roll_back(&self, reason: RollbackReason) -> impl Future<Output = ()> + Send {
        T::roll_back(self, reason)
    }

    fn health(&self) -> HealthSample {
        T::health(self)
    }

    fn self_rollback(&self) -> Option<RollbackRecord> {
        T::self_rollback(self)
    }
}

/// One stage change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transition {
    /// The stage left.
    pub from: Stage,
    /// The stage entered.
    pub to: Stage,
    /// When, since the controller began (Tokio's clock).
    pub at: Duration,
    /// Health at the moment of the change.
    pub health: HealthSample,
}

#[derive(Debug)]
struct State {
    stage: Stage,
    began: tokio::time::Instant,
    stage_began: tokio::time::Instant,
    history: Vec<Transition>,
    rollback: Option<RollbackRecord>,
    /// Failed health checks in a row.
    failed_checks: u32,
}

/// Drives a [`Migratable`] through the stages; see the [module docs](self).
#[derive(Debug)]
pub struct MigrationController<T> {
    target: T,
    config: ControllerConfig,
    state: Mutex<State>,
    stage_tx: watch::Sender<Stage>,
}

impl<T: Migratable> MigrationController<T> {
    /// A controller in `PreMigration` over `target`.
    pub fn new(target: T, config: ControllerConfig) -> Result<Self, EngineError> {
        config.validate()?;
        let now = tokio::time::Instant::now();
        Ok(Self {
            target,
            config,
            state: Mutex::new(State {
                stage: Stage::PreMigration,
                began: now,
                stage_began: now,
                history: Vec::new(),
                rollback: None,
                failed_checks: 0,
            }),
            stage_tx: watch::Sender::new(Stage::PreMigration),
        })
    }

    /// The target.
    pub const fn target(&self) -> &T {
        &self.target
    }

    /// The stage now.
    pub fn stage(&self) -> Stage {
        *self.stage_tx.borrow()
    }

    /// Stage changes as they happen.
    pub fn subscribe(&self) -> watch::Receiver<Stage> {
        self.stage_tx.subscribe()
    }

    /// Every stage change so far.
    pub fn history(&self) -> Vec<Transition> {
        self.state
            .lock()
            .map(|s| s.history.clone())
            .unwrap_or_default()
    }

    /// The rollback, once there was one: reason, stage left, duration.
    pub fn rollback_record(&self) -> Option<RollbackRecord> {
        self.state.lock().ok().and_then(|s| s.rollback.clone())
    }

    fn next(&self, stage: Stage) -> Stage {
        let steps = &self.config.canary_steps;
        match stage {
            Stage::PreMigration => Stage::ParallelTesting,
            Stage::ParallelTesting => steps.first().map_or(Stage::Complete, |&p| Stage::Canary(p)),
            Stage::Canary(p) => steps
                .iter()
                .find(|&&s| s > p)
                .map_or(Stage::Complete, |&s| Stage::Canary(s)),
            terminal => terminal,
        }
    }

    fn duration_of(&self, stage: Stage) -> Option<Duration> {
        match stage {
            Stage::ParallelTesting => Some(self.config.parallel_duration),
            Stage::Canary(_) => Some(self.config.step_duration),
            _ => None,
        }
    }

    fn record(&self, to: Stage, health: HealthSample) {
        let now = tokio::time::Instant::now();
        if let Ok(mut s) = self.state.lock() {
            let transition = Transition {
                from: s.stage,
                to,
                at: now - s.began,
                health,
            };
            info!(from = %transition.from, to = %to, at = ?transition.at, "migration stage changed");
            s.history.push(transition);
            s.stage = to;
            s.stage_began = now;
        }
        self.stage_tx.send_replace(to);
    }

    async fn advance_to(&self, to: Stage) -> Result<Stage, EngineError> {
        let health = self.target.health();
        match self.target.enter(to).await {
            Ok(()) => {
                self.record(to, health);
                Ok(to)
            }
            Err(e) => {
                let reason = RollbackReason::Failed(format!("entering {to} failed: {e}"));
                self.rollback(reason).await;
                Err(e)
            }
        }
    }

    /// Leave `PreMigration` for `ParallelTesting`.
    pub async fn begin(&self) -> Result<Stage, EngineError> {
        match self.stage() {
            Stage::PreMigration => self.advance_to(Stage::ParallelTesting).await,
            other => Ok(other),
        }
    }

    /// Check health once: roll back if it fails, else move on when the stage has lasted its
    /// duration. Returns the stage after the check.
    pub async fn tick(&self) -> Result<Stage, EngineError> {
        let stage = self.stage();
        if stage.is_terminal() || stage == Stage::PreMigration {
            return Ok(stage);
        }
        if let Some(record) = self.target.self_rollback() {
            warn!(from = %stage, reason = %record.reason, "the target rolled itself back");
            if let Ok(mut s) = self.state.lock() {
                s.rollback = Some(record.clone());
            }
            self.record(Stage::RolledBack, record.health);
            return Ok(Stage::RolledBack);
        }
        let health = self.target.health();
        let failed = self.config.thresholds.check(&health);
        let in_a_row = self
            .state
            .lock()
            .map(|mut s| {
                s.failed_checks = if failed.is_some() {
                    s.failed_checks + 1
                } else {
                    0
                };
                s.failed_checks
            })
            .unwrap_or(u32::MAX);
        if let Some(reason) = failed {
            if in_a_row >= self.config.failed_checks_to_roll_back {
                self.rollback(reason).await;
                return Ok(Stage::RolledBack);
            }
            warn!(%stage, %reason, in_a_row, needed = self.config.failed_checks_to_roll_back, "a health check failed; rolling back only if it keeps failing");
            return Ok(stage);
        }
        let lasted = self
            .state
            .lock()
            .map(|s| s.stage_began.elapsed())
            .unwrap_or_default();
        match self.duration_of(stage) {
            Some(duration) if lasted >= duration => self.advance_to(self.next(stage)).await,
            _ => Ok(stage),
        }
    }

    /// Roll back now (an operator's call, or a failed check). The duration is measured on the
    /// wall clock, from the decision to the target answering from the baseline again.
    pub async fn rollback(&self, reason: RollbackReason) -> RollbackRecord {
        let from = self.stage();
        let health = self.target.health();
        let started = Instant::now();
        self.target.roll_back(reason.clone()).await;
        let record = RollbackRecord {
            reason,
            from: from.to_string(),
            took: started.elapsed(),
            health,
        };
        warn!(from = %from, reason = %record.reason, took = ?record.took, "migration rolled back");
        if let Ok(mut s) = self.state.lock() {
            s.rollback = Some(record.clone());
        }
        self.record(Stage::RolledBack, health);
        record
    }

    /// Begin, then check every `check_interval` until complete or rolled back. Returns the
    /// final stage.
    pub async fn run(&self) -> Result<Stage, EngineError> {
        self.begin().await?;
        let mut interval = tokio::time::interval(self.config.check_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        interval.tick().await;
        loop {
            interval.tick().await;
            let stage = self.tick().await?;
            if stage.is_terminal() {
                return Ok(stage);
            }
        }
    }
}

impl<L, A> Migratable for MigrationAdapter<L, A>
where
    L: MigrationPath + 'static,
    A: MigrationPath + 'static,
{
    async fn enter(&self, stage: Stage) -> Result<(), EngineError> {
        let mode = match stage {
            Stage::PreMigration => MigrationMode::LegacyOnly,
            Stage::ParallelTesting => MigrationMode::Parallel,
            Stage::Canary(p) => MigrationMode::canary(p)?,
            Stage::Complete => MigrationMode::ActorOnly,
            Stage::RolledBack => MigrationMode::Rollback,
        };
        if let Some(active) = self.active_rollback()
            && stage != Stage::RolledBack
        {
            // A rollback (the adapter's own, or an operator's) stands until someone
            // acknowledges it with `set_mode`; a controller must not undo it.
            return Err(EngineError::Unavailable {
                reason: format!(
                    "the adapter rolled back ({}); acknowledge with set_mode(legacy-only) before moving on",
                    active.reason
                ),
            });
        }
        if mode.uses_actor() && !self.mode().uses_actor() {
            // The actor sat out: bring it to the legacy forkchoice before it answers.
            self.initialize_actor_from_legacy().await?;
        }
        self.set_mode(mode);
        Ok(())
    }

    async fn roll_back(&self, reason: RollbackReason) {
        self.rollback(reason).await;
    }

    fn health(&self) -> HealthSample {
        self.report().health
    }

    fn self_rollback(&self) -> Option<RollbackRecord> {
        self.active_rollback()
    }
}

impl<C: engine_clients::ExecutionClient> Migratable for CompatClient<C> {
    async fn enter(&self, stage: Stage) -> Result<(), EngineError> {
        let mode = match stage {
            Stage::PreMigration | Stage::RolledBack => CompatMode::V4Only,
            Stage::ParallelTesting => CompatMode::Parallel,
            Stage::Canary(p) => CompatMode::canary(p)?,
            Stage::Complete => CompatMode::V5Only,
        };
        self.set_mode(mode);
        Ok(())
    }

    async fn roll_back(&self, _reason: RollbackReason) {
        for op in CompatOperation::ALL {
            self.set_operation_flag(op, None);
        }
        self.set_mode(CompatMode::V4Only);
    }

    fn health(&self) -> HealthSample {
        Self::health(self)
    }
}
