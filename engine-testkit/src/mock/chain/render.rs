//! JSON renderings of stored blocks: block bodies (`engine_getPayloadBodies*`), blocks
//! (`eth_getBlockBy*`) and receipts with their logs (`eth_getBlockReceipts` and the rest).

use alloy_consensus::transaction::SignerRecoverable;
use alloy_eips::Encodable2718;
use alloy_primitives::{Bytes, logs_bloom};
use serde_json::{Value, json};

use super::{BASE_FEE, GAS_PER_TX, StoredBlock, to_json};

pub(super) fn body_json(block: Option<&StoredBlock>) -> Value {
    block.map_or(Value::Null, |b| {
        let txs: Vec<Bytes> = b.block.body.transactions.iter().map(|t| Bytes::from(t.encoded_2718())).collect();
        json!({ "transactions": txs, "withdrawals": b.block.body.withdrawals.as_ref().map(|w| w.to_vec()) })
    })
}

pub(super) fn block_json(b: &StoredBlock, full: bool) -> Value {
    let header = &b.block.header;
    let transactions: Vec<Value> = b
        .block
        .body
        .transactions
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            if !full {
                return json!(tx.tx_hash());
            }
            let Ok(recovered) = tx.clone().try_into_recovered() else {
                return json!(tx.tx_hash());
            };
            let rpc_tx = alloy_rpc_types_eth::Transaction {
                inner: recovered,
                block_hash: Some(b.hash),
                block_number: Some(header.number),
                transaction_index: Some(i as u64),
                effective_gas_price: Some(u128::from(BASE_FEE)),
                block_timestamp: Some(header.timestamp),
            };
            serde_json::to_value(rpc_tx).unwrap_or(Value::Null)
        })
        .collect();
    let mut value = serde_json::to_value(header).unwrap_or(Value::Null);
    if let Some(obj) = value.as_object_mut() {
        obj.insert("hash".into(), json!(b.hash));
        obj.insert("totalDifficulty".into(), json!("0x0"));
        obj.insert(
            "size".into(),
            json!(format!("{:#x}", alloy_rlp::Encodable::length(&b.block))),
        );
        obj.insert("uncles".into(), json!([]));
        obj.insert("transactions".into(), Value::Array(transactions));
        if let Some(w) = &b.block.body.withdrawals {
            obj.insert("withdrawals".into(), json!(w.to_vec()));
        }
    }
    value
}

/// A block's receipts as `eth_getBlockReceipts` answers them. `eth_getTransactionReceipt` and
/// `eth_getLogs` take their answers from here, so the three always agree.
pub(super) fn receipts_json(b: &StoredBlock) -> Vec<Value> {
    let mut next_log_index = 0u64;
    b.receipts
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let logs: Vec<Value> = r
                .logs
                .iter()
                .map(|log| {
                    let rpc_log = alloy_rpc_types_eth::Log {
                        inner: log.clone(),
                        block_hash: Some(b.hash),
                        block_number: Some(b.block.header.number),
                        block_timestamp: Some(b.block.header.timestamp),
                        transaction_hash: Some(r.tx_hash),
                        transaction_index: Some(i as u64),
                        // Counted across the whole block, not per transaction.
                        log_index: Some(next_log_index),
                        removed: false,
                    };
                    next_log_index += 1;
                    to_json(&rpc_log).unwrap_or(Value::Null)
                })
                .collect();
            json!({
                "type": format!("{:#x}", r.tx_type),
                "status": if r.success { "0x1" } else { "0x0" },
                "cumulativeGasUsed": format!("{:#x}", GAS_PER_TX * (i as u64 + 1)),
                "logs": logs,
                "logsBloom": logs_bloom(&r.logs),
                "transactionHash": r.tx_hash,
                "transactionIndex": format!("{i:#x}"),
                "blockHash": b.hash,
                "blockNumber": format!("{:#x}", b.block.header.number),
                "gasUsed": format!("{GAS_PER_TX:#x}"),
                "effectiveGasPrice": format!("{BASE_FEE:#x}"),
                "from": r.from,
                "to": r.to,
                "contractAddress": null,
            })
        })
        .collect()
}
