//! The migration controller: the whole state machine on paused time, rollback on each kind of
//! regression with the reason and duration recorded, and a real walk of the compat client and
//! the adapter against the mock.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use engine_actor::{Engine, EngineSystem};
use engine_clients::{ClientOptions, HttpExecutionClient};
use engine_migration::{
    AdapterConfig, CompatClient, CompatMetrics, CompatMode, ControllerConfig, DenebAttributes,
    DenebForkchoiceState, DirectEngine, HealthSample, LegacyEngine, Migratable, MigrationAdapter,
    MigrationController, MigrationMetrics, MigrationMode, PathSample, RollbackReason, Stage,
    Thresholds, deneb_request,
};
use engine_testkit::{ClientProfile, MockConfig, MockExecutionLayer};
use engine_types::{EngineConfig, EngineError};
use rstest::rstest;

/// A target whose health the test scripts.
#[derive(Debug, Default)]
struct Scripted {
    entered: Mutex<Vec<Stage>>,
    health: Mutex<HealthSample>,
    rolled_back: Mutex<Option<RollbackReason>>,
}

impl Migratable for Scripted {
    async fn enter(&self, stage: Stage) -> Result<(), EngineError> {
        self.entered.lock().unwrap().push(stage);
        Ok(())
    }

    async fn roll_back(&self, reason: RollbackReason) {
        *self.rolled_back.lock().unwrap() = Some(reason);
    }

    fn health(&self) -> HealthSample {
        *self.health.lock().unwrap()
    }
}

fn side(calls: u64, errors: u64, p50_ms: u64) -> PathSample {
    PathSample {
        calls,
        errors,
        p50: Some(Duration::from_millis(p50_ms)),
        p95: None,
        p99: None,
    }
}

fn healthy() -> HealthSample {
    HealthSample {
        baseline: side(1_000, 0, 40),
        candidate: side(1_000, 0, 40),
        comparisons: 1_000,
        mismatches: 0,
    }
}

fn config() -> ControllerConfig {
    ControllerConfig {
        parallel_duration: Duration::from_secs(3_600),
        canary_steps: vec![5, 25, 50, 75],
        step_duration: Duration::from_secs(1_800),
        check_interval: Duration::from_secs(10),
        thresholds: Thresholds::default(),
        failed_checks_to_roll_back: 3,
    }
}

#[tokio::test(start_paused = true)]
async fn a_healthy_migration_walks_every_stage_to_complete() {
    let target = Arc::new(Scripted::default());
    *target.health.lock().unwrap() = healthy();
    let controller = MigrationController::new(Arc::clone(&target), config()).unwrap();
    assert_eq!(controller.stage(), Stage::PreMigration);
    let started = tokio::time::Instant::now();
    let end = controller.run().await.unwrap();
    let took = started.elapsed();
    assert_eq!(end, Stage::Complete);
    let stages: Vec<Stage> = controller.history().iter().map(|t| t.to).collect();
    let expected = vec![
        Stage::ParallelTesting,
        Stage::Canary(5),
        Stage::Canary(25),
        Stage::Canary(50),
        Stage::Canary(75),
        Stage::Complete,
    ];
    assert_eq!(stages, expected);
    assert_eq!(*target.entered.lock().unwrap(), expected);
    // 1 h parallel + 4 × 30 min, each ended at the first check after its duration.
    assert!(
        took >= Duration::from_secs(3_600 + 4 * 1_800)
            && took < Duration::from_secs(3 * 3_600 + 60),
        "{took:?}"
    );
    let at: Vec<u64> = controller
        .history()
        .iter()
        .map(|t| t.at.as_secs())
        .collect();
    println!("stage changes at (virtual) seconds: {at:?}");
    assert!(controller.rollback_record().is_none());
    assert!(target.rolled_back.lock().unwrap().is_none());
}

#[derive(Debug, Clone, Copy)]
enum Regression {
    Errors,
    Latency,
    Mismatch,
}

#[rstest]
#[case::error_rate(Regression::Errors)]
#[case::latency(Regression::Latency)]
#[case::mismatch(Regression::Mismatch)]
#[tokio::test(start_paused = true)]
async fn an_injected_regression_rolls_back_with_the_reason_and_duration(
    #[case] regression: Regression,
) {
    let target = Arc::new(Scripted::default());
    *target.health.lock().unwrap() = healthy();
    let controller = Arc::new(MigrationController::new(Arc::clone(&target), config()).unwrap());
    let mut stages = controller.subscribe();
    let run = tokio::spawn({
        let controller = Arc::clone(&controller);
        async move { controller.run().await }
    });
    // Wait for the second canary step, then regress.
    stages.wait_for(|s| *s == Stage::Canary(25)).await.unwrap();
    *target.health.lock().unwrap() = match regression {
        // 2 % errors (limit 1 %).
        Regression::Errors => HealthSample {
            candidate: side(1_000, 20, 40),
            ..healthy()
        },
        // 10 % slower (limit 5 %).
        Regression::Latency => HealthSample {
            candidate: side(1_000, 0, 44),
            ..healthy()
        },
        // One consensus mismatch (limit: none).
        Regression::Mismatch => HealthSample {
            mismatches: 1,
            ..healthy()
        },
    };
    let end = run.await.unwrap().unwrap();
    assert_eq!(end, Stage::RolledBack);
    let record = controller.rollback_record().unwrap();
    assert_eq!(record.from, "canary:25");
    match regression {
        Regression::Errors => assert!(
            matches!(
                record.reason,
                RollbackReason::ErrorRate {
                    errors: 20,
                    calls: 1_000,
                    ..
                }
            ),
            "{record:?}"
        ),
        Regression::Latency => assert!(
            matches!(record.reason, RollbackReason::LatencyRegression { .. }),
            "{record:?}"
        ),
        Regression::Mismatch => assert!(
            matches!(
                record.reason,
                RollbackReason::Mismatches { mismatches: 1, .. }
            ),
            "{record:?}"
        ),
    }
    assert_eq!(
        target.rolled_back.lock().unwrap().as_ref(),
        Some(&record.reason)
    );
    let last = controller.history().last().cloned().unwrap();
    assert_eq!((last.from, last.to), (Stage::Canary(25), Stage::RolledBack));
    assert_eq!(last.health, record.health);
    println!(
        "rolled back from {} after {:?} (virtual): {} — rollback took {:?}",
        record.from, last.at, record.reason, record.took
    );
    // Terminal: further checks change nothing.
    assert_eq!(controller.tick().await.unwrap(), Stage::RolledBack);
}

#[tokio::test(start_paused = true)]
async fn an_operator_can_roll_back_at_any_stage() {
    let target = Arc::new(Scripted::default());
    *target.health.lock().unwrap() = healthy();
    let controller = MigrationController::new(Arc::clone(&target), config()).unwrap();
    assert_eq!(controller.begin().await.unwrap(), Stage::ParallelTesting);
    let record = controller
        .rollback(RollbackReason::Manual("maintenance window over".into()))
        .await;
    assert_eq!(record.from, "parallel-testing");
    assert_eq!(controller.stage(), Stage::RolledBack);
    assert!(
        record
            .reason
            .to_string()
            .contains("maintenance window over")
    );
}

/// One noisy health sample does not roll back: two failed checks between healthy ones are
/// counted and forgiven; three in a row roll back.
#[tokio::test(start_paused = true)]
async fn only_consecutive_failed_checks_roll_back() {
    let target = Arc::new(Scripted::default());
    *target.health.lock().unwrap() = healthy();
    let controller = MigrationController::new(Arc::clone(&target), config()).unwrap();
    controller.begin().await.unwrap();
    let sick = HealthSample {
        candidate: side(1_000, 500, 40),
        ..healthy()
    };
    for _ in 0..2 {
        *target.health.lock().unwrap() = sick;
        assert_eq!(controller.tick().await.unwrap(), Stage::ParallelTesting);
    }
    *target.health.lock().unwrap() = healthy();
    assert_eq!(controller.tick().await.unwrap(), Stage::ParallelTesting);
    *target.health.lock().unwrap() = sick;
    assert_eq!(controller.tick().await.unwrap(), Stage::ParallelTesting);
    assert_eq!(controller.tick().await.unwrap(), Stage::ParallelTesting);
    assert!(target.rolled_back.lock().unwrap().is_none());
    assert_eq!(controller.tick().await.unwrap(), Stage::RolledBack);
    assert!(target.rolled_back.lock().unwrap().is_some());
}

#[test]
fn bad_canary_steps_are_refused_with_the_rule() {
    let bad = ControllerConfig {
        canary_steps: vec![5, 5, 50],
        ..config()
    };
    let err = MigrationController::new(Arc::new(Scripted::default()), bad).unwrap_err();
    assert!(err.to_string().contains("above the one before"), "{err}");
}

async fn mock() -> MockExecutionLayer {
    MockExecutionLayer::start(MockConfig::default().with_profile(ClientProfile::reth()))
        .await
        .unwrap()
}

fn fast() -> ControllerConfig {
    ControllerConfig {
        parallel_duration: Duration::from_millis(150),
        canary_steps: vec![10, 50],
        step_duration: Duration::from_millis(150),
        check_interval: Duration::from_millis(25),
        thresholds: Thresholds {
            // The mock answers in microseconds; latency ratios there are noise.
            max_latency_regression: None,
            min_calls: 5,
            ..Thresholds::default()
        },
        failed_checks_to_roll_back: 3,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_walks_the_compat_client_from_v4_to_v5_on_the_mock() {
    let mock = mock().await;
    let client = HttpExecutionClient::connect(ClientOptions::new(mock.url(), mock.jwt_secret()))
        .await
        .unwrap();
    let compat = CompatClient::new(client, CompatMode::V4Only, CompatMetrics::new().unwrap());
    let controller = Arc::new(MigrationController::new(compat, fast()).unwrap());
    let run = tokio::spawn({
        let controller = Arc::clone(&controller);
        async move { controller.run().await }
    });
    let mut head = mock.with_chain(|c| c.head());
    let mut timestamp = 0;
    let mut modes = Vec::new();
    while !controller.stage().is_terminal() {
        timestamp += 2;
        let compat = controller.target();
        let state = DenebForkchoiceState(ForkchoiceState {
            head_block_hash: head,
            ..Default::default()
        });
        let started = compat
            .forkchoice_updated(
                state,
                Some(DenebAttributes(PayloadAttributes {
                    timestamp,
                    prev_randao: B256::ZERO,
                    suggested_fee_recipient: Address::ZERO,
                    withdrawals: Some(vec![]),
                    parent_beacon_block_root: None,
                    ..Default::default()
                })),
            )
            .await
            .unwrap();
        let built = compat
            .get_payload(started.payload_id.unwrap(), timestamp, None)
            .await
            .unwrap();
        assert!(
            compat
                .new_payload(deneb_request(&built).unwrap())
                .await
                .unwrap()
                .is_valid()
        );
        head = built.block_hash();
        compat
            .forkchoice_updated(
                DenebForkchoiceState(ForkchoiceState {
                    head_block_hash: head,
                    ..Default::default()
                }),
                None,
            )
            .await
            .unwrap();
        if modes.last() != Some(&compat.mode()) {
            modes.push(compat.mode());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(timestamp < 20_000, "the controller did not finish");
    }
    assert_eq!(run.await.unwrap().unwrap(), Stage::Complete);
    assert_eq!(controller.target().mode(), CompatMode::V5Only);
    println!("compat modes seen: {modes:?} over {} slots", timestamp / 2);
    let stages: Vec<Stage> = controller.history().iter().map(|t| t.to).collect();
    assert_eq!(
        stages,
        vec![
            Stage::ParallelTesting,
            Stage::Canary(10),
            Stage::Canary(50),
            Stage::Complete
        ]
    );
    assert!(controller.rollback_record().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mismatch_during_parallel_testing_rolls_the_node_back_to_legacy() {
    // Legacy and actor on one EL, but the actor pays a different fee recipient: its blocks
    // differ, which parallel testing catches at the first comparison.
    let el = mock().await;
    let options = ClientOptions::new(el.url(), el.jwt_secret());
    let direct = DirectEngine::new(HttpExecutionClient::connect(options.clone()).await.unwrap())
        .await
        .unwrap();
    let config = EngineConfig {
        fee_recipient: Address::repeat_byte(0x77),
        ..EngineConfig::default()
    };
    let system = EngineSystem::start_with_options(config, vec![options])
        .await
        .unwrap();
    let adapter = MigrationAdapter::new(
        direct,
        Engine::new(system.handle()),
        MigrationMode::LegacyOnly,
        AdapterConfig::default().with_thresholds(Thresholds::disabled()),
        MigrationMetrics::new().unwrap(),
    );
    let controller = Arc::new(MigrationController::new(adapter, fast()).unwrap());
    let run = tokio::spawn({
        let controller = Arc::clone(&controller);
        async move { controller.run().await }
    });
    let mut n = 0u64;
    while !controller.stage().is_terminal() {
        n += 1;
        let adapter = controller.target();
        let built = adapter
            .build_block(Duration::from_secs(2 * n), None, vec![])
            .await
            .unwrap();
        adapter.commit_block(built).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(n < 1_000, "the controller did not decide");
    }
    assert_eq!(run.await.unwrap().unwrap(), Stage::RolledBack);
    let record = controller.rollback_record().unwrap();
    assert_eq!(record.from, "parallel-testing");
    assert!(matches!(record.reason, RollbackReason::Mismatches { .. }));
    println!(
        "adapter rollback after {n} slots: {} — took {:?}",
        record.reason, record.took
    );
    assert_eq!(controller.target().mode(), MigrationMode::Rollback);
    // The node keeps producing on legacy.
    let built = controller
        .target()
        .build_block(Duration::from_secs(2 * (n + 1)), None, vec![])
        .await
        .unwrap();
    let hash = controller.target().commit_block(built).await.unwrap();
    assert_eq!(el.with_chain(|c| c.head()), hash);
    system.shutdown().await;
}

#[tokio::test]
async fn a_rolled_back_adapter_refuses_to_be_moved_on_until_acknowledged() {
    let el = mock().await;
    let options = ClientOptions::new(el.url(), el.jwt_secret());
    let direct = DirectEngine::new(HttpExecutionClient::connect(options.clone()).await.unwrap())
        .await
        .unwrap();
    let system = EngineSystem::start_with_options(EngineConfig::default(), vec![options])
        .await
        .unwrap();
    let adapter = MigrationAdapter::new(
        direct,
        Engine::new(system.handle()),
        MigrationMode::Parallel,
        AdapterConfig::default(),
        MigrationMetrics::new().unwrap(),
    );
    adapter
        .rollback(RollbackReason::Manual("drill".into()))
        .await
        .unwrap();
    let err = adapter.enter(Stage::Canary(5)).await.unwrap_err();
    assert!(err.to_string().contains("acknowledge"), "{err}");
    assert_eq!(adapter.mode(), MigrationMode::Rollback);
    adapter.set_mode(MigrationMode::LegacyOnly);
    adapter.enter(Stage::Canary(5)).await.unwrap();
    assert_eq!(adapter.mode(), MigrationMode::Canary(5));
    drop(adapter);
    system.shutdown().await;
}
