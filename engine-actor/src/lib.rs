//! The supervised ractor actor tree that drives the execution client for the Alys node.
//!
//! | module | what |
//! |---|---|
//! | [`supervisor`] | [`EngineSystem`] (start, handle, shutdown) and [`EngineSupervisor`]: one-for-one restarts with backoff, escalation |
//! | [`engine`] | [`EngineActor`]: owns forkchoice and caches, serialises writes, never blocks on IO |
//! | [`session`] | [`ClientSession`]: one per endpoint; client, capabilities, circuit breaker |
//! | [`poller`] | [`HealthPoller`] and [`CacheJanitor`] |
//! | [`handle`] | [`EngineHandle`] (typed async API) and [`Engine`], the legacy facade |
//! | [`messages`] | the message protocol |
//! | [`metrics`] | [`EngineMetrics`]: Prometheus registry per engine, `/metrics` server |
//! | [`telemetry`] | tracing + OpenTelemetry (OTLP/HTTP) set-up from the `OTEL_*` variables |
//! | [`cache`], [`breaker`], [`persistence`], [`pegout`] | TTL caches, circuit breaker, forkchoice on disk, peg-out events |
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

pub mod breaker;
pub mod cache;
pub mod engine;
pub mod handle;
pub mod messages;
pub mod metrics;
pub mod pegout;
pub mod persistence;
pub mod poller;
pub mod session;
pub mod supervisor;
pub mod telemetry;

pub use breaker::{CircuitBreaker, CircuitState};
pub use cache::{CacheStats, TtlCache};
pub use engine::EngineActor;
pub use handle::{Engine, EngineHandle, LegacyApi};
pub use messages::{
    BlockRef, EngineEvent, EngineMsg, EngineRef, EngineStatus, LatencyStats, PayloadRef,
    PreparationStats,
};
pub use metrics::EngineMetrics;
pub use pegout::{DEFAULT_BRIDGE_ADDRESS, PegOutRequested, RequestPegOut, peg_outs_in_receipts};
pub use persistence::ForkchoiceSnapshot;
pub use poller::{CacheJanitor, HealthPoller};
pub use session::{ClientSession, SessionStatus};
pub use supervisor::{ChildKind, EngineSupervisor, EngineSystem};
pub use telemetry::{
    TelemetryGuard, init as init_telemetry, init_with_log_level as init_telemetry_with_log_level,
};
