//! [`EngineHandle`]: typed async methods over the engine. Writes go to the writer, reads to the
//! EngineActor, the forkchoice is read from the writer's `watch` channel (no message). Every
//! call has a deadline (`timeouts.request_ms`; builds and preparations also the slot), and
//! returns `Result<_, EngineError>`, never a ractor error.

mod legacy;

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayloadBodiesV1, ForkchoiceState, PayloadId};
use alloy_rpc_types_eth::{Block, Filter, Log, TransactionReceipt};
use engine_clients::{BuiltPayload, SyncState};
use engine_types::{BuildPayloadRequest, EngineError};
pub use legacy::{Engine, LegacyApi};
use ractor::{ActorRef, RpcReplyPort};
use tokio::sync::{broadcast, oneshot, watch};

use crate::{
    BlockRef, EngineEvent, EngineStatus, ForkchoiceSnapshot, ImportReport, PayloadRef,
    PegOutEvents,
    engine::EngineMsg,
    protocol::{ReadRequest, Reply, RequestContext, WriteRequest},
    wiring::Wiring,
    writer::WriterMsg,
};

/// The way callers talk to the engine. Cheap to clone.
///
/// Calls made while the writer or the EngineActor restarts wait for the new one (within the
/// call's deadline). A write whose actor dies before answering is an error, never a hang; a
/// read is asked again of the successor.
#[derive(Clone)]
pub struct EngineHandle {
    wiring: Arc<Wiring>,
    next_id: Arc<AtomicU64>,
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

/// The running actor in `slot`, waiting for one while it restarts; an error at once when the
/// tree stopped for good.
async fn current<M>(
    slot: &watch::Sender<Option<ActorRef<M>>>,
    wiring: &Wiring,
) -> Result<ActorRef<M>, EngineError>
where
    M: ractor::Message,
{
    let mut actor = slot.subscribe();
    let mut stopped_for_good = wiring.stopped.subscribe();
    tokio::select! {
        found = actor.wait_for(Option::is_some) => match found {
            Ok(actor) => actor.clone().ok_or_else(stopped),
            Err(_) => Err(stopped()),
        },
        why = stopped_for_good.wait_for(Option::is_some) => Err(EngineError::Unavailable {
            reason: why.ok().and_then(|w| w.clone()).unwrap_or_else(|| "the engine stopped".into()),
        }),
    }
}

async fn ask_on<M: ractor::Message, T>(
    actor: &ActorRef<M>,
    make: impl FnOnce(RpcReplyPort<T>) -> M,
) -> Result<T, EngineError> {
    let (tx, rx) = oneshot::channel();
    actor.cast(make(tx.into())).map_err(|_| stopped())?;
    rx.await.map_err(|_| stopped())
}

impl EngineHandle {
    pub(crate) fn new(wiring: Arc<Wiring>) -> Self {
        Self {
            wiring,
            next_id: Arc::new(AtomicU64::new(1)),
        }
    }

    fn count<T>(&self, op: &'static str, result: Result<T, EngineError>) -> Result<T, EngineError> {
        let metrics = &self.wiring.metrics;
        match &result {
            Err(e) => {
                metrics.errors.with_label_values(&[e.kind()]).inc();
                metrics.operation_failures.with_label_values(&[op]).inc();
                if matches!(e, EngineError::Timeout { .. }) {
                    metrics.operation_timeouts.with_label_values(&[op]).inc();
                }
            }
            Ok(_) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
                metrics.last_success.with_label_values(&[op]).set(now);
            }
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

    /// The deadline of an ordinary call.
    fn deadline(&self) -> Duration {
        self.wiring.config.timeouts.request()
    }

    /// The deadline of a producer-path call: also bounded by the slot.
    fn slot_deadline(&self) -> Duration {
        self.deadline().min(self.wiring.config.slot_duration())
    }

    async fn within<T>(
        &self,
        op: &'static str,
        deadline: Duration,
        call: impl Future<Output = Result<T, EngineError>>,
    ) -> Result<T, EngineError> {
        let result = tokio::time::timeout(deadline, call)
            .await
            .unwrap_or_else(|_| {
                Err(EngineError::Timeout {
                    method: format!("engine.{op}"),
                    after: deadline,
                })
            });
        self.count(op, result)
    }

    async fn write<T>(
        &self,
        op: &'static str,
        deadline: Duration,
        make: impl FnOnce(Reply<T>) -> WriteRequest,
    ) -> Result<T, EngineError> {
        let ctx = self.context(op);
        self.within(op, deadline, async {
            let writer = current(&self.wiring.writer, &self.wiring).await?;
            self.wiring.write_queued();
            let answer = ask_on(&writer, |reply| WriterMsg::Write(ctx, make(reply))).await;
            if answer.is_err() {
                // Never reached the writer, or died with it: not waiting in any queue.
                self.wiring.write_dequeued();
            }
            answer.map_err(|_| EngineError::Unavailable {
                reason: format!(
                    "the writer stopped before answering {op} (restarting or shut down); the write may or may not have reached the execution client, check the forkchoice"
                ),
            })?
        })
        .await
    }

    /// A read: asked again of a restarted EngineActor if the first one died holding it.
    async fn read<T>(
        &self,
        op: &'static str,
        make: impl Fn(Reply<T>) -> ReadRequest + Send + Sync,
    ) -> Result<T, EngineError> {
        let ctx = self.context(op);
        self.within(op, self.deadline(), async {
            self.ask_engine(|reply| EngineMsg::Read(ctx.clone(), make(reply)))
                .await?
        })
        .await
    }

    /// Ask the EngineActor; when it dies with the request in its mailbox, ask its successor
    /// (once). Only for requests that change nothing.
    async fn ask_engine<T>(
        &self,
        make: impl Fn(RpcReplyPort<T>) -> EngineMsg + Send + Sync,
    ) -> Result<T, EngineError> {
        let engine = current(&self.wiring.engine, &self.wiring).await?;
        match ask_on(&engine, &make).await {
            Err(_) => {
                let dead = engine.get_id();
                let mut rx = self.wiring.engine.subscribe();
                let successor = rx
                    .wait_for(|e| e.as_ref().is_some_and(|e| e.get_id() != dead))
                    .await
                    .ok()
                    .and_then(|e| e.clone())
                    .ok_or_else(stopped)?;
                ask_on(&successor, &make).await
            }
            answered => answered,
        }
    }

    /// forkchoiceUpdated with attributes on `parent` (or the head) → getPayload. The payload
    /// is cached by id and block hash. Bounded by the slot.
    pub async fn build_payload(
        &self,
        request: BuildPayloadRequest,
    ) -> Result<BuiltPayload, EngineError> {
        self.write("build_payload", self.slot_deadline(), |r| {
            WriteRequest::BuildPayload(request, r)
        })
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
        self.write("prepare_payload", self.slot_deadline(), |r| {
            WriteRequest::PreparePayload(request, r)
        })
        .await
    }

    /// newPayload → VALID → forkchoiceUpdated(head = block) → persist. Anything but VALID
    /// leaves the state untouched and is a typed error carrying the EL's validation error and
    /// latest valid hash.
    pub async fn commit_payload(&self, payload: ExecutionData) -> Result<B256, EngineError> {
        self.write("commit_payload", self.deadline(), |r| {
            WriteRequest::CommitPayload(Box::new(payload), r)
        })
        .await
    }

    /// newPayload only (the head does not move); Ok only for VALID.
    pub async fn validate_payload(&self, payload: ExecutionData) -> Result<(), EngineError> {
        self.write("validate_payload", self.deadline(), |r| {
            WriteRequest::ValidatePayload(Box::new(payload), r)
        })
        .await
    }

    /// Import a run of consecutive blocks (each the child of the one before, the first a child
    /// of a block the EL knows): newPayload for each in order, forkchoiceUpdated to the latest
    /// every `fcu_every` blocks (0 or 1: after each) and at the end. For catching up and node
    /// sync: one forkchoiceUpdated per batch instead of per block. The import stops at the
    /// first payload that fails; what was made head before it stays committed and the report
    /// says where and why it stopped. Imported blocks are not produced in this slot, so the
    /// calls get the clients' full configured timeouts, never the slot bound; the request's
    /// deadline grows with the run (the request deadline plus one newPayload deadline per
    /// block).
    pub async fn import_payloads(
        &self,
        payloads: Vec<ExecutionData>,
        fcu_every: usize,
    ) -> Result<ImportReport, EngineError> {
        let timeouts = self.wiring.config.timeouts;
        let per_block = Duration::from_millis(timeouts.new_payload_ms);
        let blocks = u32::try_from(payloads.len()).unwrap_or(u32::MAX);
        let deadline = self.deadline() + per_block.saturating_mul(blocks);
        self.write("import_payloads", deadline, |r| {
            WriteRequest::ImportPayloads(payloads, fcu_every, r)
        })
        .await
    }

    /// Make `hash` safe and finalized at the EL now. It must be known and an ancestor of (or
    /// equal to) the head, and not older than the current finalized block.
    pub async fn finalize(&self, hash: B256) -> Result<(), EngineError> {
        self.write("finalize_block", self.deadline(), |r| {
            WriteRequest::FinalizeBlock(hash, r)
        })
        .await
    }

    /// Move the head back to an ancestor no older than the finalized block.
    pub async fn revert_to(&self, hash: B256) -> Result<(), EngineError> {
        self.write("revert_to_block", self.deadline(), |r| {
            WriteRequest::RevertToBlock(hash, r)
        })
        .await
    }

    /// forkchoiceUpdated with exactly this state.
    pub async fn update_forkchoice(&self, state: ForkchoiceState) -> Result<(), EngineError> {
        self.write("update_forkchoice", self.deadline(), |r| {
            WriteRequest::UpdateForkchoice(state, r)
        })
        .await
    }

    /// Adopt the legacy engine's forkchoice in one call.
    pub async fn initialize_from_legacy(
        &self,
        state: ForkchoiceState,
    ) -> Result<ForkchoiceSnapshot, EngineError> {
        self.write("initialize_from_legacy", self.deadline(), |r| {
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
        self.write("initialize_from_legacy", self.deadline(), |r| {
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
        self.within("send_raw_transaction", self.deadline(), async {
            let engine = current(&self.wiring.engine, &self.wiring).await?;
            ask_on(&engine, |reply| {
                EngineMsg::Read(ctx, ReadRequest::SendRawTransaction(raw, reply))
            })
            .await?
        })
        .await
    }

    /// The forkchoice the engine last applied, without a message (the writer publishes it). Until
    /// the engine has synchronised with the EL, waits for it (within the call's deadline).
    pub async fn forkchoice(&self) -> Result<ForkchoiceSnapshot, EngineError> {
        if let Some(why) = self.wiring.stopped.borrow().clone() {
            return Err(EngineError::Unavailable { reason: why });
        }
        if let Some(snapshot) = *self.wiring.forkchoice.borrow() {
            return Ok(snapshot);
        }
        let mut rx = self.wiring.forkchoice.subscribe();
        let deadline = self.deadline();
        match tokio::time::timeout(deadline, rx.wait_for(Option::is_some)).await {
            Ok(Ok(snapshot)) => snapshot.ok_or_else(stopped),
            Ok(Err(_)) => Err(stopped()),
            Err(_) => Err(EngineError::Unavailable {
                reason: format!(
                    "the engine has not synchronised with the execution client within {deadline:?}: {}",
                    self.wiring
                        .writer_status
                        .borrow()
                        .init_error
                        .clone()
                        .unwrap_or_else(|| self.wiring.sessions.no_session_reason())
                ),
            }),
        }
    }

    /// Sessions, caches, forkchoice, the writer (`initialized` says whether the forkchoice is
    /// loaded yet).
    pub async fn status(&self) -> Result<EngineStatus, EngineError> {
        self.within(
            "status",
            self.deadline(),
            self.ask_engine(EngineMsg::Status),
        )
        .await
    }

    /// Events (peg-out requests) from now on, best effort: a subscriber more than 1024 events
    /// behind misses some ([`Self::peg_outs_from`] misses none).
    pub fn subscribe(&self) -> broadcast::Receiver<EngineEvent> {
        self.wiring.events.subscribe()
    }

    /// The peg-outs of block `hash` under the configured rule for its height
    /// (`bridge_emitted_peg_outs_from_block`), read from its receipts (cache first, else the
    /// EL): any block the EL has, at any time, after a restart too.
    pub async fn peg_outs(&self, hash: B256) -> Result<Vec<crate::PegOutRequested>, EngineError> {
        let block = self
            .get_block(hash, false)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: format!("block {hash} (for its peg-outs)"),
            })?;
        let receipts = self.get_receipts(hash).await?;
        let rules = crate::PegOutRules {
            bridge: self.wiring.config.bridge_address,
            bridge_emitted_from: self.wiring.config.bridge_emitted_peg_outs_from_block,
        };
        Ok(rules.peg_outs(block.header.number, &receipts))
    }

    /// Peg-outs of committed blocks numbered `from_block` or higher, in the order their
    /// blocks were scanned, then every later one as blocks commit. Nothing is missed while it
    /// is in the engine's log (the last 43 200 scanned blocks, a day of 2 s slots): a
    /// subscriber that lagged or restarted resumes from the last block it handled. A block
    /// whose receipts could not be fetched is retried until they are. After a reorg a block
    /// number can come again with another block hash (`PegOutRequested::block_hash`).
    pub fn peg_outs_from(&self, from_block: u64) -> PegOutEvents {
        PegOutEvents::new(Arc::clone(&self.wiring.peg_outs), from_block)
    }
}
