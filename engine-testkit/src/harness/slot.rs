//! One Alys slot, through the engine ([`engine_slot`]) or directly on engine-clients
//! ([`client_slot`]): build on the head with peg-ins, commit, return what was made.

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ExecutionData, ForkchoiceState, PayloadAttributes};
use engine_actor::EngineHandle;
use engine_clients::{BuiltPayload, ExecutionClient};
use engine_types::{
    AddBalance, BuildPayloadRequest, ConsensusAmount, DEFAULT_FEE_RECIPIENT, EngineError,
    require_valid, withdrawals_from_peg_ins,
};

/// A peg-in of `satoshi` to `0xbyte…byte`.
pub fn peg_in(byte: u8, satoshi: u64) -> AddBalance {
    AddBalance(
        Address::repeat_byte(byte),
        ConsensusAmount::from_satoshi(satoshi).unwrap_or_default(),
    )
}

/// `count` peg-ins of 1 000 Gwei to `0x…01`, `0x…02`, ...
pub fn peg_ins(count: usize) -> Vec<AddBalance> {
    (0..count)
        .map(|i| {
            AddBalance(
                Address::with_last_byte(u8::try_from(i + 1).unwrap_or(u8::MAX)),
                ConsensusAmount(1_000),
            )
        })
        .collect()
}

/// What one slot made.
#[derive(Debug, Clone)]
pub struct Slot {
    /// The committed block's hash (the new head).
    pub hash: B256,
    /// The payload as built.
    pub built: BuiltPayload,
}

/// Build on the engine's head at its timestamp `+ step` with `peg_ins`, and commit.
pub async fn engine_slot_after(
    engine: &EngineHandle,
    step: u64,
    peg_ins: Vec<AddBalance>,
) -> Result<Slot, EngineError> {
    let head = engine.forkchoice().await?;
    let built = engine
        .build_payload(BuildPayloadRequest::new(head.head_timestamp + step).with_peg_ins(peg_ins))
        .await?;
    let hash = engine.commit_payload(built.execution_data.clone()).await?;
    Ok(Slot { hash, built })
}

/// [`engine_slot_after`] two seconds after the head (one Alys slot).
pub async fn engine_slot(
    engine: &EngineHandle,
    peg_ins: Vec<AddBalance>,
) -> Result<Slot, EngineError> {
    engine_slot_after(engine, 2, peg_ins).await
}

/// One slot directly on a client, as the old engine made it: forkchoiceUpdated(head = `parent`,
/// attributes) → getPayload → newPayload (VALID required) → forkchoiceUpdated(head = block).
/// Withdrawal indices start at `first_withdrawal_index`; before Cancun no beacon root, after it
/// zero.
pub async fn client_slot<C: ExecutionClient>(
    client: &C,
    parent: B256,
    timestamp: u64,
    peg_ins: &[AddBalance],
    first_withdrawal_index: u64,
) -> Result<ExecutionData, EngineError> {
    let fork = client.fork_schedule().fork_at(timestamp);
    let root = fork.has_blob_fields().then_some(B256::ZERO);
    let mut attributes = PayloadAttributes {
        timestamp,
        suggested_fee_recipient: DEFAULT_FEE_RECIPIENT,
        ..PayloadAttributes::default()
    }
    .with_withdrawals(withdrawals_from_peg_ins(peg_ins, first_withdrawal_index));
    attributes.parent_beacon_block_root = root;
    let state = |head| ForkchoiceState {
        head_block_hash: head,
        safe_block_hash: B256::ZERO,
        finalized_block_hash: B256::ZERO,
    };
    let updated = client
        .forkchoice_updated(state(parent), Some(attributes))
        .await?;
    let id = updated
        .payload_id
        .ok_or_else(|| EngineError::MissingInResponse {
            method: "engine_forkchoiceUpdated".into(),
            missing: "a payload id".into(),
        })?;
    let built = client.get_payload(id, timestamp, root).await?;
    let hash = built.block_hash();
    require_valid(&client.new_payload(&built.execution_data).await?, hash)?;
    let updated = client.forkchoice_updated(state(hash), None).await?;
    if !updated.payload_status.is_valid() {
        return Err(EngineError::Syncing { block_hash: hash });
    }
    Ok(built.execution_data)
}
