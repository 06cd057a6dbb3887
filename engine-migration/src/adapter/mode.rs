//! [`MigrationMode`]: how the adapter routes calls, as one atomic value and as the text operators
//! type.

use std::{fmt, str::FromStr};

use engine_types::EngineError;
use serde::Serialize;

use crate::ab::AbSplit;

/// How the adapter routes calls. See the [module docs](self).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum MigrationMode {
    /// The legacy path only.
    LegacyOnly,
    /// Legacy answers; the actor runs the same calls in the background and is compared.
    Shadow,
    /// The actor answers this percentage of slots.
    Canary(u8),
    /// Both run (legacy first, the actor only if legacy succeeded); legacy's answer is returned.
    Parallel,
    /// The actor answers, legacy on actor errors.
    ActorPrimary,
    /// The actor only.
    ActorOnly,
    /// Rolled back: the legacy path only.
    Rollback,
}

impl MigrationMode {
    /// A canary mode; `percent` must be 0–100.
    pub fn canary(percent: u8) -> Result<Self, EngineError> {
        AbSplit::new(percent).map(|s| Self::Canary(s.percent()))
    }

    /// The value of the `engine_migration_mode` gauge, as ALYS-008's dashboards read it:
    /// 0 legacy, 1 shadow, 2 canary, 3 parallel, 4 actor primary, 5 actor only. A rollback runs
    /// the legacy path only, so it reports 0 (`engine_migration_rollbacks_total` counts them).
    pub const fn code(self) -> i64 {
        match self {
            Self::LegacyOnly | Self::Rollback => 0,
            Self::Shadow => 1,
            Self::Canary(_) => 2,
            Self::Parallel => 3,
            Self::ActorPrimary => 4,
            Self::ActorOnly => 5,
        }
    }

    /// The variant's tag in the packed mode word (distinct for every variant).
    const fn tag(self) -> u16 {
        match self {
            Self::LegacyOnly => 1,
            Self::Shadow => 2,
            Self::Canary(_) => 3,
            Self::Parallel => 4,
            Self::ActorPrimary => 5,
            Self::ActorOnly => 6,
            Self::Rollback => 7,
        }
    }

    /// The mode `config` starts the adapter in (`migration.mode` in the file, or
    /// `ALYS_ENGINE_MIGRATION__MODE`); `legacy-only` when unset. A value that is not a mode is
    /// a configuration error naming the key and the modes.
    pub fn from_config(config: &engine_types::EngineConfig) -> Result<Self, EngineError> {
        match config.migration.mode.as_deref() {
            None => Ok(Self::LegacyOnly),
            Some(text) => text
                .parse()
                .map_err(|e: EngineError| EngineError::config("migration.mode", e.to_string())),
        }
    }

    /// Whether calls reach the actor in this mode.
    pub const fn uses_actor(self) -> bool {
        !matches!(self, Self::LegacyOnly | Self::Rollback)
    }

    pub(super) const fn encode(self) -> u16 {
        // A percentage above 100 (the variant is public) means everything: clamp it, so
        // every reader of the mode sees the same 0–100 value.
        let percent = match self {
            Self::Canary(p) if p > 100 => 100,
            Self::Canary(p) => p as u16,
            _ => 0,
        };
        (self.tag() << 8) | percent
    }

    pub(super) const fn decode(bits: u16) -> Self {
        match bits >> 8 {
            2 => Self::Shadow,
            3 => Self::Canary((bits & 0xff) as u8),
            4 => Self::Parallel,
            5 => Self::ActorPrimary,
            6 => Self::ActorOnly,
            7 => Self::Rollback,
            _ => Self::LegacyOnly,
        }
    }
}

impl fmt::Display for MigrationMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LegacyOnly => f.write_str("legacy-only"),
            Self::Shadow => f.write_str("shadow"),
            Self::Canary(p) => write!(f, "canary:{p}"),
            Self::Parallel => f.write_str("parallel"),
            Self::ActorPrimary => f.write_str("actor-primary"),
            Self::ActorOnly => f.write_str("actor-only"),
            Self::Rollback => f.write_str("rollback"),
        }
    }
}

impl FromStr for MigrationMode {
    type Err = EngineError;

    /// `legacy-only`, `shadow`, `canary:25`, `parallel`, `actor-primary`, `actor-only`,
    /// `rollback` (the [`Display`](fmt::Display) form).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || {
            EngineError::invalid_request(
                "mode",
                format!(
                    "`{s}` is not a migration mode; use legacy-only, shadow, canary:<0-100>, parallel, actor-primary, actor-only or rollback"
                ),
            )
        };
        Ok(match s.trim() {
            "legacy-only" => Self::LegacyOnly,
            "shadow" => Self::Shadow,
            "parallel" => Self::Parallel,
            "actor-primary" => Self::ActorPrimary,
            "actor-only" => Self::ActorOnly,
            "rollback" => Self::Rollback,
            other => {
                let percent = other
                    .strip_prefix("canary:")
                    .and_then(|p| p.parse::<u8>().ok())
                    .ok_or_else(unknown)?;
                Self::canary(percent)?
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_the_atomic_encoding_and_text() {
        let modes = [
            MigrationMode::LegacyOnly,
            MigrationMode::Shadow,
            MigrationMode::Canary(0),
            MigrationMode::Canary(37),
            MigrationMode::Canary(100),
            MigrationMode::Parallel,
            MigrationMode::ActorPrimary,
            MigrationMode::ActorOnly,
            MigrationMode::Rollback,
        ];
        for mode in modes {
            assert_eq!(MigrationMode::decode(mode.encode()), mode);
            assert_eq!(mode.to_string().parse::<MigrationMode>().unwrap(), mode);
        }
        assert!("canary:101".parse::<MigrationMode>().is_err());
        let err = "actor-first".parse::<MigrationMode>().unwrap_err();
        assert!(err.to_string().contains("actor-primary"), "{err}");
    }

    #[test]
    fn the_mode_comes_from_the_file_and_the_environment() {
        use engine_types::EngineConfig;
        let file = "[migration]\nmode = \"canary:25\"\n";
        let none = || Vec::<(String, String)>::new();
        let from_file = EngineConfig::from_toml_with_env(file, none()).unwrap();
        assert_eq!(
            MigrationMode::from_config(&from_file).unwrap(),
            MigrationMode::Canary(25)
        );
        let env = [(
            "ALYS_ENGINE_MIGRATION__MODE".to_owned(),
            "shadow".to_owned(),
        )];
        let overridden = EngineConfig::from_toml_with_env(file, env).unwrap();
        assert_eq!(
            MigrationMode::from_config(&overridden).unwrap(),
            MigrationMode::Shadow
        );
        assert_eq!(
            MigrationMode::from_config(&EngineConfig::default()).unwrap(),
            MigrationMode::LegacyOnly
        );
        let bad = EngineConfig::from_toml_with_env("[migration]\nmode = \"actor-first\"\n", none())
            .unwrap();
        let err = MigrationMode::from_config(&bad).unwrap_err();
        assert!(err.to_string().contains("migration.mode"), "{err}");
    }

    #[test]
    fn the_gauge_numbers_modes_as_alys_008_does() {
        let codes = [
            (MigrationMode::LegacyOnly, 0),
            (MigrationMode::Shadow, 1),
            (MigrationMode::Canary(25), 2),
            (MigrationMode::Parallel, 3),
            (MigrationMode::ActorPrimary, 4),
            (MigrationMode::ActorOnly, 5),
            (MigrationMode::Rollback, 0),
        ];
        for (mode, code) in codes {
            assert_eq!(mode.code(), code, "{mode}");
        }
    }
}
