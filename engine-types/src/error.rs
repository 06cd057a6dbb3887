//! [`EngineError`]: every failure classified once, where it is born.

use std::time::Duration;

use alloy_primitives::B256;

/// JSON-RPC and Engine API error codes (execution-apis `common.md`).
pub mod codes {
    /// Invalid JSON was received by the server.
    pub const PARSE_ERROR: i64 = -32700;
    /// The JSON sent is not a valid request object.
    pub const INVALID_REQUEST: i64 = -32600;
    /// The method does not exist / is not available.
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// Invalid method parameter(s).
    pub const INVALID_PARAMS: i64 = -32602;
    /// Internal JSON-RPC error.
    pub const INTERNAL_ERROR: i64 = -32603;
    /// Generic client error while processing the request.
    pub const SERVER_ERROR: i64 = -32000;
    /// Payload does not exist / is not available.
    pub const UNKNOWN_PAYLOAD: i64 = -38001;
    /// Forkchoice state is invalid / inconsistent.
    pub const INVALID_FORKCHOICE_STATE: i64 = -38002;
    /// Payload attributes are invalid / inconsistent.
    pub const INVALID_PAYLOAD_ATTRIBUTES: i64 = -38003;
    /// Number of requested entities is too large.
    pub const TOO_LARGE_REQUEST: i64 = -38004;
    /// Payload belongs to a fork that is not supported by this method version.
    pub const UNSUPPORTED_FORK: i64 = -38005;
    /// The requested re-org is deeper than the client allows.
    pub const TOO_DEEP_REORG: i64 = -38006;
}

/// How bad an [`EngineError`] is, for callers that decide between retrying, stopping and
/// resynchronising.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// The same call may succeed later (network blip, timeout, EL still syncing).
    Temporary,
    /// The request itself is wrong or was refused; retrying it unchanged will fail again.
    Rejected,
    /// Configuration or authentication is wrong: an operator has to act.
    Critical,
}

/// Every way an engine operation can fail.
///
/// Variants are chosen where the failure is detected (transport, JSON-RPC error code, payload
/// status, request validation), so callers match on a variant instead of parsing strings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EngineError {
    /// The execution client refused our JWT (HTTP 401/403), or we could not make one.
    #[error(
        "authentication with the execution client at {endpoint} failed (HTTP {status}): {message}; \
         check that the engine and the execution client use the same JWT secret file and that \
         both clocks are correct (iat must be within ±60 s)"
    )]
    Auth {
        /// The endpoint that refused us.
        endpoint: String,
        /// HTTP status (401 or 403; 0 when the token could not be produced).
        status: u16,
        /// The body or reason given.
        message: String,
    },
    /// The JWT secret file is missing, unreadable or malformed.
    #[error(
        "JWT secret file {path}: {reason}; it must hold 32 bytes as 64 hex characters \
         (optionally 0x-prefixed), e.g. created with `openssl rand -hex 32 > {path}`"
    )]
    JwtSecret {
        /// The file that was read.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The request never got an answer: connection refused or reset, HTTP 5xx, truncated body.
    #[error(
        "{method} to {endpoint} failed in transport: {message}; is the execution client running \
         and reachable?"
    )]
    Transport {
        /// The JSON-RPC method.
        method: String,
        /// The endpoint.
        endpoint: String,
        /// What the transport reported.
        message: String,
    },
    /// No answer within the method's deadline.
    #[error("{method} timed out after {after:?}; the execution client is overloaded or stuck")]
    Timeout {
        /// The JSON-RPC method.
        method: String,
        /// The deadline that passed.
        after: Duration,
    },
    /// The answer was not the JSON we expect (malformed JSON, wrong id, wrong shape).
    #[error("{method}: could not decode the execution client's answer: {message}")]
    Decode {
        /// The JSON-RPC method.
        method: String,
        /// The decoder's complaint, with a prefix of the body.
        message: String,
    },
    /// -38001: the execution client does not know this payload id.
    #[error("{method}: unknown payload (-38001): {message}; the build expired or the EL restarted")]
    UnknownPayload {
        /// The JSON-RPC method.
        method: String,
        /// The EL's message.
        message: String,
    },
    /// -38002: head/safe/finalized are inconsistent (safe or finalized not on head's chain).
    #[error("{method}: invalid forkchoice state (-38002): {message}")]
    InvalidForkchoiceState {
        /// The JSON-RPC method.
        method: String,
        /// The EL's message.
        message: String,
    },
    /// -38003: payload attributes refused (the forkchoice update itself was still applied).
    #[error("{method}: invalid payload attributes (-38003): {message}")]
    InvalidPayloadAttributes {
        /// The JSON-RPC method.
        method: String,
        /// The EL's message.
        message: String,
    },
    /// -38004: too many entities requested in one call.
    #[error("{method}: request too large (-38004): {message}")]
    TooLargeRequest {
        /// The JSON-RPC method.
        method: String,
        /// The EL's message.
        message: String,
    },
    /// -38005: the method version does not match the fork of the timestamp.
    #[error(
        "{method}: unsupported fork (-38005): {message}; the engine's fork schedule \
         (shanghai_time/cancun_time/prague_time) disagrees with the execution client's genesis"
    )]
    UnsupportedFork {
        /// The JSON-RPC method.
        method: String,
        /// The EL's message.
        message: String,
    },
    /// -38006: the requested re-org is deeper than the client allows.
    #[error("{method}: re-org too deep (-38006): {message}")]
    TooDeepReorg {
        /// The JSON-RPC method.
        method: String,
        /// The EL's message.
        message: String,
    },
    /// The execution client does not offer a method we need (from `engine_exchangeCapabilities`,
    /// or -32601).
    #[error(
        "the execution client does not support {method}; upgrade it or adjust the fork schedule"
    )]
    MethodNotSupported {
        /// The missing method.
        method: String,
    },
    /// Any other JSON-RPC error answer.
    #[error("{method}: JSON-RPC error {code}: {message}")]
    Rpc {
        /// The JSON-RPC method.
        method: String,
        /// The error code.
        code: i64,
        /// The EL's message.
        message: String,
    },
    /// The EL validated the payload and found it INVALID.
    #[error(
        "payload {block_hash} is INVALID: {}; latest valid hash: {}",
        validation_error.as_deref().unwrap_or("no reason given"),
        latest_valid_hash.map(|h| h.to_string()).unwrap_or_else(|| "unknown".into())
    )]
    InvalidPayload {
        /// The payload's block hash.
        block_hash: B256,
        /// The EL's `validationError`.
        validation_error: Option<String>,
        /// The EL's `latestValidHash`: the newest valid ancestor, if it said.
        latest_valid_hash: Option<B256>,
    },
    /// The EL lacks data to validate (unknown parent, still syncing): nothing was applied.
    #[error("execution client is SYNCING and could not validate {block_hash}; retry later")]
    Syncing {
        /// The block the call was about.
        block_hash: B256,
    },
    /// newPayload answered ACCEPTED: well formed but not validated, not canonical.
    #[error("payload {block_hash} was only ACCEPTED (not validated); treated as not committed")]
    Accepted {
        /// The payload's block hash.
        block_hash: B256,
    },
    /// The EL answered VALID to a forkchoiceUpdated but did not make the block its head (Reth
    /// keeps its canonical head on a forkchoiceUpdated to an ancestor): nothing changed.
    #[error(
        "the execution client answered VALID to forkchoiceUpdated(head = {requested}) but kept \
         {el_head} as its head{hint}; the engine's forkchoice is unchanged"
    )]
    HeadNotMoved {
        /// The head the engine asked for.
        requested: B256,
        /// The head the EL reports afterwards.
        el_head: B256,
        /// Why this client does so and how to change it (empty if unknown).
        hint: String,
    },
    /// The execution clients disagree on a payload (VALID on one, INVALID on another) and the
    /// policy refuses it: nothing was committed.
    #[error(
        "the execution clients disagree on payload {block_hash}: VALID on {valid_on}, INVALID on \
         {invalid_on}; nothing was committed (one of them has a consensus bug: compare their \
         versions and logs)"
    )]
    Disagreement {
        /// The payload.
        block_hash: B256,
        /// Endpoints that answered VALID.
        valid_on: String,
        /// Endpoints that answered INVALID, with the reason.
        invalid_on: String,
    },
    /// The execution client is on another chain than the configured one: its session is not
    /// used.
    #[error(
        "the execution client at {endpoint} is on another chain: {field} is {found}, the \
         configuration says {expected}; point the endpoint at the right client or fix `chain` \
         in the configuration"
    )]
    WrongChain {
        /// The endpoint.
        endpoint: String,
        /// What differs (`chain id`, `genesis hash`, `cancun time`, …).
        field: String,
        /// What the client reports.
        found: String,
        /// What the configuration says.
        expected: String,
    },
    /// A client lacks more blocks of the engine's chain than one catch-up replays, or blocks
    /// no source has.
    #[error("cannot bring {endpoint} up to {target}: {reason}")]
    CatchUpImpossible {
        /// The endpoint.
        endpoint: String,
        /// The block it should reach.
        target: B256,
        /// Why, and what to do.
        reason: String,
    },
    /// A successful answer without a value we need (e.g. no payload id after attributes).
    #[error("{method}: the execution client answered without {missing}")]
    MissingInResponse {
        /// The JSON-RPC method.
        method: String,
        /// What was missing.
        missing: String,
    },
    /// Something asked for does not exist (block, receipt, payload).
    #[error("{what} not found")]
    NotFound {
        /// What was looked up.
        what: String,
    },
    /// The caller's request failed validation before any IO.
    #[error("invalid request: {field}: {reason}")]
    InvalidRequest {
        /// The offending field.
        field: String,
        /// Why it is invalid and what would be valid.
        reason: String,
    },
    /// Configuration is invalid.
    #[error("configuration key `{key}`: {reason}")]
    Config {
        /// The offending key (dotted path).
        key: String,
        /// Why it is invalid and how to fix it.
        reason: String,
    },
    /// The engine is shutting down or the component that should answer is gone.
    #[error("engine unavailable: {reason}")]
    Unavailable {
        /// Why.
        reason: String,
    },
}

impl EngineError {
    /// Classify a JSON-RPC error answer into a named variant.
    pub fn from_rpc_code(method: impl Into<String>, code: i64, message: impl Into<String>) -> Self {
        let method = method.into();
        let message = message.into();
        match code {
            codes::UNKNOWN_PAYLOAD => Self::UnknownPayload { method, message },
            codes::INVALID_FORKCHOICE_STATE => Self::InvalidForkchoiceState { method, message },
            codes::INVALID_PAYLOAD_ATTRIBUTES => Self::InvalidPayloadAttributes { method, message },
            codes::TOO_LARGE_REQUEST => Self::TooLargeRequest { method, message },
            codes::UNSUPPORTED_FORK => Self::UnsupportedFork { method, message },
            codes::TOO_DEEP_REORG => Self::TooDeepReorg { method, message },
            codes::METHOD_NOT_FOUND => Self::MethodNotSupported { method },
            code => Self::Rpc {
                method,
                code,
                message,
            },
        }
    }

    /// Shorthand for [`EngineError::InvalidRequest`].
    pub fn invalid_request(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Shorthand for [`EngineError::Config`].
    pub fn config(key: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::Config {
            key: key.into(),
            reason: reason.into(),
        }
    }

    /// The JSON-RPC error code, when the failure was a JSON-RPC error answer.
    pub const fn rpc_code(&self) -> Option<i64> {
        Some(match self {
            Self::UnknownPayload { .. } => codes::UNKNOWN_PAYLOAD,
            Self::InvalidForkchoiceState { .. } => codes::INVALID_FORKCHOICE_STATE,
            Self::InvalidPayloadAttributes { .. } => codes::INVALID_PAYLOAD_ATTRIBUTES,
            Self::TooLargeRequest { .. } => codes::TOO_LARGE_REQUEST,
            Self::UnsupportedFork { .. } => codes::UNSUPPORTED_FORK,
            Self::TooDeepReorg { .. } => codes::TOO_DEEP_REORG,
            Self::Rpc { code, .. } => *code,
            _ => return None,
        })
    }

    /// How bad this is.
    pub const fn severity(&self) -> Severity {
        match self {
            Self::Transport { .. } | Self::Timeout { .. } | Self::Syncing { .. } => {
                Severity::Temporary
            }
            Self::Accepted { .. } | Self::Unavailable { .. } => Severity::Temporary,
            // Internal / generic server errors are the EL's trouble, not ours.
            Self::Rpc { code, .. }
                if *code == codes::INTERNAL_ERROR || *code == codes::SERVER_ERROR =>
            {
                Severity::Temporary
            }
            Self::Auth { .. }
            | Self::JwtSecret { .. }
            | Self::Config { .. }
            | Self::WrongChain { .. }
            | Self::UnsupportedFork { .. }
            | Self::MethodNotSupported { .. } => Severity::Critical,
            _ => Severity::Rejected,
        }
    }

    /// Whether the execution client lacks blocks of the chain (it answered SYNCING or ACCEPTED,
    /// or a catch-up could not replay what it lacks): the node's answer is to sync, as it did
    /// for the old engine's `PayloadIdUnavailable`. Every other error is not cured by syncing.
    pub const fn is_behind(&self) -> bool {
        matches!(
            self,
            Self::Syncing { .. } | Self::Accepted { .. } | Self::CatchUpImpossible { .. }
        )
    }

    /// Whether the same call may succeed if made again later. Authentication failures are
    /// never retryable: a wrong secret does not heal by itself.
    pub const fn is_retryable(&self) -> bool {
        matches!(self.severity(), Severity::Temporary)
    }

    /// A short, stable label for metrics (`engine_errors_total{error_type}`).
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::JwtSecret { .. } => "jwt_secret",
            Self::Transport { .. } => "transport",
            Self::Timeout { .. } => "timeout",
            Self::Decode { .. } => "decode",
            Self::UnknownPayload { .. } => "unknown_payload",
            Self::InvalidForkchoiceState { .. } => "invalid_forkchoice_state",
            Self::InvalidPayloadAttributes { .. } => "invalid_payload_attributes",
            Self::TooLargeRequest { .. } => "too_large_request",
            Self::UnsupportedFork { .. } => "unsupported_fork",
            Self::TooDeepReorg { .. } => "too_deep_reorg",
            Self::MethodNotSupported { .. } => "method_not_supported",
            Self::Rpc { .. } => "rpc",
            Self::InvalidPayload { .. } => "invalid_payload",
            Self::Syncing { .. } => "syncing",
            Self::Accepted { .. } => "accepted",
            Self::HeadNotMoved { .. } => "head_not_moved",
            Self::Disagreement { .. } => "disagreement",
            Self::WrongChain { .. } => "wrong_chain",
            Self::CatchUpImpossible { .. } => "catch_up_impossible",
            Self::MissingInResponse { .. } => "missing_in_response",
            Self::NotFound { .. } => "not_found",
            Self::InvalidRequest { .. } => "invalid_request",
            Self::Config { .. } => "config",
            Self::Unavailable { .. } => "unavailable",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(codes::UNKNOWN_PAYLOAD, "unknown_payload", false)]
    #[case(codes::INVALID_FORKCHOICE_STATE, "invalid_forkchoice_state", false)]
    #[case(codes::INVALID_PAYLOAD_ATTRIBUTES, "invalid_payload_attributes", false)]
    #[case(codes::TOO_LARGE_REQUEST, "too_large_request", false)]
    #[case(codes::UNSUPPORTED_FORK, "unsupported_fork", false)]
    #[case(codes::TOO_DEEP_REORG, "too_deep_reorg", false)]
    #[case(codes::METHOD_NOT_FOUND, "method_not_supported", false)]
    #[case(codes::INVALID_PARAMS, "rpc", false)]
    #[case(codes::PARSE_ERROR, "rpc", false)]
    #[case(codes::INVALID_REQUEST, "rpc", false)]
    #[case(codes::INTERNAL_ERROR, "rpc", true)]
    #[case(codes::SERVER_ERROR, "rpc", true)]
    fn rpc_codes_map_to_named_variants(
        #[case] code: i64,
        #[case] kind: &str,
        #[case] retryable: bool,
    ) {
        let err = EngineError::from_rpc_code("engine_test", code, "boom");
        assert_eq!(err.kind(), kind);
        assert_eq!(err.is_retryable(), retryable);
        if code != codes::METHOD_NOT_FOUND {
            assert_eq!(err.rpc_code(), Some(code));
        }
    }

    #[test]
    fn auth_is_never_retryable_and_critical() {
        let err = EngineError::Auth {
            endpoint: "x".into(),
            status: 401,
            message: "stale".into(),
        };
        assert!(!err.is_retryable());
        assert_eq!(err.severity(), Severity::Critical);
    }

    #[test]
    fn invalid_payload_message_names_reason_and_ancestor() {
        let err = EngineError::InvalidPayload {
            block_hash: B256::repeat_byte(1),
            validation_error: Some("bad state root".into()),
            latest_valid_hash: Some(B256::repeat_byte(2)),
        };
        let msg = err.to_string();
        assert!(msg.contains("bad state root"), "{msg}");
        assert!(msg.contains(&B256::repeat_byte(2).to_string()), "{msg}");
        assert!(!err.is_retryable());
    }
}
