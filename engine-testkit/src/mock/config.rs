//! What a [`MockExecutionLayer`](super::MockExecutionLayer) is told: the client it impersonates
//! ([`ClientProfile`]), its [`MockConfig`], injected faults ([`Fault`], [`FaultRule`]) and the
//! requests it records ([`RecordedRequest`]).

use std::time::Duration;

use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_engine::JwtSecret;
use engine_types::{ClientKind, ForkSchedule};
use serde_json::Value;

/// How the mock presents itself: which client it impersonates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientProfile {
    /// The kind impersonated.
    pub kind: ClientKind,
    /// Answer to `web3_clientVersion`.
    pub web3_client_version: String,
    /// `engine_getClientVersionV1` entry `(code, name, version, commit)`, or `None` to answer
    /// with `client_version_v1_error`.
    pub client_version_v1: Option<(String, String, String, String)>,
    /// Error code for `engine_getClientVersionV1` when unsupported (-32601 most clients,
    /// -32602 Reth refusing a caller code it does not know).
    pub client_version_v1_error: i64,
    /// Geth-style getPayload: the first getPayload within this long after forkchoiceUpdated
    /// returns the block built so far (no pool transactions) and stops the build.
    pub get_payload_early_block_within: Option<Duration>,
    /// `eth_getBlockReceipts` with a block hash answers `null` (EthereumJS).
    pub block_receipts_by_hash_null: bool,
    /// `eth_syncing` answers an object with `currentBlock == highestBlock` when synced
    /// (EthereumJS) instead of `false`.
    pub syncing_object_when_synced: bool,
}

impl ClientProfile {
    /// A plain Geth: getClientVersionV1 supported, early-block getPayload.
    pub fn geth() -> Self {
        Self {
            kind: ClientKind::Geth,
            web3_client_version: "Geth/v1.14.11-stable-f3c696fa/linux-amd64/go1.23.2".into(),
            client_version_v1: Some((
                "GE".into(),
                "Geth".into(),
                "1.14.11".into(),
                "0xf3c696fa".into(),
            )),
            client_version_v1_error: -32601,
            get_payload_early_block_within: Some(Duration::from_millis(300)),
            block_receipts_by_hash_null: false,
            syncing_object_when_synced: false,
        }
    }

    /// Reth refusing our caller code with -32602.
    pub fn reth() -> Self {
        Self {
            kind: ClientKind::Reth,
            web3_client_version: "reth/v1.9.3-1a4c3c7/x86_64-unknown-linux-gnu".into(),
            client_version_v1: None,
            client_version_v1_error: -32602,
            get_payload_early_block_within: None,
            block_receipts_by_hash_null: false,
            syncing_object_when_synced: false,
        }
    }

    /// EthereumJS: no getClientVersionV1 (-32601), receipts by number only, syncing object.
    pub fn ethereumjs() -> Self {
        Self {
            kind: ClientKind::EthereumJs,
            web3_client_version: "EthereumJS/0.10.5/linux/node20.20.2".into(),
            client_version_v1: None,
            client_version_v1_error: -32601,
            get_payload_early_block_within: None,
            block_receipts_by_hash_null: true,
            syncing_object_when_synced: true,
        }
    }

    /// Nethermind with getClientVersionV1.
    pub fn nethermind() -> Self {
        Self {
            kind: ClientKind::Nethermind,
            web3_client_version: "Nethermind/v1.29.0+3e3d3a8c/linux-x64/dotnet8.0.10".into(),
            client_version_v1: Some((
                "NM".into(),
                "Nethermind".into(),
                "1.29.0".into(),
                "0x3e3d3a8c".into(),
            )),
            client_version_v1_error: -32601,
            get_payload_early_block_within: None,
            block_receipts_by_hash_null: false,
            syncing_object_when_synced: false,
        }
    }
}

impl Default for ClientProfile {
    fn default() -> Self {
        Self::geth()
    }
}

/// Configuration of a [`MockExecutionLayer`](super::MockExecutionLayer).
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// The JWT secret requests must be signed with.
    pub jwt_secret: JwtSecret,
    /// Fork schedule deciding which method versions are accepted (-38005 otherwise).
    pub fork_schedule: ForkSchedule,
    /// `eth_chainId`.
    pub chain_id: u64,
    /// Genesis timestamp.
    pub genesis_timestamp: u64,
    /// Balances at genesis.
    pub prefunded: Vec<(Address, U256)>,
    /// Which client to impersonate.
    pub profile: ClientProfile,
    /// Methods listed by `engine_exchangeCapabilities`; `None` lists V1–V4 of everything.
    pub capabilities: Option<Vec<String>>,
    /// Added to the mock's clock when checking JWT `iat` (simulates clock drift).
    pub clock_skew_secs: i64,
    /// Calls to this address get the receipts and `RequestPegOut` logs of the Alys bridge
    /// contract (see the [module docs](super)).
    pub bridge_address: Address,
    /// Answer `eth_`, `net_` and `web3_` calls without a JWT, as a real client's public
    /// JSON-RPC port does (Engine API calls still need one). Default `false`.
    pub public_eth: bool,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            jwt_secret: JwtSecret::random(),
            fork_schedule: ForkSchedule::shanghai(),
            chain_id: 263_634,
            genesis_timestamp: 0,
            prefunded: Vec::new(),
            profile: ClientProfile::default(),
            capabilities: None,
            clock_skew_secs: 0,
            bridge_address: crate::bridge::BRIDGE_ADDRESS,
            public_eth: false,
        }
    }
}

impl MockConfig {
    /// Use this fork schedule.
    pub const fn with_fork_schedule(mut self, forks: ForkSchedule) -> Self {
        self.fork_schedule = forks;
        self
    }

    /// Impersonate this client.
    pub fn with_profile(mut self, profile: ClientProfile) -> Self {
        self.profile = profile;
        self
    }

    /// Use this JWT secret.
    pub const fn with_jwt_secret(mut self, secret: JwtSecret) -> Self {
        self.jwt_secret = secret;
        self
    }

    /// List exactly these methods in `engine_exchangeCapabilities`.
    pub fn with_capabilities(mut self, methods: &[&str]) -> Self {
        self.capabilities = Some(methods.iter().map(|m| (*m).to_owned()).collect());
        self
    }

    /// Shift the mock's clock for JWT checks.
    pub const fn with_clock_skew(mut self, secs: i64) -> Self {
        self.clock_skew_secs = secs;
        self
    }

    /// Emulate the bridge contract at `address` instead of
    /// [`BRIDGE_ADDRESS`](crate::bridge::BRIDGE_ADDRESS).
    pub const fn with_bridge_address(mut self, address: Address) -> Self {
        self.bridge_address = address;
        self
    }

    /// Answer `eth_`/`net_`/`web3_` calls without a JWT (a public port on the same URL).
    pub const fn with_public_eth(mut self) -> Self {
        self.public_eth = true;
        self
    }

    /// Prefund an account at genesis.
    pub fn with_prefunded(mut self, address: Address, balance: U256) -> Self {
        self.prefunded.push((address, balance));
        self
    }
}

/// A fault to inject into answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Wait this long, then answer normally. The call is processed after the wait, so a
    /// client that gave up before (and closed the connection) leaves it unprocessed.
    Latency(Duration),
    /// Process the call at once, then wait this long before answering: the EL applied it but
    /// the answer comes late (after the caller's deadline, the caller cannot know it was applied).
    LateAnswer(Duration),
    /// Answer with this JSON-RPC error.
    RpcError {
        /// Error code.
        code: i64,
        /// Error message.
        message: String,
    },
    /// `newPayload` / `forkchoiceUpdated` answer this status instead of processing the call
    /// (`"SYNCING"`, `"ACCEPTED"`, or `"INVALID"` with `validation_error`).
    PayloadStatus {
        /// Status name.
        status: String,
        /// `validationError` for INVALID.
        validation_error: Option<String>,
        /// `latestValidHash`.
        latest_valid_hash: Option<B256>,
    },
    /// Answer with this HTTP status and a plain-text body.
    Http(u16),
    /// HTTP 200 with a body that is not JSON.
    MalformedJson,
    /// HTTP 200 with the first half of the real answer.
    TruncatedBody,
    /// The real answer under another JSON-RPC id.
    WrongId,
    /// Close the connection without answering.
    DropConnection,
}

impl Fault {
    /// Shorthand for a forced `INVALID` payload status.
    pub fn invalid(validation_error: &str, latest_valid_hash: Option<B256>) -> Self {
        Self::PayloadStatus {
            status: "INVALID".into(),
            validation_error: Some(validation_error.into()),
            latest_valid_hash,
        }
    }

    /// Shorthand for a forced status without validation error (`SYNCING`, `ACCEPTED`).
    pub fn status(status: &str) -> Self {
        Self::PayloadStatus {
            status: status.into(),
            validation_error: None,
            latest_valid_hash: None,
        }
    }
}

/// When to inject a [`Fault`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FaultRule {
    /// The fault.
    pub fault: Fault,
    /// Method-name prefix it applies to (`engine_newPayload` matches V1–V4); `None`: all.
    pub method_prefix: Option<String>,
    /// How many more times; `None`: until cleared.
    pub remaining: Option<usize>,
}

impl FaultRule {
    /// A rule for every method, until cleared.
    pub const fn new(fault: Fault) -> Self {
        Self {
            fault,
            method_prefix: None,
            remaining: None,
        }
    }

    /// Only for methods starting with `prefix`.
    pub fn on(mut self, prefix: &str) -> Self {
        self.method_prefix = Some(prefix.to_owned());
        self
    }

    /// Only `n` times.
    pub const fn times(mut self, n: usize) -> Self {
        self.remaining = Some(n);
        self
    }

    pub(super) fn matches(&self, method: &str) -> bool {
        self.method_prefix
            .as_deref()
            .is_none_or(|p| method.starts_with(p))
    }
}

/// One request the mock received.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    /// JSON-RPC method (`<unparsed>` if the body was not JSON-RPC).
    pub method: String,
    /// Params as sent.
    pub params: Value,
    /// Whether the JWT was accepted.
    pub authorized: bool,
}
