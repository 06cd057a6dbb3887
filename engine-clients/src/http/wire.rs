//! Answers we decode into our own shapes instead of alloy's, each for a reason stated on it.

use alloy_eips::{eip4844::kzg_to_versioned_hash, eip7685::Requests};
use alloy_primitives::{B256, FixedBytes, U256};
use alloy_rpc_types_engine::ExecutionPayloadV3;
use alloy_rpc_types_eth::SyncStatus;
use engine_types::{ClientIdentity, ClientKind, IdentitySource};
use serde::{Deserialize, Serialize};

use crate::SyncState;

/// `engine_getClientVersionV1` entries, with the code as a string: the spec allows codes
/// alloy's closed `ClientCode` enum does not know (`EX`, `NE`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireClientVersion {
    pub(crate) code: String,
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) commit: String,
}

/// The identity in an `engine_getClientVersionV1` answer (its first entry); `None` if empty.
pub(crate) fn identity_from_client_versions(
    versions: &[WireClientVersion],
) -> Option<ClientIdentity> {
    let v = versions.first()?;
    Some(ClientIdentity {
        kind: ClientKind::from_client_code(&v.code),
        name: v.name.clone(),
        version: v.version.clone(),
        commit: Some(v.commit.clone()),
        source: IdentitySource::ClientVersionV1,
    })
}

/// `eth_syncing`'s answer as a [`SyncState`] (EthereumJS answers an object even when synced).
pub(crate) fn sync_state_from(status: SyncStatus) -> SyncState {
    match status {
        SyncStatus::None => SyncState::Synced,
        SyncStatus::Info(info) => {
            let n = |v: U256| u64::try_from(v).unwrap_or(u64::MAX);
            let (starting, current, highest) = (
                n(info.starting_block),
                n(info.current_block),
                n(info.highest_block),
            );
            if current >= highest {
                SyncState::Synced
            } else {
                SyncState::Syncing {
                    starting,
                    current,
                    highest,
                }
            }
        }
    }
}

/// `engine_getPayloadV3`'s answer. Not alloy's `ExecutionPayloadEnvelopeV3`: that one decodes
/// every blob (128 KiB each) although only the commitments are used, and a blob sent as a JSON
/// array makes it build the array on the stack, which overflows a small thread stack (still so
/// in alloy 2.5: `tests/decode_props.rs` runs alloy's envelope on such an answer in a child
/// process and sees it abort). Blobs and proofs are skipped unread here.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireEnvelopeV3 {
    pub(crate) execution_payload: ExecutionPayloadV3,
    pub(crate) block_value: U256,
    pub(crate) blobs_bundle: WireBlobsBundle,
}

/// `engine_getPayloadV4`'s answer: V3's plus the execution requests.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireEnvelopeV4 {
    pub(crate) execution_payload: ExecutionPayloadV3,
    pub(crate) block_value: U256,
    pub(crate) blobs_bundle: WireBlobsBundle,
    pub(crate) execution_requests: Requests,
}

/// The part of a blobs bundle the engine uses.
#[derive(Debug, Deserialize)]
pub(crate) struct WireBlobsBundle {
    commitments: Vec<FixedBytes<48>>,
}

impl WireBlobsBundle {
    /// The versioned hash of each commitment (EIP-4844).
    pub(crate) fn versioned_hashes(&self) -> Vec<B256> {
        self.commitments
            .iter()
            .map(|c| kzg_to_versioned_hash(c.as_slice()))
            .collect()
    }
}
