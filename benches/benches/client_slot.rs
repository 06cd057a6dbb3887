//! One Alys slot through `engine-clients` against the in-process MockExecutionLayer, and the

// criterion_group! generates undocumented public items.
#![allow(missing_docs)]
// A benchmark that cannot set up or run its workload must stop loudly.
#![allow(clippy::expect_used)]
//! per-request cost of signing the Engine API JWT.

use std::sync::atomic::{AtomicU64, Ordering};

use alloy_rpc_types_engine::JwtSecret;
use criterion::{Criterion, criterion_group, criterion_main};
use engine_benches::direct_slot;
use engine_clients::{ClientOptions, HttpExecutionClient, bearer_token};
use engine_testkit::{ClientProfile, MockConfig, MockExecutionLayer};

fn slot(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (mock, client) = runtime.block_on(async {
        // Reth-style: getPayload waits for the build, so every payload is complete.
        let mock =
            MockExecutionLayer::start(MockConfig::default().with_profile(ClientProfile::reth()))
                .await
                .expect("mock");
        let client =
            HttpExecutionClient::connect(ClientOptions::new(mock.url(), mock.jwt_secret()))
                .await
                .expect("client");
        (mock, client)
    });
    let head = std::sync::Mutex::new(mock.with_chain(|chain| chain.head()));
    let timestamp = AtomicU64::new(1);
    let mut group = c.benchmark_group("slot");
    for peg_ins in [0usize, 16] {
        group.bench_function(format!("direct_build_commit_{peg_ins}_peg_ins"), |b| {
            b.to_async(&runtime).iter(|| async {
                let parent = *head.lock().expect("head lock");
                let ts = timestamp.fetch_add(1, Ordering::Relaxed);
                let new_head = direct_slot(&client, parent, ts, peg_ins)
                    .await
                    .expect("slot");
                *head.lock().expect("head lock") = new_head;
            });
        });
    }
    group.finish();
}

fn jwt(c: &mut Criterion) {
    let secret = JwtSecret::random();
    c.bench_function("jwt/sign_bearer_token", |b| {
        b.iter(|| bearer_token(&secret).expect("token"))
    });
}

criterion_group!(benches, slot, jwt);
criterion_main!(benches);
