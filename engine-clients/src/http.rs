//! [`HttpExecutionClient`]: the alloy implementation of [`ExecutionClient`] over HTTP with JWT.

use std::{future::Future, path::Path, time::Duration};

use alloy_eips::eip7685::Requests;
use alloy_eips::{BlockId, BlockNumberOrTag, eip4844::kzg_to_versioned_hash};
use alloy_json_rpc::RpcError;
use alloy_network::Ethereum;
use alloy_primitives::{Address, B256, Bytes, FixedBytes, U64, U256};
use alloy_provider::{Provider, RootProvider, ext::EngineApi};
use alloy_rpc_client::ClientBuilder;
use alloy_rpc_types_engine::{
    CancunPayloadFields, ExecutionData, ExecutionPayload, ExecutionPayloadBodiesV1,
    ExecutionPayloadInputV2, ExecutionPayloadSidecar, ExecutionPayloadV1, ExecutionPayloadV2,
    ExecutionPayloadV3, ForkchoiceState, ForkchoiceUpdated, JwtSecret, PayloadAttributes,
    PayloadId, PayloadStatus, PraguePayloadFields,
};
use alloy_rpc_types_eth::{Block, Filter, Log, SyncStatus, TransactionReceipt};
use alloy_transport::TransportErrorKind;
use alloy_transport_http::{
    Http, HyperClient,
    hyper_util::{client::legacy::Client, rt::TokioExecutor},
};
use backon::{ExponentialBuilder, Retryable};
use bytes::Bytes as BodyBytes;
use engine_types::{
    ClientIdentity, ClientKind, EndpointConfig, EngineConfig, EngineError, EngineMethod, Fork,
    ForkSchedule, IdentitySource, RetryConfig, TimeoutConfig, validate_execution_data,
};
use http_body_util::Full;
use serde::{Deserialize, Serialize};
use tracing::{Instrument, Span, debug, warn};

use crate::{
    BuiltPayload, Capabilities, ExecutionClient, JwtAuthLayer, Quirks, SecretCell, SyncState,
    load_jwt_secret,
    response_id::{MismatchedResponseId, ResponseIdLayer},
};

/// What we tell `engine_getClientVersionV1` about ourselves. "AE" is not a registered client
/// code: Reth answers -32602 to codes it does not know, and then `web3_clientVersion` is used.
const OUR_CLIENT_CODE: &str = "AE";

/// How to reach one execution client and how to talk to it.
#[derive(Debug, Clone)]
pub struct ClientOptions {
    /// Authenticated Engine API URL.
    pub engine_url: String,
    /// Public URL for `eth_` reads; `None` uses the engine URL.
    pub eth_url: Option<String>,
    /// The JWT secret.
    pub jwt_secret: JwtSecret,
    /// The file the secret came from; when set, a 401 makes the client read it again and, if
    /// the secret changed (rotation), retry once with the new one.
    pub jwt_secret_path: Option<std::path::PathBuf>,
    /// Fork schedule choosing method versions.
    pub fork_schedule: ForkSchedule,
    /// Per-method deadlines.
    pub timeouts: TimeoutConfig,
    /// Retries of idempotent calls.
    pub retry: RetryConfig,
    /// Upper bound for slot-path deadlines (forkchoiceUpdated, getPayload, newPayload).
    pub slot_deadline: Option<Duration>,
    /// Told about every call (method, latency, error), e.g. for metrics.
    pub observer: Option<std::sync::Arc<dyn RpcObserver>>,
}

/// Sees every JSON-RPC call a client makes (after retries), e.g. to feed latency histograms.
pub trait RpcObserver: Send + Sync + std::fmt::Debug {
    /// `method` took `elapsed` and failed with `error` (if it failed).
    fn observe(&self, method: &str, elapsed: Duration, error: Option<&EngineError>);
}

impl ClientOptions {
    /// Options for `endpoint` under `config`, loading the endpoint's JWT secret file.
    pub fn from_config(
        config: &EngineConfig,
        endpoint: &EndpointConfig,
    ) -> Result<Self, EngineError> {
        Ok(Self {
            engine_url: endpoint.engine_url.clone(),
            eth_url: endpoint.eth_url.clone(),
            jwt_secret: load_jwt_secret(&endpoint.jwt_secret_path)?,
            jwt_secret_path: Some(endpoint.jwt_secret_path.clone()),
            fork_schedule: config.fork_schedule,
            timeouts: config.timeouts,
            retry: config.retry,
            slot_deadline: Some(config.slot_duration()),
            observer: None,
        })
    }

    /// Defaults (spec timeouts, Shanghai from genesis) for a URL and secret.
    pub fn new(engine_url: impl Into<String>, jwt_secret: JwtSecret) -> Self {
        let config = EngineConfig::default();
        Self {
            engine_url: engine_url.into(),
            eth_url: None,
            jwt_secret,
            jwt_secret_path: None,
            fork_schedule: config.fork_schedule,
            timeouts: config.timeouts,
            retry: config.retry,
            slot_deadline: None,
            observer: None,
        }
    }

    /// Same, reading the secret from a file.
    pub fn with_secret_file(
        engine_url: impl Into<String>,
        path: &Path,
    ) -> Result<Self, EngineError> {
        let mut options = Self::new(engine_url, load_jwt_secret(path)?);
        options.jwt_secret_path = Some(path.to_path_buf());
        Ok(options)
    }

    /// Use this fork schedule.
    pub const fn with_fork_schedule(mut self, forks: ForkSchedule) -> Self {
        self.fork_schedule = forks;
        self
    }

    /// Use these timeouts.
    pub const fn with_timeouts(mut self, timeouts: TimeoutConfig) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Use this retry policy.
    pub const fn with_retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Report every call to `observer`.
    pub fn with_observer(mut self, observer: std::sync::Arc<dyn RpcObserver>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Send `eth_` reads here instead of the engine URL.
    pub fn with_eth_url(mut self, url: impl Into<String>) -> Self {
        self.eth_url = Some(url.into());
        self
    }
}

/// The Engine API + `eth_` client on alloy: `RootProvider` over a hyper HTTP transport with
/// [`JwtAuthLayer`] (HS256, a fresh `iat` on every request).
pub struct HttpExecutionClient {
    secret: SecretCell,
    engine: RootProvider<Ethereum>,
    eth: RootProvider<Ethereum>,
    options: ClientOptions,
    capabilities: Capabilities,
    identity: ClientIdentity,
    quirks: Quirks,
}

impl std::fmt::Debug for HttpExecutionClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpExecutionClient")
            .field("engine_url", &self.options.engine_url)
            .field("eth_url", &self.options.eth_url)
            .field("identity", &self.identity)
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

/// `engine_getClientVersionV1` entries, with the code as a string: the spec allows codes
/// alloy's closed `ClientCode` enum does not know (`EX`, `NE`, ...).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct WireClientVersion {
    code: String,
    name: String,
    version: String,
    commit: String,
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

impl HttpExecutionClient {
    /// Build the transports, then `engine_exchangeCapabilities` and client detection
    /// (`engine_getClientVersionV1`, falling back to `web3_clientVersion` on any error).
    ///
    /// Fails on authentication and transport errors (a wrong secret or a dead endpoint
    /// should stop a node at startup, with the reason); a client without
    /// `engine_exchangeCapabilities` (-32601) is accepted with unknown capabilities.
    pub async fn connect(options: ClientOptions) -> Result<Self, EngineError> {
        let mut client = Self::new_unconnected(options)?;
        client.capabilities = client.exchange_capabilities().await?;
        client.identity = client.identify().await;
        client.quirks = Quirks::for_kind(client.identity.kind);
        debug!(
            endpoint = %client.options.engine_url,
            kind = %client.identity.kind,
            version = %client.identity.version,
            "connected to execution client"
        );
        Ok(client)
    }

    /// Build the transports without talking to the client (capabilities unknown, kind
    /// undetected). [`HttpExecutionClient::connect`] is what callers normally want.
    pub fn new_unconnected(options: ClientOptions) -> Result<Self, EngineError> {
        let engine_url = parse_url("engine_url", &options.engine_url)?;
        let secret = SecretCell::new(options.jwt_secret);
        let hyper = Client::builder(TokioExecutor::new()).build_http::<Full<BodyBytes>>();
        let service = tower::ServiceBuilder::new()
            .layer(JwtAuthLayer::new(secret.clone()))
            .service(hyper);
        let transport = HyperClient::<Full<BodyBytes>, _>::with_service(service);
        // alloy does not compare the ids of single answers: the layer does.
        let engine = RootProvider::new(
            ClientBuilder::default()
                .layer(ResponseIdLayer)
                .transport(Http::with_client(transport, engine_url), true),
        );
        let eth = match &options.eth_url {
            Some(url) => {
                let url = parse_url("eth_url", url)?;
                RootProvider::new(
                    ClientBuilder::default()
                        .layer(ResponseIdLayer)
                        .transport(Http::with_client(HyperClient::new(), url), true),
                )
            }
            None => engine.clone(),
        };
        Ok(Self {
            secret,
            engine,
            eth,
            options,
            capabilities: Capabilities::unknown(),
            identity: ClientIdentity::default(),
            quirks: Quirks::NONE,
        })
    }

    /// The options this client was built with.
    pub const fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// Ask who the client is: `engine_getClientVersionV1`, else `web3_clientVersion`.
    pub async fn identify(&self) -> ClientIdentity {
        let ours = WireClientVersion {
            code: OUR_CLIENT_CODE.into(),
            name: "alys-engine".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            commit: "0x00000000".into(),
        };
        let method = EngineMethod::GetClientVersionV1;
        let v1 = self
            .call(
                method.as_str(),
                self.options.timeouts.for_engine_method(method),
                false,
                || {
                    self.engine
                        .client()
                        .request::<_, Vec<WireClientVersion>>(method.as_str(), (ours.clone(),))
                },
            )
            .await;
        match v1.as_deref().map(identity_from_client_versions) {
            Ok(Some(identity)) => return identity,
            Ok(None) => debug!("engine_getClientVersionV1 returned an empty list"),
            Err(e) => {
                debug!(error = %e, "engine_getClientVersionV1 failed; trying web3_clientVersion")
            }
        }
        // The public port first: EthereumJS answers -32601 to web3_ on its engine port.
        let providers = if self.options.eth_url.is_some() {
            vec![&self.eth, &self.engine]
        } else {
            vec![&self.engine]
        };
        for provider in providers {
            match self
                .call(
                    "web3_clientVersion",
                    self.options.timeouts.eth(),
                    true,
                    || provider.get_client_version().into_future(),
                )
                .await
            {
                Ok(s) => return ClientIdentity::from_web3_client_version(&s),
                Err(e) => debug!(error = %e, "web3_clientVersion failed"),
            }
        }
        warn!(endpoint = %self.options.engine_url, "could not identify the execution client; assuming no quirks beyond the conservative defaults");
        ClientIdentity::default()
    }

    /// One call with a deadline, classified errors, and (when `idempotent`) retries with
    /// exponential backoff and jitter for retryable errors only.
    async fn call<T, F, Fut>(
        &self,
        method: &str,
        deadline: Duration,
        idempotent: bool,
        request: F,
    ) -> Result<T, EngineError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        self.call_traced(
            method,
            deadline,
            idempotent,
            &[],
            |_: &T, _: &Span| {},
            request,
        )
        .await
    }

    /// [`Self::call`] inside a client span (`rpc.method`, `server.address`,
    /// `rpc.jsonrpc.error_code` on error), with `before` fields recorded up front and `after`
    /// recording fields of the answer (payload status, block hash).
    async fn call_traced<T, F, Fut>(
        &self,
        method: &str,
        deadline: Duration,
        idempotent: bool,
        before: &[(&'static str, String)],
        after: impl FnOnce(&T, &Span),
        request: F,
    ) -> Result<T, EngineError>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, RpcError<TransportErrorKind>>>,
    {
        let started = std::time::Instant::now();
        let span = tracing::info_span!(
            "rpc",
            otel.name = method,
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            rpc.system = "jsonrpc",
            rpc.method = method,
            rpc.jsonrpc.error_code = tracing::field::Empty,
            server.address = %self.options.engine_url,
            error.r#type = tracing::field::Empty,
            engine.payload_id = tracing::field::Empty,
            engine.block_hash = tracing::field::Empty,
            engine.payload_status = tracing::field::Empty,
        );
        for (field, value) in before {
            span.record(*field, value.as_str());
        }
        let once = || async {
            match tokio::time::timeout(deadline, request()).await {
                Ok(Ok(value)) => Ok(value),
                Ok(Err(e)) => Err(classify(method, &self.options.engine_url, e)),
                Err(_) => Err(EngineError::Timeout {
                    method: method.to_owned(),
                    after: deadline,
                }),
            }
        };
        let retry = self.options.retry;
        let attempt = || async {
            if !idempotent || retry.max_retries == 0 {
                once().instrument(span.clone()).await
            } else {
                let backoff = ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(retry.initial_backoff_ms))
                    .with_max_delay(Duration::from_millis(retry.max_backoff_ms))
                    .with_max_times(retry.max_retries)
                    .with_jitter();
                once.retry(backoff)
                    .when(EngineError::is_retryable)
                    .notify(|e, after| debug!(method, error = %e, ?after, "retrying"))
                    .instrument(span.clone())
                    .await
            }
        };
        let mut result = attempt().await;
        // A 401 after the secret file changed is a rotation: sign with the new secret and try
        // once more (the refused request was not processed, so this is safe for writes too).
        if matches!(result, Err(EngineError::Auth { .. })) && self.reload_secret() {
            result = attempt().await;
        }
        match &result {
            Ok(value) => after(value, &span),
            Err(e) => {
                if let Some(code) = e.rpc_code() {
                    span.record("rpc.jsonrpc.error_code", code);
                }
                span.record("error.type", e.kind());
                span.record("otel.status_code", "ERROR");
            }
        }
        if let Some(observer) = &self.options.observer {
            observer.observe(method, started.elapsed(), result.as_ref().err());
        }
        result
    }

    /// Read the secret file again; true if the secret changed.
    fn reload_secret(&self) -> bool {
        let Some(path) = &self.options.jwt_secret_path else {
            return false;
        };
        match load_jwt_secret(path) {
            Ok(secret) if self.secret.replace(secret) => {
                tracing::info!(path = %path.display(), "JWT secret changed on disk; using the new one");
                true
            }
            Ok(_) => false,
            Err(e) => {
                warn!(error = %e, "could not re-read the JWT secret after a 401");
                false
            }
        }
    }

    fn slot_bounded(&self, method: EngineMethod) -> Duration {
        let configured = self.options.timeouts.for_engine_method(method);
        self.options
            .slot_deadline
            .map_or(configured, |slot| configured.min(slot))
    }

    fn engine_call_checked(&self, method: EngineMethod) -> Result<Duration, EngineError> {
        self.capabilities.require(method)?;
        Ok(self.slot_bounded(method))
    }
}

fn parse_url(key: &str, url: &str) -> Result<url::Url, EngineError> {
    url::Url::parse(url)
        .map_err(|e| EngineError::config(key, format!("`{url}` is not a URL ({e})")))
}

/// Turn an alloy RPC error into an [`EngineError`], once.
pub fn classify(method: &str, endpoint: &str, err: RpcError<TransportErrorKind>) -> EngineError {
    match err {
        RpcError::ErrorResp(payload) => {
            EngineError::from_rpc_code(method, payload.code, payload.message.into_owned())
        }
        RpcError::Transport(TransportErrorKind::HttpError(http))
            if http.status == 401 || http.status == 403 =>
        {
            EngineError::Auth {
                endpoint: endpoint.to_owned(),
                status: http.status,
                message: truncate(http.body.trim(), 200),
            }
        }
        RpcError::Transport(TransportErrorKind::Custom(e))
            if e.downcast_ref::<MismatchedResponseId>().is_some() =>
        {
            EngineError::Decode {
                method: method.to_owned(),
                message: e.to_string(),
            }
        }
        RpcError::Transport(TransportErrorKind::HttpError(http)) => EngineError::Transport {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            message: format!("HTTP {}: {}", http.status, truncate(http.body.trim(), 200)),
        },
        RpcError::Transport(kind) => EngineError::Transport {
            method: method.to_owned(),
            endpoint: endpoint.to_owned(),
            message: error_chain(&kind),
        },
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

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

/// Checks attributes fit the method version their timestamp selects.
fn check_attributes(fork: Fork, attrs: &PayloadAttributes) -> Result<(), EngineError> {
    if fork.has_withdrawals() != attrs.withdrawals.is_some() {
        return Err(EngineError::invalid_request(
            "attributes.withdrawals",
            format!(
                "{} for a {fork:?} timestamp ({})",
                if attrs.withdrawals.is_some() {
                    "present"
                } else {
                    "missing"
                },
                attrs.timestamp
            ),
        ));
    }
    if fork.has_blob_fields() != attrs.parent_beacon_block_root.is_some() {
        return Err(EngineError::invalid_request(
            "attributes.parent_beacon_block_root",
            format!(
                "{} for a {fork:?} timestamp ({}); it is required from Cancun on and refused before",
                if attrs.parent_beacon_block_root.is_some() {
                    "present"
                } else {
                    "missing"
                },
                attrs.timestamp
            ),
        ));
    }
    Ok(())
}

impl ExecutionClient for HttpExecutionClient {
    fn endpoint(&self) -> &str {
        &self.options.engine_url
    }

    fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    fn quirks(&self) -> Quirks {
        self.quirks
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn fork_schedule(&self) -> &ForkSchedule {
        &self.options.fork_schedule
    }

    async fn exchange_capabilities(&self) -> Result<Capabilities, EngineError> {
        let ours: Vec<String> = EngineMethod::ANNOUNCED
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect();
        let method = EngineMethod::ExchangeCapabilities;
        let deadline = self.options.timeouts.for_engine_method(method);
        match self
            .call(method.as_str(), deadline, true, || {
                self.engine.exchange_capabilities(ours.clone())
            })
            .await
        {
            Ok(theirs) => Ok(Capabilities::from_methods(theirs)),
            Err(EngineError::MethodNotSupported { .. }) => Ok(Capabilities::unknown()),
            Err(e) => Err(e),
        }
    }

    async fn forkchoice_updated(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        if state.head_block_hash.is_zero() {
            return Err(EngineError::invalid_request(
                "forkchoice.head_block_hash",
                "zero hash",
            ));
        }
        let fork = match &attributes {
            Some(attrs) => {
                let fork = self.options.fork_schedule.fork_at(attrs.timestamp);
                check_attributes(fork, attrs)?;
                fork
            }
            // Without attributes any supported version will do; prefer the newest scheduled
            // fork's, stepping down to what the client offers.
            None => {
                let newest = self.options.fork_schedule.latest_scheduled();
                [Fork::Prague, Fork::Cancun, Fork::Shanghai, Fork::Paris]
                    .into_iter()
                    .filter(|f| *f <= newest)
                    .find(|f| self.capabilities.supports(f.forkchoice_updated()))
                    .unwrap_or(newest)
            }
        };
        let method = fork.forkchoice_updated();
        let deadline = self.engine_call_checked(method)?;
        let record = |u: &ForkchoiceUpdated, span: &Span| {
            span.record("engine.payload_status", u.payload_status.status.as_str());
            if let Some(id) = u.payload_id {
                span.record("engine.payload_id", id.to_string());
            }
        };
        let head = [("engine.block_hash", state.head_block_hash.to_string())];
        self.call_traced(method.as_str(), deadline, false, &head, record, || {
            let attrs = attributes.clone();
            async move {
                match method {
                    EngineMethod::ForkchoiceUpdatedV1 => {
                        self.engine.fork_choice_updated_v1(state, attrs).await
                    }
                    EngineMethod::ForkchoiceUpdatedV2 => {
                        self.engine.fork_choice_updated_v2(state, attrs).await
                    }
                    _ => self.engine.fork_choice_updated_v3(state, attrs).await,
                }
            }
        })
        .await
    }

    async fn get_payload(
        &self,
        payload_id: PayloadId,
        timestamp: u64,
        parent_beacon_block_root: Option<B256>,
    ) -> Result<BuiltPayload, EngineError> {
        let fork = self.options.fork_schedule.fork_at(timestamp);
        let method = fork.get_payload();
        let deadline = self.engine_call_checked(method)?;
        let name = method.as_str();
        let root = || {
            parent_beacon_block_root.ok_or_else(|| {
                EngineError::invalid_request(
                    "parent_beacon_block_root",
                    format!("required to assemble a {fork:?} payload"),
                )
            })
        };
        let id_field = [("engine.payload_id", payload_id.to_string())];
        let built = match fork {
            Fork::Paris => {
                let p = self
                    .call_traced(name, deadline, true, &id_field, no_fields, || {
                        self.engine.get_payload_v1(payload_id)
                    })
                    .await?;
                (
                    ExecutionPayload::V1(p),
                    ExecutionPayloadSidecar::none(),
                    U256::ZERO,
                )
            }
            Fork::Shanghai => {
                // Not `EngineApi::get_payload_v2`: alloy's `ExecutionPayloadFieldV2` is an
                // untagged enum trying V1 first, so a V2 payload decodes as V1 and its
                // withdrawals (our peg-ins) are silently dropped. Decode by the field instead.
                let env = self
                    .call_traced(name, deadline, true, &id_field, no_fields, || {
                        self.engine
                            .client()
                            .request::<_, WireEnvelopeV2>(name, (payload_id,))
                    })
                    .await?;
                let block_value = env.block_value;
                (
                    env.payload(name)?,
                    ExecutionPayloadSidecar::none(),
                    block_value,
                )
            }
            // Not `EngineApi::get_payload_v3/v4`: their envelopes decode every blob (128 KiB
            // each) although only the commitments are used, and a blob sent as a JSON array
            // overflowed the stack of a debug build (found by the decoding proptest).
            Fork::Cancun => {
                let env = self
                    .call_traced(name, deadline, true, &id_field, no_fields, || {
                        self.engine
                            .client()
                            .request::<_, WireEnvelopeV3>(name, (payload_id,))
                    })
                    .await?;
                let cancun = CancunPayloadFields::new(root()?, env.blobs_bundle.versioned_hashes());
                (
                    ExecutionPayload::V3(env.execution_payload),
                    ExecutionPayloadSidecar::v3(cancun),
                    env.block_value,
                )
            }
            Fork::Prague => {
                let env = self
                    .call_traced(name, deadline, true, &id_field, no_fields, || {
                        self.engine
                            .client()
                            .request::<_, WireEnvelopeV4>(name, (payload_id,))
                    })
                    .await?;
                let cancun = CancunPayloadFields::new(root()?, env.blobs_bundle.versioned_hashes());
                (
                    ExecutionPayload::V3(env.execution_payload),
                    ExecutionPayloadSidecar::v4(
                        cancun,
                        PraguePayloadFields::new(env.execution_requests),
                    ),
                    env.block_value,
                )
            }
        };
        let (payload, sidecar, block_value) = built;
        Ok(BuiltPayload {
            payload_id,
            execution_data: ExecutionData::new(payload, sidecar),
            block_value,
        })
    }

    async fn new_payload(&self, data: &ExecutionData) -> Result<PayloadStatus, EngineError> {
        validate_execution_data(data, &self.options.fork_schedule)?;
        let fork = self.options.fork_schedule.fork_at(data.payload.timestamp());
        let method = fork.new_payload();
        let deadline = self.engine_call_checked(method)?;
        let name = method.as_str();
        let missing = |what: &str| {
            EngineError::invalid_request(
                "payload",
                format!("{fork:?} payload without {what}; rebuild it for this fork"),
            )
        };
        let hash_field = [("engine.block_hash", data.payload.block_hash().to_string())];
        let record = |status: &PayloadStatus, span: &Span| {
            span.record("engine.payload_status", status.status.as_str());
        };
        match (&data.payload, fork) {
            (ExecutionPayload::V1(p), Fork::Paris) => {
                self.call_traced(name, deadline, false, &hash_field, record, || {
                    self.engine.new_payload_v1(p.clone())
                })
                .await
            }
            (ExecutionPayload::V2(p), Fork::Shanghai) => {
                let input = ExecutionPayloadInputV2 {
                    execution_payload: p.payload_inner.clone(),
                    withdrawals: Some(p.withdrawals.clone()),
                };
                self.call_traced(name, deadline, false, &hash_field, record, || {
                    self.engine.new_payload_v2(input.clone())
                })
                .await
            }
            (ExecutionPayload::V3(p), Fork::Cancun) => {
                let root = data
                    .sidecar
                    .parent_beacon_block_root()
                    .ok_or_else(|| missing("parent beacon block root"))?;
                let hashes = data.sidecar.versioned_hashes().cloned().unwrap_or_default();
                self.call_traced(name, deadline, false, &hash_field, record, || {
                    self.engine.new_payload_v3(p.clone(), hashes.clone(), root)
                })
                .await
            }
            (ExecutionPayload::V3(p), Fork::Prague) => {
                let root = data
                    .sidecar
                    .parent_beacon_block_root()
                    .ok_or_else(|| missing("parent beacon block root"))?;
                let hashes = data.sidecar.versioned_hashes().cloned().unwrap_or_default();
                let requests = data
                    .sidecar
                    .prague()
                    .map(|p| p.requests.clone())
                    .ok_or_else(|| missing("execution requests"))?;
                self.call_traced(name, deadline, false, &hash_field, record, || {
                    self.engine.new_payload_v4_requests(
                        p.clone(),
                        hashes.clone(),
                        root,
                        requests.clone(),
                    )
                })
                .await
            }
            _ => Err(missing("the payload version its timestamp needs")),
        }
    }

    async fn payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        let method = EngineMethod::GetPayloadBodiesByHashV1;
        let deadline = self.engine_call_checked(method)?;
        self.call(method.as_str(), deadline, true, || {
            self.engine.get_payload_bodies_by_hash_v1(hashes.clone())
        })
        .await
    }

    async fn payload_bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        let method = EngineMethod::GetPayloadBodiesByRangeV1;
        let deadline = self.engine_call_checked(method)?;
        self.call(method.as_str(), deadline, true, || {
            self.engine.get_payload_bodies_by_range_v1(start, count)
        })
        .await
    }

    async fn block(
        &self,
        id: BlockId,
        full_transactions: bool,
    ) -> Result<Option<Block>, EngineError> {
        let method = match id {
            BlockId::Hash(_) => "eth_getBlockByHash",
            BlockId::Number(_) => "eth_getBlockByNumber",
        };
        self.call(method, self.options.timeouts.eth(), true, || {
            let call = self.eth.get_block(id);
            let call = if full_transactions {
                call.full()
            } else {
                call.hashes()
            };
            call.into_future()
        })
        .await
    }

    async fn logs(&self, filter: &Filter) -> Result<Vec<Log>, EngineError> {
        self.call("eth_getLogs", self.options.timeouts.eth(), true, || {
            self.eth.get_logs(filter)
        })
        .await
    }

    async fn transaction_receipt(
        &self,
        hash: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        self.call(
            "eth_getTransactionReceipt",
            self.options.timeouts.eth(),
            true,
            || self.eth.get_transaction_receipt(hash).into_future(),
        )
        .await
    }

    async fn block_receipts(
        &self,
        block: BlockId,
    ) -> Result<Option<Vec<TransactionReceipt>>, EngineError> {
        let block = match block {
            BlockId::Hash(h) if self.quirks.block_receipts_need_number => {
                match self.block(BlockId::Hash(h), false).await? {
                    Some(b) => BlockId::Number(BlockNumberOrTag::Number(b.header.number)),
                    None => return Ok(None),
                }
            }
            other => other,
        };
        self.call(
            "eth_getBlockReceipts",
            self.options.timeouts.eth(),
            true,
            || self.eth.get_block_receipts(block).into_future(),
        )
        .await
    }

    async fn sync_state(&self) -> Result<SyncState, EngineError> {
        let status = self
            .call("eth_syncing", self.options.timeouts.eth(), true, || {
                self.eth.syncing().into_future()
            })
            .await?;
        Ok(sync_state_from(status))
    }

    async fn chain_id(&self) -> Result<u64, EngineError> {
        self.call("eth_chainId", self.options.timeouts.eth(), true, || {
            self.eth.client().request_noparams::<U64>("eth_chainId")
        })
        .await
        .map(|id| id.to::<u64>())
    }

    async fn balance(&self, address: Address, block: BlockId) -> Result<U256, EngineError> {
        self.call("eth_getBalance", self.options.timeouts.eth(), true, || {
            self.eth.get_balance(address).block_id(block).into_future()
        })
        .await
    }

    async fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, EngineError> {
        // Not retried: a resend after a lost answer is harmless for the pool but would turn
        // "already known" into a confusing error.
        self.call(
            "eth_sendRawTransaction",
            self.options.timeouts.eth(),
            false,
            || {
                self.eth
                    .client()
                    .request::<_, B256>("eth_sendRawTransaction", (raw.clone(),))
            },
        )
        .await
    }
}

/// `engine_getPayloadV2`'s answer, decoded without alloy's V1-first untagged enum.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WireEnvelopeV2 {
    execution_payload: serde_json::Value,
    pub(crate) block_value: U256,
}

impl WireEnvelopeV2 {
    pub(crate) fn payload(self, method: &str) -> Result<ExecutionPayload, EngineError> {
        let decode = |e: serde_json::Error| EngineError::Decode {
            method: method.to_owned(),
            message: format!("executionPayload: {e}"),
        };
        if self.execution_payload.get("withdrawals").is_some() {
            serde_json::from_value::<ExecutionPayloadV2>(self.execution_payload)
                .map(ExecutionPayload::V2)
                .map_err(decode)
        } else {
            serde_json::from_value::<ExecutionPayloadV1>(self.execution_payload)
                .map(ExecutionPayload::V1)
                .map_err(decode)
        }
    }
}

/// For [`HttpExecutionClient::call_traced`] when the answer adds no span fields.
fn no_fields<T>(_: &T, _: &Span) {}

/// `engine_getPayloadV3`'s answer. The blobs bundle keeps only the commitments (for the
/// versioned hashes `newPayload` needs); blobs and proofs are skipped unread.
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
