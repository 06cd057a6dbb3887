//! The migration adapter in every mode, against two MockExecutionLayers with the same genesis
//! (legacy path on one, actor path on the other, so faults hit one path only), with the actor
//! failing, legacy failing, both failing, and the two paths building different blocks.
//!
//! (Longer than the ~600-line guideline on purpose: one suite is one test binary, and on a
//! 2-core machine every extra binary costs a link; its tests share the helpers at the top.)

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
    ClientProfile, Fault, FaultRule, MockConfig, MockExecutionLayer, mock_client_options,
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

/// The harness's options without retries (a failure shows at once).
fn options(mock: &MockExecutionLayer) -> ClientOptions {
    mock_client_options(mock, &EngineConfig::default()).with_retry(RetryConfig {
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

/// The pause between build and commit in shadow runs (the node signing and gossiping).
const SIGNING: Duration = Duration::from_millis(150);

fn peg_in(n: u64) -> Vec<AddBalance> {
    vec![AddBalance(
        Address::with_last_byte(n as u8),
        ConsensusAmount::from_satoshi(1000 * n).unwrap(),
    )]
}

/// Slots `first..first + count`: build, commit, finalize; the committed hashes (None where a
/// step failed).
async fn run_slots(adapter: &Adapter, first: u64, count: u64) -> Vec<Option<B256>> {
    run_slots_signing(adapter, first, count, Duration::ZERO).await
}

/// Like [`run_slots`], with `signing` between build and commit (a node signs, gossips and
/// waits for approvals before it imports its own block) and again before the finalization:
/// the windows shadow work runs in.
async fn run_slots_signing(
    adapter: &Adapter,
    first: u64,
    count: u64,
    signing: Duration,
) -> Vec<Option<B256>> {
    let mut out = Vec::new();
    for n in first..first + count {
        let committed = async {
            let built = adapter
                .build_block(Duration::from_secs(2 * n), None, peg_in(n))
                .await?;
            tokio::time::sleep(signing).await;
            let hash = adapter.commit_block(built).await?;
            tokio::time::sleep(signing).await;
            adapter.set_finalized(hash).await?;
            Ok::<_, engine_types::EngineError>(hash)
        }
        .await;
        if let Err(e) = &committed {
            eprintln!("slot {n} (mode now {}): {e}", adapter.mode());
        }
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
#[case::shadow_both_down(MigrationMode::Shadow, Faults::BothFailing, Answers::AllFail)]
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
#[case::actor_only_both_down(MigrationMode::ActorOnly, Faults::BothFailing, Answers::AllFail)]
#[case::rollback(MigrationMode::Rollback, Faults::None, Answers::AllOk)]
#[case::rollback_actor_down(MigrationMode::Rollback, Faults::ActorFailing, Answers::AllOk)]
#[case::rollback_legacy_down(MigrationMode::Rollback, Faults::LegacyFailing, Answers::AllFail)]
#[tokio::test]
async fn each_mode_answers_as_documented(
    #[case] mode: MigrationMode,
    #[case] faults: Faults,
    #[case] answers: Answers,
) {
    const SLOTS: u64 = 6;
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
    let p = paths(mode, faults, config, false).await;
    // The actor adopts the legacy forkchoice before the faults start (same genesis).
    p.adapter.initialize_actor_from_legacy().await.unwrap();
    if matches!(faults, Faults::ActorFailing | Faults::BothFailing) {
        fail_engine_calls(&p.actor_el);
    }
    if matches!(faults, Faults::LegacyFailing | Faults::BothFailing) {
        fail_engine_calls(&p.legacy_el);
    }
    let signing = if mode == MigrationMode::Shadow {
        SIGNING
    } else {
        Duration::ZERO
    };
    let committed = run_slots_signing(&p.adapter, 1, SLOTS, signing).await;
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
    // The EL of every path that committed the last block holds it as head: legacy's in the
    // legacy-answering modes, the actor's where it answers, both where one follows the other.
    if let Some(last) = committed.iter().flatten().last() {
        let legacy_head = p.legacy_el.with_chain(|c| c.head());
        let actor_head = p.actor_el.with_chain(|c| c.head());
        match (mode, faults) {
            (MigrationMode::LegacyOnly | MigrationMode::Rollback, _) => {
                assert_eq!(legacy_head, *last);
            }
            (MigrationMode::ActorOnly, _) => assert_eq!(actor_head, *last),
            (_, Faults::None) => {
                assert_eq!((legacy_head, actor_head), (*last, *last), "{mode}");
            }
            (_, Faults::ActorFailing) => assert_eq!(legacy_head, *last, "{mode}"),
            (_, Faults::LegacyFailing) => assert_eq!(actor_head, *last, "{mode}"),
            _ => assert!([legacy_head, actor_head].contains(last)),
        }
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
        let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
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
        // And exactly those slots: the builds the actor's EL saw carry their timestamps.
        let built_on_actor: Vec<u64> = p
            .actor_el
            .requests_for("engine_forkchoiceUpdated")
            .iter()
            .filter_map(|r| {
                r.params
                    .get(1)?
                    .get("timestamp")?
                    .as_str()
                    .map(str::to_owned)
            })
            .map(|hex| u64::from_str_radix(hex.trim_start_matches("0x"), 16).unwrap() / 2)
            .collect();
        assert_eq!(built_on_actor, expected_actor);
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
async fn a_mode_switch_takes_effect_on_the_next_call_and_costs_microseconds() {
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
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
            .contains("engine_migration_mode 5")
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
    let config = AdapterConfig::default().with_thresholds(Thresholds {
        min_calls: 4,
        max_latency_regression: None,
        ..Thresholds::default()
    });
    // Two ELs with the same genesis: the faults hit the actor's EL only, so legacy stays
    // healthy and answers every slot the actor cannot.
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
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
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
    assert!(engine_text().contains("engine_migration_mode 0"));
    adapter.set_mode(MigrationMode::Parallel);
    let committed = run_slots(&adapter, 1, 2).await;
    assert!(committed.iter().all(Option::is_some));
    let text = engine_text();
    assert!(
        text.contains("engine_migration_mode 3"),
        "{:#?}\n{text}",
        adapter.report()
    );
    assert!(text.contains("engine_migration_health_score"));
    assert!(text.contains("engine_state_validation_failures_total 0"));
    // The adapter's own registry has the rest, without the two shared gauges.
    let own = adapter.metrics().render();
    assert!(own.contains("engine_migration_comparisons_total"));
    assert!(!own.contains("engine_migration_mode "));
    assert!(!own.contains("engine_state_validation_failures_total"));
    drop(adapter);
    system.shutdown().await;
}

#[tokio::test]
async fn an_actor_finding_invalid_what_legacy_committed_is_an_outcome_mismatch() {
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
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
    assert!(
        p.adapter
            .metrics()
            .render()
            .contains("engine_state_validation_failures_total 1"),
        "ALYS-008's name counts the same mismatch"
    );
    // The actor's EL (a separate mock here) never got that block, so the actor cannot catch
    // up there; legacy keeps answering and the actor's failures are counted as errors.
    let next = run_slots(&p.adapter, 2, 1).await;
    assert!(next[0].is_some());
    assert!(p.adapter.report().health.candidate.errors > 0);
    drop(p.adapter);
    p.system.shutdown().await;
}

/// Modes switched by another task every millisecond while 30 slots run on one EL: every call
/// finishes in the mode it began in, every slot commits, and the paths never disagree (each
/// catches up before it answers after sitting out).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_modes_under_load_loses_nothing_and_never_disagrees() {
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
    let p = paths(MigrationMode::LegacyOnly, Faults::None, config, true).await;
    let adapter = Arc::new(p.adapter);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let switcher = tokio::spawn({
        let adapter = Arc::clone(&adapter);
        let stop = Arc::clone(&stop);
        async move {
            let modes = [
                MigrationMode::Parallel,
                MigrationMode::ActorOnly,
                MigrationMode::Canary(50),
                MigrationMode::Shadow,
                MigrationMode::ActorPrimary,
                MigrationMode::LegacyOnly,
            ];
            let mut switches = 0usize;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                adapter.set_mode(modes[switches % modes.len()]);
                switches += 1;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            switches
        }
    });
    let committed = run_slots(&adapter, 1, 30).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let switches = switcher.await.unwrap();
    adapter.shadow_idle().await;
    println!("{switches} mode switches during 30 slots");
    assert!(switches > 30, "the modes really changed under the slots");
    assert!(committed.iter().all(Option::is_some), "{committed:?}");
    assert_eq!(p.legacy_el.with_chain(|c| c.head()), committed[29].unwrap());
    let chain: Vec<B256> = committed.iter().flatten().copied().collect();
    for field in ["headBlockHash", "finalizedBlockHash"] {
        let numbers = forkchoice_numbers(&p.legacy_el, field, &chain);
        assert!(
            numbers.windows(2).all(|w| w[0] <= w[1]),
            "the EL's {field} went back: {numbers:?}"
        );
    }
    let text = adapter.metrics().render();
    assert!(
        !text.contains("outcome=\"mismatch\""),
        "no comparison disagreed: {:#?}\n{text}",
        adapter.report().recent_mismatches
    );
    let Ok(adapter) = Arc::try_unwrap(adapter) else {
        panic!("the switcher still holds the adapter");
    };
    drop(adapter);
    p.system.shutdown().await;
}

#[tokio::test]
async fn an_actor_verdict_is_the_answer_not_a_reason_to_fall_back() {
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
    let p = paths(MigrationMode::ActorPrimary, Faults::None, config, false).await;
    p.adapter.initialize_actor_from_legacy().await.unwrap();
    let built = p
        .adapter
        .build_block(Duration::from_secs(2), None, peg_in(1))
        .await
        .unwrap();
    let head = p.actor_el.with_chain(|c| c.head());
    p.actor_el.inject(
        FaultRule::new(Fault::invalid("bad block", Some(head)))
            .on("engine_newPayload")
            .times(1),
    );
    let legacy_before = p.legacy_el.requests_for("engine_newPayload").len();
    let err = p.adapter.commit_block(built).await.unwrap_err();
    assert!(
        matches!(err, engine_types::EngineError::InvalidPayload { .. }),
        "{err:?}"
    );
    assert_eq!(p.adapter.report().fallbacks, 0);
    assert_eq!(
        p.legacy_el.requests_for("engine_newPayload").len(),
        legacy_before,
        "legacy was not asked to commit what the actor found invalid"
    );
    drop(p.adapter);
    p.system.shutdown().await;
}

/// One EL; the actor's commit times out once (its client has a 100 ms forkchoiceUpdated
/// deadline, legacy's the default): legacy commits, the actor is behind, and before its next
/// call it adopts legacy's state and builds on legacy's head.
#[tokio::test]
async fn after_a_fallback_the_actor_catches_up_before_it_answers_again() {
    let el = Arc::new(mock().await);
    let direct = DirectEngine::new(HttpExecutionClient::connect(options(&el)).await.unwrap())
        .await
        .unwrap();
    let mut actor_options = options(&el);
    actor_options.timeouts.forkchoice_updated_ms = 100;
    let system = EngineSystem::start_with_options(EngineConfig::default(), vec![actor_options])
        .await
        .unwrap();
    let adapter = MigrationAdapter::new(
        direct,
        Engine::new(system.handle()),
        MigrationMode::ActorPrimary,
        AdapterConfig::default().with_thresholds(Thresholds::disabled()),
        MigrationMetrics::new().unwrap(),
    );
    adapter.initialize_actor_from_legacy().await.unwrap();
    let first = run_slots(&adapter, 1, 1).await[0].unwrap();
    let built = adapter
        .build_block(Duration::from_secs(4), None, peg_in(2))
        .await
        .unwrap();
    // The actor's commit: its forkchoiceUpdated (the next one the EL sees) is slow.
    el.inject(
        FaultRule::new(Fault::Latency(Duration::from_millis(400)))
            .on("engine_forkchoiceUpdated")
            .times(1),
    );
    let second = adapter.commit_block(built).await.unwrap();
    assert_eq!(adapter.report().fallbacks, 1, "legacy committed the block");
    let adoptions = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("engine_migration_adoptions_total{path=\"actor\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = adoptions(&adapter.metrics().render());
    let third = run_slots(&adapter, 3, 1).await[0].unwrap();
    assert_eq!(
        adoptions(&adapter.metrics().render()),
        before + 1,
        "the actor adopted legacy's state once"
    );
    let block = adapter.get_block_with_txs(&third).await.unwrap().unwrap();
    assert_eq!(block.header.parent_hash, second);
    assert_eq!(el.with_chain(|c| c.head()), third);
    assert_ne!(first, second);
    let actor = adapter.actor().path_state().await.unwrap();
    let legacy = adapter.legacy().path_state().await.unwrap();
    assert_eq!(
        actor, legacy,
        "both paths agree on head and withdrawal index"
    );
    drop(adapter);
    system.shutdown().await;
}

/// Shadow builds that cannot run before legacy moves on are dropped and counted, never run
/// late against a moved head; legacy's answers are unaffected.
#[tokio::test]
async fn late_shadow_builds_are_dropped_not_run_against_a_moved_head() {
    let el = Arc::new(mock().await);
    let direct = DirectEngine::new(HttpExecutionClient::connect(options(&el)).await.unwrap())
        .await
        .unwrap();
    let system = EngineSystem::start_with_options(EngineConfig::default(), vec![options(&el)])
        .await
        .unwrap();
    let adapter = MigrationAdapter::new(
        direct,
        Engine::new(system.handle()),
        MigrationMode::Shadow,
        AdapterConfig::default().with_thresholds(Thresholds::disabled()),
        MigrationMetrics::new().unwrap(),
    );
    adapter.initialize_actor_from_legacy().await.unwrap();
    let committed = run_slots(&adapter, 1, 8).await;
    adapter.shadow_idle().await;
    assert!(committed.iter().all(Option::is_some));
    let report = adapter.report();
    println!(
        "shadow with no wait: {} comparisons, {} dropped",
        report.health.comparisons, report.shadow_dropped
    );
    assert!(report.shadow_dropped > 0, "{report:#?}");
    assert_eq!(report.health.mismatches, 0, "{report:#?}");
    // Whatever was dropped, the EL ends on legacy's last block.
    assert_eq!(el.with_chain(|c| c.head()), committed[7].unwrap());
    // No forkchoiceUpdated ever pointed the EL back at an older block than one before it.
    let genesis = el.with_chain(|c| c.genesis_hash());
    let number_of = |hash: &str| {
        std::iter::once(genesis)
            .chain(committed.iter().flatten().copied())
            .position(|c| format!("{c:#x}") == hash)
    };
    let heads: Vec<usize> = el
        .requests_for("engine_forkchoiceUpdated")
        .iter()
        .filter_map(|r| number_of(r.params.get(0)?.get("headBlockHash")?.as_str()?))
        .collect();
    assert!(heads.len() >= 16, "{heads:?}");
    assert!(heads.windows(2).all(|w| w[0] <= w[1]), "{heads:?}");
    drop(adapter);
    system.shutdown().await;
}

/// Block numbers of the `field` hashes in every forkchoiceUpdated the EL received, in order.
fn forkchoice_numbers(el: &MockExecutionLayer, field: &str, chain: &[B256]) -> Vec<usize> {
    let genesis = el.with_chain(|c| c.genesis_hash());
    el.requests_for("engine_forkchoiceUpdated")
        .iter()
        .filter_map(|r| {
            let hash = r.params.get(0)?.get(field)?.as_str()?.to_owned();
            std::iter::once(genesis)
                .chain(chain.iter().copied())
                .position(|b| format!("{b:#x}") == hash)
        })
        .collect()
}

#[tokio::test]
async fn shadow_never_moves_the_els_head_or_finalized_block_back() {
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
    let p = paths(MigrationMode::Shadow, Faults::None, config, true).await;
    p.adapter.initialize_actor_from_legacy().await.unwrap();
    let committed: Vec<B256> = run_slots_signing(&p.adapter, 1, 6, SIGNING)
        .await
        .into_iter()
        .map(Option::unwrap)
        .collect();
    p.adapter.shadow_idle().await;
    for field in ["headBlockHash", "finalizedBlockHash", "safeBlockHash"] {
        let numbers = forkchoice_numbers(&p.legacy_el, field, &committed);
        assert!(numbers.len() >= 12, "{field}: {numbers:?}");
        assert!(
            numbers.windows(2).all(|w| w[0] <= w[1]),
            "{field} went back: {numbers:?}"
        );
    }
    let report = p.adapter.report();
    assert_eq!(report.health.mismatches, 0, "{report:#?}");
    assert!(report.health.comparisons >= 12, "{report:#?}");
    drop(p.adapter);
    p.system.shutdown().await;
}

#[tokio::test]
async fn initializing_from_a_legacy_path_that_is_behind_is_refused_and_rewinds_nothing() {
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
    let p = paths(MigrationMode::ActorOnly, Faults::None, config, true).await;
    let committed = run_slots(&p.adapter, 1, 3).await;
    let head = committed[2].unwrap();
    let err = p.adapter.initialize_actor_from_legacy().await.unwrap_err();
    assert!(err.to_string().contains("would rewind"), "{err}");
    assert_eq!(p.legacy_el.with_chain(|c| c.head()), head);
    assert_eq!(
        p.adapter
            .actor()
            .forkchoice_state()
            .await
            .unwrap()
            .head_block_hash,
        head
    );
    drop(p.adapter);
    p.system.shutdown().await;
}

/// 99th percentile of `samples` (sorted in place).
fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() - 1) * 99 / 100]
}

/// Build and commit of `count` slots from `first`, with the node's pauses between them; the
/// latency of every production call.
async fn production_latency(adapter: &Adapter, first: u64, count: u64) -> Vec<Duration> {
    let mut latency = Vec::new();
    for n in first..first + count {
        let started = std::time::Instant::now();
        let built = adapter
            .build_block(Duration::from_secs(2 * n), None, peg_in(n))
            .await
            .unwrap();
        latency.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
        let started = std::time::Instant::now();
        adapter.commit_block(built).await.unwrap();
        latency.push(started.elapsed());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    latency
}

/// Shadow work yields to production: with every Engine API call of the actor's EL taking
/// 80 ms, a shadow build (two calls) is still running when its slot's commit comes, and is
/// stopped; no production call waits for a shadow call (every one stays under the 80 ms a
/// single shadow call takes, whatever else the shared machine runs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_shadow_path_never_delays_production() {
    const SHADOW_CALL: Duration = Duration::from_millis(80);
    let config = AdapterConfig::default().with_thresholds(Thresholds::disabled());
    let p = paths(MigrationMode::Shadow, Faults::None, config, false).await;
    p.adapter.initialize_actor_from_legacy().await.unwrap();
    let mut baseline = production_latency(&p.adapter, 1, 12).await;
    p.adapter.shadow_idle().await;
    p.actor_el
        .inject(FaultRule::new(Fault::Latency(SHADOW_CALL)).on("engine_"));
    let mut shadowed = production_latency(&p.adapter, 13, 12).await;
    let (baseline, shadowed) = (p99(&mut baseline), p99(&mut shadowed));
    let report = p.adapter.report();
    println!(
        "production p99 with a fast shadow path {baseline:?}, with a slow one {shadowed:?}; shadow jobs dropped {} (stopped mid-call {})",
        report.shadow_dropped, report.shadow_preempted
    );
    assert!(
        report.shadow_preempted > 0,
        "the shadow path was running when production came: {report:#?}"
    );
    assert!(
        shadowed < SHADOW_CALL,
        "production waited for shadow work: p99 {shadowed:?} (a shadow call takes {SHADOW_CALL:?}; {baseline:?} without)"
    );
    p.actor_el.clear_faults();
    drop(p.adapter);
    p.system.shutdown().await;
}

/// The node holds the adapter as `Arc<dyn DynLegacyEngine>` (no generic `Chain`) and makes all
/// seven of its calls through it, in every routing family of modes.
#[rstest]
#[case::legacy_only(MigrationMode::LegacyOnly)]
#[case::parallel(MigrationMode::Parallel)]
#[case::canary(MigrationMode::Canary(50))]
#[case::actor_only(MigrationMode::ActorOnly)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_adapter_as_a_trait_object_makes_the_nodes_seven_calls(#[case] mode: MigrationMode) {
    use alloy_eips::BlockNumberOrTag;
    use engine_migration::{DynLegacyEngine, LegacyEngine};

    let p = paths(mode, Faults::None, AdapterConfig::default(), true).await;
    let system = p.system;
    let engine: Arc<dyn DynLegacyEngine> = Arc::new(p.adapter);
    let genesis = engine
        .get_payload_by_tag_from_engine(BlockNumberOrTag::Number(0))
        .await
        .unwrap();
    assert_eq!(genesis.block_number(), 0);
    let built = engine
        .build_block(
            Duration::from_secs(2),
            Some(genesis.block_hash()),
            peg_in(1),
        )
        .await
        .unwrap();
    let hash = engine.commit_block(built).await.unwrap();
    let bodies = engine
        .get_payload_bodies_by_hash_v1(vec![hash])
        .await
        .unwrap();
    assert!(!bodies.is_empty() && bodies[0].is_some(), "{bodies:?}");
    let block = engine.get_block_with_txs(&hash).await.unwrap().unwrap();
    assert_eq!(block.header.hash, hash);
    assert!(
        engine
            .get_transaction_receipt(B256::repeat_byte(1))
            .await
            .unwrap()
            .is_none()
    );
    engine.set_finalized(hash).await.unwrap();
    assert_eq!(p.legacy_el.with_chain(|c| c.finalized()), hash);
    drop(engine);
    system.shutdown().await;
}
