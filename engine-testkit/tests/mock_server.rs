//! The MockExecutionLayer over plain HTTP: its JWT checks, and its emulation of the Alys bridge
//! contract (receipts and `eth_getLogs` for `requestPegOut` calls).

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, Bloom, BloomInput, Bytes, TxKind, U256};
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayload, ForkchoiceState, PayloadAttributes};
use alloy_rpc_types_eth::{Filter, Log, TransactionReceipt};
use alloy_sol_types::SolEvent;
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{
    BRIDGE_ADDRESS, ClientProfile, DEV_ACCOUNT, DEV_PRIVATE_KEY, MockConfig, MockExecutionLayer,
    PEG_OUT_GAS_LIMIT, RequestPegOut, client_slot, request_peg_out_calldata, signed_eip1559,
    signed_peg_out, signed_transfer,
};
use engine_types::DEFAULT_FEE_RECIPIENT;
use http_body_util::{BodyExt as _, Full};
use hyper::{
    StatusCode,
    header::{AUTHORIZATION, CONTENT_TYPE},
};
use hyper_util::{client::legacy::Client, rt::TokioExecutor};
use serde_json::{Value, json};

const CHAIN_ID: u64 = 263_634;
const BTC_ADDRESS: &[u8] = b"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
/// 1 sat = 1e10 wei.
const WEI_PER_SAT: u64 = 10_000_000_000;

fn sats(n: u64) -> U256 {
    U256::from(n) * U256::from(WEI_PER_SAT)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(secret: &[u8], claims: &Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

/// POSTs a JSON-RPC call; returns the HTTP status and the body (JSON if it parses, else text).
async fn post(url: &str, method: &str, params: Value, bearer: Option<&str>) -> (StatusCode, Value) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let mut request = hyper::Request::post(url).header(CONTENT_TYPE, "application/json");
    if let Some(token) = bearer {
        request = request.header(AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .unwrap_or_else(|_| panic!("{method} to {url} timed out"))
        .unwrap_or_else(|err| panic!("{method} to {url}: {err}"));
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, body)
}

/// The `result` of a call the mock must answer; panics on an HTTP or JSON-RPC error.
async fn rpc(mock: &MockExecutionLayer, method: &str, params: Value) -> Value {
    let token = hs256(mock.jwt_secret().as_bytes(), &json!({ "iat": unix_now() }));
    let (status, reply) = post(&mock.url(), method, params, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{method}: {reply}");
    reply
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method} failed: {reply}"))
}

/// The JSON-RPC `error` of a call the mock must refuse.
async fn rpc_error(mock: &MockExecutionLayer, method: &str, params: Value) -> Value {
    let token = hs256(mock.jwt_secret().as_bytes(), &json!({ "iat": unix_now() }));
    let (status, reply) = post(&mock.url(), method, params, Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{method}: {reply}");
    reply
        .get("error")
        .cloned()
        .unwrap_or_else(|| panic!("{method} should fail: {reply}"))
}

// ---- JWT ----------------------------------------------------------------------------------

#[tokio::test]
async fn request_without_token_is_401_missing_token() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let (status, body) = post(&mock.url(), "eth_chainId", json!([]), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, json!("missing token"));
    assert!(!mock.requests_for("eth_chainId")[0].authorized);
}

/// What alloy's `AuthLayer` sends (`Claims { exp: None }` serialized as `"exp": null`); EthereumJS
/// reads a null `exp` as 1970 and refuses it, so the mock does too.
#[tokio::test]
async fn token_with_null_exp_is_401() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let token = hs256(
        mock.jwt_secret().as_bytes(),
        &json!({ "iat": unix_now(), "exp": null }),
    );
    let (status, body) = post(&mock.url(), "eth_chainId", json!([]), Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.as_str().unwrap().contains("exp is null"), "{body}");
}

#[tokio::test]
async fn token_signed_with_another_secret_is_401() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let token = hs256(&[0x5a; 32], &json!({ "iat": unix_now() }));
    let (status, body) = post(&mock.url(), "eth_chainId", json!([]), Some(&token)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(body.as_str().unwrap().contains("invalid token"), "{body}");
}

#[tokio::test]
async fn fresh_token_without_exp_is_200() {
    let mock = MockExecutionLayer::start(MockConfig::default())
        .await
        .unwrap();
    let token = hs256(mock.jwt_secret().as_bytes(), &json!({ "iat": unix_now() }));
    let (status, body) = post(&mock.url(), "eth_chainId", json!([]), Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"], json!(format!("{CHAIN_ID:#x}")));
    assert!(mock.requests_for("eth_chainId")[0].authorized);
}

// ---- bridge emulation ---------------------------------------------------------------------

async fn start_mock() -> (MockExecutionLayer, HttpExecutionClient) {
    // Not the Geth profile: its early getPayload would leave the pool out of a fast slot.
    let config = MockConfig::default().with_profile(ClientProfile::nethermind());
    let mock = MockExecutionLayer::start(config).await.unwrap();
    let options = ClientOptions::new(mock.url(), mock.jwt_secret())
        .with_fork_schedule(mock.config().fork_schedule);
    let client = HttpExecutionClient::connect(options).await.unwrap();
    (mock, client)
}

/// One Alys slot (fcU with attributes → getPayload → newPayload → fcU) on the head; returns
/// the committed payload.
async fn slot(client: &HttpExecutionClient, mock: &MockExecutionLayer) -> ExecutionData {
    let head = mock.with_chain(|c| c.head_block()).unwrap();
    client_slot(client, head.hash, head.timestamp + 2, &[], 0)
        .await
        .unwrap()
}

/// `requestPegOut(…)` whose `bytes` length claims 200 bytes that are not there: the
/// contract's ABI decoder reverts.
fn malformed_peg_out_calldata() -> Bytes {
    let mut calldata = request_peg_out_calldata(b"tb1q").to_vec();
    calldata[4 + 63] = 200;
    calldata.into()
}

fn bridge_call(nonce: u64, input: Bytes, value: U256) -> Bytes {
    signed_eip1559(
        DEV_PRIVATE_KEY,
        CHAIN_ID,
        nonce,
        TxKind::Call(BRIDGE_ADDRESS),
        value,
        input,
        PEG_OUT_GAS_LIMIT,
    )
    .unwrap()
    .0
}

fn assert_peg_out_log(log: &Log, bitcoin_address: &[u8], value: U256) {
    assert_eq!(log.address(), BRIDGE_ADDRESS);
    assert_eq!(
        log.topics(),
        [RequestPegOut::SIGNATURE_HASH, DEV_ACCOUNT.into_word()]
    );
    let event = RequestPegOut::decode_log(&log.inner).unwrap();
    assert_eq!(event._evmAddress, DEV_ACCOUNT);
    assert_eq!(event._bitcoinAddress.as_ref(), bitcoin_address);
    assert_eq!(event._value, value);
    assert!(!log.removed);
}

fn bloom_has(bloom: Bloom, log: &Log) -> bool {
    bloom.contains_input(BloomInput::Raw(log.address().as_slice()))
        && log
            .topics()
            .iter()
            .all(|t| bloom.contains_input(BloomInput::Raw(t.as_slice())))
}

fn bridge_filter() -> Filter {
    Filter::new()
        .address(BRIDGE_ADDRESS)
        .event_signature(RequestPegOut::SIGNATURE_HASH)
        .from_block(0)
        .to_block(BlockNumberOrTag::Latest)
}

#[tokio::test]
async fn peg_out_gets_the_bridge_log_in_receipts_and_get_logs() {
    let (mock, client) = start_mock().await;
    let value = sats(2_000_000);
    // A plain transfer, a malformed bridge call and the peg-out, in that order.
    let (transfer, _) = signed_transfer(
        DEV_PRIVATE_KEY,
        CHAIN_ID,
        0,
        Address::repeat_byte(9),
        sats(1),
    )
    .unwrap();
    let malformed = bridge_call(1, malformed_peg_out_calldata(), value);
    let (peg_out, peg_out_hash) =
        signed_peg_out(DEV_PRIVATE_KEY, CHAIN_ID, 2, BTC_ADDRESS, value).unwrap();
    for raw in [transfer, malformed, peg_out] {
        let sent = rpc(&mock, "eth_sendRawTransaction", json!([raw])).await;
        assert!(sent.is_string(), "{sent}");
    }
    let block = slot(&client, &mock).await;
    let block_hash = block.payload.block_hash();
    assert_eq!(block.payload.transactions().len(), 3);

    let receipts = client
        .block_receipts(BlockId::number(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipts.len(), 3);
    assert!(receipts[0].status() && receipts[0].inner.logs().is_empty());
    assert!(!receipts[1].status(), "malformed calldata reverts");
    assert!(receipts[1].inner.logs().is_empty());
    assert_eq!(*receipts[1].inner.logs_bloom(), Bloom::ZERO);
    let receipt = &receipts[2];
    assert!(receipt.status());
    assert_eq!(receipt.transaction_hash, peg_out_hash);
    let [log] = receipt.inner.logs() else {
        panic!("expected exactly one log: {receipt:?}");
    };
    assert_peg_out_log(log, BTC_ADDRESS, value);
    assert_eq!(log.block_hash, Some(block_hash));
    assert_eq!(log.block_number, Some(1));
    assert_eq!(log.transaction_hash, Some(peg_out_hash));
    assert_eq!(log.transaction_index, Some(2));
    assert_eq!(log.log_index, Some(0));
    assert!(bloom_has(*receipt.inner.logs_bloom(), log));
    let header = client
        .block(BlockId::number(1), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(header.header.logs_bloom, *receipt.inner.logs_bloom());

    // eth_getTransactionReceipt answers exactly what eth_getBlockReceipts did.
    let by_block = rpc(&mock, "eth_getBlockReceipts", json!(["0x1"])).await;
    let by_tx = rpc(&mock, "eth_getTransactionReceipt", json!([peg_out_hash])).await;
    assert_eq!(by_tx, by_block[2]);

    // eth_getLogs by bridge address and event topic finds it, byte for byte as in the receipt.
    let logs = client.logs(&bridge_filter()).await.unwrap();
    assert_eq!(logs, vec![log.clone()]);
    let by_hash = client
        .logs(
            &Filter::new()
                .at_block_hash(block_hash)
                .address(BRIDGE_ADDRESS),
        )
        .await
        .unwrap();
    assert_eq!(by_hash, vec![log.clone()]);
    let by_sender = client
        .logs(&bridge_filter().topic1(DEV_ACCOUNT.into_word()))
        .await
        .unwrap();
    assert_eq!(by_sender.len(), 1);
    // A topic it does not carry, another sender, another emitter: nothing.
    for filter in [
        bridge_filter().event_signature(B256::repeat_byte(0xee)),
        bridge_filter().topic1(Address::repeat_byte(1).into_word()),
        bridge_filter().address(Address::repeat_byte(0xcc)),
    ] {
        assert_eq!(
            client.logs(&filter).await.unwrap(),
            Vec::<Log>::new(),
            "{filter:?}"
        );
    }
}

#[tokio::test]
async fn log_indexes_count_across_the_block_and_ranges_span_blocks() {
    let (mock, client) = start_mock().await;
    let (first, _) = signed_peg_out(DEV_PRIVATE_KEY, CHAIN_ID, 0, b"bc1qfirst", sats(1)).unwrap();
    rpc(&mock, "eth_sendRawTransaction", json!([first])).await;
    slot(&client, &mock).await;
    slot(&client, &mock).await; // an empty block in between
    let mut hashes = Vec::new();
    for (nonce, btc) in [(1, &b"bc1qsecond"[..]), (2, b"bc1qthird")] {
        let (raw, hash) =
            signed_peg_out(DEV_PRIVATE_KEY, CHAIN_ID, nonce, btc, sats(nonce)).unwrap();
        rpc(&mock, "eth_sendRawTransaction", json!([raw])).await;
        hashes.push(hash);
    }
    slot(&client, &mock).await;

    let receipts = client
        .block_receipts(BlockId::number(3))
        .await
        .unwrap()
        .unwrap();
    let indexes: Vec<_> = receipts
        .iter()
        .flat_map(|r| r.inner.logs())
        .map(|l| (l.transaction_index, l.log_index))
        .collect();
    assert_eq!(indexes, [(Some(0), Some(0)), (Some(1), Some(1))]);

    let all = client.logs(&bridge_filter()).await.unwrap();
    let numbers: Vec<_> = all.iter().map(|l| l.block_number).collect();
    assert_eq!(numbers, [Some(1), Some(3), Some(3)]);
    assert_peg_out_log(&all[2], b"bc1qthird", sats(2));
    assert_eq!(all[2].transaction_hash, Some(hashes[1]));

    let logs = |filter: Value| rpc(&mock, "eth_getLogs", json!([filter]));
    let count = |v: Value| v.as_array().map(Vec::len).unwrap();
    assert_eq!(
        count(logs(json!({ "fromBlock": "0x2", "toBlock": "0x2" })).await),
        0
    );
    assert_eq!(count(logs(json!({ "fromBlock": "0x2" })).await), 2);
    assert_eq!(
        count(logs(json!({})).await),
        2,
        "default range is the latest block"
    );
    assert_eq!(
        count(logs(json!({ "fromBlock": "earliest", "toBlock": "0x1" })).await),
        1
    );
    assert_eq!(
        count(logs(json!({ "fromBlock": "0x1", "toBlock": "0x63" })).await),
        3
    );
    let address_list = json!({ "fromBlock": "0x0", "address": [Address::ZERO, BRIDGE_ADDRESS] });
    assert_eq!(count(logs(address_list).await), 3);
    let either_topic =
        json!({ "fromBlock": "0x0", "topics": [[B256::ZERO, RequestPegOut::SIGNATURE_HASH]] });
    assert_eq!(count(logs(either_topic).await), 3);
    let too_many_positions = json!({ "fromBlock": "0x0", "topics": [null, null, null] });
    assert_eq!(count(logs(too_many_positions).await), 0);

    let reversed = rpc_error(
        &mock,
        "eth_getLogs",
        json!([{ "fromBlock": "0x3", "toBlock": "0x1" }]),
    )
    .await;
    assert_eq!(reversed["code"], json!(-32602), "{reversed}");
    let both = json!([{ "blockHash": B256::ZERO, "fromBlock": "0x1" }]);
    assert_eq!(
        rpc_error(&mock, "eth_getLogs", both).await["code"],
        json!(-32602)
    );
    let unknown = rpc_error(
        &mock,
        "eth_getLogs",
        json!([{ "blockHash": B256::repeat_byte(1) }]),
    )
    .await;
    assert_eq!(unknown["message"], json!("unknown block"));
    let unset_safe = rpc_error(&mock, "eth_getLogs", json!([{ "fromBlock": "safe" }])).await;
    assert!(
        unset_safe["message"].as_str().unwrap().contains("safe"),
        "{unset_safe}"
    );
}

#[tokio::test]
async fn calls_the_bridge_cannot_decode_revert_without_logs() {
    let (mock, client) = start_mock().await;
    let value = sats(1_000_000);
    let cases: [(&str, Bytes); 4] = [
        ("no calldata", Bytes::new()),
        (
            "another selector",
            Bytes::from_static(&[0xde, 0xad, 0xbe, 0xef]),
        ),
        ("length past the end", malformed_peg_out_calldata()),
        (
            "head cut short",
            request_peg_out_calldata(b"tb1q").slice(..20),
        ),
    ];
    for (nonce, (_, input)) in cases.iter().enumerate() {
        let raw = bridge_call(nonce as u64, input.clone(), value);
        rpc(&mock, "eth_sendRawTransaction", json!([raw])).await;
    }
    slot(&client, &mock).await;
    let receipts: Vec<TransactionReceipt> = client
        .block_receipts(BlockId::latest())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipts.len(), cases.len());
    for ((name, _), receipt) in cases.iter().zip(&receipts) {
        assert!(!receipt.status(), "{name}: should revert");
        assert!(receipt.inner.logs().is_empty(), "{name}");
    }
    assert_eq!(
        client.logs(&bridge_filter()).await.unwrap(),
        Vec::<Log>::new()
    );
}

#[tokio::test]
async fn bridge_address_is_configurable() {
    let elsewhere = Address::repeat_byte(0x77);
    let config = MockConfig::default()
        .with_profile(ClientProfile::nethermind())
        .with_bridge_address(elsewhere);
    let mock = MockExecutionLayer::start(config).await.unwrap();
    let options = ClientOptions::new(mock.url(), mock.jwt_secret())
        .with_fork_schedule(mock.config().fork_schedule);
    let client = HttpExecutionClient::connect(options).await.unwrap();
    // A peg-out to the default address is an ordinary call there now; the same calldata
    // to the configured address emits the log from that address.
    let (to_default, _) = signed_peg_out(DEV_PRIVATE_KEY, CHAIN_ID, 0, b"bc1q", sats(1)).unwrap();
    let to_configured = signed_eip1559(
        DEV_PRIVATE_KEY,
        CHAIN_ID,
        1,
        TxKind::Call(elsewhere),
        sats(1),
        request_peg_out_calldata(b"bc1q"),
        PEG_OUT_GAS_LIMIT,
    )
    .unwrap()
    .0;
    for raw in [to_default, to_configured] {
        rpc(&mock, "eth_sendRawTransaction", json!([raw])).await;
    }
    slot(&client, &mock).await;
    let logs = client.logs(&Filter::new().from_block(0)).await.unwrap();
    assert_eq!(logs.len(), 1);
    assert_eq!(logs[0].address(), elsewhere);
    assert_eq!(logs[0].transaction_index, Some(1));
}

/// A payload whose header bloom leaves out the bridge log is refused, as a real client refuses
/// a bloom that disagrees with execution.
#[tokio::test]
async fn new_payload_with_a_bloom_missing_the_bridge_log_is_invalid() {
    let (mock, client) = start_mock().await;
    let (raw, _) = signed_peg_out(DEV_PRIVATE_KEY, CHAIN_ID, 0, BTC_ADDRESS, sats(5)).unwrap();
    rpc(&mock, "eth_sendRawTransaction", json!([raw])).await;
    let head = mock.with_chain(|c| c.head_block()).unwrap();
    let attrs = PayloadAttributes {
        timestamp: head.timestamp + 2,
        prev_randao: B256::ZERO,
        suggested_fee_recipient: DEFAULT_FEE_RECIPIENT,
        withdrawals: Some(Vec::new()),
        parent_beacon_block_root: None,
        ..Default::default()
    };
    let state = ForkchoiceState {
        head_block_hash: head.hash,
        safe_block_hash: B256::ZERO,
        finalized_block_hash: B256::ZERO,
    };
    let id = client
        .forkchoice_updated(state, Some(attrs.clone()))
        .await
        .unwrap()
        .payload_id
        .unwrap();
    let built = client.get_payload(id, attrs.timestamp, None).await.unwrap();
    let mut block = built
        .execution_data
        .payload
        .clone()
        .try_into_block::<alloy_consensus::TxEnvelope>()
        .unwrap();
    assert_ne!(
        block.header.logs_bloom,
        Bloom::ZERO,
        "the built block has the log's bloom"
    );
    block.header.logs_bloom = Bloom::ZERO;
    let (payload, sidecar) = ExecutionPayload::from_block_slow(&block);
    let status = client
        .new_payload(&ExecutionData::new(payload, sidecar))
        .await
        .unwrap();
    assert!(status.is_invalid(), "{status:?}");
    assert_eq!(status.status.validation_error(), Some("invalid logs bloom"));
}
