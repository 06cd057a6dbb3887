//! Requests the engine accepts, and their validation before any IO.

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ExecutionData, PayloadStatus, PayloadStatusEnum};
use serde::{Deserialize, Serialize};

use crate::{AddBalance, EngineError, ForkSchedule};

/// Where fees go when the caller names no recipient: burnt at the EL.
pub const DEFAULT_FEE_RECIPIENT: Address =
    alloy_primitives::address!("000000000000000000000000000000000000dEaD");

/// Build a payload on `parent` (or the current head) for `timestamp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildPayloadRequest {
    /// Block timestamp, unix seconds. Must be after the parent's.
    pub timestamp: u64,
    /// The block to build on; `None` means the engine's current head.
    pub parent: Option<B256>,
    /// Peg-ins, carried as withdrawals.
    pub peg_ins: Vec<AddBalance>,
    /// Fee recipient; `None` means [`DEFAULT_FEE_RECIPIENT`].
    pub fee_recipient: Option<Address>,
    /// Parent beacon block root for Cancun and later; `None` there means zero. Must be `None`
    /// before Cancun.
    pub parent_beacon_block_root: Option<B256>,
}

impl BuildPayloadRequest {
    /// A request for `timestamp` on the current head, no peg-ins.
    pub const fn new(timestamp: u64) -> Self {
        Self {
            timestamp,
            parent: None,
            peg_ins: Vec::new(),
            fee_recipient: None,
            parent_beacon_block_root: None,
        }
    }

    /// Build on this parent.
    pub const fn with_parent(mut self, parent: B256) -> Self {
        self.parent = Some(parent);
        self
    }

    /// Carry these peg-ins.
    pub fn with_peg_ins(mut self, peg_ins: Vec<AddBalance>) -> Self {
        self.peg_ins = peg_ins;
        self
    }

    /// Pay fees to this address.
    pub const fn with_fee_recipient(mut self, fee_recipient: Address) -> Self {
        self.fee_recipient = Some(fee_recipient);
        self
    }

    /// Set the parent beacon block root (Cancun and later).
    pub const fn with_parent_beacon_block_root(mut self, root: B256) -> Self {
        self.parent_beacon_block_root = Some(root);
        self
    }

    /// Checks everything that can be checked without the chain: a non-zero timestamp, a
    /// non-zero parent, the withdrawal bound, and beacon-root use matching the fork.
    pub fn validate(
        &self,
        max_withdrawals: usize,
        forks: &ForkSchedule,
    ) -> Result<(), EngineError> {
        if self.timestamp == 0 {
            return Err(EngineError::invalid_request(
                "timestamp",
                "must be non-zero unix seconds",
            ));
        }
        if self.parent == Some(B256::ZERO) {
            return Err(EngineError::invalid_request(
                "parent",
                "zero hash; pass None to build on the current head",
            ));
        }
        if self.peg_ins.len() > max_withdrawals {
            return Err(EngineError::invalid_request(
                "peg_ins",
                format!(
                    "{} peg-ins exceed the per-block bound of {max_withdrawals} \
                     (max_withdrawals_per_block); split them over several blocks",
                    self.peg_ins.len()
                ),
            ));
        }
        let fork = forks.fork_at(self.timestamp);
        if !fork.has_withdrawals() {
            return Err(EngineError::invalid_request(
                "timestamp",
                format!(
                    "{} is before Shanghai (shanghai_time {}); Alys blocks need withdrawals",
                    self.timestamp, forks.shanghai_time
                ),
            ));
        }
        if self.parent_beacon_block_root.is_some() && !fork.has_blob_fields() {
            return Err(EngineError::invalid_request(
                "parent_beacon_block_root",
                format!(
                    "set, but timestamp {} is before Cancun; leave it None",
                    self.timestamp
                ),
            ));
        }
        Ok(())
    }

    /// Checks the timestamp against the parent's.
    pub fn validate_against_parent(&self, parent_timestamp: u64) -> Result<(), EngineError> {
        if self.timestamp <= parent_timestamp {
            return Err(EngineError::invalid_request(
                "timestamp",
                format!(
                    "{} is not after the parent's timestamp {parent_timestamp}",
                    self.timestamp
                ),
            ));
        }
        Ok(())
    }
}

/// Validate a payload (newPayload) and, if VALID, make it the head.
#[derive(Debug, Clone)]
pub struct CommitPayloadRequest {
    /// The payload and its fork-specific sidecar.
    pub payload: ExecutionData,
}

impl CommitPayloadRequest {
    /// Checks hashes and that the sidecar matches the payload's fork.
    pub fn validate(&self, forks: &ForkSchedule) -> Result<(), EngineError> {
        validate_execution_data(&self.payload, forks)
    }
}

/// Checks a payload before sending it: non-zero block hash, parent differs from the block,
/// payload version and sidecar consistent with the fork of its timestamp.
pub fn validate_execution_data(
    data: &ExecutionData,
    forks: &ForkSchedule,
) -> Result<(), EngineError> {
    let block_hash = data.payload.block_hash();
    if block_hash.is_zero() {
        return Err(EngineError::invalid_request(
            "payload.block_hash",
            "zero hash",
        ));
    }
    if data.payload.parent_hash() == block_hash {
        return Err(EngineError::invalid_request(
            "payload.parent_hash",
            "equals the block hash; a block cannot be its own parent",
        ));
    }
    let fork = forks.fork_at(data.payload.timestamp());
    let has_v3 = data.payload.as_v3().is_some();
    if fork.has_blob_fields() != has_v3 {
        return Err(EngineError::invalid_request(
            "payload",
            format!(
                "timestamp {} is in {fork:?} but the payload is {}; rebuild it for this fork",
                data.payload.timestamp(),
                if has_v3 {
                    "a V3 (Cancun) payload"
                } else {
                    "a pre-Cancun payload"
                }
            ),
        ));
    }
    if fork.has_blob_fields() && data.sidecar.parent_beacon_block_root().is_none() {
        return Err(EngineError::invalid_request(
            "sidecar.parent_beacon_block_root",
            "missing; Cancun payloads need the parent beacon block root",
        ));
    }
    if fork.has_withdrawals() && data.payload.withdrawals().is_none() {
        return Err(EngineError::invalid_request(
            "payload.withdrawals",
            "missing; Shanghai and later payloads carry a (possibly empty) withdrawals list",
        ));
    }
    Ok(())
}

/// Make `hash` finalized (and safe) at the EL.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FinalizeRequest {
    /// The block to finalize; it must be known and an ancestor of (or equal to) head.
    pub hash: B256,
}

impl FinalizeRequest {
    /// Checks the hash is non-zero.
    pub fn validate(&self) -> Result<(), EngineError> {
        non_zero("hash", self.hash)
    }
}

/// Move the head back to an ancestor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevertRequest {
    /// The ancestor that becomes head; it must not be older than finalized.
    pub hash: B256,
}

impl RevertRequest {
    /// Checks the hash is non-zero.
    pub fn validate(&self) -> Result<(), EngineError> {
        non_zero("hash", self.hash)
    }
}

fn non_zero(field: &str, hash: B256) -> Result<(), EngineError> {
    if hash.is_zero() {
        return Err(EngineError::invalid_request(field, "zero hash"));
    }
    Ok(())
}

/// Turn a `newPayload` status into success or a typed error. Only `VALID` is success; the old
/// engine's habit of returning `latestValidHash` as if the block had been committed is exactly
/// what this refuses.
pub fn require_valid(status: &PayloadStatus, block_hash: B256) -> Result<(), EngineError> {
    match &status.status {
        PayloadStatusEnum::Valid => match status.latest_valid_hash {
            // VALID must name the block itself; anything else is a confused EL.
            Some(h) if h != block_hash => Err(EngineError::InvalidPayload {
                block_hash,
                validation_error: Some(format!("VALID but latestValidHash is {h}")),
                latest_valid_hash: Some(h),
            }),
            _ => Ok(()),
        },
        PayloadStatusEnum::Invalid { validation_error } => Err(EngineError::InvalidPayload {
            block_hash,
            validation_error: Some(validation_error.clone()),
            latest_valid_hash: status.latest_valid_hash,
        }),
        PayloadStatusEnum::Syncing => Err(EngineError::Syncing { block_hash }),
        PayloadStatusEnum::Accepted => Err(EngineError::Accepted { block_hash }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConsensusAmount;

    #[test]
    fn build_with_17_withdrawals_is_refused_at_default_bound() {
        let peg_ins = vec![AddBalance(Address::repeat_byte(1), ConsensusAmount(1)); 17];
        let req = BuildPayloadRequest::new(100).with_peg_ins(peg_ins);
        let err = req.validate(16, &ForkSchedule::shanghai()).unwrap_err();
        assert_eq!(err.kind(), "invalid_request");
        assert!(err.to_string().contains("17 peg-ins exceed"), "{err}");
        let ok = BuildPayloadRequest::new(100).with_peg_ins(vec![
            AddBalance(
                Address::ZERO,
                ConsensusAmount(1)
            );
            16
        ]);
        assert!(ok.validate(16, &ForkSchedule::shanghai()).is_ok());
    }

    #[test]
    fn build_refuses_zero_timestamp_zero_parent_and_stale_timestamp() {
        let forks = ForkSchedule::shanghai();
        assert!(BuildPayloadRequest::new(0).validate(16, &forks).is_err());
        assert!(
            BuildPayloadRequest::new(5)
                .with_parent(B256::ZERO)
                .validate(16, &forks)
                .is_err()
        );
        assert!(
            BuildPayloadRequest::new(5)
                .validate_against_parent(5)
                .is_err()
        );
        assert!(
            BuildPayloadRequest::new(6)
                .validate_against_parent(5)
                .is_ok()
        );
    }

    #[test]
    fn beacon_root_only_from_cancun() {
        let req = BuildPayloadRequest::new(5).with_parent_beacon_block_root(B256::repeat_byte(3));
        assert!(req.validate(16, &ForkSchedule::shanghai()).is_err());
        assert!(req.validate(16, &ForkSchedule::cancun()).is_ok());
    }

    #[test]
    fn finalize_and_revert_refuse_zero_hash() {
        assert!(FinalizeRequest { hash: B256::ZERO }.validate().is_err());
        assert!(RevertRequest { hash: B256::ZERO }.validate().is_err());
        assert!(
            FinalizeRequest {
                hash: B256::repeat_byte(1)
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn only_valid_status_commits() {
        let hash = B256::repeat_byte(9);
        let parent = B256::repeat_byte(8);
        assert!(
            require_valid(
                &PayloadStatus::new(PayloadStatusEnum::Valid, Some(hash)),
                hash
            )
            .is_ok()
        );
        let invalid = PayloadStatus::new(
            PayloadStatusEnum::Invalid {
                validation_error: "bad root".into(),
            },
            Some(parent),
        );
        match require_valid(&invalid, hash).unwrap_err() {
            EngineError::InvalidPayload {
                validation_error,
                latest_valid_hash,
                ..
            } => {
                assert_eq!(validation_error.as_deref(), Some("bad root"));
                assert_eq!(latest_valid_hash, Some(parent));
            }
            other => panic!("unexpected {other:?}"),
        }
        let syncing = PayloadStatus::from_status(PayloadStatusEnum::Syncing);
        assert_eq!(require_valid(&syncing, hash).unwrap_err().kind(), "syncing");
        let accepted = PayloadStatus::from_status(PayloadStatusEnum::Accepted);
        assert_eq!(
            require_valid(&accepted, hash).unwrap_err().kind(),
            "accepted"
        );
        // VALID naming an ancestor is not a commit of this block.
        let confused = PayloadStatus::new(PayloadStatusEnum::Valid, Some(parent));
        assert!(require_valid(&confused, hash).is_err());
    }
}
