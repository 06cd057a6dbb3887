//! At connect: is the client on the configured chain (`eth_chainId`, the genesis block)?

use alloy_eips::BlockId;
use engine_types::EngineError;
use tracing::info;

use super::HttpExecutionClient;
use crate::ExecutionClient;

impl HttpExecutionClient {
    /// Refuse a client on another chain than `options.chain` says: a different chain id or
    /// genesis hash is [`EngineError::WrongChain`], so a node never builds on a wrong chain.
    /// Fields left unset are not checked.
    pub(super) async fn verify_chain(&self) -> Result<(), EngineError> {
        let expected = self.options.chain;
        let endpoint = || self.options.engine_url.clone();
        if let Some(want) = expected.chain_id {
            let found = self.chain_id().await?;
            if found != want {
                return Err(EngineError::WrongChain {
                    endpoint: endpoint(),
                    field: "chain id".to_owned(),
                    found: found.to_string(),
                    expected: want.to_string(),
                });
            }
        }
        if let Some(want) = expected.genesis_hash {
            let genesis = self
                .block(BlockId::number(0), false)
                .await?
                .ok_or_else(|| EngineError::WrongChain {
                    endpoint: endpoint(),
                    field: "genesis hash".to_owned(),
                    found: "no block 0".to_owned(),
                    expected: want.to_string(),
                })?;
            if genesis.header.hash != want {
                return Err(EngineError::WrongChain {
                    endpoint: endpoint(),
                    field: "genesis hash".to_owned(),
                    found: genesis.header.hash.to_string(),
                    expected: want.to_string(),
                });
            }
        }
        if expected.chain_id.is_some() || expected.genesis_hash.is_some() {
            info!(endpoint = %self.options.engine_url, chain_id = ?expected.chain_id, genesis = ?expected.genesis_hash, "the execution client is on the configured chain");
        }
        Ok(())
    }
}
