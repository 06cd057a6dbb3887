//! The write path's guarantees, on the mock: a caller whose write dies with its actor gets an
//! error (never a hang), every call has a deadline (the build also the slot's), shutdown waits
//! for the write in flight, and reads never wait behind a write.

// Panicking is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use engine_actor::{ChildKind, ForkchoiceSnapshot};
use engine_testkit::{
    Fault, FaultRule, MockEngine, engine_slot, funded_mock_config, mock_engine, wait_for,
};
use engine_types::{BuildPayloadRequest, EngineError};
use rstest::rstest;

const WAIT: Duration = Duration::from_secs(10);

fn slow(method: &str, by: Duration) -> FaultRule {
    FaultRule::new(Fault::Latency(by)).on(method).times(1)
}

#[rstest]
#[tokio::test]
async fn a_write_in_flight_when_the_writer_dies_is_an_error_and_the_next_succeed(
    #[future] mock_engine: MockEngine,
) {
    let f = mock_engine.await;
    engine_slot(&f.engine, vec![]).await.unwrap();
    let head = f.engine.forkchoice().await.unwrap();
    let built = f
        .engine
        .build_payload(BuildPayloadRequest::new(head.head_timestamp + 2))
        .await
        .unwrap();
    f.mock
        .inject(slow("engine_newPayload", Duration::from_secs(3)));
    let engine = f.engine.clone();
    let commit = tokio::spawn(async move { engine.commit_payload(built.execution_data).await });
    wait_for("the commit reaches the EL", WAIT, || async {
        (!f.mock.requests_for("engine_newPayload").is_empty()).then_some(())
    })
    .await
    .unwrap();
    f.system.kill_child(ChildKind::Writer);
    let answer = tokio::time::timeout(Duration::from_secs(2), commit)
        .await
        .expect("answered at once, not after the EL's latency")
        .unwrap();
    let err = answer.unwrap_err();
    assert!(
        matches!(&err, EngineError::Unavailable { reason } if reason.contains("writer stopped")),
        "{err:?}"
    );
    // The restarted writer reloaded the state file; ten more slots go through it.
    for _ in 0..10 {
        let slot = wait_for("a slot after the restart", WAIT, || async {
            engine_slot(&f.engine, vec![]).await.ok()
        })
        .await
        .unwrap();
        assert_eq!(f.mock.with_chain(|c| c.head()), slot.hash);
    }
    let snap = f.engine.forkchoice().await.unwrap();
    assert_eq!(
        ForkchoiceSnapshot::load(&f.state_path).unwrap(),
        Some(snap),
        "the file holds what the engine holds"
    );
    f.system.shutdown().await;
}

#[tokio::test]
async fn every_call_has_a_deadline_and_the_build_also_the_slots() {
    let f = MockEngine::start_with(funded_mock_config(), |config, _| {
        config.slot_duration_ms = 400;
        config.timeouts.request_ms = 700;
        config.timeouts.eth_ms = 1_500;
    })
    .await
    .unwrap();
    let genesis = f.engine.forkchoice().await.unwrap();
    let head = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    // Building on an older parent looks the parent up (eth_, bounded by eth_ms, not the
    // slot): stuck for 1.5 s, longer than both handle deadlines.
    f.mock
        .inject(FaultRule::new(Fault::Latency(Duration::from_secs(5))).on("eth_getBlockByHash"));
    let request = BuildPayloadRequest::new(genesis.head_timestamp + 4).with_parent(genesis.head);
    let engine = f.engine.clone();
    let build = tokio::spawn(async move { engine.build_payload(request).await });
    wait_for("the build looks its parent up", WAIT, || async {
        (!f.mock.requests_for("eth_getBlockByHash").is_empty()).then_some(())
    })
    .await
    .unwrap();
    // A finalize of the head needs no lookup, but waits behind the build in the writer.
    let err = f.engine.finalize(head).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Timeout { method, after } if method == "engine.finalize_block" && *after == Duration::from_millis(700)),
        "{err:?}"
    );
    let err = build.await.unwrap().unwrap_err();
    assert!(
        matches!(&err, EngineError::Timeout { method, after } if method == "engine.build_payload" && *after == Duration::from_millis(400)),
        "a build is bounded by the slot: {err:?}"
    );
    f.mock.clear_faults();
    // The finalize whose caller gave up was never started.
    let status = wait_for("the writer is idle", WAIT, || async {
        f.engine
            .status()
            .await
            .ok()
            .filter(|s| s.writer.in_flight.is_none())
    })
    .await
    .unwrap();
    assert_eq!(status.writer.writes_abandoned, 1, "{:?}", status.writer);
    assert!(f.mock.with_chain(|c| c.finalized()).is_zero());
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn shutdown_waits_for_the_write_in_flight(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let head = f.engine.forkchoice().await.unwrap();
    let built = f
        .engine
        .build_payload(BuildPayloadRequest::new(head.head_timestamp + 2))
        .await
        .unwrap();
    let hash = built.block_hash();
    f.mock
        .inject(slow("engine_newPayload", Duration::from_millis(500)));
    let engine = f.engine.clone();
    let commit = tokio::spawn(async move { engine.commit_payload(built.execution_data).await });
    wait_for("the commit reaches the EL", WAIT, || async {
        (!f.mock.requests_for("engine_newPayload").is_empty()).then_some(())
    })
    .await
    .unwrap();
    let (mock, state_path) = (f.mock, f.state_path);
    f.system.shutdown().await;
    assert_eq!(commit.await.unwrap().unwrap(), hash, "the write finished");
    assert_eq!(mock.with_chain(|c| c.head()), hash);
    assert_eq!(
        ForkchoiceSnapshot::load(&state_path)
            .unwrap()
            .map(|s| s.head),
        Some(hash),
        "and was persisted before the tree stopped"
    );
}

#[rstest]
#[tokio::test]
async fn reads_never_wait_behind_a_slow_write(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let cached = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let head = f.engine.forkchoice().await.unwrap();
    let built = f
        .engine
        .build_payload(BuildPayloadRequest::new(head.head_timestamp + 2))
        .await
        .unwrap();
    f.mock
        .inject(slow("engine_newPayload", Duration::from_millis(1_500)));
    let engine = f.engine.clone();
    let commit = tokio::spawn(async move { engine.commit_payload(built.execution_data).await });
    wait_for("the commit reaches the EL", WAIT, || async {
        (!f.mock.requests_for("engine_newPayload").is_empty()).then_some(())
    })
    .await
    .unwrap();
    let readers: Vec<_> = (0..16)
        .map(|_| {
            let engine = f.engine.clone();
            tokio::spawn(async move {
                for _ in 0..20 {
                    let block = engine.get_block(cached, true).await.unwrap().unwrap();
                    assert_eq!(block.header.hash, cached);
                }
                engine.forkchoice().await.unwrap()
            })
        })
        .collect();
    for reader in readers {
        assert_eq!(
            reader.await.unwrap(),
            head,
            "the forkchoice before the commit"
        );
    }
    assert!(
        !commit.is_finished(),
        "all 320 cached reads and 16 forkchoice reads were answered while the write was in flight"
    );
    let status = f.engine.status().await.unwrap();
    assert_eq!(
        status.writer.in_flight.as_ref().map(|w| w.op),
        Some("commit_payload"),
        "status names the write in flight: {:?}",
        status.writer
    );
    commit.await.unwrap().unwrap();
    f.system.shutdown().await;
}

/// A run of blocks from one engine imported into a fresh one in batches: newPayload for each,
/// one forkchoiceUpdated per batch; an INVALID block stops the import, and what came before it
/// stays committed.
#[rstest]
#[case::all_valid(None, 30, 4)]
#[case::stops_at_an_invalid_block(Some(11), 11, 2)]
#[tokio::test]
async fn a_batch_import_commits_a_run_with_one_forkchoice_per_batch(
    #[case] invalid_at: Option<usize>,
    #[case] imported: usize,
    #[case] forkchoice_updates: usize,
) {
    const RUN: usize = 30;
    const BATCH: usize = 8;
    let producer = MockEngine::start().await.unwrap();
    let mut run = Vec::new();
    for n in 0..RUN {
        let slot = engine_slot(
            &producer.engine,
            vec![engine_testkit::peg_in(0x30 + n as u8, 5)],
        )
        .await
        .unwrap();
        run.push(slot.built.execution_data);
    }
    // The importer's mock has the producer's genesis (same config, same genesis block).
    let importer = MockEngine::start().await.unwrap();
    assert_eq!(
        importer.mock.with_chain(|c| c.genesis_hash()),
        producer.mock.with_chain(|c| c.genesis_hash())
    );
    importer.mock.clear_requests();
    if let Some(at) = invalid_at {
        // Fail the newPayload of payload `at` (0-based): skip the ones before it.
        for _ in 0..at {
            importer.mock.inject(
                FaultRule::new(Fault::Latency(Duration::ZERO))
                    .on("engine_newPayload")
                    .times(1),
            );
        }
        importer.mock.inject(
            FaultRule::new(Fault::invalid("bad block", None))
                .on("engine_newPayload")
                .times(1),
        );
    }
    let report = importer
        .engine
        .import_payloads(run.clone(), BATCH)
        .await
        .unwrap();
    assert_eq!(report.imported, imported, "{report:?}");
    assert_eq!(report.head, run[imported - 1].payload.block_hash());
    assert_eq!(report.stopped.is_some(), invalid_at.is_some(), "{report:?}");
    assert_eq!(
        importer.engine.forkchoice().await.unwrap().head,
        report.head
    );
    assert_eq!(importer.mock.with_chain(|c| c.head()), report.head);
    let fcus = importer
        .mock
        .requests_for("engine_forkchoiceUpdated")
        .iter()
        .filter(|r| r.params.get(1).is_none_or(serde_json::Value::is_null))
        .count();
    assert_eq!(fcus, forkchoice_updates);
    producer.system.shutdown().await;
    importer.system.shutdown().await;
}

/// Deadlines by path: a newPayload slower than the slot (but within the spec's 8 s) fails the
/// producer's `commit_payload`, bounded by the slot, and succeeds through `import_payloads`,
/// which a node uses for blocks it did not build in this slot.
#[tokio::test]
async fn imports_get_the_spec_deadline_commits_the_slots() {
    let slot_ms = 400;
    let producer = MockEngine::start().await.unwrap();
    let mut blocks = Vec::new();
    for n in 0..2u8 {
        let slot = engine_slot(&producer.engine, vec![engine_testkit::peg_in(0x61 + n, 5)])
            .await
            .unwrap();
        blocks.push(slot.built.execution_data);
    }
    let importer =
        MockEngine::start_with(engine_testkit::funded_mock_config(), |config, options| {
            config.slot_duration_ms = slot_ms;
            *options = options.clone().with_engine_config(config);
        })
        .await
        .unwrap();
    // The first newPayload after a connect always gets the full deadline: take it first.
    importer
        .engine
        .commit_payload(blocks[0].clone())
        .await
        .unwrap();
    let slow = || {
        FaultRule::new(Fault::Latency(Duration::from_millis(2 * slot_ms)))
            .on("engine_newPayload")
            .times(1)
    };
    importer.mock.inject(slow());
    let err = importer
        .engine
        .commit_payload(blocks[1].clone())
        .await
        .expect_err("a newPayload slower than the slot fails the slot-bounded commit");
    assert!(matches!(err, EngineError::Timeout { .. }), "{err:?}");
    importer.mock.inject(slow());
    let report = importer
        .engine
        .import_payloads(vec![blocks[1].clone()], 1)
        .await
        .unwrap();
    assert_eq!(report.imported, 1);
    assert_eq!(report.head, blocks[1].payload.block_hash());
    producer.system.shutdown().await;
    importer.system.shutdown().await;
}
