//! [`EngineConfig`]: every setting, its default, TOML file + environment overrides, validation.
//!
//! Environment overrides use the prefix `ALYS_ENGINE_` and `__` between nested keys, with list
//! indices as numbers: `ALYS_ENGINE_TIMEOUTS__NEW_PAYLOAD_MS=4000`,
//! `ALYS_ENGINE_ENDPOINTS__0__ENGINE_URL=http://10.0.0.2:8551`,
//! `ALYS_ENGINE_FORK_SCHEDULE__CANCUN_TIME=1700000000`.

mod chain;
mod env;
mod recovery;
mod validate;

use std::{path::PathBuf, time::Duration};

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::{EngineError, EngineMethod, ForkSchedule, request::DEFAULT_FEE_RECIPIENT};

pub use chain::ChainConfig;
pub use env::ENV_PREFIX;
pub use recovery::{DisagreementPolicy, RecoveryConfig};

/// The whole engine configuration. Every field has a default; see `docs/configuration.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineConfig {
    /// Execution-client endpoints; the first is the primary (it builds payloads).
    /// Default: one endpoint, `http://127.0.0.1:8551`, secret `jwt.hex`.
    pub endpoints: Vec<EndpointConfig>,
    /// Fork activation times choosing the Engine API method versions. Default: Shanghai from
    /// genesis.
    pub fork_schedule: ForkSchedule,
    /// Per-method deadlines.
    pub timeouts: TimeoutConfig,
    /// Retries of idempotent calls.
    pub retry: RetryConfig,
    /// Slot length in milliseconds; deadlines of slot-path calls never exceed it. Default 2000.
    pub slot_duration_ms: u64,
    /// On an execution client whose getPayload stops the build and returns the best block so
    /// far (Geth), how long a build leaves it between forkchoiceUpdated and getPayload, so the
    /// block holds the pending transactions; at most half the slot. Other clients wait for
    /// their build themselves and are asked at once. Default 500.
    pub build_fill_ms: u64,
    /// Upper bound on peg-ins (withdrawals) per block. Default 16.
    pub max_withdrawals_per_block: usize,
    /// Fee recipient when a build names none. Default `0x…dEaD` (fees burnt at the EL).
    pub fee_recipient: Address,
    /// Where forkchoice state is persisted; `None` keeps it in memory only. Default `None`.
    pub state_path: Option<PathBuf>,
    /// The Alys bridge contract whose `RequestPegOut` logs become peg-out events.
    /// Default `0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB`.
    pub bridge_address: Address,
    /// First block whose peg-outs are the logs the bridge emitted (any transaction); before it,
    /// and always when unset, the federation crate's legacy rule (receipts sent to the bridge or
    /// creating a contract, any log with the event's signature). Consensus: switch a fleet at
    /// one height. Default unset.
    pub bridge_emitted_peg_outs_from_block: Option<u64>,
    /// Engine caches.
    pub cache: CacheConfig,
    /// Session health polling and circuit breaking.
    pub health: HealthConfig,
    /// Restart policy of the actor tree.
    pub supervision: SupervisionConfig,
    /// Catch-up of clients that lack blocks, disagreements, failover.
    pub recovery: RecoveryConfig,
    /// The chain the clients must be on (checked at connect).
    pub chain: ChainConfig,
    /// The legacy → actor migration (engine-migration's adapter).
    pub migration: MigrationConfig,
}

/// The migration adapter's settings that belong in the node's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationConfig {
    /// The mode the adapter starts in: `legacy-only`, `shadow`, `canary:N`, `parallel`,
    /// `actor-primary`, `actor-only` or `rollback` (`ALYS_ENGINE_MIGRATION__MODE` overrides the
    /// file; `MigrationAdapter::set_mode` changes it at runtime). Default `legacy-only`.
    pub mode: Option<String>,
}

/// Sizes and lifetimes of the EngineActor's caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Built payloads kept (by payload id and block hash). Default 64.
    pub payload_capacity: usize,
    /// Blocks kept by hash. Default 1024.
    pub block_capacity: usize,
    /// Blocks' receipt lists kept. Default 256.
    pub receipt_capacity: usize,
    /// Lifetime of an entry (ms); finalized blocks never expire. Default 120000.
    pub ttl_ms: u64,
    /// How often the CacheJanitor sweeps expired entries (ms). Default 10000.
    pub sweep_interval_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            payload_capacity: 64,
            block_capacity: 1024,
            receipt_capacity: 256,
            ttl_ms: 120_000,
            sweep_interval_ms: 10_000,
        }
    }
}

/// Health polling of sessions and their circuit breakers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    /// How often the HealthPoller asks each session for `eth_syncing` and capabilities (ms).
    /// Default 2000.
    pub poll_interval_ms: u64,
    /// Consecutive connectivity failures that open a session's breaker. Default 3.
    pub failure_threshold: u32,
    /// How long an open breaker refuses calls before one probe (ms). Default 5000.
    pub open_ms: u64,
    /// How long start-up waits for the engine to synchronise with the EL (ms). Default 15000.
    pub startup_timeout_ms: u64,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            poll_interval_ms: 2_000,
            failure_threshold: 3,
            open_ms: 5_000,
            startup_timeout_ms: 15_000,
        }
    }
}

/// One-for-one restarts with exponential backoff; too many in a window escalates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SupervisionConfig {
    /// Restarts allowed within `window_ms` before the supervisor gives up. Default 5.
    pub max_restarts: u32,
    /// The window (ms). Default 60000.
    pub window_ms: u64,
    /// First restart delay (ms), doubled per recent restart. Default 100.
    pub backoff_initial_ms: u64,
    /// Largest restart delay (ms). Default 5000.
    pub backoff_max_ms: u64,
}

impl Default for SupervisionConfig {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            window_ms: 60_000,
            backoff_initial_ms: 100,
            backoff_max_ms: 5_000,
        }
    }
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            endpoints: vec![EndpointConfig::default()],
            fork_schedule: ForkSchedule::default(),
            timeouts: TimeoutConfig::default(),
            retry: RetryConfig::default(),
            slot_duration_ms: 2_000,
            build_fill_ms: 500,
            max_withdrawals_per_block: 16,
            fee_recipient: DEFAULT_FEE_RECIPIENT,
            state_path: None,
            bridge_address: alloy_primitives::address!("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"),
            bridge_emitted_peg_outs_from_block: None,
            cache: CacheConfig::default(),
            health: HealthConfig::default(),
            supervision: SupervisionConfig::default(),
            recovery: RecoveryConfig::default(),
            chain: ChainConfig::default(),
            migration: MigrationConfig::default(),
        }
    }
}

/// One execution client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EndpointConfig {
    /// Authenticated Engine API URL. Default `http://127.0.0.1:8551`.
    pub engine_url: String,
    /// Public JSON-RPC URL for `eth_` reads; `None` sends them to `engine_url` (every client
    /// serves `eth_` on the engine port too). Default `None`.
    pub eth_url: Option<String>,
    /// File with the 32-byte hex JWT secret shared with the client. Default `jwt.hex`.
    pub jwt_secret_path: PathBuf,
    /// PEM file with the certificate authorities trusted for `https://` URLs besides the
    /// system's (e.g. a private CA). Default `None`.
    pub tls_ca_path: Option<PathBuf>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            engine_url: "http://127.0.0.1:8551".into(),
            eth_url: None,
            jwt_secret_path: PathBuf::from("jwt.hex"),
            tls_ca_path: None,
        }
    }
}

/// Deadlines per Engine API method (milliseconds). Defaults are the spec's recommendations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TimeoutConfig {
    /// `engine_forkchoiceUpdated*`. Default 8000.
    pub forkchoice_updated_ms: u64,
    /// `engine_newPayload*`. Default 8000.
    pub new_payload_ms: u64,
    /// `engine_getPayload*`. Default 1000.
    pub get_payload_ms: u64,
    /// `engine_getPayloadBodiesBy*`. Default 10000.
    pub get_payload_bodies_ms: u64,
    /// `engine_exchangeCapabilities`, `engine_getClientVersionV1`. Default 1000.
    pub identification_ms: u64,
    /// Every `eth_`/`web3_` call. Default 1000.
    pub eth_ms: u64,
    /// Every `EngineHandle` call, end to end (waiting for the writer, the EL calls, the state
    /// file); builds and preparations are also bounded by the slot. Above the EL deadlines, so
    /// an EL that is slow is reported as such. Default 12000.
    pub request_ms: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        Self {
            forkchoice_updated_ms: 8_000,
            new_payload_ms: 8_000,
            get_payload_ms: 1_000,
            get_payload_bodies_ms: 10_000,
            identification_ms: 1_000,
            eth_ms: 1_000,
            request_ms: 12_000,
        }
    }
}

impl TimeoutConfig {
    /// The deadline for an Engine API method.
    pub const fn for_engine_method(&self, method: EngineMethod) -> Duration {
        use EngineMethod::*;
        let ms = match method {
            ForkchoiceUpdatedV1 | ForkchoiceUpdatedV2 | ForkchoiceUpdatedV3 => {
                self.forkchoice_updated_ms
            }
            NewPayloadV1 | NewPayloadV2 | NewPayloadV3 | NewPayloadV4 => self.new_payload_ms,
            GetPayloadV1 | GetPayloadV2 | GetPayloadV3 | GetPayloadV4 => self.get_payload_ms,
            GetPayloadBodiesByHashV1 | GetPayloadBodiesByRangeV1 => self.get_payload_bodies_ms,
            ExchangeCapabilities | GetClientVersionV1 => self.identification_ms,
        };
        Duration::from_millis(ms)
    }

    /// The deadline for `eth_`/`web3_` calls.
    pub const fn eth(&self) -> Duration {
        Duration::from_millis(self.eth_ms)
    }

    /// The deadline of an `EngineHandle` call.
    pub const fn request(&self) -> Duration {
        Duration::from_millis(self.request_ms)
    }
}

/// Retries of idempotent calls (reads, identification, getPayload) with exponential backoff
/// and jitter. Writes (forkchoiceUpdated, newPayload) are never retried by the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryConfig {
    /// Retries after the first attempt. Default 3; 0 disables retries.
    pub max_retries: usize,
    /// First backoff delay (ms). Default 50.
    pub initial_backoff_ms: u64,
    /// Largest backoff delay (ms). Default 1000.
    pub max_backoff_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_retries: 3,
            initial_backoff_ms: 50,
            max_backoff_ms: 1_000,
        }
    }
}

impl EngineConfig {
    /// Parse TOML (unknown keys are errors naming the key).
    pub fn from_toml_str(toml_text: &str) -> Result<Self, EngineError> {
        toml::from_str(toml_text).map_err(|e| toml_error("<toml>", &e))
    }

    /// Load: defaults, then the TOML file at `path` (if given), then `ALYS_ENGINE_*` variables
    /// from the process environment; then [`EngineConfig::validate`].
    pub fn load(path: Option<&std::path::Path>) -> Result<Self, EngineError> {
        let text = match path {
            Some(p) => std::fs::read_to_string(p).map_err(|e| {
                EngineError::config(
                    "<file>",
                    format!(
                        "cannot read config file {}: {e}; check the --config path",
                        p.display()
                    ),
                )
            })?,
            None => String::new(),
        };
        let config = Self::from_toml_with_env(&text, std::env::vars())?;
        config.validate()?;
        Ok(config)
    }

    /// The slot length.
    pub const fn slot_duration(&self) -> Duration {
        Duration::from_millis(self.slot_duration_ms)
    }

    /// How long a build on a client whose getPayload stops the build waits before asking for
    /// the payload: `build_fill_ms`, at most half the slot.
    pub const fn build_fill(&self) -> Duration {
        let half_slot = self.slot_duration_ms / 2;
        Duration::from_millis(if self.build_fill_ms < half_slot {
            self.build_fill_ms
        } else {
            half_slot
        })
    }

    /// The default configuration as commented TOML (for `docs/` and `--print-config`).
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Self::default()).unwrap_or_default()
    }
}

fn toml_error(source: &str, e: &toml::de::Error) -> EngineError {
    let key = e.message().split('`').nth(1).unwrap_or(source).to_owned();
    EngineError::config(key, e.message().trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_snapshot() {
        insta::assert_snapshot!("config_defaults", EngineConfig::default_toml());
        assert!(EngineConfig::default().validate().is_ok());
    }

    #[test]
    fn empty_toml_is_the_default() {
        assert_eq!(
            EngineConfig::from_toml_str("").unwrap(),
            EngineConfig::default()
        );
    }

    #[test]
    fn missing_file_names_the_path() {
        let err = EngineConfig::load(Some(std::path::Path::new("/nonexistent/engine.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/nonexistent/engine.toml"), "{err}");
    }
}
