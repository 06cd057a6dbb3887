//! [`EngineConfig`]: every setting, its default, TOML file + environment overrides, validation.
//!
//! Environment overrides use the prefix `ALYS_ENGINE_` and `__` between nested keys, with list
//! indices as numbers: `ALYS_ENGINE_TIMEOUTS__NEW_PAYLOAD_MS=4000`,
//! `ALYS_ENGINE_ENDPOINTS__0__ENGINE_URL=http://10.0.0.2:8551`,
//! `ALYS_ENGINE_FORK_SCHEDULE__CANCUN_TIME=1700000000`.

use std::{path::PathBuf, time::Duration};

use alloy_primitives::Address;
use serde::{Deserialize, Serialize};

use crate::{EngineError, EngineMethod, ForkSchedule, request::DEFAULT_FEE_RECIPIENT};

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ALYS_ENGINE_";

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
    /// Upper bound on peg-ins (withdrawals) per block. Default 16.
    pub max_withdrawals_per_block: usize,
    /// Fee recipient when a build names none. Default `0x…dEaD` (fees burnt at the EL).
    pub fee_recipient: Address,
    /// Where forkchoice state is persisted; `None` keeps it in memory only. Default `None`.
    pub state_path: Option<PathBuf>,
    /// The Alys bridge contract whose `RequestPegOut` logs become peg-out events.
    /// Default `0xbBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB`.
    pub bridge_address: Address,
    /// Engine caches.
    pub cache: CacheConfig,
    /// Session health polling and circuit breaking.
    pub health: HealthConfig,
    /// Restart policy of the actor tree.
    pub supervision: SupervisionConfig,
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
            max_withdrawals_per_block: 16,
            fee_recipient: DEFAULT_FEE_RECIPIENT,
            state_path: None,
            bridge_address: alloy_primitives::address!("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB"),
            cache: CacheConfig::default(),
            health: HealthConfig::default(),
            supervision: SupervisionConfig::default(),
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
}

impl Default for EndpointConfig {
    fn default() -> Self {
        Self {
            engine_url: "http://127.0.0.1:8551".into(),
            eth_url: None,
            jwt_secret_path: PathBuf::from("jwt.hex"),
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

    /// Parse TOML, then apply `ALYS_ENGINE_*` overrides from `vars` (pure: tests pass their own).
    pub fn from_toml_with_env(
        toml_text: &str,
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, EngineError> {
        let mut table: toml::Table =
            toml::from_str(toml_text).map_err(|e| toml_error("<toml>", &e))?;
        let mut overrides: Vec<(String, String)> = vars
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (key, value) in overrides {
            apply_env_override(&mut table, &key, &value)?;
        }
        let config: Self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| toml_error("<environment>", &e))?;
        Ok(config)
    }

    /// Checks every value is usable; errors name the key and the fix.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.endpoints.is_empty() {
            return Err(EngineError::config(
                "endpoints",
                "empty; configure at least one [[endpoints]] with engine_url and jwt_secret_path",
            ));
        }
        for (i, ep) in self.endpoints.iter().enumerate() {
            check_url(&format!("endpoints[{i}].engine_url"), &ep.engine_url)?;
            if let Some(eth) = &ep.eth_url {
                check_url(&format!("endpoints[{i}].eth_url"), eth)?;
            }
            if ep.jwt_secret_path.as_os_str().is_empty() {
                return Err(EngineError::config(
                    format!("endpoints[{i}].jwt_secret_path"),
                    "empty; point it at the execution client's JWT secret file",
                ));
            }
        }
        self.fork_schedule.validate()?;
        let t = &self.timeouts;
        for (key, ms) in [
            ("timeouts.forkchoice_updated_ms", t.forkchoice_updated_ms),
            ("timeouts.new_payload_ms", t.new_payload_ms),
            ("timeouts.get_payload_ms", t.get_payload_ms),
            ("timeouts.get_payload_bodies_ms", t.get_payload_bodies_ms),
            ("timeouts.identification_ms", t.identification_ms),
            ("timeouts.eth_ms", t.eth_ms),
            ("timeouts.request_ms", t.request_ms),
        ] {
            if ms == 0 || ms > 120_000 {
                return Err(EngineError::config(key, format!("{ms} ms; use 1..=120000")));
            }
        }
        if self.slot_duration_ms < 100 || self.slot_duration_ms > 600_000 {
            return Err(EngineError::config(
                "slot_duration_ms",
                format!(
                    "{}; use 100..=600000 (Alys uses 2000)",
                    self.slot_duration_ms
                ),
            ));
        }
        let r = &self.retry;
        if r.max_retries > 10 {
            return Err(EngineError::config(
                "retry.max_retries",
                format!(
                    "{}; more than 10 retries outlive a slot, use 0..=10",
                    r.max_retries
                ),
            ));
        }
        if r.initial_backoff_ms == 0 || r.initial_backoff_ms > r.max_backoff_ms {
            return Err(EngineError::config(
                "retry.initial_backoff_ms",
                format!(
                    "{}; must be > 0 and <= retry.max_backoff_ms ({})",
                    r.initial_backoff_ms, r.max_backoff_ms
                ),
            ));
        }
        let c = &self.cache;
        for (key, n) in [
            ("cache.payload_capacity", c.payload_capacity),
            ("cache.block_capacity", c.block_capacity),
            ("cache.receipt_capacity", c.receipt_capacity),
        ] {
            if n == 0 || n > 1_000_000 {
                return Err(EngineError::config(key, format!("{n}; use 1..=1000000")));
            }
        }
        for (key, ms) in [
            ("cache.ttl_ms", c.ttl_ms),
            ("cache.sweep_interval_ms", c.sweep_interval_ms),
            ("health.poll_interval_ms", self.health.poll_interval_ms),
            ("health.open_ms", self.health.open_ms),
            ("health.startup_timeout_ms", self.health.startup_timeout_ms),
            ("supervision.window_ms", self.supervision.window_ms),
            (
                "supervision.backoff_initial_ms",
                self.supervision.backoff_initial_ms,
            ),
            (
                "supervision.backoff_max_ms",
                self.supervision.backoff_max_ms,
            ),
        ] {
            if ms == 0 || ms > 86_400_000 {
                return Err(EngineError::config(
                    key,
                    format!("{ms} ms; use 1..=86400000"),
                ));
            }
        }
        if self.health.failure_threshold == 0 {
            return Err(EngineError::config(
                "health.failure_threshold",
                "0; use at least 1",
            ));
        }
        if self.supervision.max_restarts == 0 {
            return Err(EngineError::config(
                "supervision.max_restarts",
                "0; use at least 1",
            ));
        }
        if self.max_withdrawals_per_block == 0 || self.max_withdrawals_per_block > 1024 {
            return Err(EngineError::config(
                "max_withdrawals_per_block",
                format!(
                    "{}; use 1..=1024 (default 16)",
                    self.max_withdrawals_per_block
                ),
            ));
        }
        Ok(())
    }

    /// The slot length.
    pub const fn slot_duration(&self) -> Duration {
        Duration::from_millis(self.slot_duration_ms)
    }

    /// The default configuration as commented TOML (for `docs/` and `--print-config`).
    pub fn default_toml() -> String {
        toml::to_string_pretty(&Self::default()).unwrap_or_default()
    }
}

fn check_url(key: &str, url: &str) -> Result<(), EngineError> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    match rest {
        Some(host) if !host.is_empty() && !host.starts_with('/') => Ok(()),
        _ => Err(EngineError::config(
            key,
            format!("`{url}` is not an http(s) URL; write it like http://127.0.0.1:8551"),
        )),
    }
}

fn toml_error(source: &str, e: &toml::de::Error) -> EngineError {
    let key = e.message().split('`').nth(1).unwrap_or(source).to_owned();
    EngineError::config(key, e.message().trim().to_owned())
}

fn apply_env_override(table: &mut toml::Table, var: &str, value: &str) -> Result<(), EngineError> {
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if path.iter().any(String::is_empty) {
        return Err(EngineError::config(
            var,
            "empty key segment; separate nested keys with `__`",
        ));
    }
    let parsed = parse_env_value(value);
    let mut node = TomlSlot::Table(table);
    for (i, segment) in path.iter().enumerate() {
        let last = i + 1 == path.len();
        node = match node {
            TomlSlot::Table(t) => {
                if last {
                    t.insert(segment.clone(), parsed);
                    return Ok(());
                }
                let next_is_index = path[i + 1].parse::<usize>().is_ok();
                let entry = t.entry(segment.clone()).or_insert_with(|| {
                    if next_is_index {
                        toml::Value::Array(Vec::new())
                    } else {
                        toml::Value::Table(toml::Table::new())
                    }
                });
                TomlSlot::from_value(entry, var)?
            }
            TomlSlot::Array(a) => {
                let index: usize = segment.parse().map_err(|_| {
                    EngineError::config(var, format!("`{segment}` must be a list index"))
                })?;
                if index > a.len() {
                    return Err(EngineError::config(
                        var,
                        format!(
                            "index {index} skips entries; the list has {} entries",
                            a.len()
                        ),
                    ));
                }
                if index == a.len() {
                    a.push(toml::Value::Table(toml::Table::new()));
                }
                if last {
                    a[index] = parsed;
                    return Ok(());
                }
                TomlSlot::from_value(&mut a[index], var)?
            }
        };
    }
    Ok(())
}

enum TomlSlot<'a> {
    Table(&'a mut toml::Table),
    Array(&'a mut Vec<toml::Value>),
}

impl<'a> TomlSlot<'a> {
    fn from_value(v: &'a mut toml::Value, var: &str) -> Result<Self, EngineError> {
        match v {
            toml::Value::Table(t) => Ok(Self::Table(t)),
            toml::Value::Array(a) => Ok(Self::Array(a)),
            _ => Err(EngineError::config(var, "names a key inside a plain value")),
        }
    }
}

/// Numbers and booleans become TOML numbers/booleans; hex strings (addresses) and everything
/// else stay strings.
fn parse_env_value(value: &str) -> toml::Value {
    let trimmed = value.trim();
    if trimmed.starts_with("0x") || trimmed.starts_with("0X") {
        return toml::Value::String(trimmed.to_owned());
    }
    if let Ok(i) = trimmed.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    match trimmed {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

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
    fn toml_file_then_env_overrides() {
        let toml = r#"
            slot_duration_ms = 4000
            [[endpoints]]
            engine_url = "http://10.0.0.1:8551"
            jwt_secret_path = "/secrets/jwt.hex"
            [fork_schedule]
            cancun_time = 100
        "#;
        let cfg = EngineConfig::from_toml_with_env(
            toml,
            env(&[
                ("ALYS_ENGINE_TIMEOUTS__NEW_PAYLOAD_MS", "1500"),
                ("ALYS_ENGINE_ENDPOINTS__0__ETH_URL", "http://10.0.0.1:8545"),
                (
                    "ALYS_ENGINE_ENDPOINTS__1__ENGINE_URL",
                    "http://10.0.0.2:8551",
                ),
                (
                    "ALYS_ENGINE_FEE_RECIPIENT",
                    "0x00000000000000000000000000000000000000aa",
                ),
                ("UNRELATED", "x"),
            ]),
        )
        .unwrap();
        assert_eq!(cfg.slot_duration_ms, 4000);
        assert_eq!(cfg.timeouts.new_payload_ms, 1500);
        assert_eq!(cfg.fork_schedule.cancun_time, Some(100));
        assert_eq!(cfg.endpoints.len(), 2);
        assert_eq!(
            cfg.endpoints[0].eth_url.as_deref(),
            Some("http://10.0.0.1:8545")
        );
        assert_eq!(cfg.endpoints[1].engine_url, "http://10.0.0.2:8551");
        assert_eq!(cfg.endpoints[1].jwt_secret_path, PathBuf::from("jwt.hex"));
        assert_eq!(cfg.fee_recipient, Address::with_last_byte(0xaa));
        cfg.validate().unwrap();
    }

    #[test]
    fn unknown_key_is_named() {
        let err = EngineConfig::from_toml_str("slot_duration = 5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("slot_duration"), "{err}");
        let err = EngineConfig::from_toml_with_env("", env(&[("ALYS_ENGINE_TIMEOUTS__NOPE", "1")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err =
            EngineConfig::from_toml_with_env("", env(&[("ALYS_ENGINE_SLOT_DURATION_MS", "soon")]))
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("slot_duration_ms") || err.contains("invalid type"),
            "{err}"
        );
    }

    #[test]
    fn validation_names_key_and_fix() {
        let mut cfg = EngineConfig::default();
        cfg.timeouts.get_payload_ms = 0;
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("timeouts.get_payload_ms") && err.contains("1..=120000"),
            "{err}"
        );

        let mut cfg = EngineConfig::default();
        cfg.endpoints[0].engine_url = "localhost:8551".into();
        let err = cfg.validate().unwrap_err().to_string();
        assert!(
            err.contains("endpoints[0].engine_url") && err.contains("http://"),
            "{err}"
        );

        let cfg = EngineConfig {
            endpoints: vec![],
            ..EngineConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("endpoints")
        );

        let cfg = EngineConfig {
            max_withdrawals_per_block: 0,
            ..EngineConfig::default()
        };
        assert!(
            cfg.validate()
                .unwrap_err()
                .to_string()
                .contains("max_withdrawals_per_block")
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
