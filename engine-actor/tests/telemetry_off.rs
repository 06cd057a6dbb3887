//! With no `OTEL_*` endpoint, telemetry exports nothing and starts no exporter thread.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|t| std::fs::read_to_string(t.path().join("comm")).ok())
                .map(|n| n.trim().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn telemetry_off_starts_no_exporter_and_spans_still_work() {
    // SAFETY: single-threaded at this point of the test process.
    unsafe {
        std::env::remove_var("OTEL_EXPORTER_OTLP_ENDPOINT");
        std::env::remove_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    }
    let before = thread_names();
    let guard = engine_actor::init_telemetry("alys-engine").expect("telemetry");
    assert!(!guard.exporting());
    let span = tracing::info_span!(target: "engine_actor", "engine.build_payload");
    span.in_scope(|| tracing::info!(target: "engine_actor", "inside"));
    guard.flush();
    let after = thread_names();
    assert_eq!(before, after, "no thread was started");
    assert!(
        !after
            .iter()
            .any(|n| n.contains("OpenTelemetry") || n.contains("BatchProcessor")),
        "{after:?}"
    );
}
