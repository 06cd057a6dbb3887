//! [`EngineConfig::validate`]: every value checked, errors naming the key and the fix.

use super::EngineConfig;
use crate::EngineError;

impl EngineConfig {
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
        let rec = &self.recovery;
        for (key, n) in [
            ("recovery.stored_payloads", rec.stored_payloads),
            ("recovery.max_catch_up_blocks", rec.max_catch_up_blocks),
        ] {
            if n == 0 || n > 1_000_000 {
                return Err(EngineError::config(key, format!("{n}; use 1..=1000000")));
            }
        }
        if rec.hedge_after_ms == 0 {
            return Err(EngineError::config(
                "recovery.hedge_after_ms",
                "0; use a positive delay (it is capped at half the slot)",
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
