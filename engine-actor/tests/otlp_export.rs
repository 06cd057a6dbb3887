//! The engine exporting over real OTLP/HTTP (protobuf) to a receiver, configured only by the
//! standard `OTEL_*` environment variables. One test per binary: it installs the global
//! subscriber and sets the process environment.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use alloy_primitives::Address;
use engine_actor::{EngineSystem, init_telemetry};
use engine_clients::ClientOptions;
use engine_testkit::{MockConfig, MockExecutionLayer, OtlpReceiver};
use engine_types::{AddBalance, BuildPayloadRequest, ConsensusAmount, EngineConfig};
use tracing::Instrument;

#[test]
fn spans_reach_an_otlp_receiver_with_service_name_and_parentage() {
    // The receiver and the engine run on separate runtimes: the engine's is shut down before
    // the final flush, so every task holding a span is gone and every span has ended (a span
    // still held by a lingering task would keep its parents, the slot span among them, open).
    let receiver_runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let receiver = receiver_runtime.block_on(OtlpReceiver::start()).unwrap();
    // SAFETY: set before any other thread of this process reads the environment (the
    // receiver's worker does not read it; the engine's runtime has nothing to run yet).
    unsafe {
        std::env::set_var("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint());
        std::env::set_var("OTEL_SERVICE_NAME", "alys-engine-under-test");
    }
    let guard = init_telemetry("alys-engine").expect("telemetry");
    assert!(guard.exporting());
    runtime.block_on(async {
        let mock = MockExecutionLayer::start(MockConfig::default())
            .await
            .unwrap();
        let system = EngineSystem::start_with_options(
            EngineConfig::default(),
            vec![ClientOptions::new(mock.url(), mock.jwt_secret())],
        )
        .await
        .unwrap();
        let engine = system.handle();
        async {
            let ts = engine.forkchoice().await.unwrap().head_timestamp + 2;
            let request = BuildPayloadRequest::new(ts).with_peg_ins(vec![AddBalance(
                Address::repeat_byte(1),
                ConsensusAmount(5),
            )]);
            let built = engine.build_payload(request).await.unwrap();
            let hash = engine.commit_payload(built.execution_data).await.unwrap();
            engine.finalize(hash).await.unwrap();
        }
        .instrument(tracing::info_span!(target: "engine_actor", "alys.slot"))
        .await;
        system.shutdown().await;
    });
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    drop(guard); // flushes the batch exporter

    let spans = receiver.spans();
    assert!(receiver.export_requests() >= 1);
    assert!(
        spans
            .iter()
            .all(|s| s.service_name == "alys-engine-under-test"),
        "{spans:#?}"
    );
    let slot = spans
        .iter()
        .find(|s| s.name == "alys.slot")
        .expect("slot span");
    let by_name = |name: &str| {
        spans
            .iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("no span {name} in {spans:#?}"))
    };
    let build = by_name("engine.build_payload");
    let fcu = spans
        .iter()
        .find(|s| s.name == "engine_forkchoiceUpdatedV2" && s.parent_span_id == build.span_id)
        .expect("fcU under build");
    assert_eq!(build.parent_span_id, slot.span_id);
    assert_eq!(
        by_name("engine.commit_payload").parent_span_id,
        slot.span_id
    );
    assert_eq!(
        by_name("engine.finalize_block").parent_span_id,
        slot.span_id
    );
    assert_eq!(
        fcu.attributes.get("rpc.method").map(String::as_str),
        Some("engine_forkchoiceUpdatedV2")
    );
    assert_eq!(
        fcu.attributes
            .get("engine.payload_status")
            .map(String::as_str),
        Some("VALID")
    );
    let new_payload = by_name("engine_newPayloadV2");
    assert_eq!(new_payload.trace_id, slot.trace_id);
    println!(
        "received {} spans in {} export requests; trace {}",
        spans.len(),
        receiver.export_requests(),
        slot.trace_id
    );
}
