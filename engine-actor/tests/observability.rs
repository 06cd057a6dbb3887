//! Traces and metrics of the engine against the MockExecutionLayer.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, time::Duration};

use alloy_primitives::{Address, B256};
use engine_actor::{BlockRef, EngineHandle};
use engine_testkit::{
    ClientProfile, Fault, FaultRule, MockConfig, MockEngine, engine_slot, scrape_metrics,
};
use engine_types::{AddBalance, BuildPayloadRequest, ConsensusAmount};
use opentelemetry::trace::SpanKind;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use tracing::Instrument;
use tracing_subscriber::{Layer, layer::SubscriberExt};

/// An engine on the mock that polls rarely (its polls would otherwise show in traces and
/// metrics).
async fn start() -> MockEngine {
    let mock_config = MockConfig::default().with_profile(ClientProfile::reth());
    MockEngine::start_with(mock_config, |c, _| c.health.poll_interval_ms = 60_000)
        .await
        .unwrap()
}

/// build → commit → (receipts) → finalize, as the node does each slot.
async fn one_slot(engine: &EngineHandle) -> B256 {
    let peg_in = AddBalance(Address::repeat_byte(0x51), ConsensusAmount(1_000));
    let hash = engine_slot(engine, vec![peg_in]).await.unwrap().hash;
    engine.get_receipts(hash).await.unwrap();
    engine.finalize(hash).await.unwrap();
    hash
}

fn render_tree(spans: &[SpanData], root: &SpanData, depth: usize, out: &mut String) {
    let kind = match root.span_kind {
        SpanKind::Client => " (client)",
        _ => "",
    };
    let attrs: BTreeMap<String, String> = root
        .attributes
        .iter()
        .filter_map(|kv| {
            let key = kv.key.as_str();
            match key {
                // Stable values.
                "rpc.system" | "rpc.method" | "engine.payload_status" | "engine.op" => {
                    Some((key.to_owned(), kv.value.to_string()))
                }
                // Present, value varies (hashes, ids, ports).
                "engine.block_hash"
                | "engine.payload_id"
                | "server.address"
                | "engine.correlation_id" => Some((key.to_owned(), "<set>".to_owned())),
                _ => None,
            }
        })
        .collect();
    let attrs: Vec<String> = attrs.into_iter().map(|(k, v)| format!("{k}={v}")).collect();
    out.push_str(&format!(
        "{}{}{kind} [{}]\n",
        "  ".repeat(depth),
        root.name,
        attrs.join(", ")
    ));
    let mut children: Vec<&SpanData> = spans
        .iter()
        .filter(|s| s.parent_span_id == root.span_context.span_id())
        .collect();
    children.sort_by_key(|s| s.start_time);
    for child in children {
        render_tree(spans, child, depth + 1, out);
    }
}

/// One slot is one connected trace: the caller's span → one span per message → one client
/// span per JSON-RPC call, across the handle, the EngineActor's write task and the session.
#[tokio::test(flavor = "current_thread")]
async fn one_slot_is_one_connected_trace() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let filter = engine_actor::span_filter().with_target("observability", tracing::Level::INFO);
    let subscriber = tracing_subscriber::registry()
        .with(engine_actor::otel_layer(&provider).with_filter(filter));
    let _default = tracing::subscriber::set_default(subscriber);

    let MockEngine {
        system,
        mock: _mock,
        dir: _dir,
        ..
    } = start().await;
    let engine = system.handle();
    let slot = tracing::info_span!("alys.slot", slot = 1);
    one_slot(&engine).instrument(slot).await;
    system.shutdown().await;
    provider.force_flush().unwrap();

    let spans = exporter.get_finished_spans().unwrap();
    let root = spans
        .iter()
        .find(|s| s.name == "alys.slot")
        .expect("slot span");
    let trace = root.span_context.trace_id();
    let mut tree = String::new();
    render_tree(&spans, root, 0, &mut tree);
    insta::assert_snapshot!("span_tree_of_one_slot", tree);
    // Everything under the slot shares its trace id.
    let in_trace = spans
        .iter()
        .filter(|s| s.span_context.trace_id() == trace)
        .count();
    assert_eq!(
        in_trace,
        tree.lines().count(),
        "no span of the slot is detached:\n{tree}"
    );
}

fn families(text: &str) -> String {
    let mut out: BTreeMap<String, (String, std::collections::BTreeSet<String>)> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (
                parts.next().unwrap_or_default(),
                parts.next().unwrap_or_default(),
            );
            out.entry(name.to_owned()).or_default().0 = kind.to_owned();
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap_or_default();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| name.strip_suffix(s))
                .filter(|f| out.contains_key(*f))
                .unwrap_or(name);
            if let Some(labels) = line
                .split_once('{')
                .and_then(|(_, rest)| rest.split_once('}'))
                .map(|(l, _)| l)
            {
                for label in labels
                    .split(',')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, _)| k)
                {
                    if label != "le" {
                        out.entry(family.to_owned())
                            .or_default()
                            .1
                            .insert(label.to_owned());
                    }
                }
            }
        }
    }
    out.into_iter()
        .map(|(name, (kind, labels))| {
            format!(
                "{name} {kind} [{}]",
                labels.into_iter().collect::<Vec<_>>().join(", ")
            )
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The metric families (names, types, labels) after a scripted run, and the values that the
/// run must have produced.
#[tokio::test]
async fn metric_families_after_a_scripted_run() {
    let mock_config = MockConfig::default().with_profile(ClientProfile::reth());
    let MockEngine {
        mock,
        system,
        engine,
        dir: _dir,
        ..
    } = MockEngine::start_with(mock_config, |c, _| c.health.poll_interval_ms = 20)
        .await
        .unwrap();
    system.crash_child(engine_actor::ChildKind::CacheJanitor);
    while system.restarts().await.is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    while engine.status().await.unwrap().sessions[0].sync.is_none() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for _ in 0..3 {
        one_slot(&engine).await;
    }
    let ts = engine.forkchoice().await.unwrap().head_timestamp + 2;
    engine
        .prepare_payload(BuildPayloadRequest::new(ts))
        .await
        .unwrap();
    let built = engine
        .build_payload(BuildPayloadRequest::new(ts))
        .await
        .unwrap();
    engine.commit_payload(built.execution_data).await.unwrap();
    assert!(
        engine.finalize(B256::repeat_byte(0x99)).await.is_err(),
        "an error to count"
    );
    // A read whose retries all fail (the harness allows one retry).
    mock.inject(
        FaultRule::new(Fault::Http(503))
            .on("eth_getBlockByHash")
            .times(2),
    );
    assert!(
        engine
            .get_block(BlockRef::Hash(B256::repeat_byte(0x98)), false)
            .await
            .is_err(),
        "a read that exhausts its retries"
    );
    let (addr, server) = system
        .serve_metrics("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let text = scrape_metrics(addr).await.unwrap();
    server.abort();
    for family in engine_actor::metric_names::ALL {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family} not exported after the scripted run"
        );
    }
    insta::assert_snapshot!("metric_families", families(&text));
    for expected in [
        "engine_blocks_built_total 4",
        "engine_blocks_committed_total 4",
        "engine_blocks_finalized_total 3",
        "engine_errors_total{error_type=\"not_found\"} 1",
        "engine_payload_preparations_total{outcome=\"used\"} 1",
        "engine_cache_entries{cache=\"blocks\"} 4",
        "engine_cache_entries{cache=\"receipts\"} 4",
        "engine_connection_status{endpoint=",
        "engine_sync_progress_percent{endpoint=",
        "engine_actor_restarts_total{child=\"CacheJanitor\"} 1",
        "engine_commit_block_duration_seconds_count 4",
        "engine_rpc_duration_seconds_count{method=\"engine_newPayloadV2\",outcome=\"ok\"} 4",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in:\n{text}");
    }
    system.shutdown().await;
}

/// Two engines in one process keep separate registries: no panic, no shared counts.
#[tokio::test]
async fn two_engines_in_one_process_do_not_collide() {
    let first = start().await;
    let second = start().await;
    let (a, b) = (&first.system, &second.system);
    one_slot(&a.handle()).await;
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert!(
        a.metrics()
            .render()
            .contains("engine_blocks_committed_total 1")
    );
    assert!(
        b.metrics()
            .render()
            .contains("engine_blocks_committed_total 0")
    );
    first.system.shutdown().await;
    second.system.shutdown().await;
}

/// Every metric the Grafana dashboard in docs/ queries is one the engine exports.
#[test]
fn the_grafana_dashboard_queries_only_exported_metrics() {
    let dashboard: serde_json::Value =
        serde_json::from_str(include_str!("../../docs/grafana-dashboard.json"))
            .expect("dashboard is JSON");
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            for token in expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|t| t.starts_with("engine_"))
            {
                let family = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| token.strip_suffix(s))
                    .unwrap_or(token);
                assert!(
                    engine_actor::metric_names::ALL.contains(&family),
                    "panel `{}` queries unknown metric {family}",
                    panel["title"]
                );
                checked += 1;
            }
        }
    }
    assert!(checked >= 20, "only {checked} metric references checked");
}
