//! Reading the engine's metrics server (`/metrics`, the health endpoints) in tests.

use http_body_util::BodyExt;

/// `GET http://{addr}{path}`: the status code and the body as text (an error if the body is
/// not UTF-8 or the server cannot be reached).
pub async fn http_get(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let resp = client.get(format!("http://{addr}{path}").parse()?).await?;
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8(body.to_vec())?))
}

/// `GET http://{addr}/metrics`; an error unless it answers 200 with UTF-8 text.
pub async fn scrape_metrics(addr: std::net::SocketAddr) -> anyhow::Result<String> {
    let (status, text) = http_get(addr, "/metrics").await?;
    anyhow::ensure!(status == 200, "/metrics answered {status}");
    Ok(text)
}

/// The samples of `family` whose line contains `label` (e.g. `endpoint="http://…"`, or `""` for
/// any), in a Prometheus text exposition.
fn samples<'a>(text: &'a str, family: &'a str, label: &'a str) -> impl Iterator<Item = f64> + 'a {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(move |l| {
            l.strip_prefix(family)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter(move |l| l.contains(label))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse().ok()))
}

/// The value of the first sample of `family` whose line contains `label`; 0 when absent.
pub fn metric_sample(text: &str, family: &str, label: &str) -> f64 {
    samples(text, family, label).next().unwrap_or(0.0)
}

/// The sum of the samples of `family` whose lines contain `label`; 0 when absent.
pub fn metric_sum(text: &str, family: &str, label: &str) -> f64 {
    samples(text, family, label).sum()
}
