//! Import throughput on a real execution client (`just bench-e2e`, `BENCH_EL=ethereumjs|reth`;
//! not part of CI): a run of blocks produced on one client is imported into fresh clients on
//! the same genesis three ways, measured side by side in one run:
//!
//! * `plain`: the old engine's loop on an `HttpExecutionClient`, newPayload + forkchoiceUpdated
//!   per block, and the same with the `eth_getBlockReceipts` the engine makes per committed
//!   block for peg-out detection;
//! * `one by one`: `import_payloads` of one block at a time through the actor tree (what a
//!   node syncing block by block does; `commit_payload` is the slot path, bounded by the slot);
//! * `batched`: `import_payloads` with one forkchoiceUpdated per `BATCH` blocks.
//!
//! `BLOCKS` (default 200) blocks with one peg-in each; `BATCH` (default 64). The first block of
//! the run is imported before the clock starts on every path: a fresh Reth's first newPayload
//! takes seconds (see docs/execution-clients.md) and would otherwise dominate the plain loop.

// A benchmark that cannot set up or run its workload must stop loudly.
#![allow(clippy::expect_used)]

use std::time::{Duration, Instant};

use alloy_eips::BlockId;
use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, ForkchoiceState};
use engine_actor::EngineSystem;
use engine_benches::{env_usize, real_el_workload};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{GenesisOptions, RealClientKind, RealExecutionClient, client_slot, peg_ins};
use engine_types::{EngineConfig, require_valid};

/// Rounds of the four paths, one after the other (fresh clients each time).
const ROUNDS: usize = 3;

fn options(el: &RealExecutionClient) -> ClientOptions {
    ClientOptions::new(el.engine_url(), el.jwt_secret()).with_eth_url(el.eth_url())
}

/// A fresh client on `genesis`. Reth runs with a 64 MiB cross-block cache (default 4 GiB): at
/// import speed it sometimes creates that cache anew for a block, zero-filling it, which took
/// seconds on this VM (a 7.6 s newPayload in the plain loop) and drowned every path's figure.
async fn fresh(kind: RealClientKind, genesis: &GenesisOptions) -> RealExecutionClient {
    let args: &[&str] = match kind {
        RealClientKind::Reth => &["--engine.cross-block-cache-size", "64"],
        _ => &[],
    };
    RealExecutionClient::start_with_args(kind, genesis, args)
        .await
        .unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn blocks_per_second(blocks: usize, took: Duration) -> f64 {
    blocks as f64 / took.as_secs_f64()
}

fn main() {
    let (kind, rt) = match real_el_workload("import") {
        Ok(Some(workload)) => workload,
        Ok(None) => return,
        Err(e) => panic!("{e}"),
    };
    let count = env_usize("BLOCKS", 200);
    let batch = env_usize("BATCH", 64);
    rt.block_on(async {
        let producer_el = fresh(kind, &GenesisOptions::default()).await;
        let genesis = GenesisOptions::default().with_timestamp(producer_el.genesis_timestamp());
        let producer = HttpExecutionClient::connect(options(&producer_el))
            .await
            .expect("producer");
        let genesis_block = producer
            .block(BlockId::latest(), false)
            .await
            .expect("genesis")
            .expect("genesis");
        let (mut head, mut ts) = (genesis_block.header.hash, genesis_block.header.timestamp);
        let mut run: Vec<ExecutionData> = Vec::with_capacity(count);
        for n in 0..count {
            ts += 2;
            let data = client_slot(&producer, head, ts, &peg_ins(1), n as u64)
                .await
                .expect("produce");
            head = data.payload.block_hash();
            run.push(data);
        }
        drop(producer_el);

        // plain, with and without the receipts read peg-out detection makes per block
        let plain_loop = |with_receipts: bool| {
            let genesis = genesis.clone();
            let run = run.clone();
            async move {
                let el = fresh(kind, &genesis).await;
                let plain = HttpExecutionClient::connect(options(&el))
                    .await
                    .expect("plain client");
                let mut started = Instant::now();
                let mut slowest_new_payload = Duration::ZERO;
                for (i, data) in run.iter().enumerate() {
                    if i == 1 {
                        started = Instant::now();
                    }
                    let hash = data.payload.block_hash();
                    let sent = Instant::now();
                    let status = plain.new_payload(data).await.expect("newPayload");
                    if i > 0 {
                        slowest_new_payload = slowest_new_payload.max(sent.elapsed());
                    }
                    require_valid(&status, hash).expect("VALID");
                    let state = ForkchoiceState {
                        head_block_hash: hash,
                        safe_block_hash: B256::ZERO,
                        finalized_block_hash: B256::ZERO,
                    };
                    plain.forkchoice_updated(state, None).await.expect("fcU");
                    if with_receipts {
                        let number = data.payload.block_number();
                        plain
                            .block_receipts(BlockId::number(number))
                            .await
                            .expect("receipts")
                            .expect("receipts of a committed block");
                    }
                }
                (started.elapsed(), slowest_new_payload)
            }
        };
        // one by one / batched through the actor tree
        let through_engine = |batched: bool| {
            let genesis = genesis.clone();
            let run = run.clone();
            async move {
                let el = fresh(kind, &genesis).await;
                let config = EngineConfig::default();
                let system = EngineSystem::start_with_options(
                    config.clone(),
                    vec![options(&el).with_engine_config(&config)],
                )
                .await
                .expect("engine");
                let engine = system.handle();
                let mut run = run.into_iter();
                if let Some(first) = run.next() {
                    engine.import_payloads(vec![first], 1).await.expect("first block");
                }
                let started = Instant::now();
                if batched {
                    let rest: Vec<_> = run.collect();
                    let expected = rest.len();
                    let report = engine.import_payloads(rest, batch).await.expect("import");
                    assert_eq!(report.imported, expected, "{report:?}");
                } else {
                    for (i, data) in run.enumerate() {
                        let report = engine
                            .import_payloads(vec![data], 1)
                            .await
                            .unwrap_or_else(|e| panic!("block {}: {e}", i + 2));
                        assert_eq!(report.imported, 1, "{report:?}");
                    }
                }
                let took = started.elapsed();
                system.shutdown().await;
                drop(el);
                took
            }
        };
        let timed = count.saturating_sub(1);
        println!(
            "{kind}, {count} blocks (one peg-in each), imported into fresh clients, the last {timed} timed, {ROUNDS} rounds of the four paths in turn (blocks/s):"
        );
        println!("round  plain  plain+receipts  engine-1by1  engine-batched({batch})  1by1/plain  1by1/(plain+receipts)  batched/1by1");
        let mut ratios = Vec::new();
        for round in 1..=ROUNDS {
            let (plain_took, slowest) = plain_loop(false).await;
            let (receipts_took, _) = plain_loop(true).await;
            let one_took = through_engine(false).await;
            let batched_took = through_engine(true).await;
            let (p, r, o, b) = (
                blocks_per_second(timed, plain_took),
                blocks_per_second(timed, receipts_took),
                blocks_per_second(timed, one_took),
                blocks_per_second(timed, batched_took),
            );
            println!(
                "{round:>5}  {p:>5.1}  {r:>14.1}  {o:>11.1}  {b:>19.1}  {:>10.3}  {:>21.3}  {:>12.3}   (slowest plain newPayload {slowest:?})",
                o / p,
                o / r,
                b / o
            );
            ratios.push((o / p, o / r, b / o));
        }
        let median = |pick: fn(&(f64, f64, f64)) -> f64| {
            let mut v: Vec<f64> = ratios.iter().map(pick).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "median ratios: one by one / plain {:.3}, one by one / (plain + receipts) {:.3}, batched / one by one {:.3}",
            median(|r| r.0),
            median(|r| r.1),
            median(|r| r.2)
        );
    });
}
