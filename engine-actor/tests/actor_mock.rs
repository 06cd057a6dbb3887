//! The actor tree against the MockExecutionLayer: every message, failure statuses, bounds,
//! caches, persistence, supervision, failover and the legacy facade.
//!
//! (Longer than the ~600-line guideline on purpose: one suite is one test binary, and on a
//! 2-core machine every extra binary costs a link; its tests share the helpers at the top.)

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_eips::BlockNumberOrTag;
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_engine::{ExecutionPayload, ForkchoiceState};
use engine_actor::{
    BlockRef, ChildKind, CircuitState, Engine, EngineSystem, ForkchoiceSnapshot, PayloadRef,
};
use engine_clients::ClientOptions;
use engine_testkit::{
    ClientProfile, DEV_ACCOUNT, DEV_PRIVATE_KEY, Fault, FaultRule, MockConfig, MockEngine,
    MockExecutionLayer, engine_slot, mock_client_options, mock_engine, peg_in, signed_transfer,
    test_engine_config, wait_for,
};
use engine_types::{BuildPayloadRequest, EngineError};
use rstest::rstest;

/// How long a test waits for the tree to come back or a condition to hold.
const WAIT: Duration = Duration::from_secs(10);

#[rstest]
#[tokio::test]
async fn build_commit_finalize_round_trip(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let first = engine_slot(&f.engine, vec![peg_in(0xa1, 100), peg_in(0xa2, 5)])
        .await
        .unwrap()
        .hash;
    let second = engine_slot(&f.engine, vec![peg_in(0xa1, 100)])
        .await
        .unwrap()
        .hash;
    assert_eq!(f.mock.with_chain(|c| c.head()), second);
    let snap = f.engine.forkchoice().await.unwrap();
    assert_eq!(
        (snap.head, snap.head_number, snap.next_withdrawal_index),
        (second, 2, 3)
    );
    assert_eq!(
        f.mock.with_chain(|c| c.balance(Address::repeat_byte(0xa1))),
        U256::from(2_000u64) * U256::from(1_000_000_000u64)
    );
    // Withdrawal indices are unique and increasing across blocks.
    let indices: Vec<u64> = [first, second]
        .iter()
        .flat_map(|h| {
            f.mock.with_chain(|c| {
                c.block(*h)
                    .unwrap()
                    .withdrawals
                    .iter()
                    .map(|w| w.index)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    assert_eq!(indices, vec![0, 1, 2]);

    f.engine.finalize(first).await.unwrap();
    // Reached the EL at once, not "at the next update".
    assert_eq!(
        f.mock.with_chain(|c| (c.finalized(), c.safe())),
        (first, first)
    );
    let saved: ForkchoiceSnapshot =
        serde_json::from_slice(&std::fs::read(&f.state_path).unwrap()).unwrap();
    assert_eq!(
        (saved.head, saved.finalized, saved.finalized_number),
        (second, first, 1)
    );
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn block_with_txs_right_after_commit_is_a_cache_hit(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let (raw, tx) = signed_transfer(
        DEV_PRIVATE_KEY,
        263_634,
        0,
        Address::repeat_byte(7),
        U256::from(1u64),
    )
    .unwrap();
    assert_eq!(f.engine.send_raw_transaction(raw).await.unwrap(), tx);
    let head = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    // Receipts are fetched once, right after the commit (one eth_getBlockReceipts per block).
    // Asked at once: the read joins the post-commit fetch instead of making its own call.
    let receipts = f.engine.get_receipts(head).await.unwrap();
    assert_eq!(receipts[0].transaction_hash, tx);
    assert_eq!(f.mock.requests_for("eth_getBlockReceipts").len(), 1);
    f.mock.clear_requests();

    let block = f
        .engine
        .get_block(head, true)
        .await
        .unwrap()
        .expect("block");
    assert_eq!(block.transactions.len(), 1);
    assert_eq!(block.transactions.hashes().next(), Some(tx));
    let latest = f
        .engine
        .get_block(BlockRef::Latest, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.header.hash, head);
    let receipt = f.engine.get_transaction_receipt(tx).await.unwrap().unwrap();
    assert_eq!(receipt.block_hash, Some(head));
    assert_eq!(f.engine.get_receipts(head).await.unwrap().len(), 1);
    let el_reads: Vec<_> = f
        .mock
        .requests()
        .into_iter()
        .filter(|r| r.method.starts_with("eth_"))
        .collect();
    assert!(
        el_reads.is_empty(),
        "all served from the caches: {el_reads:?}"
    );
    let status = f.engine.status().await.unwrap();
    assert!(status.caches.blocks.hits >= 2, "{:?}", status.caches);
    assert!(status.caches.receipts.hits >= 2, "{:?}", status.caches);
    f.system.shutdown().await;
}

#[rstest]
#[case::invalid(
    Fault::invalid("bad state root", Some(B256::repeat_byte(0x11))),
    "invalid_payload"
)]
#[rstest]
#[case::syncing(Fault::status("SYNCING"), "syncing")]
#[case::accepted(Fault::status("ACCEPTED"), "accepted")]
#[case::el_error(Fault::RpcError { code: -32603, message: "boom".into() }, "rpc")]
#[tokio::test]
async fn commit_that_is_not_valid_keeps_the_head(
    #[case] fault: Fault,
    #[case] kind: &str,
    #[future] mock_engine: MockEngine,
) {
    let f = mock_engine.await;
    let head = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let before = f.engine.forkchoice().await.unwrap();
    let built = f
        .engine
        .build_payload(BuildPayloadRequest::new(before.head_timestamp + 2))
        .await
        .unwrap();
    f.mock
        .inject(FaultRule::new(fault).on("engine_newPayload").times(1));
    f.mock.clear_requests();
    let err = f
        .engine
        .commit_payload(built.execution_data)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kind, "{err:?}");
    if let EngineError::InvalidPayload {
        validation_error,
        latest_valid_hash,
        ..
    } = &err
    {
        assert_eq!(validation_error.as_deref(), Some("bad state root"));
        assert_eq!(*latest_valid_hash, Some(B256::repeat_byte(0x11)));
    }
    assert_eq!(f.engine.forkchoice().await.unwrap(), before);
    assert_eq!(f.mock.with_chain(|c| c.head()), head);
    assert!(
        f.mock.requests_for("engine_forkchoiceUpdated").is_empty(),
        "no forkchoice change after a failed newPayload"
    );
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn requests_are_validated_before_any_io(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    f.mock.clear_requests();
    let ts = f.engine.forkchoice().await.unwrap().head_timestamp + 2;
    let too_many = vec![peg_in(1, 1); 17];
    let err = f
        .engine
        .build_payload(BuildPayloadRequest::new(ts).with_peg_ins(too_many))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("17 peg-ins exceed"), "{err}");
    let err = f
        .engine
        .build_payload(BuildPayloadRequest::new(ts - 2))
        .await
        .unwrap_err();
    assert_eq!(
        err.kind(),
        "invalid_request",
        "timestamp not after the parent: {err}"
    );
    assert_eq!(
        f.engine.finalize(B256::ZERO).await.unwrap_err().kind(),
        "invalid_request"
    );
    assert_eq!(
        f.engine.revert_to(B256::ZERO).await.unwrap_err().kind(),
        "invalid_request"
    );
    let slot_calls: Vec<_> = f
        .mock
        .requests()
        .into_iter()
        .filter(|r| {
            [
                "engine_forkchoiceUpdated",
                "engine_getPayload",
                "engine_newPayload",
            ]
            .iter()
            .any(|m| r.method.starts_with(m))
        })
        .collect();
    assert!(slot_calls.is_empty(), "{slot_calls:?}");
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn finalize_rules(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let one = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let two = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let err = f
        .engine
        .finalize(B256::repeat_byte(0x99))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::NotFound { .. }),
        "unknown block: {err:?}"
    );
    f.engine.finalize(two).await.unwrap();
    let err = f.engine.finalize(one).await.unwrap_err();
    assert!(
        err.to_string().contains("finality cannot move back"),
        "{err}"
    );
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn revert_moves_head_back_only_to_an_ancestor(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let genesis = f.engine.forkchoice().await.unwrap();
    let one = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let _two = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    // A sibling of `one`: known to the EL (validated) but not on the head's chain.
    let sibling = {
        f.engine.revert_to(genesis.head).await.unwrap();
        let built = f
            .engine
            .build_payload(BuildPayloadRequest::new(genesis.head_timestamp + 5))
            .await
            .unwrap();
        f.engine
            .validate_payload(built.execution_data.clone())
            .await
            .unwrap();
        f.engine
            .update_forkchoice(ForkchoiceState {
                head_block_hash: _two,
                ..Default::default()
            })
            .await
            .unwrap();
        built.block_hash()
    };
    assert_eq!(f.engine.forkchoice().await.unwrap().head, _two);
    let err = f.engine.revert_to(sibling).await.unwrap_err();
    assert!(err.to_string().contains("not an ancestor"), "{err}");
    f.engine.revert_to(one).await.unwrap();
    assert_eq!(f.engine.forkchoice().await.unwrap().head, one);
    assert_eq!(f.mock.with_chain(|c| c.head()), one);
    f.engine.finalize(one).await.unwrap();
    let err = f.engine.revert_to(genesis.head).await.unwrap_err();
    assert!(err.to_string().contains("past finality"), "{err}");
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn validate_payload_does_not_move_the_head(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let before = f.engine.forkchoice().await.unwrap();
    let built = f
        .engine
        .build_payload(BuildPayloadRequest::new(before.head_timestamp + 2))
        .await
        .unwrap();
    f.engine
        .validate_payload(built.execution_data.clone())
        .await
        .unwrap();
    assert_eq!(f.engine.forkchoice().await.unwrap().head, before.head);
    assert_eq!(f.mock.with_chain(|c| c.head()), before.head);
    // The payload is cached by id.
    let cached = f.engine.get_payload(built.payload_id).await.unwrap();
    assert_eq!(cached.block_hash(), built.block_hash());
    let by_hash = f
        .engine
        .get_payload(PayloadRef::BlockHash(built.block_hash()))
        .await
        .unwrap();
    assert_eq!(by_hash.payload_id, built.payload_id);
    let missing = f
        .engine
        .get_payload(alloy_rpc_types_engine::PayloadId::new([9; 8]))
        .await
        .unwrap_err();
    assert!(matches!(missing, EngineError::NotFound { .. }));
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn initialize_from_legacy_adopts_head_safe_finalized(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let one = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let two = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let legacy = ForkchoiceState {
        head_block_hash: two,
        safe_block_hash: one,
        finalized_block_hash: one,
    };
    let snap = f.engine.initialize_from_legacy(legacy).await.unwrap();
    assert_eq!(
        (
            snap.head,
            snap.safe,
            snap.finalized,
            snap.head_number,
            snap.finalized_number
        ),
        (two, one, one, 2, 1)
    );
    assert_eq!(
        f.mock.with_chain(|c| (c.head(), c.safe(), c.finalized())),
        (two, one, one)
    );
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn reads_pass_through_to_the_el(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let head = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    assert!(f.engine.sync_status().await.unwrap().is_synced());
    let by_number = f
        .engine
        .get_block(BlockRef::Number(0), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(by_number.header.number, 0);
    let logs = f
        .engine
        .get_logs(alloy_rpc_types_eth::Filter::new().select(0u64..=1))
        .await
        .unwrap();
    assert!(logs.is_empty());
    let bodies = f.engine.payload_bodies_by_hash(vec![head]).await.unwrap();
    assert_eq!(bodies.len(), 1);
    assert!(bodies[0].is_some());
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn legacy_engine_facade_keeps_the_old_names(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let engine = Engine::new(f.engine.clone());
    let genesis = engine
        .get_payload_by_tag_from_engine(BlockNumberOrTag::Number(0))
        .await
        .unwrap();
    assert_eq!(genesis.block_number(), 0);
    assert_eq!(
        genesis.block_hash(),
        f.mock.with_chain(|c| c.genesis_hash())
    );
    let ts = Duration::from_secs(genesis.timestamp() + 2);
    let payload = engine
        .build_block(ts, None, vec![peg_in(0xb1, 10)])
        .await
        .unwrap();
    assert!(matches!(payload.payload, ExecutionPayload::V2(_)));
    let hash = engine.commit_block(payload).await.unwrap();
    let block = engine.get_block_with_txs(&hash).await.unwrap().unwrap();
    assert_eq!(block.header.hash, hash);
    engine.set_finalized(hash).await.unwrap();
    assert_eq!(f.mock.with_chain(|c| c.finalized()), hash);
    let bodies = engine
        .api
        .get_payload_bodies_by_hash_v1(vec![hash])
        .await
        .unwrap();
    assert_eq!(
        bodies[0]
            .as_ref()
            .and_then(|b| b.withdrawals.as_ref())
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        engine
            .get_transaction_receipt(B256::repeat_byte(1))
            .await
            .unwrap(),
        None
    );
    f.system.shutdown().await;
}

#[rstest]
#[case::engine(ChildKind::Engine)]
#[case::writer(ChildKind::Writer)]
#[case::session(ChildKind::Session(0))]
#[case::health_poller(ChildKind::HealthPoller)]
#[case::cache_janitor(ChildKind::CacheJanitor)]
#[tokio::test]
async fn a_panicking_child_is_restarted_and_the_engine_keeps_working(
    #[case] child: ChildKind,
    #[future] mock_engine: MockEngine,
) {
    let f = mock_engine.await;
    let head = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    f.system.crash_child(child);
    wait_for("condition", WAIT, || async {
        f.system
            .restarts()
            .await
            .get(&child)
            .copied()
            .filter(|n| *n >= 1)
    })
    .await
    .unwrap();
    // The tree is whole again: a full slot succeeds and state survived.
    let next = wait_for("condition", WAIT, || async {
        let ts = f.engine.forkchoice().await.ok()?.head_timestamp + 2;
        let built = f
            .engine
            .build_payload(BuildPayloadRequest::new(ts))
            .await
            .ok()?;
        f.engine.commit_payload(built.execution_data).await.ok()
    })
    .await
    .unwrap();
    let snap = f.engine.forkchoice().await.unwrap();
    assert_eq!(snap.head, next);
    assert_eq!(snap.head_number, 2, "head was {head} before the crash");
    assert_eq!(f.system.restarts().await.values().sum::<u32>(), 1);
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn a_writer_restart_reloads_state_from_disk_and_reannounces_it(
    #[future] mock_engine: MockEngine,
) {
    let f = mock_engine.await;
    let one = engine_slot(&f.engine, vec![peg_in(0xc1, 1)])
        .await
        .unwrap()
        .hash;
    let two = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    f.engine.finalize(one).await.unwrap();
    let before = f.engine.forkchoice().await.unwrap();
    f.mock.clear_requests();
    f.system.crash_child(ChildKind::Writer);
    wait_for("the writer restarts", WAIT, || async {
        f.system.restarts().await.get(&ChildKind::Writer).copied()
    })
    .await
    .unwrap();
    // The restarted writer announced the state file once; the next write goes through it.
    let announced = wait_for("the re-announce", WAIT, || async {
        let fcus = f.mock.requests_for("engine_forkchoiceUpdated");
        (!fcus.is_empty()).then_some(fcus)
    })
    .await
    .unwrap();
    assert_eq!(announced.len(), 1, "one re-announce: {announced:?}");
    assert_eq!(
        announced[0].params[0]["headBlockHash"],
        serde_json::json!(two)
    );
    assert_eq!(
        announced[0].params[0]["finalizedBlockHash"],
        serde_json::json!(one)
    );
    assert_eq!(f.engine.forkchoice().await.unwrap(), before, "nothing lost");
    let three = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    assert_eq!(f.mock.with_chain(|c| c.head()), three);
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn an_engine_actor_restart_loses_only_its_caches(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let head = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let before = f.engine.forkchoice().await.unwrap();
    f.mock.clear_requests();
    f.system.crash_child(ChildKind::Engine);
    wait_for("the EngineActor restarts", WAIT, || async {
        f.system.restarts().await.get(&ChildKind::Engine).copied()
    })
    .await
    .unwrap();
    assert_eq!(f.engine.forkchoice().await.unwrap(), before);
    assert!(
        f.mock.requests_for("engine_forkchoiceUpdated").is_empty(),
        "the forkchoice belongs to the writer: nothing to re-announce"
    );
    // The block cache starts empty: the read goes to the EL and is right.
    let block = f.engine.get_block(head, true).await.unwrap().unwrap();
    assert_eq!(block.header.hash, head);
    assert_eq!(f.mock.requests_for("eth_getBlockByHash").len(), 1);
    f.system.shutdown().await;
}

#[tokio::test]
async fn repeated_crashes_escalate_with_a_reason() {
    let mock_config = MockConfig::default().with_profile(ClientProfile::reth());
    let f = MockEngine::start_with(mock_config, |c, _| c.supervision.max_restarts = 2)
        .await
        .unwrap();
    for n in 1..=3u32 {
        f.system.crash_child(ChildKind::Engine);
        if n < 3 {
            wait_for("condition", WAIT, || async {
                f.system
                    .restarts()
                    .await
                    .get(&ChildKind::Engine)
                    .copied()
                    .filter(|r| *r >= n)
            })
            .await
            .unwrap();
            wait_for("condition", WAIT, || async {
                f.engine.status().await.ok().filter(|s| s.initialized)
            })
            .await
            .unwrap();
        }
    }
    let reason = wait_for("condition", WAIT, || async { f.system.escalation() })
        .await
        .unwrap();
    assert!(
        reason.contains("EngineActor stopped 3 times") && reason.contains("limit 2"),
        "{reason}"
    );
    tokio::time::timeout(Duration::from_secs(5), f.system.wait_stopped())
        .await
        .expect("supervisor stops");
}

#[tokio::test]
async fn failover_to_the_secondary_when_the_primary_goes_down() {
    let dir = tempfile::tempdir().unwrap();
    let primary =
        MockExecutionLayer::start(MockConfig::default().with_profile(ClientProfile::reth()))
            .await
            .unwrap();
    let secondary =
        MockExecutionLayer::start(MockConfig::default().with_profile(ClientProfile::reth()))
            .await
            .unwrap();
    assert_eq!(
        primary.with_chain(|c| c.head()),
        secondary.with_chain(|c| c.head()),
        "same genesis"
    );
    let config = test_engine_config(dir.path());
    let options = vec![
        mock_client_options(&primary, &config),
        mock_client_options(&secondary, &config),
    ];
    let system = EngineSystem::start_with_options(config, options)
        .await
        .unwrap();
    let engine = system.handle();
    // Writes reach every healthy session; the build goes to the primary only.
    let one = engine_slot(&engine, vec![peg_in(0xd1, 3)])
        .await
        .unwrap()
        .hash;
    assert_eq!(primary.with_chain(|c| c.head()), one);
    assert_eq!(secondary.with_chain(|c| c.head()), one);
    assert!(secondary.requests_for("engine_getPayload").is_empty());

    primary.stop().await;
    let two = wait_for("condition", WAIT, || async {
        let ts = engine.forkchoice().await.ok()?.head_timestamp + 2;
        let built = engine
            .build_payload(BuildPayloadRequest::new(ts))
            .await
            .ok()?;
        engine.commit_payload(built.execution_data).await.ok()
    })
    .await
    .unwrap();
    assert_eq!(secondary.with_chain(|c| c.head()), two);
    let status = engine.status().await.unwrap();
    assert_eq!(
        status.sessions[0].circuit,
        CircuitState::Open,
        "{:?}",
        status.sessions[0]
    );
    assert!(status.sessions[1].is_healthy());
    system.shutdown().await;
}

#[tokio::test]
async fn start_fails_with_a_clear_reason_when_the_el_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_engine_config(dir.path());
    config.health.startup_timeout_ms = 1_000;
    let options = ClientOptions::new(
        "http://127.0.0.1:9",
        alloy_rpc_types_engine::JwtSecret::random(),
    );
    let err = EngineSystem::start_with_options(config, vec![options])
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("did not synchronise") && text.contains("127.0.0.1:9"),
        "{text}"
    );
}

#[rstest]
#[tokio::test]
async fn a_bridge_peg_out_in_a_committed_block_is_published_once(
    #[future] mock_engine: MockEngine,
) {
    let f = mock_engine.await;
    let mut events = f.engine.subscribe();
    let bitcoin_address =
        alloy_primitives::Bytes::from_static(b"tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx");
    let value = U256::from(10u64).pow(U256::from(16));
    let (raw, peg_out_tx) =
        engine_testkit::signed_peg_out(DEV_PRIVATE_KEY, 263_634, 0, &bitcoin_address, value)
            .unwrap();
    f.engine.send_raw_transaction(raw).await.unwrap();
    let (raw, _) = signed_transfer(
        DEV_PRIVATE_KEY,
        263_634,
        1,
        Address::repeat_byte(3),
        U256::from(5u64),
    )
    .unwrap();
    f.engine.send_raw_transaction(raw).await.unwrap();
    let head = engine_slot(&f.engine, vec![]).await.unwrap().hash;
    let event = tokio::time::timeout(Duration::from_secs(4), events.recv())
        .await
        .expect("an event")
        .unwrap();
    let engine_actor::EngineEvent::PegOutRequested(p) = event else {
        panic!("not a peg-out: {event:?}")
    };
    assert_eq!(
        (p.tx_hash, p.block_hash, p.block_number),
        (peg_out_tx, head, 1)
    );
    assert_eq!(p.evm_address, DEV_ACCOUNT);
    assert_eq!(p.bitcoin_address, bitcoin_address);
    assert_eq!(p.value_wei, value);
    assert!(
        tokio::time::timeout(Duration::from_millis(300), events.recv())
            .await
            .is_err(),
        "exactly one event"
    );
    f.system.shutdown().await;
}

fn methods(mock: &MockExecutionLayer) -> Vec<String> {
    mock.requests()
        .into_iter()
        .map(|r| r.method)
        .filter(|m| m.starts_with("engine_forkchoiceUpdated") || m.starts_with("engine_getPayload"))
        .collect()
}

#[rstest]
#[tokio::test]
async fn a_prepared_build_is_one_get_payload_and_no_forkchoice_updated(
    #[future] mock_engine: MockEngine,
) {
    let f = mock_engine.await;
    engine_slot(&f.engine, vec![]).await.unwrap();
    let ts = f.engine.forkchoice().await.unwrap().head_timestamp + 2;
    let request = BuildPayloadRequest::new(ts).with_peg_ins(vec![peg_in(0xe1, 50)]);
    let id = f.engine.prepare_payload(request.clone()).await.unwrap();
    f.mock.clear_requests();
    let built = f.engine.build_payload(request).await.unwrap();
    assert_eq!(built.payload_id, id);
    assert_eq!(methods(&f.mock), vec!["engine_getPayloadV2"]);
    let hash = f.engine.commit_payload(built.execution_data).await.unwrap();
    assert_eq!(f.mock.with_chain(|c| c.head()), hash);
    assert_eq!(
        f.mock.with_chain(|c| c.balance(Address::repeat_byte(0xe1))),
        U256::from(500u64) * U256::from(1_000_000_000u64)
    );
    let stats = f.engine.status().await.unwrap().preparation;
    assert_eq!(
        (stats.made, stats.used, stats.wasted, stats.unknown_to_el),
        (1, 1, 0, 0)
    );
    assert_eq!(stats.prepared_builds.count, 1);
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn changed_peg_ins_fall_back_and_drop_the_preparation(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let ts = f.engine.forkchoice().await.unwrap().head_timestamp + 2;
    f.engine
        .prepare_payload(BuildPayloadRequest::new(ts))
        .await
        .unwrap();
    f.mock.clear_requests();
    // A peg-in arrived after the preparation: the attributes differ.
    let built = f
        .engine
        .build_payload(BuildPayloadRequest::new(ts).with_peg_ins(vec![peg_in(0xe2, 1)]))
        .await
        .unwrap();
    assert_eq!(
        methods(&f.mock),
        vec!["engine_forkchoiceUpdatedV2", "engine_getPayloadV2"]
    );
    assert_eq!(
        built.execution_data.payload.withdrawals().map(Vec::len),
        Some(1)
    );
    f.engine.commit_payload(built.execution_data).await.unwrap();
    let stats = f.engine.status().await.unwrap().preparation;
    assert_eq!((stats.made, stats.used, stats.wasted), (1, 0, 1));
    assert_eq!(stats.unprepared_builds.count, 1);
    f.system.shutdown().await;
}

#[rstest]
#[tokio::test]
async fn a_preparation_the_el_forgot_falls_back(#[future] mock_engine: MockEngine) {
    let f = mock_engine.await;
    let ts = f.engine.forkchoice().await.unwrap().head_timestamp + 2;
    f.engine
        .prepare_payload(BuildPayloadRequest::new(ts))
        .await
        .unwrap();
    f.mock.inject(
        FaultRule::new(Fault::RpcError {
            code: -38001,
            message: "Unknown payload".into(),
        })
        .on("engine_getPayload")
        .times(1),
    );
    f.mock.clear_requests();
    let built = f
        .engine
        .build_payload(BuildPayloadRequest::new(ts))
        .await
        .unwrap();
    assert_eq!(
        methods(&f.mock),
        vec![
            "engine_getPayloadV2",
            "engine_forkchoiceUpdatedV2",
            "engine_getPayloadV2"
        ]
    );
    f.engine.commit_payload(built.execution_data).await.unwrap();
    let stats = f.engine.status().await.unwrap().preparation;
    assert_eq!((stats.used, stats.unknown_to_el), (0, 1));
    f.system.shutdown().await;
}
