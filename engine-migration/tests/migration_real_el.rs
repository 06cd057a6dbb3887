//! The migration adapter and the compat client against real execution clients (EthereumJS and
//! Reth, one test body per client): 20 slots each in Parallel and Shadow mode with zero
//! mismatches, and the v4/v5 compat client in Parallel.
//!
//! Both paths drive the one execution client, as in a node: the legacy path builds and commits,
//! the actor builds the same slot from the same parent and commits the same block.
//! EthereumJS is required (`just setup` installs it). Reth runs when `RETH_BIN` is set (then it
//! is required) or `reth` is on PATH; otherwise its cases print `SKIPPED: …`.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, U256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use engine_actor::{Engine, EngineSystem};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_migration::{
    AdapterConfig, CompatClient, CompatMetrics, CompatMode, DenebAttributes, DenebForkchoiceState,
    DirectEngine, LegacyEngine, MigrationAdapter, MigrationMetrics, MigrationMode, Thresholds,
    deneb_request,
};
use engine_testkit::{GenesisOptions, RealClientKind, RealExecutionClient};
use engine_types::{
    AddBalance, ConsensusAmount, DEFAULT_FEE_RECIPIENT, EngineConfig, ForkSchedule,
    withdrawals_from_peg_ins,
};
use rstest::rstest;

const SLOTS: u64 = 20;

/// `kind` on a Shanghai chain and options for it, or `None` when the test is skipped.
async fn start(kind: RealClientKind) -> Option<(RealExecutionClient, ClientOptions)> {
    let el = RealExecutionClient::start_or_skip(kind, &GenesisOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{kind} starts: {e}"))?;
    let options = ClientOptions::new(el.engine_url(), el.jwt_secret())
        .with_eth_url(el.eth_url())
        .with_fork_schedule(ForkSchedule::shanghai());
    Some((el, options))
}

#[rstest]
#[case::parallel_ethereumjs_el(RealClientKind::EthereumJs, MigrationMode::Parallel)]
#[case::parallel_reth_el(RealClientKind::Reth, MigrationMode::Parallel)]
#[case::shadow_ethereumjs_el(RealClientKind::EthereumJs, MigrationMode::Shadow)]
#[case::shadow_reth_el(RealClientKind::Reth, MigrationMode::Shadow)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_slots_with_zero_mismatches(
    #[case] kind: RealClientKind,
    #[case] mode: MigrationMode,
) {
    let Some((el, options)) = start(kind).await else {
        return;
    };
    let direct = DirectEngine::new(HttpExecutionClient::connect(options.clone()).await.unwrap())
        .await
        .unwrap();
    let config = EngineConfig {
        fork_schedule: ForkSchedule::shanghai(),
        ..EngineConfig::default()
    };
    let system = EngineSystem::start_with_options(config, vec![options.clone()])
        .await
        .unwrap();
    let adapter = MigrationAdapter::new(
        direct,
        Engine::new(system.handle()),
        mode,
        // Latency on a shared 2-core machine is noise; this run judges agreement.
        AdapterConfig::default().with_thresholds(Thresholds {
            max_latency_regression: None,
            ..Thresholds::default()
        }),
        MigrationMetrics::new().unwrap(),
    );
    adapter.initialize_actor_from_legacy().await.unwrap();
    let observer = HttpExecutionClient::connect(options).await.unwrap();
    let genesis = observer
        .block(BlockId::Number(BlockNumberOrTag::Latest), false)
        .await
        .unwrap()
        .unwrap();
    let mut timestamp = genesis.header.timestamp;
    let mut last = None;
    let signing = if mode == MigrationMode::Shadow {
        Duration::from_millis(300)
    } else {
        Duration::ZERO
    };
    for slot in 1..=SLOTS {
        timestamp += 2;
        let peg_ins = vec![AddBalance(
            Address::with_last_byte(slot as u8),
            ConsensusAmount::from_satoshi(1_000 * slot).unwrap(),
        )];
        let built = adapter
            .build_block(Duration::from_secs(timestamp), None, peg_ins)
            .await
            .unwrap_or_else(|e| panic!("{mode} slot {slot}: build: {e}"));
        // The node signs, gossips and collects approvals before it imports its own block:
        // shadow work runs in those windows (it never delays a production call).
        tokio::time::sleep(signing).await;
        let hash = adapter
            .commit_block(built)
            .await
            .unwrap_or_else(|e| panic!("{mode} slot {slot}: commit: {e}"));
        tokio::time::sleep(signing).await;
        if slot % 5 == 0 {
            adapter.set_finalized(hash).await.unwrap();
        }
        last = Some(hash);
    }
    adapter.shadow_idle().await;
    let report = adapter.report();
    println!(
        "{mode} on {kind}, {SLOTS} slots: {} comparisons, {} mismatches, score {:.1}, legacy p50 {:?} / actor p50 {:?}",
        report.health.comparisons,
        report.health.mismatches,
        report.score,
        report.health.baseline.p50,
        report.health.candidate.p50
    );
    assert_eq!(
        report.mode, mode,
        "no rollback: {:#?}\n{report:#?}",
        report.recent_mismatches
    );
    assert_eq!(report.health.mismatches, 0, "{report:#?}");
    if mode == MigrationMode::Shadow {
        // Shadow work yields to production: a shadow build still running when its commit
        // comes is dropped (counted), never waited for.
        assert!(
            report.health.comparisons >= 3 * SLOTS / 2,
            "most builds and commits compared: {report:#?}"
        );
        println!(
            "shadow: {} comparisons of {} possible, {} jobs dropped ({} stopped mid-call for production)",
            report.health.comparisons,
            2 * SLOTS,
            report.shadow_dropped,
            report.shadow_preempted
        );
    } else {
        assert_eq!(
            report.health.comparisons,
            2 * SLOTS,
            "every build and commit compared"
        );
    }
    assert_eq!(report.health.candidate.errors, 0, "{report:#?}");
    let head = observer
        .block(BlockId::Number(BlockNumberOrTag::Latest), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(head.header.hash), last);
    assert_eq!(head.header.number, SLOTS);
    let balance = observer
        .balance(Address::with_last_byte(SLOTS as u8), BlockId::latest())
        .await
        .unwrap();
    assert_eq!(
        balance,
        U256::from(1_000 * SLOTS) * U256::from(10_000_000_000u64),
        "the peg-in was credited once"
    );
    drop(adapter);
    system.shutdown().await;
    drop(el);
}

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compat_client_parallel_v4_v5_zero_mismatches(#[case] kind: RealClientKind) {
    let Some((el, options)) = start(kind).await else {
        return;
    };
    let client = HttpExecutionClient::connect(options).await.unwrap();
    let compat = CompatClient::new(client, CompatMode::Parallel, CompatMetrics::new().unwrap());
    let genesis = compat
        .client()
        .block(BlockId::Number(BlockNumberOrTag::Latest), false)
        .await
        .unwrap()
        .unwrap();
    let mut head = genesis.header.hash;
    let mut timestamp = genesis.header.timestamp;
    for slot in 1..=10u64 {
        timestamp += 2;
        let state = ForkchoiceState {
            head_block_hash: head,
            safe_block_hash: head,
            finalized_block_hash: head,
        };
        let attributes = PayloadAttributes {
            timestamp,
            prev_randao: Default::default(),
            suggested_fee_recipient: DEFAULT_FEE_RECIPIENT,
            withdrawals: Some(withdrawals_from_peg_ins(
                &[AddBalance(
                    Address::with_last_byte(slot as u8),
                    ConsensusAmount::from_satoshi(10).unwrap(),
                )],
                slot,
            )),
            parent_beacon_block_root: None,
            ..Default::default()
        };
        let started = compat
            .forkchoice_updated(
                DenebForkchoiceState(state),
                Some(DenebAttributes(attributes)),
            )
            .await
            .unwrap();
        let built = compat
            .get_payload(started.payload_id.unwrap(), timestamp, None)
            .await
            .unwrap();
        let status = compat
            .new_payload(deneb_request(&built).unwrap())
            .await
            .unwrap();
        assert!(status.is_valid(), "slot {slot}: {status:?}");
        head = built.block_hash();
        let moved = compat
            .forkchoice_updated(
                DenebForkchoiceState(ForkchoiceState {
                    head_block_hash: head,
                    ..state
                }),
                None,
            )
            .await
            .unwrap();
        assert!(moved.payload_status.is_valid());
    }
    let report = compat.report();
    for op in &report.operations {
        println!(
            "{:?}: {} matches, {} mismatches; v4 p50 {:?} p99 {:?}; v5 p50 {:?} p99 {:?}",
            op.operation, op.matches, op.mismatches, op.v4.p50, op.v4.p99, op.v5.p50, op.v5.p99
        );
        assert_eq!(op.mismatches, 0, "{op:#?}");
        assert!(op.matches >= 10, "{op:?}");
        assert_eq!((op.v4.errors, op.v5.errors), (0, 0), "{op:?}");
    }
    drop(el);
}
