//! [`PegOutLog`]: the committed blocks whose receipts are still to be scanned for peg-outs, and
//! the peg-outs of the scanned ones, by block number. It belongs to the supervisor's wiring, so
//! an EngineActor restart loses nothing.
//!
//! Blocks are delivered in number order, and only up to the lowest block still to scan: a
//! block whose receipts could not be fetched holds the later ones back until its retry
//! succeeds, so a subscriber's "last block handled" only grows and resuming from it misses
//! nothing. A commit at a number the log already passed is a reorg: the replaced blocks are
//! dropped and subscribers go back to that number.

use std::{
    collections::BTreeMap,
    sync::{Mutex, MutexGuard, PoisonError},
};

use alloy_primitives::B256;
use tokio::sync::watch;

use super::PegOutRequested;

/// One scanned block.
#[derive(Debug, Clone)]
struct ScannedBlock {
    hash: B256,
    peg_outs: Vec<PegOutRequested>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Committed, not yet scanned: number → hash.
    pending: BTreeMap<u64, B256>,
    /// Scanned: number → the block's peg-outs.
    scanned: BTreeMap<u64, ScannedBlock>,
    /// How many reorgs the log has seen, and where the last one started.
    reorgs: u64,
    reorg_from: u64,
}

/// What a subscriber gets when it asks the log.
#[derive(Debug, Default)]
pub(crate) struct Delivery {
    /// Peg-outs of the deliverable blocks, in block order.
    pub(crate) peg_outs: Vec<PegOutRequested>,
    /// The first block number not delivered yet.
    pub(crate) next_block: u64,
    /// The reorg count the delivery took into account.
    pub(crate) reorgs: u64,
}

/// Blocks to scan and peg-outs found. The `watch` ticks on every change, so a subscriber waits
/// for news without being able to lag behind.
#[derive(Debug)]
pub(crate) struct PegOutLog {
    inner: Mutex<Inner>,
    /// Scanned blocks kept (the oldest go first).
    capacity: usize,
    changes: watch::Sender<u64>,
}

impl PegOutLog {
    /// A log keeping the last `capacity` scanned blocks.
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
            changes: watch::channel(0).0,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn changed(&self) {
        self.changes.send_modify(|n| *n += 1);
    }

    /// Block `number` (`hash`) was committed: scan it. Blocks the log holds at or above
    /// `number` for another chain are dropped (a reorg).
    pub(crate) fn committed(&self, number: u64, hash: B256) {
        {
            let mut inner = self.lock();
            let replaces = inner.scanned.get(&number).is_some_and(|b| b.hash != hash)
                || inner.pending.get(&number).is_some_and(|h| *h != hash)
                || inner.scanned.range(number + 1..).next().is_some()
                || inner.pending.range(number + 1..).next().is_some();
            if replaces {
                inner.scanned.split_off(&number);
                inner.pending.split_off(&number);
                inner.reorgs += 1;
                inner.reorg_from = number;
            }
            inner.pending.insert(number, hash);
        }
        self.changed();
    }

    /// The blocks still to scan, oldest first.
    pub(crate) fn pending(&self) -> Vec<(u64, B256)> {
        self.lock().pending.iter().map(|(n, h)| (*n, *h)).collect()
    }

    /// How many blocks are still to scan.
    pub(crate) fn pending_count(&self) -> usize {
        self.lock().pending.len()
    }

    /// Block `number` (`hash`) was scanned and holds `peg_outs`. The scan of a block a reorg
    /// replaced meanwhile is dropped.
    pub(crate) fn scanned(&self, number: u64, hash: B256, peg_outs: Vec<PegOutRequested>) {
        {
            let mut inner = self.lock();
            if inner.pending.get(&number) != Some(&hash) {
                return;
            }
            inner.pending.remove(&number);
            inner
                .scanned
                .insert(number, ScannedBlock { hash, peg_outs });
            while inner.scanned.len() > self.capacity {
                inner.scanned.pop_first();
            }
        }
        self.changed();
    }

    /// The peg-outs a subscriber at `next_block` (having seen `reorgs` reorgs) gets now: the
    /// scanned blocks from there up to the first block still to scan. A reorg it has not seen
    /// that started below `next_block` sends it back to where the reorg started.
    pub(crate) fn deliver(&self, next_block: u64, reorgs: u64) -> Delivery {
        let inner = self.lock();
        let mut from = next_block;
        if inner.reorgs != reorgs && inner.reorg_from < from {
            from = inner.reorg_from;
        }
        let frontier = inner.pending.keys().next().copied().unwrap_or(u64::MAX);
        let mut delivery = Delivery {
            peg_outs: Vec::new(),
            next_block: from,
            reorgs: inner.reorgs,
        };
        for (number, block) in inner.scanned.range(from..frontier) {
            delivery.peg_outs.extend(block.peg_outs.iter().cloned());
            delivery.next_block = number + 1;
        }
        delivery
    }

    /// How many reorgs the log has seen.
    pub(crate) fn reorgs(&self) -> u64 {
        self.lock().reorgs
    }

    /// Ticks on every change.
    pub(crate) fn watch(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peg_out(number: u64, byte: u8) -> PegOutRequested {
        PegOutRequested {
            block_hash: B256::repeat_byte(byte),
            block_number: number,
            tx_hash: B256::repeat_byte(byte),
            log_index: 0,
            evm_address: Default::default(),
            bitcoin_address: Default::default(),
            value_wei: Default::default(),
        }
    }

    #[test]
    fn a_block_still_to_scan_holds_later_ones_back() {
        let log = PegOutLog::new(16);
        for n in 1..=3 {
            log.committed(n, B256::repeat_byte(n as u8));
        }
        log.scanned(2, B256::repeat_byte(2), vec![peg_out(2, 2)]);
        log.scanned(3, B256::repeat_byte(3), vec![peg_out(3, 3)]);
        let d = log.deliver(1, 0);
        assert!(d.peg_outs.is_empty());
        assert_eq!(d.next_block, 1);
        log.scanned(1, B256::repeat_byte(1), vec![peg_out(1, 1)]);
        let d = log.deliver(1, 0);
        let numbers: Vec<u64> = d.peg_outs.iter().map(|p| p.block_number).collect();
        assert_eq!(numbers, [1, 2, 3]);
        assert_eq!(d.next_block, 4);
    }

    #[test]
    fn a_reorg_drops_the_replaced_blocks_and_sends_subscribers_back() {
        let log = PegOutLog::new(16);
        for n in 1..=3 {
            log.committed(n, B256::repeat_byte(n as u8));
            log.scanned(n, B256::repeat_byte(n as u8), vec![peg_out(n, n as u8)]);
        }
        let seen = log.deliver(1, 0);
        assert_eq!(seen.next_block, 4);
        // Block 2 is replaced by another block 2.
        log.committed(2, B256::repeat_byte(0x22));
        log.scanned(2, B256::repeat_byte(0x22), vec![peg_out(2, 0x22)]);
        let d = log.deliver(seen.next_block, seen.reorgs);
        assert_eq!(d.peg_outs.len(), 1);
        assert_eq!(d.peg_outs[0].block_hash, B256::repeat_byte(0x22));
        assert_eq!(d.next_block, 3);
        assert_eq!(log.deliver(d.next_block, d.reorgs).peg_outs.len(), 0);
    }

    #[test]
    fn a_stale_scan_of_a_replaced_block_is_dropped() {
        let log = PegOutLog::new(16);
        log.committed(1, B256::repeat_byte(1));
        log.committed(1, B256::repeat_byte(0x11));
        log.scanned(1, B256::repeat_byte(1), vec![peg_out(1, 1)]);
        assert_eq!(log.pending(), vec![(1, B256::repeat_byte(0x11))]);
        assert!(log.deliver(0, 0).peg_outs.is_empty());
    }
}
