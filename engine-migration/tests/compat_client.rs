//! The Lighthouse v4/v5 compat client against the MockExecutionLayer: every mode, the
//! per-operation flags, comparison metrics and latency percentiles, and v4's refusals
//! (Cancun-era timestamps, blob gas).

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use engine_clients::{ClientOptions, HttpExecutionClient};
use engine_migration::{
    AbSplit, CompatClient, CompatMetrics, CompatMode, CompatOperation, DenebAttributes,
    DenebForkchoiceState, Side, deneb_request,
};
use engine_testkit::{ClientProfile, Fault, FaultRule, MockConfig, MockExecutionLayer};
use engine_types::{EngineError, ForkSchedule};

/// Cancun activates at this timestamp; slots are 2 s apart from genesis (0).
const CANCUN: u64 = 20;

async fn compat(mode: CompatMode) -> (MockExecutionLayer, CompatClient<HttpExecutionClient>) {
    let schedule = ForkSchedule {
        shanghai_time: 0,
        cancun_time: Some(CANCUN),
        prague_time: None,
    };
    let mock = MockExecutionLayer::start(
        MockConfig::default()
            .with_profile(ClientProfile::geth())
            .with_fork_schedule(schedule),
    )
    .await
    .unwrap();
    let client = HttpExecutionClient::connect(
        ClientOptions::new(mock.url(), mock.jwt_secret()).with_fork_schedule(schedule),
    )
    .await
    .unwrap();
    (
        mock,
        CompatClient::new(client, mode, CompatMetrics::new().unwrap()),
    )
}

/// One slot through the compat client: fcU(attributes) → getPayload → newPayload → fcU(head).
async fn slot(
    compat: &CompatClient<HttpExecutionClient>,
    head: B256,
    timestamp: u64,
) -> Result<B256, EngineError> {
    let state = ForkchoiceState {
        head_block_hash: head,
        safe_block_hash: B256::ZERO,
        finalized_block_hash: B256::ZERO,
    };
    let attributes = PayloadAttributes {
        timestamp,
        prev_randao: B256::ZERO,
        suggested_fee_recipient: Address::repeat_byte(0xfe),
        withdrawals: Some(vec![]),
        parent_beacon_block_root: Some(B256::ZERO),
        ..Default::default()
    };
    let started = compat
        .forkchoice_updated(
            DenebForkchoiceState(state),
            Some(DenebAttributes(attributes)),
        )
        .await?;
    let id = started
        .payload_id
        .ok_or_else(|| EngineError::MissingInResponse {
            method: "engine_forkchoiceUpdated".into(),
            missing: "payload id".into(),
        })?;
    let built = compat.get_payload(id, timestamp, Some(B256::ZERO)).await?;
    let status = compat.new_payload(deneb_request(&built)?).await?;
    assert!(status.is_valid(), "{status:?}");
    let hash = built.block_hash();
    compat
        .forkchoice_updated(
            DenebForkchoiceState(ForkchoiceState {
                head_block_hash: hash,
                ..state
            }),
            None,
        )
        .await?;
    Ok(hash)
}

fn calls(compat: &CompatClient<HttpExecutionClient>, op: CompatOperation) -> (u64, u64) {
    let report = compat.report();
    let op = report
        .operations
        .iter()
        .find(|o| o.operation == op)
        .unwrap();
    (op.v4.calls, op.v5.calls)
}

#[tokio::test]
async fn parallel_agrees_before_cancun_and_reports_percentiles_per_version() {
    let (mock, compat) = compat(CompatMode::Parallel).await;
    let mut head = mock.with_chain(|c| c.head());
    for n in 1..CANCUN / 2 {
        head = slot(&compat, head, 2 * n).await.unwrap();
    }
    assert_eq!(mock.with_chain(|c| c.head()), head);
    let report = compat.report();
    for op in &report.operations {
        assert_eq!(op.mismatches, 0, "{op:?}");
        assert!(op.matches >= 9, "{op:?}");
        assert!(op.v4.p50.is_some() && op.v5.p99.is_some(), "{op:?}");
        assert!(op.v4.p99 >= op.v4.p50, "{op:?}");
    }
    let text = compat.metrics().render();
    assert!(
        text.contains(
            "engine_compat_comparisons_total{operation=\"new_payload\",outcome=\"match\"} 9"
        ),
        "{text}"
    );
    assert!(text.contains(
        "engine_compat_call_duration_seconds_bucket{operation=\"get_payload\",version=\"v4\""
    ));
    assert!(text.contains("engine_compat_mode 3"));
    let health = compat.health();
    assert_eq!(health.mismatches, 0);
    assert!(health.comparisons >= 27);
}

#[tokio::test]
async fn v4_refuses_cancun_era_timestamps_and_blob_gas_with_the_field_named() {
    let (mock, compat) = compat(CompatMode::V4Only).await;
    let head = mock.with_chain(|c| c.head());
    let err = slot(&compat, head, CANCUN).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("Cancun-era") && text.contains("v5"),
        "the error says what to do: {text}"
    );
    // A payload with blob gas, at a pre-Cancun timestamp, is refused naming the field.
    compat.set_mode(CompatMode::V5Only);
    let built = {
        let started = compat
            .forkchoice_updated(
                DenebForkchoiceState(ForkchoiceState {
                    head_block_hash: head,
                    ..Default::default()
                }),
                Some(DenebAttributes(PayloadAttributes {
                    timestamp: 2,
                    prev_randao: B256::ZERO,
                    suggested_fee_recipient: Address::ZERO,
                    withdrawals: Some(vec![]),
                    parent_beacon_block_root: None,
                    ..Default::default()
                })),
            )
            .await
            .unwrap();
        compat
            .get_payload(started.payload_id.unwrap(), 2, None)
            .await
            .unwrap()
    };
    let mut request = deneb_request(&built).unwrap();
    request.payload.0.blob_gas_used = 131_072;
    compat.set_mode(CompatMode::V4Only);
    let err = compat.new_payload(request.clone()).await.unwrap_err();
    assert!(err.to_string().contains("blob_gas_used"), "{err}");
    // v5 at a pre-Cancun timestamp refuses it too (a Shanghai block has no blob gas).
    compat.set_mode(CompatMode::V5Only);
    let err = compat.new_payload(request).await.unwrap_err();
    assert!(err.to_string().contains("blob_gas_used"), "{err}");
    assert_eq!(
        mock.requests_for("engine_newPayload").len(),
        0,
        "nothing invalid reached the EL"
    );
}

#[tokio::test]
async fn v4_primary_falls_back_to_v5_across_the_cancun_boundary() {
    let (mock, compat) = compat(CompatMode::V4Primary).await;
    let mut head = mock.with_chain(|c| c.head());
    for n in 1..=15 {
        head = slot(&compat, head, 2 * n).await.unwrap();
    }
    assert_eq!(mock.with_chain(|c| c.head()), head);
    let report = compat.report();
    let new_payload = report
        .operations
        .iter()
        .find(|o| o.operation == CompatOperation::NewPayload)
        .unwrap();
    // Slots 10..=15 are Cancun-era: v4 refused each, v5 answered.
    assert_eq!(new_payload.v4.errors, 6, "{new_payload:?}");
    assert_eq!(new_payload.v5.calls, 6, "{new_payload:?}");
    assert!(
        mock.requests_for("engine_newPayloadV3").len() >= 6,
        "Cancun payloads went out as V3"
    );
}

#[tokio::test]
async fn v5_only_and_v5_primary_serve_both_forks() {
    for mode in [CompatMode::V5Only, CompatMode::V5Primary] {
        let (mock, compat) = compat(mode).await;
        let mut head = mock.with_chain(|c| c.head());
        for n in 1..=12 {
            head = slot(&compat, head, 2 * n).await.unwrap();
        }
        assert_eq!(mock.with_chain(|c| c.head()), head);
        assert_eq!(
            calls(&compat, CompatOperation::NewPayload),
            (0, 12),
            "{mode}"
        );
    }
}

#[tokio::test]
async fn operation_flags_override_the_mode_at_runtime() {
    let (mock, compat) = compat(CompatMode::V4Only).await;
    let mut head = mock.with_chain(|c| c.head());
    head = slot(&compat, head, 2).await.unwrap();
    compat.set_operation_flag(CompatOperation::NewPayload, Some(CompatMode::V5Only));
    assert_eq!(
        compat.effective_mode(CompatOperation::NewPayload),
        CompatMode::V5Only
    );
    assert_eq!(
        compat.effective_mode(CompatOperation::GetPayload),
        CompatMode::V4Only
    );
    for n in 2..=4 {
        head = slot(&compat, head, 2 * n).await.unwrap();
    }
    assert_eq!(calls(&compat, CompatOperation::NewPayload), (1, 3));
    assert_eq!(calls(&compat, CompatOperation::GetPayload), (4, 0));
    compat.set_operation_flag(CompatOperation::NewPayload, None);
    slot(&compat, head, 10).await.unwrap();
    assert_eq!(calls(&compat, CompatOperation::NewPayload), (2, 3));
    let flags: Vec<_> = compat.report().operations.iter().map(|o| o.flag).collect();
    assert_eq!(flags, vec![None, None, None]);
}

#[tokio::test]
async fn canary_is_sticky_per_slot_across_the_three_calls_of_a_slot() {
    let (mock, compat) = compat(CompatMode::canary(50).unwrap()).await;
    let mut head = mock.with_chain(|c| c.head());
    let split = AbSplit::new(50).unwrap();
    let timestamps: Vec<u64> = (1..CANCUN / 2).map(|n| 2 * n).collect();
    for &ts in &timestamps {
        head = slot(&compat, head, ts).await.unwrap();
    }
    let to_v5 = timestamps
        .iter()
        .filter(|&&ts| split.side_for_slot(ts) == Side::Candidate)
        .count() as u64;
    let n = timestamps.len() as u64;
    assert!(to_v5 > 0 && to_v5 < n, "a 50 % split of {n} slots: {to_v5}");
    assert_eq!(
        calls(&compat, CompatOperation::GetPayload),
        (n - to_v5, to_v5)
    );
    assert_eq!(
        calls(&compat, CompatOperation::NewPayload),
        (n - to_v5, to_v5)
    );
}

#[tokio::test]
async fn a_disagreement_between_v4_and_v5_is_counted() {
    let (mock, compat) = compat(CompatMode::Parallel).await;
    let head = mock.with_chain(|c| c.head());
    let started = compat
        .forkchoice_updated(
            DenebForkchoiceState(ForkchoiceState {
                head_block_hash: head,
                ..Default::default()
            }),
            Some(DenebAttributes(PayloadAttributes {
                timestamp: 2,
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
        .get_payload(started.payload_id.unwrap(), 2, None)
        .await
        .unwrap();
    // One of the two newPayload calls is answered SYNCING.
    mock.inject(
        FaultRule::new(Fault::PayloadStatus {
            status: "SYNCING".into(),
            latest_valid_hash: None,
            validation_error: None,
        })
        .on("engine_newPayload")
        .times(1),
    );
    let _ = compat.new_payload(deneb_request(&built).unwrap()).await;
    let report = compat.report();
    let np = report
        .operations
        .iter()
        .find(|o| o.operation == CompatOperation::NewPayload)
        .unwrap();
    assert_eq!((np.matches, np.mismatches), (0, 1), "{np:?}");
    assert_eq!(compat.health().mismatches, 1);
    assert!(compat.metrics().render().contains(
        "engine_compat_comparisons_total{operation=\"new_payload\",outcome=\"mismatch\"} 1"
    ));
}

#[tokio::test]
async fn v5_sends_new_payload_v4_with_execution_requests_from_prague() {
    let schedule = ForkSchedule::prague();
    let mock = MockExecutionLayer::start(
        MockConfig::default()
            .with_profile(ClientProfile::geth())
            .with_fork_schedule(schedule),
    )
    .await
    .unwrap();
    let client = HttpExecutionClient::connect(
        ClientOptions::new(mock.url(), mock.jwt_secret()).with_fork_schedule(schedule),
    )
    .await
    .unwrap();
    let compat = CompatClient::new(client, CompatMode::V5Only, CompatMetrics::new().unwrap());
    let mut head = mock.with_chain(|c| c.head());
    for n in 1..=3 {
        head = slot(&compat, head, 2 * n).await.unwrap();
    }
    assert_eq!(mock.with_chain(|c| c.head()), head);
    let v4_calls = mock.requests_for("engine_newPayloadV4");
    assert_eq!(v4_calls.len(), 3);
    assert!(
        v4_calls[0].params.get(3).is_some_and(|r| r.is_array()),
        "the execution requests went out: {:?}",
        v4_calls[0].params
    );
    // v4 refuses a Prague payload (it is Cancun-era and later).
    compat.set_mode(CompatMode::V4Only);
    assert!(slot(&compat, head, 8).await.is_err());
}
