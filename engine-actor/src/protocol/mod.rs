//! The message protocol the node speaks to the engine: what a request names (blocks,
//! payloads), the requests themselves, the events it publishes and what status reports.

mod requests;
mod status;

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::B256;
use alloy_rpc_types_engine::PayloadId;
use engine_types::EngineError;
use ractor::RpcReplyPort;
pub(crate) use requests::{ReadRequest, WriteRequest};
use serde::Serialize;
pub use status::{
    CachesStatus, EngineStatus, ImportReport, InFlightWrite, LatencyStats, PreparationStats,
    WriterStatus,
};

use crate::pegout::PegOutRequested;

/// Reply port of a fallible request.
pub(crate) type Reply<T> = RpcReplyPort<Result<T, EngineError>>;

/// Carried by every request: a correlation id and the caller's span, so the IO done for a
/// message is recorded under the caller's trace.
#[derive(Debug, Clone)]
pub(crate) struct RequestContext {
    /// Unique per request (per handle process).
    pub(crate) correlation_id: u64,
    /// The caller's span.
    pub(crate) span: tracing::Span,
}

/// Which block a read asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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

impl From<BlockNumberOrTag> for BlockRef {
    fn from(tag: BlockNumberOrTag) -> Self {
        match tag {
            BlockNumberOrTag::Number(n) => Self::Number(n),
            BlockNumberOrTag::Earliest => Self::Number(0),
            BlockNumberOrTag::Latest => Self::Latest,
            BlockNumberOrTag::Pending => Self::Pending,
            BlockNumberOrTag::Safe => Self::Safe,
            BlockNumberOrTag::Finalized => Self::Finalized,
        }
    }
}

impl BlockRef {
    pub(crate) fn to_block_id(self) -> alloy_eips::BlockId {
        use alloy_eips::BlockId;
        match self {
            Self::Hash(h) => BlockId::Hash(h.into()),
            Self::Number(n) => BlockId::Number(BlockNumberOrTag::Number(n)),
            Self::Latest => BlockId::Number(BlockNumberOrTag::Latest),
            Self::Pending => BlockId::Number(BlockNumberOrTag::Pending),
            Self::Safe => BlockId::Number(BlockNumberOrTag::Safe),
            Self::Finalized => BlockId::Number(BlockNumberOrTag::Finalized),
        }
    }
}

/// How a payload read names the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
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

/// Events the engine publishes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub enum EngineEvent {
    /// A bridge `RequestPegOut` log in a committed block.
    PegOutRequested(PegOutRequested),
}
