//! The EngineActor's caches: built payloads (by id and block hash), blocks, receipts and the
//! transaction → block index, plus the post-commit receipt fetches in flight.

use std::{collections::HashMap, sync::Arc, time::Duration};

use alloy_primitives::B256;
use alloy_rpc_types_engine::PayloadId;
use alloy_rpc_types_eth::{Block, TransactionReceipt};
use engine_clients::BuiltPayload;
use engine_types::{CacheConfig, EngineError};

use crate::{
    BlockRef, CachesStatus, ForkchoiceSnapshot,
    cache::{CacheCounterSet, TtlCache},
    protocol::Reply,
};

/// Everything the EngineActor caches.
pub(crate) struct EngineCaches {
    pub(crate) payloads: TtlCache<PayloadId, BuiltPayload>,
    pub(crate) payload_ids: TtlCache<B256, PayloadId>,
    pub(crate) blocks: TtlCache<B256, (Arc<Block>, bool)>,
    pub(crate) receipts: TtlCache<B256, Arc<Vec<TransactionReceipt>>>,
    pub(crate) tx_blocks: TtlCache<B256, B256>,
    /// Post-commit receipt fetches in flight, with the reads waiting on them (one
    /// `eth_getBlockReceipts` per block, however many callers ask meanwhile).
    pub(crate) receipts_in_flight: HashMap<B256, Vec<Reply<Vec<TransactionReceipt>>>>,
    pub(crate) receipts_joined: u64,
}

impl EngineCaches {
    /// Empty caches sized by `config`, counting into `counters`.
    pub(crate) fn new(config: &CacheConfig, counters: &CacheCounterSet) -> Self {
        let ttl = Duration::from_millis(config.ttl_ms);
        Self {
            payloads: TtlCache::counting(
                config.payload_capacity,
                ttl,
                Arc::clone(&counters.payloads),
            ),
            payload_ids: TtlCache::new(config.payload_capacity, ttl),
            blocks: TtlCache::counting(config.block_capacity, ttl, Arc::clone(&counters.blocks)),
            receipts: TtlCache::counting(
                config.receipt_capacity,
                ttl,
                Arc::clone(&counters.receipts),
            ),
            tx_blocks: TtlCache::new(config.receipt_capacity.saturating_mul(64), ttl),
            receipts_in_flight: HashMap::new(),
            receipts_joined: 0,
        }
    }

    /// Counters for status.
    pub(crate) fn status(&self) -> CachesStatus {
        CachesStatus {
            payloads: self.payloads.stats(),
            blocks: self.blocks.stats(),
            receipts: self.receipts.stats(),
            receipts_joined_in_flight: self.receipts_joined,
        }
    }

    /// Cache a payload the writer built.
    pub(crate) fn cache_payload(&mut self, built: BuiltPayload) {
        self.payload_ids
            .insert(built.block_hash(), built.payload_id);
        self.payloads.insert(built.payload_id, built);
    }

    /// Cache a block; blocks at or below the finalized one never expire.
    pub(crate) fn cache_block(
        &mut self,
        block: Arc<Block>,
        full: bool,
        forkchoice: &ForkchoiceSnapshot,
    ) {
        let hash = block.header.hash;
        // Do not replace a full-transaction entry with a hashes-only one.
        if !full && self.blocks.peek(&hash).is_some_and(|(_, f)| *f) {
            return;
        }
        if !forkchoice.finalized.is_zero() && block.header.number <= forkchoice.finalized_number {
            self.blocks.insert_pinned(hash, (block, full));
        } else {
            self.blocks.insert(hash, (block, full));
        }
    }

    /// Cache a block's receipts and index its transactions.
    pub(crate) fn cache_receipts(
        &mut self,
        block_hash: B256,
        receipts: Arc<Vec<TransactionReceipt>>,
    ) {
        for r in receipts.iter() {
            self.tx_blocks.insert(r.transaction_hash, block_hash);
        }
        self.receipts.insert(block_hash, receipts);
    }

    /// Drop every expired entry; returns how many.
    pub(crate) fn sweep(&mut self) -> usize {
        self.payloads.sweep()
            + self.payload_ids.sweep()
            + self.blocks.sweep()
            + self.receipts.sweep()
            + self.tx_blocks.sweep()
    }

    /// Answer every read still waiting on a receipt fetch with `error`.
    pub(crate) fn fail_waiting(&mut self, error: &EngineError) {
        for waiter in self.receipts_in_flight.drain().flat_map(|(_, w)| w) {
            let _ = waiter.send(Err(error.clone()));
        }
    }
}

/// The hash `block` names, when the forkchoice knows it without asking the EL.
pub(crate) fn resolve(block: BlockRef, forkchoice: &ForkchoiceSnapshot) -> Option<B256> {
    let non_zero = |h: B256| (!h.is_zero()).then_some(h);
    match block {
        BlockRef::Hash(h) => Some(h),
        BlockRef::Latest => non_zero(forkchoice.head),
        BlockRef::Safe => non_zero(forkchoice.safe),
        BlockRef::Finalized => non_zero(forkchoice.finalized),
        BlockRef::Number(n) if n == forkchoice.head_number => non_zero(forkchoice.head),
        BlockRef::Number(n) if n == forkchoice.finalized_number => non_zero(forkchoice.finalized),
        BlockRef::Number(_) | BlockRef::Pending => None,
    }
}

/// A cached block as asked: full transactions or hashes.
pub(crate) fn block_view(block: &Block, full: bool) -> Block {
    let mut out = block.clone();
    if !full {
        out.transactions = std::mem::take(&mut out.transactions).into_hashes();
    }
    out
}
