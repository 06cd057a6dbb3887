//! Slot latency on a real execution client, the actor path against the direct client, side by
//! side on one client (`just bench-e2e`, `BENCH_EL=ethereumjs|reth`; not part of CI).
//!
//! One client, one chain: slots alternate between the paths, each building on the block the
//! other committed, so both see the same client state and machine load. A direct slot is the
//! old engine's four calls on an `HttpExecutionClient` (forkchoiceUpdated with attributes →
//! getPayload → newPayload → forkchoiceUpdated); an actor slot is `build_payload` +
//! `commit_payload` through the tree. Before an actor slot the engine adopts the direct path's
//! head (`update_forkchoice`, untimed). `ROUNDS` (default 3) rounds of `SLOTS` (default 100)
//! slots per path; p50 per round and overall.

// A benchmark that cannot set up or run its workload must stop loudly.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use alloy_primitives::B256;
use alloy_rpc_types_engine::ForkchoiceState;
use engine_actor::EngineSystem;
use engine_benches::{direct_slot, env_usize, p50_p95_ms, real_el_workload};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{GenesisOptions, RealExecutionClient};
use engine_types::{BuildPayloadRequest, EngineConfig};

fn main() {
    let (kind, rt) = match real_el_workload("el_slot") {
        Ok(Some(workload)) => workload,
        Ok(None) => return,
        Err(e) => panic!("{e}"),
    };
    let rounds = env_usize("ROUNDS", 3);
    let slots = env_usize("SLOTS", 100);
    rt.block_on(async {
        let el = RealExecutionClient::start(kind, &GenesisOptions::default())
            .await
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
        let options =
            ClientOptions::new(el.engine_url(), el.jwt_secret()).with_eth_url(el.eth_url());
        let direct = HttpExecutionClient::connect(options.clone())
            .await
            .expect("direct client");
        let config = EngineConfig::default();
        let system = EngineSystem::start_with_options(
            config.clone(),
            vec![options.with_engine_config(&config)],
        )
        .await
        .expect("engine");
        let engine = system.handle();
        let (mut direct_all, mut actor_all) = (Vec::new(), Vec::new());
        let mut per_round = Vec::new();
        for round in 1..=rounds {
            let (mut direct_round, mut actor_round) = (Vec::new(), Vec::new());
            for _ in 0..slots {
                let head = engine.forkchoice().await.expect("forkchoice");
                let t = Instant::now();
                let block = direct_slot(&direct, head.head, head.head_timestamp + 2, 1)
                    .await
                    .expect("direct slot");
                direct_round.push(t.elapsed());
                engine
                    .update_forkchoice(ForkchoiceState {
                        head_block_hash: block,
                        safe_block_hash: B256::ZERO,
                        finalized_block_hash: B256::ZERO,
                    })
                    .await
                    .expect("adopt the direct head");
                let next = engine
                    .forkchoice()
                    .await
                    .expect("forkchoice")
                    .head_timestamp
                    + 2;
                let t = Instant::now();
                let built = engine
                    .build_payload(
                        BuildPayloadRequest::new(next).with_peg_ins(engine_testkit::peg_ins(1)),
                    )
                    .await
                    .expect("build");
                engine
                    .commit_payload(built.execution_data)
                    .await
                    .expect("commit");
                actor_round.push(t.elapsed());
            }
            let (d, _) = p50_p95_ms(&mut direct_round);
            let (a, _) = p50_p95_ms(&mut actor_round);
            println!(
                "round {round}: direct p50 {d:.2} ms, actor p50 {a:.2} ms, actor/direct {:.3}",
                a / d
            );
            per_round.push(a / d);
            direct_all.extend(direct_round);
            actor_all.extend(actor_round);
        }
        let row = |name: &str, v: &mut Vec<Duration>| {
            let (p50, p95) = p50_p95_ms(v);
            println!("{name:<8} p50 {p50:>7.2} ms   p95 {p95:>7.2} ms");
            p50
        };
        println!(
            "{kind} ({}), {rounds} rounds × {slots} slots per path, alternating:",
            direct.identity().version
        );
        let d = row("direct", &mut direct_all);
        let a = row("actor", &mut actor_all);
        println!(
            "ratio actor/direct (p50): {:.3} overall; per round {}",
            a / d,
            per_round
                .iter()
                .map(|r| format!("{r:.3}"))
                .collect::<Vec<_>>()
                .join(" / ")
        );
        system.shutdown().await;
        drop(el);
    });
}
