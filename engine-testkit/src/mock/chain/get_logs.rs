//! `eth_getLogs` on the chain: the filter's block range resolved against the canonical chain,
//! and the matching logs of the selected blocks' receipts.

use alloy_primitives::B256;
use engine_types::codes;
use serde_json::Value;

use super::{MockChain, RpcFailure, StoredBlock, fail, receipts_json};
use crate::mock::logs::{BlockBound, BlockSelection, LogFilter};

impl MockChain {
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
    pub(super) fn logs(&self, filter: &LogFilter) -> Result<Value, RpcFailure> {
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
}
