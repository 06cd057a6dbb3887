//! The migration adapter in every mode, against two MockExecutionLayers with the same genesis
//! (legacy path on one, actor path on the other, so faults hit one path only), with the actor
//! failing, legacy failing, both failing, and the two paths building different blocks.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use alloy_primitives::{Address, B256};
use engine_actor::{Engine, EngineSystem};
use engine_clients::{ClientOptions, HttpExecutionClient};
use engine_migration::{
    AbSplit, AdapterConfig, DirectEngine, LegacyEngine, MigrationAdapter, MigrationMetrics,
    MigrationMode, MigrationPath, RollbackReason, Side, Thresholds,
};
use engine_testkit::{
    MockExecutionLayer,
    mock::{ClientProfile, Fault, FaultRule, MockConfig},
};
use engine_types::{AddBalance, ConsensusAmount, EngineConfig, RetryConfig};
use rstest::rstest;

type Adapter = MigrationAdapter<DirectEngine, Engine>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Faults {
    None,
    ActorFailing,
    LegacyFailing,
    BothFailing,
    /// The actor's blocks pay a different fee recipient: different block hashes.
    Mismatching,
}

struct Paths {
    legacy_el: Arc<MockExecutionLayer>,
    actor_el: Arc<MockExecutionLayer>,
    system: EngineSystem,
    adapter: Adapter,
}

fn options(mock: &MockExecutionLayer) -> ClientOptions {
    ClientOptions::new(mock.url(), mock.jwt_secret())
        .with_fork_schedule(mock.config().fork_schedule)
        .with_retry(RetryConfig {
            max_retries: 0,
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
        })
}

async fn mock() -> MockExecutionLayer {
    MockExecutionLayer::start(MockConfig::default().with_profile(ClientProfile::reth()))
        .await
        .unwrap()
}

fn engine_config(faults: Faults) -> EngineConfig {
    let mut config = EngineConfig::default();
    config.health.poll_interval_ms = 50;
    config.health.failure_threshold = 1_000;
    if faults == Faults::Mismatching {
        config.fee_recipient = Address::repeat_byte(0x77);
    }
    config
}

async fn paths(
    mode: MigrationMode,
    faults: Faults,
    config: AdapterConfig,
    shared_el: bool,
) -> Paths {
    let legacy_el = Arc::new(mock().await);
    let actor_el = if shared_el {
        Arc::clone(&legacy_el)
    } else {
        Arc::new(mock().await)
    };
    let direct = DirectEngine::new(
        HttpExecutionClient::connect(options(&legacy_el))
            .await
            .unwrap(),
    )
    .await
    .unwrap();
    let system = EngineSystem::start_with_options(engine_config(faults), vec![options(&actor_el)])
        .await
        .unwrap();
    let adapter = MigrationAdapter::new(
        direct,
        Engine::new(system.handle()),
        mode,
        config,
        MigrationMetrics::new().unwrap(),
    );
    Paths {
        legacy_el,
        actor_el,
        system,
        adapter,
    }
}

fn fail_engine_calls(el: &MockExecutionLayer) {
    for method in ["engine_forkchoiceUpdated", "engine_newPayload"] {
        el.inject(
            FaultRule::new(Fault::RpcError {
                code: -32000,
                message: "injected failure".into(),
            })
            .on(method)
            .times(10_000),
        );
    }
}

fn peg_in(n: u64) -> Vec<AddBalance> {
    vec![AddBalance(
        Address::with_last_byte(n as u8),
        ConsensusAmount::from_satoshi(1000 * n).unwrap(),
    )]
}

/// Slots `first..first + count`: build, commit, finalize; the committed hashes (None where a
/// step failed).
async fn run_slots(adapter: &Adapter, first: u64, count: u64) -> Vec<Option<B256>> {
    let mut out = Vec::new();
    for n in first..first + count {
        let committed = async {
            let built = adapter
                .build_block(Duration::from_secs(2 * n), None, peg_in(n))
                .await?;
            let hash = adapter.commit_block(built).await?;
            adapter.set_finalized(hash).await?;
            Ok::<_, engine_types::EngineError>(hash)
        }
        .await;
        out.push(committed.ok());
    }
    out
}

#[derive(Debug, Clone, Copy)]
enum Answers {
    AllOk,
    AllFail,
    /// Canary with one path down: the slots on the healthy side succeed.
    Some,
}

#[rstest]
#[case::legacy_only(MigrationMode::LegacyOnly, Faults::None, Answers::AllOk)]
#[case::legacy_only_actor_down(MigrationMode::LegacyOnly, Faults::ActorFailing, Answers::AllOk)]
#[case::legacy_only_legacy_down(MigrationMode::LegacyOnly, Faults::LegacyFailing, Answers::AllFail)]
#[case::shadow(MigrationMode::Shadow, Faults::None, Answers::AllOk)]
#[case::shadow_actor_down(MigrationMode::Shadow, Faults::ActorFailing, Answers::AllOk)]
#[case::shadow_legacy_down(MigrationMode::Shadow, Faults::LegacyFailing, Answers::AllFail)]
#[case::shadow_mismatch(MigrationMode::Shadow, Faults::Mismatching, Answers::AllOk)]
#[case::canary(MigrationMode::Canary(50), Faults::None, Answers::AllOk)]
#[case::canary_actor_down(MigrationMode::Canary(50), Faults::ActorFailing, Answers::AllOk)]
#[case::canary_legacy_down(MigrationMode::Canary(50), Faults::LegacyFailing, Answers::Some)]
#[case::canary_both_down(MigrationMode::Canary(50), Faults::BothFailing, Answers::AllFail)]
#[case::parallel(MigrationMode::Parallel, Faults::None, Answers::AllOk)]
#[case::parallel_actor_down(MigrationMode::Parallel, Faults::ActorFailing, Answers::AllOk)]
#[case::parallel_legacy_down(MigrationMode::Parallel, Faults::LegacyFailing, Answers::AllFail)]
#[case::parallel_both_down(MigrationMode::Parallel, Faults::BothFailing, Answers::AllFail)]
#[case::parallel_mismatch(MigrationMode::Parallel, Faults::Mismatching, Answers::AllOk)]
#[case::actor_primary(MigrationMode::ActorPrimary, Faults::None, Answers::AllOk)]
#[case::actor_primary_actor_down(MigrationMode::ActorPrimary, Faults::ActorFailing, Answers::AllOk)]
#[case::actor_primary_legacy_down(
    MigrationMode::ActorPrimary,
    Faults::LegacyFailing,
    Answers::AllOk
)]
#[case::actor_primary_both_down(MigrationMode::ActorPrimary, Faults::BothFailing, Answers::AllFail)]
#[case::actor_only(MigrationMode::ActorOnly, Faults::None, Answers::AllOk)]
#[case::actor_only_actor_down(MigrationMode::ActorOnly, Faults::ActorFailing, Answers::AllFail)]
#[case::actor_only_legacy_down(MigrationMode::ActorOnly, Faults::LegacyFailing, Answers::AllOk)]
#[case::rollback(MigrationMode::Rollback, Faults::None, Answers::AllOk)]
#[case::rollback_actor_down(MigrationMode::Rollback, Faults::ActorFailing, Answers::AllOk)]
#[tokio::test]
async fn each_mode_answers_as_documented(
    #[case] mode: MigrationMode,
    #[case] faults: Faults,
    #[case] answers: Answers,
) {
    const SLOTS: u64 = 6;
    let config = AdapterConfig {
        thresholds: Thresholds::disabled(),
        ..AdapterConfig::default()
    };
    let p = paths(mode, faults, config, false).await;
    // The actor adopts the legacy forkchoice before the faults start (same genesis).
    p.adapter.initialize_actor_from_legacy().await.unwrap();
    if matches!(faults, Faults::ActorFailing | Faults::BothFailing) {
        fail_engine_calls(&p.actor_el);
    }
    if matches!(faults, Faults::LegacyFailing | Faults::BothFailing) {
        fail_engine_calls(&p.legacy_el);
    }
    let committed = run_slots(&p.adapter, 1, SLOTS).await;
    p.adapter.shadow_idle().await;
    let report = p.adapter.report();
    let ok = committed.iter().flatten().count() as u64;
    match answers {
        Answers::AllOk => assert_eq!(ok, SLOTS, "{committed:?} {report:#?}"),
        Answers::AllFail => assert_eq!(ok, 0, "{committed:?}"),
        Answers::Some => assert!(ok > 0 && ok < SLOTS, "{committed:?}"),
    }
    let actor_commits = p.actor_el.requests_for("engine_newPayload").len();
    let legacy_commits = p.legacy_el.requests_for("engine_newPayload").len();
    match mode {
        MigrationMode::LegacyOnly | MigrationMode::Rollback => {
            assert_eq!(actor_commits, 0, "{mode}: the actor is never called");
            assert_eq!(report.health.comparisons, 0);
        }
        MigrationMode::ActorOnly => {
            assert_eq!(legacy_commits, 0, "{mode}: legacy is never called");
        }
        MigrationMode::Shadow | MigrationMode::Parallel if faults == Faults::None => {
            // Build and commit of every slot compared, all agreeing.
            assert_eq!(report.health.comparisons, 2 * SLOTS, "{report:#?}");
            assert_eq!(report.health.mismatches, 0, "{report:#?}");
            // The score's latency factor depends on the machine; its other factors are 1.
            assert!((report.score - report.health.score()).abs() < 1e-9);
            assert!(report.score > 0.0);
        }
        MigrationMode::Shadow | MigrationMode::Parallel if faults == Faults::Mismatching => {
            assert!(report.health.mismatches >= SLOTS, "{report:#?}");
            assert!(
                p.adapter
                    .metrics()
                    .render()
                    .contains("engine_migration_mismatches_total{kind=\"block_hash\"}"),
            );
            assert!(report.score < 100.0);
        }
        _ => {}
    }
    if matches!(mode, MigrationMode::ActorPrimary | MigrationMode::Canary(_))
        && faults == Faults::ActorFailing
    {
        assert!(report.fallbacks > 0, "{report:#?}");
        assert_eq!(report.health.candidate.errors, report.fallbacks);
    }
    // Whatever answered, the answering EL's head is the last block reported committed.
    if let Some(last) = committed.iter().flatten().last() {
        let heads = [
            p.legacy_el.with_chain(|c| c.head()),
            p.actor_el.with_chain(|c| c.head()),
        ];
        assert!(heads.contains(last), "{last} not a head of {heads:?}");
    }
    drop(p.adapter);
    p.system.shutdown().await;
}

#[tokio::test]
async fn canary_splits_slots_by_timestamp_and_a_replay_splits_the_same_way() {
    let split = AbSplit::new(50).unwrap();
    let expected_actor: Vec<u64> = (1..=12)
        .filter(|n| split.side_for_slot(2 * n) == Side::Candidate)
        .collect();
    assert!(!expected_actor.is_empty() && expected_actor.len() < 12);
    for _replay in 0..2 {
        let config = AdapterConfig {
            thresholds: Thresholds::disabled(),
            ..AdapterConfig::default()
        };
        let p = paths(MigrationMode::Canary(50), Faults::None, config, false).await;
        let committed = run_slots(&p.adapter, 1, 12).await;
        assert!(committed.iter().all(Option::is_some));
        let builds = p.adapter.metrics().render();
        let actor_builds = builds
            .lines()
            .find(|l| {
                l.starts_with("engine_migration_calls_total")
                    && l.contains("operation=\"build\"")
                    && l.contains("path=\"actor\"")
                    && l.contains("outcome=\"ok\"")
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        assert_eq!(actor_builds, expected_actor.len(), "{builds}");
        // Every block reached both ELs (the other path follows), so both heads agree.
        assert_eq!(
            p.legacy_el.with_chain(|c| c.head()),
            p.actor_el.with_chain(|c| c.head())
        );
        assert_eq!(
            p.legacy_el.with_chain(|c| c.finalized()),
            p.actor_el.with_chain(|c| c.finalized())
        );
        drop(p.adapter);
        p.system.shutdown().await;
    }
}

#[tokio::test]
async fn a_mode_switch_is_atomic_and_takes_effect_on_the_next_call() {
    let config = AdapterConfig {
        thresholds: Thresholds::disabled(),
        ..AdapterConfig::default()
    };
    // One EL for both paths, as in a node.
    let p = paths(MigrationMode::LegacyOnly, Faults::None, config, true).await;
    let committed = run_slots(&p.adapter, 1, 3).await;
    assert!(committed.iter().all(Option::is_some));
    assert_eq!(p.adapter.report().health.candidate.calls, 0);

    // Measure the switch itself.
    let switches = 10_000u32;
    let started = Instant::now();
    for i in 0..switches {
        let mode = if i % 2 == 0 {
            MigrationMode::ActorOnly
        } else {
            MigrationMode::LegacyOnly
        };
        p.adapter.set_mode(mode);
    }
    let per_switch = started.elapsed() / switches;
    println!("mode switch: {per_switch:?} per switch ({switches} switches)");
    assert_eq!(p.adapter.mode(), MigrationMode::LegacyOnly);

    assert_eq!(
        p.adapter.set_mode(MigrationMode::ActorOnly),
        MigrationMode::LegacyOnly
    );
    let legacy_head = p.legacy_el.with_chain(|c| c.head());
    let next = run_slots(&p.adapter, 4, 2).await;
    let report = p.adapter.report();
    assert!(next.iter().all(Option::is_some), "{next:?}");
    assert_eq!(
        report.health.baseline.calls, 0,
        "legacy not called after the switch"
    );
    assert!(report.health.candidate.calls > 0);
    // The actor adopted the legacy head before building on it.
    let actor_fc = p.adapter.actor().forkchoice_state().await.unwrap();
    assert_eq!(Some(actor_fc.head_block_hash), next[1]);
    assert!(
        p.adapter
            .metrics()
            .render()
            .contains("engine_migration_adoptions_total{path=\"actor\"} 1")
    );
    let first_actor_block = p
        .adapter
        .get_block_with_txs(&next[0].unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(first_actor_block.header.parent_hash, legacy_head);
    assert!(
        p.adapter
            .metrics()
            .render()
            .contains("engine_migration_mode 6")
    );
    drop(p.adapter);
    p.system.shutdown().await;
}

#[tokio::test]
async fn initializing_the_actor_from_legacy_is_one_call() {
    let config = AdapterConfig::default();
    let p = paths(MigrationMode::LegacyOnly, Faults::None, config, true).await;
    let committed = run_slots(&p.adapter, 1, 3).await;
    let legacy = p.adapter.legacy().forkchoice_state().await.unwrap();
    assert_eq!(Some(legacy.head_block_hash), committed[2]);
    assert_eq!(Some(legacy.finalized_block_hash), committed[2]);
    let before = p.legacy_el.requests_for("engine_forkchoiceUpdated").len();
    p.adapter.initialize_actor_from_legacy().await.unwrap();
    let actor = p.adapter.actor().forkchoice_state().await.unwrap();
    assert_eq!(actor, legacy);
    assert_eq!(
        p.legacy_el.requests_for("engine_forkchoiceUpdated").len(),
        before + 1,
        "one forkchoiceUpdated"
    );
    drop(p.adapter);
    p.system.shutdown().await;
}

#[tokio::test]
async fn a_mismatch_in_parallel_rolls_back_automatically() {
    let p = paths(
        MigrationMode::Parallel,
        Faults::Mismatching,
        AdapterConfig::default(),
        false,
    )
    .await;
    let committed = run_slots(&p.adapter, 1, 3).await;
    assert!(committed.iter().all(Option::is_some), "legacy answered");
    let report = p.adapter.report();
    assert_eq!(report.mode, MigrationMode::Rollback);
    let rollback = report.last_rollback.unwrap();
    assert!(
        matches!(rollback.reason, RollbackReason::Mismatches { .. }),
        "{rollback:?}"
    );
    assert_eq!(rollback.from, "parallel");
    println!(
        "automatic rollback (mismatch) took {:?}: {}",
        rollback.took, rollback.reason
    );
    // After the first slot's build disagreed, only legacy ran.
    let actor_builds = p.actor_el.requests_for("engine_getPayload").len();
    assert_eq!(actor_builds, 1);
    assert!(
        p.adapter
            .metrics()
            .render()
            .contains("engine_migration_rollbacks_total 1")
    );
    drop(p.adapter);
    p.system.shutdown().await;
}

#[tokio::test]
async fn actor_errors_above_the_threshold_roll_back_and_legacy_catches_up() {
    let config = AdapterConfig {
        thresholds: Thresholds {
            min_calls: 4,
            max_latency_regression: None,
            ..Thresholds::default()
        },
        ..AdapterConfig::default()
    };
    // One EL: the actor's failures are injected on its client side by a fault on getPayload
    // only (legacy never calls getPayload in this mode), so legacy stays healthy.
    let p = paths(MigrationMode::ActorPrimary, Faults::None, config, false).await;
    p.adapter.initialize_actor_from_legacy().await.unwrap();
    let committed = run_slots(&p.adapter, 1, 3).await;
    assert!(committed.iter().all(Option::is_some));
    assert_eq!(p.adapter.mode(), MigrationMode::ActorPrimary);
    fail_engine_calls(&p.actor_el);
    let more = run_slots(&p.adapter, 4, 4).await;
    assert!(
        more.iter().all(Option::is_some),
        "fallback answered: {more:?}"
    );
    let report = p.adapter.report();
    assert_eq!(report.mode, MigrationMode::Rollback, "{report:#?}");
    let rollback = report.last_rollback.clone().unwrap();
    assert!(
        matches!(rollback.reason, RollbackReason::ErrorRate { .. }),
        "{rollback:?}"
    );
    println!(
        "automatic rollback (errors) took {:?}: {}",
        rollback.took, rollback.reason
    );
    // The legacy EL holds every committed block.
    assert_eq!(p.legacy_el.with_chain(|c| c.head()), more[3].unwrap());
    let manual = p
        .adapter
        .rollback(RollbackReason::Manual("again".into()))
        .await;
    assert!(manual.is_none(), "nothing to roll back in rollback mode");
    drop(p.adapter);
    p.system.shutdown().await;
}

#[tokio::test]
async fn a_manual_rollback_from_actor_only_brings_legacy_up_to_date() {
    let config = AdapterConfig {
        thresholds: Thresholds::disabled(),
        ..AdapterConfig::default()
    };
    let p = paths(MigrationMode::ActorOnly, Faults::None, config, true).await;
    let committed = run_slots(&p.adapter, 1, 3).await;
    assert!(committed.iter().all(Option::is_some));
    let record = p
        .adapter
        .rollback(RollbackReason::Manual("operator drill".into()))
        .await
        .unwrap();
    println!("manual rollback from actor-only took {:?}", record.took);
    assert_eq!(record.from, "actor-only");
    let legacy = p.adapter.legacy().forkchoice_state().await.unwrap();
    assert_eq!(Some(legacy.head_block_hash), committed[2]);
    assert_eq!(Some(legacy.finalized_block_hash), committed[2]);
    let next = run_slots(&p.adapter, 4, 2).await;
    assert!(next.iter().all(Option::is_some));
    assert_eq!(p.adapter.report().health.candidate.calls, 0);
    drop(p.adapter);
    p.system.shutdown().await;
}

#[tokio::test]
async fn mode_and_health_score_appear_in_the_engines_own_registry() {
    let el = mock().await;
    let direct = DirectEngine::new(HttpExecutionClient::connect(options(&el)).await.unwrap())
        .await
        .unwrap();
    let system = EngineSystem::start_with_options(EngineConfig::default(), vec![options(&el)])
        .await
        .unwrap();
    let adapter = MigrationAdapter::new(
        direct,
        Engine::new(system.handle()),
        MigrationMode::LegacyOnly,
        AdapterConfig::default(),
        MigrationMetrics::sharing(&system.metrics()).unwrap(),
    );
    let engine_text = || system.metrics().render();
    assert!(engine_text().contains("engine_migration_mode 1"));
    adapter.set_mode(MigrationMode::Parallel);
    let committed = run_slots(&adapter, 1, 2).await;
    assert!(committed.iter().all(Option::is_some));
    let text = engine_text();
    assert!(
        text.contains("engine_migration_mode 4"),
        "{:#?}\n{text}",
        adapter.report()
    );
    assert!(text.contains("engine_migration_health_score"));
    // The adapter's own registry has the rest, without the two shared gauges.
    let own = adapter.metrics().render();
    assert!(own.contains("engine_migration_comparisons_total"));
    assert!(!own.contains("engine_migration_mode "));
    drop(adapter);
    system.shutdown().await;
}

#[tokio::test]
async fn an_actor_finding_invalid_what_legacy_committed_is_an_outcome_mismatch() {
    let config = AdapterConfig {
        thresholds: Thresholds::disabled(),
        ..AdapterConfig::default()
    };
    let p = paths(MigrationMode::Parallel, Faults::None, config, false).await;
    p.adapter.initialize_actor_from_legacy().await.unwrap();
    let head = p.actor_el.with_chain(|c| c.head());
    p.actor_el.inject(
        FaultRule::new(Fault::invalid("bad state root", Some(head)))
            .on("engine_newPayload")
            .times(1),
    );
    let committed = run_slots(&p.adapter, 1, 1).await;
    assert!(committed[0].is_some(), "legacy's answer is returned");
    let report = p.adapter.report();
    assert_eq!(report.health.mismatches, 1, "{report:#?}");
    assert!(matches!(
        &report.recent_mismatches[0].mismatches[0],
        engine_migration::Mismatch::Outcome { legacy, actor }
            if legacy == "accepted" && actor.contains("bad state root")
    ));
    assert!(
        p.adapter
            .metrics()
            .render()
            .contains("engine_migration_mismatches_total{kind=\"outcome\"} 1")
    );
    // The actor's EL (a separate mock here) never got that block, so the actor cannot catch
    // up there; legacy keeps answering and the actor's failures are counted as errors.
    let next = run_slots(&p.adapter, 2, 1).await;
    assert!(next[0].is_some());
    assert!(p.adapter.report().health.candidate.errors > 0);
    drop(p.adapter);
    p.system.shutdown().await;
}
