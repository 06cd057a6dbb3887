//! [`ClientOptions`]: how to reach one execution client and how to talk to it.

use std::{path::Path, sync::Arc, time::Duration};

use alloy_rpc_types_engine::JwtSecret;
use engine_types::{
    ChainConfig, EndpointConfig, EngineConfig, EngineError, ForkSchedule, RetryConfig,
    TimeoutConfig,
};

use crate::load_jwt_secret;

/// Sees every JSON-RPC call a client makes (after retries), e.g. to feed latency histograms.
pub trait RpcObserver: Send + Sync + std::fmt::Debug {
    /// `method` took `elapsed` and failed with `error` (if it failed).
    fn observe(&self, method: &str, elapsed: Duration, error: Option<&EngineError>);

    /// An idempotent `method` was retried `retries` times (0: it succeeded or failed for good
    /// at once); `exhausted`: it still failed after the last retry. Default: ignored.
    fn retried(&self, method: &str, retries: usize, exhausted: bool) {
        let _ = (method, retries, exhausted);
    }
}

/// How to reach one execution client and how to talk to it.
///
/// Build it from the engine's configuration ([`ClientOptions::from_config`]) so every deadline,
/// the retry policy and the fork schedule come along; [`ClientOptions::new`] starts from the
/// defaults and the `with_*` methods change one setting at a time.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Authenticated Engine API URL.
    pub engine_url: String,
    /// Public URL for `eth_` reads; `None` uses the engine URL.
    pub eth_url: Option<String>,
    /// The JWT secret.
    pub jwt_secret: JwtSecret,
    /// The file the secret came from; when set, a 401 makes the client read it again and, if
    /// the secret changed (rotation), retry once with the new one.
    pub jwt_secret_path: Option<std::path::PathBuf>,
    /// Fork schedule choosing method versions.
    pub fork_schedule: ForkSchedule,
    /// Per-method deadlines.
    pub timeouts: TimeoutConfig,
    /// Retries of idempotent calls.
    pub retry: RetryConfig,
    /// Upper bound for slot-path deadlines (forkchoiceUpdated, getPayload, newPayload).
    pub slot_deadline: Option<Duration>,
    /// Told about every call (method, latency, error), e.g. for metrics.
    pub observer: Option<Arc<dyn RpcObserver>>,
    /// At connect, build and send one throwaway block (never made canonical) when the client's
    /// first newPayload is slow (the quirk `slow_first_new_payload`: Reth), so the first slot
    /// does not pay for it. Default `true`.
    pub warm_up: bool,
    /// The chain the client must be on, checked at every connect (a client on another chain is
    /// refused with [`EngineError::WrongChain`]). Default: not checked.
    pub chain: ChainConfig,
    /// PEM file with certificate authorities trusted for `https://` URLs besides the system's.
    pub tls_ca_path: Option<std::path::PathBuf>,
}

impl ClientOptions {
    /// Options for `endpoint` under `config`: its deadlines, retries, fork schedule and slot
    /// bound, and the endpoint's JWT secret read from its file.
    pub fn from_config(
        config: &EngineConfig,
        endpoint: &EndpointConfig,
    ) -> Result<Self, EngineError> {
        let mut options = Self::with_config_secret(
            config,
            endpoint,
            load_jwt_secret(&endpoint.jwt_secret_path)?,
        );
        options.jwt_secret_path = Some(endpoint.jwt_secret_path.clone());
        Ok(options)
    }

    /// Like [`ClientOptions::from_config`] with a secret the caller already holds (e.g. the
    /// node's `--jwt-secret` bytes); the endpoint's `jwt_secret_path` is not read.
    pub fn with_config_secret(
        config: &EngineConfig,
        endpoint: &EndpointConfig,
        jwt_secret: JwtSecret,
    ) -> Self {
        Self {
            engine_url: endpoint.engine_url.clone(),
            eth_url: endpoint.eth_url.clone(),
            jwt_secret,
            jwt_secret_path: None,
            fork_schedule: config.fork_schedule,
            timeouts: config.timeouts,
            retry: config.retry,
            slot_deadline: Some(config.slot_duration()),
            observer: None,
            warm_up: true,
            chain: config.chain,
            tls_ca_path: endpoint.tls_ca_path.clone(),
        }
    }

    /// Defaults (spec timeouts, Shanghai from genesis, no slot bound) for a URL and secret.
    pub fn new(engine_url: impl Into<String>, jwt_secret: JwtSecret) -> Self {
        let config = EngineConfig::default();
        Self {
            engine_url: engine_url.into(),
            eth_url: None,
            jwt_secret,
            jwt_secret_path: None,
            fork_schedule: config.fork_schedule,
            timeouts: config.timeouts,
            retry: config.retry,
            slot_deadline: None,
            observer: None,
            warm_up: true,
            chain: config.chain,
            tls_ca_path: None,
        }
    }

    /// Same, reading the secret from a file (re-read after a 401: rotation).
    pub fn with_secret_file(
        engine_url: impl Into<String>,
        path: &Path,
    ) -> Result<Self, EngineError> {
        let mut options = Self::new(engine_url, load_jwt_secret(path)?);
        options.jwt_secret_path = Some(path.to_path_buf());
        Ok(options)
    }

    /// Take the fork schedule, deadlines, retry policy and slot bound from `config` (the URL,
    /// secret and observer stay).
    pub const fn with_engine_config(mut self, config: &EngineConfig) -> Self {
        self.fork_schedule = config.fork_schedule;
        self.timeouts = config.timeouts;
        self.retry = config.retry;
        self.slot_deadline = Some(config.slot_duration());
        self.chain = config.chain;
        self
    }

    /// Trust the certificate authorities in the PEM file at `path` for `https://` URLs, besides
    /// the system's.
    pub fn with_tls_ca(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.tls_ca_path = Some(path.into());
        self
    }

    /// Refuse a client that is not on `chain` (checked at every connect).
    pub const fn with_chain(mut self, chain: ChainConfig) -> Self {
        self.chain = chain;
        self
    }

    /// Use this fork schedule.
    pub const fn with_fork_schedule(mut self, forks: ForkSchedule) -> Self {
        self.fork_schedule = forks;
        self
    }

    /// Use these timeouts.
    pub const fn with_timeouts(mut self, timeouts: TimeoutConfig) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Use this retry policy.
    pub const fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Bound the slot-path deadlines (forkchoiceUpdated, getPayload, newPayload) by `slot`.
    pub const fn with_slot_deadline(mut self, slot: Duration) -> Self {
        self.slot_deadline = Some(slot);
        self
    }

    /// Whether to warm up a client whose first newPayload is slow (see [`Self::warm_up`]).
    pub const fn with_warm_up(mut self, warm_up: bool) -> Self {
        self.warm_up = warm_up;
        self
    }

    /// Report every call to `observer`.
    pub fn with_observer(mut self, observer: Arc<dyn RpcObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Send `eth_` reads here instead of the engine URL.
    pub fn with_eth_url(mut self, url: impl Into<String>) -> Self {
        self.eth_url = Some(url.into());
        self
    }

    /// Re-read the secret from this file after a 401 (rotation).
    pub fn with_secret_path(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.jwt_secret_path = Some(path.into());
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_from_config_keep_every_deadline_and_the_fork_schedule() {
        let mut config = EngineConfig::default();
        config.timeouts.new_payload_ms = 4_321;
        config.retry.max_retries = 7;
        config.fork_schedule = ForkSchedule::cancun();
        config.slot_duration_ms = 3_000;
        let endpoint = EndpointConfig {
            eth_url: Some("http://127.0.0.1:8545".into()),
            ..EndpointConfig::default()
        };
        let options = ClientOptions::with_config_secret(&config, &endpoint, JwtSecret::random());
        assert_eq!(options.timeouts, config.timeouts);
        assert_eq!(options.retry, config.retry);
        assert_eq!(options.fork_schedule, config.fork_schedule);
        assert_eq!(options.slot_deadline, Some(Duration::from_millis(3_000)));
        assert_eq!(options.eth_url.as_deref(), Some("http://127.0.0.1:8545"));
        assert!(options.jwt_secret_path.is_none());
    }
}
