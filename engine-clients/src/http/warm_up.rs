//! The warm-up at connect for a client whose first newPayload is slow (the quirk
//! `slow_first_new_payload`, Reth): one block is built on the client's head and handed back with
//! newPayload, but never made canonical, so the first real slot does not pay for it.
//!
//! Reth sizes its cross-block execution cache on the first newPayload after it starts (4 GiB by
//! default, `--engine.cross-block-cache-size`): 2.2–7.7 s measured on a 2-core machine, then a
//! few milliseconds per block. A slot-bounded commit (2 s) would miss the first slot of every
//! Reth start. The warm-up block is a valid child of the head that no forkchoiceUpdated names:
//! the client keeps it as a side block, like any block of a losing fork.

use std::time::{Duration, Instant};

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use engine_types::{EngineError, require_valid};

use super::HttpExecutionClient;

impl HttpExecutionClient {
    /// Build a block on the client's head and send it back with newPayload (with the full
    /// newPayload deadline, not the slot's), leaving the head, safe and finalized blocks as the
    /// client reports them. Returns how long the newPayload took.
    pub(super) async fn warm_up(&self) -> Result<Duration, EngineError> {
        let tag_hash = |tag| async move {
            Ok::<_, EngineError>(
                self.eth_block(BlockId::Number(tag), false)
                    .await?
                    .map_or(B256::ZERO, |block| block.header.hash),
            )
        };
        let head = self
            .eth_block(BlockId::latest(), false)
            .await?
            .ok_or_else(|| EngineError::MissingInResponse {
                method: "eth_getBlockByNumber".into(),
                missing: "the latest block".into(),
            })?;
        let state = ForkchoiceState {
            head_block_hash: head.header.hash,
            safe_block_hash: tag_hash(BlockNumberOrTag::Safe).await?,
            finalized_block_hash: tag_hash(BlockNumberOrTag::Finalized).await?,
        };
        let timestamp = head.header.timestamp + 1;
        let fork = self.options.fork_schedule.fork_at(timestamp);
        let root = fork.has_blob_fields().then_some(B256::ZERO);
        let attributes = PayloadAttributes {
            timestamp,
            prev_randao: B256::ZERO,
            suggested_fee_recipient: Address::ZERO,
            withdrawals: fork.has_withdrawals().then(Vec::new),
            parent_beacon_block_root: root,
            ..PayloadAttributes::default()
        };
        let updated = self
            .engine_forkchoice_updated(state, Some(attributes))
            .await?;
        let payload_id = updated
            .payload_id
            .ok_or_else(|| EngineError::MissingInResponse {
                method: "engine_forkchoiceUpdated".into(),
                missing: "a payload id for the warm-up block".into(),
            })?;
        let built = self.engine_get_payload(payload_id, timestamp, root).await?;
        let started = Instant::now();
        let status = self.engine_new_payload(&built.execution_data).await?;
        require_valid(&status, built.block_hash())?;
        Ok(started.elapsed())
    }
}
