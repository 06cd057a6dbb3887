//! The launcher against real execution clients, one test body per client.
//!
//! EthereumJS is required (`just setup` installs it): its tests fail when it is missing. Reth and
//! Geth run when `RETH_BIN`/`GETH_BIN` is set (then they are required) or the binary is on PATH;
//! otherwise their cases print `SKIPPED: …` to stderr.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{io, path::PathBuf, time::SystemTime};

use alloy_primitives::{Address, Bytes, U256};
use alloy_rpc_types_engine::{Claims, JwtSecret};
use engine_testkit::{DEV_ACCOUNT, GenesisOptions, RealClientKind, RealExecutionClient};
use http_body_util::{BodyExt as _, Full};
use hyper::{
    StatusCode,
    header::{AUTHORIZATION, CONTENT_TYPE},
};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use rstest::rstest;
use serde_json::{Value, json};

/// Runtime code `PUSH1 0x2a PUSH1 0 MSTORE PUSH1 32 PUSH1 0 RETURN`: returns 42.
const ANSWER_CODE: [u8; 10] = [0x60, 0x2a, 0x60, 0x00, 0x52, 0x60, 0x20, 0x60, 0x00, 0xf3];
const ANSWER_ADDRESS: Address = Address::repeat_byte(0x42);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A token as the engine should send it: fresh `iat` and an explicit `exp`.
fn token(secret: &JwtSecret) -> String {
    let iat = unix_now();
    secret
        .encode(&Claims {
            iat,
            exp: Some(iat + 60),
        })
        .unwrap()
}

/// POSTs a JSON-RPC request; returns the HTTP status and the body (JSON if it parses, else a
/// string).
async fn post(
    url: &str,
    method: &str,
    params: Value,
    bearer: Option<String>,
) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let mut request = hyper::Request::post(url).header(CONTENT_TYPE, "application/json");
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let response =
        tokio::time::timeout(std::time::Duration::from_secs(10), client.request(request))
            .await
            .unwrap_or_else(|_| panic!("{method} to {url} timed out"))
            .unwrap_or_else(|err| panic!("{method} to {url}: {err}"));
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

/// The `result` of a successful call; panics with the client's log tail otherwise.
async fn call(el: &RealExecutionClient, engine: bool, method: &str, params: Value) -> Value {
    let (url, bearer) = if engine {
        (el.engine_url(), Some(token(&el.jwt_secret())))
    } else {
        (el.eth_url(), None)
    };
    let (status, reply) = post(url, method, params, bearer).await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{method}: {reply}\n{}",
        el.log_tail(40)
    );
    match reply.get("result") {
        Some(result) => result.clone(),
        None => panic!("{method} failed: {reply}\n{}", el.log_tail(40)),
    }
}

fn hex_u64(value: &Value) -> u64 {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a hex string: {value}"));
    u64::from_str_radix(text.trim_start_matches("0x"), 16).unwrap()
}

fn process_group_exists(pgid: u32) -> bool {
    let pgid = libc::pid_t::try_from(pgid).unwrap();
    // SAFETY: signal 0 only checks whether the group exists.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Drops the client and asserts that its process group and its directory are gone.
fn drop_and_assert_gone(el: RealExecutionClient) {
    let pgid = el.pid();
    let data_dir: PathBuf = el.data_dir().to_owned();
    assert!(
        process_group_exists(pgid),
        "process group {pgid} should exist while running"
    );
    drop(el);
    assert!(
        !process_group_exists(pgid),
        "process group {pgid} still exists after drop"
    );
    assert!(
        !data_dir.exists(),
        "{} still exists after drop",
        data_dir.display()
    );
}

/// `kind` on `genesis`, or `None` when the test is skipped (it says why).
async fn start(kind: RealClientKind, genesis: &GenesisOptions) -> Option<RealExecutionClient> {
    RealExecutionClient::start_or_skip(kind, genesis)
        .await
        .unwrap_or_else(|err| panic!("{kind} starts: {err}"))
}

/// What every client must show right after start on a Shanghai chain.
async fn assert_serves_fresh_shanghai_chain(el: &RealExecutionClient, genesis: &GenesisOptions) {
    let chain_id = call(el, false, "eth_chainId", json!([])).await;
    assert_eq!(hex_u64(&chain_id), genesis.chain_id);

    let capabilities = call(
        el,
        true,
        "engine_exchangeCapabilities",
        json!([[
            "engine_newPayloadV2",
            "engine_forkchoiceUpdatedV2",
            "engine_getPayloadV2"
        ]]),
    )
    .await;
    let listed: Vec<&str> = capabilities
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for method in [
        "engine_newPayloadV2",
        "engine_forkchoiceUpdatedV2",
        "engine_getPayloadV2",
    ] {
        assert!(listed.contains(&method), "{method} missing from {listed:?}");
    }

    let latest = call(el, false, "eth_getBlockByNumber", json!(["latest", false])).await;
    assert_eq!(hex_u64(&latest["number"]), 0);
    assert_eq!(hex_u64(&latest["timestamp"]), el.genesis_timestamp());

    let balance = call(el, false, "eth_getBalance", json!([DEV_ACCOUNT, "latest"])).await;
    let expected = genesis
        .prefunded
        .iter()
        .find(|(address, _)| *address == DEV_ACCOUNT)
        .unwrap()
        .1;
    assert_eq!(balance, json!(format!("{expected:#x}")));
}

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[case::geth_el(RealClientKind::Geth)]
#[tokio::test]
async fn starts_answers_and_its_process_group_dies_on_drop(#[case] kind: RealClientKind) {
    let genesis =
        GenesisOptions::default().with_contract(ANSWER_ADDRESS, Bytes::from_static(&ANSWER_CODE));
    let Some(el) = start(kind, &genesis).await else {
        return;
    };
    assert_eq!(el.kind(), kind);
    assert!(el.engine_url().starts_with("http://127.0.0.1:"));
    assert_ne!(el.engine_url(), el.eth_url());
    let secret_file = std::fs::read_to_string(el.jwt_secret_path()).unwrap();
    assert_eq!(JwtSecret::from_hex(&secret_file).unwrap(), el.jwt_secret());

    assert_serves_fresh_shanghai_chain(&el, &genesis).await;

    let code = call(&el, false, "eth_getCode", json!([ANSWER_ADDRESS, "latest"])).await;
    assert_eq!(
        code,
        json!(alloy_primitives::hex::encode_prefixed(ANSWER_CODE))
    );
    let answer = call(
        &el,
        false,
        "eth_call",
        json!([{ "to": ANSWER_ADDRESS }, "latest"]),
    )
    .await;
    assert_eq!(
        U256::from_str_radix(answer.as_str().unwrap().trim_start_matches("0x"), 16).unwrap(),
        U256::from(42)
    );

    drop_and_assert_gone(el);
}

/// Pins an EthereumJS quirk the engine's JWT code must respect: `Claims { exp: None }` is
/// serialized as `"exp": null`, which EthereumJS 0.10.5 rejects as expired.
#[tokio::test]
async fn ethereumjs_refuses_a_null_exp_and_accepts_alloys_tokens_without_one() {
    let el = RealExecutionClient::start(RealClientKind::EthereumJs, &GenesisOptions::default())
        .await
        .unwrap_or_else(|err| panic!("EthereumJS is required for `just test`: {err}"));
    let secret = el.jwt_secret();
    // What alloy 1.8's `Claims` sent: `"exp": null`, which EthereumJS reads as 1970.
    let null_exp = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({ "iat": unix_now(), "exp": null }),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();

    let (status, body) = post(
        el.engine_url(),
        "engine_exchangeCapabilities",
        json!([[]]),
        Some(null_exp),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body.as_str().is_some_and(|text| text.contains("expired")),
        "{body}"
    );

    let (status, body) = post(
        el.engine_url(),
        "engine_exchangeCapabilities",
        json!([[]]),
        None,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, body) = post(
        el.engine_url(),
        "engine_exchangeCapabilities",
        json!([[]]),
        Some(token(&secret)),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // alloy 2's `Claims` leave `exp` out when it is `None` (the fix of alloy #4032)...
    let alloy_token = secret
        .encode(&Claims {
            iat: unix_now(),
            exp: None,
        })
        .unwrap();
    let (status, body) = post(
        el.engine_url(),
        "engine_exchangeCapabilities",
        json!([[]]),
        Some(alloy_token),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // ... and every request of our client goes through alloy's `AuthLayer`.
    let client = engine_clients::HttpExecutionClient::connect(engine_clients::ClientOptions::new(
        el.engine_url(),
        secret,
    ))
    .await
    .expect("alloy's AuthLayer is accepted");
    assert!(
        engine_clients::ExecutionClient::capabilities(&client)
            .supports(engine_types::EngineMethod::NewPayloadV2)
    );

    drop_and_assert_gone(el);
}

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test]
async fn on_a_cancun_genesis_builds_a_v3_payload(#[case] kind: RealClientKind) {
    let genesis = GenesisOptions::default().with_forks(engine_types::ForkSchedule::cancun());
    let Some(el) = start(kind, &genesis).await else {
        return;
    };

    let head = call(&el, false, "eth_getBlockByNumber", json!(["latest", false])).await;
    assert_eq!(head["excessBlobGas"], json!("0x0"), "{head}");
    let head_hash = head["hash"].clone();
    let forkchoice = json!({ "headBlockHash": head_hash, "safeBlockHash": head_hash, "finalizedBlockHash": head_hash });
    let attributes = json!({
        "timestamp": format!("{:#x}", el.genesis_timestamp() + 2),
        "prevRandao": format!("0x{}", "00".repeat(32)),
        "suggestedFeeRecipient": "0x000000000000000000000000000000000000dEaD",
        "withdrawals": [],
        "parentBeaconBlockRoot": format!("0x{}", "00".repeat(32)),
    });
    let updated = call(
        &el,
        true,
        "engine_forkchoiceUpdatedV3",
        json!([forkchoice, attributes]),
    )
    .await;
    assert_eq!(
        updated["payloadStatus"]["status"],
        json!("VALID"),
        "{updated}"
    );
    let payload_id = updated["payloadId"].clone();
    assert!(payload_id.is_string(), "{updated}");

    let built = call(&el, true, "engine_getPayloadV3", json!([payload_id])).await;
    assert!(built["blobsBundle"].is_object(), "{built}");
    assert_eq!(hex_u64(&built["executionPayload"]["blockNumber"]), 1);
    assert_eq!(built["executionPayload"]["blobGasUsed"], json!("0x0"));

    drop_and_assert_gone(el);
}
