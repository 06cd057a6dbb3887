//! Client quirks that change what the engine does, through the actor tree on the mock's client
//! profiles: Geth's getPayload stops the build (the engine leaves it `build_fill_ms`), and the
//! same build on clients that wait for their build themselves.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy_primitives::{Address, U256};
use engine_testkit::{
    ClientProfile, DEV_ACCOUNT, DEV_PRIVATE_KEY, MockConfig, MockEngine, signed_transfer,
};
use engine_types::BuildPayloadRequest;
use rstest::rstest;

/// A mock of `profile` with the dev account funded and one transfer in its pool.
async fn engine_with_a_pending_transfer(profile: ClientProfile, fill_ms: u64) -> MockEngine {
    let config = MockConfig::default()
        .with_profile(profile)
        .with_prefunded(DEV_ACCOUNT, U256::from(10u64).pow(U256::from(21)));
    let engine = MockEngine::start_with(config, |config, _| config.build_fill_ms = fill_ms)
        .await
        .unwrap();
    let (raw, _) = signed_transfer(
        DEV_PRIVATE_KEY,
        263_634,
        0,
        Address::repeat_byte(0x42),
        U256::from(1u64),
    )
    .unwrap();
    engine.engine.send_raw_transaction(raw).await.unwrap();
    engine
}

/// The mock's Geth answers an early getPayload (within 300 ms of forkchoiceUpdated) with the
/// empty block, as Geth does; with the default fill time the build holds the transfer, and
/// without one it would not.
#[rstest]
#[case::geth_with_the_default_fill(ClientProfile::geth(), 500, 1)]
#[case::geth_without_a_fill_gets_the_empty_block(ClientProfile::geth(), 0, 0)]
#[case::reth_needs_no_fill(ClientProfile::reth(), 0, 1)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_holds_the_pending_transactions(
    #[case] profile: ClientProfile,
    #[case] fill_ms: u64,
    #[case] transactions: usize,
) {
    let engine = engine_with_a_pending_transfer(profile, fill_ms).await;
    let head = engine.engine.forkchoice().await.unwrap();
    let built = engine
        .engine
        .build_payload(BuildPayloadRequest::new(head.head_timestamp + 2))
        .await
        .unwrap();
    assert_eq!(
        built.execution_data.payload.transactions().len(),
        transactions
    );
    engine
        .engine
        .commit_payload(built.execution_data)
        .await
        .unwrap();
    engine.shutdown().await;
}

/// A build prepared ahead of the slot has been filling since the preparation: the build at
/// slot time (asked at once here) still waits out the rest of the fill time on Geth.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prepared_build_on_geth_waits_out_the_rest_of_the_fill() {
    let engine = engine_with_a_pending_transfer(ClientProfile::geth(), 500).await;
    let head = engine.engine.forkchoice().await.unwrap();
    let request = BuildPayloadRequest::new(head.head_timestamp + 2);
    engine
        .engine
        .prepare_payload(request.clone())
        .await
        .unwrap();
    let built = engine.engine.build_payload(request).await.unwrap();
    assert_eq!(built.execution_data.payload.transactions().len(), 1);
    let preparation = engine.engine.status().await.unwrap().preparation;
    assert_eq!((preparation.made, preparation.used), (1, 1));
    engine.shutdown().await;
}
