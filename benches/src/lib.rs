//! Workloads shared by the alys-engine benchmarks.
//!
//! [`direct_slot`] is one Alys slot made directly with `engine-clients`; it is the baseline the
//! actor path is compared against.

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use engine_clients::{ExecutionClient, HttpExecutionClient};
use engine_types::{
    AddBalance, ConsensusAmount, DEFAULT_FEE_RECIPIENT, EngineError, require_valid,
    withdrawals_from_peg_ins,
};

/// Build and commit one block on `head` at `timestamp` with `peg_ins` peg-ins; returns the new
/// head.
pub async fn direct_slot(
    client: &HttpExecutionClient,
    head: B256,
    timestamp: u64,
    peg_ins: usize,
) -> Result<B256, EngineError> {
    let pegs: Vec<AddBalance> = (0..peg_ins)
        .map(|i| AddBalance(Address::with_last_byte(i as u8 + 1), ConsensusAmount(1_000)))
        .collect();
    let attrs = PayloadAttributes {
        timestamp,
        prev_randao: B256::ZERO,
        suggested_fee_recipient: DEFAULT_FEE_RECIPIENT,
        withdrawals: Some(withdrawals_from_peg_ins(&pegs, timestamp * 16)),
        parent_beacon_block_root: None,
        ..Default::default()
    };
    let state = |h| ForkchoiceState {
        head_block_hash: h,
        safe_block_hash: B256::ZERO,
        finalized_block_hash: B256::ZERO,
    };
    let id = client
        .forkchoice_updated(state(head), Some(attrs))
        .await?
        .payload_id
        .ok_or(EngineError::MissingInResponse {
            method: "engine_forkchoiceUpdated".into(),
            missing: "payloadId".into(),
        })?;
    let built = client.get_payload(id, timestamp, None).await?;
    require_valid(
        &client.new_payload(&built.execution_data).await?,
        built.block_hash(),
    )?;
    client
        .forkchoice_updated(state(built.block_hash()), None)
        .await?;
    Ok(built.block_hash())
}

/// One Alys slot through the actor at `timestamp`: build with `peg_ins` peg-ins → commit.
/// Returns the new head. (The caller tracks the timestamp, as the direct path does.)
pub async fn actor_slot(
    engine: &engine_actor::EngineHandle,
    timestamp: u64,
    peg_ins: usize,
) -> Result<B256, EngineError> {
    let pegs: Vec<AddBalance> = (0..peg_ins)
        .map(|i| AddBalance(Address::with_last_byte(i as u8 + 1), ConsensusAmount(1_000)))
        .collect();
    let request = engine_types::BuildPayloadRequest::new(timestamp).with_peg_ins(pegs);
    let built = engine.build_payload(request).await?;
    engine.commit_payload(built.execution_data).await
}

/// Median and 95th percentile of `samples` (sorted in place), in milliseconds.
pub fn p50_p95_ms(samples: &mut [std::time::Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.95))
}
