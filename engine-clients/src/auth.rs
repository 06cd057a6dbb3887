//! JWT bearer auth for the Engine API, as a tower layer over the hyper client.
//!
//! Not alloy's `AuthLayer`: that one sends `"exp": null`, which EthereumJS reads as an expiry
//! in 1970 and refuses every request with HTTP 401 "Token expired". The spec makes `exp`
//! optional, so we leave it out, and sign a fresh token (new `iat`) for every request.

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, RwLock},
    task::{Context, Poll},
    time::{SystemTime, UNIX_EPOCH},
};

use alloy_rpc_types_engine::JwtSecret;
use hyper::{Request, header::AUTHORIZATION, http::HeaderValue};
use tower::{Layer, Service};

/// Claims we send: `iat` only.
#[derive(serde::Serialize)]
struct Claims {
    iat: u64,
}

/// A fresh HS256 bearer token for `secret`, issued now.
pub fn bearer_token(secret: &JwtSecret) -> Result<String, jsonwebtoken::errors::Error> {
    let iat = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes());
    let token = jsonwebtoken::encode(&jsonwebtoken::Header::default(), &Claims { iat }, &key)?;
    Ok(format!("Bearer {token}"))
}

/// The secret a client signs with; replaceable while the client runs (secret rotation).
#[derive(Debug, Clone)]
pub struct SecretCell(Arc<RwLock<JwtSecret>>);

impl SecretCell {
    /// A cell holding `secret`.
    pub fn new(secret: JwtSecret) -> Self {
        Self(Arc::new(RwLock::new(secret)))
    }

    /// The current secret.
    pub fn get(&self) -> JwtSecret {
        *self
            .0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Replace the secret; returns whether it changed.
    pub fn replace(&self, secret: JwtSecret) -> bool {
        let mut current = self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let changed = current.as_bytes() != secret.as_bytes();
        *current = secret;
        changed
    }
}

/// Adds `Authorization: Bearer <jwt>` to every request.
#[derive(Debug, Clone)]
pub struct JwtAuthLayer {
    secret: SecretCell,
}

impl JwtAuthLayer {
    /// Sign with the secret in `secret` (read again for every request).
    pub const fn new(secret: SecretCell) -> Self {
        Self { secret }
    }
}

impl<S> Layer<S> for JwtAuthLayer {
    type Service = JwtAuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        JwtAuthService {
            inner,
            secret: self.secret.clone(),
        }
    }
}

/// The service made by [`JwtAuthLayer`].
#[derive(Debug, Clone)]
pub struct JwtAuthService<S> {
    inner: S,
    secret: SecretCell,
}

/// A request that could not be authenticated, or the inner service's error.
#[derive(Debug, thiserror::Error)]
pub enum JwtAuthError<E> {
    /// Signing the token failed.
    #[error("cannot sign the engine JWT: {0}")]
    Token(#[from] jsonwebtoken::errors::Error),
    /// The wrapped HTTP client failed.
    #[error(transparent)]
    Inner(E),
}

impl<S, B> Service<Request<B>> for JwtAuthService<S>
where
    S: Service<Request<B>> + Clone + Send + 'static,
    S::Future: Send,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = S::Response;
    type Error = JwtAuthError<S::Error>;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(JwtAuthError::Inner)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let token = bearer_token(&self.secret.get())
            .map_err(JwtAuthError::Token)
            .and_then(|t| {
                HeaderValue::from_str(&t).map_err(|_| {
                    JwtAuthError::Token(jsonwebtoken::errors::ErrorKind::InvalidToken.into())
                })
            });
        match token {
            Ok(value) => {
                request.headers_mut().insert(AUTHORIZATION, value);
                let future = self.inner.call(request);
                Box::pin(async move { future.await.map_err(JwtAuthError::Inner) })
            }
            Err(e) => Box::pin(async move { Err(e) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_has_iat_and_no_exp() {
        let secret = JwtSecret::random();
        let token = bearer_token(&secret).unwrap();
        let jwt = token.strip_prefix("Bearer ").unwrap();
        // alloy's own validator accepts it (HS256, iat within ±60 s).
        secret.validate(jwt).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
        validation.set_required_spec_claims(&["iat"]);
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<serde_json::Value>(
            jwt,
            &jsonwebtoken::DecodingKey::from_secret(secret.as_bytes()),
            &validation,
        )
        .unwrap()
        .claims;
        assert!(claims.get("iat").is_some_and(serde_json::Value::is_u64));
        assert!(
            claims.get("exp").is_none(),
            "exp must be absent, not null: {claims}"
        );
    }
}
