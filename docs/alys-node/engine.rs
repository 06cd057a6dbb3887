//! The Alys node's `app/src/engine.rs` on alys-engine (docs/integration-alys.md). Same public
//! surface as the old file, so `chain.rs`, `app.rs` and `federation` compile unchanged.
use crate::error::Error;
use crate::metrics::{ENGINE_BUILD_BLOCK_CALLS, ENGINE_COMMIT_BLOCK_CALLS};
use engine_migration::alys_node::{self as alys, AlysEngine, EngineError, SszFork};
use ethereum_types::H256;
use ethers_core::types::TransactionReceipt;
use lighthouse_wrapper::execution_layer::{self, BlockByNumberQuery, auth::JwtKey};
use lighthouse_wrapper::types::{
    ExecutionBlockHash, ExecutionPayload, ExecutionPayloadCapella, MainnetEthSpec,
};
use ssz::{Decode, Encode};
use std::time::Duration;

pub use alys::{AddBalance, ConsensusAmount};

pub struct Engine {
    pub api: PayloadBodies,
    inner: AlysEngine,
}

/// What `chain.rs` calls as `engine.api.…`.
pub struct PayloadBodies(AlysEngine);

impl PayloadBodies {
    #[allow(clippy::extra_unused_type_parameters)] // chain.rs names it: ::<MainnetEthSpec>
    pub async fn get_payload_bodies_by_hash_v1<E>(
        &self,
        hashes: Vec<ExecutionBlockHash>,
    ) -> Result<Vec<Option<alys::PayloadBody>>, EngineError> {
        let hashes = hashes
            .into_iter()
            .map(ExecutionBlockHash::into_root)
            .collect();
        self.0.payload_bodies_by_hash(hashes).await
    }
}

pub fn new_http_engine_json_rpc(url: Option<String>, jwt_key: JwtKey) -> alys::EngineEndpoint {
    alys::EngineEndpoint::new(url, jwt_key.as_bytes())
}

pub fn new_http_public_execution_json_rpc(url: Option<String>) -> alys::PublicEndpoint {
    alys::PublicEndpoint::new(url)
}

/// The node's errors: "the EL is behind" is `PayloadIdUnavailable` (chain.rs then syncs).
fn node_error(e: EngineError) -> Error {
    match e.is_behind() {
        true => Error::PayloadIdUnavailable,
        false => Error::EngineApiError(e.to_string()),
    }
}

fn el_error(e: EngineError) -> execution_layer::Error {
    execution_layer::Error::InvalidPayloadBody(e.to_string())
}

fn capella(payload: alys::NodePayload) -> Result<ExecutionPayloadCapella<MainnetEthSpec>, Error> {
    ExecutionPayloadCapella::from_ssz_bytes(&payload.ssz)
        .map_err(|e| Error::EngineApiError(format!("payload is not Capella SSZ: {e:?}")))
}

impl Engine {
    pub fn new(api: alys::EngineEndpoint, execution_api: alys::PublicEndpoint) -> Self {
        let inner = AlysEngine::spawn(api, execution_api);
        Self {
            api: PayloadBodies(inner.clone()),
            inner,
        }
    }

    /// The engine itself: metrics (`render_metrics`), status, health, shutdown.
    pub fn alys(&self) -> &AlysEngine {
        &self.inner
    }

    pub async fn set_finalized(&self, block_hash: ExecutionBlockHash) {
        // A refused finalize must not fail the import that follows it: log and go on.
        if let Err(e) = self.inner.set_finalized(block_hash.into_root()).await {
            tracing::warn!(%e, "finalize refused by the engine");
        }
    }

    pub async fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<ExecutionBlockHash>,
        add_balances: Vec<AddBalance>,
    ) -> Result<ExecutionPayload<MainnetEthSpec>, Error> {
        ENGINE_BUILD_BLOCK_CALLS
            .with_label_values(&["called", "default"])
            .inc();
        let head = payload_head.map(ExecutionBlockHash::into_root);
        let built = self.inner.build_block(timestamp, head, add_balances).await;
        let built = built.map_err(|e| {
            ENGINE_BUILD_BLOCK_CALLS
                .with_label_values(&["failed", e.kind()])
                .inc();
            node_error(e)
        })?;
        ENGINE_BUILD_BLOCK_CALLS
            .with_label_values(&["success", "default"])
            .inc();
        Ok(ExecutionPayload::Capella(capella(built)?))
    }

    pub async fn commit_block(
        &self,
        execution_payload: ExecutionPayload<MainnetEthSpec>,
    ) -> Result<ExecutionBlockHash, Error> {
        ENGINE_COMMIT_BLOCK_CALLS
            .with_label_values(&["called"])
            .inc();
        let payload = execution_payload
            .as_capella()
            .map_err(|_| Error::EngineApiError("only Capella payloads are committed".into()))?;
        let committed = self
            .inner
            .commit_block(SszFork::Capella, &payload.as_ssz_bytes())
            .await;
        let hash = committed.map_err(|e| {
            ENGINE_COMMIT_BLOCK_CALLS
                .with_label_values(&[e.kind()])
                .inc();
            node_error(e)
        })?;
        Ok(ExecutionBlockHash::from_root(hash))
    }

    pub async fn get_block_with_txs(
        &self,
        block_hash: &ExecutionBlockHash,
    ) -> Result<Option<alys::NodeBlock>, execution_layer::Error> {
        self.inner
            .get_block_with_txs(block_hash.into_root())
            .await
            .map_err(el_error)
    }

    pub async fn get_transaction_receipt(
        &self,
        transaction_hash: H256,
    ) -> Result<Option<TransactionReceipt>, execution_layer::Error> {
        self.inner
            .get_transaction_receipt(transaction_hash)
            .await
            .map_err(el_error)
    }

    pub async fn get_payload_by_tag_from_engine(
        &self,
        query: BlockByNumberQuery<'_>,
    ) -> Result<ExecutionPayloadCapella<MainnetEthSpec>, Error> {
        let BlockByNumberQuery::Tag(tag) = query;
        capella(self.inner.payload_by_tag(tag).await.map_err(node_error)?)
    }
}
