//! Which fork a timestamp falls in, and which Engine API method versions that fork needs.

use serde::{Deserialize, Serialize};

/// An execution-layer fork this engine knows how to drive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Fork {
    /// The Merge (Bellatrix): V1 methods, no withdrawals. Alys never produces these blocks but
    /// the mock EL can serve them.
    Paris,
    /// Shanghai / Capella: V2 methods, withdrawals (peg-ins).
    Shanghai,
    /// Cancun / Deneb: V3 methods, parent beacon block root, blob gas fields.
    Cancun,
    /// Prague / Electra: forkchoiceUpdatedV3, getPayloadV4, newPayloadV4 (execution requests).
    Prague,
}

impl Fork {
    /// `engine_forkchoiceUpdatedV*` for payload attributes of this fork.
    pub const fn forkchoice_updated(self) -> EngineMethod {
        match self {
            Self::Paris => EngineMethod::ForkchoiceUpdatedV1,
            Self::Shanghai => EngineMethod::ForkchoiceUpdatedV2,
            Self::Cancun | Self::Prague => EngineMethod::ForkchoiceUpdatedV3,
        }
    }

    /// `engine_getPayloadV*` for a payload of this fork.
    pub const fn get_payload(self) -> EngineMethod {
        match self {
            Self::Paris => EngineMethod::GetPayloadV1,
            Self::Shanghai => EngineMethod::GetPayloadV2,
            Self::Cancun => EngineMethod::GetPayloadV3,
            Self::Prague => EngineMethod::GetPayloadV4,
        }
    }

    /// `engine_newPayloadV*` for a payload of this fork.
    pub const fn new_payload(self) -> EngineMethod {
        match self {
            Self::Paris => EngineMethod::NewPayloadV1,
            Self::Shanghai => EngineMethod::NewPayloadV2,
            Self::Cancun => EngineMethod::NewPayloadV3,
            Self::Prague => EngineMethod::NewPayloadV4,
        }
    }

    /// Whether payloads of this fork carry withdrawals.
    pub const fn has_withdrawals(self) -> bool {
        !matches!(self, Self::Paris)
    }

    /// Whether payloads of this fork carry blob gas fields and a parent beacon block root.
    pub const fn has_blob_fields(self) -> bool {
        matches!(self, Self::Cancun | Self::Prague)
    }
}

/// The versioned Engine API methods this engine calls. One place names them all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum EngineMethod {
    ForkchoiceUpdatedV1,
    ForkchoiceUpdatedV2,
    ForkchoiceUpdatedV3,
    GetPayloadV1,
    GetPayloadV2,
    GetPayloadV3,
    GetPayloadV4,
    NewPayloadV1,
    NewPayloadV2,
    NewPayloadV3,
    NewPayloadV4,
    GetPayloadBodiesByHashV1,
    GetPayloadBodiesByRangeV1,
    ExchangeCapabilities,
    GetClientVersionV1,
}

impl EngineMethod {
    /// Every method this engine may call, in the order announced by
    /// `engine_exchangeCapabilities` (which itself must not be listed).
    pub const ANNOUNCED: [Self; 14] = [
        Self::ForkchoiceUpdatedV1,
        Self::ForkchoiceUpdatedV2,
        Self::ForkchoiceUpdatedV3,
        Self::GetPayloadV1,
        Self::GetPayloadV2,
        Self::GetPayloadV3,
        Self::GetPayloadV4,
        Self::NewPayloadV1,
        Self::NewPayloadV2,
        Self::NewPayloadV3,
        Self::NewPayloadV4,
        Self::GetPayloadBodiesByHashV1,
        Self::GetPayloadBodiesByRangeV1,
        Self::GetClientVersionV1,
    ];

    /// The JSON-RPC method name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ForkchoiceUpdatedV1 => "engine_forkchoiceUpdatedV1",
            Self::ForkchoiceUpdatedV2 => "engine_forkchoiceUpdatedV2",
            Self::ForkchoiceUpdatedV3 => "engine_forkchoiceUpdatedV3",
            Self::GetPayloadV1 => "engine_getPayloadV1",
            Self::GetPayloadV2 => "engine_getPayloadV2",
            Self::GetPayloadV3 => "engine_getPayloadV3",
            Self::GetPayloadV4 => "engine_getPayloadV4",
            Self::NewPayloadV1 => "engine_newPayloadV1",
            Self::NewPayloadV2 => "engine_newPayloadV2",
            Self::NewPayloadV3 => "engine_newPayloadV3",
            Self::NewPayloadV4 => "engine_newPayloadV4",
            Self::GetPayloadBodiesByHashV1 => "engine_getPayloadBodiesByHashV1",
            Self::GetPayloadBodiesByRangeV1 => "engine_getPayloadBodiesByRangeV1",
            Self::ExchangeCapabilities => "engine_exchangeCapabilities",
            Self::GetClientVersionV1 => "engine_getClientVersionV1",
        }
    }

    /// Whether this is an `engine_newPayloadV*`.
    pub const fn is_new_payload(self) -> bool {
        matches!(
            self,
            Self::NewPayloadV1 | Self::NewPayloadV2 | Self::NewPayloadV3 | Self::NewPayloadV4
        )
    }
}

impl std::fmt::Display for EngineMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Activation times (unix seconds) of the forks after the Merge. Alys chains start at Shanghai
/// (Capella); `None` means "not scheduled".
///
/// ```
/// use engine_types::{Fork, ForkSchedule};
/// let schedule = ForkSchedule { shanghai_time: 0, cancun_time: Some(1_000), prague_time: None };
/// assert_eq!(schedule.fork_at(999), Fork::Shanghai);
/// assert_eq!(schedule.fork_at(1_000), Fork::Cancun);
/// assert_eq!(schedule.fork_at(1_000).new_payload().as_str(), "engine_newPayloadV3");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkSchedule {
    /// Shanghai (Capella) activation time. Default 0: active from genesis.
    #[serde(default)]
    pub shanghai_time: u64,
    /// Cancun (Deneb) activation time, if scheduled. Default: not scheduled.
    #[serde(default)]
    pub cancun_time: Option<u64>,
    /// Prague (Electra) activation time, if scheduled. Default: not scheduled.
    #[serde(default)]
    pub prague_time: Option<u64>,
}

impl Default for ForkSchedule {
    fn default() -> Self {
        Self::shanghai()
    }
}

impl ForkSchedule {
    /// Shanghai from genesis, nothing later: today's Alys chains.
    pub const fn shanghai() -> Self {
        Self {
            shanghai_time: 0,
            cancun_time: None,
            prague_time: None,
        }
    }

    /// Shanghai and Cancun from genesis.
    pub const fn cancun() -> Self {
        Self {
            shanghai_time: 0,
            cancun_time: Some(0),
            prague_time: None,
        }
    }

    /// Shanghai, Cancun and Prague from genesis.
    pub const fn prague() -> Self {
        Self {
            shanghai_time: 0,
            cancun_time: Some(0),
            prague_time: Some(0),
        }
    }

    /// The fork active at `timestamp`.
    pub fn fork_at(&self, timestamp: u64) -> Fork {
        if self.prague_time.is_some_and(|t| timestamp >= t) {
            Fork::Prague
        } else if self.cancun_time.is_some_and(|t| timestamp >= t) {
            Fork::Cancun
        } else if timestamp >= self.shanghai_time {
            Fork::Shanghai
        } else {
            Fork::Paris
        }
    }

    /// The newest fork that is scheduled at all: it decides the forkchoiceUpdated version used
    /// when no payload attributes are sent.
    pub const fn latest_scheduled(&self) -> Fork {
        if self.prague_time.is_some() {
            Fork::Prague
        } else if self.cancun_time.is_some() {
            Fork::Cancun
        } else {
            Fork::Shanghai
        }
    }

    /// Checks the forks are in order (shanghai ≤ cancun ≤ prague, prague needs cancun).
    pub fn validate(&self) -> Result<(), crate::EngineError> {
        if let Some(cancun) = self.cancun_time
            && cancun < self.shanghai_time
        {
            return Err(crate::EngineError::config(
                "fork_schedule.cancun_time",
                format!(
                    "{cancun} is before shanghai_time {}; Cancun must activate at or after \
                     Shanghai",
                    self.shanghai_time
                ),
            ));
        }
        match (self.cancun_time, self.prague_time) {
            (None, Some(_)) => Err(crate::EngineError::config(
                "fork_schedule.prague_time",
                "Prague is scheduled but Cancun is not; set cancun_time too",
            )),
            (Some(cancun), Some(prague)) if prague < cancun => Err(crate::EngineError::config(
                "fork_schedule.prague_time",
                format!("{prague} is before cancun_time {cancun}; Prague must follow Cancun"),
            )),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    const SCHEDULE: ForkSchedule = ForkSchedule {
        shanghai_time: 10,
        cancun_time: Some(20),
        prague_time: Some(30),
    };

    #[rstest]
    #[case(
        0,
        Fork::Paris,
        "engine_forkchoiceUpdatedV1",
        "engine_getPayloadV1",
        "engine_newPayloadV1"
    )]
    #[case(
        10,
        Fork::Shanghai,
        "engine_forkchoiceUpdatedV2",
        "engine_getPayloadV2",
        "engine_newPayloadV2"
    )]
    #[case(
        19,
        Fork::Shanghai,
        "engine_forkchoiceUpdatedV2",
        "engine_getPayloadV2",
        "engine_newPayloadV2"
    )]
    #[case(
        20,
        Fork::Cancun,
        "engine_forkchoiceUpdatedV3",
        "engine_getPayloadV3",
        "engine_newPayloadV3"
    )]
    #[case(
        30,
        Fork::Prague,
        "engine_forkchoiceUpdatedV3",
        "engine_getPayloadV4",
        "engine_newPayloadV4"
    )]
    #[case(
        u64::MAX,
        Fork::Prague,
        "engine_forkchoiceUpdatedV3",
        "engine_getPayloadV4",
        "engine_newPayloadV4"
    )]
    fn timestamp_selects_method_versions(
        #[case] ts: u64,
        #[case] fork: Fork,
        #[case] fcu: &str,
        #[case] get: &str,
        #[case] new: &str,
    ) {
        let f = SCHEDULE.fork_at(ts);
        assert_eq!(f, fork);
        assert_eq!(f.forkchoice_updated().as_str(), fcu);
        assert_eq!(f.get_payload().as_str(), get);
        assert_eq!(f.new_payload().as_str(), new);
    }

    #[test]
    fn out_of_order_schedule_is_refused_naming_the_key() {
        let bad = ForkSchedule {
            shanghai_time: 10,
            cancun_time: Some(5),
            prague_time: None,
        };
        let err = bad.validate().unwrap_err().to_string();
        assert!(err.contains("fork_schedule.cancun_time"), "{err}");
        let bad = ForkSchedule {
            shanghai_time: 0,
            cancun_time: None,
            prague_time: Some(5),
        };
        assert!(
            bad.validate()
                .unwrap_err()
                .to_string()
                .contains("prague_time")
        );
        assert!(SCHEDULE.validate().is_ok());
    }

    #[test]
    fn exchange_capabilities_never_lists_itself() {
        assert!(!EngineMethod::ANNOUNCED.contains(&EngineMethod::ExchangeCapabilities));
    }
}
