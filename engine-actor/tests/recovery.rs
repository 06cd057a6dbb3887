//! Self-healing on the MockExecutionLayer: clients that lack blocks are caught up (from the
//! engine's store, or from another client's blocks), a disagreement between clients follows the
//! policy, a primary killed mid-production costs no slot, and peg-outs are never lost.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use alloy_primitives::{Address, B256, U256};
use engine_actor::{EngineHandle, EngineSystem, metric_names as names};
use engine_testkit::{
    ClientProfile, DEV_PRIVATE_KEY, Fault, FaultRule, MockConfig, MockEngine, MockExecutionLayer,
    engine_slot, metric_sample, mock_client_options, peg_in, scrape_metrics, signed_peg_out,
    test_engine_config, wait_for,
};
use engine_types::{BuildPayloadRequest, DisagreementPolicy, EngineConfig, EngineError};
use rstest::rstest;

const WAIT: Duration = Duration::from_secs(10);

/// `n` slots with a peg-in each; the committed hashes.
async fn slots(engine: &EngineHandle, n: u8) -> Vec<B256> {
    let mut hashes = Vec::new();
    for i in 0..n {
        let slot = engine_slot(engine, vec![peg_in(0x40 + i, 10 + u64::from(i))])
            .await
            .unwrap_or_else(|e| panic!("slot {i}: {e}"));
        hashes.push(slot.hash);
    }
    hashes
}

fn funded() -> MockConfig {
    MockConfig::default()
        .with_profile(ClientProfile::reth())
        .with_prefunded(Address::repeat_byte(0x77), U256::from(1u64))
}

/// Two mocks on the same genesis and an engine on both (the first is the primary).
struct TwoEls {
    primary: MockExecutionLayer,
    secondary: MockExecutionLayer,
    system: EngineSystem,
    engine: EngineHandle,
    config: EngineConfig,
    _dir: tempfile::TempDir,
}

async fn two_els(tweak: impl FnOnce(&mut EngineConfig)) -> TwoEls {
    let dir = tempfile::tempdir().unwrap();
    let primary = MockExecutionLayer::start(funded()).await.unwrap();
    let secondary = MockExecutionLayer::start(funded()).await.unwrap();
    let mut config = test_engine_config(dir.path());
    tweak(&mut config);
    let options = vec![
        mock_client_options(&primary, &config),
        mock_client_options(&secondary, &config),
    ];
    let system = EngineSystem::start_with_options(config.clone(), options)
        .await
        .unwrap();
    let engine = system.handle();
    TwoEls {
        primary,
        secondary,
        system,
        engine,
        config,
        _dir: dir,
    }
}

/// A client restarted without its last four blocks (Reth keeps recent blocks in memory) is
/// refilled from the engine's store by the next slot's build, which then succeeds.
#[tokio::test]
async fn an_el_restarted_without_its_last_blocks_is_refilled_by_the_next_slot() {
    let f = MockEngine::start().await.unwrap();
    let committed = slots(&f.engine, 10).await;
    f.mock.stop().await;
    f.mock.with_chain_mut(|c| c.lose_blocks_above(6));
    f.mock.restart().await.unwrap();
    assert_eq!(f.mock.with_chain(|c| c.head_block()).unwrap().number, 6);
    let next = wait_for("the first slot after the restart", WAIT, || async {
        engine_slot(&f.engine, vec![peg_in(0x60, 1)]).await.ok()
    })
    .await
    .unwrap();
    assert_eq!(next.built.block_number(), 11);
    for hash in committed.iter().chain([&next.hash]) {
        assert!(
            f.mock.with_chain(|c| c.is_ancestor(*hash, next.hash)),
            "block {hash} is back on the EL's chain"
        );
    }
    let status = f.engine.status().await.unwrap();
    assert_eq!(status.writer.blocks_replayed, 4);
    let text = f.system.metrics().render();
    assert_eq!(metric_sample(&text, names::BLOCKS_REPLAYED_TOTAL, ""), 4.0);
    f.system.shutdown().await;
}

/// A secondary down for twenty slots is brought to the primary's head by the commits that
/// follow (at most half a slot of catch-up per commit), and both hold the same balances.
#[tokio::test]
async fn a_secondary_that_was_down_catches_up_while_the_primary_produces() {
    let f = two_els(|_| {}).await;
    slots(&f.engine, 2).await;
    f.secondary.stop().await;
    let started = Instant::now();
    slots(&f.engine, 20).await;
    f.secondary.restart().await.unwrap();
    let caught_up = Instant::now();
    wait_for("the secondary at the primary's head", WAIT, || async {
        engine_slot(&f.engine, vec![]).await.ok()?;
        (f.secondary.with_chain(|c| c.head()) == f.primary.with_chain(|c| c.head())).then_some(())
    })
    .await
    .unwrap();
    println!(
        "secondary caught up {} ms after its restart (down for 20 slots, {} ms)",
        caught_up.elapsed().as_millis(),
        (caught_up - started).as_millis()
    );
    for i in 0..22u8 {
        let address = Address::repeat_byte(0x40 + i % 20);
        assert_eq!(
            f.secondary.with_chain(|c| c.balance(address)),
            f.primary.with_chain(|c| c.balance(address)),
            "balance of {address}"
        );
    }
    f.system.shutdown().await;
}

/// The engine restarted (its store is empty) and the primary lost blocks: they come back from
/// the secondary, which has them.
#[tokio::test]
async fn a_primary_that_lost_blocks_is_refilled_from_the_secondary_after_an_engine_restart() {
    let f = two_els(|_| {}).await;
    let committed = slots(&f.engine, 8).await;
    f.system.shutdown().await;
    f.primary.stop().await;
    f.primary.with_chain_mut(|c| c.lose_blocks_above(3));
    f.primary.restart().await.unwrap();
    let options = vec![
        mock_client_options(&f.primary, &f.config),
        mock_client_options(&f.secondary, &f.config),
    ];
    let system = EngineSystem::start_with_options(f.config.clone(), options)
        .await
        .unwrap();
    let engine = system.handle();
    let head = engine.forkchoice().await.unwrap();
    assert_eq!(head.head, *committed.last().unwrap(), "the persisted head");
    assert_eq!(
        f.primary.with_chain(|c| c.head()),
        head.head,
        "the primary got its blocks back at start"
    );
    assert_eq!(engine.status().await.unwrap().writer.blocks_replayed, 5);
    engine_slot(&engine, vec![]).await.unwrap();
    system.shutdown().await;
}

/// A block no source has: a clear error naming what is missing, and nothing changes.
#[tokio::test]
async fn blocks_no_source_has_are_a_clear_error() {
    let f = MockEngine::start().await.unwrap();
    slots(&f.engine, 4).await;
    let before = f.engine.forkchoice().await.unwrap();
    f.system.shutdown().await;
    f.mock.with_chain_mut(|c| c.lose_blocks_above(1));
    let mut config = f.config.clone();
    config.health.startup_timeout_ms = 1_000;
    let err = EngineSystem::start_with_options(config, vec![f.options.clone()])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("neither the engine's store nor another execution client has"),
        "{err}"
    );
    assert_eq!(
        engine_actor::ForkchoiceSnapshot::load(&f.state_path)
            .unwrap()
            .unwrap(),
        before,
        "the state file is untouched"
    );
}

/// VALID on the primary, INVALID on the secondary: refused by default (nothing committed,
/// counted, shown), followed with `follow_primary` (committed, counted, shown).
#[rstest]
#[case::refused(DisagreementPolicy::Refuse)]
#[case::followed(DisagreementPolicy::FollowPrimary)]
#[tokio::test]
async fn a_disagreement_between_clients_follows_the_policy(#[case] policy: DisagreementPolicy) {
    let f = two_els(|c| c.recovery.disagreement = policy).await;
    slots(&f.engine, 1).await;
    let before = f.engine.forkchoice().await.unwrap();
    let ts = before.head_timestamp + 2;
    let built = f
        .engine
        .build_payload(BuildPayloadRequest::new(ts))
        .await
        .unwrap();
    f.secondary.inject(
        FaultRule::new(Fault::invalid("state root mismatch", Some(before.head)))
            .on("engine_newPayload")
            .times(1),
    );
    let hash = built.block_hash();
    let result = f.engine.commit_payload(built.execution_data).await;
    let status = f.engine.status().await.unwrap();
    assert_eq!(status.writer.disagreements, 1);
    let shown = status.writer.last_disagreement.unwrap();
    assert!(shown.contains("state root mismatch"), "{shown}");
    let text = f.system.metrics().render();
    match policy {
        DisagreementPolicy::Refuse => {
            let err = result.unwrap_err();
            assert!(matches!(err, EngineError::Disagreement { .. }), "{err:?}");
            assert_eq!(f.engine.forkchoice().await.unwrap(), before);
            assert_eq!(
                metric_sample(&text, names::DISAGREEMENTS_TOTAL, "outcome=\"refused\""),
                1.0
            );
        }
        _ => {
            assert_eq!(result.unwrap(), hash);
            assert_eq!(
                metric_sample(&text, names::DISAGREEMENTS_TOTAL, "outcome=\"followed\""),
                1.0
            );
        }
    }
    f.system.shutdown().await;
}

/// Two clients, the primary killed in the middle of production: every slot still gets its
/// block (builds run on both, getPayload falls over to the secondary, the first answer of a
/// write counts), and the worst slot stays within the slot.
#[tokio::test]
async fn a_primary_killed_mid_production_costs_no_slot() {
    const SLOTS: usize = 20;
    let f = two_els(|_| {}).await;
    let metrics = f.system.serve_metrics("127.0.0.1:0".parse().unwrap()).await;
    let (metrics_addr, server) = metrics.unwrap();
    let mut worst = Duration::ZERO;
    let mut missed = 0;
    for slot in 0..SLOTS {
        if slot == SLOTS / 2 {
            f.primary.stop().await;
        }
        let started = Instant::now();
        let head = f.engine.forkchoice().await.unwrap();
        let result = async {
            let built = f
                .engine
                .build_payload(
                    BuildPayloadRequest::new(head.head_timestamp + 2)
                        .with_peg_ins(vec![peg_in(0x90, 1)]),
                )
                .await?;
            f.engine.commit_payload(built.execution_data).await
        }
        .await;
        worst = worst.max(started.elapsed());
        if let Err(e) = result {
            missed += 1;
            println!("slot {slot} missed: {e}");
        }
    }
    let text = scrape_metrics(metrics_addr).await.unwrap();
    server.abort();
    println!(
        "primary killed at slot {}: {missed} of {SLOTS} slots missed, worst slot {} ms",
        SLOTS / 2,
        worst.as_millis()
    );
    assert_eq!(missed, 0);
    assert!(worst < f.config.slot_duration(), "worst slot {worst:?}");
    assert_eq!(
        f.secondary.with_chain(|c| c.head_block()).unwrap().number,
        SLOTS as u64
    );
    let primary = &f.engine.status().await.unwrap().sessions[0].endpoint;
    assert_eq!(
        metric_sample(&text, names::CONNECTION_STATUS, primary),
        0.0,
        "the dead primary is reported down"
    );
    f.system.shutdown().await;
}

/// A committed block whose receipts cannot be fetched (the EL answers 500 for a while) is
/// scanned again until it is; the peg-out arrives, and a subscriber that starts later from a
/// block number gets exactly the peg-outs from that block on, in order.
#[tokio::test]
async fn peg_outs_are_retried_until_read_and_a_subscriber_resumes_from_a_block() {
    let f = MockEngine::start().await.unwrap();
    let mut early = f.engine.peg_outs_from(0);
    let value = U256::from(1_000_000u64) * U256::from(10_000_000_000u64);
    let mut blocks = Vec::new();
    for nonce in 0..3u64 {
        let (raw, tx) =
            signed_peg_out(DEV_PRIVATE_KEY, 263_634, nonce, b"bc1qresume", value).unwrap();
        f.engine.send_raw_transaction(raw).await.unwrap();
        if nonce == 0 {
            // The first block's receipts fail four times (the client retries once per call).
            f.mock.inject(
                FaultRule::new(Fault::Http(500))
                    .on("eth_getBlockReceipts")
                    .times(4),
            );
        }
        let slot = engine_slot(&f.engine, vec![]).await.unwrap();
        blocks.push((slot.built.block_number(), tx));
    }
    for (number, tx) in &blocks {
        let peg_out = tokio::time::timeout(WAIT, early.next())
            .await
            .expect("the peg-out arrives")
            .unwrap();
        assert_eq!((peg_out.block_number, peg_out.tx_hash), (*number, *tx));
    }
    let text = f.system.metrics().render();
    assert!(
        metric_sample(&text, names::PEG_OUT_SCAN_FAILURES_TOTAL, "") >= 2.0,
        "{text}"
    );
    assert_eq!(metric_sample(&text, names::PEG_OUT_SCANS_PENDING, ""), 0.0);

    // Resuming from the second block: the second and third peg-outs, nothing else.
    let mut late = f.engine.peg_outs_from(blocks[1].0);
    for (number, tx) in &blocks[1..] {
        let peg_out = late.try_next().expect("kept in the log");
        assert_eq!((peg_out.block_number, peg_out.tx_hash), (*number, *tx));
    }
    assert!(late.try_next().is_none());
    f.system.shutdown().await;
}
