//! The payload conversion against vectors remerkleable produced from the consensus specs
//! (`tools/ssz-vectors`), and property tests of both directions.

use std::str::FromStr;

use alloy_eips::eip4895::Withdrawal as AlloyWithdrawal;
use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3,
};
use engine_migration::alys_node::{
    PayloadSszError, SszFork, limits, payload_from_ssz, payload_to_ssz,
};
use proptest::prelude::*;
use serde_json::Value;
use ssz::{Decode, Encode};
use tree_hash::TreeHash;

use crate::types::{ExecutionPayloadCapella, ExecutionPayloadDeneb, MainnetEthSpec};

fn hex(v: &Value) -> Vec<u8> {
    let s = v.as_str().expect("a hex string");
    alloy_primitives::hex::decode(s).unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn dec(v: &Value) -> u64 {
    v.as_str()
        .expect("a decimal string")
        .parse()
        .expect("a u64")
}

/// The fixture's value as alloy's payload (an implementation independent of the stand-in).
fn alloy_payload(fork: SszFork, v: &Value) -> ExecutionPayload {
    let withdrawals = v["withdrawals"]
        .as_array()
        .expect("withdrawals")
        .iter()
        .map(|w| AlloyWithdrawal {
            index: dec(&w["index"]),
            validator_index: dec(&w["validator_index"]),
            address: Address::from_slice(&hex(&w["address"])),
            amount: dec(&w["amount"]),
        })
        .collect();
    let v2 = ExecutionPayloadV2 {
        payload_inner: ExecutionPayloadV1 {
            parent_hash: B256::from_slice(&hex(&v["parent_hash"])),
            fee_recipient: Address::from_slice(&hex(&v["fee_recipient"])),
            state_root: B256::from_slice(&hex(&v["state_root"])),
            receipts_root: B256::from_slice(&hex(&v["receipts_root"])),
            logs_bloom: Bloom::from_slice(&hex(&v["logs_bloom"])),
            prev_randao: B256::from_slice(&hex(&v["prev_randao"])),
            block_number: dec(&v["block_number"]),
            gas_limit: dec(&v["gas_limit"]),
            gas_used: dec(&v["gas_used"]),
            timestamp: dec(&v["timestamp"]),
            extra_data: Bytes::from(hex(&v["extra_data"])),
            base_fee_per_gas: U256::from_str(v["base_fee_per_gas"].as_str().unwrap()).unwrap(),
            block_hash: B256::from_slice(&hex(&v["block_hash"])),
            transactions: v["transactions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| Bytes::from(hex(t)))
                .collect(),
        },
        withdrawals,
    };
    match fork {
        SszFork::Capella => ExecutionPayload::V2(v2),
        SszFork::Deneb => ExecutionPayload::V3(ExecutionPayloadV3 {
            payload_inner: v2,
            blob_gas_used: dec(&v["blob_gas_used"]),
            excess_blob_gas: dec(&v["excess_blob_gas"]),
        }),
    }
}

fn load(fork: &str) -> Vec<Value> {
    let path = format!(
        "{}/tests/fixtures/ssz/{fork}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let file: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(file["fork"], fork);
    assert!(
        file["generator"]
            .as_str()
            .unwrap()
            .starts_with("remerkleable")
    );
    file["payloads"].as_array().unwrap().clone()
}

/// Every vector, both implementations: value → ours → SSZ is the fixture's bytes; bytes → the
/// node's type (Lighthouse's layout) → SSZ is the same and its hash_tree_root the fixture's;
/// node type → ours → back is byte-identical.
fn check_vectors(fork: SszFork, name: &str) -> usize {
    let vectors = load(name);
    assert!(vectors.len() >= 20, "{} vectors", vectors.len());
    for vector in &vectors {
        let id = vector["name"].as_str().unwrap();
        let bytes = hex(&vector["ssz"]);
        let root = B256::from_slice(&hex(&vector["hash_tree_root"]));
        let ours = alloy_payload(fork, &vector["value"]);
        assert_eq!(payload_to_ssz(&ours).unwrap(), bytes, "{id}: our encoding");
        assert_eq!(
            payload_from_ssz(fork, &bytes).unwrap(),
            ours,
            "{id}: our decoding"
        );
        let (node_bytes, node_root) = match fork {
            SszFork::Capella => {
                let node = ExecutionPayloadCapella::<MainnetEthSpec>::from_ssz_bytes(&bytes)
                    .unwrap_or_else(|e| panic!("{id}: {e:?}"));
                (node.as_ssz_bytes(), node.tree_hash_root())
            }
            SszFork::Deneb => {
                let node = ExecutionPayloadDeneb::<MainnetEthSpec>::from_ssz_bytes(&bytes)
                    .unwrap_or_else(|e| panic!("{id}: {e:?}"));
                (node.as_ssz_bytes(), node.tree_hash_root())
            }
        };
        assert_eq!(node_bytes, bytes, "{id}: the node type's encoding");
        assert_eq!(node_root.0, root.0, "{id}: hash_tree_root");
        let back = payload_to_ssz(&payload_from_ssz(fork, &node_bytes).unwrap()).unwrap();
        assert_eq!(back, bytes, "{id}: node → ours → node");
    }
    vectors.len()
}

#[test]
fn capella_vectors_from_remerkleable() {
    let n = check_vectors(SszFork::Capella, "capella");
    println!("{n} Capella vectors: byte-identical, roots equal");
}

#[test]
fn deneb_vectors_from_remerkleable() {
    let n = check_vectors(SszFork::Deneb, "deneb");
    println!("{n} Deneb vectors: byte-identical, roots equal");
}

fn any_withdrawal() -> impl Strategy<Value = AlloyWithdrawal> {
    (any::<u64>(), any::<u64>(), any::<[u8; 20]>(), any::<u64>()).prop_map(|(i, v, a, m)| {
        AlloyWithdrawal {
            index: i,
            validator_index: v,
            address: Address::from(a),
            amount: m,
        }
    })
}

prop_compose! {
    fn any_v2(max_withdrawals: usize, max_extra: usize)(
        hashes in any::<[[u8; 32]; 5]>(),
        fee_recipient in any::<[u8; 20]>(),
        bloom in proptest::collection::vec(any::<u8>(), 256),
        numbers in any::<[u64; 4]>(),
        extra in proptest::collection::vec(any::<u8>(), 0..=max_extra),
        base_fee in any::<[u8; 32]>(),
        transactions in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..12),
        withdrawals in proptest::collection::vec(any_withdrawal(), 0..=max_withdrawals),
    ) -> ExecutionPayloadV2 {
        ExecutionPayloadV2 {
            payload_inner: ExecutionPayloadV1 {
                parent_hash: B256::from(hashes[0]),
                fee_recipient: Address::from(fee_recipient),
                state_root: B256::from(hashes[1]),
                receipts_root: B256::from(hashes[2]),
                logs_bloom: Bloom::from_slice(&bloom),
                prev_randao: B256::from(hashes[3]),
                block_number: numbers[0],
                gas_limit: numbers[1],
                gas_used: numbers[2],
                timestamp: numbers[3],
                extra_data: Bytes::from(extra),
                base_fee_per_gas: U256::from_le_bytes(base_fee),
                block_hash: B256::from(hashes[4]),
                transactions: transactions.into_iter().map(Bytes::from).collect(),
            },
            withdrawals,
        }
    }
}

fn through_node_type(payload: &ExecutionPayload) -> ExecutionPayload {
    let bytes = payload_to_ssz(payload).unwrap();
    let node_bytes = match payload {
        ExecutionPayload::V2(_) => {
            ExecutionPayloadCapella::<MainnetEthSpec>::from_ssz_bytes(&bytes)
                .unwrap()
                .as_ssz_bytes()
        }
        _ => ExecutionPayloadDeneb::<MainnetEthSpec>::from_ssz_bytes(&bytes)
            .unwrap()
            .as_ssz_bytes(),
    };
    let fork = if matches!(payload, ExecutionPayload::V2(_)) {
        SszFork::Capella
    } else {
        SszFork::Deneb
    };
    payload_from_ssz(fork, &node_bytes).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Any V2 or V3 payload → the node's type → back is the identity.
    #[test]
    fn any_payload_survives_the_node_type(
        v2 in any_v2(limits::MAX_WITHDRAWALS_PER_PAYLOAD, limits::MAX_EXTRA_DATA_BYTES),
        blob in any::<(u64, u64)>(),
    ) {
        let capella = ExecutionPayload::V2(v2.clone());
        prop_assert_eq!(through_node_type(&capella), capella);
        let deneb = ExecutionPayload::V3(ExecutionPayloadV3 {
            payload_inner: v2,
            blob_gas_used: blob.0,
            excess_blob_gas: blob.1,
        });
        prop_assert_eq!(through_node_type(&deneb), deneb);
    }

    /// A payload beyond a bound gets the named error, never bytes the node would refuse.
    #[test]
    fn out_of_bound_payloads_get_a_named_error(
        v2 in any_v2(40, 64),
    ) {
        let withdrawals = v2.withdrawals.len();
        let extra = v2.payload_inner.extra_data.len();
        let result = payload_to_ssz(&ExecutionPayload::V2(v2));
        if extra > limits::MAX_EXTRA_DATA_BYTES {
            prop_assert_eq!(result, Err(PayloadSszError::ExtraDataTooLong { len: extra }));
        } else if withdrawals > limits::MAX_WITHDRAWALS_PER_PAYLOAD {
            prop_assert_eq!(result, Err(PayloadSszError::TooManyWithdrawals { count: withdrawals }));
        } else {
            prop_assert!(result.is_ok());
        }
    }

    /// Arbitrary bytes decode to a payload or a typed error, never a panic; what decodes
    /// re-encodes to the same bytes (the encoding is canonical).
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1200)) {
        for fork in [SszFork::Capella, SszFork::Deneb] {
            if let Ok(payload) = payload_from_ssz(fork, &bytes) {
                prop_assert_eq!(payload_to_ssz(&payload).unwrap(), bytes.clone());
            }
        }
    }
}

#[test]
fn too_many_transactions_and_v1_v4_are_named() {
    let mut v2 = ExecutionPayloadV2 {
        payload_inner: ExecutionPayloadV1 {
            parent_hash: B256::ZERO,
            fee_recipient: Address::ZERO,
            state_root: B256::ZERO,
            receipts_root: B256::ZERO,
            logs_bloom: Bloom::ZERO,
            prev_randao: B256::ZERO,
            block_number: 0,
            gas_limit: 0,
            gas_used: 0,
            timestamp: 0,
            extra_data: Bytes::new(),
            base_fee_per_gas: U256::ZERO,
            block_hash: B256::ZERO,
            transactions: Vec::new(),
        },
        withdrawals: Vec::new(),
    };
    let v1 = ExecutionPayload::V1(v2.payload_inner.clone());
    assert!(matches!(
        payload_to_ssz(&v1),
        Err(PayloadSszError::UnsupportedVersion(_))
    ));
    v2.payload_inner.transactions = vec![Bytes::new(); limits::MAX_TRANSACTIONS_PER_PAYLOAD + 1];
    let err = payload_to_ssz(&ExecutionPayload::V2(v2)).unwrap_err();
    assert_eq!(
        err,
        PayloadSszError::TooManyTransactions {
            count: limits::MAX_TRANSACTIONS_PER_PAYLOAD + 1
        }
    );
    assert!(err.to_string().contains("1048576"), "{err}");
    // The node type refuses the same bytes our decoder refuses.
    let truncated = [0u8; 100];
    assert!(payload_from_ssz(SszFork::Capella, &truncated).is_err());
    assert!(ExecutionPayloadCapella::<MainnetEthSpec>::from_ssz_bytes(&truncated).is_err());
}
