//! The mock's in-memory chain and its JSON-RPC method handlers.

use std::{
    collections::{BTreeMap, HashMap},
    time::Instant,
};

use alloy_consensus::{
    Block, BlockBody, EMPTY_OMMER_ROOT_HASH, Header, TxEnvelope,
    proofs::{calculate_transaction_root, calculate_withdrawals_root},
    transaction::SignerRecoverable,
};
use alloy_eips::{
    Decodable2718, Encodable2718,
    eip4895::{Withdrawal, Withdrawals},
    eip7685::{EMPTY_REQUESTS_HASH, Requests},
};
use alloy_primitives::{Address, B64, B256, Bloom, Bytes, Log, U256, keccak256, logs_bloom};
use alloy_rpc_types_engine::{
    CancunPayloadFields, ExecutionPayload, ExecutionPayloadInputV2, ExecutionPayloadSidecar,
    ExecutionPayloadV1, ExecutionPayloadV3, ForkchoiceState, PayloadAttributes, PayloadId,
    PraguePayloadFields,
};
use engine_types::{EngineMethod, Fork, codes};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{
    MockConfig,
    logs::{BlockBound, BlockSelection, LogFilter},
};
use crate::bridge;

const GAS_PER_TX: u64 = 21_000;
const BASE_FEE: u64 = 7;
const MAX_BODIES: usize = 1024;

/// A JSON-RPC error answer.
#[derive(Debug)]
pub(crate) struct RpcFailure {
    pub(crate) code: i64,
    pub(crate) message: String,
}

fn fail(code: i64, message: impl Into<String>) -> RpcFailure {
    RpcFailure {
        code,
        message: message.into(),
    }
}

fn param<T: DeserializeOwned>(params: &Value, index: usize) -> Result<T, RpcFailure> {
    let value = params.get(index).cloned().unwrap_or(Value::Null);
    serde_json::from_value(value).map_err(|e| {
        fail(
            codes::INVALID_PARAMS,
            format!("invalid params[{index}]: {e}"),
        )
    })
}

fn to_json<T: serde::Serialize>(value: &T) -> Result<Value, RpcFailure> {
    serde_json::to_value(value).map_err(|e| fail(codes::INTERNAL_ERROR, e.to_string()))
}

/// A block the mock knows, with the balances after it and its transactions' receipts.
#[derive(Debug, Clone)]
struct StoredBlock {
    hash: B256,
    block: Block<TxEnvelope>,
    balances: BTreeMap<Address, U256>,
    receipts: Vec<SynthesizedReceipt>,
}

/// What the mock says came of a transaction, in place of executing it.
#[derive(Debug, Clone)]
struct SynthesizedReceipt {
    tx_hash: B256,
    tx_type: u8,
    from: Address,
    to: Option<Address>,
    success: bool,
    logs: Vec<Log>,
}

/// Receipts of `transactions` without an EVM: every transaction succeeds without logs, except
/// calls to the bridge, which emit what `Bridge.sol` emits, or revert where it reverts (see
/// [`bridge::decode_request_peg_out`]). Value and gas are not charged; the mock's state is only
/// the withdrawal balances.
fn synthesize_receipts(
    config: &MockConfig,
    transactions: &[TxEnvelope],
) -> Vec<SynthesizedReceipt> {
    transactions
        .iter()
        .map(|tx| {
            let from = tx.recover_signer().unwrap_or_default();
            let to = alloy_consensus::Transaction::to(tx);
            let (success, logs) = if to == Some(config.bridge_address) {
                let input = alloy_consensus::Transaction::input(tx);
                match bridge::decode_request_peg_out(input) {
                    Some(bitcoin_address) => {
                        let value = alloy_consensus::Transaction::value(tx);
                        let log = bridge::request_peg_out_log(
                            config.bridge_address,
                            from,
                            bitcoin_address,
                            value,
                        );
                        (true, vec![log])
                    }
                    None => (false, Vec::new()),
                }
            } else {
                (true, Vec::new())
            };
            SynthesizedReceipt {
                tx_hash: *tx.tx_hash(),
                tx_type: tx.tx_type() as u8,
                from,
                to,
                success,
                logs,
            }
        })
        .collect()
}

/// The block's bloom: the union of its receipts' blooms.
fn block_bloom(receipts: &[SynthesizedReceipt]) -> Bloom {
    logs_bloom(receipts.iter().flat_map(|r| &r.logs))
}

/// Summary of a block, for test assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockBlockInfo {
    /// Block hash (the real header hash).
    pub hash: B256,
    /// Parent hash.
    pub parent_hash: B256,
    /// Number.
    pub number: u64,
    /// Timestamp.
    pub timestamp: u64,
    /// Transactions included.
    pub transaction_count: usize,
    /// Withdrawals included.
    pub withdrawals: Vec<Withdrawal>,
}

#[derive(Debug, Clone)]
struct Build {
    parent: B256,
    attributes: PayloadAttributes,
    started: Instant,
    frozen: Option<StoredBlock>,
}

/// The mock's chain: blocks by hash, the canonical chain, forkchoice, builds and the pool.
#[derive(Debug)]
pub struct MockChain {
    blocks: HashMap<B256, StoredBlock>,
    canonical: Vec<B256>,
    head: B256,
    safe: B256,
    finalized: B256,
    builds: HashMap<PayloadId, Build>,
    pool: Vec<(B256, Bytes)>,
}

fn state_root(balances: &BTreeMap<Address, U256>) -> B256 {
    // Not a Merkle-Patricia root: the mock executes no EVM, so its "state" is the balances
    // map, committed to by a hash that changes whenever any balance does.
    let mut bytes = Vec::with_capacity(balances.len() * 52);
    for (address, balance) in balances {
        bytes.extend_from_slice(address.as_slice());
        bytes.extend_from_slice(&balance.to_be_bytes::<32>());
    }
    keccak256(bytes)
}

fn credit(balances: &mut BTreeMap<Address, U256>, withdrawals: &[Withdrawal]) {
    for w in withdrawals {
        let entry = balances.entry(w.address).or_default();
        *entry = entry.saturating_add(U256::from(w.amount) * U256::from(1_000_000_000u64));
    }
}

impl MockChain {
    /// A chain holding only the genesis block of `config`.
    pub(crate) fn new(config: &MockConfig) -> Self {
        let fork = config.fork_schedule.fork_at(config.genesis_timestamp);
        let balances: BTreeMap<Address, U256> = config.prefunded.iter().copied().collect();
        let header = Header {
            ommers_hash: EMPTY_OMMER_ROOT_HASH,
            state_root: state_root(&balances),
            transactions_root: calculate_transaction_root::<TxEnvelope>(&[]),
            receipts_root: calculate_transaction_root::<TxEnvelope>(&[]),
            gas_limit: 30_000_000,
            timestamp: config.genesis_timestamp,
            base_fee_per_gas: Some(BASE_FEE),
            withdrawals_root: fork
                .has_withdrawals()
                .then(|| calculate_withdrawals_root(&[])),
            blob_gas_used: fork.has_blob_fields().then_some(0),
            excess_blob_gas: fork.has_blob_fields().then_some(0),
            parent_beacon_block_root: fork.has_blob_fields().then_some(B256::ZERO),
            requests_hash: (fork == Fork::Prague).then_some(EMPTY_REQUESTS_HASH),
            ..Header::default()
        };
        let body = BlockBody {
            transactions: Vec::new(),
            ommers: Vec::new(),
            withdrawals: fork.has_withdrawals().then(|| Withdrawals::new(Vec::new())),
        };
        let hash = header.hash_slow();
        let genesis = StoredBlock {
            hash,
            block: Block { header, body },
            balances,
            receipts: Vec::new(),
        };
        Self {
            blocks: HashMap::from([(hash, genesis)]),
            canonical: vec![hash],
            head: hash,
            safe: B256::ZERO,
            finalized: B256::ZERO,
            builds: HashMap::new(),
            pool: Vec::new(),
        }
    }

    /// The genesis hash.
    pub fn genesis_hash(&self) -> B256 {
        self.canonical[0]
    }

    /// Current head hash.
    pub const fn head(&self) -> B256 {
        self.head
    }

    /// Current safe hash (zero if never set).
    pub const fn safe(&self) -> B256 {
        self.safe
    }

    /// Current finalized hash (zero if never set).
    pub const fn finalized(&self) -> B256 {
        self.finalized
    }

    /// Summary of a known block.
    pub fn block(&self, hash: B256) -> Option<MockBlockInfo> {
        self.blocks.get(&hash).map(|b| MockBlockInfo {
            hash: b.hash,
            parent_hash: b.block.header.parent_hash,
            number: b.block.header.number,
            timestamp: b.block.header.timestamp,
            transaction_count: b.block.body.transactions.len(),
            withdrawals: b
                .block
                .body
                .withdrawals
                .as_ref()
                .map(|w| w.to_vec())
                .unwrap_or_default(),
        })
    }

    /// Summary of the head block.
    pub fn head_block(&self) -> Option<MockBlockInfo> {
        self.block(self.head)
    }

    /// Balance of `address` after the head block.
    pub fn balance(&self, address: Address) -> U256 {
        self.blocks
            .get(&self.head)
            .and_then(|b| b.balances.get(&address).copied())
            .unwrap_or_default()
    }

    /// Number of blocks known (canonical or not).
    pub fn known_blocks(&self) -> usize {
        self.blocks.len()
    }

    /// Transactions waiting in the pool.
    pub fn pool_len(&self) -> usize {
        self.pool.len()
    }

    /// Whether `ancestor` is `descendant` or one of its ancestors.
    pub fn is_ancestor(&self, ancestor: B256, descendant: B256) -> bool {
        let Some(a) = self.blocks.get(&ancestor) else {
            return false;
        };
        self.ancestor_at(descendant, a.block.header.number) == Some(ancestor)
    }

    /// The hash at `number` on the chain ending in `tip`.
    fn ancestor_at(&self, tip: B256, number: u64) -> Option<B256> {
        let mut cursor = self.blocks.get(&tip)?;
        loop {
            let n = cursor.block.header.number;
            if n < number {
                return None;
            }
            // Once on the canonical chain, index instead of walking.
            if self.canonical.get(n as usize) == Some(&cursor.hash) {
                return self.canonical.get(number as usize).copied();
            }
            if n == number {
                return Some(cursor.hash);
            }
            cursor = self.blocks.get(&cursor.block.header.parent_hash)?;
        }
    }

    fn set_head(&mut self, head: B256) {
        let mut branch = Vec::new();
        let mut cursor = head;
        while let Some(b) = self.blocks.get(&cursor) {
            let n = b.block.header.number as usize;
            if self.canonical.get(n) == Some(&cursor) {
                self.canonical.truncate(n + 1);
                break;
            }
            branch.push(cursor);
            if n == 0 {
                self.canonical.clear();
                break;
            }
            cursor = b.block.header.parent_hash;
        }
        self.canonical.extend(branch.into_iter().rev());
        self.head = head;
    }

    fn canonical_block(&self, number: u64) -> Option<&StoredBlock> {
        self.canonical
            .get(number as usize)
            .and_then(|h| self.blocks.get(h))
    }

    fn resolve_tag(&self, tag: &Value) -> Result<Option<&StoredBlock>, RpcFailure> {
        let hash_of = |h: B256| {
            if h.is_zero() {
                None
            } else {
                self.blocks.get(&h)
            }
        };
        Ok(match tag.as_str() {
            Some("latest" | "pending") | None => self.blocks.get(&self.head),
            Some("safe") => hash_of(self.safe),
            Some("finalized") => hash_of(self.finalized),
            Some("earliest") => self.canonical_block(0),
            Some(s) if s.len() == 66 => {
                let hash: B256 = s
                    .parse()
                    .map_err(|_| fail(codes::INVALID_PARAMS, "bad block hash"))?;
                self.blocks.get(&hash)
            }
            Some(s) => {
                let n = u64::from_str_radix(s.trim_start_matches("0x"), 16)
                    .map_err(|_| fail(codes::INVALID_PARAMS, format!("bad block tag {s}")))?;
                self.canonical_block(n)
            }
        })
    }

    /// Answer one JSON-RPC call.
    pub(crate) fn dispatch(
        &mut self,
        config: &MockConfig,
        method: &str,
        params: &Value,
        forced_status: Option<Value>,
    ) -> Result<Value, RpcFailure> {
        match method {
            "engine_exchangeCapabilities" => Ok(json!(capabilities(config))),
            "engine_getClientVersionV1" => match &config.profile.client_version_v1 {
                Some((code, name, version, commit)) => Ok(
                    json!([{ "code": code, "name": name, "version": version, "commit": commit }]),
                ),
                None if config.profile.client_version_v1_error == codes::INVALID_PARAMS => {
                    Err(fail(
                        codes::INVALID_PARAMS,
                        "Invalid params: unknown variant, expected one of BU, EJ, EG, GE, GR, LH, LS, NM, NB, TE, TK, PM, RH",
                    ))
                }
                None => Err(fail(
                    config.profile.client_version_v1_error,
                    "the method engine_getClientVersionV1 does not exist/is not available",
                )),
            },
            "web3_clientVersion" => Ok(json!(config.profile.web3_client_version)),
            "engine_forkchoiceUpdatedV1" => {
                self.forkchoice_updated(config, 1, params, forced_status)
            }
            "engine_forkchoiceUpdatedV2" => {
                self.forkchoice_updated(config, 2, params, forced_status)
            }
            "engine_forkchoiceUpdatedV3" => {
                self.forkchoice_updated(config, 3, params, forced_status)
            }
            "engine_getPayloadV1" => self.get_payload(config, EngineMethod::GetPayloadV1, params),
            "engine_getPayloadV2" => self.get_payload(config, EngineMethod::GetPayloadV2, params),
            "engine_getPayloadV3" => self.get_payload(config, EngineMethod::GetPayloadV3, params),
            "engine_getPayloadV4" => self.get_payload(config, EngineMethod::GetPayloadV4, params),
            "engine_newPayloadV1" => {
                self.new_payload(config, EngineMethod::NewPayloadV1, params, forced_status)
            }
            "engine_newPayloadV2" => {
                self.new_payload(config, EngineMethod::NewPayloadV2, params, forced_status)
            }
            "engine_newPayloadV3" => {
                self.new_payload(config, EngineMethod::NewPayloadV3, params, forced_status)
            }
            "engine_newPayloadV4" => {
                self.new_payload(config, EngineMethod::NewPayloadV4, params, forced_status)
            }
            "engine_getPayloadBodiesByHashV1" => {
                let hashes: Vec<B256> = param(params, 0)?;
                if hashes.len() > MAX_BODIES {
                    return Err(fail(codes::TOO_LARGE_REQUEST, "Too large request"));
                }
                Ok(Value::Array(
                    hashes
                        .iter()
                        .map(|h| body_json(self.blocks.get(h)))
                        .collect(),
                ))
            }
            "engine_getPayloadBodiesByRangeV1" => {
                let start: alloy_primitives::U64 = param(params, 0)?;
                let count: alloy_primitives::U64 = param(params, 1)?;
                let (start, count) = (start.to::<u64>(), count.to::<u64>());
                if start == 0 || count == 0 {
                    return Err(fail(
                        codes::INVALID_PARAMS,
                        "start and count must be positive",
                    ));
                }
                if count as usize > MAX_BODIES {
                    return Err(fail(codes::TOO_LARGE_REQUEST, "Too large request"));
                }
                let head_number = self.canonical.len() as u64 - 1;
                let end = start.saturating_add(count).min(head_number + 1);
                Ok(Value::Array(
                    (start..end)
                        .map(|n| body_json(self.canonical_block(n)))
                        .collect(),
                ))
            }
            "eth_chainId" => Ok(json!(format!("{:#x}", config.chain_id))),
            "eth_blockNumber" => Ok(json!(format!("{:#x}", self.canonical.len() - 1))),
            "eth_syncing" => {
                if config.profile.syncing_object_when_synced {
                    let n = format!("{:#x}", self.canonical.len() - 1);
                    Ok(json!({ "startingBlock": "0x0", "currentBlock": n, "highestBlock": n }))
                } else {
                    Ok(json!(false))
                }
            }
            "eth_getBlockByNumber" => {
                let full: bool = param(params, 1)?;
                let block = self.resolve_tag(params.get(0).unwrap_or(&Value::Null))?;
                Ok(block.map_or(Value::Null, |b| block_json(b, full)))
            }
            "eth_getBlockByHash" => {
                let hash: B256 = param(params, 0)?;
                let full: bool = param(params, 1)?;
                Ok(self
                    .blocks
                    .get(&hash)
                    .map_or(Value::Null, |b| block_json(b, full)))
            }
            "eth_getBalance" => {
                let address: Address = param(params, 0)?;
                let block = self.resolve_tag(params.get(1).unwrap_or(&Value::Null))?;
                let balance = block
                    .and_then(|b| b.balances.get(&address).copied())
                    .unwrap_or_default();
                Ok(json!(balance))
            }
            "eth_getLogs" => {
                let filter = LogFilter::parse(params.get(0).unwrap_or(&Value::Null))?;
                self.logs(&filter)
            }
            "eth_getTransactionReceipt" => {
                let hash: B256 = param(params, 0)?;
                let found = self.canonical.iter().find_map(|h| {
                    let b = self.blocks.get(h)?;
                    let index = b.receipts.iter().position(|r| r.tx_hash == hash)?;
                    receipts_json(b).into_iter().nth(index)
                });
                Ok(found.unwrap_or(Value::Null))
            }
            "eth_getBlockReceipts" => {
                let tag = params.get(0).cloned().unwrap_or(Value::Null);
                let by_hash =
                    tag.as_str().is_some_and(|s| s.len() == 66) || tag.get("blockHash").is_some();
                if by_hash && config.profile.block_receipts_by_hash_null {
                    return Ok(Value::Null);
                }
                let tag = tag.get("blockHash").cloned().unwrap_or(tag);
                let block = self.resolve_tag(&tag)?;
                Ok(block.map_or(Value::Null, |b| Value::Array(receipts_json(b))))
            }
            "eth_sendRawTransaction" => {
                let raw: Bytes = param(params, 0)?;
                let tx = TxEnvelope::decode_2718_exact(raw.as_ref()).map_err(|e| {
                    fail(codes::INVALID_PARAMS, format!("invalid transaction: {e}"))
                })?;
                tx.recover_signer()
                    .map_err(|e| fail(codes::INVALID_PARAMS, format!("invalid signature: {e}")))?;
                let hash = *tx.tx_hash();
                if !self.pool.iter().any(|(h, _)| *h == hash) {
                    self.pool.push((hash, raw));
                }
                Ok(json!(hash))
            }
            other => Err(fail(
                codes::METHOD_NOT_FOUND,
                format!("the method {other} does not exist/is not available"),
            )),
        }
    }

    /// The block number a range bound stands for on the canonical chain.
    fn bound_number(&self, bound: BlockBound) -> Result<u64, RpcFailure> {
        let number_of = |hash: B256, name: &str| {
            self.blocks
                .get(&hash)
                .filter(|_| !hash.is_zero())
                .map(|b| b.block.header.number)
                .ok_or_else(|| fail(codes::SERVER_ERROR, format!("{name} block not found")))
        };
        match bound {
            BlockBound::Latest => Ok(self.canonical.len() as u64 - 1),
            BlockBound::Safe => number_of(self.safe, "safe"),
            BlockBound::Finalized => number_of(self.finalized, "finalized"),
            BlockBound::Number(n) => Ok(n),
        }
    }

    /// `eth_getLogs`: the matching logs of the selected blocks' receipts, in chain order.
    fn logs(&self, filter: &LogFilter) -> Result<Value, RpcFailure> {
        let blocks: Vec<&StoredBlock> = match filter.blocks {
            BlockSelection::Hash(hash) => vec![
                self.blocks
                    .get(&hash)
                    .ok_or_else(|| fail(codes::SERVER_ERROR, "unknown block"))?,
            ],
            BlockSelection::Range { from, to } => {
                let (from, to) = (self.bound_number(from)?, self.bound_number(to)?);
                if from > to {
                    return Err(fail(codes::INVALID_PARAMS, "invalid block range params"));
                }
                let head = self.canonical.len() as u64 - 1;
                (from..=to.min(head))
                    .filter_map(|n| self.canonical_block(n))
                    .collect()
            }
        };
        let mut matched = Vec::new();
        for b in blocks {
            // Only receipts with logs are rendered: most blocks have none.
            if !b
                .receipts
                .iter()
                .any(|r| r.logs.iter().any(|l| filter.matches(l)))
            {
                continue;
            }
            let receipts = receipts_json(b);
            for (receipt, rendered) in b.receipts.iter().zip(&receipts) {
                let Some(logs) = rendered["logs"].as_array() else {
                    continue;
                };
                matched.extend(
                    receipt
                        .logs
                        .iter()
                        .zip(logs)
                        .filter(|(log, _)| filter.matches(log))
                        .map(|(_, rendered)| rendered.clone()),
                );
            }
        }
        Ok(Value::Array(matched))
    }

    fn forkchoice_updated(
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

    fn get_payload(
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

    fn new_payload(
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

fn capabilities(config: &MockConfig) -> Vec<String> {
    config.capabilities.clone().unwrap_or_else(|| {
        EngineMethod::ANNOUNCED
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect()
    })
}

fn body_json(block: Option<&StoredBlock>) -> Value {
    block.map_or(Value::Null, |b| {
        let txs: Vec<Bytes> = b.block.body.transactions.iter().map(|t| Bytes::from(t.encoded_2718())).collect();
        json!({ "transactions": txs, "withdrawals": b.block.body.withdrawals.as_ref().map(|w| w.to_vec()) })
    })
}

fn block_json(b: &StoredBlock, full: bool) -> Value {
    let header = &b.block.header;
    let transactions: Vec<Value> = b
        .block
        .body
        .transactions
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            if !full {
                return json!(tx.tx_hash());
            }
            let Ok(recovered) = tx.clone().try_into_recovered() else {
                return json!(tx.tx_hash());
            };
            let rpc_tx = alloy_rpc_types_eth::Transaction {
                inner: recovered,
                block_hash: Some(b.hash),
                block_number: Some(header.number),
                transaction_index: Some(i as u64),
                effective_gas_price: Some(u128::from(BASE_FEE)),
                block_timestamp: Some(header.timestamp),
            };
            serde_json::to_value(rpc_tx).unwrap_or(Value::Null)
        })
        .collect();
    let mut value = serde_json::to_value(header).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("hash".into(), json!(b.hash));
        obj.insert("totalDifficulty".into(), json!("0x0"));
        obj.insert(
            "size".into(),
            json!(format!("{:#x}", alloy_rlp::Encodable::length(&b.block))),
        );
        obj.insert("uncles".into(), json!([]));
        obj.insert("transactions".into(), Value::Array(transactions));
        if let Some(w) = &b.block.body.withdrawals {
            obj.insert("withdrawals".into(), json!(w.to_vec()));
        }
    }
    value
}

/// A block's receipts as `eth_getBlockReceipts` answers them. `eth_getTransactionReceipt` and
/// `eth_getLogs` take their answers from here, so the three always agree.
fn receipts_json(b: &StoredBlock) -> Vec<Value> {
    let mut next_log_index = 0u64;
    b.receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let logs: Vec<Value> = r
                .logs
                .iter()
                .map(|log| {
                    let rpc_log = alloy_rpc_types_eth::Log {
                        inner: log.clone(),
                        block_hash: Some(b.hash),
                        block_number: Some(b.block.header.number),
                        block_timestamp: Some(b.block.header.timestamp),
                        transaction_hash: Some(r.tx_hash),
                        transaction_index: Some(i as u64),
                        // Counted across the whole block, not per transaction.
                        log_index: Some(next_log_index),
                        removed: false,
                    };
                    next_log_index += 1;
                    to_json(&rpc_log).unwrap_or(Value::Null)
                })
                .collect();
            json!({
                "type": format!("{:#x}", r.tx_type),
                "status": if r.success { "0x1" } else { "0x0" },
                "cumulativeGasUsed": format!("{:#x}", GAS_PER_TX * (i as u64 + 1)),
                "logs": logs,
                "logsBloom": logs_bloom(&r.logs),
                "transactionHash": r.tx_hash,
                "transactionIndex": format!("{i:#x}"),
                "blockHash": b.hash,
                "blockNumber": format!("{:#x}", b.block.header.number),
                "gasUsed": format!("{GAS_PER_TX:#x}"),
                "effectiveGasPrice": format!("{BASE_FEE:#x}"),
                "from": r.from,
                "to": r.to,
                "contractAddress": null,
            })
        })
        .collect()
}
