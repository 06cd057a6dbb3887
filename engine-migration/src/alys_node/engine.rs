//! [`AlysEngine`]: what the node's `Engine` shim calls, in the node's terms (payloads as
//! consensus SSZ, ethers blocks and receipts, ethereum-types hashes), started without blocking
//! the node.

use std::{sync::Arc, time::Duration};

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayloadBodiesV1, ExecutionPayloadSidecar};
use engine_actor::{Engine, EngineSystem};
use engine_clients::ClientOptions;
use engine_types::{EndpointConfig, EngineConfig, EngineError};
use ethereum_types::H256;
use tokio::sync::watch;
use tracing::{info, warn};

use super::{
    AddBalance, NodeBlock, NodeReceipt, SszFork, block_to_ethers, payload_from_ssz, payload_to_ssz,
    receipt_to_ethers,
};

/// The old engine's default Engine API URL (Lighthouse's `DEFAULT_EXECUTION_ENDPOINT`).
pub const DEFAULT_ENGINE_URL: &str = "http://localhost:8551/";
/// The old engine's default public JSON-RPC URL.
pub const DEFAULT_PUBLIC_URL: &str = "http://0.0.0.0:8545";

/// A payload in the node's encoding: the consensus-spec SSZ of its container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePayload {
    /// Which container.
    pub fork: SszFork,
    /// Its SSZ bytes (`ExecutionPayloadCapella::from_ssz_bytes` on the node's side).
    pub ssz: Vec<u8>,
    /// Its block hash.
    pub block_hash: H256,
}

/// The node's `--geth-url` and `--jwt-secret`.
#[derive(Clone)]
pub struct EngineEndpoint {
    url: String,
    jwt_secret: Vec<u8>,
}

impl std::fmt::Debug for EngineEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineEndpoint")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl EngineEndpoint {
    /// `url` (default [`DEFAULT_ENGINE_URL`]) with the secret the node read. A secret that is
    /// not 32 bytes is reported by every call of the engine built on it.
    pub fn new(url: Option<String>, jwt_secret: &[u8]) -> Self {
        Self {
            url: url.unwrap_or_else(|| DEFAULT_ENGINE_URL.to_owned()),
            jwt_secret: jwt_secret.to_vec(),
        }
    }
}

/// The node's `--geth-execution-url` (public JSON-RPC, for `eth_` reads).
#[derive(Debug, Clone)]
pub struct PublicEndpoint(String);

impl PublicEndpoint {
    /// `url`, default [`DEFAULT_PUBLIC_URL`].
    pub fn new(url: Option<String>) -> Self {
        Self(url.unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_owned()))
    }
}

/// Where the tree stands: starting, running, or failed to start (with why).
#[derive(Clone)]
enum Started {
    Starting,
    Running(Arc<EngineSystem>),
    Failed(EngineError),
}

/// The engine as the node holds it: cheap to clone, every call answers with a typed error
/// (never a panic), built from the node's CLI values, connected in the background.
#[derive(Clone)]
pub struct AlysEngine {
    started: watch::Receiver<Started>,
    config: Arc<EngineConfig>,
}

impl std::fmt::Debug for AlysEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = match &*self.started.borrow() {
            Started::Starting => "starting".to_owned(),
            Started::Running(_) => "running".to_owned(),
            Started::Failed(e) => format!("failed: {e}"),
        };
        f.debug_struct("AlysEngine").field("state", &state).finish()
    }
}

impl AlysEngine {
    /// The engine for the node's endpoints, with the configuration from `ALYS_ENGINE_*`
    /// variables over the defaults (every deadline at its spec value, slots of 2 s; set
    /// `ALYS_ENGINE_STATE_PATH` to keep the forkchoice across restarts). Returns at once: the
    /// tree starts and connects in the background, and calls made meanwhile wait for it
    /// within their deadline. Needs a tokio runtime (the node's `main` has one); without one,
    /// or with a bad configuration, every call answers with the reason.
    pub fn spawn(engine: EngineEndpoint, public: PublicEndpoint) -> Self {
        match EngineConfig::load(None) {
            Ok(config) => Self::spawn_with_config(config, engine, public),
            Err(e) => Self::failed(EngineConfig::default(), e),
        }
    }

    /// Same with an explicit configuration; its endpoint list is replaced by the node's.
    pub fn spawn_with_config(
        mut config: EngineConfig,
        engine: EngineEndpoint,
        public: PublicEndpoint,
    ) -> Self {
        config.endpoints = vec![EndpointConfig {
            engine_url: engine.url.clone(),
            eth_url: Some(public.0.clone()),
            ..EndpointConfig::default()
        }];
        if engine.jwt_secret.len() != 32 {
            let why = EngineError::JwtSecret {
                path: "--jwt-secret".into(),
                reason: format!(
                    "the secret is {} bytes, it must be 32",
                    engine.jwt_secret.len()
                ),
            };
            return Self::failed(config, why);
        }
        let hex = alloy_primitives::hex::encode(&engine.jwt_secret);
        let secret = match alloy_rpc_types_engine::JwtSecret::from_hex(hex) {
            Ok(secret) => secret,
            Err(e) => {
                let why = EngineError::JwtSecret {
                    path: "--jwt-secret".into(),
                    reason: e.to_string(),
                };
                return Self::failed(config, why);
            }
        };
        let options = ClientOptions::with_config_secret(&config, &config.endpoints[0], secret);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            let why = EngineError::Unavailable {
                reason: "AlysEngine::spawn needs a tokio runtime; create the engine inside the node's async main".into(),
            };
            return Self::failed(config, why);
        };
        let (tx, rx) = watch::channel(Started::Starting);
        let for_task = config.clone();
        runtime.spawn(async move {
            match EngineSystem::spawn(for_task, vec![options]).await {
                Ok(system) => {
                    info!(endpoint = %engine.url, "alys-engine started; connecting to the execution client in the background");
                    tx.send_replace(Started::Running(Arc::new(system)));
                }
                Err(e) => {
                    warn!(error = %e, "alys-engine could not start");
                    tx.send_replace(Started::Failed(e));
                }
            }
        });
        Self {
            started: rx,
            config: Arc::new(config),
        }
    }

    fn failed(config: EngineConfig, why: EngineError) -> Self {
        Self {
            started: watch::channel(Started::Failed(why)).1,
            config: Arc::new(config),
        }
    }

    /// The running tree, waiting within `request_ms` for it to start and synchronise with the
    /// execution client (the first calls after the node starts wait for the EL to come up).
    async fn system(&self) -> Result<Arc<EngineSystem>, EngineError> {
        let mut started = self.started.clone();
        let wait = Duration::from_millis(self.config.timeouts.request_ms);
        let deadline = tokio::time::Instant::now() + wait;
        let ready =
            tokio::time::timeout(wait, started.wait_for(|s| !matches!(s, Started::Starting))).await;
        let running = match ready {
            Ok(Ok(state)) => state.clone(),
            Ok(Err(_)) => {
                return Err(EngineError::Unavailable {
                    reason: "alys-engine's start task ended without a result".into(),
                });
            }
            Err(_) => {
                return Err(EngineError::Unavailable {
                    reason: format!("alys-engine did not start within {wait:?}"),
                });
            }
        };
        match running {
            Started::Running(system) => {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                system.wait_until_ready(left).await?;
                Ok(system)
            }
            Started::Failed(e) => Err(e),
            Started::Starting => Err(EngineError::Unavailable {
                reason: "alys-engine is still starting".into(),
            }),
        }
    }

    async fn engine(&self) -> Result<Engine, EngineError> {
        Ok(Engine::new(self.system().await?.handle()))
    }

    /// The running tree (metrics, status, health endpoints, shutdown), once started.
    pub async fn system_handle(&self) -> Result<Arc<EngineSystem>, EngineError> {
        self.system().await
    }

    /// Build a block at `timestamp` on `parent` (or the head) crediting `add_balances` (fees and
    /// peg-ins, in order), fee recipient 0x…dEaD as before. Slot-bounded.
    pub async fn build_block(
        &self,
        timestamp: Duration,
        parent: Option<H256>,
        add_balances: Vec<AddBalance>,
    ) -> Result<NodePayload, EngineError> {
        let data = self
            .engine()
            .await?
            .build_block(
                timestamp,
                parent.map(|h| B256::from(h.0)),
                add_balances.into_iter().map(Into::into).collect(),
            )
            .await?;
        node_payload(&data.payload)
    }

    /// Commit a block the node approved or imported (not necessarily built in this slot): the
    /// execution client's full configured deadlines, not the slot bound. Ok only when the EL
    /// found it VALID and made it head.
    pub async fn commit_block(&self, fork: SszFork, ssz: &[u8]) -> Result<H256, EngineError> {
        let payload = payload_from_ssz(fork, ssz)
            .map_err(|e| EngineError::invalid_request("execution_payload", e.to_string()))?;
        let sidecar = match fork {
            SszFork::Capella => ExecutionPayloadSidecar::none(),
            // The node carries no beacon root: Deneb blocks are built with a zero root and no
            // blobs, as `build_block` builds them.
            SszFork::Deneb => ExecutionPayloadSidecar::v3(
                alloy_rpc_types_engine::CancunPayloadFields::new(B256::ZERO, Vec::new()),
            ),
        };
        let system = self.system().await?;
        let report = system
            .handle()
            .import_payloads(vec![ExecutionData::new(payload, sidecar)], 1)
            .await?;
        Ok(H256::from(report.head.0))
    }

    /// Finalize `hash` at the EL.
    pub async fn set_finalized(&self, hash: H256) -> Result<(), EngineError> {
        self.engine().await?.set_finalized(B256::from(hash.0)).await
    }

    /// The block with full transactions, as the node's ethers type.
    pub async fn get_block_with_txs(&self, hash: H256) -> Result<Option<NodeBlock>, EngineError> {
        let block = self
            .engine()
            .await?
            .get_block_with_txs(&B256::from(hash.0))
            .await?;
        block.as_ref().map(block_to_ethers).transpose()
    }

    /// A receipt, as the node's ethers type.
    pub async fn get_transaction_receipt(
        &self,
        hash: H256,
    ) -> Result<Option<NodeReceipt>, EngineError> {
        let receipt = self
            .engine()
            .await?
            .get_transaction_receipt(B256::from(hash.0))
            .await?;
        receipt.as_ref().map(receipt_to_ethers).transpose()
    }

    /// The block at `tag` (`"0x0"`, `"latest"`, …) as a payload in the node's encoding (the
    /// node stores genesis with it).
    pub async fn payload_by_tag(&self, tag: &str) -> Result<NodePayload, EngineError> {
        let tag: BlockNumberOrTag = tag
            .parse()
            .map_err(|e| EngineError::invalid_request("block tag", format!("`{tag}`: {e}")))?;
        let payload = self
            .engine()
            .await?
            .get_payload_by_tag_from_engine(tag)
            .await?;
        node_payload(&payload)
    }

    /// `engine_getPayloadBodiesByHashV1` (the node checks that its parent's body is there).
    pub async fn payload_bodies_by_hash(
        &self,
        hashes: Vec<H256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        let hashes = hashes.into_iter().map(|h| B256::from(h.0)).collect();
        self.engine()
            .await?
            .api
            .get_payload_bodies_by_hash_v1(hashes)
            .await
    }

    /// The peg-outs of block `hash` under the configured rule for its height (legacy by
    /// default, see `bridge_emitted_peg_outs_from_block`), for any block the EL has.
    pub async fn peg_outs(
        &self,
        hash: H256,
    ) -> Result<Vec<engine_actor::PegOutRequested>, EngineError> {
        self.system()
            .await?
            .handle()
            .peg_outs(B256::from(hash.0))
            .await
    }

    /// Stop the tree gracefully (the write in flight finishes first); later calls fail with
    /// the reason. A no-op if it never started.
    pub async fn shutdown(&self) {
        let running = match &*self.started.borrow() {
            Started::Running(system) => Some(Arc::clone(system)),
            Started::Starting | Started::Failed(_) => None,
        };
        if let Some(system) = running {
            system.stop().await;
        }
    }

    /// Why the supervisor gave up, if it did (the node should then stop, or restart the
    /// engine): under `panic = "abort"` a panic ends the process instead, see
    /// docs/integration-alys.md.
    pub fn escalation(&self) -> Option<String> {
        match &*self.started.borrow() {
            Started::Running(system) => system.escalation(),
            Started::Failed(e) => Some(e.to_string()),
            Started::Starting => None,
        }
    }

    /// The engine's metrics in the Prometheus text format, for the node's `/metrics` handler to
    /// append to its own registry's (empty until the tree started).
    pub fn render_metrics(&self) -> String {
        match &*self.started.borrow() {
            Started::Running(system) => system.metrics().render(),
            Started::Starting | Started::Failed(_) => String::new(),
        }
    }
}

fn node_payload(
    payload: &alloy_rpc_types_engine::ExecutionPayload,
) -> Result<NodePayload, EngineError> {
    let fork = super::ssz_fork_of(payload)
        .map_err(|e| EngineError::invalid_request("execution_payload", e.to_string()))?;
    let ssz = payload_to_ssz(payload)
        .map_err(|e| EngineError::invalid_request("execution_payload", e.to_string()))?;
    Ok(NodePayload {
        fork,
        ssz,
        block_hash: H256::from(payload.block_hash().0),
    })
}
