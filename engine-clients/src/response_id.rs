//! Checks that a JSON-RPC answer carries the id of the request it answers.
//!
//! alloy's HTTP transport hands a single response to the waiting call without comparing ids,
//! so an answer meant for another request (a confused proxy, a buggy client) would be taken as
//! ours. [`ResponseIdLayer`] sits on the transport and turns such an answer into a
//! [`MismatchedResponseId`] error, which [`crate::classify`] reports as
//! [`EngineError::Decode`](engine_types::EngineError::Decode).
//!
//! An error answer with a `null` id is accepted: JSON-RPC 2.0 requires `null` when the server
//! could not read the request's id (parse error, invalid request).

use std::{
    collections::HashSet,
    task::{Context, Poll},
};

use alloy_json_rpc::{Id, RequestPacket, ResponsePacket, ResponsePayload};
use alloy_transport::{TransportError, TransportErrorKind, TransportFut};
use tower::{Layer, Service};

/// An answer whose JSON-RPC id is not the id of the request it came back for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JSON-RPC response id {got} does not match the request id {expected}")]
pub struct MismatchedResponseId {
    /// The id(s) we sent.
    pub expected: String,
    /// The id that came back.
    pub got: String,
}

/// Tower layer adding [`ResponseIdCheck`] to an alloy transport.
#[derive(Debug, Clone, Copy, Default)]
pub struct ResponseIdLayer;

impl<S> Layer<S> for ResponseIdLayer {
    type Service = ResponseIdCheck<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ResponseIdCheck { inner }
    }
}

/// The transport service of [`ResponseIdLayer`].
#[derive(Debug, Clone)]
pub struct ResponseIdCheck<S> {
    inner: S,
}

fn show(id: &Id) -> String {
    match id {
        Id::Number(n) => n.to_string(),
        Id::String(s) => format!("{s:?}"),
        Id::None => "null".to_owned(),
    }
}

/// Whether `id` may answer a request sent with one of `sent`.
fn acceptable<P, E>(sent: &HashSet<Id>, id: &Id, payload: &ResponsePayload<P, E>) -> bool {
    sent.contains(id) || (matches!(id, Id::None) && payload.is_error())
}

fn check(sent: &HashSet<Id>, response: &ResponsePacket) -> Result<(), MismatchedResponseId> {
    let mismatch = |got: &Id| {
        let mut expected: Vec<String> = sent.iter().map(show).collect();
        expected.sort();
        MismatchedResponseId {
            expected: expected.join(", "),
            got: show(got),
        }
    };
    match response {
        ResponsePacket::Single(r) if !acceptable(sent, &r.id, &r.payload) => Err(mismatch(&r.id)),
        ResponsePacket::Batch(rs) => rs
            .iter()
            .find(|r| !acceptable(sent, &r.id, &r.payload))
            .map_or(Ok(()), |r| Err(mismatch(&r.id))),
        ResponsePacket::Single(_) => Ok(()),
    }
}

impl<S> Service<RequestPacket> for ResponseIdCheck<S>
where
    S: Service<
            RequestPacket,
            Response = ResponsePacket,
            Error = TransportError,
            Future = TransportFut<'static>,
        > + Send
        + 'static,
{
    type Response = ResponsePacket;
    type Error = TransportError;
    type Future = TransportFut<'static>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: RequestPacket) -> Self::Future {
        let sent: HashSet<Id> = request.requests().iter().map(|r| r.id().clone()).collect();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = answer.await?;
            check(&sent, &response).map_err(TransportErrorKind::custom)?;
            Ok(response)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(json: &str) -> ResponsePacket {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{json}: {e}"))
    }

    fn ids(ids: &[u64]) -> HashSet<Id> {
        ids.iter().map(|n| Id::Number(*n)).collect()
    }

    #[test]
    fn matching_ids_pass_and_others_are_refused() {
        let ok = response(r#"{"jsonrpc":"2.0","id":7,"result":"0x1"}"#);
        assert_eq!(check(&ids(&[7]), &ok), Ok(()));
        let wrong = response(r#"{"jsonrpc":"2.0","id":8,"result":"0x1"}"#);
        assert_eq!(
            check(&ids(&[7]), &wrong),
            Err(MismatchedResponseId {
                expected: "7".into(),
                got: "8".into()
            })
        );
        let null_result = response(r#"{"jsonrpc":"2.0","id":null,"result":"0x1"}"#);
        assert!(check(&ids(&[7]), &null_result).is_err());
    }

    #[test]
    fn an_error_with_a_null_id_is_accepted() {
        let parse_error =
            response(r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"parse"}}"#);
        assert_eq!(check(&ids(&[7]), &parse_error), Ok(()));
    }

    #[test]
    fn every_answer_of_a_batch_is_checked() {
        let batch = response(
            r#"[{"jsonrpc":"2.0","id":2,"result":"0x1"},{"jsonrpc":"2.0","id":1,"result":"0x2"}]"#,
        );
        assert_eq!(check(&ids(&[1, 2]), &batch), Ok(()));
        let stray = response(
            r#"[{"jsonrpc":"2.0","id":2,"result":"0x1"},{"jsonrpc":"2.0","id":3,"result":"0x2"}]"#,
        );
        assert_eq!(
            check(&ids(&[1, 2]), &stray).map_err(|e| e.got),
            Err("3".into())
        );
    }
}
