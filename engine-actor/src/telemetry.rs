//! Tracing set-up: logs to stderr and, when the standard `OTEL_*` variables ask for it, spans
//! exported over OTLP/HTTP (protobuf) to a collector or Jaeger (`:4318`).
//!
//! Nothing is exported unless `OTEL_EXPORTER_OTLP_ENDPOINT` or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is set (and `OTEL_SDK_DISABLED` is not `true`): then no
//! exporter thread exists and spans cost what `tracing` costs without a subscriber layer.
//! `OTEL_SERVICE_NAME` names the service (default given by the caller, e.g. `alys-engine`).
//! The exporter speaks plain HTTP; point it at a local collector or agent.

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer, Registry, layer::SubscriberExt, util::SubscriberInitExt,
};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The OTLP exporter could not be built (bad endpoint, ...).
    #[error(
        "cannot build the OTLP span exporter: {0}; check OTEL_EXPORTER_OTLP_ENDPOINT (e.g. http://127.0.0.1:4318)"
    )]
    Exporter(String),
    /// A global subscriber was already installed.
    #[error("a tracing subscriber is already installed: {0}")]
    AlreadyInstalled(String),
}

/// Keeps the exporter alive; dropping it flushes and shuts the exporter down.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub const fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Flush pending spans now.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider {
            let _ = provider.force_flush();
        }
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("telemetry: flushing spans at shutdown failed: {e}");
        }
    }
}

/// Whether the environment asks for OTLP export.
pub fn otlp_requested() -> bool {
    let set = |k: &str| std::env::var(k).is_ok_and(|v| !v.trim().is_empty());
    let disabled = std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"));
    !disabled && (set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
}

/// A tracer provider exporting over OTLP/HTTP as configured by the `OTEL_*` variables.
pub fn otlp_provider(default_service_name: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let mut resource = Resource::builder();
    if std::env::var("OTEL_SERVICE_NAME").is_err() {
        resource = resource.with_service_name(default_service_name.to_owned());
    }
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource.build())
        .build())
}

/// The tracing layer that turns spans into OpenTelemetry spans of `provider`.
pub fn otel_layer<S>(provider: &SdkTracerProvider) -> impl Layer<S> + use<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer("alys-engine"))
}

/// Which spans are exported: the engine's own (messages, RPC calls, the devnet's slots), not
/// the transport's internals.
pub fn span_filter() -> tracing_subscriber::filter::Targets {
    tracing_subscriber::filter::Targets::new()
        .with_target("engine_actor", tracing::Level::INFO)
        .with_target("engine_clients", tracing::Level::INFO)
        .with_target("engine_devnet", tracing::Level::INFO)
}

/// Install the global subscriber: `RUST_LOG`-filtered logs on stderr (default `info`) plus the
/// OTLP layer when requested. Keep the guard until shutdown.
pub fn init(default_service_name: &str) -> Result<TelemetryGuard, TelemetryError> {
    init_with_log_level(default_service_name, "info")
}

/// [`init`] with another default log filter when `RUST_LOG` is unset (a CLI that prints its
/// own progress may want `error`).
pub fn init_with_log_level(
    default_service_name: &str,
    default_logs: &str,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_logs));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_target(false);
    let provider = if otlp_requested() {
        Some(otlp_provider(default_service_name)?)
    } else {
        None
    };
    let otel = provider
        .as_ref()
        .map(|p| otel_layer::<Registry>(p).with_filter(span_filter()));
    tracing_subscriber::registry()
        .with(otel)
        .with(fmt.with_filter(filter))
        .try_init()
        .map_err(|e| TelemetryError::AlreadyInstalled(e.to_string()))?;
    Ok(TelemetryGuard { provider })
}
