//! `GET /metrics` over HTTP/1 on hyper: the registry in the text exposition format.

use std::{net::SocketAddr, sync::Arc};

use bytes::Bytes;
use engine_types::EngineError;
use http_body_util::Full;
use hyper::{Request, Response, body::Incoming, header, service::service_fn};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tracing::debug;

use super::EngineMetrics;

/// Serve `GET /metrics` for `metrics` on `addr` (`127.0.0.1:0` picks a port). Returns the bound
/// address; the server stops when the returned task is aborted.
pub(crate) async fn serve(
    addr: SocketAddr,
    metrics: Arc<EngineMetrics>,
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
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let metrics = Arc::clone(&metrics);
                    async move {
                        if req.uri().path() != "/metrics" {
                            let mut not_found =
                                Response::new(Full::new(Bytes::from_static(b"try /metrics\n")));
                            *not_found.status_mut() = hyper::StatusCode::NOT_FOUND;
                            return Ok::<_, std::convert::Infallible>(not_found);
                        }
                        let mut resp = Response::new(Full::new(Bytes::from(metrics.render())));
                        resp.headers_mut().insert(
                            header::CONTENT_TYPE,
                            header::HeaderValue::from_static("text/plain; version=0.0.4"),
                        );
                        Ok(resp)
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
