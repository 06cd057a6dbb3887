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

/// Every `RequestPegOut` log emitted by `bridge` in `receipts` (other contracts' logs with the
/// same signature are ignored; undecodable logs are skipped with a warning).
pub fn peg_outs_in_receipts(
    bridge: Address,
    receipts: &[TransactionReceipt],
) -> Vec<PegOutRequested> {
    let mut out = Vec::new();
    for receipt in receipts.iter().filter(|r| r.status()) {
        for log in receipt.inner.logs() {
            if log.address() != bridge || log.topic0() != Some(&RequestPegOut::SIGNATURE_HASH) {
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
