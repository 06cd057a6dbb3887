//! Payload building and validation: `engine_forkchoiceUpdated` (forkchoice checks, starting a
//! build), assembling a block from the pool, `engine_getPayload` and `engine_newPayload`.

use std::time::Instant;

use alloy_consensus::{
    Block, BlockBody, EMPTY_OMMER_ROOT_HASH, Header, TxEnvelope,
    proofs::{calculate_transaction_root, calculate_withdrawals_root},
};
use alloy_eips::{
    Decodable2718,
    eip4895::Withdrawals,
    eip7685::{EMPTY_REQUESTS_HASH, Requests},
};
use alloy_primitives::{B64, B256, Bytes, U256, keccak256};
use alloy_rpc_types_engine::{
    CancunPayloadFields, ExecutionPayload, ExecutionPayloadInputV2, ExecutionPayloadSidecar,
    ExecutionPayloadV1, ExecutionPayloadV3, ForkchoiceState, PayloadAttributes, PayloadId,
    PraguePayloadFields,
};
use engine_types::{EngineMethod, Fork, codes};
use serde_json::{Value, json};

use super::{
    BASE_FEE, Build, GAS_PER_TX, MockChain, RpcFailure, StoredBlock, credit, fail, param,
    receipts::{block_bloom, synthesize_receipts},
    state_root, to_json,
};
use crate::mock::MockConfig;

impl MockChain {
    pub(super) fn forkchoice_updated(
        &mut self,
        config: &MockConfig,
        version: u8,
        params: &Value,
        forced_status: Option<Value>,
    ) -> Result<Value, RpcFailure> {
        let state: ForkchoiceState = param(params, 0)?;
        let attributes: Option<PayloadAttributes> = param(params, 1)?;
        if let Some(status) = forced_status {
            return Ok(json!({ "payloadStatus": status, "payloadId": null }));
        }
        if let Some(attrs) = &attributes {
            let fork = config.fork_schedule.fork_at(attrs.timestamp);
            let expected = fork.forkchoice_updated();
            let called = [
                EngineMethod::ForkchoiceUpdatedV1,
                EngineMethod::ForkchoiceUpdatedV2,
                EngineMethod::ForkchoiceUpdatedV3,
            ][usize::from(version - 1)];
            if called != expected {
                return Err(fail(
                    codes::UNSUPPORTED_FORK,
                    format!("Unsupported fork: {fork:?} attributes need {expected}"),
                ));
            }
            if fork.has_withdrawals() != attrs.withdrawals.is_some() {
                return Err(fail(
                    codes::INVALID_PARAMS,
                    "withdrawals presence does not match the fork",
                ));
            }
            if fork.has_blob_fields() != attrs.parent_beacon_block_root.is_some() {
                return Err(fail(
                    codes::INVALID_PARAMS,
                    "parentBeaconBlockRoot presence does not match the fork",
                ));
            }
        }
        if !self.blocks.contains_key(&state.head_block_hash) {
            return Ok(json!({
                "payloadStatus": { "status": "SYNCING", "latestValidHash": null, "validationError": null },
                "payloadId": null,
            }));
        }
        for (name, hash) in [
            ("safe", state.safe_block_hash),
            ("finalized", state.finalized_block_hash),
        ] {
            if !hash.is_zero() && !self.is_ancestor(hash, state.head_block_hash) {
                return Err(fail(
                    codes::INVALID_FORKCHOICE_STATE,
                    format!(
                        "Invalid forkchoice state: {name} block {hash} is not an ancestor of head"
                    ),
                ));
            }
        }
        if !state.safe_block_hash.is_zero()
            && !state.finalized_block_hash.is_zero()
            && !self.is_ancestor(state.finalized_block_hash, state.safe_block_hash)
        {
            return Err(fail(
                codes::INVALID_FORKCHOICE_STATE,
                "Invalid forkchoice state: finalized is not an ancestor of safe",
            ));
        }
        self.set_head(state.head_block_hash);
        self.safe = state.safe_block_hash;
        self.finalized = state.finalized_block_hash;
        let head = state.head_block_hash;
        let valid = json!({ "status": "VALID", "latestValidHash": head, "validationError": null });
        let Some(attrs) = attributes else {
            return Ok(json!({ "payloadStatus": valid, "payloadId": null }));
        };
        let head_timestamp = self
            .blocks
            .get(&head)
            .map(|b| b.block.header.timestamp)
            .unwrap_or_default();
        if attrs.timestamp <= head_timestamp {
            // The forkchoice update above stays applied, as the spec requires.
            return Err(fail(
                codes::INVALID_PAYLOAD_ATTRIBUTES,
                format!(
                    "Invalid payload attributes: timestamp {} is not after head's {head_timestamp}",
                    attrs.timestamp
                ),
            ));
        }
        let mut preimage = head.to_vec();
        preimage.extend_from_slice(&serde_json::to_vec(&attrs).unwrap_or_default());
        let id = PayloadId::new(B64::from_slice(&keccak256(preimage)[..8]).0);
        self.builds.entry(id).or_insert(Build {
            parent: head,
            attributes: attrs,
            started: Instant::now(),
            frozen: None,
        });
        Ok(json!({ "payloadStatus": valid, "payloadId": id }))
    }

    fn assemble(
        &self,
        config: &MockConfig,
        parent: B256,
        attrs: &PayloadAttributes,
        with_pool: bool,
    ) -> Result<StoredBlock, RpcFailure> {
        let parent_block = self
            .blocks
            .get(&parent)
            .ok_or_else(|| fail(codes::UNKNOWN_PAYLOAD, "parent vanished"))?;
        let fork = config.fork_schedule.fork_at(attrs.timestamp);
        let withdrawals = attrs.withdrawals.clone().unwrap_or_default();
        let mut balances = parent_block.balances.clone();
        credit(&mut balances, &withdrawals);
        let transactions: Vec<TxEnvelope> = if with_pool {
            self.pool
                .iter()
                .filter_map(|(_, raw)| TxEnvelope::decode_2718_exact(raw.as_ref()).ok())
                .collect()
        } else {
            Vec::new()
        };
        let tx_hashes: Vec<u8> = transactions
            .iter()
            .flat_map(|t| t.tx_hash().to_vec())
            .collect();
        let receipts = synthesize_receipts(config, &transactions);
        let header = Header {
            parent_hash: parent,
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            beneficiary: attrs.suggested_fee_recipient,
            state_root: state_root(&balances),
            transactions_root: calculate_transaction_root(&transactions),
            receipts_root: keccak256(tx_hashes),
            logs_bloom: block_bloom(&receipts),
            difficulty: U256::ZERO,
            number: parent_block.block.header.number + 1,
            gas_limit: 30_000_000,
            gas_used: GAS_PER_TX * transactions.len() as u64,
            timestamp: attrs.timestamp,
            mix_hash: attrs.prev_randao,
            nonce: B64::ZERO,
            base_fee_per_gas: Some(BASE_FEE),
            withdrawals_root: fork
                .has_withdrawals()
                .then(|| calculate_withdrawals_root(&withdrawals)),
            blob_gas_used: fork.has_blob_fields().then_some(0),
            excess_blob_gas: fork.has_blob_fields().then_some(0),
            parent_beacon_block_root: attrs.parent_beacon_block_root,
            requests_hash: (fork == Fork::Prague).then_some(EMPTY_REQUESTS_HASH),
            ..Header::default()
        };
        let body = BlockBody {
            transactions,
            ommers: Vec::new(),
            withdrawals: fork
                .has_withdrawals()
                .then(|| Withdrawals::new(withdrawals)),
        };
        let hash = header.hash_slow();
        Ok(StoredBlock {
            hash,
            block: Block { header, body },
            balances,
            receipts,
        })
    }

    pub(super) fn get_payload(
        &mut self,
        config: &MockConfig,
        method: EngineMethod,
        params: &Value,
    ) -> Result<Value, RpcFailure> {
        let id: PayloadId = param(params, 0)?;
        let build = self
            .builds
            .get(&id)
            .cloned()
            .ok_or_else(|| fail(codes::UNKNOWN_PAYLOAD, "Unknown payload"))?;
        let fork = config.fork_schedule.fork_at(build.attributes.timestamp);
        if fork.get_payload() != method {
            return Err(fail(
                codes::UNSUPPORTED_FORK,
                format!(
                    "Unsupported fork: {fork:?} payload needs {}",
                    fork.get_payload()
                ),
            ));
        }
        let block = match (&build.frozen, config.profile.get_payload_early_block_within) {
            (Some(frozen), _) => frozen.clone(),
            (None, Some(window)) => {
                // Geth: getPayload hands out the best block so far and stops the build.
                let early = build.started.elapsed() < window;
                let block = self.assemble(config, build.parent, &build.attributes, !early)?;
                if let Some(b) = self.builds.get_mut(&id) {
                    b.frozen = Some(block.clone());
                }
                block
            }
            (None, None) => self.assemble(config, build.parent, &build.attributes, true)?,
        };
        let (payload, _) = ExecutionPayload::from_block_unchecked(block.hash, &block.block);
        let block_value = U256::from(GAS_PER_TX * block.block.body.transactions.len() as u64);
        match method {
            EngineMethod::GetPayloadV1 => to_json(&payload.as_v1()),
            EngineMethod::GetPayloadV2 => {
                let inner = match &payload {
                    ExecutionPayload::V1(p) => to_json(p)?,
                    other => to_json(&other.as_v2())?,
                };
                Ok(json!({ "executionPayload": inner, "blockValue": block_value }))
            }
            _ => {
                let mut envelope = json!({
                    "executionPayload": to_json(&payload.as_v3())?,
                    "blockValue": block_value,
                    "blobsBundle": { "commitments": [], "proofs": [], "blobs": [] },
                    "shouldOverrideBuilder": false,
                });
                if method == EngineMethod::GetPayloadV4 {
                    envelope["executionRequests"] = json!([]);
                }
                Ok(envelope)
            }
        }
    }

    pub(super) fn new_payload(
        &mut self,
        config: &MockConfig,
        method: EngineMethod,
        params: &Value,
        forced_status: Option<Value>,
    ) -> Result<Value, RpcFailure> {
        let (payload, sidecar) = match method {
            EngineMethod::NewPayloadV1 => (
                ExecutionPayload::V1(param::<ExecutionPayloadV1>(params, 0)?),
                ExecutionPayloadSidecar::none(),
            ),
            EngineMethod::NewPayloadV2 => {
                let input: ExecutionPayloadInputV2 = param(params, 0)?;
                (
                    ExecutionPayload::from(input),
                    ExecutionPayloadSidecar::none(),
                )
            }
            _ => {
                let payload: ExecutionPayloadV3 = param(params, 0)?;
                let hashes: Vec<B256> = param(params, 1)?;
                let root: B256 = param(params, 2)?;
                let cancun = CancunPayloadFields::new(root, hashes);
                let sidecar = if method == EngineMethod::NewPayloadV4 {
                    let requests: Vec<Bytes> = param(params, 3)?;
                    ExecutionPayloadSidecar::v4(
                        cancun,
                        PraguePayloadFields::new(Requests::new(requests)),
                    )
                } else {
                    ExecutionPayloadSidecar::v3(cancun)
                };
                (ExecutionPayload::V3(payload), sidecar)
            }
        };
        let fork = config.fork_schedule.fork_at(payload.timestamp());
        let accepted_here = fork.new_payload() == method
            || (method == EngineMethod::NewPayloadV2 && fork == Fork::Paris);
        if !accepted_here {
            return Err(fail(
                codes::UNSUPPORTED_FORK,
                format!(
                    "Unsupported fork: {fork:?} payload needs {}",
                    fork.new_payload()
                ),
            ));
        }
        if let Some(status) = forced_status {
            return Ok(status);
        }
        let claimed = payload.block_hash();
        let status = |s: &str, lvh: Option<B256>, err: Option<String>| json!({ "status": s, "latestValidHash": lvh, "validationError": err });
        if self.blocks.contains_key(&claimed) {
            return Ok(status("VALID", Some(claimed), None));
        }
        let block = match payload.try_into_block_with_sidecar::<TxEnvelope>(&sidecar) {
            Ok(b) => b,
            Err(e) => {
                return Ok(status(
                    "INVALID",
                    None,
                    Some(format!("malformed payload: {e}")),
                ));
            }
        };
        let actual = block.header.hash_slow();
        if actual != claimed {
            return Ok(status(
                "INVALID",
                None,
                Some(format!("blockhash mismatch: want {claimed}, got {actual}")),
            ));
        }
        let Some(parent) = self.blocks.get(&block.header.parent_hash) else {
            return Ok(status("SYNCING", None, None));
        };
        if block.header.timestamp <= parent.block.header.timestamp {
            return Ok(status(
                "INVALID",
                Some(parent.hash),
                Some("invalid timestamp: not after parent".into()),
            ));
        }
        if block.header.number != parent.block.header.number + 1 {
            return Ok(status(
                "INVALID",
                Some(parent.hash),
                Some("invalid block number".into()),
            ));
        }
        let mut balances = parent.balances.clone();
        credit(
            &mut balances,
            block
                .body
                .withdrawals
                .as_deref()
                .map_or(&[][..], Vec::as_slice),
        );
        if state_root(&balances) != block.header.state_root {
            return Ok(status(
                "INVALID",
                Some(parent.hash),
                Some("invalid state root".into()),
            ));
        }
        if block.header.gas_used != GAS_PER_TX * block.body.transactions.len() as u64 {
            return Ok(status(
                "INVALID",
                Some(parent.hash),
                Some("invalid gas used".into()),
            ));
        }
        let receipts = synthesize_receipts(config, &block.body.transactions);
        if block_bloom(&receipts) != block.header.logs_bloom {
            return Ok(status(
                "INVALID",
                Some(parent.hash),
                Some("invalid logs bloom".into()),
            ));
        }
        let included: Vec<B256> = block
            .body
            .transactions
            .iter()
            .map(|t| *t.tx_hash())
            .collect();
        self.pool.retain(|(h, _)| !included.contains(h));
        self.blocks.insert(
            actual,
            StoredBlock {
                hash: actual,
                block,
                balances,
                receipts,
            },
        );
        Ok(status("VALID", Some(actual), None))
    }
}
