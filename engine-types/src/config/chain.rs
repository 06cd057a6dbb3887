//! [`ChainConfig`]: which chain the execution clients must be on, checked at connect.

use alloy_primitives::B256;
use serde::{Deserialize, Serialize};

/// The chain every execution client must serve. Each session checks it whenever it connects
/// (`eth_chainId`, the hash of block 0, the forks of `eth_config` where the client has it) and refuses a client on another chain with
/// `EngineError::WrongChain`; the session stays down and is tried again at the next health
/// poll. Unset fields are not checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ChainConfig {
    /// EIP-155 chain id the clients must report. Default: not checked.
    pub chain_id: Option<u64>,
    /// Hash of block 0. Default: not checked.
    pub genesis_hash: Option<B256>,
    /// Compare the client's current and next fork (`eth_config`, EIP-7910, where it has it)
    /// with `fork_schedule`. Default `true`.
    pub check_fork_schedule: bool,
}

impl Default for ChainConfig {
    fn default() -> Self {
        Self {
            chain_id: None,
            genesis_hash: None,
            check_fork_schedule: true,
        }
    }
}
