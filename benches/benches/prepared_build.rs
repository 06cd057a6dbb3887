//! Build latency at slot time through the actor, with and without a payload prepared ahead of
//! the slot, measured side by side in one run.
//!
//! `BENCH_EL=ethereumjs` or `BENCH_EL=reth` runs it against that real client (`just bench-e2e`);
//! otherwise against the in-process mock (`just bench`). Each iteration: (prepared only)
//! `prepare_payload` and a pause standing in for the rest of the slot, both untimed; then the
//! timed `build_payload`; then an untimed commit so the next iteration builds on it.

// criterion_group! generates undocumented public items.
#![allow(missing_docs)]
// A benchmark that cannot set up or run its workload must stop loudly.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use engine_actor::{EngineHandle, EngineSystem};
use engine_benches::bench_el;
use engine_clients::ClientOptions;
use engine_testkit::{
    ClientProfile, GenesisOptions, MockConfig, MockExecutionLayer, RealExecutionClient,
};
use engine_types::{AddBalance, BuildPayloadRequest, ConsensusAmount, EngineConfig};

fn request(timestamp: u64) -> BuildPayloadRequest {
    BuildPayloadRequest::new(timestamp).with_peg_ins(vec![AddBalance(
        alloy_primitives::Address::repeat_byte(0x42),
        ConsensusAmount(1_000),
    )])
}

async fn build_once(engine: &EngineHandle, prepared: bool, gap: Duration) -> Duration {
    let ts = engine
        .forkchoice()
        .await
        .expect("forkchoice")
        .head_timestamp
        + 2;
    if prepared {
        engine.prepare_payload(request(ts)).await.expect("prepare");
        if !gap.is_zero() {
            tokio::time::sleep(gap).await;
        }
    }
    let started = Instant::now();
    let built = engine.build_payload(request(ts)).await.expect("build");
    let elapsed = started.elapsed();
    engine
        .commit_payload(built.execution_data)
        .await
        .expect("commit");
    elapsed
}

fn build_at_slot_time(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let real = bench_el().unwrap_or_else(|e| panic!("{e}"));
    let (backend, system, label, gap) = runtime.block_on(async {
        let (backend, options) = if let Some(kind) = real {
            let el = RealExecutionClient::start(kind, &GenesisOptions::default())
                .await
                .unwrap_or_else(|e| panic!("{kind}: {e}"));
            let options =
                ClientOptions::new(el.engine_url(), el.jwt_secret()).with_eth_url(el.eth_url());
            (Box::new(el) as Box<dyn std::any::Any + Send>, options)
        } else {
            let mock = MockExecutionLayer::start(
                MockConfig::default().with_profile(ClientProfile::reth()),
            )
            .await
            .expect("mock");
            let options = ClientOptions::new(mock.url(), mock.jwt_secret());
            (Box::new(mock) as Box<dyn std::any::Any + Send>, options)
        };
        let system = EngineSystem::start_with_options(EngineConfig::default(), vec![options])
            .await
            .expect("engine");
        // The part of a 2 s slot between committing block N and building N+1 is mostly idle;
        // a short pause is enough for the EL to have its build going.
        let gap = if real.is_some() {
            Duration::from_millis(150)
        } else {
            Duration::from_millis(2)
        };
        (
            backend,
            system,
            real.map_or("mock", engine_testkit::RealClientKind::name),
            gap,
        )
    });
    let engine = system.handle();
    let mut group = c.benchmark_group(format!("build_at_slot_time/{label}"));
    group.sample_size(if real.is_some() { 20 } else { 50 });
    for prepared in [false, true] {
        let name = if prepared { "prepared" } else { "unprepared" };
        group.bench_function(name, |b| {
            b.to_async(&runtime).iter_custom(|iters| {
                let engine = engine.clone();
                async move {
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        total += build_once(&engine, prepared, gap).await;
                    }
                    total
                }
            });
        });
    }
    group.finish();
    runtime.block_on(async {
        let stats = engine.status().await.expect("status").preparation;
        eprintln!(
            "{label}: prepared builds {} (mean {:.2} ms), unprepared builds {} (mean {:.2} ms), ratio {:.2}; wasted {}, unknown to EL {}",
            stats.prepared_builds.count,
            stats.prepared_builds.mean_ms(),
            stats.unprepared_builds.count,
            stats.unprepared_builds.mean_ms(),
            stats.prepared_builds.mean_ms() / stats.unprepared_builds.mean_ms().max(f64::MIN_POSITIVE),
            stats.wasted,
            stats.unknown_to_el,
        );
        system.shutdown().await;
    });
    // The execution client stops here (the mock's server, or EthereumJS's process group).
    drop(backend);
}

criterion_group!(benches, build_at_slot_time);
criterion_main!(benches);
