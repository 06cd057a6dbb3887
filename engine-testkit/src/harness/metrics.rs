//! Reading the engine's Prometheus endpoint in tests.

use http_body_util::BodyExt;

/// `GET http://{addr}/metrics`; an error unless it answers 200 with UTF-8 text.
pub async fn scrape_metrics(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = client
        .get(format!("http://{addr}/metrics").parse()?)
        .await?;
    anyhow::ensure!(resp.status() == 200, "/metrics answered {}", resp.status());
    let body = resp.into_body().collect().await?.to_bytes();
    Ok(String::from_utf8(body.to_vec())?)
}

/// The value of the first sample of `family` whose line contains `label` (e.g.
/// `endpoint="http://…"`, or `""` for any), in a Prometheus text exposition; 0 when absent.
pub fn metric_sample(text: &str, family: &str, label: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .find(|l| l.contains(label))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}
