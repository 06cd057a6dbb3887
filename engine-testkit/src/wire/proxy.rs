//! [`RecordingProxy`]: an HTTP proxy on `127.0.0.1` in front of a real execution client's
//! Engine API that forwards every request unchanged (the JWT included) and records each JSON-RPC
//! exchange, so a test can check what went over the wire.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::{TokioExecutor, TokioIo},
};
use serde_json::Value;
use tokio::{net::TcpListener, task::JoinSet};

/// One JSON-RPC call as it crossed the proxy.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Exchange {
    /// The `method` of the request (empty if the request had none).
    pub method: String,
    /// The request object as sent (`jsonrpc`, `id`, `method`, `params`).
    pub request: Value,
    /// The answer object with the same `id`, if the client answered with JSON.
    pub response: Option<Value>,
    /// The HTTP status of the answer (502 if the client could not be reached).
    pub http_status: u16,
}

/// A recording proxy; it stops serving when dropped.
#[derive(Debug)]
pub struct RecordingProxy {
    addr: SocketAddr,
    upstream: String,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    server: JoinSet<()>,
}

/// Why the proxy could not start.
#[derive(Debug, thiserror::Error)]
#[error("recording proxy: cannot listen on 127.0.0.1: {0}")]
pub struct ProxyError(#[source] std::io::Error);

struct Shared {
    upstream: String,
    client: Client<HttpConnector, Full<Bytes>>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
}

impl RecordingProxy {
    /// Listen on a free `127.0.0.1` port and forward to `upstream` (`http://host:port`).
    pub async fn start(upstream: impl Into<String>) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind("127.0.0.1:0").await.map_err(ProxyError)?;
        let addr = listener.local_addr().map_err(ProxyError)?;
        let upstream = upstream.into();
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let shared = Arc::new(Shared {
            upstream: upstream.clone(),
            client: Client::builder(TokioExecutor::new()).build_http(),
            exchanges: Arc::clone(&exchanges),
        });
        let mut server = JoinSet::new();
        server.spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let shared = Arc::clone(&shared);
                connections.spawn(async move {
                    let service = service_fn(move |req| forward(Arc::clone(&shared), req));
                    // Errors here are the engine closing its connection.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                while connections.try_join_next().is_some() {}
            }
        });
        Ok(Self {
            addr,
            upstream,
            exchanges,
            server,
        })
    }

    /// The URL to give the engine instead of the client's.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The URL requests are forwarded to.
    pub fn upstream(&self) -> &str {
        &self.upstream
    }

    /// Every exchange so far, in the order the answers came back.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.exchanges).clone()
    }

    /// How many calls of `method` crossed the proxy.
    pub fn count(&self, method: &str) -> usize {
        lock(&self.exchanges)
            .iter()
            .filter(|e| e.method == method)
            .count()
    }
}

impl Drop for RecordingProxy {
    fn drop(&mut self) {
        self.server.abort_all();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

type ProxyResult = Result<Response<Full<Bytes>>, std::io::Error>;

async fn forward(shared: Arc<Shared>, req: Request<Incoming>) -> ProxyResult {
    let (parts, body) = req.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("reading the request: {err}"),
            );
        }
    };
    let mut upstream = Request::builder().method(parts.method).uri(format!(
        "{}{}",
        shared.upstream,
        parts.uri.path()
    ));
    for name in [header::AUTHORIZATION, header::CONTENT_TYPE, header::ACCEPT] {
        if let Some(value) = parts.headers.get(&name) {
            upstream = upstream.header(name, value);
        }
    }
    let upstream = match upstream.body(Full::new(body.clone())) {
        Ok(request) => request,
        Err(err) => return plain(StatusCode::BAD_REQUEST, format!("forwarding: {err}")),
    };
    let (status, content_type, answer) = match shared.client.request(upstream).await {
        Ok(response) => {
            let status = response.status();
            let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
            match response.into_body().collect().await {
                Ok(collected) => (status, content_type, collected.to_bytes()),
                Err(err) => {
                    return plain(
                        StatusCode::BAD_GATEWAY,
                        format!("reading the client's answer: {err}"),
                    );
                }
            }
        }
        Err(err) => {
            record(&shared, &body, None, StatusCode::BAD_GATEWAY);
            return plain(
                StatusCode::BAD_GATEWAY,
                format!(
                    "the execution client at {} is unreachable: {err}",
                    shared.upstream
                ),
            );
        }
    };
    record(&shared, &body, Some(&answer), status);
    let mut response = Response::new(Full::new(answer));
    *response.status_mut() = status;
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    Ok(response)
}

/// Pairs requests with answers by `id` (a batch is recorded call by call).
fn record(shared: &Shared, request: &[u8], answer: Option<&[u8]>, status: StatusCode) {
    let Ok(request) = serde_json::from_slice::<Value>(request) else {
        return;
    };
    let answer: Option<Value> = answer.and_then(|a| serde_json::from_slice(a).ok());
    let requests = match request {
        Value::Array(calls) => calls,
        single => vec![single],
    };
    let answers: Vec<Value> = match answer {
        Some(Value::Array(answers)) => answers,
        Some(single) => vec![single],
        None => Vec::new(),
    };
    let mut exchanges = lock(&shared.exchanges);
    for request in requests {
        let response = answers
            .iter()
            .find(|a| a.get("id") == request.get("id"))
            .cloned();
        exchanges.push(Exchange {
            method: request
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            request,
            response,
            http_status: status.as_u16(),
        });
    }
}

fn plain(status: StatusCode, text: String) -> ProxyResult {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    Ok(response)
}
