//! The operations endpoint over HTTP: `/livez`, `/readyz` and `/status` as an operator's probe
//! sees them, with the execution client up, stopped and back.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use engine_testkit::{
    MockEngine, engine_slot, funded_mock_config, http_get, mock_engine, peg_in, wait_for,
};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(10);

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

#[tokio::test]
async fn readyz_follows_the_execution_client_and_status_reports_the_head() {
    let f = mock_engine().await;
    let (addr, server) = f
        .system
        .serve_metrics("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let slot = engine_slot(&f.engine, vec![peg_in(0x11, 5)]).await.unwrap();

    let (code, body) = http_get(addr, "/livez").await.unwrap();
    assert_eq!((code, json(&body)["live"].as_bool()), (200, Some(true)));

    let (code, body) = http_get(addr, "/readyz").await.unwrap();
    let ready = json(&body);
    assert_eq!(code, 200, "{body}");
    assert_eq!(ready["ready"], true);
    assert_eq!(ready["head_number"], 1);
    assert_eq!(ready["head"], slot.hash.to_string());
    assert_eq!(ready["writable_clients"], 1);

    let (code, body) = http_get(addr, "/status").await.unwrap();
    let status = json(&body);
    assert_eq!(code, 200);
    assert_eq!(status["forkchoice"]["head"], slot.hash.to_string());
    assert_eq!(status["sessions"][0]["endpoint"], f.mock.url());
    assert_eq!(status["sessions"][0]["circuit"], "closed", "{status}");
    assert!(status["head_age_ms"].as_u64().is_some(), "{status}");

    f.mock.stop().await;
    let unready = wait_for("/readyz to answer 503", WAIT, || async {
        let _ = f.engine.sync_status().await; // a call notices the dead client at once
        match http_get(addr, "/readyz").await {
            Ok((503, body)) => Some(body),
            _ => None,
        }
    })
    .await
    .unwrap();
    let unready = json(&unready);
    assert_eq!(unready["ready"], false);
    let reasons = unready["reasons"].to_string();
    assert!(reasons.contains(&f.mock.url()), "{reasons}");
    let (code, _) = http_get(addr, "/livez").await.unwrap();
    assert_eq!(
        code, 200,
        "a dead execution client does not make the engine dead"
    );

    f.mock.restart().await.unwrap();
    wait_for("/readyz to answer 200 again", WAIT, || async {
        matches!(http_get(addr, "/readyz").await, Ok((200, _))).then_some(())
    })
    .await
    .unwrap();
    let (code, body) = http_get(addr, "/nothing").await.unwrap();
    assert_eq!(code, 404);
    assert!(body.contains("/readyz"), "{body}");
    server.abort();
    f.system.shutdown().await;
}

/// A head that has not moved for `recovery.ready_max_head_age_slots` slots makes the engine
/// unready (a wedged producer); the next commit makes it ready again.
#[tokio::test]
async fn a_head_that_stopped_moving_is_unready() {
    let f = MockEngine::start_with(funded_mock_config(), |config, _| {
        config.slot_duration_ms = 500;
        config.recovery.ready_max_head_age_slots = 2;
    })
    .await
    .unwrap();
    engine_slot(&f.engine, vec![peg_in(0x12, 1)]).await.unwrap();
    let ready = f.system.readiness().await;
    assert!(ready.ready, "{ready:?}");
    let stale = wait_for("the head to count as stale", WAIT, || async {
        let r = f.system.readiness().await;
        (!r.ready).then_some(r)
    })
    .await
    .unwrap();
    assert!(stale.head_age_ms >= 1_000, "{stale:?}");
    assert!(
        stale.reasons.iter().any(|r| r.contains("has not moved")),
        "{stale:?}"
    );
    engine_slot(&f.engine, vec![peg_in(0x12, 1)]).await.unwrap();
    let ready = f.system.readiness().await;
    assert!(ready.ready, "{ready:?}");
    assert_eq!(ready.head_number, 2);
    f.system.shutdown().await;
}

/// `chain` in the configuration reaches every session: an execution client on another chain is
/// never used, and the start fails with the reason.
#[tokio::test]
async fn an_execution_client_on_another_chain_is_never_used() {
    let started = MockEngine::start_with(funded_mock_config(), |config, options| {
        config.health.startup_timeout_ms = 1_000;
        config.chain.chain_id = Some(1);
        *options = options.clone().with_engine_config(config);
    })
    .await;
    let Err(err) = started else {
        panic!("an engine on the wrong chain must not start");
    };
    let text = format!("{err:#}");
    assert!(
        text.contains("another chain") && text.contains("chain id is 263634"),
        "{text}"
    );
}
