//! Prometheus metrics of one engine, in a registry of its own (two engines in one process do not
//! collide, and nothing touches prometheus' global registry).
//!
//! Families updated where things happen live in [`EngineMetrics`]; families derived from state
//! (caches, sessions) are read at scrape time by a [`prometheus::core::Collector`]
//! (`collector.rs`), so nothing is reset and re-incremented. `server.rs` serves `/metrics`.

mod collector;
mod server;

use std::time::Duration;

use engine_clients::RpcObserver;
use engine_types::EngineError;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    Opts, Registry, TextEncoder,
};
use tracing::warn;

pub(crate) use collector::StatusCollector;
pub(crate) use server::{Probe, serve};

/// Metric names, in one place (operators' dashboards depend on them).
pub mod names {
    /// Blocks built (getPayload answered).
    pub const BLOCKS_BUILT_TOTAL: &str = "engine_blocks_built_total";
    /// Blocks committed (VALID and made head).
    pub const BLOCKS_COMMITTED_TOTAL: &str = "engine_blocks_committed_total";
    /// Blocks finalized.
    pub const BLOCKS_FINALIZED_TOTAL: &str = "engine_blocks_finalized_total";
    /// Build latency, by whether a preparation was used.
    pub const BUILD_DURATION: &str = "engine_build_block_duration_seconds";
    /// Commit latency.
    pub const COMMIT_DURATION: &str = "engine_commit_block_duration_seconds";
    /// Finalize latency.
    pub const FINALIZE_DURATION: &str = "engine_finalize_block_duration_seconds";
    /// Latency per JSON-RPC method.
    pub const RPC_DURATION: &str = "engine_rpc_duration_seconds";
    /// Failed requests by error type.
    pub const ERRORS_TOTAL: &str = "engine_errors_total";
    /// Failed requests by operation (`build_payload`, `get_block`, …).
    pub const OPERATION_FAILURES_TOTAL: &str = "engine_operation_failures_total";
    /// Requests that ran out of time, by operation.
    pub const OPERATION_TIMEOUTS_TOTAL: &str = "engine_operation_timeouts_total";
    /// Retries per idempotent JSON-RPC call, by method.
    pub const OPERATION_RETRIES: &str = "engine_operation_retries";
    /// Idempotent JSON-RPC calls that failed after their last retry, by method.
    pub const OPERATION_EXHAUSTED_RETRIES_TOTAL: &str = "engine_operation_exhausted_retries_total";
    /// Unix time of each operation's last success.
    pub const LAST_SUCCESSFUL_OPERATION_TIMESTAMP: &str =
        "engine_last_successful_operation_timestamp";
    /// Cache hits by cache.
    pub const CACHE_HITS_TOTAL: &str = "engine_cache_hits_total";
    /// Cache misses by cache.
    pub const CACHE_MISSES_TOTAL: &str = "engine_cache_misses_total";
    /// Cache evictions (capacity or expiry) by cache.
    pub const CACHE_EVICTIONS_TOTAL: &str = "engine_cache_evictions_total";
    /// Cache entries by cache.
    pub const CACHE_ENTRIES: &str = "engine_cache_entries";
    /// Circuit breaker state changes by endpoint and from/to state.
    pub const CIRCUIT_BREAKER_STATE_CHANGES_TOTAL: &str =
        "engine_circuit_breaker_state_changes_total";
    /// Calls refused without IO because the endpoint's breaker was open.
    pub const CIRCUIT_BREAKER_REJECTIONS_TOTAL: &str = "engine_circuit_breaker_rejections_total";
    /// Circuit breaker state by endpoint (0 closed, 1 half-open, 2 open).
    pub const CIRCUIT_BREAKER_STATE: &str = "engine_circuit_breaker_state";
    /// 1 while the endpoint answers (connected, breaker not open, last call or poll fine),
    /// else 0.
    pub const CONNECTION_STATUS: &str = "engine_connection_status";
    /// Sync progress of each execution client (100 when synced).
    pub const SYNC_PROGRESS_PERCENT: &str = "engine_sync_progress_percent";
    /// Committed payload size (RLP bytes).
    pub const PAYLOAD_SIZE_BYTES: &str = "engine_payload_size_bytes";
    /// Transactions per committed payload.
    pub const TRANSACTION_COUNT_PER_BLOCK: &str = "engine_transaction_count_per_block";
    /// Gas used per committed payload.
    pub const GAS_USED_PER_BLOCK: &str = "engine_gas_used_per_block";
    /// Payload preparations by outcome (made, used, wasted, unknown_to_el).
    pub const PREPARATIONS_TOTAL: &str = "engine_payload_preparations_total";
    /// Child restarts by child.
    pub const ACTOR_RESTARTS_TOTAL: &str = "engine_actor_restarts_total";
    /// Current migration mode, as ALYS-008 numbers them (0 legacy, 1 shadow, 2 canary, 3
    /// parallel, 4 actor primary, 5 actor only; set by engine-migration).
    pub const MIGRATION_MODE: &str = "engine_migration_mode";
    /// Migration health score 0–100 (set by engine-migration).
    pub const MIGRATION_HEALTH_SCORE: &str = "engine_migration_health_score";
    /// Legacy and actor results that differed during a migration (set by engine-migration).
    pub const STATE_VALIDATION_FAILURES_TOTAL: &str = "engine_state_validation_failures_total";
    /// Every state-changing request, by operation and outcome.
    pub const WRITE_DURATION: &str = "engine_write_duration_seconds";
    /// Payloads the execution clients disagreed on, by what the policy did (refused,
    /// followed).
    pub const DISAGREEMENTS_TOTAL: &str = "engine_el_disagreements_total";
    /// Blocks replayed into execution clients that lacked them.
    pub const BLOCKS_REPLAYED_TOTAL: &str = "engine_blocks_replayed_total";
    /// Receipts fetches for the peg-out scan of a committed block that failed (each is retried).
    pub const PEG_OUT_SCAN_FAILURES_TOTAL: &str = "engine_peg_out_scan_failures_total";
    /// Committed blocks whose receipts are still to be scanned for peg-outs.
    pub const PEG_OUT_SCANS_PENDING: &str = "engine_peg_out_scans_pending";

    /// Every family the engine exports.
    pub const ALL: &[&str] = &[
        BLOCKS_BUILT_TOTAL,
        BLOCKS_COMMITTED_TOTAL,
        BLOCKS_FINALIZED_TOTAL,
        BUILD_DURATION,
        COMMIT_DURATION,
        FINALIZE_DURATION,
        WRITE_DURATION,
        RPC_DURATION,
        ERRORS_TOTAL,
        CACHE_HITS_TOTAL,
        CACHE_MISSES_TOTAL,
        CACHE_EVICTIONS_TOTAL,
        CACHE_ENTRIES,
        CIRCUIT_BREAKER_STATE_CHANGES_TOTAL,
        CIRCUIT_BREAKER_REJECTIONS_TOTAL,
        CIRCUIT_BREAKER_STATE,
        CONNECTION_STATUS,
        SYNC_PROGRESS_PERCENT,
        PAYLOAD_SIZE_BYTES,
        TRANSACTION_COUNT_PER_BLOCK,
        GAS_USED_PER_BLOCK,
        OPERATION_FAILURES_TOTAL,
        OPERATION_TIMEOUTS_TOTAL,
        OPERATION_RETRIES,
        OPERATION_EXHAUSTED_RETRIES_TOTAL,
        LAST_SUCCESSFUL_OPERATION_TIMESTAMP,
        PREPARATIONS_TOTAL,
        ACTOR_RESTARTS_TOTAL,
        MIGRATION_MODE,
        MIGRATION_HEALTH_SCORE,
        STATE_VALIDATION_FAILURES_TOTAL,
        DISAGREEMENTS_TOTAL,
        BLOCKS_REPLAYED_TOTAL,
        PEG_OUT_SCAN_FAILURES_TOTAL,
        PEG_OUT_SCANS_PENDING,
    ];
}

/// The operations of a slot, whose failure and timeout counters exist from the start.
const SLOT_PATH_OPERATIONS: [&str; 4] = [
    "build_payload",
    "prepare_payload",
    "commit_payload",
    "finalize_block",
];

const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0,
];

/// The metrics of one engine.
#[derive(Debug, Clone)]
pub struct EngineMetrics {
    registry: Registry,
    pub(crate) blocks_built: IntCounter,
    pub(crate) blocks_committed: IntCounter,
    pub(crate) blocks_finalized: IntCounter,
    pub(crate) build_duration: HistogramVec,
    pub(crate) write_duration: HistogramVec,
    rpc_duration: HistogramVec,
    pub(crate) errors: IntCounterVec,
    pub(crate) operation_failures: IntCounterVec,
    pub(crate) operation_timeouts: IntCounterVec,
    operation_retries: HistogramVec,
    operation_exhausted_retries: IntCounterVec,
    pub(crate) last_success: GaugeVec,
    pub(crate) commit_duration: prometheus::Histogram,
    pub(crate) finalize_duration: prometheus::Histogram,
    payload_size: prometheus::Histogram,
    transactions_per_block: prometheus::Histogram,
    gas_used_per_block: prometheus::Histogram,
    pub(crate) preparations: IntCounterVec,
    pub(crate) disagreements: IntCounterVec,
    pub(crate) blocks_replayed: IntCounter,
    pub(crate) peg_out_scan_failures: IntCounter,
    pub(crate) restarts: IntCounterVec,
    /// Set by engine-migration.
    pub migration_mode: IntGauge,
    /// Set by engine-migration.
    pub migration_health_score: Gauge,
    /// Set by engine-migration.
    pub state_validation_failures: IntCounter,
}

/// Registers metrics into one registry.
struct Registrar<'a>(&'a Registry);

impl Registrar<'_> {
    fn add<M: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: M,
    ) -> Result<M, prometheus::Error> {
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        self.add(IntCounter::new(name, help)?)
    }

    fn counters(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels)?)
    }

    fn histograms(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: Vec<f64>,
    ) -> Result<HistogramVec, prometheus::Error> {
        self.add(HistogramVec::new(
            HistogramOpts::new(name, help).buckets(buckets),
            labels,
        )?)
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: Vec<f64>,
    ) -> Result<prometheus::Histogram, prometheus::Error> {
        self.add(prometheus::Histogram::with_opts(
            HistogramOpts::new(name, help).buckets(buckets),
        )?)
    }
}

impl EngineMetrics {
    /// Every metric, registered in a new registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        Self::in_registry(Registry::new())
    }

    /// Every metric, registered in `registry` (e.g. the node's own, so one `/metrics` serves
    /// both). Fails if a family of the same name is already registered there.
    pub fn in_registry(registry: Registry) -> Result<Self, prometheus::Error> {
        use names::*;
        let r = Registrar(&registry);
        let latency = || LATENCY_BUCKETS.to_vec();
        let metrics = Self {
            blocks_built: r.counter(BLOCKS_BUILT_TOTAL, "Blocks built (getPayload answered).")?,
            blocks_committed: r.counter(
                BLOCKS_COMMITTED_TOTAL,
                "Blocks committed (VALID and made head).",
            )?,
            blocks_finalized: r.counter(BLOCKS_FINALIZED_TOTAL, "Blocks finalized at the EL.")?,
            build_duration: r.histograms(
                BUILD_DURATION,
                "Time to build a block at slot time.",
                &["prepared"],
                latency(),
            )?,
            write_duration: r.histograms(
                WRITE_DURATION,
                "Time of every state-changing request, by operation and outcome.",
                &["op", "outcome"],
                latency(),
            )?,
            rpc_duration: r.histograms(
                RPC_DURATION,
                "JSON-RPC latency per method (after retries).",
                &["method", "outcome"],
                latency(),
            )?,
            errors: r.counters(
                ERRORS_TOTAL,
                "Failed engine requests by error type.",
                &["error_type"],
            )?,
            operation_failures: r.counters(
                OPERATION_FAILURES_TOTAL,
                "Failed engine requests by operation.",
                &["operation"],
            )?,
            operation_timeouts: r.counters(
                OPERATION_TIMEOUTS_TOTAL,
                "Engine requests that ran out of time, by operation.",
                &["operation"],
            )?,
            operation_retries: r.histograms(
                OPERATION_RETRIES,
                "Retries per idempotent JSON-RPC call, by method.",
                &["operation"],
                vec![0.0, 1.0, 2.0, 3.0, 5.0, 10.0],
            )?,
            operation_exhausted_retries: r.counters(
                OPERATION_EXHAUSTED_RETRIES_TOTAL,
                "Idempotent JSON-RPC calls that still failed after their last retry, by method.",
                &["operation"],
            )?,
            last_success: r.add(GaugeVec::new(
                Opts::new(
                    LAST_SUCCESSFUL_OPERATION_TIMESTAMP,
                    "Unix time of the last success of each operation.",
                ),
                &["operation"],
            )?)?,
            commit_duration: r.histogram(
                COMMIT_DURATION,
                "Time to commit a block (newPayload + forkchoiceUpdated + persist).",
                latency(),
            )?,
            finalize_duration: r.histogram(
                FINALIZE_DURATION,
                "Time to finalize a block at the EL.",
                latency(),
            )?,
            payload_size: r.histogram(
                PAYLOAD_SIZE_BYTES,
                "Committed payload size (RLP bytes).",
                prometheus::exponential_buckets(512.0, 4.0, 8)?,
            )?,
            transactions_per_block: r.histogram(
                TRANSACTION_COUNT_PER_BLOCK,
                "Transactions per committed payload.",
                prometheus::exponential_buckets(1.0, 4.0, 8)?,
            )?,
            gas_used_per_block: r.histogram(
                GAS_USED_PER_BLOCK,
                "Gas used per committed payload.",
                prometheus::exponential_buckets(21_000.0, 4.0, 8)?,
            )?,
            preparations: r.counters(
                PREPARATIONS_TOTAL,
                "Payload preparations by outcome.",
                &["outcome"],
            )?,
            disagreements: r.counters(
                DISAGREEMENTS_TOTAL,
                "Payloads VALID on one execution client and INVALID on another, by what the policy did.",
                &["outcome"],
            )?,
            blocks_replayed: r.counter(
                BLOCKS_REPLAYED_TOTAL,
                "Blocks replayed into execution clients that lacked them.",
            )?,
            peg_out_scan_failures: r.counter(
                PEG_OUT_SCAN_FAILURES_TOTAL,
                "Failed receipts fetches of the peg-out scan (each is retried until it succeeds).",
            )?,
            restarts: r.counters(
                ACTOR_RESTARTS_TOTAL,
                "Child actor restarts by child.",
                &["child"],
            )?,
            migration_mode: r.add(IntGauge::new(
                MIGRATION_MODE,
                "Current migration mode (0=legacy, 1=shadow, 2=canary, 3=parallel, 4=primary, 5=actor-only).",
            )?)?,
            migration_health_score: r.add(Gauge::new(
                MIGRATION_HEALTH_SCORE,
                "Migration health score, 0-100.",
            )?)?,
            state_validation_failures: r.add(IntCounter::new(
                STATE_VALIDATION_FAILURES_TOTAL,
                "Legacy and actor results that differed during a migration (set by engine-migration).",
            )?)?,
            registry,
        };
        // Exported at zero from the start, so an alert on them has a series to watch.
        for outcome in ["refused", "followed"] {
            metrics.disagreements.with_label_values(&[outcome]);
        }
        for op in SLOT_PATH_OPERATIONS {
            metrics.operation_failures.with_label_values(&[op]);
            metrics.operation_timeouts.with_label_values(&[op]);
        }
        Ok(metrics)
    }

    /// The registry (e.g. to add the node's own metrics or to gather).
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Count a committed payload's size, transactions and gas.
    pub(crate) fn observe_payload(&self, size_bytes: usize, transactions: usize, gas_used: u64) {
        self.payload_size.observe(size_bytes as f64);
        self.transactions_per_block.observe(transactions as f64);
        self.gas_used_per_block.observe(gas_used as f64);
    }

    /// The text exposition format of everything in the registry.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if let Err(e) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            warn!(error = %e, "cannot encode metrics");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

impl RpcObserver for EngineMetrics {
    fn observe(&self, method: &str, elapsed: Duration, error: Option<&EngineError>) {
        let outcome = error.map_or("ok", EngineError::kind);
        self.rpc_duration
            .with_label_values(&[method, outcome])
            .observe(elapsed.as_secs_f64());
    }

    fn retried(&self, method: &str, retries: usize, exhausted: bool) {
        self.operation_retries
            .with_label_values(&[method])
            .observe(retries as f64);
        if exhausted {
            self.operation_exhausted_retries
                .with_label_values(&[method])
                .inc();
        }
    }
}
