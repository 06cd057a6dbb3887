//! The migration adapter: the cost of a mode switch and of a rollback, and one Alys slot
//! (build + commit) through the adapter in legacy-only, parallel and actor-only mode next to
//! the legacy path called directly, all against one in-process MockExecutionLayer in one run.

// criterion_group! generates undocumented public items.
#![allow(missing_docs)]
// A benchmark that cannot set up or run its workload must stop loudly.
#![allow(clippy::expect_used)]

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::Duration,
};

use criterion::{Criterion, criterion_group, criterion_main};
use engine_actor::{Engine, EngineSystem};
use engine_clients::{ClientOptions, HttpExecutionClient};
use engine_migration::{
    AdapterConfig, DirectEngine, LegacyEngine, MigrationAdapter, MigrationMetrics, MigrationMode,
    RollbackReason, Thresholds,
};
use engine_testkit::{ClientProfile, MockConfig, MockExecutionLayer};
use engine_types::EngineConfig;

async fn slot<E: LegacyEngine>(engine: &E, timestamp: u64) {
    let built = engine
        .build_block(Duration::from_secs(timestamp), None, vec![])
        .await
        .expect("build");
    engine.commit_block(built).await.expect("commit");
}

fn migration(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (mock, direct, system, adapter) = runtime.block_on(async {
        let mock =
            MockExecutionLayer::start(MockConfig::default().with_profile(ClientProfile::reth()))
                .await
                .expect("mock");
        let options = ClientOptions::new(mock.url(), mock.jwt_secret());
        let connect = || async {
            DirectEngine::new(
                HttpExecutionClient::connect(options.clone())
                    .await
                    .expect("client"),
            )
            .await
            .expect("direct engine")
        };
        let direct = connect().await;
        let system =
            EngineSystem::start_with_options(EngineConfig::default(), vec![options.clone()])
                .await
                .expect("engine");
        let adapter = MigrationAdapter::new(
            connect().await,
            Engine::new(system.handle()),
            MigrationMode::LegacyOnly,
            AdapterConfig::default().with_thresholds(Thresholds::disabled()),
            MigrationMetrics::new().expect("metrics"),
        );
        adapter
            .initialize_actor_from_legacy()
            .await
            .expect("actor adopts the legacy forkchoice");
        (mock, direct, system, adapter)
    });
    let timestamp = AtomicU64::new(1);
    let next = || timestamp.fetch_add(1, Ordering::Relaxed);

    let mut group = c.benchmark_group("migration");
    group.bench_function("mode_switch", |b| {
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            adapter.set_mode(if flip {
                MigrationMode::Parallel
            } else {
                MigrationMode::LegacyOnly
            })
        });
    });
    // The paths share one EL: every variant extends the same chain, so they interleave.
    group.bench_function("slot/direct_legacy", |b| {
        b.to_async(&runtime).iter(|| async {
            // The direct engine's own forkchoice trails the adapter's commits: give it the
            // head explicitly as the node does (payload_head).
            let head = mock.with_chain(|chain| chain.head());
            let built = direct
                .build_block(Duration::from_secs(next()), Some(head), vec![])
                .await
                .expect("build");
            direct.commit_block(built).await.expect("commit");
        });
    });
    for mode in [
        MigrationMode::LegacyOnly,
        MigrationMode::Parallel,
        MigrationMode::ActorOnly,
    ] {
        group.bench_function(format!("slot/adapter_{mode}"), |b| {
            b.to_async(&runtime).iter(|| async {
                adapter.set_mode(mode);
                slot(&adapter, next()).await;
            });
        });
    }
    // Only the rollback is timed: the mode switch plus the legacy path adopting the actor's
    // forkchoice (one eth_getBlockByHash and one forkchoiceUpdated). Each iteration first runs
    // one actor-only slot, untimed, so legacy is one block behind as in a real rollback.
    group.bench_function("rollback_from_actor_only", |b| {
        b.to_async(&runtime).iter_custom(|iterations| {
            let adapter = &adapter;
            let next = &next;
            async move {
                let mut total = Duration::ZERO;
                for _ in 0..iterations {
                    adapter.set_mode(MigrationMode::ActorOnly);
                    slot(adapter, next()).await;
                    let started = std::time::Instant::now();
                    adapter
                        .rollback(RollbackReason::Manual("bench".into()))
                        .await
                        .expect("rolled back");
                    total += started.elapsed();
                }
                total
            }
        });
    });
    group.finish();
    runtime.block_on(async {
        drop(adapter);
        system.shutdown().await;
    });
}

criterion_group!(benches, migration);
criterion_main!(benches);
