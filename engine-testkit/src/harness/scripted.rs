//! [`ScriptedClient`]: an in-memory [`ExecutionClient`] for unit tests of code that is generic
//! over the client (the engine's write functions, the migration paths). Answers can be
//! scripted per method (builder style); by default it behaves like a tiny, consistent EL: it
//! knows the blocks it built or was given, answers VALID, numbers payload ids. Every call is
//! recorded. For the wire format use [`MockExecutionLayer`](crate::MockExecutionLayer).

use std::{
    collections::{HashMap, VecDeque},
    sync::{Mutex, MutexGuard, PoisonError},
};

use alloy_consensus::Sealed;
use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bloom, Bytes, U256, keccak256};
use alloy_rpc_types_engine::{
    ExecutionData, ExecutionPayload, ExecutionPayloadBodiesV1, ExecutionPayloadSidecar,
    ExecutionPayloadV1, ExecutionPayloadV2, ForkchoiceState, ForkchoiceUpdated, PayloadAttributes,
    PayloadId, PayloadStatus, PayloadStatusEnum,
};
use alloy_rpc_types_eth::{Block, BlockTransactions, Filter, Header, Log, TransactionReceipt};
use engine_clients::{BuiltPayload, Capabilities, ExecutionClient, Quirks, SyncState};
use engine_types::{ClientIdentity, EngineError, ForkSchedule};

/// A method a [`ScriptedClient`] answers, for scripting and for the call record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScriptedMethod {
    /// `forkchoice_updated`.
    ForkchoiceUpdated,
    /// `get_payload`.
    GetPayload,
    /// `new_payload`.
    NewPayload,
    /// `block`.
    Block,
    /// `block_receipts`.
    BlockReceipts,
}

/// One call a [`ScriptedClient`] received.
#[derive(Debug, Clone, PartialEq)]
pub enum ScriptedCall {
    /// forkchoiceUpdated with this state and attributes.
    ForkchoiceUpdated(ForkchoiceState, Option<Box<PayloadAttributes>>),
    /// getPayload of this id.
    GetPayload(PayloadId),
    /// newPayload of this block.
    NewPayload(B256),
    /// A block lookup.
    Block(BlockId),
    /// A receipts lookup.
    BlockReceipts(BlockId),
}

/// What a scripted answer does.
#[derive(Debug)]
pub enum Scripted<T> {
    /// Answer this.
    Answer(Result<T, EngineError>),
    /// Panic inside the call (a bug in a client, as seen by the caller).
    Panic(&'static str),
}

#[derive(Debug, Clone, Copy)]
struct KnownBlock {
    number: u64,
    timestamp: u64,
    parent: B256,
}

#[derive(Debug, Default)]
struct State {
    blocks: HashMap<B256, KnownBlock>,
    /// Canonical chain by number, as the last forkchoiceUpdated set it.
    canonical: HashMap<u64, B256>,
    head: B256,
    builds: HashMap<PayloadId, (B256, PayloadAttributes)>,
    next_id: u64,
    fcu: VecDeque<Scripted<ForkchoiceUpdated>>,
    get_payload: VecDeque<Scripted<BuiltPayload>>,
    new_payload: VecDeque<Scripted<PayloadStatus>>,
    calls: Vec<ScriptedCall>,
}

/// An in-memory execution client (see the [module docs](self)).
#[derive(Debug)]
pub struct ScriptedClient {
    state: Mutex<State>,
    forks: ForkSchedule,
    identity: ClientIdentity,
    capabilities: Capabilities,
}

impl Default for ScriptedClient {
    fn default() -> Self {
        Self::new()
    }
}

/// A V2 payload on `parent` for `attributes`, its hash derived from its contents.
fn payload_for(parent: B256, number: u64, attributes: &PayloadAttributes) -> ExecutionPayloadV2 {
    let withdrawals = attributes.withdrawals.clone().unwrap_or_default();
    let mut seed = parent.to_vec();
    seed.extend_from_slice(&attributes.timestamp.to_be_bytes());
    seed.extend_from_slice(attributes.suggested_fee_recipient.as_slice());
    for w in &withdrawals {
        seed.extend_from_slice(&w.index.to_be_bytes());
        seed.extend_from_slice(w.address.as_slice());
        seed.extend_from_slice(&w.amount.to_be_bytes());
    }
    ExecutionPayloadV2 {
        payload_inner: ExecutionPayloadV1 {
            parent_hash: parent,
            fee_recipient: attributes.suggested_fee_recipient,
            state_root: B256::repeat_byte(0x51),
            receipts_root: B256::repeat_byte(0x52),
            logs_bloom: Bloom::ZERO,
            prev_randao: attributes.prev_randao,
            block_number: number,
            gas_limit: 30_000_000,
            gas_used: 0,
            timestamp: attributes.timestamp,
            extra_data: Bytes::new(),
            base_fee_per_gas: U256::from(7),
            block_hash: keccak256(&seed),
            transactions: Vec::new(),
        },
        withdrawals,
    }
}

impl ScriptedClient {
    /// A Shanghai-from-genesis client whose chain is one genesis block at timestamp 0.
    pub fn new() -> Self {
        let genesis = B256::repeat_byte(0x6e);
        let mut state = State {
            head: genesis,
            ..State::default()
        };
        state.blocks.insert(
            genesis,
            KnownBlock {
                number: 0,
                timestamp: 0,
                parent: B256::ZERO,
            },
        );
        state.canonical.insert(0, genesis);
        Self {
            state: Mutex::new(state),
            forks: ForkSchedule::shanghai(),
            identity: ClientIdentity::default(),
            capabilities: Capabilities::unknown(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The genesis block's hash.
    pub fn genesis(&self) -> B256 {
        self.state().canonical.get(&0).copied().unwrap_or_default()
    }

    /// The head the last forkchoiceUpdated set.
    pub fn head(&self) -> B256 {
        self.state().head
    }

    /// The next forkchoiceUpdated answers this (then the default behaviour resumes).
    pub fn with_forkchoice_updated(self, answer: Scripted<ForkchoiceUpdated>) -> Self {
        self.state().fcu.push_back(answer);
        self
    }

    /// The next getPayload answers this.
    pub fn with_get_payload(self, answer: Scripted<BuiltPayload>) -> Self {
        self.state().get_payload.push_back(answer);
        self
    }

    /// The next newPayload answers this.
    pub fn with_new_payload(self, answer: Scripted<PayloadStatus>) -> Self {
        self.state().new_payload.push_back(answer);
        self
    }

    /// Script the next answer of `method` on a shared client.
    pub fn script_new_payload(&self, answer: Scripted<PayloadStatus>) {
        self.state().new_payload.push_back(answer);
    }

    /// Script the next forkchoiceUpdated on a shared client.
    pub fn script_forkchoice_updated(&self, answer: Scripted<ForkchoiceUpdated>) {
        self.state().fcu.push_back(answer);
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<ScriptedCall> {
        self.state().calls.clone()
    }

    /// How many calls of `method` so far.
    pub fn count(&self, method: ScriptedMethod) -> usize {
        self.state()
            .calls
            .iter()
            .filter(|c| {
                matches!(
                    (c, method),
                    (
                        ScriptedCall::ForkchoiceUpdated(..),
                        ScriptedMethod::ForkchoiceUpdated
                    ) | (ScriptedCall::GetPayload(_), ScriptedMethod::GetPayload)
                        | (ScriptedCall::NewPayload(_), ScriptedMethod::NewPayload)
                        | (ScriptedCall::Block(_), ScriptedMethod::Block)
                        | (
                            ScriptedCall::BlockReceipts(_),
                            ScriptedMethod::BlockReceipts
                        )
                )
            })
            .count()
    }

    /// A payload on `parent` that this client will accept (newPayload VALID), as a caller from
    /// elsewhere (a peer) would send it.
    pub fn foreign_payload(
        &self,
        parent: B256,
        timestamp: u64,
        fee_recipient: Address,
    ) -> ExecutionData {
        let number = self.state().blocks.get(&parent).map_or(1, |b| b.number + 1);
        let attributes = PayloadAttributes {
            timestamp,
            suggested_fee_recipient: fee_recipient,
            ..PayloadAttributes::default()
        }
        .with_withdrawals(Vec::new());
        ExecutionData::new(
            ExecutionPayload::V2(payload_for(parent, number, &attributes)),
            ExecutionPayloadSidecar::none(),
        )
    }

    fn rpc_block(hash: B256, known: KnownBlock) -> Block {
        let header = alloy_consensus::Header {
            parent_hash: known.parent,
            number: known.number,
            timestamp: known.timestamp,
            ..alloy_consensus::Header::default()
        };
        Block {
            header: Header::from_consensus(Sealed::new_unchecked(header, hash), None, None),
            uncles: Vec::new(),
            transactions: BlockTransactions::Hashes(Vec::new()),
            withdrawals: None,
        }
    }

    fn take<T>(queue: &mut VecDeque<Scripted<T>>) -> Option<Result<T, EngineError>> {
        match queue.pop_front()? {
            Scripted::Answer(a) => Some(a),
            Scripted::Panic(why) => panic!("{why}"),
        }
    }

    /// Make `head` canonical: walk back from it, renumbering the canonical chain.
    fn set_head(state: &mut State, head: B256) {
        state.head = head;
        let mut at = head;
        while let Some(b) = state.blocks.get(&at).copied() {
            state.canonical.insert(b.number, at);
            if b.number == 0 {
                break;
            }
            at = b.parent;
        }
        let top = state.blocks.get(&head).map_or(0, |b| b.number);
        state.canonical.retain(|n, _| *n <= top);
    }
}

impl ExecutionClient for ScriptedClient {
    fn endpoint(&self) -> &str {
        "scripted://"
    }

    fn identity(&self) -> &ClientIdentity {
        &self.identity
    }

    fn quirks(&self) -> Quirks {
        Quirks::NONE
    }

    fn capabilities(&self) -> &Capabilities {
        &self.capabilities
    }

    fn fork_schedule(&self) -> &ForkSchedule {
        &self.forks
    }

    async fn exchange_capabilities(&self) -> Result<Capabilities, EngineError> {
        Ok(Capabilities::unknown())
    }

    async fn forkchoice_updated(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        let mut s = self.state();
        s.calls.push(ScriptedCall::ForkchoiceUpdated(
            state,
            attributes.clone().map(Box::new),
        ));
        if let Some(answer) = Self::take(&mut s.fcu) {
            return answer;
        }
        let head = state.head_block_hash;
        if !s.blocks.contains_key(&head) {
            return Ok(ForkchoiceUpdated::from_status(PayloadStatusEnum::Syncing));
        }
        Self::set_head(&mut s, head);
        let valid = PayloadStatus::new(PayloadStatusEnum::Valid, Some(head));
        let payload_id = attributes.map(|attrs| {
            s.next_id += 1;
            let id = PayloadId::new(s.next_id.to_be_bytes());
            s.builds.insert(id, (head, attrs));
            id
        });
        Ok(ForkchoiceUpdated {
            payload_status: valid,
            payload_id,
        })
    }

    async fn get_payload(
        &self,
        payload_id: PayloadId,
        _timestamp: u64,
        _parent_beacon_block_root: Option<B256>,
    ) -> Result<BuiltPayload, EngineError> {
        let mut s = self.state();
        s.calls.push(ScriptedCall::GetPayload(payload_id));
        if let Some(answer) = Self::take(&mut s.get_payload) {
            return answer;
        }
        let (parent, attributes) =
            s.builds
                .get(&payload_id)
                .cloned()
                .ok_or_else(|| EngineError::UnknownPayload {
                    method: "engine_getPayloadV2".into(),
                    message: format!("unknown payload {payload_id}"),
                })?;
        let number = s.blocks.get(&parent).map_or(1, |b| b.number + 1);
        Ok(BuiltPayload {
            payload_id,
            execution_data: ExecutionData::new(
                ExecutionPayload::V2(payload_for(parent, number, &attributes)),
                ExecutionPayloadSidecar::none(),
            ),
            block_value: U256::ZERO,
        })
    }

    async fn new_payload(&self, data: &ExecutionData) -> Result<PayloadStatus, EngineError> {
        let hash = data.payload.block_hash();
        let mut s = self.state();
        s.calls.push(ScriptedCall::NewPayload(hash));
        if let Some(answer) = Self::take(&mut s.new_payload) {
            return answer;
        }
        let parent = data.payload.parent_hash();
        if !s.blocks.contains_key(&parent) {
            return Ok(PayloadStatus::from_status(PayloadStatusEnum::Syncing));
        }
        s.blocks.insert(
            hash,
            KnownBlock {
                number: data.payload.block_number(),
                timestamp: data.payload.timestamp(),
                parent,
            },
        );
        Ok(PayloadStatus::new(PayloadStatusEnum::Valid, Some(hash)))
    }

    async fn payload_bodies_by_hash(
        &self,
        _hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        Ok(Vec::new())
    }

    async fn payload_bodies_by_range(
        &self,
        _start: u64,
        _count: u64,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        Ok(Vec::new())
    }

    async fn block(&self, id: BlockId, _full: bool) -> Result<Option<Block>, EngineError> {
        let mut s = self.state();
        s.calls.push(ScriptedCall::Block(id));
        let hash = match id {
            BlockId::Hash(h) => Some(h.block_hash),
            BlockId::Number(BlockNumberOrTag::Number(n)) => s.canonical.get(&n).copied(),
            BlockId::Number(BlockNumberOrTag::Latest) => Some(s.head),
            BlockId::Number(BlockNumberOrTag::Earliest) => s.canonical.get(&0).copied(),
            BlockId::Number(_) => None,
        };
        Ok(hash.and_then(|h| s.blocks.get(&h).map(|b| Self::rpc_block(h, *b))))
    }

    async fn logs(&self, _filter: &Filter) -> Result<Vec<Log>, EngineError> {
        Ok(Vec::new())
    }

    async fn transaction_receipt(
        &self,
        _hash: B256,
    ) -> Result<Option<TransactionReceipt>, EngineError> {
        Ok(None)
    }

    async fn block_receipts(
        &self,
        block: BlockId,
    ) -> Result<Option<Vec<TransactionReceipt>>, EngineError> {
        self.state().calls.push(ScriptedCall::BlockReceipts(block));
        Ok(Some(Vec::new()))
    }

    async fn sync_state(&self) -> Result<SyncState, EngineError> {
        Ok(SyncState::Synced)
    }

    async fn chain_id(&self) -> Result<u64, EngineError> {
        Ok(263_634)
    }

    async fn balance(&self, _address: Address, _block: BlockId) -> Result<U256, EngineError> {
        Ok(U256::ZERO)
    }

    async fn send_raw_transaction(&self, raw: Bytes) -> Result<B256, EngineError> {
        Ok(keccak256(&raw))
    }
}
