//! The legacy path (`DirectEngine`) and the actor path (`engine_actor::Engine`) behind one
//! trait, on two mocks with the same genesis: same slots → the same blocks.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::ExecutionPayload;
use engine_actor::{Engine, EngineSystem};
use engine_clients::{ClientOptions, HttpExecutionClient};
use engine_migration::{DirectEngine, LegacyEngine, Mismatch, StateValidator};
use engine_testkit::{ClientProfile, Fault, FaultRule, MockConfig, MockExecutionLayer};
use engine_types::{AddBalance, ConsensusAmount, EngineConfig, EngineError};

async fn slot<E: LegacyEngine>(
    engine: &E,
    ts: u64,
    peg_ins: Vec<AddBalance>,
) -> Result<(ExecutionPayload, B256), EngineError> {
    let built = engine
        .build_block(Duration::from_secs(ts), None, peg_ins)
        .await?;
    let payload = built.payload.clone();
    let hash = engine.commit_block(built).await?;
    Ok((payload, hash))
}

async fn mock() -> MockExecutionLayer {
    MockExecutionLayer::start(MockConfig::default().with_profile(ClientProfile::reth()))
        .await
        .unwrap()
}

#[tokio::test]
async fn both_paths_build_identical_blocks_for_identical_slots() {
    let (legacy_el, actor_el) = (mock().await, mock().await);
    let direct = DirectEngine::new(
        HttpExecutionClient::connect(ClientOptions::new(legacy_el.url(), legacy_el.jwt_secret()))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let system = EngineSystem::start_with_options(
        EngineConfig::default(),
        vec![ClientOptions::new(actor_el.url(), actor_el.jwt_secret())],
    )
    .await
    .unwrap();
    let actor = Engine::new(system.handle());
    let validator = StateValidator::default();
    for n in 1..=5u64 {
        let peg_ins = vec![AddBalance(
            Address::with_last_byte(n as u8),
            ConsensusAmount::from_satoshi(100 * n).unwrap(),
        )];
        let (legacy_payload, legacy_hash) = slot(&direct, 2 * n, peg_ins.clone()).await.unwrap();
        let (actor_payload, actor_hash) = slot(&actor, 2 * n, peg_ins).await.unwrap();
        assert_eq!(
            validator.compare(&legacy_payload, &actor_payload),
            vec![],
            "slot {n}"
        );
        assert_eq!(legacy_hash, actor_hash);
    }
    direct
        .set_finalized(legacy_el.with_chain(|c| c.head()))
        .await
        .unwrap();
    actor
        .set_finalized(actor_el.with_chain(|c| c.head()))
        .await
        .unwrap();
    assert_eq!(
        legacy_el.with_chain(|c| c.finalized()),
        actor_el.with_chain(|c| c.finalized())
    );
    system.shutdown().await;
}

#[tokio::test]
async fn the_direct_path_checks_the_status_the_old_engine_ignored() {
    let el = mock().await;
    let direct = DirectEngine::new(
        HttpExecutionClient::connect(ClientOptions::new(el.url(), el.jwt_secret()))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let head = el.with_chain(|c| c.head());
    let built = direct
        .build_block(Duration::from_secs(2), None, vec![])
        .await
        .unwrap();
    el.inject(
        FaultRule::new(Fault::invalid("bad block", Some(head)))
            .on("engine_newPayload")
            .times(1),
    );
    let err = direct.commit_block(built).await.unwrap_err();
    assert!(
        matches!(err, EngineError::InvalidPayload { latest_valid_hash: Some(h), .. } if h == head),
        "{err:?}"
    );
    assert_eq!(el.with_chain(|c| c.head()), head, "nothing committed");
}

#[test]
fn the_validator_names_each_difference() {
    let base = alloy_rpc_types_engine::ExecutionPayloadV1 {
        parent_hash: B256::ZERO,
        fee_recipient: Address::ZERO,
        state_root: B256::ZERO,
        receipts_root: B256::ZERO,
        logs_bloom: Default::default(),
        prev_randao: B256::ZERO,
        block_number: 1,
        gas_limit: 30_000_000,
        gas_used: 100_000,
        timestamp: 2,
        extra_data: Default::default(),
        base_fee_per_gas: alloy_primitives::U256::from(7),
        block_hash: B256::repeat_byte(1),
        transactions: vec![],
    };
    let legacy = ExecutionPayload::V2(alloy_rpc_types_engine::ExecutionPayloadV2 {
        payload_inner: base.clone(),
        withdrawals: vec![],
    });
    let mut other = base;
    other.block_hash = B256::repeat_byte(2);
    other.gas_used = 100_500;
    other.transactions = vec![alloy_primitives::Bytes::from_static(&[1])];
    let actor = ExecutionPayload::V2(alloy_rpc_types_engine::ExecutionPayloadV2 {
        payload_inner: other,
        withdrawals: vec![alloy_eips::eip4895::Withdrawal {
            index: 0,
            validator_index: 0,
            address: Address::ZERO,
            amount: 1,
        }],
    });
    let strict = StateValidator::default().compare(&legacy, &actor);
    assert_eq!(strict.len(), 4, "{strict:?}");
    assert!(matches!(
        strict[2],
        Mismatch::GasUsed {
            legacy: 100_000,
            actor: 100_500
        }
    ));
    let lenient = StateValidator {
        gas_tolerance: 0.01,
        require_same_hash: false,
    }
    .compare(&legacy, &actor);
    assert_eq!(
        lenient,
        vec![
            Mismatch::TransactionCount {
                legacy: 0,
                actor: 1
            },
            Mismatch::Withdrawals {
                legacy: 0,
                actor: 1
            }
        ]
    );
}

/// Concurrent writes on the legacy path apply one after the other: the commit of block n and
/// the finalization of block n - 1, raced against each other with every forkchoiceUpdated
/// slowed down, never lose each other's update.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_direct_engine_loses_no_update_under_concurrent_writes() {
    use engine_migration::MigrationPath;
    let el = mock().await;
    let direct = DirectEngine::new(
        HttpExecutionClient::connect(ClientOptions::new(el.url(), el.jwt_secret()))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    el.inject(
        FaultRule::new(Fault::Latency(Duration::from_millis(20))).on("engine_forkchoiceUpdated"),
    );
    let mut committed: Vec<B256> = Vec::new();
    for n in 1..=8u64 {
        let built = direct
            .build_block(Duration::from_secs(2 * n), None, Vec::new())
            .await
            .unwrap();
        let previous = committed.last().copied();
        let (commit, finalize) = tokio::join!(direct.commit_block(built), async {
            match previous {
                Some(hash) => direct.set_finalized(hash).await,
                None => Ok(()),
            }
        });
        committed.push(commit.unwrap());
        finalize.unwrap();
        let state = direct.path_state().await.unwrap().forkchoice;
        assert_eq!(
            state.head_block_hash,
            committed[committed.len() - 1],
            "slot {n}: the head survived the finalization"
        );
        if let Some(previous) = previous {
            assert_eq!(state.finalized_block_hash, previous, "slot {n}");
        }
    }
    let finalized = committed[committed.len() - 2];
    assert_eq!(
        el.with_chain(|c| (c.head(), c.finalized())),
        (committed[committed.len() - 1], finalized),
        "the EL agrees"
    );
}
