//! The `eth_` reads (and `eth_sendRawTransaction`) of [`HttpExecutionClient`], on the public
//! port when one is configured.

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bytes, U64, U256};
use alloy_provider::Provider;
use alloy_rpc_types_eth::{Block, Filter, Log, TransactionReceipt};
use engine_types::EngineError;

use super::{HttpExecutionClient, wire::sync_state_from};
use crate::SyncState;

impl HttpExecutionClient {
    pub(super) async fn eth_block(
        &self,
        id: BlockId,
        full_transactions: bool,
    ) -> Result<Option<Block>, EngineError> {
        let method = match id {
            BlockId::Hash(_) => "eth_getBlockByHash",
            BlockId::Number(_) => "eth_getBlockByNumber",
        };
        self.call(method, self.options.timeouts.eth(), true, || async move {
            let eth = self.eth();
            let call = eth.get_block(id);
            if full_transactions {
                call.full().await
            } else {
                call.hashes().await
            }
        })
        .await
    }

    pub(super) async fn eth_logs(&self, filter: &Filter) -> Result<Vec<Log>, EngineError> {
        self.call(
            "eth_getLogs",
            self.options.timeouts.eth(),
            true,
            || async move { self.eth().get_logs(filter).await },
        )
        .await
    }

    pub(super) async fn eth_transaction_receipt(
        &self,
        hash: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        self.call(
            "eth_getTransactionReceipt",
            self.options.timeouts.eth(),
            true,
            || async move { self.eth().get_transaction_receipt(hash).await },
        )
        .await
    }

    pub(super) async fn eth_block_receipts(
        &self,
        block: BlockId,
    ) -> Result<Option<Vec<TransactionReceipt>>, EngineError> {
        let block = match block {
            BlockId::Hash(h) if self.quirks.block_receipts_need_number => {
                match self.eth_block(BlockId::Hash(h), false).await? {
                    Some(b) => BlockId::Number(BlockNumberOrTag::Number(b.header.number)),
                    None => return Ok(None),
                }
            }
            other => other,
        };
        self.call(
            "eth_getBlockReceipts",
            self.options.timeouts.eth(),
            true,
            || async move { self.eth().get_block_receipts(block).await },
        )
        .await
    }

    pub(super) async fn eth_sync_state(&self) -> Result<SyncState, EngineError> {
        let status = self
            .call(
                "eth_syncing",
                self.options.timeouts.eth(),
                true,
                || async move { self.eth().syncing().await },
            )
            .await?;
        Ok(sync_state_from(status))
    }

    pub(super) async fn eth_chain_id(&self) -> Result<u64, EngineError> {
        self.call(
            "eth_chainId",
            self.options.timeouts.eth(),
            true,
            || async move {
                self.eth()
                    .client()
                    .request_noparams::<U64>("eth_chainId")
                    .await
            },
        )
        .await
        .map(|id| id.to::<u64>())
    }

    pub(super) async fn eth_balance(
        &self,
        address: Address,
        block: BlockId,
    ) -> Result<U256, EngineError> {
        self.call(
            "eth_getBalance",
            self.options.timeouts.eth(),
            true,
            || async move { self.eth().get_balance(address).block_id(block).await },
        )
        .await
    }

    pub(super) async fn eth_send_raw_transaction(&self, raw: Bytes) -> Result<B256, EngineError> {
        // Not retried: a resend after a lost answer is harmless for the pool but would turn
        // "already known" into a confusing error.
        self.call(
            "eth_sendRawTransaction",
            self.options.timeouts.eth(),
            false,
            || {
                let raw = raw.clone();
                async move {
                    self.eth()
                        .client()
                        .request::<_, B256>("eth_sendRawTransaction", (raw,))
                        .await
                }
            },
        )
        .await
    }
}
