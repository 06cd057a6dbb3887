//! Decoding execution-client answers never panics: arbitrary bytes, and real answers of the
//! MockExecutionLayer mutated structurally (keys dropped, values of the wrong type, numbers
//! out of range, bodies cut short), give either a value or a typed `EngineError`.
//! The same decoding is fuzzed by `just fuzz` (`fuzz/`).

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::OnceLock;

use alloy_primitives::{Address, U256};
use engine_clients::{DECODED_METHODS, Decoded, bearer_token, decode_response};
use engine_testkit::{
    DEV_ACCOUNT, DEV_PRIVATE_KEY, MockConfig, MockExecutionLayer, signed_transfer,
};
use engine_types::EngineError;
use proptest::prelude::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// One JSON-RPC call over a fresh connection; returns the raw HTTP body.
async fn raw_call(mock: &MockExecutionLayer, method: &str, params: Value) -> Vec<u8> {
    let body =
        serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
            .unwrap();
    let mut stream = tokio::net::TcpStream::connect(mock.addr()).await.unwrap();
    let head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nAuthorization: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        mock.addr(),
        bearer_token(&mock.jwt_secret()).unwrap(),
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    answer.split_off(split + 4)
}

fn result_of(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).unwrap();
    v["result"].clone()
}

/// Real answers for every decoded method: a block with a transaction and a peg-in built,
/// committed and read back from the mock, plus V3/V4 envelopes derived from the V2 one.
fn templates() -> &'static Vec<(&'static str, Vec<u8>)> {
    static TEMPLATES: OnceLock<Vec<(&'static str, Vec<u8>)>> = OnceLock::new();
    TEMPLATES.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mock = MockExecutionLayer::start(
                MockConfig::default().with_prefunded(DEV_ACCOUNT, U256::from(10u64).pow(U256::from(20))),
            )
            .await
            .unwrap();
            let mut out: Vec<(&'static str, Vec<u8>)> = Vec::new();
            let (raw_tx, tx_hash) =
                signed_transfer(DEV_PRIVATE_KEY, 263_634, 0, Address::repeat_byte(7), U256::from(1u64))
                    .unwrap();
            out.push(("eth_sendRawTransaction", raw_call(&mock, "eth_sendRawTransaction", json!([raw_tx])).await));
            let genesis = result_of(&raw_call(&mock, "eth_getBlockByNumber", json!(["latest", false])).await);
            let head = genesis["hash"].clone();
            let state = json!({"headBlockHash": head, "safeBlockHash": head, "finalizedBlockHash": head});
            let attrs = json!({
                "timestamp": "0x2",
                "prevRandao": format!("0x{}", "00".repeat(32)),
                "suggestedFeeRecipient": "0x000000000000000000000000000000000000dead",
                "withdrawals": [{"index": "0x0", "validatorIndex": "0x0", "address": "0x00000000000000000000000000000000000000a1", "amount": "0x3e8"}],
            });
            let fcu = raw_call(&mock, "engine_forkchoiceUpdatedV2", json!([state, attrs])).await;
            let payload_id = result_of(&fcu)["payloadId"].clone();
            let get_payload = raw_call(&mock, "engine_getPayloadV2", json!([payload_id])).await;
            let envelope = result_of(&get_payload);
            let payload = envelope["executionPayload"].clone();
            let block_hash = payload["blockHash"].clone();
            let new_payload = raw_call(&mock, "engine_newPayloadV2", json!([payload])).await;
            let state = json!({"headBlockHash": block_hash, "safeBlockHash": head, "finalizedBlockHash": head});
            let fcu_commit = raw_call(&mock, "engine_forkchoiceUpdatedV2", json!([state])).await;
            for v in ["engine_forkchoiceUpdatedV1", "engine_forkchoiceUpdatedV2", "engine_forkchoiceUpdatedV3"] {
                out.push((v, fcu.clone()));
                out.push((v, fcu_commit.clone()));
            }
            for v in ["engine_newPayloadV1", "engine_newPayloadV2", "engine_newPayloadV3", "engine_newPayloadV4"] {
                out.push((v, new_payload.clone()));
            }
            out.push(("engine_getPayloadV2", get_payload.clone()));
            // V1: the payload without withdrawals; V3/V4: the Cancun/Prague envelopes.
            let mut v1 = payload.clone();
            v1.as_object_mut().unwrap().remove("withdrawals");
            out.push(("engine_getPayloadV1", wrap(v1)));
            let mut v3 = payload.clone();
            v3["blobGasUsed"] = json!("0x0");
            v3["excessBlobGas"] = json!("0x0");
            let envelope_v3 = json!({
                "executionPayload": v3,
                "blockValue": envelope["blockValue"],
                "blobsBundle": {"commitments": [], "proofs": [], "blobs": []},
                "shouldOverrideBuilder": false,
            });
            out.push(("engine_getPayloadV3", wrap(envelope_v3.clone())));
            let mut envelope_v4 = envelope_v3;
            envelope_v4["executionRequests"] = json!(["0x00aa"]);
            out.push(("engine_getPayloadV4", wrap(envelope_v4)));
            for (method, params) in [
                ("engine_exchangeCapabilities", json!([["engine_newPayloadV2"]])),
                ("engine_getClientVersionV1", json!([{"code": "AE", "name": "alys-engine", "version": "0.1.0", "commit": "0x00000000"}])),
                ("engine_getPayloadBodiesByHashV1", json!([[block_hash, format!("0x{}", "11".repeat(32))]])),
                ("web3_clientVersion", json!([])),
                ("eth_getBlockByHash", json!([block_hash, true])),
                ("eth_getBlockByNumber", json!(["0x1", false])),
                ("eth_getBlockByNumber", json!(["0x7", false])),
                ("eth_getBlockReceipts", json!(["0x1"])),
                ("eth_getTransactionReceipt", json!([tx_hash])),
                ("eth_getLogs", json!([{"fromBlock": "0x0", "toBlock": "latest"}])),
                ("eth_syncing", json!([])),
                ("eth_chainId", json!([])),
            ] {
                out.push((method, raw_call(&mock, method, params).await));
            }
            // An error object too (unknown payload id).
            out.push(("engine_getPayloadV2", raw_call(&mock, "engine_getPayloadV2", json!(["0x0102030405060708"])).await));
            out.push(("eth_syncing", wrap(json!({"startingBlock": "0x0", "currentBlock": "0x5", "highestBlock": "0xa"}))));
            out
        })
    })
}

fn wrap(result: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({"jsonrpc": "2.0", "id": 1, "result": result})).unwrap()
}

/// Values of every JSON type, including numbers and strings a decoder may choke on.
fn odd_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>().prop_map(|f| json!(f)),
        Just(json!(u64::MAX)),
        Just(json!(format!("0x{}", "f".repeat(80)))),
        Just(json!("0x")),
        Just(json!("0xzz")),
        Just(json!("-0x1")),
        Just(json!("")),
        ".{0,40}".prop_map(Value::String),
        Just(json!([])),
        Just(json!({})),
        Just(json!([null, 1, "0x1"])),
    ]
}

/// A structural change to a JSON tree, aimed by `path` (indexes taken modulo what is there).
#[derive(Debug, Clone)]
enum Mutation {
    Remove,
    Replace(Value),
    DuplicateInArray,
    WrapInArray,
    AddKey(String, Value),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => Just(Mutation::Remove),
        4 => odd_value().prop_map(Mutation::Replace),
        1 => Just(Mutation::DuplicateInArray),
        1 => Just(Mutation::WrapInArray),
        1 => ("[a-zA-Z]{1,12}", odd_value()).prop_map(|(k, v)| Mutation::AddKey(k, v)),
    ]
}

/// Apply `m` at the node `path` leads to (each step picks a child modulo the child count;
/// some steps stop early so inner nodes are mutated too).
fn mutate(value: &mut Value, path: &[usize], m: &Mutation) {
    let Some((&step, rest)) = path.split_first() else {
        return apply(value, 0, m);
    };
    if !rest.is_empty() || step % 3 != 0 {
        let child = match value {
            Value::Object(o) if !o.is_empty() => {
                let n = o.len();
                o.values_mut().nth(step % n)
            }
            Value::Array(a) if !a.is_empty() => {
                let n = a.len();
                a.get_mut(step % n)
            }
            _ => None,
        };
        if let Some(child) = child {
            return mutate(child, rest, m);
        }
    }
    apply(value, step, m);
}

fn apply(value: &mut Value, i: usize, m: &Mutation) {
    match m {
        Mutation::Remove => match value {
            Value::Object(o) if !o.is_empty() => {
                let key = o.keys().nth(i % o.len()).cloned().unwrap();
                o.remove(&key);
            }
            Value::Array(a) if !a.is_empty() => {
                let n = a.len();
                a.remove(i % n);
            }
            other => *other = Value::Null,
        },
        Mutation::Replace(v) => *value = v.clone(),
        Mutation::DuplicateInArray => {
            if let Value::Array(a) = value
                && let Some(first) = a.first().cloned()
            {
                a.push(first);
            }
        }
        Mutation::WrapInArray => *value = Value::Array(vec![value.take()]),
        Mutation::AddKey(k, v) => {
            if let Value::Object(o) = value {
                o.insert(k.clone(), v.clone());
            }
        }
    }
}

/// The error is one a caller can act on (no `InvalidRequest`: every method here is known).
fn typed(method: &str, result: &Result<Decoded, EngineError>) -> Result<(), TestCaseError> {
    if let Err(EngineError::InvalidRequest { .. }) = result {
        return Err(TestCaseError::fail(format!(
            "{method}: an answer was blamed on the request: {result:?}"
        )));
    }
    Ok(())
}

#[test]
fn every_template_decodes() {
    for (method, body) in templates() {
        let result = decode_response(method, body);
        let is_error_object = serde_json::from_slice::<Value>(body).unwrap()["error"].is_object();
        assert_eq!(
            result.is_ok(),
            !is_error_object,
            "{method}: {} -> {result:?}",
            String::from_utf8_lossy(body)
        );
    }
    // Our V2 decoding keeps the withdrawals (alloy's untagged enum would guess V1).
    let (_, v2) = templates()
        .iter()
        .find(|(m, b)| *m == "engine_getPayloadV2" && !String::from_utf8_lossy(b).contains("error"))
        .unwrap();
    let Ok(Decoded::Payload(alloy_rpc_types_engine::ExecutionPayload::V2(p))) =
        decode_response("engine_getPayloadV2", v2)
    else {
        panic!("getPayloadV2 did not decode as V2")
    };
    assert_eq!(p.withdrawals.len(), 1);
}

/// Found by `mutated_real_answers_never_panic`: a blob sent as a JSON array made the alloy
/// envelope build a 128 KiB array on the stack and overflowed a thread (the process aborted).
/// The engine only uses the commitments; blobs are skipped unread. Runs on a thread with a
/// small stack so a regression aborts here, not by chance.
#[test]
fn blobs_are_skipped_unread_even_when_malformed() {
    let bytes = malformed_blob_answer();
    let decoded = on_small_stack(move || decode_response("engine_getPayloadV4", &bytes));
    assert!(matches!(decoded, Ok(Decoded::Payload(_))), "{decoded:?}");
}

/// Why `engine_getPayloadV3/V4` keep our own envelopes after the alloy 2 upgrade: alloy 2.5's
/// `ExecutionPayloadEnvelopeV4`, given the same answer on the same stack, still aborts the
/// process with a stack overflow. Run in a child process (this test binary, re-executed), so
/// the abort is observed instead of killing the suite. When this test fails, alloy decodes
/// blobs safely and `wire::WireEnvelopeV3/V4` can go.
#[test]
fn alloys_own_envelope_still_overflows_a_small_stack_on_that_answer() {
    const CHILD: &str = "ALYS_ENGINE_ALLOY_BLOB_PROBE";
    const NAME: &str = "alloys_own_envelope_still_overflows_a_small_stack_on_that_answer";
    if std::env::var_os(CHILD).is_some() {
        let bytes = malformed_blob_answer();
        let result = on_small_stack(move || {
            let value: Value = serde_json::from_slice(&bytes).unwrap();
            serde_json::from_value::<alloy_rpc_types_engine::ExecutionPayloadEnvelopeV4>(
                value["result"].clone(),
            )
            .map(drop)
            .map_err(|e| e.to_string())
        });
        println!("alloy decoded without overflowing: {result:?}");
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", NAME, "--nocapture"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success() && stderr.contains("stack overflow"),
        "alloy's envelope no longer overflows (status {:?}): our WireEnvelopeV3/V4 can be replaced by alloy's\nstdout: {}\nstderr: {stderr}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
    );
}

/// A real `engine_getPayloadV4` answer whose blobs are a JSON array of arrays and junk.
fn malformed_blob_answer() -> Vec<u8> {
    let (_, v4) = templates()
        .iter()
        .find(|(m, _)| *m == "engine_getPayloadV4")
        .unwrap();
    let mut body: Value = serde_json::from_slice(v4).unwrap();
    let bundle = &mut body["result"]["blobsBundle"];
    bundle["blobs"] = json!([[], [1, 2, 3], "0xzz"]);
    bundle["proofs"] = Value::Null;
    bundle["commitments"] = json!([format!("0x{}", "ab".repeat(48))]);
    serde_json::to_vec(&body).unwrap()
}

/// Runs `f` on a thread with a 256 KiB stack.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .unwrap()
        .join()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(method in 0..DECODED_METHODS.len(), body in proptest::collection::vec(any::<u8>(), 0..512)) {
        let method = DECODED_METHODS[method];
        let result = decode_response(method, &body);
        typed(method, &result)?;
        if serde_json::from_slice::<Value>(&body).is_err() {
            prop_assert!(matches!(result, Err(EngineError::Decode { .. })), "{method}: {result:?}");
        }
    }

    #[test]
    fn arbitrary_results_in_a_valid_envelope_never_panic(method in 0..DECODED_METHODS.len(), result in "\\PC{0,256}") {
        let method = DECODED_METHODS[method];
        let body = format!(r#"{{"jsonrpc":"2.0","id":1,"result":{result}}}"#);
        typed(method, &decode_response(method, body.as_bytes()))?;
    }

    #[test]
    fn mutated_real_answers_never_panic(
        template in 0..64usize,
        mutations in proptest::collection::vec((proptest::collection::vec(any::<usize>(), 1..8), mutation()), 1..4),
        cut in proptest::option::weighted(0.2, any::<prop::sample::Index>()),
    ) {
        let templates = templates();
        let (method, body) = &templates[template % templates.len()];
        let mut value: Value = serde_json::from_slice(body).unwrap();
        for (path, m) in &mutations {
            mutate(&mut value, path, m);
        }
        let mut bytes = serde_json::to_vec(&value).unwrap();
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        typed(method, &decode_response(method, &bytes))?;
    }
}
