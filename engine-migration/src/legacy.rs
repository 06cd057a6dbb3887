//! The legacy engine's operations as a trait, so the old path and the actor path can run side
//! by side: [`DirectEngine`] (the old sequential behaviour on engine-clients, but checking the
//! payload status) and the actor facade [`engine_actor::Engine`] both implement
//! [`LegacyEngine`]; [`StateValidator`] compares what they produce.

use std::{future::Future, time::Duration};

use alloy_eips::{BlockId, BlockNumberOrTag, eip4895::Withdrawal};
use alloy_primitives::B256;
use alloy_rpc_types_engine::{
    ExecutionData, ExecutionPayload, ExecutionPayloadBodiesV1, ForkchoiceState, PayloadAttributes,
};
use alloy_rpc_types_eth::{Block, TransactionReceipt};
use engine_clients::{ExecutionClient, HttpExecutionClient};
use engine_types::{
    AddBalance, DEFAULT_FEE_RECIPIENT, EngineError, require_valid, withdrawals_from_peg_ins,
};
use tokio::sync::Mutex;

/// The operations of the node's old `Engine`, with errors instead of unwraps.
pub trait LegacyEngine: Send + Sync {
    /// Build a block at `timestamp` on `payload_head` (or the head) carrying `add_balances`.
    fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> impl Future<Output = Result<ExecutionData, EngineError>> + Send;
    /// Commit a payload; Ok only if the EL found it VALID and made it head.
    fn commit_block(
        &self,
        payload: ExecutionData,
    ) -> impl Future<Output = Result<B256, EngineError>> + Send;
    /// Finalize `hash` at the EL.
    fn set_finalized(&self, hash: B256) -> impl Future<Output = Result<(), EngineError>> + Send;
    /// The block with full transactions.
    fn get_block_with_txs(
        &self,
        hash: &B256,
    ) -> impl Future<Output = Result<Option<Block>, EngineError>> + Send;
    /// A transaction receipt.
    fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> impl Future<Output = Result<Option<TransactionReceipt>, EngineError>> + Send;
    /// `engine_getPayloadBodiesByHashV1` (what the node calls as `engine.api.…`).
    fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> impl Future<Output = Result<ExecutionPayloadBodiesV1, EngineError>> + Send;
    /// The block at `tag` as an execution payload (the node stores genesis with it).
    fn get_payload_by_tag_from_engine(
        &self,
        tag: BlockNumberOrTag,
    ) -> impl Future<Output = Result<ExecutionPayload, EngineError>> + Send;
}

/// A boxed future of the object-safe [`DynLegacyEngine`].
pub type BoxedCall<'a, T> =
    std::pin::Pin<Box<dyn Future<Output = Result<T, EngineError>> + Send + 'a>>;

/// [`LegacyEngine`] as a trait object: every [`LegacyEngine`] is one, and
/// `Arc<dyn DynLegacyEngine>` is a [`LegacyEngine`] again, so the node can hold the old engine,
/// the actor or a [`crate::MigrationAdapter`] in one field without becoming generic.
pub trait DynLegacyEngine: Send + Sync {
    /// [`LegacyEngine::build_block`].
    fn build_block_dyn(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> BoxedCall<'_, ExecutionData>;
    /// [`LegacyEngine::commit_block`].
    fn commit_block_dyn(&self, payload: ExecutionData) -> BoxedCall<'_, B256>;
    /// [`LegacyEngine::set_finalized`].
    fn set_finalized_dyn(&self, hash: B256) -> BoxedCall<'_, ()>;
    /// [`LegacyEngine::get_block_with_txs`].
    fn get_block_with_txs_dyn<'a>(&'a self, hash: &'a B256) -> BoxedCall<'a, Option<Block>>;
    /// [`LegacyEngine::get_transaction_receipt`].
    fn get_transaction_receipt_dyn(&self, tx: B256) -> BoxedCall<'_, Option<TransactionReceipt>>;
    /// [`LegacyEngine::get_payload_bodies_by_hash_v1`].
    fn get_payload_bodies_by_hash_v1_dyn(
        &self,
        hashes: Vec<B256>,
    ) -> BoxedCall<'_, ExecutionPayloadBodiesV1>;
    /// [`LegacyEngine::get_payload_by_tag_from_engine`].
    fn get_payload_by_tag_from_engine_dyn(
        &self,
        tag: BlockNumberOrTag,
    ) -> BoxedCall<'_, ExecutionPayload>;
}

impl<T: LegacyEngine> DynLegacyEngine for T {
    fn build_block_dyn(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> BoxedCall<'_, ExecutionData> {
        Box::pin(self.build_block(timestamp, payload_head, add_balances))
    }
    fn commit_block_dyn(&self, payload: ExecutionData) -> BoxedCall<'_, B256> {
        Box::pin(self.commit_block(payload))
    }
    fn set_finalized_dyn(&self, hash: B256) -> BoxedCall<'_, ()> {
        Box::pin(self.set_finalized(hash))
    }
    fn get_block_with_txs_dyn<'a>(&'a self, hash: &'a B256) -> BoxedCall<'a, Option<Block>> {
        Box::pin(self.get_block_with_txs(hash))
    }
    fn get_transaction_receipt_dyn(&self, tx: B256) -> BoxedCall<'_, Option<TransactionReceipt>> {
        Box::pin(self.get_transaction_receipt(tx))
    }
    fn get_payload_bodies_by_hash_v1_dyn(
        &self,
        hashes: Vec<B256>,
    ) -> BoxedCall<'_, ExecutionPayloadBodiesV1> {
        Box::pin(self.get_payload_bodies_by_hash_v1(hashes))
    }
    fn get_payload_by_tag_from_engine_dyn(
        &self,
        tag: BlockNumberOrTag,
    ) -> BoxedCall<'_, ExecutionPayload> {
        Box::pin(self.get_payload_by_tag_from_engine(tag))
    }
}

impl LegacyEngine for std::sync::Arc<dyn DynLegacyEngine> {
    fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> impl Future<Output = Result<ExecutionData, EngineError>> + Send {
        (**self).build_block_dyn(timestamp, payload_head, add_balances)
    }
    fn commit_block(
        &self,
        payload: ExecutionData,
    ) -> impl Future<Output = Result<B256, EngineError>> + Send {
        (**self).commit_block_dyn(payload)
    }
    fn set_finalized(&self, hash: B256) -> impl Future<Output = Result<(), EngineError>> + Send {
        (**self).set_finalized_dyn(hash)
    }
    fn get_block_with_txs(
        &self,
        hash: &B256,
    ) -> impl Future<Output = Result<Option<Block>, EngineError>> + Send {
        // The trait's future does not borrow `hash`: own it. `(*this)` calls the object's
        // method; `this.…` would pick the blanket impl on the `Arc` itself and recurse.
        let (this, hash) = (std::sync::Arc::clone(self), *hash);
        async move { (*this).get_block_with_txs_dyn(&hash).await }
    }
    fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> impl Future<Output = Result<Option<TransactionReceipt>, EngineError>> + Send {
        (**self).get_transaction_receipt_dyn(tx)
    }
    fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> impl Future<Output = Result<ExecutionPayloadBodiesV1, EngineError>> + Send {
        (**self).get_payload_bodies_by_hash_v1_dyn(hashes)
    }
    fn get_payload_by_tag_from_engine(
        &self,
        tag: BlockNumberOrTag,
    ) -> impl Future<Output = Result<ExecutionPayload, EngineError>> + Send {
        (**self).get_payload_by_tag_from_engine_dyn(tag)
    }
}

impl LegacyEngine for engine_actor::Engine {
    fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> impl Future<Output = Result<ExecutionData, EngineError>> + Send {
        Self::build_block(self, timestamp, payload_head, add_balances)
    }

    fn commit_block(
        &self,
        payload: ExecutionData,
    ) -> impl Future<Output = Result<B256, EngineError>> + Send {
        Self::commit_block(self, payload)
    }

    fn set_finalized(&self, hash: B256) -> impl Future<Output = Result<(), EngineError>> + Send {
        Self::set_finalized(self, hash)
    }

    fn get_block_with_txs(
        &self,
        hash: &B256,
    ) -> impl Future<Output = Result<Option<Block>, EngineError>> + Send {
        Self::get_block_with_txs(self, hash)
    }

    fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> impl Future<Output = Result<Option<TransactionReceipt>, EngineError>> + Send {
        Self::get_transaction_receipt(self, tx)
    }

    fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> impl Future<Output = Result<ExecutionPayloadBodiesV1, EngineError>> + Send {
        self.api.get_payload_bodies_by_hash_v1(hashes)
    }

    fn get_payload_by_tag_from_engine(
        &self,
        tag: BlockNumberOrTag,
    ) -> impl Future<Output = Result<ExecutionPayload, EngineError>> + Send {
        Self::get_payload_by_tag_from_engine(self, tag)
    }
}

/// The old engine's sequential behaviour, on engine-clients: no actor, no caches, one call after
/// the other — but the payload status is checked (the old code returned an ancestor's hash as
/// success on INVALID) and nothing unwraps.
///
/// Every write holds the state lock from its first EL call to its last state update, so
/// concurrent writes apply one after the other and none loses another's update (the old
/// engine's `RwLock` did the same for the finalized hash).
#[derive(Debug)]
pub struct DirectEngine {
    client: HttpExecutionClient,
    state: Mutex<PathState>,
}

impl DirectEngine {
    /// Over a connected client; head and finalized start from the EL's `latest`/`finalized`,
    /// and the next withdrawal index follows the head block's last withdrawal (0 when the head
    /// carries none: the EL keeps no running index, so an older block's peg-ins are not
    /// searched for; withdrawal indices are not part of Alys's consensus checks).
    pub async fn new(client: HttpExecutionClient) -> Result<Self, EngineError> {
        let head = client
            .block(BlockId::latest(), false)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: "the execution client's latest block".into(),
            })?;
        let finalized = client
            .block(BlockId::Number(BlockNumberOrTag::Finalized), false)
            .await
            .ok()
            .flatten()
            .map(|b| b.header.hash)
            .unwrap_or_default();
        let forkchoice = ForkchoiceState {
            head_block_hash: head.header.hash,
            safe_block_hash: finalized,
            finalized_block_hash: finalized,
        };
        Ok(Self {
            client,
            state: Mutex::new(PathState {
                forkchoice,
                next_withdrawal_index: index_after(head.withdrawals.as_ref().map(|w| w.as_slice())),
            }),
        })
    }

    /// The client underneath.
    pub const fn client(&self) -> &HttpExecutionClient {
        &self.client
    }
}

impl LegacyEngine for DirectEngine {
    async fn build_block(
        &self,
        timestamp: Duration,
        payload_head: Option<B256>,
        add_balances: Vec<AddBalance>,
    ) -> Result<ExecutionData, EngineError> {
        let path = self.state.lock().await;
        let mut state = path.forkchoice;
        if let Some(head) = payload_head {
            state.head_block_hash = head;
        }
        let first_index = path.next_withdrawal_index;
        let fork = self.client.fork_schedule().fork_at(timestamp.as_secs());
        let root = fork.has_blob_fields().then_some(B256::ZERO);
        let attributes = PayloadAttributes {
            timestamp: timestamp.as_secs(),
            prev_randao: B256::ZERO,
            suggested_fee_recipient: DEFAULT_FEE_RECIPIENT,
            withdrawals: Some(withdrawals_from_peg_ins(&add_balances, first_index)),
            parent_beacon_block_root: root,
            ..Default::default()
        };
        let updated = self
            .client
            .forkchoice_updated(state, Some(attributes))
            .await?;
        let id = updated
            .payload_id
            .ok_or_else(|| EngineError::MissingInResponse {
                method: "engine_forkchoiceUpdated".into(),
                missing: "a payload id".into(),
            })?;
        let built = self
            .client
            .get_payload(id, timestamp.as_secs(), root)
            .await?;
        // The index moves when the block is committed (see `commit_block`).
        Ok(built.execution_data)
    }

    async fn commit_block(&self, payload: ExecutionData) -> Result<B256, EngineError> {
        let hash = payload.payload.block_hash();
        let after = index_after(payload.payload.withdrawals().map(Vec::as_slice));
        let mut path = self.state.lock().await;
        require_valid(&self.client.new_payload(&payload).await?, hash)?;
        let mut state = path.forkchoice;
        state.head_block_hash = hash;
        let updated = self.client.forkchoice_updated(state, None).await?;
        if !updated.payload_status.is_valid() {
            return Err(EngineError::Syncing { block_hash: hash });
        }
        path.forkchoice = state;
        path.next_withdrawal_index = path.next_withdrawal_index.max(after);
        Ok(hash)
    }

    async fn set_finalized(&self, hash: B256) -> Result<(), EngineError> {
        let mut path = self.state.lock().await;
        let mut state = path.forkchoice;
        state.safe_block_hash = hash;
        state.finalized_block_hash = hash;
        let updated = self.client.forkchoice_updated(state, None).await?;
        if !updated.payload_status.is_valid() {
            return Err(EngineError::Syncing {
                block_hash: state.head_block_hash,
            });
        }
        path.forkchoice = state;
        Ok(())
    }

    async fn get_block_with_txs(&self, hash: &B256) -> Result<Option<Block>, EngineError> {
        self.client.block(BlockId::Hash((*hash).into()), true).await
    }

    async fn get_transaction_receipt(
        &self,
        tx: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        self.client.transaction_receipt(tx).await
    }

    async fn get_payload_bodies_by_hash_v1(
        &self,
        hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        self.client.payload_bodies_by_hash(hashes).await
    }

    async fn get_payload_by_tag_from_engine(
        &self,
        tag: BlockNumberOrTag,
    ) -> Result<ExecutionPayload, EngineError> {
        let block = self
            .client
            .block(BlockId::Number(tag), true)
            .await?
            .ok_or_else(|| EngineError::NotFound {
                what: format!("block {tag}"),
            })?;
        engine_clients::execution_data_from_block(block)
            .map(|data| data.payload)
            .ok_or_else(|| EngineError::NotFound {
                what: format!("the payload of block {tag}: it carries Prague requests"),
            })
    }
}

/// The withdrawal index after a block's withdrawals (0 when it has none).
fn index_after(withdrawals: Option<&[Withdrawal]>) -> u64 {
    withdrawals
        .and_then(<[Withdrawal]>::last)
        .map_or(0, |w| w.index.saturating_add(1))
}

/// What one path holds: its forkchoice and the index its next peg-in withdrawal gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PathState {
    /// Head, safe and finalized.
    pub forkchoice: ForkchoiceState,
    /// The next withdrawal index (withdrawal indices run on across blocks).
    pub next_withdrawal_index: u64,
}

/// What the migration adapter needs from a path beyond the old operations: its state, and a
/// way to make a path that sat out some blocks adopt the other's.
pub trait MigrationPath: LegacyEngine {
    /// The head, safe and finalized hashes this path holds.
    fn forkchoice_state(&self)
    -> impl Future<Output = Result<ForkchoiceState, EngineError>> + Send;
    /// The forkchoice and the next withdrawal index.
    fn path_state(&self) -> impl Future<Output = Result<PathState, EngineError>> + Send;
    /// Take `state` as this path's own and announce its forkchoice to the EL (one
    /// forkchoiceUpdated). For the actor this is `initialize_from_legacy_with_index`.
    fn adopt(&self, state: PathState) -> impl Future<Output = Result<(), EngineError>> + Send;
}

impl MigrationPath for engine_actor::Engine {
    async fn forkchoice_state(&self) -> Result<ForkchoiceState, EngineError> {
        Ok(self.path_state().await?.forkchoice)
    }

    async fn path_state(&self) -> Result<PathState, EngineError> {
        let snapshot = self.handle().forkchoice().await?;
        Ok(PathState {
            forkchoice: ForkchoiceState {
                head_block_hash: snapshot.head,
                safe_block_hash: snapshot.safe,
                finalized_block_hash: snapshot.finalized,
            },
            next_withdrawal_index: snapshot.next_withdrawal_index,
        })
    }

    async fn adopt(&self, state: PathState) -> Result<(), EngineError> {
        self.handle()
            .initialize_from_legacy_with_index(state.forkchoice, state.next_withdrawal_index)
            .await
            .map(drop)
    }
}

impl MigrationPath for DirectEngine {
    async fn forkchoice_state(&self) -> Result<ForkchoiceState, EngineError> {
        Ok(self.state.lock().await.forkchoice)
    }

    async fn path_state(&self) -> Result<PathState, EngineError> {
        Ok(*self.state.lock().await)
    }

    async fn adopt(&self, state: PathState) -> Result<(), EngineError> {
        let mut path = self.state.lock().await;
        let head = state.forkchoice.head_block_hash;
        let updated = self
            .client
            .forkchoice_updated(state.forkchoice, None)
            .await?;
        if !updated.payload_status.is_valid() {
            return Err(EngineError::Syncing { block_hash: head });
        }
        *path = state;
        Ok(())
    }
}

/// One way two payloads differ.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub enum Mismatch {
    /// Different block hashes.
    BlockHash {
        /// Legacy path's.
        legacy: B256,
        /// Actor path's.
        actor: B256,
    },
    /// Different transaction counts.
    TransactionCount {
        /// Legacy path's.
        legacy: usize,
        /// Actor path's.
        actor: usize,
    },
    /// Gas used differs by more than the tolerance.
    GasUsed {
        /// Legacy path's.
        legacy: u64,
        /// Actor path's.
        actor: u64,
    },
    /// Different withdrawals (count, or an address/amount pair).
    Withdrawals {
        /// Legacy path's count.
        legacy: usize,
        /// Actor path's count.
        actor: usize,
    },
    /// One path accepted a payload the other found INVALID.
    Outcome {
        /// Legacy path's verdict.
        legacy: String,
        /// Actor path's verdict.
        actor: String,
    },
}

impl Mismatch {
    /// The metric label of this kind of mismatch.
    pub const fn kind(&self) -> &'static str {
        match self {
            Self::BlockHash { .. } => "block_hash",
            Self::TransactionCount { .. } => "transaction_count",
            Self::GasUsed { .. } => "gas_used",
            Self::Withdrawals { .. } => "withdrawals",
            Self::Outcome { .. } => "outcome",
        }
    }
}

/// Compares what the legacy and the actor path produced for the same slot.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StateValidator {
    /// Allowed relative difference in gas used (0.0 = exact; e.g. 0.01 = 1 %).
    pub gas_tolerance: f64,
    /// Whether identical block hashes are required (false when the two paths may legitimately
    /// build different blocks, e.g. different transaction pools).
    pub require_same_hash: bool,
}

impl Default for StateValidator {
    fn default() -> Self {
        Self {
            gas_tolerance: 0.0,
            require_same_hash: true,
        }
    }
}

impl StateValidator {
    /// Every difference between `legacy` and `actor` (empty: they agree).
    pub fn compare(&self, legacy: &ExecutionPayload, actor: &ExecutionPayload) -> Vec<Mismatch> {
        let mut out = Vec::new();
        if self.require_same_hash && legacy.block_hash() != actor.block_hash() {
            out.push(Mismatch::BlockHash {
                legacy: legacy.block_hash(),
                actor: actor.block_hash(),
            });
        }
        let (lt, at) = (legacy.transactions().len(), actor.transactions().len());
        if lt != at {
            out.push(Mismatch::TransactionCount {
                legacy: lt,
                actor: at,
            });
        }
        let (lg, ag) = (legacy.as_v1().gas_used, actor.as_v1().gas_used);
        let allowed = (lg.max(ag) as f64 * self.gas_tolerance).floor() as u64;
        if lg.abs_diff(ag) > allowed {
            out.push(Mismatch::GasUsed {
                legacy: lg,
                actor: ag,
            });
        }
        let pairs = |p: &ExecutionPayload| {
            p.withdrawals()
                .map(|ws| ws.iter().map(|w| (w.address, w.amount)).collect::<Vec<_>>())
                .unwrap_or_default()
        };
        let (lw, aw) = (pairs(legacy), pairs(actor));
        if lw != aw {
            out.push(Mismatch::Withdrawals {
                legacy: lw.len(),
                actor: aw.len(),
            });
        }
        out
    }
}
