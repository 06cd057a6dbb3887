//! The operations endpoint over HTTP/1 on hyper: `GET /metrics` (the registry in the text
//! exposition format) and the paths a [`Probe`] answers (`/livez`, `/readyz`, `/status`).

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use engine_types::EngineError;
use futures_util::future::BoxFuture;
use http_body_util::Full;
use hyper::{Request, Response, StatusCode, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

use super::EngineMetrics;

/// The answer for a path other than `/metrics`: its status code and JSON body, or `None` for a
/// path it does not know.
pub(crate) type Probe =
    Arc<dyn Fn(String) -> BoxFuture<'static, Option<(StatusCode, String)>> + Send + Sync>;

/// What the server answers with `body`, typed `content_type`.
fn answer(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    resp
}

/// Serve `GET /metrics` for `metrics`, and what `probe` answers, on `addr` (`127.0.0.1:0`
/// picks a port). Returns the bound address; the server stops when the returned task is
/// aborted.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Arc<EngineMetrics>,
    probe: Probe,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), EngineError> {
    let listener = TcpListener::bind(addr).await.map_err(|e| {
        EngineError::config(
            "metrics address",
            format!("cannot listen on {addr}: {e}; pick a free address"),
        )
    })?;
    let bound = listener
        .local_addr()
        .map_err(|e| EngineError::config("metrics address", e.to_string()))?;
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let metrics = Arc::clone(&metrics);
            let probe = Arc::clone(&probe);
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let metrics = Arc::clone(&metrics);
                    let probe = Arc::clone(&probe);
                    async move {
                        let path = req.uri().path().to_owned();
                        let resp = if path == "/metrics" {
                            answer(
                                StatusCode::OK,
                                "text/plain; version=0.0.4",
                                metrics.render(),
                            )
                        } else if let Some((status, body)) = probe(path).await {
                            answer(status, "application/json", body)
                        } else {
                            answer(
                                StatusCode::NOT_FOUND,
                                "text/plain",
                                "try /metrics, /livez, /readyz or /status\n".to_owned(),
                            )
                        };
                        Ok::<_, std::convert::Infallible>(resp)
                    }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(error = %e, "metrics connection ended");
                }
            });
        }
    });
    Ok((bound, task))
}
