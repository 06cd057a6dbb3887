//! One JSON-RPC call: a deadline, a client span, retries of idempotent calls only, and one
//! retry after a 401 when the secret file was rotated.

use std::{future::Future, time::Duration};

use alloy_json_rpc::RpcError;
use alloy_transport::TransportErrorKind;
use backon::{ExponentialBuilder, Retryable};
use engine_types::{EngineError, EngineMethod};
use tracing::{Instrument, Span, debug};

use super::{HttpExecutionClient, classify};

/// For [`HttpExecutionClient::call_traced`] when the answer adds no span fields.
pub(super) fn no_fields<T>(_: &T, _: &Span) {}

impl HttpExecutionClient {
    /// One call with a deadline, classified errors, and (when `idempotent`) retries with
    /// exponential backoff and jitter for retryable errors only.
    pub(super) async fn call<T, F, Fut>(
        &self,
        method: &str,
        deadline: Duration,
        idempotent: bool,
        request: F,
    ) -> Result<T, EngineError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        self.call_traced(method, deadline, idempotent, &[], no_fields, request)
            .await
    }

    /// [`Self::call`] inside a client span (`rpc.method`, `server.address`,
    /// `rpc.jsonrpc.error_code` on error), with `before` fields recorded up front and `after`
    /// recording fields of the answer (payload status, block hash).
    ///
    /// `request` is called again for a retry or after a rotation, so it must fetch the
    /// providers itself (`self.engine()`), not capture them.
    pub(super) async fn call_traced<T, F, Fut>(
        &self,
        method: &str,
        deadline: Duration,
        idempotent: bool,
        before: &[(&'static str, String)],
        after: impl FnOnce(&T, &Span),
        request: F,
    ) -> Result<T, EngineError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "rpc",
            otel.name = method,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "jsonrpc",
            rpc.method = method,
            rpc.jsonrpc.error_code = tracing::field::Empty,
            server.address = %self.options.engine_url,
            error.r#type = tracing::field::Empty,
            engine.payload_id = tracing::field::Empty,
            engine.block_hash = tracing::field::Empty,
            engine.payload_status = tracing::field::Empty,
        );
        for (field, value) in before {
            span.record(*field, value.as_str());
        }
        let once = || async {
            match tokio::time::timeout(deadline, request()).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(classify(method, &self.options.engine_url, e)),
                Err(_) => Err(EngineError::Timeout {
                    method: method.to_owned(),
                    after: deadline,
                }),
            }
        };
        let retry = self.options.retry;
        let retries = std::sync::atomic::AtomicUsize::new(0);
        let attempt = || async {
            if !idempotent || retry.max_retries == 0 {
                once().instrument(span.clone()).await
            } else {
                let backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(retry.initial_backoff_ms))
                    .with_max_delay(Duration::from_millis(retry.max_backoff_ms))
                    .with_max_times(retry.max_retries)
                    .with_jitter();
                once.retry(backoff)
                    .when(EngineError::is_retryable)
                    .notify(|e, after| {
                        retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        debug!(method, error = %e, ?after, "retrying");
                    })
                    .instrument(span.clone())
                    .await
            }
        };
        let signed_with = self.secret_in_use();
        let mut result = attempt().await;
        // A 401 after the secret file changed is a rotation: sign with the new secret and try
        // once more (the refused request was not processed, so this is safe for writes too).
        // Another call may have picked the new secret up meanwhile: what counts is whether
        // this request went out with an older one.
        if matches!(result, Err(EngineError::Auth { .. })) {
            self.reload_secret();
            if self.secret_in_use().as_bytes() != signed_with.as_bytes() {
                result = attempt().await;
            }
        }
        match &result {
            Ok(value) => after(value, &span),
            Err(e) => {
                // The client may have restarted: its next first block may be slow again.
                if matches!(e, EngineError::Transport { .. }) {
                    self.set_processing_warm(false);
                }
                if let Some(code) = e.rpc_code() {
                    span.record("rpc.jsonrpc.error_code", code);
                }
                span.record("error.type", e.kind());
                span.record("otel.status_code", "ERROR");
            }
        }
        if let Some(observer) = &self.options.observer {
            observer.observe(method, started.elapsed(), result.as_ref().err());
            if idempotent {
                let retries = retries.load(std::sync::atomic::Ordering::Relaxed);
                let exhausted = retries >= retry.max_retries
                    && retry.max_retries > 0
                    && result.as_ref().err().is_some_and(EngineError::is_retryable);
                observer.retried(method, retries, exhausted);
            }
        }
        result
    }

    /// The deadline of a slot-path method: its configured timeout, bounded by the slot — except
    /// a newPayload before the client has processed one since it (re)connected, which gets its
    /// full configured timeout (the first block after a client starts can take seconds), and
    /// any call made under [`crate::with_import_deadlines`].
    pub(super) fn slot_bounded(&self, method: EngineMethod) -> Duration {
        let configured = self.options.timeouts.for_engine_method(method);
        if crate::deadlines::import_deadlines()
            || (method.is_new_payload() && !self.processing_warm())
        {
            return configured;
        }
        self.options
            .slot_deadline
            .map_or(configured, |slot| configured.min(slot))
    }

    /// The deadline of `method`, or an error before any IO when the client does not offer it.
    pub(super) fn engine_call_checked(
        &self,
        method: EngineMethod,
    ) -> Result<Duration, EngineError> {
        self.capabilities.require(method)?;
        Ok(self.slot_bounded(method))
    }
}
