//! The supervised ractor actor tree that drives the execution client for the Alys node.
//!
//! | module | what |
//! |---|---|
//! | `supervisor` | [`EngineSystem`] (start, handle, metrics, shutdown) and the supervisor: one-for-one restarts with backoff, escalation |
//! | `writer` | the writer: the one owner of EL writes and the state file; awaits each write inline, publishes the forkchoice |
//! | `engine` | the EngineActor: caches and reads, never waiting on IO or behind a write |
//! | `session` | one ClientSession per endpoint: connection, capabilities, circuit breaker, [`SessionStatus`] |
//! | `poller` | HealthPoller and CacheJanitor |
//! | `handle` | [`EngineHandle`] (typed async API with deadlines) and [`Engine`], the legacy facade |
//! | `protocol` | what requests name ([`BlockRef`], [`PayloadRef`]), events, status types |
//! | `metrics` | [`EngineMetrics`]: a Prometheus registry per engine; the operations endpoint (`/metrics`, `/livez`, `/readyz`, `/status`); names in [`metric_names`] |
//! | `health` | [`Liveness`] and [`Readiness`], what `/livez` and `/readyz` answer |
//! | `telemetry` | tracing + OpenTelemetry (OTLP/HTTP) set-up from the `OTEL_*` variables |
//! | `cache`, `persistence`, `pegout`, `wiring` | TTL caches, forkchoice on disk, peg-out events, the channels a tree shares |
//!
//! Test hooks (crashing or killing a child) exist only with the `test-hooks` cargo feature.
//!
//! ```no_run
//! use engine_actor::EngineSystem;
//! use engine_types::{BuildPayloadRequest, EngineConfig};
//! # async fn demo() -> Result<(), engine_types::EngineError> {
//! let system = EngineSystem::start(EngineConfig::load(Some("engine.toml".as_ref()))?).await?;
//! let engine = system.handle();
//! let head = engine.forkchoice().await?;
//! let built = engine.build_payload(BuildPayloadRequest::new(head.head_timestamp + 2)).await?;
//! let hash = engine.commit_payload(built.execution_data).await?;
//! engine.finalize(hash).await?;
//! system.shutdown().await;
//! # Ok(()) }
//! ```

mod cache;
mod engine;
mod handle;
mod health;
mod metrics;
mod pegout;
mod persistence;
mod poller;
mod protocol;
mod session;
mod supervisor;
mod telemetry;
mod wiring;
mod writer;

pub use cache::{CacheStats, TtlCache};
pub use handle::{Engine, EngineHandle, LegacyApi};
pub use health::{Liveness, Readiness};
pub use metrics::{EngineMetrics, names as metric_names};
pub use pegout::{
    DEFAULT_BRIDGE_ADDRESS, PegOutEvents, PegOutRequested, PegOutRule, PegOutRules, RequestPegOut,
    peg_outs_by_rule, peg_outs_in_receipts,
};
pub use persistence::ForkchoiceSnapshot;
pub use protocol::{
    BlockRef, CachesStatus, EngineEvent, EngineStatus, ImportReport, InFlightWrite, LatencyStats,
    PayloadRef, PreparationStats, WriterStatus,
};
pub use session::{
    CircuitBreaker, CircuitChange, CircuitState, SessionStatus, is_connectivity_failure,
};
pub use supervisor::{ChildKind, EngineSystem};
pub use telemetry::{
    TelemetryError, TelemetryGuard, init as init_telemetry,
    init_with_log_level as init_telemetry_with_log_level, otel_layer, otlp_provider,
    otlp_requested, span_filter,
};
