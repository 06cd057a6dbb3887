//! The Lighthouse v4 ↔ v5 type families, as alloy types.
//!
//! "v4" is the Capella family: [`CapellaPayload`] (`ExecutionPayloadV2`), attributes without a
//! parent beacon block root, V2 methods. "v5" is the Deneb family: [`DenebPayload`]
//! (`ExecutionPayloadV3`, with blob gas fields), attributes with a parent beacon block root,
//! V3 methods. v4 → v5 always succeeds (no blobs, zero blob gas); v5 → v4 refuses anything v4
//! cannot carry and names the field.
//!
//! A converted payload is a *different block* (the header gains or loses the blob gas fields),
//! so its `block_hash` no longer matches its contents: conversions serve comparison and
//! migration plumbing, not re-submission of the same block under another fork.

use alloy_eips::eip7685::Requests;
use alloy_primitives::B256;
use alloy_rpc_types_engine::{
    ExecutionPayloadV2, ExecutionPayloadV3, ForkchoiceState, PayloadAttributes,
};
use engine_types::ForkSchedule;

/// Why a v5 value cannot become a v4 value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConversionError {
    /// A Deneb field with a value Capella cannot represent.
    #[error(
        "{field} is {value}; Capella (v4) payloads have no blob gas, so this payload needs the v5 path"
    )]
    BlobGasInUse {
        /// The field (`blob_gas_used` or `excess_blob_gas`).
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A v5 request carried blob versioned hashes.
    #[error("versioned_hashes has {0} entries; Capella (v4) has no blobs")]
    BlobsPresent(usize),
    /// v4 attributes cannot carry a parent beacon block root.
    #[error("parent_beacon_block_root is {0}; Capella (v4) attributes have none")]
    BeaconRootPresent(B256),
    /// A v5 request carried execution requests (Prague).
    #[error("execution_requests has {0} entries; Capella (v4) has no execution requests")]
    RequestsPresent(usize),
    /// v4 attributes need withdrawals.
    #[error("withdrawals are missing; Capella (v4) attributes always carry a list")]
    WithdrawalsMissing,
    /// The v4 family cannot serve a timestamp at or after the Cancun activation.
    #[error(
        "timestamp {timestamp} is Cancun-era (Cancun activates at {cancun_time}); the Lighthouse v4 (Capella) path serves only earlier blocks, use the v5 path"
    )]
    CancunEra {
        /// The timestamp asked for.
        timestamp: u64,
        /// The scheduled Cancun activation.
        cancun_time: u64,
    },
}

/// A Capella execution payload (Lighthouse v4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapellaPayload(pub ExecutionPayloadV2);

/// A Deneb execution payload (Lighthouse v5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenebPayload(pub ExecutionPayloadV3);

impl From<CapellaPayload> for DenebPayload {
    fn from(v4: CapellaPayload) -> Self {
        Self(ExecutionPayloadV3 {
            payload_inner: v4.0,
            blob_gas_used: 0,
            excess_blob_gas: 0,
        })
    }
}

impl TryFrom<DenebPayload> for CapellaPayload {
    type Error = ConversionError;

    fn try_from(v5: DenebPayload) -> Result<Self, Self::Error> {
        let p = v5.0;
        if p.blob_gas_used != 0 {
            return Err(ConversionError::BlobGasInUse {
                field: "blob_gas_used",
                value: p.blob_gas_used,
            });
        }
        if p.excess_blob_gas != 0 {
            return Err(ConversionError::BlobGasInUse {
                field: "excess_blob_gas",
                value: p.excess_blob_gas,
            });
        }
        Ok(Self(p.payload_inner))
    }
}

/// Payload attributes of the Capella family: withdrawals, no parent beacon block root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapellaAttributes(pub PayloadAttributes);

/// Payload attributes of the Deneb family: withdrawals and a parent beacon block root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenebAttributes(pub PayloadAttributes);

impl CapellaAttributes {
    /// Checks the shape (withdrawals present, no beacon root).
    pub fn new(attributes: PayloadAttributes) -> Result<Self, ConversionError> {
        if let Some(root) = attributes.parent_beacon_block_root {
            return Err(ConversionError::BeaconRootPresent(root));
        }
        if attributes.withdrawals.is_none() {
            return Err(ConversionError::WithdrawalsMissing);
        }
        Ok(Self(attributes))
    }

    /// The Deneb attributes for the same build, with `parent_beacon_block_root`.
    pub fn into_deneb(self, parent_beacon_block_root: B256) -> DenebAttributes {
        DenebAttributes(PayloadAttributes {
            parent_beacon_block_root: Some(parent_beacon_block_root),
            ..self.0
        })
    }
}

impl TryFrom<DenebAttributes> for CapellaAttributes {
    type Error = ConversionError;

    /// A zero (or absent) parent beacon block root is what a v5 caller passes before Cancun
    /// and is dropped; any other root cannot be carried by Capella and is refused.
    fn try_from(v5: DenebAttributes) -> Result<Self, Self::Error> {
        match v5.0.parent_beacon_block_root {
            Some(root) if !root.is_zero() => Err(ConversionError::BeaconRootPresent(root)),
            _ => Self::new(PayloadAttributes {
                parent_beacon_block_root: None,
                ..v5.0
            }),
        }
    }
}

/// The forkchoice state as the v4 family passes it (`engine_forkchoiceUpdatedV2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapellaForkchoiceState(pub ForkchoiceState);

/// The forkchoice state as the v5 family passes it (`engine_forkchoiceUpdatedV3`). The fields
/// are the same in both families, so the conversions are total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenebForkchoiceState(pub ForkchoiceState);

impl From<CapellaForkchoiceState> for DenebForkchoiceState {
    fn from(v4: CapellaForkchoiceState) -> Self {
        Self(v4.0)
    }
}

impl From<DenebForkchoiceState> for CapellaForkchoiceState {
    fn from(v5: DenebForkchoiceState) -> Self {
        Self(v5.0)
    }
}

/// Refuse `timestamp` on the v4 path when the schedule has Cancun active by then.
pub fn require_pre_cancun(schedule: &ForkSchedule, timestamp: u64) -> Result<(), ConversionError> {
    match schedule.cancun_time {
        Some(cancun_time) if timestamp >= cancun_time => Err(ConversionError::CancunEra {
            timestamp,
            cancun_time,
        }),
        _ => Ok(()),
    }
}

/// `engine_newPayloadV2`'s request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapellaNewPayload {
    /// The payload.
    pub payload: CapellaPayload,
}

/// `engine_newPayloadV3`'s request (`engine_newPayloadV4`'s with `execution_requests`, from
/// Prague on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DenebNewPayload {
    /// The payload.
    pub payload: DenebPayload,
    /// Expected blob versioned hashes (empty without blobs).
    pub versioned_hashes: Vec<B256>,
    /// The parent beacon block root.
    pub parent_beacon_block_root: B256,
    /// EIP-7685 execution requests (Prague and later; None before).
    pub execution_requests: Option<Requests>,
}

impl CapellaNewPayload {
    /// The Deneb request for the same payload.
    pub fn into_deneb(self, parent_beacon_block_root: B256) -> DenebNewPayload {
        DenebNewPayload {
            payload: self.payload.into(),
            versioned_hashes: Vec::new(),
            parent_beacon_block_root,
            execution_requests: None,
        }
    }
}

impl TryFrom<DenebNewPayload> for CapellaNewPayload {
    type Error = ConversionError;

    fn try_from(v5: DenebNewPayload) -> Result<Self, Self::Error> {
        if !v5.versioned_hashes.is_empty() {
            return Err(ConversionError::BlobsPresent(v5.versioned_hashes.len()));
        }
        if let Some(requests) = v5.execution_requests.filter(|r| !r.is_empty()) {
            return Err(ConversionError::RequestsPresent(requests.len()));
        }
        Ok(Self {
            payload: v5.payload.try_into()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloy_eips::eip4895::Withdrawal;
    use alloy_primitives::{Address, Bloom, Bytes, U256};
    use alloy_rpc_types_engine::ExecutionPayloadV1;
    use proptest::prelude::*;

    fn b256() -> impl Strategy<Value = B256> {
        any::<[u8; 32]>().prop_map(B256::from)
    }

    fn address() -> impl Strategy<Value = Address> {
        any::<[u8; 20]>().prop_map(Address::from)
    }

    fn withdrawal() -> impl Strategy<Value = Withdrawal> {
        (any::<u64>(), any::<u64>(), address(), any::<u64>()).prop_map(
            |(index, validator_index, address, amount)| Withdrawal {
                index,
                validator_index,
                address,
                amount,
            },
        )
    }

    prop_compose! {
        fn capella()(
            (parent_hash, state_root, receipts_root, prev_randao, block_hash) in (b256(), b256(), b256(), b256(), b256()),
            fee_recipient in address(),
            (block_number, gas_limit, gas_used, timestamp) in (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
            base_fee in any::<[u8; 32]>(),
            extra in proptest::collection::vec(any::<u8>(), 0..32),
            txs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..64), 0..8),
            withdrawals in proptest::collection::vec(withdrawal(), 0..16),
        ) -> CapellaPayload {
            CapellaPayload(ExecutionPayloadV2 {
                payload_inner: ExecutionPayloadV1 {
                    parent_hash, fee_recipient, state_root, receipts_root,
                    logs_bloom: Bloom::ZERO, prev_randao, block_number, gas_limit, gas_used, timestamp,
                    extra_data: Bytes::from(extra),
                    base_fee_per_gas: U256::from_be_bytes(base_fee),
                    block_hash,
                    transactions: txs.into_iter().map(Bytes::from).collect(),
                },
                withdrawals,
            })
        }
    }

    proptest! {
        #[test]
        fn v4_to_v5_to_v4_is_the_identity(v4 in capella()) {
            let v5 = DenebPayload::from(v4.clone());
            prop_assert_eq!(v5.0.blob_gas_used, 0);
            prop_assert_eq!(CapellaPayload::try_from(v5).unwrap(), v4);
        }

        #[test]
        fn v5_with_blob_gas_does_not_become_v4(v4 in capella(), used in 1u64.., excess in any::<u64>()) {
            let mut v5 = DenebPayload::from(v4);
            v5.0.blob_gas_used = used;
            v5.0.excess_blob_gas = excess;
            let err = CapellaPayload::try_from(v5).unwrap_err();
            prop_assert_eq!(err, ConversionError::BlobGasInUse { field: "blob_gas_used", value: used });
        }

        #[test]
        fn new_payload_requests_round_trip(v4 in capella(), root in b256()) {
            let request = CapellaNewPayload { payload: v4 };
            let deneb = request.clone().into_deneb(root);
            prop_assert_eq!(deneb.parent_beacon_block_root, root);
            prop_assert_eq!(CapellaNewPayload::try_from(deneb).unwrap(), request);
        }
    }

    #[test]
    fn excess_blob_gas_and_blobs_are_named() {
        let mut v5 = DenebPayload::from(CapellaPayload(ExecutionPayloadV2 {
            payload_inner: ExecutionPayloadV1 {
                parent_hash: B256::ZERO,
                fee_recipient: Address::ZERO,
                state_root: B256::ZERO,
                receipts_root: B256::ZERO,
                logs_bloom: Bloom::ZERO,
                prev_randao: B256::ZERO,
                block_number: 1,
                gas_limit: 1,
                gas_used: 0,
                timestamp: 1,
                extra_data: Bytes::new(),
                base_fee_per_gas: U256::from(7),
                block_hash: B256::ZERO,
                transactions: vec![],
            },
            withdrawals: vec![],
        }));
        v5.0.excess_blob_gas = 5;
        let err = CapellaPayload::try_from(v5.clone()).unwrap_err();
        assert!(err.to_string().contains("excess_blob_gas is 5"), "{err}");
        v5.0.excess_blob_gas = 0;
        let request = DenebNewPayload {
            payload: v5,
            versioned_hashes: vec![B256::ZERO],
            parent_beacon_block_root: B256::ZERO,
            execution_requests: None,
        };
        assert_eq!(
            CapellaNewPayload::try_from(request.clone()).unwrap_err(),
            ConversionError::BlobsPresent(1)
        );
        let with_requests = DenebNewPayload {
            versioned_hashes: vec![],
            execution_requests: Some(Requests::new(vec![Bytes::from_static(&[0, 1])])),
            ..request
        };
        let err = CapellaNewPayload::try_from(with_requests).unwrap_err();
        assert!(err.to_string().contains("execution_requests"), "{err}");
    }

    #[test]
    fn attributes_move_between_families() {
        let v4 = CapellaAttributes::new(PayloadAttributes {
            timestamp: 2,
            prev_randao: B256::ZERO,
            suggested_fee_recipient: Address::ZERO,
            withdrawals: Some(vec![]),
            parent_beacon_block_root: None,
            ..Default::default()
        })
        .unwrap();
        let v5 = v4.clone().into_deneb(B256::ZERO);
        assert_eq!(v5.0.parent_beacon_block_root, Some(B256::ZERO));
        assert_eq!(CapellaAttributes::try_from(v5).unwrap(), v4);
        // A real beacon root has no place in Capella: refused, not dropped.
        let rooted = v4.clone().into_deneb(B256::repeat_byte(1));
        assert_eq!(
            CapellaAttributes::try_from(rooted),
            Err(ConversionError::BeaconRootPresent(B256::repeat_byte(1)))
        );
        let with_root = PayloadAttributes {
            parent_beacon_block_root: Some(B256::ZERO),
            ..v4.0.clone()
        };
        assert!(matches!(
            CapellaAttributes::new(with_root),
            Err(ConversionError::BeaconRootPresent(_))
        ));
        let no_withdrawals = PayloadAttributes {
            withdrawals: None,
            ..v4.0
        };
        assert_eq!(
            CapellaAttributes::new(no_withdrawals),
            Err(ConversionError::WithdrawalsMissing)
        );
    }

    #[test]
    fn forkchoice_state_converts_both_ways_unchanged() {
        let state = ForkchoiceState {
            head_block_hash: B256::repeat_byte(1),
            safe_block_hash: B256::repeat_byte(2),
            finalized_block_hash: B256::repeat_byte(3),
        };
        let v5 = DenebForkchoiceState::from(CapellaForkchoiceState(state));
        assert_eq!(v5.0, state);
        assert_eq!(CapellaForkchoiceState::from(v5).0, state);
    }

    #[test]
    fn v4_refuses_cancun_era_timestamps_and_says_so() {
        let schedule = ForkSchedule {
            shanghai_time: 0,
            cancun_time: Some(1_000),
            prague_time: None,
        };
        assert_eq!(require_pre_cancun(&schedule, 999), Ok(()));
        let err = require_pre_cancun(&schedule, 1_000).unwrap_err();
        assert_eq!(
            err,
            ConversionError::CancunEra {
                timestamp: 1_000,
                cancun_time: 1_000
            }
        );
        assert!(err.to_string().contains("use the v5 path"), "{err}");
        assert_eq!(
            require_pre_cancun(&ForkSchedule::shanghai(), u64::MAX),
            Ok(())
        );
    }
}
