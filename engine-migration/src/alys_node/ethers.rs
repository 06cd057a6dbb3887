//! alloy's RPC blocks and receipts → the node's ethers-core types. Both sides implement the
//! Ethereum JSON-RPC shape (the old engine deserialised the EL's JSON straight into these
//! types), so the conversion goes through that JSON: every field the EL sent arrives, named
//! and encoded as the EL named and encoded it.

use alloy_rpc_types_eth::{Block, TransactionReceipt};
use engine_types::EngineError;
use serde::{Serialize, de::DeserializeOwned};

/// The node's block type (ethers-core).
pub type NodeBlock = ethers_core::types::Block<ethers_core::types::Transaction>;
/// The node's receipt type (ethers-core).
pub type NodeReceipt = ethers_core::types::TransactionReceipt;

fn through_json<T: Serialize, U: DeserializeOwned>(
    value: &T,
    what: &str,
) -> Result<U, EngineError> {
    let json = serde_json::to_value(value).map_err(|e| EngineError::Decode {
        method: format!("{what} → JSON"),
        message: e.to_string(),
    })?;
    serde_json::from_value(json).map_err(|e| EngineError::Decode {
        method: format!("JSON → ethers {what}"),
        message: e.to_string(),
    })
}

/// A block with full transactions as the node's `Block<Transaction>`.
pub fn block_to_ethers(block: &Block) -> Result<NodeBlock, EngineError> {
    through_json(block, "block")
}

/// A receipt as the node's `TransactionReceipt`.
pub fn receipt_to_ethers(receipt: &TransactionReceipt) -> Result<NodeReceipt, EngineError> {
    through_json(receipt, "receipt")
}
