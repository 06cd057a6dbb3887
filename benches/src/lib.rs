//! Workloads shared by the alys-engine benchmarks.
//!
//! [`direct_slot`] is one Alys slot made directly with `engine-clients`; it is the baseline the
//! actor path is compared against.

use alloy_primitives::B256;
use engine_clients::HttpExecutionClient;
use engine_testkit::{RealClientKind, client_slot, peg_ins};
use engine_types::{BuildPayloadRequest, EngineError};

/// Build and commit one block on `head` at `timestamp` with `peg_ins` peg-ins, directly on
/// the client (the harness's [`client_slot`]); returns the new head.
pub async fn direct_slot(
    client: &HttpExecutionClient,
    head: B256,
    timestamp: u64,
    peg_in_count: usize,
) -> Result<B256, EngineError> {
    let data = client_slot(
        client,
        head,
        timestamp,
        &peg_ins(peg_in_count),
        timestamp * 16,
    )
    .await?;
    Ok(data.payload.block_hash())
}

/// One Alys slot through the actor at `timestamp`: build with `peg_ins` peg-ins → commit.
/// Returns the new head. (The caller tracks the timestamp, as the direct path does.)
pub async fn actor_slot(
    engine: &engine_actor::EngineHandle,
    timestamp: u64,
    peg_in_count: usize,
) -> Result<B256, EngineError> {
    let request = BuildPayloadRequest::new(timestamp).with_peg_ins(peg_ins(peg_in_count));
    let built = engine.build_payload(request).await?;
    engine.commit_payload(built.execution_data).await
}

/// Median and 95th percentile of `samples` (sorted in place), in milliseconds.
pub fn p50_p95_ms(samples: &mut [std::time::Duration]) -> (f64, f64) {
    if samples.is_empty() {
        return (0.0, 0.0);
    }
    samples.sort();
    let at =
        |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize].as_secs_f64() * 1e3;
    (at(0.5), at(0.95))
}

/// The real execution client `BENCH_EL` names (`ethereumjs`, `reth` or `geth`), `Ok(None)` when
/// it is unset (the benchmark then runs on the mock or is skipped), or why the value is wrong.
pub fn bench_el() -> Result<Option<RealClientKind>, String> {
    match std::env::var("BENCH_EL") {
        Err(_) => Ok(None),
        Ok(value) => RealClientKind::ALL
            .into_iter()
            .find(|kind| kind.name() == value)
            .map(Some)
            .ok_or_else(|| {
                format!("BENCH_EL={value}: expected one of ethereumjs, reth, geth (or unset for the mock)")
            }),
    }
}

/// `name` from the environment as a number, else `default` (sizes of the real-client runs).
pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// What a workload against a real client (`just bench-e2e`) needs before it starts: the client
/// `BENCH_EL` names and a two-thread runtime. `None`, with a line saying why, when the target is
/// not run by `cargo bench` (test runners list targets by running them) or no client is named;
/// a misspelt `BENCH_EL` or a runtime that cannot start is an error.
pub fn real_el_workload(
    name: &str,
) -> Result<Option<(RealClientKind, tokio::runtime::Runtime)>, String> {
    if !std::env::args().any(|a| a == "--bench") {
        return Ok(None);
    }
    let Some(kind) = bench_el()? else {
        println!(
            "{name}: skipped: runs against a real client only; use `just bench-e2e` (BENCH_EL=ethereumjs or reth)"
        );
        return Ok(None);
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| format!("{name}: cannot start a runtime: {e}"))?;
    Ok(Some((kind, runtime)))
}
