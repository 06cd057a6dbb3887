//! [`EngineHandle`]: typed async methods over the EngineActor, and [`Engine`], the legacy
//! facade with the old method names so the node's switch is a mechanical diff.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy_consensus::TxEnvelope;
use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_engine::{
    ExecutionData, ExecutionPayload, ExecutionPayloadBodiesV1, ForkchoiceState, PayloadId,
};
use alloy_rpc_types_eth::{Block, Filter, Log, TransactionReceipt};
use engine_clients::{BuiltPayload, SyncState};
use engine_types::{AddBalance, BuildPayloadRequest, EngineError};
use ractor::RpcReplyPort;
use tokio::sync::{broadcast, oneshot, watch};

use crate::{
    messages::{
        BlockRef, EngineEvent, EngineMsg, EngineRef, EngineStatus, PayloadRef, ReadRequest, Reply,
        RequestContext, WriteRequest,
    },
    metrics::EngineMetrics,
    persistence::ForkchoiceSnapshot,
};

/// How long a call waits for the EngineActor to come back while it is being restarted.
const RESTART_WAIT: Duration = Duration::from_secs(10);

/// The way callers talk to the engine. Cheap to clone; every method returns
/// `Result<_, EngineError>`, never a ractor error. Calls made while the EngineActor is being
/// restarted wait for the new one (up to 10 s).
#[derive(Clone)]
pub struct EngineHandle {
    engine: watch::Receiver<Option<EngineRef>>,
    events: broadcast::Sender<EngineEvent>,
    next_id: Arc<AtomicU64>,
    metrics: Arc<EngineMetrics>,
}

impl std::fmt::Debug for EngineHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineHandle").finish_non_exhaustive()
    }
}

fn stopped() -> EngineError {
    EngineError::Unavailable {
        reason: "the engine stopped before answering (restarting or shut down)".into(),
    }
}

impl EngineHandle {
    pub(crate) fn new(
        engine: watch::Receiver<Option<EngineRef>>,
        events: broadcast::Sender<EngineEvent>,
        metrics: Arc<EngineMetrics>,
    ) -> Self {
        Self {
            engine,
            events,
            next_id: Arc::new(AtomicU64::new(1)),
            metrics,
        }
    }

    fn count_error<T>(&self, result: Result<T, EngineError>) -> Result<T, EngineError> {
        if let Err(e) = &result {
            self.metrics.errors.with_label_values(&[e.kind()]).inc();
        }
        result
    }

    fn context(&self, op: &'static str) -> RequestContext {
        let correlation_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        // One span per message, named `engine.<op>` in the trace; it is the parent of the IO
        // done for the message, in whichever actor or task that happens.
        let span = tracing::info_span!(
            "engine.request",
            otel.name = format!("engine.{op}"),
            engine.op = op,
            engine.correlation_id = correlation_id,
        );
        RequestContext {
            correlation_id,
            span,
        }
    }

    async fn engine_ref(&self) -> Result<EngineRef, EngineError> {
        let mut rx = self.engine.clone();
        let wait = rx.wait_for(Option::is_some);
        match tokio::time::timeout(RESTART_WAIT, wait).await {
            Ok(Ok(engine)) => engine.clone().ok_or_else(stopped),
            _ => Err(EngineError::Unavailable {
                reason: "the engine actor is not running".into(),
            }),
        }
    }

    async fn ask_on<T>(
        engine: &EngineRef,
        make: impl FnOnce(RpcReplyPort<T>) -> EngineMsg,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        engine.cast(make(tx.into())).map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())
    }

    async fn ask<T>(
        &self,
        make: impl FnOnce(RpcReplyPort<T>) -> EngineMsg,
    ) -> Result<T, EngineError> {
        let engine = self.engine_ref().await?;
        Self::ask_on(&engine, make).await
    }

    /// Like [`Self::ask`], for calls that change nothing: when the EngineActor dies with the
    /// call in its mailbox, the call is asked again of its successor (once).
    async fn ask_idempotent<T>(
        &self,
        make: impl Fn(RpcReplyPort<T>) -> EngineMsg + Send + Sync,
    ) -> Result<T, EngineError> {
        let engine = self.engine_ref().await?;
        match Self::ask_on(&engine, &make).await {
            Err(_) => {
                let dead = engine.get_id();
                let mut rx = self.engine.clone();
                let successor = match tokio::time::timeout(
                    RESTART_WAIT,
                    rx.wait_for(|e| e.as_ref().is_some_and(|e| e.get_id() != dead)),
                )
                .await
                {
                    Ok(Ok(next)) => next.clone(),
                    _ => None,
                };
                match successor {
                    Some(next) => Self::ask_on(&next, &make).await,
                    None => Err(stopped()),
                }
            }
            answered => answered,
        }
    }

    async fn write<T>(
        &self,
        op: &'static str,
        make: impl FnOnce(Reply<T>) -> WriteRequest,
    ) -> Result<T, EngineError> {
        let ctx = self.context(op);
        let result = self
            .ask(|reply| EngineMsg::Write(ctx, make(reply)))
            .await
            .and_then(|r| r);
        self.count_error(result)
    }

    /// A read: asked again of a restarted EngineActor if the first one died holding it.
    async fn read<T>(
        &self,
        op: &'static str,
        make: impl Fn(Reply<T>) -> ReadRequest + Send + Sync,
    ) -> Result<T, EngineError> {
        let ctx = self.context(op);
        let result = self
            .ask_idempotent(|reply| EngineMsg::Read(ctx.clone(), make(reply)))
            .await
            .and_then(|r| r);
        self.count_error(result)
    }

    /// forkchoiceUpdated with attributes on `parent` (or the head) → getPayload. The payload
    /// is cached by id and block hash.
    pub async fn build_payload(
        &self,
        request: BuildPayloadRequest,
    ) -> Result<BuiltPayload, EngineError> {
        self.write("build_payload", |r| WriteRequest::BuildPayload(request, r))
            .await
    }

    /// Start building ahead of the slot: forkchoiceUpdated with the attributes `request` turns
    /// into (same parent, timestamp, peg-ins, fee recipient, beacon root). A later
    /// [`EngineHandle::build_payload`] with an identical request then only calls getPayload; a
    /// different request (e.g. peg-ins changed) builds afresh and drops the preparation.
    ///
    /// Prepare after the previous block is committed: a prepare before it would build on the
    /// old head.
    pub async fn prepare_payload(
        &self,
        request: BuildPayloadRequest,
    ) -> Result<PayloadId, EngineError> {
        self.write("prepare_payload", |r| {
            WriteRequest::PreparePayload(request, r)
        })
        .await
    }

    /// newPayload → VALID → forkchoiceUpdated(head = block) → persist. Anything but VALID
    /// leaves the state untouched and is a typed error carrying the EL's validation error and
    /// latest valid hash.
    pub async fn commit_payload(&self, payload: ExecutionData) -> Result<B256, EngineError> {
        self.write("commit_payload", |r| {
            WriteRequest::CommitPayload(Box::new(payload), r)
        })
        .await
    }

    /// newPayload only (the head does not move); Ok only for VALID.
    pub async fn validate_payload(&self, payload: ExecutionData) -> Result<(), EngineError> {
        self.write("validate_payload", |r| {
            WriteRequest::ValidatePayload(Box::new(payload), r)
        })
        .await
    }

    /// Make `hash` safe and finalized at the EL now. It must be known and an ancestor of (or
    /// equal to) the head, and not older than the current finalized block.
    pub async fn finalize(&self, hash: B256) -> Result<(), EngineError> {
        self.write("finalize_block", |r| WriteRequest::FinalizeBlock(hash, r))
            .await
    }

    /// Move the head back to an ancestor no older than the finalized block.
    pub async fn revert_to(&self, hash: B256) -> Result<(), EngineError> {
        self.write("revert_to_block", |r| WriteRequest::RevertToBlock(hash, r))
            .await
    }

    /// forkchoiceUpdated with exactly this state.
    pub async fn update_forkchoice(&self, state: ForkchoiceState) -> Result<(), EngineError> {
        self.write("update_forkchoice", |r| {
            WriteRequest::UpdateForkchoice(state, r)
        })
        .await
    }

    /// Adopt the legacy engine's forkchoice in one call.
    pub async fn initialize_from_legacy(
        &self,
        state: ForkchoiceState,
    ) -> Result<ForkchoiceSnapshot, EngineError> {
        self.write("initialize_from_legacy", |r| {
            WriteRequest::InitializeFromLegacy(state, None, r)
        })
        .await
    }

    /// Adopt another engine's forkchoice and its next peg-in withdrawal index in one call, so
    /// the blocks this engine builds next number their withdrawals where the other left off.
    pub async fn initialize_from_legacy_with_index(
        &self,
        state: ForkchoiceState,
        next_withdrawal_index: u64,
    ) -> Result<ForkchoiceSnapshot, EngineError> {
        self.write("initialize_from_legacy", |r| {
            WriteRequest::InitializeFromLegacy(state, Some(next_withdrawal_index), r)
        })
        .await
    }

    /// A block (cache first).
    pub async fn get_block(
        &self,
        block: impl Into<BlockRef>,
        full_transactions: bool,
    ) -> Result<Option<Block>, EngineError> {
        let block = block.into();
        self.read("get_block", |reply| ReadRequest::GetBlock {
            block,
            full_transactions,
            reply,
        })
        .await
    }

    /// A payload this engine built, by payload id or block hash (cache only).
    pub async fn get_payload(
        &self,
        payload: impl Into<PayloadRef>,
    ) -> Result<BuiltPayload, EngineError> {
        let payload = payload.into();
        self.read("get_payload", |r| ReadRequest::GetPayload(payload, r))
            .await
    }

    /// `eth_getLogs`.
    pub async fn get_logs(&self, filter: Filter) -> Result<Vec<Log>, EngineError> {
        self.read("get_logs", |r| {
            ReadRequest::GetLogs(Box::new(filter.clone()), r)
        })
        .await
    }

    /// A receipt (cache first).
    pub async fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        self.read("get_transaction_receipt", |r| {
            ReadRequest::GetTransactionReceipt(tx, r)
        })
        .await
    }

    /// Every receipt of a block, in one call (cache first).
    pub async fn get_receipts(&self, block: B256) -> Result<Vec<TransactionReceipt>, EngineError> {
        self.read("get_receipts", |r| ReadRequest::GetReceipts(block, r))
            .await
    }

    /// `eth_syncing` of the primary.
    pub async fn sync_status(&self) -> Result<SyncState, EngineError> {
        self.read("get_sync_status", ReadRequest::GetSyncStatus)
            .await
    }

    /// `engine_getPayloadBodiesByHashV1`.
    pub async fn payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        self.read("get_payload_bodies", |r| {
            ReadRequest::GetPayloadBodiesByHash(hashes.clone(), r)
        })
        .await
    }

    /// `eth_sendRawTransaction` on the primary.
    /// Not asked again if the EngineActor dies holding it: the transaction may have been sent.
    pub async fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, EngineError> {
        let ctx = self.context("send_raw_transaction");
        let result = self
            .ask(|reply| EngineMsg::Read(ctx, ReadRequest::SendRawTransaction(raw, reply)))
            .await
            .and_then(|r| r);
        self.count_error(result)
    }

    /// The forkchoice the engine last applied. While a (re)started EngineActor is still
    /// loading it, the answer waits for it.
    pub async fn forkchoice(&self) -> Result<ForkchoiceSnapshot, EngineError> {
        let deadline = tokio::time::Instant::now() + RESTART_WAIT;
        loop {
            let status = self.ask_idempotent(EngineMsg::GetStatus).await?;
            if status.initialized {
                return Ok(status.forkchoice);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(EngineError::Unavailable {
                    reason: format!(
                        "the engine has not loaded its forkchoice within {RESTART_WAIT:?} (is the execution client reachable?)"
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Sessions, caches, forkchoice (`initialized` says whether the forkchoice is loaded yet).
    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        self.ask_idempotent(EngineMsg::GetStatus).await
    }

    /// Events (peg-out requests) from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.events.subscribe()
    }
}

/// The old `Engine`'s surface on top of the actor: same names and meanings, alloy types, no
/// unwraps, and `set_finalized` reaching the EL at once.
#[derive(Debug, Clone)]
pub struct Engine {
    handle: EngineHandle,
    /// What the node called as `engine.api.…` directly.
    pub api: LegacyApi,
}

/// The Engine API calls the node made on `engine.api`.
#[derive(Debug, Clone)]
pub struct LegacyApi {
    handle: EngineHandle,
}

impl LegacyApi {
    /// `engine_getPayloadBodiesByHashV1`.
    pub async fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        self.handle.payload_bodies_by_hash(hashes).await
    }
}

impl Engine {
    /// The facade over `handle`.
    pub fn new(handle: EngineHandle) -> Self {
        Self {
            api: LegacyApi {
                handle: handle.clone(),
            },
            handle,
        }
    }

    /// The handle underneath.
    pub const fn handle(&self) -> &EngineHandle {
        &self.handle
    }

    /// Finalize `hash` now (the old engine only stored it until the next update).
    pub async fn set_finalized(&self, hash: B256) -> Result<(), EngineError> {
        self.handle.finalize(hash).await
    }

    /// Build a block at `timestamp` on `payload_head` (or the head) carrying `add_balances`.
    /// Returns the payload with its sidecar, ready for `commit_block`.
    pub async fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> Result<ExecutionData, EngineError> {
        let mut request = BuildPayloadRequest::new(timestamp.as_secs()).with_peg_ins(add_balances);
        request.parent = payload_head;
        Ok(self.handle.build_payload(request).await?.execution_data)
    }

    /// Commit a payload; returns its hash only if the EL found it VALID and made it head.
    pub async fn commit_block(&self, payload: ExecutionData) -> Result<B256, EngineError> {
        self.handle.commit_payload(payload).await
    }

    /// The block with full transactions (a cache hit right after a commit).
    pub async fn get_block_with_txs(&self, hash: &B256) -> Result<Option<Block>, EngineError> {
        self.handle.get_block(*hash, true).await
    }

    /// A transaction receipt.
    pub async fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        self.handle.get_transaction_receipt(tx).await
    }

    /// The block at `tag` as an execution payload (the node uses it for genesis).
    pub async fn get_payload_by_tag_from_engine(
        &self,
        tag: BlockNumberOrTag,
    ) -> Result<ExecutionPayload, EngineError> {
        let block_ref = match tag {
            BlockNumberOrTag::Number(n) => BlockRef::Number(n),
            BlockNumberOrTag::Earliest => BlockRef::Number(0),
            BlockNumberOrTag::Latest => BlockRef::Latest,
            BlockNumberOrTag::Pending => BlockRef::Pending,
            BlockNumberOrTag::Safe => BlockRef::Safe,
            BlockNumberOrTag::Finalized => BlockRef::Finalized,
        };
        let block = self
            .handle
            .get_block(block_ref, true)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: format!("block {tag}"),
            })?;
        let hash = block.header.hash;
        let consensus = block
            .into_consensus()
            .map_transactions(|tx| TxEnvelope::from(tx.into_inner()));
        Ok(ExecutionPayload::from_block_unchecked(hash, &consensus).0)
    }
}
