//! `EngineActor`: the engine's caches and its reads. It answers cache hits itself and hands
//! misses to a task that calls a session and replies to the caller directly, so its mailbox
//! never waits on the network and never behind a write (writes belong to the writer, which
//! sends it what to cache). It reads the forkchoice from the writer's `watch` channel.
//!
//! | file | what |
//! |---|---|
//! | `caches.rs` | [`EngineCaches`](caches::EngineCaches) and block-ref resolution |
//! | `reads.rs` | every read: cache first, else a session task |

mod caches;
mod reads;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::B256;
use alloy_rpc_types_eth::{Block, TransactionReceipt};
use engine_clients::{BuiltPayload, ExecutionClient};
use engine_types::{EngineConfig, EngineError};
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};
use tokio::sync::{broadcast, watch};
use tracing::{Instrument, info, warn};

use crate::{
    EngineEvent, EngineStatus, ForkchoiceSnapshot, WriterStatus,
    cache::CacheCounterSet,
    metrics::EngineMetrics,
    pegout::{PegOutLog, PegOutRules},
    protocol::{ReadRequest, RequestContext},
    session::SessionSet,
};
use caches::EngineCaches;

/// A reference to the EngineActor.
pub(crate) type EngineRef = ActorRef<EngineMsg>;

/// A block the writer committed, for the caches and the peg-out scan.
#[derive(Debug)]
pub(crate) struct CommittedBlock {
    pub(crate) hash: B256,
    pub(crate) number: u64,
    /// The rpc block decoded from the payload (`None` if it did not decode).
    pub(crate) block: Option<Arc<Block>>,
    /// RLP size, transactions and gas of the payload, for the payload metrics.
    pub(crate) size_bytes: usize,
    pub(crate) transactions: usize,
    pub(crate) gas_used: u64,
    /// The commit's span: the receipts fetch is part of the commit's trace.
    pub(crate) span: tracing::Span,
}

/// What the writer hands the EngineActor after a write.
#[derive(Debug)]
pub(crate) enum CacheUpdate {
    /// A payload was built: cache it by id and block hash.
    Built(Box<BuiltPayload>),
    /// A block was committed: cache it, fetch its receipts (peg-outs).
    Committed(CommittedBlock),
    /// A block became finalized: pin it.
    Finalized(B256),
}

/// Every message the EngineActor handles.
pub(crate) enum EngineMsg {
    /// A read.
    Read(RequestContext, ReadRequest),
    /// Status of sessions, caches, forkchoice, writer.
    Status(RpcReplyPort<EngineStatus>),
    /// Drop expired cache entries (sent by the CacheJanitor); replies with how many.
    SweepCaches(RpcReplyPort<usize>),
    /// From the writer, after a write.
    Written(CacheUpdate),
    /// A block fetched on a cache miss.
    CacheBlock(Box<Block>, bool),
    /// Receipts fetched on a read miss.
    CacheReceipts(B256, Arc<Vec<TransactionReceipt>>),
    /// The post-commit receipts fetch of block (number, hash) finished (peg-outs are read from
    /// it).
    ReceiptsFetched(u64, B256, Result<Arc<Vec<TransactionReceipt>>, EngineError>),
    /// Scan the committed blocks whose receipts could not be fetched yet.
    RetryPegOutScans,
    /// Test hook: panic inside the handler.
    #[cfg(feature = "test-hooks")]
    Crash,
}

/// Construction arguments of the EngineActor: what it reads and where it publishes.
pub(crate) struct EngineArgs {
    pub(crate) config: Arc<EngineConfig>,
    /// The sessions reads go to.
    pub(crate) sessions: SessionSet,
    /// The writer's forkchoice.
    pub(crate) forkchoice: watch::Receiver<Option<ForkchoiceSnapshot>>,
    /// The writer's status (for `status()`).
    pub(crate) writer_status: watch::Receiver<WriterStatus>,
    /// Writes sent and not yet taken up (for `status()`).
    pub(crate) queued_writes: Arc<AtomicUsize>,
    /// Where peg-out events go (best effort: a subscriber that lags misses them).
    pub(crate) events: broadcast::Sender<EngineEvent>,
    /// Blocks to scan for peg-outs and what was found (nothing lost across restarts).
    pub(crate) peg_outs: Arc<PegOutLog>,
    /// For the scan-failure counter.
    pub(crate) metrics: Arc<EngineMetrics>,
    /// The caches' counters (outlive the actor).
    pub(crate) counters: Arc<CacheCounterSet>,
}

/// First delay before a failed peg-out scan is tried again; doubled per failure up to
/// [`PEG_OUT_RETRY_MAX`].
const PEG_OUT_RETRY_FIRST: Duration = Duration::from_millis(200);
/// Longest delay between tries of a failed peg-out scan.
const PEG_OUT_RETRY_MAX: Duration = Duration::from_secs(10);

/// State of the EngineActor.
pub(crate) struct EngineState {
    args: EngineArgs,
    caches: EngineCaches,
    /// Delay of the retry of failed peg-out scans that is scheduled, if one is.
    peg_out_retry: Option<Duration>,
    /// Delay of the next retry to schedule.
    next_retry_delay: Duration,
}

/// The engine actor.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct EngineActor;

impl EngineState {
    fn forkchoice(&self) -> ForkchoiceSnapshot {
        self.args.forkchoice.borrow().unwrap_or_default()
    }

    fn status(&self) -> EngineStatus {
        let forkchoice = *self.args.forkchoice.borrow();
        let writer = self.args.writer_status.borrow().clone().with_running_time();
        let queued_writes = self.args.queued_writes.load(Ordering::Acquire);
        EngineStatus {
            forkchoice: forkchoice.unwrap_or_default(),
            initialized: forkchoice.is_some(),
            sessions: self.args.sessions.statuses(),
            caches: self.caches.status(),
            queued_writes,
            preparation: writer.preparation,
            writer,
        }
    }

    fn written(&mut self, myself: &EngineRef, update: CacheUpdate) {
        match update {
            CacheUpdate::Built(built) => self.caches.cache_payload(*built),
            CacheUpdate::Committed(committed) => {
                let forkchoice = self.forkchoice();
                if let Some(block) = committed.block {
                    self.caches.cache_block(block, true, &forkchoice);
                }
                let _in_commit = committed.span.enter();
                self.args
                    .peg_outs
                    .committed(committed.number, committed.hash);
                self.fetch_receipts(myself, committed.hash, committed.number);
            }
            CacheUpdate::Finalized(hash) => self.caches.blocks.pin(&hash),
        }
    }

    /// Peg-out detection: one receipts call per committed block, off the mailbox. Without a
    /// session the block stays pending and is retried.
    fn fetch_receipts(&mut self, myself: &EngineRef, hash: B256, number: u64) {
        if self.caches.receipts_in_flight.contains_key(&hash) {
            return;
        }
        let Some(link) = self.args.sessions.healthy_links().into_iter().next() else {
            warn!(%hash, "cannot fetch receipts of a committed block yet: no healthy session; retrying");
            self.args.metrics.peg_out_scan_failures.inc();
            self.schedule_peg_out_retry(myself);
            return;
        };
        self.caches.receipts_in_flight.entry(hash).or_default();
        let me = myself.clone();
        tokio::spawn(
            async move {
                let block = BlockId::Number(BlockNumberOrTag::Number(number));
                let result = link
                    .call(|c| async move {
                        c.block_receipts(block)
                            .await?
                            .ok_or_else(|| EngineError::NotFound {
                                what: format!("receipts of committed block #{number} {hash}"),
                            })
                    })
                    .await
                    .map(Arc::new);
                let _ = me.cast(EngineMsg::ReceiptsFetched(number, hash, result));
            }
            .in_current_span(),
        );
    }

    /// Try the failed scans again after the current delay (doubling it), unless a retry is
    /// already scheduled.
    fn schedule_peg_out_retry(&mut self, myself: &EngineRef) {
        if self.peg_out_retry.is_some() {
            return;
        }
        let delay = self.next_retry_delay;
        self.next_retry_delay = (delay * 2).min(PEG_OUT_RETRY_MAX);
        self.peg_out_retry = Some(delay);
        myself.send_after(delay, || EngineMsg::RetryPegOutScans);
    }

    /// Fetch the receipts of every committed block still to scan.
    fn retry_peg_out_scans(&mut self, myself: &EngineRef) {
        self.peg_out_retry = None;
        for (number, hash) in self.args.peg_outs.pending() {
            self.fetch_receipts(myself, hash, number);
        }
    }

    /// The peg-out rules of the configuration.
    fn peg_out_rules(&self) -> PegOutRules {
        PegOutRules {
            bridge: self.args.config.bridge_address,
            bridge_emitted_from: self.args.config.bridge_emitted_peg_outs_from_block,
        }
    }

    fn receipts_fetched(
        &mut self,
        myself: &EngineRef,
        number: u64,
        hash: B256,
        result: Result<Arc<Vec<TransactionReceipt>>, EngineError>,
    ) {
        let waiters = self
            .caches
            .receipts_in_flight
            .remove(&hash)
            .unwrap_or_default();
        match result {
            Ok(receipts) => {
                self.next_retry_delay = PEG_OUT_RETRY_FIRST;
                let peg_outs = self.peg_out_rules().peg_outs(number, &receipts);
                for event in &peg_outs {
                    info!(tx = %event.tx_hash, value_wei = %event.value_wei, "peg-out requested");
                    // No subscribers is fine: nobody asked for events.
                    let _ = self
                        .args
                        .events
                        .send(EngineEvent::PegOutRequested(event.clone()));
                }
                self.args.peg_outs.scanned(number, hash, peg_outs);
                for waiter in waiters {
                    let _ = waiter.send(Ok(receipts.as_ref().clone()));
                }
                self.caches.cache_receipts(hash, receipts);
            }
            Err(e) => {
                warn!(%hash, number, error = %e, "could not fetch receipts of a committed block; its peg-out scan is retried");
                self.args.metrics.peg_out_scan_failures.inc();
                self.schedule_peg_out_retry(myself);
                for waiter in waiters {
                    let _ = waiter.send(Err(e.clone()));
                }
            }
        }
    }
}

impl Actor for EngineActor {
    type Msg = EngineMsg;
    type State = EngineState;
    type Arguments = EngineArgs;

    async fn pre_start(
        &self,
        _myself: EngineRef,
        args: EngineArgs,
    ) -> Result<EngineState, ActorProcessingErr> {
        let caches = EngineCaches::new(&args.config.cache, &args.counters);
        Ok(EngineState {
            args,
            caches,
            peg_out_retry: None,
            next_retry_delay: PEG_OUT_RETRY_FIRST,
        })
    }

    async fn post_start(
        &self,
        myself: EngineRef,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        // Scans a predecessor did not finish.
        state.retry_peg_out_scans(&myself);
        Ok(())
    }

    async fn handle(
        &self,
        myself: EngineRef,
        msg: EngineMsg,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            EngineMsg::Read(ctx, request) => state.read(&myself, ctx, request),
            EngineMsg::Status(reply) => {
                let _ = reply.send(state.status());
            }
            EngineMsg::SweepCaches(reply) => {
                let _ = reply.send(state.caches.sweep());
            }
            EngineMsg::Written(update) => state.written(&myself, update),
            EngineMsg::CacheBlock(block, full) => {
                let forkchoice = state.forkchoice();
                state
                    .caches
                    .cache_block(Arc::new(*block), full, &forkchoice);
            }
            EngineMsg::CacheReceipts(hash, receipts) => state.caches.cache_receipts(hash, receipts),
            EngineMsg::ReceiptsFetched(number, hash, result) => {
                state.receipts_fetched(&myself, number, hash, result);
            }
            EngineMsg::RetryPegOutScans => state.retry_peg_out_scans(&myself),
            #[cfg(feature = "test-hooks")]
            EngineMsg::Crash => panic!("injected EngineActor crash"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: EngineRef,
        state: &mut EngineState,
    ) -> Result<(), ActorProcessingErr> {
        state.caches.fail_waiting(&EngineError::Unavailable {
            reason: "the engine stopped".into(),
        });
        Ok(())
    }
}
