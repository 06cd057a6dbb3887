//! How calls are routed and labelled: [`CompatMode`], the operations that carry their own flag
//! ([`CompatOperation`]) and the Lighthouse [`Version`] a call went through.

use std::fmt;

use engine_types::EngineError;
use serde::Serialize;

use crate::ab::AbSplit;

/// How the compat client routes a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CompatMode {
    /// The v4 (Capella) path only.
    V4Only,
    /// The v5 (Deneb) path only.
    V5Only,
    /// Both, v4 then v5 (never overlapping; v5 only if v4 succeeded); results compared; v4's
    /// answer returned.
    Parallel,
    /// v4 answers; v5 answers when v4 fails.
    V4Primary,
    /// v5 answers; v4 answers when v5 fails.
    V5Primary,
    /// This percentage of slots goes to v5 (sticky per slot), the rest to v4.
    Canary(u8),
}

impl CompatMode {
    /// A canary mode; `percent` must be 0–100.
    pub fn canary(percent: u8) -> Result<Self, EngineError> {
        AbSplit::new(percent).map(|s| Self::Canary(s.percent()))
    }

    /// The `engine_compat_mode` gauge value (1–6).
    pub const fn code(self) -> i64 {
        match self {
            Self::V4Only => 1,
            Self::V5Only => 2,
            Self::Parallel => 3,
            Self::V4Primary => 4,
            Self::V5Primary => 5,
            Self::Canary(_) => 6,
        }
    }

    pub(super) const fn encode(self) -> u16 {
        // A percentage above 100 (the variant is public) means everything: clamp it, so
        // every reader of the mode sees the same 0–100 value.
        let percent = match self {
            Self::Canary(p) if p > 100 => 100,
            Self::Canary(p) => p as u16,
            _ => 0,
        };
        ((self.code() as u16) << 8) | percent
    }

    /// 0 decodes to None (no per-operation override).
    pub(super) const fn decode(bits: u16) -> Option<Self> {
        Some(match bits >> 8 {
            1 => Self::V4Only,
            2 => Self::V5Only,
            3 => Self::Parallel,
            4 => Self::V4Primary,
            5 => Self::V5Primary,
            6 => Self::Canary((bits & 0xff) as u8),
            _ => return None,
        })
    }
}

impl fmt::Display for CompatMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::V4Only => f.write_str("v4-only"),
            Self::V5Only => f.write_str("v5-only"),
            Self::Parallel => f.write_str("parallel"),
            Self::V4Primary => f.write_str("v4-primary"),
            Self::V5Primary => f.write_str("v5-primary"),
            Self::Canary(p) => write!(f, "canary:{p}"),
        }
    }
}

/// The compat client's operations, each with its own runtime flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum CompatOperation {
    /// `engine_forkchoiceUpdated`.
    ForkchoiceUpdated,
    /// `engine_getPayload`.
    GetPayload,
    /// `engine_newPayload`.
    NewPayload,
}

impl CompatOperation {
    /// Every operation.
    pub const ALL: [Self; 3] = [Self::ForkchoiceUpdated, Self::GetPayload, Self::NewPayload];

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ForkchoiceUpdated => "forkchoice_updated",
            Self::GetPayload => "get_payload",
            Self::NewPayload => "new_payload",
        }
    }

    pub(super) const fn index(self) -> usize {
        match self {
            Self::ForkchoiceUpdated => 0,
            Self::GetPayload => 1,
            Self::NewPayload => 2,
        }
    }
}

/// The Lighthouse version a call went through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Version {
    /// Capella types, V2 methods.
    V4,
    /// Deneb types, fork-aware methods.
    V5,
}

impl Version {
    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::V4 => "v4",
            Self::V5 => "v5",
        }
    }

    pub(super) const fn index(self) -> usize {
        match self {
            Self::V4 => 0,
            Self::V5 => 1,
        }
    }
}
