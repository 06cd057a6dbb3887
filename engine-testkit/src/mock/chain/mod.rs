//! The mock's in-memory chain and its JSON-RPC method handlers.

mod get_logs;
mod payload;
mod receipts;
mod render;

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
    Decodable2718,
    eip4895::{Withdrawal, Withdrawals},
    eip7685::EMPTY_REQUESTS_HASH,
};
use alloy_primitives::{Address, B256, Bytes, U256, keccak256};
use alloy_rpc_types_engine::{PayloadAttributes, PayloadId};
use engine_types::{EngineMethod, Fork, codes};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use super::{MockConfig, logs::LogFilter};
use receipts::SynthesizedReceipt;
use render::{block_json, body_json, receipts_json};

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

    /// Forget every block above `number`, as a client that crashed before persisting them:
    /// the head (and safe and finalized, if they were higher) become the canonical block at
    /// `number`, and builds in progress are gone.
    pub fn lose_blocks_above(&mut self, number: u64) {
        let Some(&keep) = self.canonical.get(number as usize) else {
            return;
        };
        self.canonical.truncate(number as usize + 1);
        self.blocks.retain(|_, b| b.block.header.number <= number);
        for tag in [&mut self.head, &mut self.safe, &mut self.finalized] {
            if !tag.is_zero() && !self.blocks.contains_key(tag) {
                *tag = keep;
            }
        }
        self.builds.clear();
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
}

fn capabilities(config: &MockConfig) -> Vec<String> {
    config.capabilities.clone().unwrap_or_else(|| {
        EngineMethod::ANNOUNCED
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect()
    })
}
