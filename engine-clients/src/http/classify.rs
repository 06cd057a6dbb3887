//! Turning alloy's RPC errors into [`EngineError`]s, once, where they are born.

use alloy_json_rpc::RpcError;
use alloy_transport::TransportErrorKind;
use engine_types::EngineError;

use super::unauthorized::Unauthorized;
use crate::MismatchedResponseId;

/// Turn an alloy RPC error into an [`EngineError`]: HTTP 401/403 → `Auth` (never retried),
/// other HTTP and transport failures → `Transport`, a body that is not the expected JSON or an
/// answer with another request's id → `Decode`, a JSON-RPC error object → its named variant by
/// code, `null` where a value was needed → `MissingInResponse`.
pub fn classify(method: &str, endpoint: &str, err: RpcError<TransportErrorKind>) -> EngineError {
    match err {
        RpcError::ErrorResp(payload) => {
            EngineError::from_rpc_code(method, payload.code, payload.message.into_owned())
        }
        RpcError::Transport(kind) => classify_transport(method, endpoint, &kind),
        RpcError::DeserError { err, text } => EngineError::Decode {
            method: method.to_owned(),
            message: format!("{err}; body starts: {}", truncate(&text, 200)),
        },
        RpcError::NullResp => EngineError::MissingInResponse {
            method: method.to_owned(),
            missing: "a result (it answered null)".into(),
        },
        RpcError::SerError(e) => {
            EngineError::invalid_request("params", format!("{method}: cannot serialize: {e}"))
        }
        other => EngineError::Transport {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            message: other.to_string(),
        },
    }
}

fn classify_transport(method: &str, endpoint: &str, kind: &TransportErrorKind) -> EngineError {
    let auth = |status: u16, body: &str| EngineError::Auth {
        endpoint: endpoint.to_owned(),
        status,
        message: truncate(body.trim(), 200),
    };
    if let Some(refused) = find_source::<Unauthorized>(kind) {
        return auth(refused.status, &refused.body);
    }
    // `as_http_error` covers answers with and without a Retry-After header.
    if let Some(http) = kind.as_http_error() {
        if http.status == 401 || http.status == 403 {
            return auth(http.status, &http.body);
        }
        return EngineError::Transport {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            message: format!("HTTP {}: {}", http.status, truncate(http.body.trim(), 200)),
        };
    }
    if let Some(wrong) = find_source::<MismatchedResponseId>(kind) {
        return EngineError::Decode {
            method: method.to_owned(),
            message: wrong.to_string(),
        };
    }
    EngineError::Transport {
        method: method.to_owned(),
        endpoint: endpoint.to_owned(),
        message: error_chain(kind),
    }
}

/// The first error of type `E` in `err`'s source chain (layers wrap each other's errors).
fn find_source<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// An error and its sources, each once: "connection refused: tcp connect error: ...".
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    message
}

/// At most `max` characters of `s`, with an ellipsis when cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use alloy_json_rpc::ErrorPayload;
    use alloy_transport::HttpError;
    use engine_types::{Severity, codes};
    use rstest::rstest;

    use super::*;

    const ENDPOINT: &str = "http://127.0.0.1:8551";

    fn http(status: u16, body: &str) -> RpcError<TransportErrorKind> {
        RpcError::Transport(TransportErrorKind::HttpError(HttpError {
            status,
            body: body.to_owned(),
        }))
    }

    fn rpc_error(code: i64) -> RpcError<TransportErrorKind> {
        RpcError::ErrorResp(ErrorPayload {
            code,
            message: Cow::Borrowed("refused"),
            data: None,
        })
    }

    #[rstest]
    #[case(401)]
    #[case(403)]
    fn unauthorized_answers_are_auth_errors_that_need_an_operator(#[case] status: u16) {
        let e = classify(
            "engine_newPayloadV2",
            ENDPOINT,
            http(status, " stale token\n"),
        );
        let EngineError::Auth {
            endpoint,
            status: s,
            message,
        } = &e
        else {
            panic!("{e:?}")
        };
        assert_eq!(
            (endpoint.as_str(), *s, message.as_str()),
            (ENDPOINT, status, "stale token")
        );
        assert_eq!(e.severity(), Severity::Critical);
        assert!(!e.is_retryable());
    }

    #[test]
    fn other_http_statuses_are_retryable_transport_errors_with_a_cut_body() {
        let body = "x".repeat(500);
        let e = classify("eth_syncing", ENDPOINT, http(502, &body));
        let EngineError::Transport { message, .. } = &e else {
            panic!("{e:?}")
        };
        assert!(message.starts_with("HTTP 502: "), "{message}");
        assert!(message.chars().count() < 220, "{message}");
        assert!(e.is_retryable());
    }

    #[rstest]
    #[case(codes::UNKNOWN_PAYLOAD, "unknown_payload")]
    #[case(codes::INVALID_FORKCHOICE_STATE, "invalid_forkchoice_state")]
    #[case(codes::UNSUPPORTED_FORK, "unsupported_fork")]
    #[case(codes::METHOD_NOT_FOUND, "method_not_supported")]
    #[case(codes::INVALID_PARAMS, "rpc")]
    fn error_objects_are_named_by_code(#[case] code: i64, #[case] kind: &str) {
        assert_eq!(
            classify("engine_getPayloadV2", ENDPOINT, rpc_error(code)).kind(),
            kind
        );
    }

    #[test]
    fn an_undecodable_body_is_a_decode_error_quoting_its_start() {
        let err = serde_json::from_str::<u64>("\"nope\"").unwrap_err();
        let e = classify(
            "eth_chainId",
            ENDPOINT,
            RpcError::deser_err(err, "\"nope\""),
        );
        let EngineError::Decode { method, message } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(method, "eth_chainId");
        assert!(message.contains("body starts: \"nope\""), "{message}");
    }

    #[test]
    fn another_requests_id_is_a_decode_error() {
        let wrong = MismatchedResponseId {
            expected: "7".into(),
            got: "8".into(),
        };
        let e = classify(
            "engine_forkchoiceUpdatedV2",
            ENDPOINT,
            TransportErrorKind::custom(wrong),
        );
        assert_eq!(e.kind(), "decode", "{e:?}");
    }

    #[test]
    fn a_refusal_seen_by_the_status_layer_is_an_auth_error_whatever_the_body() {
        let refused = Unauthorized {
            status: 401,
            body: r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Authentication error"},"id":null}"#.into(),
        };
        let e = classify(
            "engine_forkchoiceUpdatedV2",
            ENDPOINT,
            TransportErrorKind::custom(refused),
        );
        assert!(matches!(e, EngineError::Auth { status: 401, .. }), "{e:?}");
    }

    #[test]
    fn an_http_error_with_retry_after_is_still_classified_by_status() {
        let kind = TransportErrorKind::HttpErrorWithRetryAfter {
            error: HttpError {
                status: 503,
                body: "busy".into(),
            },
            retry_after: std::time::Duration::from_secs(1),
        };
        let e = classify("eth_syncing", ENDPOINT, RpcError::Transport(kind));
        let EngineError::Transport { message, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(message, "HTTP 503: busy");
    }

    #[test]
    fn null_for_a_required_value_names_what_is_missing() {
        let e = classify("engine_getPayloadV3", ENDPOINT, RpcError::NullResp);
        assert!(matches!(e, EngineError::MissingInResponse { .. }), "{e:?}");
    }

    #[test]
    fn a_dropped_connection_is_a_transport_error_naming_the_endpoint() {
        let e = classify(
            "engine_newPayloadV2",
            ENDPOINT,
            RpcError::Transport(TransportErrorKind::BackendGone),
        );
        let EngineError::Transport { endpoint, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(endpoint, ENDPOINT);
        assert!(e.is_retryable());
    }

    #[test]
    fn truncate_cuts_on_character_boundaries() {
        assert_eq!(truncate("héllo", 2), "hé…");
        assert_eq!(truncate("hi", 5), "hi");
    }
}
