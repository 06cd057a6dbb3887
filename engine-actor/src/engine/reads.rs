//! Reads: a cache hit is answered in the mailbox; a miss goes to a task that calls the
//! primary healthy session and answers the caller itself.

use std::{future::Future, sync::Arc};

use alloy_eips::BlockId;
use engine_clients::{ExecutionClient, HttpExecutionClient};
use engine_types::EngineError;
use tracing::Instrument;

use super::{
    EngineMsg, EngineRef, EngineState,
    caches::{block_view, resolve},
};
use crate::{
    BlockRef, PayloadRef,
    protocol::{ReadRequest, Reply, RequestContext},
};

impl EngineState {
    /// Answer `reply` with `call` on the primary healthy session, in a task of its own; with no
    /// healthy session, answer the error at once.
    fn offload<T, F, Fut>(&self, ctx: &RequestContext, reply: Reply<T>, call: F)
    where
        T: Send + 'static,
        F: FnOnce(Arc<HttpExecutionClient>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, EngineError>> + Send + 'static,
    {
        let Some(link) = self.args.sessions.healthy_links().into_iter().next() else {
            let _ = reply.send(Err(EngineError::Unavailable {
                reason: self.args.sessions.no_session_reason(),
            }));
            return;
        };
        tokio::spawn(
            async move {
                let _ = reply.send(link.call(call).await);
            }
            .instrument(ctx.span.clone()),
        );
    }

    pub(super) fn read(&mut self, myself: &EngineRef, ctx: RequestContext, request: ReadRequest) {
        match request {
            ReadRequest::GetBlock {
                block,
                full_transactions,
                reply,
            } => {
                if let Some(hash) = resolve(block, &self.forkchoice()) {
                    match self.caches.blocks.get(&hash) {
                        Some((cached, has_full)) if has_full || !full_transactions => {
                            let _ = reply.send(Ok(Some(block_view(&cached, full_transactions))));
                            return;
                        }
                        _ => {}
                    }
                }
                let id = block.to_block_id();
                // Immutable by hash: remember what we fetched.
                let cacheable = matches!(block, BlockRef::Hash(_));
                let me = myself.clone();
                self.offload(&ctx, reply, move |c| async move {
                    let found = c.block(id, full_transactions).await?;
                    if let (true, Some(b)) = (cacheable, &found) {
                        let _ = me.cast(EngineMsg::CacheBlock(
                            Box::new(b.clone()),
                            full_transactions,
                        ));
                    }
                    Ok(found)
                });
            }
            ReadRequest::GetPayload(payload, reply) => {
                let id = match payload {
                    PayloadRef::Id(id) => Some(id),
                    PayloadRef::BlockHash(hash) => self.caches.payload_ids.get(&hash),
                };
                let answer = id
                    .and_then(|id| self.caches.payloads.get(&id))
                    .ok_or_else(|| EngineError::NotFound {
                        what: format!(
                            "payload {payload:?} (not built by this engine, or expired from the cache)"
                        ),
                    });
                let _ = reply.send(answer);
            }
            ReadRequest::GetLogs(filter, reply) => {
                self.offload(&ctx, reply, move |c| async move { c.logs(&filter).await });
            }
            ReadRequest::GetTransactionReceipt(tx, reply) => {
                let cached = self
                    .caches
                    .tx_blocks
                    .get(&tx)
                    .and_then(|block| self.caches.receipts.get(&block))
                    .and_then(|receipts| {
                        receipts.iter().find(|r| r.transaction_hash == tx).cloned()
                    });
                if let Some(found) = cached {
                    let _ = reply.send(Ok(Some(found)));
                    return;
                }
                self.offload(&ctx, reply, move |c| async move {
                    c.transaction_receipt(tx).await
                });
            }
            ReadRequest::GetReceipts(block, reply) => {
                if let Some(waiters) = self.caches.receipts_in_flight.get_mut(&block) {
                    waiters.push(reply);
                    self.caches.receipts_joined += 1;
                    return;
                }
                if let Some(receipts) = self.caches.receipts.get(&block) {
                    let _ = reply.send(Ok(receipts.as_ref().clone()));
                    return;
                }
                let me = myself.clone();
                self.offload(&ctx, reply, move |c| async move {
                    let receipts = c
                        .block_receipts(BlockId::Hash(block.into()))
                        .await?
                        .ok_or_else(|| EngineError::NotFound {
                            what: format!("receipts of block {block}"),
                        })?;
                    let _ = me.cast(EngineMsg::CacheReceipts(block, Arc::new(receipts.clone())));
                    Ok(receipts)
                });
            }
            ReadRequest::GetSyncStatus(reply) => {
                self.offload(&ctx, reply, |c| async move { c.sync_state().await });
            }
            ReadRequest::GetPayloadBodiesByHash(hashes, reply) => {
                self.offload(&ctx, reply, move |c| async move {
                    c.payload_bodies_by_hash(hashes).await
                });
            }
            ReadRequest::SendRawTransaction(raw, reply) => {
                self.offload(&ctx, reply, move |c| async move {
                    c.send_raw_transaction(raw).await
                });
            }
        }
    }
}
