//! The [`ExecutionClient`] trait and the data it returns.

use std::{collections::BTreeSet, future::Future};

use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_engine::{
    ExecutionData, ExecutionPayloadBodiesV1, ForkchoiceState, ForkchoiceUpdated, PayloadAttributes,
    PayloadId, PayloadStatus,
};
use alloy_rpc_types_eth::{Block, Filter, Log, TransactionReceipt};
use engine_types::{ClientIdentity, EngineError, EngineMethod, ForkSchedule};
use serde::{Deserialize, Serialize};

use crate::Quirks;

/// A payload the execution client built, ready to sign, gossip and commit.
#[derive(Debug, Clone)]
pub struct BuiltPayload {
    /// The id the EL gave the build.
    pub payload_id: PayloadId,
    /// Payload plus the fork-specific fields `newPayload` needs (beacon root, blob hashes,
    /// execution requests).
    pub execution_data: ExecutionData,
    /// Fees the block pays its recipient (wei).
    pub block_value: U256,
}

impl BuiltPayload {
    /// The block hash.
    pub fn block_hash(&self) -> B256 {
        self.execution_data.payload.block_hash()
    }

    /// The block number.
    pub fn block_number(&self) -> u64 {
        self.execution_data.payload.block_number()
    }

    /// The block timestamp.
    pub fn timestamp(&self) -> u64 {
        self.execution_data.payload.timestamp()
    }
}

/// The Engine API methods the execution client said it supports.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Capabilities {
    /// `None` when the client has no `engine_exchangeCapabilities` (then every method is
    /// tried and the client's own error decides).
    methods: Option<BTreeSet<String>>,
}

impl Capabilities {
    /// From the list `engine_exchangeCapabilities` returned.
    pub fn from_methods(methods: impl IntoIterator<Item = String>) -> Self {
        Self {
            methods: Some(methods.into_iter().collect()),
        }
    }

    /// Capabilities not known (the client did not answer `engine_exchangeCapabilities`).
    pub const fn unknown() -> Self {
        Self { methods: None }
    }

    /// Whether `method` may be called.
    pub fn supports(&self, method: EngineMethod) -> bool {
        self.methods
            .as_ref()
            .is_none_or(|m| m.contains(method.as_str()))
    }

    /// The method names, when known.
    pub fn methods(&self) -> Option<&BTreeSet<String>> {
        self.methods.as_ref()
    }

    /// An error unless `method` is supported.
    pub fn require(&self, method: EngineMethod) -> Result<(), EngineError> {
        if self.supports(method) {
            Ok(())
        } else {
            Err(EngineError::MethodNotSupported {
                method: method.as_str().to_owned(),
            })
        }
    }
}

/// Whether the execution client is synced, from `eth_syncing`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SyncState {
    /// `eth_syncing` is `false`, or reports `currentBlock >= highestBlock` (EthereumJS answers
    /// an object even when synced).
    Synced,
    /// Still catching up.
    Syncing {
        /// Block it started from.
        starting: u64,
        /// Block it has reached.
        current: u64,
        /// Highest block it knows of.
        highest: u64,
    },
}

impl SyncState {
    /// Progress in percent (100 when synced).
    pub fn progress_percent(&self) -> f64 {
        match *self {
            Self::Synced => 100.0,
            Self::Syncing {
                starting,
                current,
                highest,
            } => {
                let total = highest.saturating_sub(starting);
                if total == 0 {
                    return 100.0;
                }
                current.saturating_sub(starting) as f64 * 100.0 / total as f64
            }
        }
    }

    /// Whether the client is synced.
    pub const fn is_synced(&self) -> bool {
        matches!(self, Self::Synced)
    }
}

/// Everything the engine asks of an execution client: the Engine API (versions chosen from
/// the fork schedule and checked against the client's capabilities) and the `eth_` reads.
///
/// Errors are classified [`EngineError`]s. Only idempotent calls are retried by an
/// implementation; `forkchoice_updated` and `new_payload` are made exactly once.
pub trait ExecutionClient: Send + Sync + 'static {
    /// The Engine API URL, for logs and errors.
    fn endpoint(&self) -> &str;
    /// Who the client said it is.
    fn identity(&self) -> &ClientIdentity;
    /// The client's kind-specific behaviour.
    fn quirks(&self) -> Quirks;
    /// The methods the client supports.
    fn capabilities(&self) -> &Capabilities;
    /// The fork schedule choosing method versions.
    fn fork_schedule(&self) -> &ForkSchedule;

    /// `engine_exchangeCapabilities` with the methods this engine uses.
    fn exchange_capabilities(
        &self,
    ) -> impl Future<Output = Result<Capabilities, EngineError>> + Send;

    /// `engine_forkchoiceUpdatedV1/2/3`: the version follows the attributes' timestamp; without
    /// attributes, the newest scheduled fork's version the client supports.
    fn forkchoice_updated(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> impl Future<Output = Result<ForkchoiceUpdated, EngineError>> + Send;

    /// `engine_getPayloadV1..V4` for a build started with attributes of `timestamp`;
    /// `parent_beacon_block_root` (Cancun and later) goes into the returned sidecar.
    fn get_payload(
        &self,
        payload_id: PayloadId,
        timestamp: u64,
        parent_beacon_block_root: Option<B256>,
    ) -> impl Future<Output = Result<BuiltPayload, EngineError>> + Send;

    /// `engine_newPayloadV1..V4`, version by the payload's timestamp. Returns the raw status;
    /// see [`engine_types::require_valid`].
    fn new_payload(
        &self,
        data: &ExecutionData,
    ) -> impl Future<Output = Result<PayloadStatus, EngineError>> + Send;

    /// `engine_getPayloadBodiesByHashV1`.
    fn payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> impl Future<Output = Result<ExecutionPayloadBodiesV1, EngineError>> + Send;

    /// `engine_getPayloadBodiesByRangeV1`.
    fn payload_bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> impl Future<Output = Result<ExecutionPayloadBodiesV1, EngineError>> + Send;

    /// `eth_getBlockByHash` / `eth_getBlockByNumber`, with full transactions or hashes.
    fn block(
        &self,
        id: BlockId,
        full_transactions: bool,
    ) -> impl Future<Output = Result<Option<Block>, EngineError>> + Send;

    /// `eth_getLogs`.
    fn logs(&self, filter: &Filter) -> impl Future<Output = Result<Vec<Log>, EngineError>> + Send;

    /// `eth_getTransactionReceipt`.
    fn transaction_receipt(
        &self,
        hash: B256,
    ) -> impl Future<Output = Result<Option<TransactionReceipt>, EngineError>> + Send;

    /// `eth_getBlockReceipts` (by number where the client needs it).
    fn block_receipts(
        &self,
        block: BlockId,
    ) -> impl Future<Output = Result<Option<Vec<TransactionReceipt>>, EngineError>> + Send;

    /// `eth_syncing`.
    fn sync_state(&self) -> impl Future<Output = Result<SyncState, EngineError>> + Send;

    /// `eth_chainId`.
    fn chain_id(&self) -> impl Future<Output = Result<u64, EngineError>> + Send;

    /// `eth_getBalance`.
    fn balance(
        &self,
        address: Address,
        block: BlockId,
    ) -> impl Future<Output = Result<U256, EngineError>> + Send;

    /// `eth_sendRawTransaction`; returns the transaction hash.
    fn send_raw_transaction(
        &self,
        raw: Bytes,
    ) -> impl Future<Output = Result<B256, EngineError>> + Send;
}
