//! Build and commit latency on the real EthereumJS client, actor path vs direct path in the same
//! run (`just bench-e2e`; not part of CI). Each path drives its own EthereumJS instance; slots
//! alternate between them so both see the same machine load. `SLOTS=N` changes the count.

// A benchmark that cannot set up or run its workload must stop loudly.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use alloy_eips::BlockId;
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use engine_actor::EngineSystem;
use engine_benches::p50_p95_ms;
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{GenesisOptions, RealClientKind, RealExecutionClient};
use engine_types::{BuildPayloadRequest, DEFAULT_FEE_RECIPIENT, EngineConfig, require_valid};

fn main() {
    // Only under `cargo bench` (which passes `--bench`): test runners list targets by running
    // them with `--list`, and this is a workload, not a test.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    if std::env::var("BENCH_EL").as_deref() != Ok("ethereumjs") {
        println!(
            "el_slot: skipped: runs against real EthereumJS only; use `just bench-e2e` (BENCH_EL=ethereumjs)"
        );
        return;
    }
    let slots: usize = std::env::var("SLOTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let genesis = GenesisOptions::default();
        let direct_el = RealExecutionClient::start(RealClientKind::EthereumJs, &genesis)
            .await
            .expect("EthereumJS (just setup)");
        let actor_el = RealExecutionClient::start(RealClientKind::EthereumJs, &genesis)
            .await
            .expect("EthereumJS (just setup)");
        let direct = HttpExecutionClient::connect(
            ClientOptions::new(direct_el.engine_url(), direct_el.jwt_secret())
                .with_eth_url(direct_el.eth_url()),
        )
        .await
        .expect("direct client");
        let system = EngineSystem::start_with_options(
            EngineConfig::default(),
            vec![
                ClientOptions::new(actor_el.engine_url(), actor_el.jwt_secret())
                    .with_eth_url(actor_el.eth_url()),
            ],
        )
        .await
        .expect("engine");
        let engine = system.handle();
        let latest = direct
            .block(BlockId::latest(), false)
            .await
            .expect("head")
            .expect("genesis");
        let (mut head, mut ts) = (latest.header.hash, latest.header.timestamp);
        let (mut direct_build, mut direct_commit, mut actor_build, mut actor_commit) =
            (vec![], vec![], vec![], vec![]);
        for _ in 0..slots {
            // Direct: forkchoiceUpdated(attrs) → getPayload | newPayload → forkchoiceUpdated.
            ts += 2;
            let attrs = PayloadAttributes {
                timestamp: ts,
                prev_randao: B256::ZERO,
                suggested_fee_recipient: DEFAULT_FEE_RECIPIENT,
                withdrawals: Some(vec![]),
                parent_beacon_block_root: None,
                ..Default::default()
            };
            let state = |h| ForkchoiceState {
                head_block_hash: h,
                safe_block_hash: B256::ZERO,
                finalized_block_hash: B256::ZERO,
            };
            let t = Instant::now();
            let id = direct
                .forkchoice_updated(state(head), Some(attrs))
                .await
                .expect("fcU")
                .payload_id
                .expect("id");
            let built = direct.get_payload(id, ts, None).await.expect("getPayload");
            direct_build.push(t.elapsed());
            let t = Instant::now();
            require_valid(
                &direct
                    .new_payload(&built.execution_data)
                    .await
                    .expect("newPayload"),
                built.block_hash(),
            )
            .expect("VALID");
            direct
                .forkchoice_updated(state(built.block_hash()), None)
                .await
                .expect("fcU");
            direct_commit.push(t.elapsed());
            head = built.block_hash();

            // Actor: the same two steps through EngineHandle.
            let next = engine
                .forkchoice()
                .await
                .expect("forkchoice")
                .head_timestamp
                + 2;
            let t = Instant::now();
            let built = engine
                .build_payload(BuildPayloadRequest::new(next))
                .await
                .expect("build");
            actor_build.push(t.elapsed());
            let t = Instant::now();
            engine
                .commit_payload(built.execution_data)
                .await
                .expect("commit");
            actor_commit.push(t.elapsed());
        }
        let row = |name: &str, v: &mut Vec<Duration>| {
            let (p50, p95) = p50_p95_ms(v);
            println!("{name:<14} p50 {p50:>7.2} ms   p95 {p95:>7.2} ms");
            p50
        };
        println!("EthereumJS, {slots} slots per path, interleaved:");
        let db = row("direct build", &mut direct_build);
        let ab = row("actor build", &mut actor_build);
        let dc = row("direct commit", &mut direct_commit);
        let ac = row("actor commit", &mut actor_commit);
        println!(
            "ratio actor/direct (p50): build {:.3}, commit {:.3}",
            ab / db,
            ac / dc
        );
        system.shutdown().await;
        drop((direct_el, actor_el));
    });
}
