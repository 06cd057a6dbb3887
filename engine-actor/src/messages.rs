//! The message protocol of the EngineActor.

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayloadBodiesV1, ForkchoiceState, PayloadId};
use alloy_rpc_types_eth::{Block, Filter, Log, TransactionReceipt};
use engine_clients::{BuiltPayload, SyncState};
use engine_types::{BuildPayloadRequest, EngineError};
use ractor::{ActorRef, RpcReplyPort};
use serde::Serialize;

use crate::{
    cache::CacheStats, pegout::PegOutRequested, persistence::ForkchoiceSnapshot,
    session::SessionStatus,
};

/// A reference to the EngineActor.
pub type EngineRef = ActorRef<EngineMsg>;

/// Reply port of a fallible request.
pub type Reply<T> = RpcReplyPort<Result<T, EngineError>>;

/// Carried by every request: a correlation id and the caller's span, so the IO done for a
/// message is recorded under the caller's trace.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Unique per request (per handle process).
    pub correlation_id: u64,
    /// The caller's span.
    pub span: tracing::Span,
}

/// Which block a [`EngineMsg::GetBlock`] asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BlockRef {
    /// By hash.
    Hash(B256),
    /// By number.
    Number(u64),
    /// The engine's head.
    Latest,
    /// The EL's pending block.
    Pending,
    /// The engine's safe block.
    Safe,
    /// The engine's finalized block.
    Finalized,
}

impl From<B256> for BlockRef {
    fn from(hash: B256) -> Self {
        Self::Hash(hash)
    }
}

impl BlockRef {
    pub(crate) fn to_block_id(self) -> alloy_eips::BlockId {
        match self {
            Self::Hash(h) => alloy_eips::BlockId::Hash(h.into()),
            Self::Number(n) => alloy_eips::BlockId::Number(BlockNumberOrTag::Number(n)),
            Self::Latest => alloy_eips::BlockId::Number(BlockNumberOrTag::Latest),
            Self::Pending => alloy_eips::BlockId::Number(BlockNumberOrTag::Pending),
            Self::Safe => alloy_eips::BlockId::Number(BlockNumberOrTag::Safe),
            Self::Finalized => alloy_eips::BlockId::Number(BlockNumberOrTag::Finalized),
        }
    }
}

/// How a [`ReadRequest::GetPayload`] names the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PayloadRef {
    /// The id forkchoiceUpdated returned.
    Id(PayloadId),
    /// The built block's hash (e.g. a payload received back over gossip).
    BlockHash(B256),
}

impl From<PayloadId> for PayloadRef {
    fn from(id: PayloadId) -> Self {
        Self::Id(id)
    }
}

/// Cache counters of the engine.
#[derive(Debug, Clone, Default, Serialize)]
pub struct CachesStatus {
    /// Payloads by id.
    pub payloads: CacheStats,
    /// Blocks by hash.
    pub blocks: CacheStats,
    /// Receipts by block hash.
    pub receipts: CacheStats,
    /// Receipt reads that joined the post-commit fetch in flight (no extra EL call).
    pub receipts_joined_in_flight: u64,
}

/// Everything `GetStatus` reports.
#[derive(Debug, Clone, Serialize)]
pub struct EngineStatus {
    /// Forkchoice as last applied.
    pub forkchoice: ForkchoiceSnapshot,
    /// Whether the engine has synchronised with the EL since it started.
    pub initialized: bool,
    /// Per-session health, kind, version, capabilities, circuit state.
    pub sessions: Vec<SessionStatus>,
    /// Cache counters.
    pub caches: CachesStatus,
    /// Writes waiting behind the one in flight.
    pub queued_writes: usize,
    /// Payload preparation ahead of the slot.
    pub preparation: PreparationStats,
}

/// Count, total and largest of a latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencyStats {
    /// Samples.
    pub count: u64,
    /// Sum (ms).
    pub total_ms: f64,
    /// Largest (ms).
    pub max_ms: f64,
}

impl LatencyStats {
    /// Add a sample.
    pub fn record(&mut self, latency: std::time::Duration) {
        let ms = latency.as_secs_f64() * 1e3;
        self.count += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    /// Mean (ms), 0 without samples.
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ms / self.count as f64
        }
    }
}

/// What became of payload preparations, and build latency with and without one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct PreparationStats {
    /// `PreparePayload`s that started a build at the EL.
    pub made: u64,
    /// Builds served by a preparation (getPayload only).
    pub used: u64,
    /// Preparations dropped unused (the build asked for something else, or a newer
    /// preparation replaced it).
    pub wasted: u64,
    /// Builds whose preparation the EL no longer knew (-38001), built afresh.
    pub unknown_to_el: u64,
    /// Build latency when a preparation was used.
    pub prepared_builds: LatencyStats,
    /// Build latency without one (forkchoiceUpdated + getPayload).
    pub unprepared_builds: LatencyStats,
}

/// State-changing requests, applied one at a time in arrival order.
pub enum WriteRequest {
    /// forkchoiceUpdated with attributes → getPayload (primary session); only getPayload when a
    /// preparation for the same parent and attributes exists.
    BuildPayload(BuildPayloadRequest, Reply<BuiltPayload>),
    /// forkchoiceUpdated with attributes ahead of the slot; remembers the payload id.
    PreparePayload(BuildPayloadRequest, Reply<PayloadId>),
    /// newPayload (every healthy session) → VALID → forkchoiceUpdated(head = block).
    CommitPayload(Box<ExecutionData>, Reply<B256>),
    /// newPayload only; the head does not move.
    ValidatePayload(Box<ExecutionData>, Reply<()>),
    /// forkchoiceUpdated(head, safe = finalized = hash).
    FinalizeBlock(B256, Reply<()>),
    /// forkchoiceUpdated(head = ancestor).
    RevertToBlock(B256, Reply<()>),
    /// forkchoiceUpdated with exactly this state.
    UpdateForkchoice(ForkchoiceState, Reply<()>),
    /// Adopt the legacy engine's forkchoice (head, safe, finalized) and announce it to the EL;
    /// with `Some(index)`, also its next peg-in withdrawal index.
    InitializeFromLegacy(ForkchoiceState, Option<u64>, Reply<ForkchoiceSnapshot>),
}

impl WriteRequest {
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            Self::BuildPayload(..) => "build_payload",
            Self::PreparePayload(..) => "prepare_payload",
            Self::CommitPayload(..) => "commit_payload",
            Self::ValidatePayload(..) => "validate_payload",
            Self::FinalizeBlock(..) => "finalize_block",
            Self::RevertToBlock(..) => "revert_to_block",
            Self::UpdateForkchoice(..) => "update_forkchoice",
            Self::InitializeFromLegacy(..) => "initialize_from_legacy",
        }
    }
}

/// Reads: answered from the caches or by a session, never waiting behind writes.
pub enum ReadRequest {
    /// A block, with or without full transactions.
    GetBlock {
        /// Which block.
        block: BlockRef,
        /// Full transactions (else hashes).
        full_transactions: bool,
        /// Reply.
        reply: Reply<Option<Block>>,
    },
    /// A payload built earlier, by payload id or block hash.
    GetPayload(PayloadRef, Reply<BuiltPayload>),
    /// `eth_getLogs`.
    GetLogs(Box<Filter>, Reply<Vec<Log>>),
    /// A transaction receipt.
    GetTransactionReceipt(B256, Reply<Option<TransactionReceipt>>),
    /// Every receipt of a block.
    GetReceipts(B256, Reply<Vec<TransactionReceipt>>),
    /// `eth_syncing` of the primary.
    GetSyncStatus(Reply<SyncState>),
    /// `engine_getPayloadBodiesByHashV1`.
    GetPayloadBodiesByHash(Vec<B256>, Reply<ExecutionPayloadBodiesV1>),
    /// `eth_sendRawTransaction` on the primary.
    SendRawTransaction(Bytes, Reply<B256>),
}

/// Every message the EngineActor handles.
pub enum EngineMsg {
    /// A state-changing request.
    Write(RequestContext, WriteRequest),
    /// A read.
    Read(RequestContext, ReadRequest),
    /// Current forkchoice.
    GetForkchoiceState(RpcReplyPort<ForkchoiceSnapshot>),
    /// Status of sessions, caches, forkchoice.
    GetStatus(RpcReplyPort<EngineStatus>),
    /// Drop expired cache entries (sent by the CacheJanitor); replies with how many.
    SweepCaches(RpcReplyPort<usize>),
    /// Internal: a write's IO finished.
    #[doc(hidden)]
    WriteDone(Box<crate::engine::WriteOutcome>),
    /// Internal: (re)synchronise with the EL.
    #[doc(hidden)]
    Initialize,
    /// Internal: initialisation finished.
    #[doc(hidden)]
    Initialized(Result<ForkchoiceSnapshot, EngineError>),
    /// Internal: a block fetched on a cache miss.
    #[doc(hidden)]
    CacheBlock(Box<Block>, bool),
    /// Internal: receipts fetched on a read miss.
    #[doc(hidden)]
    CacheReceipts(B256, std::sync::Arc<Vec<TransactionReceipt>>),
    /// Internal: the post-commit receipts fetch finished (peg-outs are read from it).
    #[doc(hidden)]
    ReceiptsFetched(
        B256,
        Result<std::sync::Arc<Vec<TransactionReceipt>>, EngineError>,
    ),
    /// Test hook: panic inside the handler (supervision tests).
    #[doc(hidden)]
    Crash,
}

/// Events the engine publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum EngineEvent {
    /// A bridge `RequestPegOut` log in a committed block.
    PegOutRequested(PegOutRequested),
}
