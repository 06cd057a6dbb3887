//! [`PayloadStore`]: the payloads the engine built, validated or committed, by block hash, kept
//! to replay into an execution client that lacks them (see `catch_up.rs`). It belongs to the
//! supervisor, so a writer restart keeps it.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use alloy_primitives::B256;
use alloy_rpc_types_engine::ExecutionData;
use quick_cache::sync::Cache;

/// Payloads by block hash, bounded (the least recently used go first).
#[derive(Debug)]
pub(crate) struct PayloadStore {
    payloads: Cache<B256, Arc<ExecutionData>>,
    /// Blocks replayed from here (or fetched through here) into clients that lacked them.
    replayed: AtomicU64,
}

impl PayloadStore {
    /// A store for at most `capacity` payloads.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            payloads: Cache::new(capacity.max(1)),
            replayed: AtomicU64::new(0),
        }
    }

    /// Keep `data` (by its block hash).
    pub(crate) fn insert(&self, data: Arc<ExecutionData>) {
        self.payloads.insert(data.payload.block_hash(), data);
    }

    /// The payload of block `hash`, if kept.
    pub(crate) fn get(&self, hash: &B256) -> Option<Arc<ExecutionData>> {
        self.payloads.get(hash)
    }

    /// `n` more blocks were replayed into a client.
    pub(crate) fn note_replayed(&self, n: usize) {
        self.replayed.fetch_add(n as u64, Ordering::Relaxed);
    }

    /// Blocks replayed since the engine started.
    pub(crate) fn replayed(&self) -> u64 {
        self.replayed.load(Ordering::Relaxed)
    }
}
