//! Decoding execution-client answers into our types, without a network: the same steps
//! [`HttpExecutionClient`](crate::HttpExecutionClient) takes between the HTTP body and the
//! value it returns (JSON-RPC envelope, error classification, the result's type, then our own
//! decoding such as `engine_getPayloadV2`'s by-field payload version or `eth_syncing` → [`SyncState`]).
//!
//! It exists for the fuzz target (`fuzz/`) and the decoding property tests: any byte string,
//! for any method, must give a value or a typed [`EngineError`], never a panic.
//!
//! ```
//! use engine_clients::{Decoded, decode_response};
//! let body = br#"{"jsonrpc":"2.0","id":1,"result":{"status":"SYNCING","latestValidHash":null,"validationError":null}}"#;
//! let Decoded::PayloadStatus(status) = decode_response("engine_newPayloadV2", body).unwrap() else {
//!     unreachable!()
//! };
//! assert!(status.is_syncing());
//! assert!(decode_response("engine_newPayloadV2", b"{\"jsonrpc\":").is_err());
//! ```

use alloy_json_rpc::{Response, ResponsePayload, RpcError};
use alloy_primitives::{B256, U64};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadBodiesV1, ExecutionPayloadEnvelopeV2, ExecutionPayloadV1,
    ForkchoiceUpdated, PayloadStatus,
};
use alloy_rpc_types_eth::{Block, Log, SyncStatus, TransactionReceipt};
use alloy_transport::TransportErrorKind;
use engine_types::{ClientIdentity, EngineError};
use serde::de::DeserializeOwned;

use crate::{
    Capabilities, SyncState, classify,
    http::wire::{
        WireClientVersion, WireEnvelopeV3, WireEnvelopeV4, identity_from_client_versions,
        sync_state_from,
    },
};

/// Every method [`decode_response`] knows, in a fixed order (the fuzz target picks by index).
pub const DECODED_METHODS: &[&str] = &[
    "engine_newPayloadV1",
    "engine_newPayloadV2",
    "engine_newPayloadV3",
    "engine_newPayloadV4",
    "engine_forkchoiceUpdatedV1",
    "engine_forkchoiceUpdatedV2",
    "engine_forkchoiceUpdatedV3",
    "engine_getPayloadV1",
    "engine_getPayloadV2",
    "engine_getPayloadV3",
    "engine_getPayloadV4",
    "engine_exchangeCapabilities",
    "engine_getClientVersionV1",
    "engine_getPayloadBodiesByHashV1",
    "web3_clientVersion",
    "eth_getBlockByHash",
    "eth_getBlockByNumber",
    "eth_getBlockReceipts",
    "eth_getTransactionReceipt",
    "eth_getLogs",
    "eth_syncing",
    "eth_chainId",
    "eth_sendRawTransaction",
];

/// What an answer decoded to, by method.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Decoded {
    /// `engine_newPayloadV*`.
    PayloadStatus(PayloadStatus),
    /// `engine_forkchoiceUpdatedV*`.
    ForkchoiceUpdated(ForkchoiceUpdated),
    /// `engine_getPayloadV*`: the payload (V2 by its fields, not alloy's V1-first guess).
    Payload(ExecutionPayload),
    /// `engine_exchangeCapabilities`.
    Capabilities(Capabilities),
    /// `engine_getClientVersionV1` (`None`: an empty list) or `web3_clientVersion`.
    Identity(Option<ClientIdentity>),
    /// `engine_getPayloadBodiesBy*V1`.
    PayloadBodies(ExecutionPayloadBodiesV1),
    /// `eth_getBlockBy*`.
    Block(Option<Block>),
    /// `eth_getBlockReceipts`.
    Receipts(Option<Vec<TransactionReceipt>>),
    /// `eth_getTransactionReceipt`.
    Receipt(Option<TransactionReceipt>),
    /// `eth_getLogs`.
    Logs(Vec<Log>),
    /// `eth_syncing`.
    Sync(SyncState),
    /// `eth_chainId`.
    ChainId(u64),
    /// `eth_sendRawTransaction`.
    TxHash(B256),
}

/// The result of a JSON-RPC answer as `T`, with errors classified as the client does
/// (an error object → by its code; a bad result → `Decode`; `null` for a non-optional →
/// `MissingInResponse`).
fn result_as<T: DeserializeOwned>(method: &str, response: &Response) -> Result<T, EngineError> {
    let outcome = match &response.payload {
        ResponsePayload::Failure(error) => Err(RpcError::ErrorResp(error.clone())),
        ResponsePayload::Success(raw) => match serde_json::from_str::<T>(raw.get()) {
            Ok(value) => Ok(value),
            Err(_) if raw.get().trim() == "null" => Err(RpcError::NullResp),
            Err(err) => Err(RpcError::deser_err(err, raw.get())),
        },
    };
    outcome.map_err(|e: RpcError<TransportErrorKind>| classify(method, "<decode>", e))
}

/// Decode `body`, the HTTP body an execution client answered to `method`, into our types.
///
/// A method not in [`DECODED_METHODS`] is an `InvalidRequest`; a body that is not a JSON-RPC
/// answer is a `Decode` error.
pub fn decode_response(method: &str, body: &[u8]) -> Result<Decoded, EngineError> {
    let response: Response = serde_json::from_slice(body).map_err(|e| EngineError::Decode {
        method: method.to_owned(),
        message: format!("not a JSON-RPC answer: {e}"),
    })?;
    let r = &response;
    let version = |prefix: &str| method.strip_prefix(prefix);
    Ok(match method {
        m if version("engine_newPayloadV").is_some() && DECODED_METHODS.contains(&m) => {
            Decoded::PayloadStatus(result_as(m, r)?)
        }
        m if version("engine_forkchoiceUpdatedV").is_some() && DECODED_METHODS.contains(&m) => {
            Decoded::ForkchoiceUpdated(result_as(m, r)?)
        }
        "engine_getPayloadV1" => Decoded::Payload(ExecutionPayload::V1(result_as::<
            ExecutionPayloadV1,
        >(method, r)?)),
        "engine_getPayloadV2" => Decoded::Payload(
            result_as::<ExecutionPayloadEnvelopeV2>(method, r)?
                .execution_payload
                .into_payload(),
        ),
        "engine_getPayloadV3" => Decoded::Payload(ExecutionPayload::V3(
            result_as::<WireEnvelopeV3>(method, r)?.execution_payload,
        )),
        "engine_getPayloadV4" => Decoded::Payload(ExecutionPayload::V3(
            result_as::<WireEnvelopeV4>(method, r)?.execution_payload,
        )),
        "engine_exchangeCapabilities" => Decoded::Capabilities(Capabilities::from_methods(
            result_as::<Vec<String>>(method, r)?,
        )),
        "engine_getClientVersionV1" => {
            Decoded::Identity(identity_from_client_versions(&result_as::<
                Vec<WireClientVersion>,
            >(method, r)?))
        }
        "engine_getPayloadBodiesByHashV1" | "engine_getPayloadBodiesByRangeV1" => {
            Decoded::PayloadBodies(result_as(method, r)?)
        }
        "web3_clientVersion" => Decoded::Identity(Some(ClientIdentity::from_web3_client_version(
            &result_as::<String>(method, r)?,
        ))),
        "eth_getBlockByHash" | "eth_getBlockByNumber" => Decoded::Block(result_as(method, r)?),
        "eth_getBlockReceipts" => Decoded::Receipts(result_as(method, r)?),
        "eth_getTransactionReceipt" => Decoded::Receipt(result_as(method, r)?),
        "eth_getLogs" => Decoded::Logs(result_as(method, r)?),
        "eth_syncing" => Decoded::Sync(sync_state_from(result_as::<SyncStatus>(method, r)?)),
        "eth_chainId" => Decoded::ChainId(result_as::<U64>(method, r)?.to::<u64>()),
        "eth_sendRawTransaction" => Decoded::TxHash(result_as(method, r)?),
        other => {
            return Err(EngineError::invalid_request(
                "method",
                format!("no decoder for `{other}`"),
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_method_has_a_decoder() {
        for method in DECODED_METHODS {
            let err =
                decode_response(method, br#"{"jsonrpc":"2.0","id":1,"result":{"x":[1]}}"#).err();
            assert!(
                !matches!(err, Some(EngineError::InvalidRequest { .. })),
                "{method}: {err:?}"
            );
        }
    }

    #[test]
    fn error_objects_are_classified_by_code() {
        let body =
            br#"{"jsonrpc":"2.0","id":1,"error":{"code":-38001,"message":"Unknown payload"}}"#;
        let err = decode_response("engine_getPayloadV2", body).unwrap_err();
        assert!(matches!(err, EngineError::UnknownPayload { .. }), "{err:?}");
    }
}
