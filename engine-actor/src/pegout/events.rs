//! [`PegOutEvents`]: peg-outs from a block number on, in block order, missing none while they
//! are in the engine's log — a subscriber that lags or restarts resumes from the block after
//! the last one it handled.

use std::{collections::VecDeque, sync::Arc};

use engine_types::EngineError;
use tokio::sync::watch;

use super::{PegOutLog, PegOutRequested};

/// A subscription to peg-outs (see [`EngineHandle::peg_outs_from`](crate::EngineHandle::peg_outs_from)).
#[derive(Debug)]
pub struct PegOutEvents {
    log: Arc<PegOutLog>,
    news: watch::Receiver<u64>,
    next_block: u64,
    reorgs: u64,
    ready: VecDeque<PegOutRequested>,
}

impl PegOutEvents {
    pub(crate) fn new(log: Arc<PegOutLog>, from_block: u64) -> Self {
        let news = log.watch();
        let reorgs = log.reorgs();
        Self {
            log,
            news,
            next_block: from_block,
            reorgs,
            ready: VecDeque::new(),
        }
    }

    /// The first block number whose peg-outs have not been handed out yet (where a restarted
    /// subscriber should resume).
    pub fn next_block(&self) -> u64 {
        self.ready
            .front()
            .map_or(self.next_block, |peg_out| peg_out.block_number)
    }

    /// The next peg-out. Waits for blocks still to be scanned; an error only when the engine
    /// has stopped for good.
    pub async fn next(&mut self) -> Result<PegOutRequested, EngineError> {
        loop {
            if let Some(peg_out) = self.try_next() {
                return Ok(peg_out);
            }
            self.news
                .changed()
                .await
                .map_err(|_| EngineError::Unavailable {
                    reason: "the engine stopped; no more peg-outs will come".into(),
                })?;
        }
    }

    /// The next peg-out if one is ready now, without waiting.
    pub fn try_next(&mut self) -> Option<PegOutRequested> {
        if self.ready.is_empty() {
            let delivery = self.log.deliver(self.next_block, self.reorgs);
            self.next_block = delivery.next_block;
            self.reorgs = delivery.reorgs;
            self.ready.extend(delivery.peg_outs);
        }
        self.ready.pop_front()
    }
}
