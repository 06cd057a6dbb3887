//! [`HttpExecutionClient`]: the alloy implementation of [`ExecutionClient`] over HTTP with JWT.
//!
//! | file | what |
//! |---|---|
//! | `options.rs` | [`ClientOptions`], [`RpcObserver`] |
//! | `call.rs` | one call: deadline, span, retries of idempotent calls, secret rotation |
//! | `classify.rs` | [`classify`]: alloy errors → [`EngineError`] |
//! | `engine_api.rs` | the Engine API methods, versions by fork |
//! | `eth.rs` | the `eth_` reads |
//! | `execution_client.rs` | the [`ExecutionClient`](crate::ExecutionClient) trait, delegating to the two above |
//! | `unauthorized.rs` | HTTP 401/403 recognised by status, whatever the body |
//! | `warm_up.rs` | the throwaway block at connect for a client whose first newPayload is slow (Reth) |
//! | `wire.rs` | answers decoded into our own shapes, with the reason for each |

mod call;
mod chain_check;
mod classify;
mod engine_api;
mod eth;
mod execution_client;
mod options;
mod tls;
mod unauthorized;
mod warm_up;
pub(crate) mod wire;

use std::sync::{
    PoisonError, RwLock,
    atomic::{AtomicBool, Ordering},
};

use alloy_network::Ethereum;
use alloy_provider::{Provider, RootProvider};
use alloy_rpc_client::ClientBuilder;
use alloy_rpc_types_engine::JwtSecret;
use alloy_transport_http::{
    AuthLayer, Http, HyperClient,
    hyper_util::{client::legacy::Client, rt::TokioExecutor},
};
use bytes::Bytes as BodyBytes;
use engine_types::{ClientIdentity, EngineError, EngineMethod};
use http_body_util::Full;
use tracing::{debug, info, warn};

pub use classify::classify;
pub use options::{ClientOptions, RpcObserver};
use unauthorized::AuthStatusLayer;
pub use unauthorized::{AuthStatusError, Unauthorized};
use wire::{WireClientVersion, identity_from_client_versions};

use crate::{Capabilities, Quirks, load_jwt_secret, response_id::ResponseIdLayer};

/// What we tell `engine_getClientVersionV1` about ourselves. "AE" is not a registered client
/// code: Reth answers -32602 to codes it does not know, and then `web3_clientVersion` is used.
const OUR_CLIENT_CODE: &str = "AE";

/// The two providers a client talks through. Rebuilt as a whole when the JWT secret is rotated
/// (alloy's [`AuthLayer`] signs with a fixed secret).
#[derive(Clone)]
struct Transports {
    engine: RootProvider<Ethereum>,
    eth: RootProvider<Ethereum>,
    secret: JwtSecret,
}

/// The Engine API + `eth_` client on alloy: `RootProvider` over a hyper HTTP transport with
/// alloy's [`AuthLayer`] (HS256, `iat` only, a token reused for at most 5 s), answers checked
/// for their request's JSON-RPC id.
pub struct HttpExecutionClient {
    transports: RwLock<Transports>,
    options: ClientOptions,
    capabilities: Capabilities,
    identity: ClientIdentity,
    quirks: Quirks,
    /// Whether a newPayload has succeeded since this client connected or last lost its
    /// connection. Until one has, newPayload gets its full deadline instead of the slot's: a
    /// client's first block after a (re)start can take seconds (see `warm_up.rs`).
    processing_warm: AtomicBool,
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

fn parse_url(key: &str, url: &str) -> Result<url::Url, EngineError> {
    url::Url::parse(url)
        .map_err(|e| EngineError::config(key, format!("`{url}` is not a URL ({e})")))
}

impl Transports {
    fn build(options: &ClientOptions, secret: JwtSecret) -> Result<Self, EngineError> {
        let engine_url = parse_url("engine_url", &options.engine_url)?;
        let connector = tls::connector(options.tls_ca_path.as_deref())?;
        let hyper =
            Client::builder(TokioExecutor::new()).build::<_, Full<BodyBytes>>(connector.clone());
        let service = tower::ServiceBuilder::new()
            .layer(AuthLayer::new(secret))
            .layer(AuthStatusLayer)
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
                    ClientBuilder::default().layer(ResponseIdLayer).transport(
                        Http::with_client(
                            HyperClient::<Full<BodyBytes>, _>::with_service(
                                Client::builder(TokioExecutor::new())
                                    .build::<_, Full<BodyBytes>>(connector),
                            ),
                            url,
                        ),
                        true,
                    ),
                )
            }
            None => engine.clone(),
        };
        Ok(Self {
            engine,
            eth,
            secret,
        })
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
        client.capabilities = crate::ExecutionClient::exchange_capabilities(&client).await?;
        client.verify_chain().await?;
        client.identity = client.identify().await;
        client.quirks = Quirks::for_kind(client.identity.kind);
        if client.quirks.slow_first_new_payload && client.options.warm_up {
            match client.warm_up().await {
                Ok(took) => info!(
                    endpoint = %client.options.engine_url,
                    took_ms = took.as_millis() as u64,
                    "warmed the execution client up with a block it keeps off the chain (its first newPayload is slow)"
                ),
                Err(e) => warn!(
                    endpoint = %client.options.engine_url,
                    error = %e,
                    "the warm-up block failed; the first commit gets the full newPayload deadline instead"
                ),
            }
        }
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
        let transports = Transports::build(&options, options.jwt_secret)?;
        Ok(Self {
            transports: RwLock::new(transports),
            options,
            capabilities: Capabilities::unknown(),
            identity: ClientIdentity::default(),
            quirks: Quirks::NONE,
            processing_warm: AtomicBool::new(false),
        })
    }

    /// Whether the client has processed a payload since it (re)connected.
    fn processing_warm(&self) -> bool {
        self.processing_warm.load(Ordering::Relaxed)
    }

    fn set_processing_warm(&self, warm: bool) {
        self.processing_warm.store(warm, Ordering::Relaxed);
    }

    /// The options this client was built with.
    pub const fn options(&self) -> &ClientOptions {
        &self.options
    }

    /// The providers in use now (cheap clones of `Arc`s).
    fn transports(&self) -> Transports {
        self.transports
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn engine(&self) -> RootProvider<Ethereum> {
        self.transports().engine
    }

    fn eth(&self) -> RootProvider<Ethereum> {
        self.transports().eth
    }

    /// The secret requests are signed with now.
    fn secret_in_use(&self) -> JwtSecret {
        self.transports
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .secret
    }

    /// Read the secret file again; when it changed, rebuild the transports to sign with it.
    fn reload_secret(&self) {
        let Some(path) = &self.options.jwt_secret_path else {
            return;
        };
        let secret = match load_jwt_secret(path) {
            Ok(secret) => secret,
            Err(e) => {
                warn!(error = %e, "could not re-read the JWT secret after a 401");
                return;
            }
        };
        let mut transports = self
            .transports
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if secret.as_bytes() == transports.secret.as_bytes() {
            return;
        }
        match Transports::build(&self.options, secret) {
            Ok(rebuilt) => {
                *transports = rebuilt;
                info!(path = %path.display(), "JWT secret changed on disk; using the new one");
            }
            Err(e) => {
                warn!(error = %e, "could not rebuild the transports for the rotated JWT secret")
            }
        }
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
                    self.engine()
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
        let ports: &[bool] = if self.options.eth_url.is_some() {
            &[true, false]
        } else {
            &[false]
        };
        for &public in ports {
            let provider = || if public { self.eth() } else { self.engine() };
            match self
                .call(
                    "web3_clientVersion",
                    self.options.timeouts.eth(),
                    true,
                    || async move { provider().get_client_version().await },
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
}
