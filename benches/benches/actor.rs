//! The actor's cost, side by side with the direct client in one run, plus cached reads and the
//! v4 ↔ v5 conversions.
//!
//! * `slot/direct` vs `slot/actor`: one build + commit, directly with engine-clients and through
//!   EngineHandle, each against its own in-process mock of the same configuration (separate
//!   instances so the two chains do not interfere). An interleaved run of both paths also
//!   prints the ratio of their medians.
//! * `cached_get_block/N`: `get_block(hash)` answered from the block cache with N concurrent
//!   callers; criterion's throughput is reads per second.
//! * `conversion/*`: Capella ↔ Deneb payloads with 16 withdrawals and 100 transactions.

// criterion_group! generates undocumented public items.
#![allow(missing_docs)]
// A benchmark that cannot set up or run its workload must stop loudly.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use alloy_rpc_types_engine::{ExecutionPayloadV1, ExecutionPayloadV2};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use engine_actor::EngineSystem;
use engine_benches::{actor_slot, direct_slot, p50_p95_ms};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_migration::{CapellaPayload, DenebPayload};
use engine_testkit::{ClientProfile, MockConfig, MockExecutionLayer};
use engine_types::EngineConfig;

async fn mock() -> MockExecutionLayer {
    MockExecutionLayer::start(MockConfig::default().with_profile(ClientProfile::reth()))
        .await
        .expect("mock")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn slot_overhead(c: &mut Criterion) {
    let rt = runtime();
    let (direct_mock, actor_mock, client, system) = rt.block_on(async {
        let direct_mock = mock().await;
        let actor_mock = mock().await;
        let client = HttpExecutionClient::connect(ClientOptions::new(
            direct_mock.url(),
            direct_mock.jwt_secret(),
        ))
        .await
        .expect("client");
        let system = EngineSystem::start_with_options(
            EngineConfig::default(),
            vec![ClientOptions::new(
                actor_mock.url(),
                actor_mock.jwt_secret(),
            )],
        )
        .await
        .expect("engine");
        (direct_mock, actor_mock, client, system)
    });
    let engine = system.handle();
    let head = std::sync::Mutex::new((direct_mock.with_chain(|c| c.head()), 1u64));
    let actor_ts = std::sync::atomic::AtomicU64::new(
        rt.block_on(engine.forkchoice())
            .expect("forkchoice")
            .head_timestamp
            + 1,
    );
    let direct = |with_receipts: bool| {
        let head = &head;
        let client = &client;
        async move {
            let (parent, ts) = *head.lock().expect("head");
            let new_head = direct_slot(client, parent, ts, 1)
                .await
                .expect("direct slot");
            if with_receipts {
                // What the actor does after every commit, for peg-out detection.
                let block = alloy_eips::BlockId::Number(alloy_eips::BlockNumberOrTag::Latest);
                client.block_receipts(block).await.expect("receipts");
            }
            *head.lock().expect("head") = (new_head, ts + 1);
        }
    };
    let actor = || async {
        let ts = actor_ts.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        actor_slot(&engine, ts, 1).await.expect("actor slot");
    };
    let mut group = c.benchmark_group("slot");
    group.bench_function("direct", |b| b.to_async(&rt).iter(|| direct(false)));
    group.bench_function("direct_with_receipts", |b| {
        b.to_async(&rt).iter(|| direct(true))
    });
    group.bench_function("actor", |b| b.to_async(&rt).iter(actor));
    group.finish();

    // Interleaved, so every path sees the same machine load. Only under `cargo bench`: test
    // runners execute each benchmark once as a smoke test.
    if !std::env::args().any(|a| a == "--bench") {
        rt.block_on(system.shutdown());
        return;
    }
    let (mut d, mut dr, mut a) = (Vec::new(), Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..2_000 {
            let t = Instant::now();
            direct(false).await;
            d.push(t.elapsed());
            let t = Instant::now();
            direct(true).await;
            dr.push(t.elapsed());
            let t = Instant::now();
            actor().await;
            a.push(t.elapsed());
        }
    });
    let ((d50, d95), (r50, r95), (a50, a95)) =
        (p50_p95_ms(&mut d), p50_p95_ms(&mut dr), p50_p95_ms(&mut a));
    eprintln!(
        "interleaved 2000 slots: direct p50 {d50:.3} ms p95 {d95:.3} ms | direct+receipts p50 {r50:.3} ms p95 {r95:.3} ms | actor p50 {a50:.3} ms p95 {a95:.3} ms | actor/direct {:.3}, actor/(direct+receipts) {:.3}",
        a50 / d50,
        a50 / r50
    );
    rt.block_on(system.shutdown());
    drop((direct_mock, actor_mock));
}

fn cached_reads(c: &mut Criterion) {
    let rt = runtime();
    let (mock, system) = rt.block_on(async {
        let mock = mock().await;
        let system = EngineSystem::start_with_options(
            EngineConfig::default(),
            vec![ClientOptions::new(mock.url(), mock.jwt_secret())],
        )
        .await
        .expect("engine");
        (mock, system)
    });
    let engine = system.handle();
    let ts = rt
        .block_on(engine.forkchoice())
        .expect("forkchoice")
        .head_timestamp
        + 1;
    let hash: B256 = rt
        .block_on(actor_slot(&engine, ts, 4))
        .expect("a committed block");
    let mut group = c.benchmark_group("cached_get_block");
    for callers in [1usize, 8, 64] {
        const PER_CALLER: u64 = 200;
        group.throughput(Throughput::Elements(callers as u64 * PER_CALLER));
        group.bench_function(format!("{callers}_callers"), |b| {
            b.to_async(&rt).iter_custom(|iters| {
                let engine = engine.clone();
                async move {
                    let started = Instant::now();
                    for _ in 0..iters {
                        let tasks: Vec<_> = (0..callers)
                            .map(|_| {
                                let engine = engine.clone();
                                tokio::spawn(async move {
                                    for _ in 0..PER_CALLER {
                                        engine
                                            .get_block(hash, true)
                                            .await
                                            .expect("read")
                                            .expect("block");
                                    }
                                })
                            })
                            .collect();
                        for t in tasks {
                            t.await.expect("reader");
                        }
                    }
                    started.elapsed()
                }
            });
        });
    }
    group.finish();
    let status = rt.block_on(engine.status()).expect("status");
    eprintln!(
        "block cache after the read benchmark: {} hits, {} misses",
        status.caches.blocks.hits, status.caches.blocks.misses
    );
    rt.block_on(system.shutdown());
    drop(mock);
}

fn conversions(c: &mut Criterion) {
    let capella = CapellaPayload(ExecutionPayloadV2 {
        payload_inner: ExecutionPayloadV1 {
            parent_hash: B256::repeat_byte(1),
            fee_recipient: Address::repeat_byte(2),
            state_root: B256::repeat_byte(3),
            receipts_root: B256::repeat_byte(4),
            logs_bloom: Bloom::ZERO,
            prev_randao: B256::ZERO,
            block_number: 10,
            gas_limit: 30_000_000,
            gas_used: 2_100_000,
            timestamp: 20,
            extra_data: Bytes::new(),
            base_fee_per_gas: U256::from(7),
            block_hash: B256::repeat_byte(5),
            transactions: (0..100).map(|i| Bytes::from(vec![i as u8; 120])).collect(),
        },
        withdrawals: (0..16).map(withdrawal).collect(),
    });
    let deneb = DenebPayload::from(capella.clone());
    let mut group = c.benchmark_group("conversion");
    group.bench_function("capella_to_deneb", |b| {
        b.iter(|| DenebPayload::from(std::hint::black_box(capella.clone())))
    });
    group.bench_function("deneb_to_capella", |b| {
        b.iter(|| {
            CapellaPayload::try_from(std::hint::black_box(deneb.clone())).expect("no blob gas")
        })
    });
    group.bench_function("clone_only_baseline", |b| {
        b.iter(|| std::hint::black_box(capella.clone()))
    });
    group.finish();
}

fn withdrawal(i: u64) -> Withdrawal {
    Withdrawal {
        index: i,
        validator_index: 0,
        address: Address::with_last_byte(i as u8),
        amount: 1_000,
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5)).warm_up_time(Duration::from_secs(1));
    targets = slot_overhead, cached_reads, conversions
}
criterion_main!(benches);
