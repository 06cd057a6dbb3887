//! Prometheus metrics of one engine, in a registry of its own (two engines in one process do not
//! collide, and nothing touches prometheus' global registry), served at `/metrics`.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use bytes::Bytes;
use engine_clients::RpcObserver;
use engine_types::EngineError;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use prometheus::{
    Encoder, Gauge, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};
use tokio::net::TcpListener;
use tracing::{debug, warn};

use crate::{handle::EngineHandle, messages::EngineStatus};

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
    /// Cache hits by cache.
    pub const CACHE_HITS_TOTAL: &str = "engine_cache_hits_total";
    /// Cache misses by cache.
    pub const CACHE_MISSES_TOTAL: &str = "engine_cache_misses_total";
    /// Cache evictions (capacity or expiry) by cache.
    pub const CACHE_EVICTIONS_TOTAL: &str = "engine_cache_evictions_total";
    /// Cache entries by cache.
    pub const CACHE_ENTRIES: &str = "engine_cache_entries";
    /// Circuit breaker state changes by endpoint.
    pub const CIRCUIT_BREAKER_STATE_CHANGES_TOTAL: &str =
        "engine_circuit_breaker_state_changes_total";
    /// Circuit breaker state by endpoint (0 closed, 1 half-open, 2 open).
    pub const CIRCUIT_BREAKER_STATE: &str = "engine_circuit_breaker_state";
    /// 1 when the session is connected, else 0.
    pub const CONNECTION_STATUS: &str = "engine_connection_status";
    /// Sync progress of each execution client (100 when synced).
    pub const SYNC_PROGRESS_PERCENT: &str = "engine_sync_progress_percent";
    /// Committed payload size (RLP bytes).
    pub const PAYLOAD_SIZE_BYTES: &str = "engine_payload_size_bytes";
    /// Transactions per committed payload.
    pub const PAYLOAD_TRANSACTIONS: &str = "engine_payload_transactions";
    /// Gas used per committed payload.
    pub const PAYLOAD_GAS_USED: &str = "engine_payload_gas_used";
    /// Payload preparations by outcome (made, used, wasted, unknown_to_el).
    pub const PREPARATIONS_TOTAL: &str = "engine_payload_preparations_total";
    /// Child restarts by child.
    pub const ACTOR_RESTARTS_TOTAL: &str = "engine_actor_restarts_total";
    /// Current migration mode (set by engine-migration; 0 when no migration runs).
    pub const MIGRATION_MODE: &str = "engine_migration_mode";
    /// Migration health score 0–100 (set by engine-migration).
    pub const MIGRATION_HEALTH_SCORE: &str = "engine_migration_health_score";
    /// Every state-changing request, by operation and outcome.
    pub const WRITE_DURATION: &str = "engine_write_duration_seconds";

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
        CIRCUIT_BREAKER_STATE,
        CONNECTION_STATUS,
        SYNC_PROGRESS_PERCENT,
        PAYLOAD_SIZE_BYTES,
        PAYLOAD_TRANSACTIONS,
        PAYLOAD_GAS_USED,
        PREPARATIONS_TOTAL,
        ACTOR_RESTARTS_TOTAL,
        MIGRATION_MODE,
        MIGRATION_HEALTH_SCORE,
    ];
}

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
    cache_hits: IntCounterVec,
    cache_misses: IntCounterVec,
    cache_evictions: IntCounterVec,
    cache_entries: IntGaugeVec,
    circuit_changes: IntCounterVec,
    circuit_state: IntGaugeVec,
    connection_status: IntGaugeVec,
    sync_progress: GaugeVec,
    pub(crate) commit_duration: prometheus::Histogram,
    pub(crate) finalize_duration: prometheus::Histogram,
    payload_size: prometheus::Histogram,
    payload_transactions: prometheus::Histogram,
    payload_gas_used: prometheus::Histogram,
    pub(crate) preparations: IntCounterVec,
    pub(crate) restarts: IntCounterVec,
    /// Set by engine-migration.
    pub migration_mode: IntGauge,
    /// Set by engine-migration.
    pub migration_health_score: Gauge,
}

fn counter(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, prometheus::Error> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(c.clone()))?;
    Ok(c)
}

fn histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
    buckets: Vec<f64>,
) -> Result<HistogramVec, prometheus::Error> {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(buckets), labels)?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

fn plain_histogram(
    registry: &Registry,
    name: &str,
    help: &str,
    buckets: Vec<f64>,
) -> Result<prometheus::Histogram, prometheus::Error> {
    let h = prometheus::Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
    registry.register(Box::new(h.clone()))?;
    Ok(h)
}

fn gauge(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, prometheus::Error> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl EngineMetrics {
    /// Every metric, registered in a new registry.
    pub fn new() -> Result<Self, prometheus::Error> {
        use names::*;
        let r = Registry::new();
        let latency = LATENCY_BUCKETS.to_vec();
        let plain = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(Self {
            blocks_built: plain(BLOCKS_BUILT_TOTAL, "Blocks built (getPayload answered).")?,
            blocks_committed: plain(
                BLOCKS_COMMITTED_TOTAL,
                "Blocks committed (VALID and made head).",
            )?,
            blocks_finalized: plain(BLOCKS_FINALIZED_TOTAL, "Blocks finalized at the EL.")?,
            build_duration: histogram(
                &r,
                BUILD_DURATION,
                "Time to build a block at slot time.",
                &["prepared"],
                latency.clone(),
            )?,
            write_duration: histogram(
                &r,
                WRITE_DURATION,
                "Time of every state-changing request, by operation and outcome.",
                &["op", "outcome"],
                latency.clone(),
            )?,
            rpc_duration: histogram(
                &r,
                RPC_DURATION,
                "JSON-RPC latency per method (after retries).",
                &["method", "outcome"],
                latency,
            )?,
            errors: counter(
                &r,
                ERRORS_TOTAL,
                "Failed engine requests by error type.",
                &["error_type"],
            )?,
            cache_hits: counter(&r, CACHE_HITS_TOTAL, "Cache hits by cache.", &["cache"])?,
            cache_misses: counter(&r, CACHE_MISSES_TOTAL, "Cache misses by cache.", &["cache"])?,
            cache_evictions: counter(
                &r,
                CACHE_EVICTIONS_TOTAL,
                "Cache evictions (capacity or expiry) by cache.",
                &["cache"],
            )?,
            cache_entries: gauge(&r, CACHE_ENTRIES, "Cache entries by cache.", &["cache"])?,
            circuit_changes: counter(
                &r,
                CIRCUIT_BREAKER_STATE_CHANGES_TOTAL,
                "Circuit breaker state changes by endpoint.",
                &["endpoint"],
            )?,
            circuit_state: gauge(
                &r,
                CIRCUIT_BREAKER_STATE,
                "Circuit breaker state (0 closed, 1 half-open, 2 open).",
                &["endpoint"],
            )?,
            connection_status: gauge(
                &r,
                CONNECTION_STATUS,
                "1 when the session to the endpoint is connected.",
                &["endpoint"],
            )?,
            sync_progress: {
                let g = GaugeVec::new(
                    Opts::new(
                        SYNC_PROGRESS_PERCENT,
                        "Execution client sync progress (100 when synced).",
                    ),
                    &["endpoint"],
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            commit_duration: plain_histogram(
                &r,
                COMMIT_DURATION,
                "Time to commit a block (newPayload + forkchoiceUpdated + persist).",
                LATENCY_BUCKETS.to_vec(),
            )?,
            finalize_duration: plain_histogram(
                &r,
                FINALIZE_DURATION,
                "Time to finalize a block at the EL.",
                LATENCY_BUCKETS.to_vec(),
            )?,
            payload_size: plain_histogram(
                &r,
                PAYLOAD_SIZE_BYTES,
                "Committed payload size (RLP bytes).",
                prometheus::exponential_buckets(512.0, 4.0, 8)?,
            )?,
            payload_transactions: plain_histogram(
                &r,
                PAYLOAD_TRANSACTIONS,
                "Transactions per committed payload.",
                prometheus::exponential_buckets(1.0, 4.0, 8)?,
            )?,
            payload_gas_used: plain_histogram(
                &r,
                PAYLOAD_GAS_USED,
                "Gas used per committed payload.",
                prometheus::exponential_buckets(21_000.0, 4.0, 8)?,
            )?,
            preparations: counter(
                &r,
                PREPARATIONS_TOTAL,
                "Payload preparations by outcome.",
                &["outcome"],
            )?,
            restarts: counter(
                &r,
                ACTOR_RESTARTS_TOTAL,
                "Child actor restarts by child.",
                &["child"],
            )?,
            migration_mode: {
                let g = IntGauge::new(
                    MIGRATION_MODE,
                    "Current migration mode (0 when no migration runs).",
                )?;
                r.register(Box::new(g.clone()))?;
                g
            },
            migration_health_score: {
                let g = Gauge::new(MIGRATION_HEALTH_SCORE, "Migration health score, 0-100.")?;
                r.register(Box::new(g.clone()))?;
                g
            },
            registry: r,
        })
    }

    /// The registry (e.g. to add the node's own metrics or to gather).
    pub const fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Count a committed payload's size, transactions and gas.
    pub(crate) fn observe_payload(&self, size_bytes: usize, transactions: usize, gas_used: u64) {
        self.payload_size.observe(size_bytes as f64);
        self.payload_transactions.observe(transactions as f64);
        self.payload_gas_used.observe(gas_used as f64);
    }

    /// Bring the status-derived families (caches, sessions) up to date.
    pub fn refresh(&self, status: &EngineStatus) {
        let set = |c: &IntCounterVec, label: &str, v: u64| {
            let c = c.with_label_values(&[label]);
            // The actor's counters start again after a restart: a Prometheus counter reset.
            c.reset();
            c.inc_by(v);
        };
        for (name, stats) in [
            ("payloads", &status.caches.payloads),
            ("blocks", &status.caches.blocks),
            ("receipts", &status.caches.receipts),
        ] {
            set(&self.cache_hits, name, stats.hits);
            set(&self.cache_misses, name, stats.misses);
            set(&self.cache_evictions, name, stats.evictions);
            self.cache_entries
                .with_label_values(&[name])
                .set(stats.len as i64);
        }
        for s in &status.sessions {
            let ep = s.endpoint.as_str();
            set(&self.circuit_changes, ep, s.circuit_transitions);
            let state = match s.circuit {
                crate::CircuitState::Closed => 0,
                crate::CircuitState::HalfOpen => 1,
                crate::CircuitState::Open => 2,
            };
            self.circuit_state.with_label_values(&[ep]).set(state);
            self.connection_status
                .with_label_values(&[ep])
                .set(i64::from(s.connected));
            if let Some(sync) = s.sync {
                self.sync_progress
                    .with_label_values(&[ep])
                    .set(sync.progress_percent());
            }
        }
    }

    /// The text exposition format.
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
}

/// Serve `GET /metrics` for `handle`'s engine on `addr` (`127.0.0.1:0` picks a port). Returns
/// the bound address; the server stops when the returned task is aborted.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<EngineMetrics>,
    handle: EngineHandle,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), EngineError> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        EngineError::config(
            "metrics address",
            format!("cannot listen on {addr}: {e}; pick a free address"),
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| EngineError::config("metrics address", e.to_string()))?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            let handle = handle.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let metrics = Arc::clone(&metrics);
                    let handle = handle.clone();
                    async move {
                        if req.uri().path() != "/metrics" {
                            let mut not_found =
                                Response::new(Full::new(Bytes::from_static(b"try /metrics\n")));
                            *not_found.status_mut() = hyper::StatusCode::NOT_FOUND;
                            return Ok::<_, std::convert::Infallible>(not_found);
                        }
                        if let Ok(Ok(status)) =
                            tokio::time::timeout(Duration::from_secs(2), handle.status()).await
                        {
                            metrics.refresh(&status);
                        }
                        let mut resp = Response::new(Full::new(Bytes::from(metrics.render())));
                        resp.headers_mut().insert(
                            header::CONTENT_TYPE,
                            header::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        Ok(resp)
                    }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok((bound, task))
}
