//! engine-clients against the MockExecutionLayer: wire format, versions, errors, retries,
//! timeouts, client detection and quirks.
//!
//! (Longer than the ~600-line guideline on purpose: one suite is one test binary, and on a
//! 2-core machine every extra binary costs a link; its tests share the helpers at the top.)

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_eips::{BlockId, BlockNumberOrTag, eip4895::Withdrawal};
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ForkchoiceState, JwtSecret, PayloadAttributes, PayloadStatusEnum,
};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient, SyncState};
use engine_testkit::{
    ClientProfile, Fault, FaultRule, MockConfig, MockExecutionLayer, client_slot,
    mock_client_options, signed_transfer,
};
use engine_types::{
    AddBalance, ClientKind, ConsensusAmount, EngineConfig, EngineError, ForkSchedule,
    IdentitySource, RetryConfig, TimeoutConfig, codes, require_valid,
};
use rstest::rstest;
use serde_json::{Value, json};

const DEV_KEY: &str = "bcdf20249abf0ed6d944c0288fad489e33f66b3960d9e6229c1cd214ed3bbe31";
const PEG_IN_A: Address = Address::repeat_byte(0xa1);
const PEG_IN_B: Address = Address::repeat_byte(0xb2);

/// The harness's options, with three fast retries (the retry tests count them).
fn options(mock: &MockExecutionLayer) -> ClientOptions {
    mock_client_options(mock, &EngineConfig::default()).with_retry(RetryConfig {
        max_retries: 3,
        initial_backoff_ms: 1,
        max_backoff_ms: 5,
    })
}

async fn start(config: MockConfig) -> (MockExecutionLayer, HttpExecutionClient) {
    let mock = MockExecutionLayer::start(config)
        .await
        .expect("mock starts");
    let client = HttpExecutionClient::connect(options(&mock))
        .await
        .expect("client connects");
    (mock, client)
}

fn fork_schedule(name: &str) -> ForkSchedule {
    match name {
        "shanghai" => ForkSchedule::shanghai(),
        "cancun" => ForkSchedule::cancun(),
        "prague" => ForkSchedule::prague(),
        other => panic!("unknown fork {other}"),
    }
}

fn attributes(
    forks: &ForkSchedule,
    timestamp: u64,
    withdrawals: Vec<Withdrawal>,
) -> PayloadAttributes {
    let cancun = forks.fork_at(timestamp).has_blob_fields();
    PayloadAttributes {
        timestamp,
        prev_randao: B256::ZERO,
        suggested_fee_recipient: engine_types::DEFAULT_FEE_RECIPIENT,
        withdrawals: Some(withdrawals),
        parent_beacon_block_root: cancun.then_some(B256::ZERO),
        ..Default::default()
    }
}

fn forkchoice(head: B256) -> ForkchoiceState {
    ForkchoiceState {
        head_block_hash: head,
        safe_block_hash: B256::ZERO,
        finalized_block_hash: B256::ZERO,
    }
}

#[rstest]
#[case::shanghai("shanghai")]
#[case::cancun("cancun")]
#[case::prague("prague")]
#[tokio::test]
async fn slots_commit_and_credit_peg_ins(#[case] fork: &str) {
    let (mock, client) = start(MockConfig::default().with_fork_schedule(fork_schedule(fork))).await;
    let mut head = mock.with_chain(|c| c.head());
    let peg_ins = [
        AddBalance(PEG_IN_A, ConsensusAmount::from_satoshi(100).unwrap()),
        AddBalance(PEG_IN_B, ConsensusAmount(7)),
    ];
    for n in 1..=3u64 {
        let data = client_slot(&client, head, n * 2, &peg_ins, (n - 1) * 2)
            .await
            .expect("slot commits");
        head = data.payload.block_hash();
    }
    assert_eq!(mock.with_chain(|c| c.head()), head);
    let balance = client.balance(PEG_IN_A, BlockId::latest()).await.unwrap();
    assert_eq!(
        balance,
        U256::from(3u64 * 1000) * U256::from(1_000_000_000u64)
    );
    let block = client
        .block(BlockId::Number(BlockNumberOrTag::Latest), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.header.number, 3);
    assert_eq!(block.header.hash, head);
    let block = client
        .block(BlockId::Hash(head.into()), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.withdrawals.map(|w| w.len()), Some(2));
}

/// The exact JSON-RPC bodies per fork version (nothing volatile is in them: the JWT travels in
/// a header, and the mock's genesis is deterministic).
#[rstest]
#[case::v2_shanghai("shanghai")]
#[case::v3_cancun("cancun")]
#[case::v4_prague("prague")]
#[tokio::test]
async fn wire_format_snapshot(#[case] fork: &str) {
    let (mock, client) = start(MockConfig::default().with_fork_schedule(fork_schedule(fork))).await;
    mock.clear_requests();
    let head = mock.with_chain(|c| c.head());
    let peg_ins = [AddBalance(PEG_IN_A, ConsensusAmount(1_000))];
    client_slot(&client, head, 2, &peg_ins, 0)
        .await
        .expect("slot commits");
    let wire: Vec<Value> = mock
        .requests()
        .into_iter()
        .map(|r| json!({ "method": r.method, "params": r.params }))
        .collect();
    insta::assert_json_snapshot!(format!("wire_{fork}"), wire);
}

#[rstest]
#[case::geth(
    ClientProfile::geth(),
    ClientKind::Geth,
    IdentitySource::ClientVersionV1
)]
#[case::reth_refuses_our_code(
    ClientProfile::reth(),
    ClientKind::Reth,
    IdentitySource::Web3ClientVersion
)]
#[case::ethereumjs_has_no_v1(
    ClientProfile::ethereumjs(),
    ClientKind::EthereumJs,
    IdentitySource::Web3ClientVersion
)]
#[case::nethermind(
    ClientProfile::nethermind(),
    ClientKind::Nethermind,
    IdentitySource::ClientVersionV1
)]
#[tokio::test]
async fn connect_detects_the_client(
    #[case] profile: ClientProfile,
    #[case] kind: ClientKind,
    #[case] source: IdentitySource,
) {
    let (_mock, client) = start(MockConfig::default().with_profile(profile)).await;
    assert_eq!(client.identity().kind, kind);
    assert_eq!(client.identity().source, source);
    assert_eq!(client.quirks(), engine_clients::Quirks::for_kind(kind));
    assert!(
        client
            .capabilities()
            .supports(engine_types::EngineMethod::NewPayloadV4)
    );
}

#[tokio::test]
async fn wrong_secret_is_an_auth_error_and_not_retried() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let bad = ClientOptions::new(mock.url(), JwtSecret::random());
    let err = HttpExecutionClient::connect(bad).await.unwrap_err();
    assert!(
        matches!(err, EngineError::Auth { status: 401, .. }),
        "{err:?}"
    );
    assert!(!err.is_retryable());
    assert_eq!(
        mock.requests_for("engine_exchangeCapabilities").len(),
        1,
        "auth failures are not retried"
    );
}

#[rstest]
#[case::drift_within_window(50, true)]
#[case::drift_beyond_window(120, false)]
#[case::drift_behind_window(-120, false)]
#[tokio::test]
async fn jwt_iat_must_be_within_60_seconds(#[case] skew: i64, #[case] accepted: bool) {
    let mock = MockExecutionLayer::start(MockConfig::default().with_clock_skew(skew))
        .await
        .unwrap();
    let result = HttpExecutionClient::connect(options(&mock)).await;
    match (result, accepted) {
        (Ok(_), true) => {}
        (Err(EngineError::Auth { message, .. }), false) => {
            assert!(message.contains("stale"), "{message}")
        }
        (other, _) => panic!("skew {skew}: unexpected {other:?}"),
    }
}

#[tokio::test]
async fn wrong_version_for_the_fork_is_unsupported_fork() {
    // The EL runs Cancun from genesis; the engine is misconfigured for Shanghai and sends V2.
    let mock =
        MockExecutionLayer::start(MockConfig::default().with_fork_schedule(ForkSchedule::cancun()))
            .await
            .unwrap();
    let client =
        HttpExecutionClient::connect(options(&mock).with_fork_schedule(ForkSchedule::shanghai()))
            .await
            .unwrap();
    let head = mock.with_chain(|c| c.head());
    let attrs = attributes(&ForkSchedule::shanghai(), 2, vec![]);
    let err = client
        .forkchoice_updated(forkchoice(head), Some(attrs))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::UnsupportedFork { .. }),
        "{err:?}"
    );
    assert_eq!(err.rpc_code(), Some(codes::UNSUPPORTED_FORK));
    assert!(err.to_string().contains("fork schedule"), "{err}");
}

#[rstest]
#[case(codes::UNKNOWN_PAYLOAD, "unknown_payload")]
#[case(codes::INVALID_FORKCHOICE_STATE, "invalid_forkchoice_state")]
#[case(codes::INVALID_PAYLOAD_ATTRIBUTES, "invalid_payload_attributes")]
#[case(codes::TOO_LARGE_REQUEST, "too_large_request")]
#[case(codes::UNSUPPORTED_FORK, "unsupported_fork")]
#[case(codes::TOO_DEEP_REORG, "too_deep_reorg")]
#[case(codes::METHOD_NOT_FOUND, "method_not_supported")]
#[case(codes::INVALID_PARAMS, "rpc")]
#[case(codes::INTERNAL_ERROR, "rpc")]
#[case(codes::SERVER_ERROR, "rpc")]
#[case(codes::PARSE_ERROR, "rpc")]
#[case(codes::INVALID_REQUEST, "rpc")]
#[tokio::test]
async fn every_error_code_from_the_wire_maps_to_its_variant(#[case] code: i64, #[case] kind: &str) {
    let (mock, client) = start(MockConfig::default()).await;
    mock.inject(
        FaultRule::new(Fault::RpcError {
            code,
            message: "injected".into(),
        })
        .on("engine_forkchoiceUpdated")
        .times(1),
    );
    let head = mock.with_chain(|c| c.head());
    let err = client
        .forkchoice_updated(forkchoice(head), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kind, "{err:?}");
}

#[tokio::test]
async fn methods_missing_from_capabilities_are_refused_before_any_io() {
    let config = MockConfig::default()
        .with_fork_schedule(ForkSchedule::cancun())
        .with_capabilities(&["engine_forkchoiceUpdatedV3", "engine_getPayloadV3"]);
    let (mock, client) = start(config).await;
    let head = mock.with_chain(|c| c.head());
    let attrs = attributes(&ForkSchedule::cancun(), 2, vec![]);
    let id = client
        .forkchoice_updated(forkchoice(head), Some(attrs))
        .await
        .unwrap()
        .payload_id
        .unwrap();
    let built = client.get_payload(id, 2, Some(B256::ZERO)).await.unwrap();
    let err = client.new_payload(&built.execution_data).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::MethodNotSupported { method } if method == "engine_newPayloadV3"),
        "{err:?}"
    );
    assert!(mock.requests_for("engine_newPayload").is_empty());
}

#[tokio::test]
async fn slow_answers_time_out() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let timeouts = TimeoutConfig {
        eth_ms: 100,
        ..TimeoutConfig::default()
    };
    let client = HttpExecutionClient::connect(options(&mock).with_timeouts(timeouts).with_retry(
        RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        },
    ))
    .await
    .unwrap();
    mock.inject(FaultRule::new(Fault::Latency(Duration::from_millis(600))).on("eth_chainId"));
    let err = client.chain_id().await.unwrap_err();
    assert!(
        matches!(err, EngineError::Timeout { after, .. } if after == Duration::from_millis(100)),
        "{err:?}"
    );
    assert!(err.is_retryable());
}

#[tokio::test]
async fn idempotent_reads_are_retried_and_writes_are_not() {
    let (mock, client) = start(MockConfig::default()).await;
    mock.inject(
        FaultRule::new(Fault::Http(500))
            .on("eth_getBlockByNumber")
            .times(2),
    );
    let block = client
        .block(BlockId::latest(), false)
        .await
        .expect("third attempt succeeds");
    assert!(block.is_some());
    assert_eq!(mock.requests_for("eth_getBlockByNumber").len(), 3);

    let head = mock.with_chain(|c| c.head());
    mock.inject(FaultRule::new(Fault::Http(503)).on("engine_forkchoiceUpdated"));
    let err = client
        .forkchoice_updated(forkchoice(head), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, EngineError::Transport { message, .. } if message.contains("503")),
        "{err:?}"
    );
    assert_eq!(
        mock.requests_for("engine_forkchoiceUpdated").len(),
        1,
        "writes are never retried"
    );
}

#[rstest]
#[case::malformed_json(Fault::MalformedJson, "decode")]
#[case::truncated_body(Fault::TruncatedBody, "decode")]
#[case::wrong_json_rpc_id(Fault::WrongId, "decode")]
#[case::dropped_connection(Fault::DropConnection, "transport")]
#[case::http_500(Fault::Http(500), "transport")]
#[tokio::test]
async fn broken_answers_are_typed_errors(#[case] fault: Fault, #[case] kind: &str) {
    let (mock, client) = start(MockConfig::default()).await;
    mock.inject(FaultRule::new(fault).on("engine_forkchoiceUpdated"));
    let head = mock.with_chain(|c| c.head());
    let err = client
        .forkchoice_updated(forkchoice(head), None)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), kind, "{err:?}");
}

#[tokio::test]
async fn tampered_payload_is_invalid_and_not_applied() {
    let (mock, client) = start(MockConfig::default()).await;
    let head = mock.with_chain(|c| c.head());
    let attrs = attributes(&ForkSchedule::shanghai(), 2, vec![]);
    let id = client
        .forkchoice_updated(forkchoice(head), Some(attrs))
        .await
        .unwrap()
        .payload_id
        .unwrap();
    let mut built = client.get_payload(id, 2, None).await.unwrap();
    if let ExecutionPayload::V2(p) = &mut built.execution_data.payload {
        p.payload_inner.gas_limit += 1;
    }
    let status = client.new_payload(&built.execution_data).await.unwrap();
    let err = require_valid(&status, built.block_hash()).unwrap_err();
    match err {
        EngineError::InvalidPayload {
            validation_error, ..
        } => {
            assert!(
                validation_error
                    .unwrap_or_default()
                    .contains("blockhash mismatch")
            );
        }
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(mock.with_chain(|c| c.known_blocks()), 1);
}

#[tokio::test]
async fn unknown_parent_is_syncing_and_unknown_head_gets_no_payload_id() {
    let (mock, client) = start(MockConfig::default()).await;
    let head = mock.with_chain(|c| c.head());
    let attrs = attributes(&ForkSchedule::shanghai(), 2, vec![]);
    let id = client
        .forkchoice_updated(forkchoice(head), Some(attrs.clone()))
        .await
        .unwrap()
        .payload_id
        .unwrap();
    let built = client.get_payload(id, 2, None).await.unwrap();
    // A child of a block the EL has never seen.
    let mut orphan = built.execution_data.clone();
    if let ExecutionPayload::V2(p) = &mut orphan.payload {
        p.payload_inner.parent_hash = B256::repeat_byte(0x77);
        p.payload_inner.block_number = 5;
        let block = orphan
            .payload
            .clone()
            .try_into_block_with_sidecar::<alloy_consensus::TxEnvelope>(&orphan.sidecar)
            .unwrap();
        if let ExecutionPayload::V2(p) = &mut orphan.payload {
            p.payload_inner.block_hash = block.header.hash_slow();
        }
    }
    let status = client.new_payload(&orphan).await.unwrap();
    assert_eq!(status.status, PayloadStatusEnum::Syncing);

    let unknown = client
        .forkchoice_updated(forkchoice(B256::repeat_byte(0x55)), Some(attrs))
        .await
        .unwrap();
    assert_eq!(unknown.payload_status.status, PayloadStatusEnum::Syncing);
    assert!(unknown.payload_id.is_none());
}

#[tokio::test]
async fn inconsistent_forkchoice_and_stale_attributes_are_refused() {
    let (mock, client) = start(MockConfig::default()).await;
    let genesis = mock.with_chain(|c| c.head());
    let one = client_slot(&client, genesis, 2, &[], 0)
        .await
        .unwrap()
        .payload
        .block_hash();
    // finalized not on head's chain
    let bad = ForkchoiceState {
        head_block_hash: genesis,
        safe_block_hash: B256::ZERO,
        finalized_block_hash: one,
    };
    let err = client.forkchoice_updated(bad, None).await.unwrap_err();
    assert!(
        matches!(err, EngineError::InvalidForkchoiceState { .. }),
        "{err:?}"
    );
    // attributes not after head: -38003, but the forkchoice part is applied
    let state = ForkchoiceState {
        head_block_hash: one,
        safe_block_hash: one,
        finalized_block_hash: genesis,
    };
    let err = client
        .forkchoice_updated(
            state,
            Some(attributes(&ForkSchedule::shanghai(), 2, vec![])),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, EngineError::InvalidPayloadAttributes { .. }),
        "{err:?}"
    );
    assert_eq!(
        mock.with_chain(|c| (c.safe(), c.finalized())),
        (one, genesis)
    );
}

#[tokio::test]
async fn ethereumjs_quirks_receipts_by_number_and_syncing_object() {
    let config = MockConfig::default()
        .with_profile(ClientProfile::ethereumjs())
        .with_prefunded(
            engine_testkit::DEV_ACCOUNT,
            U256::from(10u64).pow(U256::from(21)),
        );
    let (mock, client) = start(config).await;
    assert!(client.quirks().block_receipts_need_number);
    assert_eq!(client.sync_state().await.unwrap(), SyncState::Synced);
    let (raw, tx_hash) = signed_transfer(DEV_KEY, 263_634, 0, PEG_IN_A, U256::from(1u64)).unwrap();
    assert_eq!(client.send_raw_transaction(raw).await.unwrap(), tx_hash);
    let head = mock.with_chain(|c| c.head());
    let block = client_slot(&client, head, 2, &[], 0)
        .await
        .unwrap()
        .payload
        .block_hash();
    let receipts = client
        .block_receipts(BlockId::Hash(block.into()))
        .await
        .unwrap()
        .expect("receipts by hash");
    assert_eq!(receipts.len(), 1);
    assert_eq!(receipts[0].transaction_hash, tx_hash);
    let receipt = client
        .transaction_receipt(tx_hash)
        .await
        .unwrap()
        .expect("receipt");
    assert_eq!(receipt.block_hash, Some(block));
    let full = client
        .block(BlockId::Hash(block.into()), true)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(full.transactions.len(), 1);
}

#[rstest]
#[case::geth_returns_the_early_block(ClientProfile::geth(), 0)]
#[case::reth_waits_for_the_build(ClientProfile::reth(), 1)]
#[tokio::test]
async fn immediate_get_payload_per_client(#[case] profile: ClientProfile, #[case] txs: usize) {
    let config = MockConfig::default().with_profile(profile).with_prefunded(
        engine_testkit::DEV_ACCOUNT,
        U256::from(10u64).pow(U256::from(21)),
    );
    let (mock, client) = start(config).await;
    let (raw, _) = signed_transfer(DEV_KEY, 263_634, 0, PEG_IN_A, U256::from(1u64)).unwrap();
    client.send_raw_transaction(raw).await.unwrap();
    let head = mock.with_chain(|c| c.head());
    let attrs = attributes(&ForkSchedule::shanghai(), 2, vec![]);
    let id = client
        .forkchoice_updated(forkchoice(head), Some(attrs))
        .await
        .unwrap()
        .payload_id
        .unwrap();
    let built = client.get_payload(id, 2, None).await.unwrap();
    assert_eq!(built.execution_data.payload.transactions().len(), txs);
}

/// A client whose first newPayload is slow (the mock impersonating Reth) gets one block built
/// and sent at connect that no forkchoiceUpdated names: the head stays where it was.
#[rstest]
#[case::reth_is_warmed_up(ClientProfile::reth(), true, 1)]
#[case::reth_without_warm_up(ClientProfile::reth(), false, 0)]
#[case::geth_needs_none(ClientProfile::geth(), true, 0)]
#[tokio::test]
async fn warm_up_at_connect_per_client(
    #[case] profile: ClientProfile,
    #[case] warm_up: bool,
    #[case] warm_up_blocks: usize,
) {
    let mock = MockExecutionLayer::start(MockConfig::default().with_profile(profile))
        .await
        .unwrap();
    let genesis = mock.with_chain(|c| c.head());
    let client = HttpExecutionClient::connect(options(&mock).with_warm_up(warm_up))
        .await
        .unwrap();
    assert_eq!(mock.requests_for("engine_newPayload").len(), warm_up_blocks);
    assert_eq!(mock.requests_for("engine_getPayload").len(), warm_up_blocks);
    assert_eq!(
        mock.with_chain(|c| c.head()),
        genesis,
        "the head did not move"
    );
    let latest = client
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.header.hash, genesis);
    // The next real slot builds on the unchanged head.
    let block = client_slot(&client, genesis, 2, &[], 0).await.unwrap();
    assert_eq!(block.payload.block_number(), 1);
}

/// Until the client has processed a payload since it connected, newPayload gets its full
/// deadline (a client's first block can take seconds); after that, the slot's.
#[tokio::test]
async fn the_first_new_payload_gets_its_full_deadline_later_ones_the_slots() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let client =
        HttpExecutionClient::connect(options(&mock).with_slot_deadline(Duration::from_millis(150)))
            .await
            .unwrap();
    let head = mock.with_chain(|c| c.head());
    let build = |parent: B256, timestamp: u64| {
        let client = &client;
        async move {
            let id = client
                .forkchoice_updated(
                    forkchoice(parent),
                    Some(attributes(&ForkSchedule::shanghai(), timestamp, vec![])),
                )
                .await
                .unwrap()
                .payload_id
                .unwrap();
            client.get_payload(id, timestamp, None).await.unwrap()
        }
    };
    let slow = || {
        FaultRule::new(Fault::Latency(Duration::from_millis(400)))
            .on("engine_newPayload")
            .times(1)
    };
    let first = build(head, 2).await;
    mock.inject(slow());
    let status = client.new_payload(&first.execution_data).await.unwrap();
    assert!(status.is_valid(), "{status:?}");
    let second = build(first.block_hash(), 4).await;
    mock.inject(slow());
    let err = client
        .new_payload(&second.execution_data)
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::Timeout { .. }), "{err:?}");
}

/// Nethermind answers SYNCING while a slow block is still being processed: it is asked again
/// (and the block is VALID); any other client's SYNCING is reported at once.
#[rstest]
#[case::nethermind_is_asked_again(ClientProfile::nethermind(), PayloadStatusEnum::Valid, 2)]
#[case::reth_syncing_is_reported(ClientProfile::reth(), PayloadStatusEnum::Syncing, 1)]
#[tokio::test]
async fn new_payload_syncing_per_client(
    #[case] profile: ClientProfile,
    #[case] expected: PayloadStatusEnum,
    #[case] new_payload_calls: usize,
) {
    let (mock, client) = start(MockConfig::default().with_profile(profile)).await;
    let head = mock.with_chain(|c| c.head());
    let attrs = attributes(&ForkSchedule::shanghai(), 2, vec![]);
    let id = client
        .forkchoice_updated(forkchoice(head), Some(attrs))
        .await
        .unwrap()
        .payload_id
        .unwrap();
    let built = client.get_payload(id, 2, None).await.unwrap();
    mock.inject(
        FaultRule::new(Fault::status("SYNCING"))
            .on("engine_newPayload")
            .times(1),
    );
    let status = client.new_payload(&built.execution_data).await.unwrap();
    assert_eq!(status.status, expected);
    assert_eq!(
        mock.requests_for("engine_newPayload").len(),
        new_payload_calls
    );
}

#[tokio::test]
async fn payload_bodies_by_hash_and_range() {
    let (mock, client) = start(MockConfig::default()).await;
    let mut head = mock.with_chain(|c| c.head());
    for n in 1..=3u64 {
        head = client_slot(
            &client,
            head,
            n * 2,
            &[AddBalance(PEG_IN_A, ConsensusAmount(n))],
            n,
        )
        .await
        .unwrap()
        .payload
        .block_hash();
    }
    let bodies = client
        .payload_bodies_by_hash(vec![head, B256::repeat_byte(9)])
        .await
        .unwrap();
    assert_eq!(bodies.len(), 2);
    assert_eq!(
        bodies[0]
            .as_ref()
            .and_then(|b| b.withdrawals.as_ref())
            .map(|w| w[0].amount),
        Some(3)
    );
    assert!(bodies[1].is_none());
    let range = client.payload_bodies_by_range(1, 10).await.unwrap();
    assert_eq!(range.len(), 3);
}

#[tokio::test]
async fn restarted_el_is_reachable_again_with_its_chain() {
    let (mock, client) = start(MockConfig::default()).await;
    let head = client_slot(&client, mock.with_chain(|c| c.head()), 2, &[], 0)
        .await
        .unwrap()
        .payload
        .block_hash();
    mock.stop().await;
    let err = client.chain_id().await.unwrap_err();
    assert_eq!(err.kind(), "transport", "{err:?}");
    mock.restart().await.unwrap();
    let block = client
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.header.hash, head);
}

#[tokio::test]
async fn a_secret_rotated_on_disk_is_picked_up_without_a_restart() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = mock.write_jwt_secret(dir.path()).unwrap();
    let options = ClientOptions::with_secret_file(mock.url(), &path).unwrap();
    let client = HttpExecutionClient::connect(options).await.unwrap();
    assert_eq!(client.chain_id().await.unwrap(), 263_634);

    // The operator rotates the secret: the EL and the file change together.
    let rotated = JwtSecret::random();
    mock.set_jwt_secret(rotated);
    std::fs::write(&path, alloy_primitives::hex::encode(rotated.as_bytes())).unwrap();
    mock.clear_requests();
    assert_eq!(
        client.chain_id().await.unwrap(),
        263_634,
        "re-read the file after the 401 and retried"
    );
    let auth: Vec<bool> = mock
        .requests_for("eth_chainId")
        .iter()
        .map(|r| r.authorized)
        .collect();
    assert_eq!(auth, vec![false, true]);

    // The EL changed but the file did not: a clear Auth error, not a retry loop.
    mock.set_jwt_secret(JwtSecret::random());
    mock.clear_requests();
    let err = client.chain_id().await.unwrap_err();
    assert!(matches!(err, EngineError::Auth { .. }), "{err:?}");
    assert_eq!(mock.requests_for("eth_chainId").len(), 1);
}

/// A client on another chain (chain id or genesis hash) is refused at connect with an error
/// that names the field and both values; the right chain connects.
#[tokio::test]
async fn a_client_on_another_chain_is_refused_at_connect() {
    let (mock, client) = start(MockConfig::default()).await;
    let chain_id = client.chain_id().await.unwrap();
    let genesis = client
        .block(BlockId::number(0), false)
        .await
        .unwrap()
        .unwrap()
        .header
        .hash;
    let right = engine_types::ChainConfig {
        chain_id: Some(chain_id),
        genesis_hash: Some(genesis),
        ..Default::default()
    };
    HttpExecutionClient::connect(options(&mock).with_chain(right))
        .await
        .expect("the configured chain connects");

    let wrong_id = engine_types::ChainConfig {
        chain_id: Some(chain_id + 1),
        ..right
    };
    let wrong_genesis = engine_types::ChainConfig {
        genesis_hash: Some(B256::repeat_byte(0x42)),
        ..right
    };
    for (chain, field) in [(wrong_id, "chain id"), (wrong_genesis, "genesis hash")] {
        let err = HttpExecutionClient::connect(options(&mock).with_chain(chain))
            .await
            .expect_err("another chain must be refused");
        assert!(
            matches!(&err, EngineError::WrongChain { field: f, .. } if f == field),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.contains(&mock.url()) && text.contains("fix `chain`"),
            "{text}"
        );
        assert!(
            !err.is_retryable(),
            "a wrong chain does not heal by retrying"
        );
    }
}

/// `https://` endpoints: a slot and an `eth_` read through a TLS server whose certificate
/// authority comes from the configured CA file; without that file the certificate is refused at
/// connect, and a CA file that is not PEM is a configuration error.
#[tokio::test]
async fn https_endpoints_work_with_the_configured_certificate_authority() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let front = engine_testkit::TlsFront::start(mock.addr()).await.unwrap();
    let mut over_tls = options(&mock).with_tls_ca(front.ca_path());
    over_tls.engine_url = front.url();
    let client = HttpExecutionClient::connect(over_tls.clone())
        .await
        .expect("connects over TLS");
    let head = mock.with_chain(|c| c.head());
    let peg_in = [AddBalance(PEG_IN_A, ConsensusAmount(5))];
    let data = client_slot(&client, head, 2, &peg_in, 0)
        .await
        .expect("slot over TLS");
    assert_eq!(mock.with_chain(|c| c.head()), data.payload.block_hash());
    assert_eq!(
        client.balance(PEG_IN_A, BlockId::latest()).await.unwrap(),
        U256::from(5_000_000_000u64)
    );

    let mut untrusted = over_tls.clone();
    untrusted.tls_ca_path = None;
    let err = HttpExecutionClient::connect(untrusted)
        .await
        .expect_err("a certificate nobody trusts must be refused");
    assert!(
        format!("{err:?}").to_lowercase().contains("certificate"),
        "{err:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("ca.pem");
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let err = HttpExecutionClient::connect(over_tls.with_tls_ca(&not_pem))
        .await
        .expect_err("a CA file without certificates is refused");
    assert!(err.to_string().contains("tls_ca_path"), "{err}");
}
