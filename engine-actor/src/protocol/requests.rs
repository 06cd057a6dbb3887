//! Requests: writes go to the writer and are applied one at a time in arrival order; reads go
//! to the EngineActor and never wait behind writes.

use alloy_primitives::{B256, Bytes};
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayloadBodiesV1, ForkchoiceState, PayloadId};
use alloy_rpc_types_eth::{Block, Filter, Log, TransactionReceipt};
use engine_clients::{BuiltPayload, SyncState};
use engine_types::{BuildPayloadRequest, EngineError};

use super::{BlockRef, PayloadRef, Reply};
use crate::{ForkchoiceSnapshot, ImportReport};

/// State-changing requests.
pub(crate) enum WriteRequest {
    /// forkchoiceUpdated with attributes → getPayload (primary session); only getPayload when a
    /// preparation for the same parent and attributes exists.
    BuildPayload(BuildPayloadRequest, Reply<BuiltPayload>),
    /// forkchoiceUpdated with attributes ahead of the slot; remembers the payload id.
    PreparePayload(BuildPayloadRequest, Reply<PayloadId>),
    /// newPayload (every healthy session) → VALID → forkchoiceUpdated(head = block).
    CommitPayload(Box<ExecutionData>, Reply<B256>),
    /// newPayload only; the head does not move.
    ValidatePayload(Box<ExecutionData>, Reply<()>),
    /// newPayload for each of a run of blocks, forkchoiceUpdated every n and at the end.
    ImportPayloads(Vec<ExecutionData>, usize, Reply<ImportReport>),
    /// forkchoiceUpdated(head, safe = finalized = hash).
    FinalizeBlock(B256, Reply<()>),
    /// forkchoiceUpdated(head = ancestor).
    RevertToBlock(B256, Reply<()>),
    /// forkchoiceUpdated with exactly this state.
    UpdateForkchoice(ForkchoiceState, Reply<()>),
    /// Adopt another engine's forkchoice (head, safe, finalized) and announce it to the EL;
    /// with `Some(index)`, also its next peg-in withdrawal index.
    InitializeFromLegacy(ForkchoiceState, Option<u64>, Reply<ForkchoiceSnapshot>),
}

impl WriteRequest {
    /// The operation's name (metric label, span name).
    pub(crate) const fn name(&self) -> &'static str {
        match self {
            Self::BuildPayload(..) => "build_payload",
            Self::PreparePayload(..) => "prepare_payload",
            Self::CommitPayload(..) => "commit_payload",
            Self::ValidatePayload(..) => "validate_payload",
            Self::ImportPayloads(..) => "import_payloads",
            Self::FinalizeBlock(..) => "finalize_block",
            Self::RevertToBlock(..) => "revert_to_block",
            Self::UpdateForkchoice(..) => "update_forkchoice",
            Self::InitializeFromLegacy(..) => "initialize_from_legacy",
        }
    }

    /// Whether the caller stopped waiting (its deadline passed): then the write is not started.
    pub(crate) fn caller_gone(&self) -> bool {
        match self {
            Self::BuildPayload(_, r) => r.is_closed(),
            Self::PreparePayload(_, r) => r.is_closed(),
            Self::CommitPayload(_, r) => r.is_closed(),
            Self::ImportPayloads(_, _, r) => r.is_closed(),
            Self::ValidatePayload(_, r)
            | Self::FinalizeBlock(_, r)
            | Self::RevertToBlock(_, r)
            | Self::UpdateForkchoice(_, r) => r.is_closed(),
            Self::InitializeFromLegacy(_, _, r) => r.is_closed(),
        }
    }

    /// Answer the caller with `error` without doing anything.
    pub(crate) fn fail(self, error: EngineError) {
        match self {
            Self::BuildPayload(_, r) => drop(r.send(Err(error))),
            Self::PreparePayload(_, r) => drop(r.send(Err(error))),
            Self::CommitPayload(_, r) => drop(r.send(Err(error))),
            Self::ImportPayloads(_, _, r) => drop(r.send(Err(error))),
            Self::ValidatePayload(_, r)
            | Self::FinalizeBlock(_, r)
            | Self::RevertToBlock(_, r)
            | Self::UpdateForkchoice(_, r) => drop(r.send(Err(error))),
            Self::InitializeFromLegacy(_, _, r) => drop(r.send(Err(error))),
        }
    }
}

/// Reads: answered from the caches or by a session in a task of their own.
pub(crate) enum ReadRequest {
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
