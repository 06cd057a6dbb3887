//! Prometheus metrics of the two migrations, in their own registry ([`MigrationMetrics::render`]
//! gives the text format), so a node can serve them beside the engine's.
//!
//! The engine's registry already has `engine_migration_mode` and
//! `engine_migration_health_score`; [`MigrationMetrics::sharing`] writes those two gauges
//! instead of registering them twice.

use engine_actor::EngineMetrics;
use prometheus::{
    Encoder, Gauge, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts,
    Registry, TextEncoder,
};

/// Metric names.
pub mod names {
    /// Calls per path (`legacy`/`actor`), operation and outcome (`ok`/`error`).
    pub const CALLS: &str = "engine_migration_calls_total";
    /// Call latency per path and operation.
    pub const CALL_DURATION: &str = "engine_migration_call_duration_seconds";
    /// Results of both paths compared, per operation and outcome (`match`/`mismatch`).
    pub const COMPARISONS: &str = "engine_migration_comparisons_total";
    /// Mismatches per kind (`block_hash`, `transaction_count`, `gas_used`, `withdrawals`, `outcome`).
    pub const MISMATCHES: &str = "engine_migration_mismatches_total";
    /// Actor errors answered by the legacy path instead, per operation.
    pub const FALLBACKS: &str = "engine_migration_fallbacks_total";
    /// A path re-applying a block or finalization it did not answer failed, per path.
    pub const FOLLOWER_ERRORS: &str = "engine_migration_follower_errors_total";
    /// A path that sat out blocks adopted the current forkchoice, per path.
    pub const ADOPTIONS: &str = "engine_migration_adoptions_total";
    /// Shadow jobs dropped: queue full, legacy moved on before the job ran, or the mode changed.
    pub const SHADOW_DROPPED: &str = "engine_migration_shadow_dropped_total";
    /// Shadow jobs stopped mid-call so a production call could go (also in `SHADOW_DROPPED`).
    pub const SHADOW_PREEMPTED: &str = "engine_migration_shadow_preempted_total";
    /// Rollbacks (automatic or manual).
    pub const ROLLBACKS: &str = "engine_migration_rollbacks_total";
    /// The current mode (1 legacy-only … 7 rollback; 0 when no migration runs).
    pub const MODE: &str = "engine_migration_mode";
    /// The health score, 0–100.
    pub const HEALTH_SCORE: &str = "engine_migration_health_score";
    /// Mismatches of any kind, under ALYS-008's name.
    pub const STATE_VALIDATION_FAILURES: &str = "engine_state_validation_failures_total";

    /// Lighthouse v4/v5 compat client: calls per version (`v4`/`v5`), operation and outcome.
    pub const COMPAT_CALLS: &str = "engine_compat_calls_total";
    /// Compat client latency per version and operation.
    pub const COMPAT_DURATION: &str = "engine_compat_call_duration_seconds";
    /// Compat client comparisons per operation and outcome (`match`/`mismatch`).
    pub const COMPAT_COMPARISONS: &str = "engine_compat_comparisons_total";
    /// Compat client mode (1 v4-only … 6 canary).
    pub const COMPAT_MODE: &str = "engine_compat_mode";
}

fn latency_buckets() -> Vec<f64> {
    vec![
        0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    ]
}

/// The legacy → actor adapter's metrics.
#[derive(Debug, Clone)]
pub struct MigrationMetrics {
    registry: Registry,
    /// Calls per path, operation, outcome.
    pub calls: IntCounterVec,
    /// Latency per path and operation.
    pub call_duration: HistogramVec,
    /// Comparisons per operation and outcome.
    pub comparisons: IntCounterVec,
    /// Mismatches per kind.
    pub mismatches: IntCounterVec,
    /// Fallbacks to the legacy path per operation.
    pub fallbacks: IntCounterVec,
    /// Follower failures per path.
    pub follower_errors: IntCounterVec,
    /// Adoptions per path.
    pub adoptions: IntCounterVec,
    /// Shadow jobs dropped.
    pub shadow_dropped: IntCounter,
    /// Shadow jobs stopped mid-call for a production call.
    pub shadow_preempted: IntCounter,
    /// Rollbacks.
    pub rollbacks: IntCounter,
    /// Current mode code.
    pub mode: IntGauge,
    /// Health score.
    pub health_score: Gauge,
    /// Mismatches of any kind (`engine_state_validation_failures_total`, ALYS-008).
    pub state_validation_failures: IntCounter,
}

impl MigrationMetrics {
    /// All families in a new registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let mode = IntGauge::new(
            names::MODE,
            "Current migration mode (0=legacy, 1=shadow, 2=canary, 3=parallel, 4=primary, 5=actor-only).",
        )?;
        let score = Gauge::new(names::HEALTH_SCORE, "Migration health score, 0-100")?;
        let validation_failures = IntCounter::new(
            names::STATE_VALIDATION_FAILURES,
            "Legacy and actor results that differed (state validation failures during migration).",
        )?;
        let metrics = Self::with_gauges(mode.clone(), score.clone(), validation_failures.clone())?;
        metrics.registry.register(Box::new(mode))?;
        metrics.registry.register(Box::new(score))?;
        metrics.registry.register(Box::new(validation_failures))?;
        Ok(metrics)
    }

    /// The families in a new registry, except mode, health score and state validation
    /// failures, which are written to the engine's own families (already in the engine's
    /// registry, under ALYS-008's names).
    pub fn sharing(engine: &EngineMetrics) -> Result<Self, prometheus::Error> {
        Self::with_gauges(
            engine.migration_mode.clone(),
            engine.migration_health_score.clone(),
            engine.state_validation_failures.clone(),
        )
    }

    fn with_gauges(
        mode: IntGauge,
        health_score: Gauge,
        state_validation_failures: IntCounter,
    ) -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let calls = IntCounterVec::new(
            Opts::new(names::CALLS, "Migration adapter calls per path"),
            &["path", "operation", "outcome"],
        )?;
        let call_duration = HistogramVec::new(
            HistogramOpts::new(
                names::CALL_DURATION,
                "Migration adapter call latency per path",
            )
            .buckets(latency_buckets()),
            &["path", "operation"],
        )?;
        let comparisons = IntCounterVec::new(
            Opts::new(names::COMPARISONS, "Legacy and actor results compared"),
            &["operation", "outcome"],
        )?;
        let mismatches = IntCounterVec::new(
            Opts::new(names::MISMATCHES, "Legacy/actor disagreements per kind"),
            &["kind"],
        )?;
        let fallbacks = IntCounterVec::new(
            Opts::new(names::FALLBACKS, "Actor errors answered by the legacy path"),
            &["operation"],
        )?;
        let follower_errors = IntCounterVec::new(
            Opts::new(
                names::FOLLOWER_ERRORS,
                "Failures re-applying a block on the path that did not answer",
            ),
            &["path"],
        )?;
        let adoptions = IntCounterVec::new(
            Opts::new(
                names::ADOPTIONS,
                "Paths that adopted the current forkchoice after sitting out",
            ),
            &["path"],
        )?;
        let shadow_dropped = IntCounter::new(
            names::SHADOW_DROPPED,
            "Shadow jobs dropped: queue full, legacy moved on before the job ran, or the mode changed",
        )?;
        let shadow_preempted = IntCounter::new(
            names::SHADOW_PREEMPTED,
            "Shadow jobs stopped mid-call so a production call could go",
        )?;
        let rollbacks = IntCounter::new(names::ROLLBACKS, "Migration rollbacks")?;
        for c in [
            &calls,
            &comparisons,
            &mismatches,
            &fallbacks,
            &follower_errors,
            &adoptions,
        ] {
            registry.register(Box::new(c.clone()))?;
        }
        registry.register(Box::new(call_duration.clone()))?;
        registry.register(Box::new(shadow_dropped.clone()))?;
        registry.register(Box::new(shadow_preempted.clone()))?;
        registry.register(Box::new(rollbacks.clone()))?;
        Ok(Self {
            registry,
            calls,
            call_duration,
            comparisons,
            mismatches,
            fallbacks,
            follower_errors,
            adoptions,
            shadow_dropped,
            shadow_preempted,
            rollbacks,
            mode,
            health_score,
            state_validation_failures,
        })
    }

    /// The registry (to merge into a node's exporter).
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text format of this registry.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

/// The Lighthouse v4/v5 compat client's metrics.
#[derive(Debug, Clone)]
pub struct CompatMetrics {
    registry: Registry,
    /// Calls per version, operation, outcome.
    pub calls: IntCounterVec,
    /// Latency per version and operation.
    pub call_duration: HistogramVec,
    /// Comparisons per operation and outcome.
    pub comparisons: IntCounterVec,
    /// Current mode code.
    pub mode: IntGauge,
}

impl CompatMetrics {
    /// All families in a new registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let calls = IntCounterVec::new(
            Opts::new(
                names::COMPAT_CALLS,
                "Compat client calls per Lighthouse version",
            ),
            &["version", "operation", "outcome"],
        )?;
        let call_duration = HistogramVec::new(
            HistogramOpts::new(
                names::COMPAT_DURATION,
                "Compat client latency per Lighthouse version",
            )
            .buckets(latency_buckets()),
            &["version", "operation"],
        )?;
        let comparisons = IntCounterVec::new(
            Opts::new(names::COMPAT_COMPARISONS, "v4 and v5 results compared"),
            &["operation", "outcome"],
        )?;
        let mode = IntGauge::new(
            names::COMPAT_MODE,
            "Compat client mode (1 v4-only, 2 v5-only, 3 parallel, 4 v4-primary, 5 v5-primary, 6 canary)",
        )?;
        registry.register(Box::new(calls.clone()))?;
        registry.register(Box::new(call_duration.clone()))?;
        registry.register(Box::new(comparisons.clone()))?;
        registry.register(Box::new(mode.clone()))?;
        Ok(Self {
            registry,
            calls,
            call_duration,
            comparisons,
            mode,
        })
    }

    /// The registry.
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text format of this registry.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    // Encoding our own well-formed families into a Vec cannot fail; an empty answer is the
    // worst outcome.
    if TextEncoder::new()
        .encode(&registry.gather(), &mut out)
        .is_err()
    {
        return String::new();
    }
    String::from_utf8(out).unwrap_or_default()
}
