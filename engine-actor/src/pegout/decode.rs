//! [`PegOutRequested`]: the bridge contract's peg-out log, decoded from block receipts.

use alloy_primitives::{Address, B256, Bytes, U256, address};
use alloy_rpc_types_eth::TransactionReceipt;
use alloy_sol_types::{SolEvent, sol};
use serde::Serialize;

/// The bridge contract on Alys.
pub const DEFAULT_BRIDGE_ADDRESS: Address = address!("bBbBBBBbbBBBbbbBbbBbbbbBBbBbbbbBbBbbBBbB");

sol! {
    /// `Bridge.sol`'s peg-out event.
    event RequestPegOut(address indexed _evmAddress, bytes _bitcoinAddress, uint256 _value);
}

/// A `RequestPegOut` log of the bridge, typed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PegOutRequested {
    /// Block holding the transaction.
    pub block_hash: B256,
    /// Block number.
    pub block_number: u64,
    /// The transaction that burnt the wrapped BTC.
    pub tx_hash: B256,
    /// Position of the log in the block.
    pub log_index: u64,
    /// Who asked for the peg-out.
    pub evm_address: Address,
    /// Destination bitcoin address bytes as given to the contract.
    pub bitcoin_address: Bytes,
    /// Burnt amount in wei (1 sat = 1e10 wei).
    pub value_wei: U256,
}

/// Which logs count as peg-outs. The node's validators recompute peg-outs from receipts, so
/// the rule is consensus: every node of a fleet must apply the same one at the same height.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PegOutRule {
    /// The federation crate's rule, exactly (`Bridge::filter_pegouts`): a receipt whose `to` is
    /// the bridge, or none (a contract creation), and every log in it with `RequestPegOut`'s
    /// signature, whoever emitted it. Its hole: a contract creation whose constructor emits the
    /// event is a peg-out that burnt nothing, and a peg-out through another contract (a wallet,
    /// a forwarder) is missed.
    Legacy,
    /// Logs the bridge contract emitted, whatever the transaction called: only the bridge can
    /// emit them, and only when it received the value.
    BridgeEmitted,
}

/// The rule at each height: [`PegOutRule::Legacy`] until `bridge_emitted_from`, then
/// [`PegOutRule::BridgeEmitted`] (never, when `None`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PegOutRules {
    /// The bridge contract.
    pub bridge: Address,
    /// First block under [`PegOutRule::BridgeEmitted`].
    pub bridge_emitted_from: Option<u64>,
}

impl PegOutRules {
    /// The rule of block `number`.
    pub fn at(&self, number: u64) -> PegOutRule {
        match self.bridge_emitted_from {
            Some(from) if number >= from => PegOutRule::BridgeEmitted,
            _ => PegOutRule::Legacy,
        }
    }

    /// The peg-outs of block `number` whose receipts these are.
    pub fn peg_outs(&self, number: u64, receipts: &[TransactionReceipt]) -> Vec<PegOutRequested> {
        peg_outs_by_rule(self.at(number), self.bridge, receipts)
    }
}

/// Every `RequestPegOut` log emitted by `bridge` in `receipts` (other contracts' logs with the
/// same signature are ignored; undecodable logs are skipped with a warning):
/// [`PegOutRule::BridgeEmitted`].
pub fn peg_outs_in_receipts(
    bridge: Address,
    receipts: &[TransactionReceipt],
) -> Vec<PegOutRequested> {
    peg_outs_by_rule(PegOutRule::BridgeEmitted, bridge, receipts)
}

/// The peg-outs in `receipts` under `rule`.
pub fn peg_outs_by_rule(
    rule: PegOutRule,
    bridge: Address,
    receipts: &[TransactionReceipt],
) -> Vec<PegOutRequested> {
    let mut out = Vec::new();
    for receipt in receipts.iter().filter(|r| r.status()) {
        if rule == PegOutRule::Legacy && receipt.to.is_some_and(|to| to != bridge) {
            continue;
        }
        for log in receipt.inner.logs() {
            if log.topic0() != Some(&RequestPegOut::SIGNATURE_HASH)
                || (rule == PegOutRule::BridgeEmitted && log.address() != bridge)
            {
                continue;
            }
            match RequestPegOut::decode_log(&log.inner) {
                Ok(event) => out.push(PegOutRequested {
                    block_hash: log.block_hash.or(receipt.block_hash).unwrap_or_default(),
                    block_number: log
                        .block_number
                        .or(receipt.block_number)
                        .unwrap_or_default(),
                    tx_hash: receipt.transaction_hash,
                    log_index: log.log_index.unwrap_or_default(),
                    evm_address: event._evmAddress,
                    bitcoin_address: event.data._bitcoinAddress.clone(),
                    value_wei: event._value,
                }),
                Err(e) => {
                    tracing::warn!(tx = %receipt.transaction_hash, error = %e, "undecodable RequestPegOut log")
                }
            }
        }
    }
    out
}
