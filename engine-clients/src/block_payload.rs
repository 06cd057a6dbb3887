//! A full block from an execution client back into the payload it was made from (genesis for
//! the node, catch-up replays, the legacy path's `get_payload_by_tag_from_engine`).

use alloy_consensus::TxEnvelope;
use alloy_eips::eip7685::{EMPTY_REQUESTS_HASH, Requests, RequestsOrHash};
use alloy_rpc_types_engine::{
    ExecutionData, ExecutionPayload, ExecutionPayloadSidecar, PraguePayloadFields,
};
use alloy_rpc_types_eth::Block;

/// `block` (with full transactions) as the payload and sidecar it was made from. Prague
/// requests are only in the header as a hash: a block with no requests (every Alys block) gets
/// its empty list back; one with requests cannot be rebuilt from a block (`None`).
pub fn execution_data_from_block(block: Block) -> Option<ExecutionData> {
    let hash = block.header.hash;
    let block = block
        .map_transactions(|tx| tx.into_inner())
        .into_consensus();
    let (payload, sidecar) = ExecutionPayload::from_block_unchecked::<TxEnvelope, _>(hash, &block);
    let sidecar = match (sidecar.cancun(), sidecar.prague()) {
        (Some(cancun), Some(prague)) => {
            if !no_requests(&prague.requests) {
                return None;
            }
            ExecutionPayloadSidecar::v4(
                cancun.clone(),
                PraguePayloadFields::new(Requests::default()),
            )
        }
        _ => sidecar,
    };
    Some(ExecutionData::new(payload, sidecar))
}

/// Whether `requests` stands for an empty list (as the list, or as its hash).
fn no_requests(requests: &RequestsOrHash) -> bool {
    match requests {
        RequestsOrHash::Hash(hash) => *hash == EMPTY_REQUESTS_HASH,
        RequestsOrHash::Requests(list) => list.is_empty(),
    }
}
