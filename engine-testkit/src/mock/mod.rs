//! [`MockExecutionLayer`]: a real HTTP JSON-RPC execution client for tests.
//!
//! It listens on `127.0.0.1:0`, checks the JWT of every request (HS256, `iat` within ±60 s of
//! its own clock, else HTTP 401), speaks Engine API V1–V4 and the `eth_` methods the engine
//! uses, keeps an in-memory chain whose block hashes are real header hashes (so a tampered
//! payload is INVALID), credits withdrawals to balances, records every request, and injects
//! faults on demand. It does not execute EVM code: transactions from `eth_sendRawTransaction`
//! are included in built blocks and get receipts with fixed gas (21 000) that succeed without
//! logs, with one exception below.
//!
//! # Peg-outs: the bridge contract, emulated
//!
//! A transaction to [`MockConfig::bridge_address`] (default
//! [`BRIDGE_ADDRESS`](crate::bridge::BRIDGE_ADDRESS)) gets the receipt the real `Bridge.sol`
//! would give it, so peg-out code can be tested on the mock:
//!
//! * a `requestPegOut(bytes)` call that the contract's ABI decoder accepts (see
//!   [`decode_request_peg_out`](crate::bridge::decode_request_peg_out)) succeeds with exactly
//!   one log: address = the bridge, topics = `[keccak("RequestPegOut(address,bytes,uint256)"),
//!   sender left-padded]`, data = `abi.encode(bitcoinAddress, value)`, byte-identical to what
//!   EthereumJS emits for the compiled contract;
//! * anything else sent there (another selector, no calldata, undecodable arguments) fails
//!   with status `0x0` and no logs, like the contract's revert. Value is not moved either way:
//!   the mock's state is only the withdrawal balances.
//!
//! Logs carry their block hash and number, transaction hash and index and a block-wide
//! `logIndex`; each receipt's `logsBloom` and the header's `logsBloom` include them (a
//! `newPayload` whose bloom disagrees is INVALID). `eth_getBlockReceipts`,
//! `eth_getTransactionReceipt` and `eth_getLogs` render the same stored receipts, so they
//! always agree. `eth_getLogs` reads canonical blocks (`fromBlock`/`toBlock` as numbers or
//! tags, default `latest`) or one block by `blockHash`, and filters by `address` (one or a
//! list) and positional `topics` (`null` = any, nested list = any of), as Geth does.
//!
//! ```
//! # tokio_test_shim::run(async {
//! use engine_testkit::{MockExecutionLayer, Fault, FaultRule};
//! let mock = MockExecutionLayer::start(Default::default()).await.unwrap();
//! mock.inject(FaultRule::new(Fault::Http(500)).on("eth_chainId").times(1));
//! assert!(mock.url().starts_with("http://127.0.0.1:"));
//! # });
//! # mod tokio_test_shim { pub fn run(f: impl std::future::Future<Output = ()>) {
//! #   tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(f) } }
//! ```

mod chain;
mod config;
mod logs;

use std::{
    collections::VecDeque,
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, MutexGuard},
    time::{SystemTime, UNIX_EPOCH},
};

use alloy_rpc_types_engine::JwtSecret;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::{net::TcpListener, task::JoinSet};

pub use chain::{MockBlockInfo, MockChain};
pub use config::{ClientProfile, Fault, FaultRule, MockConfig, RecordedRequest};

struct Shared {
    config: MockConfig,
    /// Starts as `config.jwt_secret`; tests may rotate it.
    secret: Mutex<JwtSecret>,
    chain: Mutex<MockChain>,
    faults: Mutex<VecDeque<FaultRule>>,
    requests: Mutex<Vec<RecordedRequest>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panicking test thread must not wedge the server for the others.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running mock execution client. Dropping it stops the server.
pub struct MockExecutionLayer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<JoinSet<()>>>,
}

impl std::fmt::Debug for MockExecutionLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockExecutionLayer")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Errors starting the mock.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// Could not bind the listening socket.
    #[error("mock execution layer: cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// Could not write a file.
    #[error("mock execution layer: cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl MockExecutionLayer {
    /// Start on `127.0.0.1:0` with a genesis block built from `config`.
    pub async fn start(config: MockConfig) -> Result<Self, MockError> {
        let chain = MockChain::new(&config);
        let shared = Arc::new(Shared {
            secret: Mutex::new(config.jwt_secret),
            config,
            chain: Mutex::new(chain),
            faults: Mutex::new(VecDeque::new()),
            requests: Mutex::new(Vec::new()),
        });
        let listener = bind("127.0.0.1:0").await?;
        let addr = listener.local_addr().map_err(|source| MockError::Bind {
            addr: "127.0.0.1:0".into(),
            source,
        })?;
        let mock = Self {
            shared,
            addr,
            server: Mutex::new(None),
        };
        mock.serve(listener);
        Ok(mock)
    }

    fn serve(&self, listener: TcpListener) {
        let mut tasks = JoinSet::new();
        let shared = Arc::clone(&self.shared);
        tasks.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| handle_http(Arc::clone(&shared), req));
                    // Errors here are clients going away or injected drops.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Reap finished connections so the set does not grow without bound.
                while connections.try_join_next().is_some() {}
            }
        });
        *lock(&self.server) = Some(tasks);
    }

    /// Stop serving: the port refuses connections and open connections are closed. The chain
    /// is kept, like an execution client's database across a restart.
    pub async fn stop(&self) {
        let tasks = lock(&self.server).take();
        if let Some(mut tasks) = tasks {
            tasks.shutdown().await;
        }
    }

    /// Serve again on the same port (after [`MockExecutionLayer::stop`]).
    pub async fn restart(&self) -> Result<(), MockError> {
        self.stop().await;
        let listener = bind(&self.addr.to_string()).await?;
        self.serve(listener);
        Ok(())
    }

    /// Whether the server is currently serving.
    pub fn is_running(&self) -> bool {
        lock(&self.server).is_some()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The JWT secret requests must carry.
    pub fn jwt_secret(&self) -> JwtSecret {
        *lock(&self.shared.secret)
    }

    /// Start accepting only tokens signed with `secret` (a secret rotation at the EL).
    pub fn set_jwt_secret(&self, secret: JwtSecret) {
        *lock(&self.shared.secret) = secret;
    }

    /// Write the JWT secret as hex into `dir/jwt.hex` and return the path.
    pub fn write_jwt_secret(&self, dir: &Path) -> Result<PathBuf, MockError> {
        let path = dir.join("jwt.hex");
        let hex = alloy_primitives::hex::encode(self.jwt_secret().as_bytes());
        std::fs::write(&path, hex).map_err(|source| MockError::Write {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// The configuration it was started with.
    pub fn config(&self) -> &MockConfig {
        &self.shared.config
    }

    /// Add a fault rule (rules are tried in insertion order; the first match applies).
    pub fn inject(&self, rule: FaultRule) {
        lock(&self.shared.faults).push_back(rule);
    }

    /// Remove every fault rule.
    pub fn clear_faults(&self) {
        lock(&self.shared.faults).clear();
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// Requests whose method starts with `prefix`.
    pub fn requests_for(&self, prefix: &str) -> Vec<RecordedRequest> {
        lock(&self.shared.requests)
            .iter()
            .filter(|r| r.method.starts_with(prefix))
            .cloned()
            .collect()
    }

    /// Forget recorded requests.
    pub fn clear_requests(&self) {
        lock(&self.shared.requests).clear();
    }

    /// Read the chain (head, blocks, balances) under the lock.
    pub fn with_chain<T>(&self, f: impl FnOnce(&MockChain) -> T) -> T {
        f(&lock(&self.shared.chain))
    }

    /// Change the chain under the lock (e.g. to add a competing block).
    pub fn with_chain_mut<T>(&self, f: impl FnOnce(&mut MockChain) -> T) -> T {
        f(&mut lock(&self.shared.chain))
    }
}

impl Drop for MockExecutionLayer {
    fn drop(&mut self) {
        if let Some(mut tasks) = lock(&self.server).take() {
            tasks.abort_all();
        }
    }
}

async fn bind(addr: &str) -> Result<TcpListener, MockError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| MockError::Bind {
            addr: addr.to_owned(),
            source,
        })
}

type HttpResult = Result<Response<Full<Bytes>>, std::io::Error>;

fn text_response(status: StatusCode, body: &str) -> HttpResult {
    let mut resp = Response::new(Full::new(Bytes::from(body.to_owned())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain"),
    );
    Ok(resp)
}

fn json_response(body: Vec<u8>) -> HttpResult {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    Ok(resp)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

/// Checks the bearer token like execution clients do; the error is the 401 body.
fn check_jwt(
    config: &MockConfig,
    secret: &JwtSecret,
    auth: Option<&str>,
) -> Result<(), &'static str> {
    let token = auth
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or("missing token")?;
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.set_required_spec_claims(&["iat"]);
    validation.validate_exp = false;
    #[derive(serde::Deserialize)]
    struct Claims {
        iat: i64,
        // Present-but-null counts as expired, as EthereumJS does (`null * 1000` is 1970).
        #[serde(default, deserialize_with = "exp_field")]
        exp: Option<Option<i64>>,
    }
    fn exp_field<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<i64>>, D::Error> {
        use serde::Deserialize;
        Ok(Some(Option::<i64>::deserialize(d)?))
    }
    let key = jsonwebtoken::DecodingKey::from_secret(secret.as_bytes());
    let data = jsonwebtoken::decode::<Claims>(token, &key, &validation)
        .map_err(|_| "Unauthorized: invalid token signature or claims")?;
    let now = unix_now() + config.clock_skew_secs;
    if (data.claims.iat - now).abs() > 60 {
        return Err("stale token");
    }
    match data.claims.exp {
        Some(None) => return Err("Unauthorized: Error: Token expired (exp is null)"),
        Some(Some(exp)) if exp < now => return Err("Unauthorized: Error: Token expired"),
        _ => {}
    }
    Ok(())
}

async fn handle_http(shared: Arc<Shared>, req: Request<Incoming>) -> HttpResult {
    let auth = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = req
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    let secret = *lock(&shared.secret);
    let auth_result = check_jwt(&shared.config, &secret, auth.as_deref());

    let calls: Vec<Value> = match &parsed {
        Some(Value::Array(items)) => items.clone(),
        Some(v) => vec![v.clone()],
        None => Vec::new(),
    };
    {
        let mut log = lock(&shared.requests);
        if calls.is_empty() {
            log.push(RecordedRequest {
                method: "<unparsed>".into(),
                params: Value::Null,
                authorized: auth_result.is_ok(),
            });
        }
        for call in &calls {
            log.push(RecordedRequest {
                method: call
                    .get("method")
                    .and_then(Value::as_str)
                    .unwrap_or("<none>")
                    .to_owned(),
                params: call.get("params").cloned().unwrap_or(Value::Null),
                authorized: auth_result.is_ok(),
            });
        }
    }
    let public_call = shared.config.public_eth
        && !calls.is_empty()
        && calls.iter().all(|c| {
            c.get("method")
                .and_then(Value::as_str)
                .is_some_and(|m| ["eth_", "net_", "web3_"].iter().any(|p| m.starts_with(p)))
        });
    if let Err(reason) = auth_result
        && !public_call
    {
        return text_response(StatusCode::UNAUTHORIZED, reason);
    }
    let Some(parsed) = parsed else {
        let body = serde_json::to_vec(&error_object(Value::Null, -32700, "parse error"))
            .unwrap_or_default();
        return json_response(body);
    };

    // The first call's method decides which fault applies to the whole HTTP request.
    let first_method = calls
        .first()
        .and_then(|c| c.get("method"))
        .and_then(Value::as_str)
        .unwrap_or("");
    let fault = take_fault(&shared, first_method);
    if let Some(Fault::Latency(d)) = &fault {
        tokio::time::sleep(*d).await;
    }
    match &fault {
        Some(Fault::Http(code)) => {
            let status = StatusCode::from_u16(*code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return text_response(status, "injected HTTP failure");
        }
        Some(Fault::MalformedJson) => {
            return json_response(b"{\"jsonrpc\":\"2.0\",\"id\":".to_vec());
        }
        Some(Fault::DropConnection) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionAborted,
                "injected drop",
            ));
        }
        _ => {}
    }

    let answers: Vec<Value> = calls
        .iter()
        .map(|call| answer(&shared, call, fault.as_ref()))
        .collect();
    let mut out = match parsed {
        Value::Array(_) => Value::Array(answers),
        _ => answers.into_iter().next().unwrap_or(Value::Null),
    };
    if let (Some(Fault::WrongId), Some(obj)) = (&fault, out.as_object_mut()) {
        obj.insert("id".into(), json!(987_654_321));
    }
    let mut body = serde_json::to_vec(&out).unwrap_or_default();
    if let Some(Fault::TruncatedBody) = fault {
        body.truncate(body.len() / 2);
    }
    if let Some(Fault::LateAnswer(d)) = fault {
        tokio::time::sleep(d).await;
    }
    json_response(body)
}

fn take_fault(shared: &Shared, method: &str) -> Option<Fault> {
    let mut faults = lock(&shared.faults);
    let index = faults.iter().position(|r| r.matches(method))?;
    let rule = &mut faults[index];
    let fault = rule.fault.clone();
    if let Some(n) = rule.remaining.as_mut() {
        *n = n.saturating_sub(1);
        if *n == 0 {
            faults.remove(index);
        }
    }
    Some(fault)
}

fn error_object(id: Value, code: i64, message: &str) -> Value {
    json!({ "jsonrpc": "2.0", "id": id, "error": { "code": code, "message": message } })
}

fn answer(shared: &Shared, call: &Value, fault: Option<&Fault>) -> Value {
    let id = call.get("id").cloned().unwrap_or(Value::Null);
    let Some(method) = call.get("method").and_then(Value::as_str) else {
        return error_object(id, -32600, "invalid request: no method");
    };
    let params = call
        .get("params")
        .cloned()
        .unwrap_or(Value::Array(Vec::new()));
    if let Some(Fault::RpcError { code, message }) = fault {
        return error_object(id, *code, message);
    }
    let forced_status = match fault {
        Some(Fault::PayloadStatus {
            status,
            validation_error,
            latest_valid_hash,
        }) => Some(json!({
            "status": status,
            "latestValidHash": latest_valid_hash,
            "validationError": validation_error,
        })),
        _ => None,
    };
    let result = {
        let mut chain = lock(&shared.chain);
        chain.dispatch(&shared.config, method, &params, forced_status)
    };
    match result {
        Ok(value) => json!({ "jsonrpc": "2.0", "id": id, "result": value }),
        Err(chain::RpcFailure { code, message }) => error_object(id, code, &message),
    }
}
