//! What comes of a transaction on the mock, which runs no EVM: synthesized receipts (the bridge
//! contract's `RequestPegOut` log or revert) and the block bloom over them.

use alloy_consensus::{TxEnvelope, transaction::SignerRecoverable};
use alloy_primitives::{Address, B256, Bloom, Log, logs_bloom};

use crate::{bridge, mock::MockConfig};

/// What the mock says came of a transaction, in place of executing it.
#[derive(Debug, Clone)]
pub(super) struct SynthesizedReceipt {
    pub(super) tx_hash: B256,
    pub(super) tx_type: u8,
    pub(super) from: Address,
    pub(super) to: Option<Address>,
    pub(super) success: bool,
    pub(super) logs: Vec<Log>,
}

/// Receipts of `transactions` without an EVM: every transaction succeeds without logs, except
/// calls to the bridge, which emit what `Bridge.sol` emits, or revert where it reverts (see
/// [`bridge::decode_request_peg_out`]). Value and gas are not charged; the mock's state is only
/// the withdrawal balances.
pub(super) fn synthesize_receipts(
    config: &MockConfig,
    transactions: &[TxEnvelope],
) -> Vec<SynthesizedReceipt> {
    transactions
        .iter()
        .map(|tx| {
            let from = tx.recover_signer().unwrap_or_default();
            let to = alloy_consensus::Transaction::to(tx);
            let (success, logs) = if to == Some(config.bridge_address) {
                let input = alloy_consensus::Transaction::input(tx);
                match bridge::decode_request_peg_out(input) {
                    Some(bitcoin_address) => {
                        let value = alloy_consensus::Transaction::value(tx);
                        let log = bridge::request_peg_out_log(
                            config.bridge_address,
                            from,
                            bitcoin_address,
                            value,
                        );
                        (true, vec![log])
                    }
                    None => (false, Vec::new()),
                }
            } else {
                (true, Vec::new())
            };
            SynthesizedReceipt {
                tx_hash: *tx.tx_hash(),
                tx_type: tx.tx_type() as u8,
                from,
                to,
                success,
                logs,
            }
        })
        .collect()
}

/// The block's bloom: the union of its receipts' blooms.
pub(super) fn block_bloom(receipts: &[SynthesizedReceipt]) -> Bloom {
    logs_bloom(receipts.iter().flat_map(|r| &r.logs))
}
