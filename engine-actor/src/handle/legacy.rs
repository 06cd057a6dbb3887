//! [`Engine`]: the legacy `Engine`'s surface on the actor (the old method names and meanings,
//! alloy types, no unwraps).

use std::time::Duration;

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayload, ExecutionPayloadBodiesV1};
use alloy_rpc_types_eth::{Block, TransactionReceipt};
use engine_types::{AddBalance, BuildPayloadRequest, EngineError};

use super::EngineHandle;
use crate::BlockRef;

/// The old `Engine`'s surface on top of the actor: same names and meanings, alloy types, no
/// unwraps, and `set_finalized` reaching the EL at once.
#[derive(Debug, Clone)]
pub struct Engine {
    handle: EngineHandle,
    /// What the node called as `engine.api.…` directly.
    pub api: LegacyApi,
}

/// The Engine API calls the node made on `engine.api`.
#[derive(Debug, Clone)]
pub struct LegacyApi {
    handle: EngineHandle,
}

impl LegacyApi {
    /// `engine_getPayloadBodiesByHashV1`.
    pub async fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        self.handle.payload_bodies_by_hash(hashes).await
    }
}

impl Engine {
    /// The facade over `handle`.
    pub fn new(handle: EngineHandle) -> Self {
        Self {
            api: LegacyApi {
                handle: handle.clone(),
            },
            handle,
        }
    }

    /// The handle underneath.
    pub const fn handle(&self) -> &EngineHandle {
        &self.handle
    }

    /// Finalize `hash` now (the old engine only stored it until the next update).
    pub async fn set_finalized(&self, hash: B256) -> Result<(), EngineError> {
        self.handle.finalize(hash).await
    }

    /// Build a block at `timestamp` on `payload_head` (or the head) carrying `add_balances`.
    /// Returns the payload with its sidecar, ready for `commit_block`.
    pub async fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> Result<ExecutionData, EngineError> {
        let mut request = BuildPayloadRequest::new(timestamp.as_secs()).with_peg_ins(add_balances);
        request.parent = payload_head;
        Ok(self.handle.build_payload(request).await?.execution_data)
    }

    /// Commit a payload; returns its hash only if the EL found it VALID and made it head.
    pub async fn commit_block(&self, payload: ExecutionData) -> Result<B256, EngineError> {
        self.handle.commit_payload(payload).await
    }

    /// The block with full transactions (a cache hit right after a commit).
    pub async fn get_block_with_txs(&self, hash: &B256) -> Result<Option<Block>, EngineError> {
        self.handle.get_block(*hash, true).await
    }

    /// A transaction receipt.
    pub async fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        self.handle.get_transaction_receipt(tx).await
    }

    /// The block at `tag` as an execution payload (the node uses it for genesis).
    pub async fn get_payload_by_tag_from_engine(
        &self,
        tag: BlockNumberOrTag,
    ) -> Result<ExecutionPayload, EngineError> {
        let block_ref = BlockRef::from(tag);
        let block = self
            .handle
            .get_block(block_ref, true)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: format!("block {tag}"),
            })?;
        engine_clients::execution_data_from_block(block)
            .map(|data| data.payload)
            .ok_or_else(|| EngineError::NotFound {
                what: format!("the payload of block {tag}: it carries Prague requests"),
            })
    }
}
