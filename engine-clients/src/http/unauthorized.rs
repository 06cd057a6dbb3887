//! Recognises a refused JWT by its HTTP status, before alloy looks at the body.
//!
//! alloy 2 turns a non-2xx answer whose body is a JSON-RPC error into that error object, so a
//! 401 with a JSON body (Nethermind answers auth failures that way) would arrive as an ordinary
//! `-32000`/`-32700` error: no `Auth` classification, no secret re-read. This layer sits
//! between alloy's `AuthLayer` and hyper and turns every 401/403 into [`Unauthorized`], which
//! [`classify`](super::classify) reports as [`EngineError::Auth`](engine_types::EngineError::Auth).

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use http_body_util::BodyExt;
use hyper::{Request, Response, StatusCode, body::Body};
use tower::{Layer, Service};

/// The execution client refused our token (HTTP 401 or 403).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("HTTP {status}: {body}")]
pub struct Unauthorized {
    /// 401 or 403.
    pub status: u16,
    /// The start of the body the client sent with it.
    pub body: String,
}

/// Why the layer's service failed: the client refused us, or the inner service failed.
#[derive(Debug, thiserror::Error)]
pub enum AuthStatusError<E> {
    /// HTTP 401/403 (its source, so a search of the error chain finds it).
    #[error("{0}")]
    Unauthorized(#[source] Unauthorized),
    /// The HTTP client itself.
    #[error(transparent)]
    Inner(E),
}

/// Adds [`AuthStatus`] to a hyper client.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct AuthStatusLayer;

impl<S> Layer<S> for AuthStatusLayer {
    type Service = AuthStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthStatus { inner }
    }
}

/// The service of [`AuthStatusLayer`].
#[derive(Debug, Clone)]
pub(crate) struct AuthStatus<S> {
    inner: S,
}

/// How much of a refusal's body is kept for the error message.
const BODY_PREFIX: usize = 200;

impl<S, B, ResBody> Service<Request<B>> for AuthStatus<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Send + 'static,
    S::Future: Send + 'static,
    ResBody: Body + Send + 'static,
    ResBody::Data: Send,
{
    type Response = Response<ResBody>;
    type Error = AuthStatusError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(AuthStatusError::Inner)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await.map_err(AuthStatusError::Inner)?;
            let status = response.status();
            if status != StatusCode::UNAUTHORIZED && status != StatusCode::FORBIDDEN {
                return Ok(response);
            }
            // The body only explains the refusal; an unreadable one is not worth an error.
            let body = match response.into_body().collect().await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    let text = String::from_utf8_lossy(&bytes[..bytes.len().min(BODY_PREFIX)]);
                    text.trim().to_owned()
                }
                Err(_) => String::new(),
            };
            Err(AuthStatusError::Unauthorized(Unauthorized {
                status: status.as_u16(),
                body,
            }))
        })
    }
}
