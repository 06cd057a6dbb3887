//! The `ALYS_ENGINE_*` environment overrides: [`ENV_PREFIX`], variable names as key paths
//! (`__` between nested keys, list indices as numbers) and values as TOML values.

use super::{EngineConfig, toml_error};
use crate::EngineError;

/// Prefix of environment variables that override configuration keys.
pub const ENV_PREFIX: &str = "ALYS_ENGINE_";

impl EngineConfig {
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
    use std::path::PathBuf;

    use alloy_primitives::Address;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
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
}
