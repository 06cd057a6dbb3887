//! [`ExecutionClient`] for [`HttpExecutionClient`]: each method delegates to the Engine API
//! (`engine_api.rs`) or `eth_` (`eth.rs`) implementation.

use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, Bytes, U256};
use alloy_rpc_types_engine::{
    ExecutionData, ExecutionPayloadBodiesV1, ForkchoiceState, ForkchoiceUpdated, PayloadAttributes,
    PayloadId, PayloadStatus,
};
use alloy_rpc_types_eth::{Block, Filter, Log, TransactionReceipt};
use engine_types::{ClientIdentity, EngineError, ForkSchedule};

use super::HttpExecutionClient;
use crate::{BuiltPayload, Capabilities, ExecutionClient, Quirks, SyncState};

impl ExecutionClient for HttpExecutionClient {
    fn endpoint(&self) -> &str {
        &self.options.engine_url
    }

    fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    fn quirks(&self) -> Quirks {
        self.quirks
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn fork_schedule(&self) -> &ForkSchedule {
        &self.options.fork_schedule
    }

    async fn exchange_capabilities(&self) -> Result<Capabilities, EngineError> {
        self.engine_exchange_capabilities().await
    }

    async fn forkchoice_updated(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        self.engine_forkchoice_updated(state, attributes).await
    }

    async fn get_payload(
        &self,
        payload_id: PayloadId,
        timestamp: u64,
        parent_beacon_block_root: Option<B256>,
    ) -> Result<BuiltPayload, EngineError> {
        self.engine_get_payload(payload_id, timestamp, parent_beacon_block_root)
            .await
    }

    async fn new_payload(&self, data: &ExecutionData) -> Result<PayloadStatus, EngineError> {
        self.engine_new_payload(data).await
    }

    async fn payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        self.engine_payload_bodies_by_hash(hashes).await
    }

    async fn payload_bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        self.engine_payload_bodies_by_range(start, count).await
    }

    async fn block(
        &self,
        id: BlockId,
        full_transactions: bool,
    ) -> Result<Option<Block>, EngineError> {
        self.eth_block(id, full_transactions).await
    }

    async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, EngineError> {
        self.eth_logs(filter).await
    }

    async fn transaction_receipt(
        &self,
        hash: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        self.eth_transaction_receipt(hash).await
    }

    async fn block_receipts(
        &self,
        block: BlockId,
    ) -> Result<Option<Vec<TransactionReceipt>>, EngineError> {
        self.eth_block_receipts(block).await
    }

    async fn sync_state(&self) -> Result<SyncState, EngineError> {
        self.eth_sync_state().await
    }

    async fn chain_id(&self) -> Result<u64, EngineError> {
        self.eth_chain_id().await
    }

    async fn balance(&self, address: Address, block: BlockId) -> Result<U256, EngineError> {
        self.eth_balance(address, block).await
    }

    async fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, EngineError> {
        self.eth_send_raw_transaction(raw).await
    }
}
