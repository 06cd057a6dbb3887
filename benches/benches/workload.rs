//! 10 000 Alys slots through the actor against the in-process mock (build with peg-ins → commit
//! → block with transactions → receipts → finalize every 10th), with every cache filled past
//! its capacity. Reports the process's peak RSS (the kernel's `VmHWM`) and the cache hit ratio
//! of this workload. `SLOTS=N` changes the slot count.
//!
//! The mock execution client runs in a child process (this binary again, with
//! `WORKLOAD_ROLE=mock`), so the peak RSS reported is the engine's process alone: the mock keeps
//! every block with a balances map, which would otherwise dominate the figure.

// A benchmark that cannot set up or run its workload must stop loudly.
#![allow(clippy::expect_used)]

use std::time::Instant;

use alloy_primitives::{Address, U256};
use engine_actor::EngineSystem;
use engine_clients::ClientOptions;
use engine_testkit::{
    ClientProfile, DEV_ACCOUNT, DEV_PRIVATE_KEY, MockConfig, MockExecutionLayer, signed_transfer,
};
use engine_types::{AddBalance, BuildPayloadRequest, ConsensusAmount, EngineConfig};

fn kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or_default()
}

/// Child role: serve the mock, print `URL SECRET_HEX`, stop when stdin closes.
fn serve_mock() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mock = MockExecutionLayer::start(
            MockConfig::default()
                .with_profile(ClientProfile::reth())
                .with_prefunded(DEV_ACCOUNT, U256::from(10u64).pow(U256::from(24))),
        )
        .await
        .expect("mock");
        println!(
            "{} {}",
            mock.url(),
            alloy_primitives::hex::encode(mock.jwt_secret().as_bytes())
        );
        let _ = tokio::task::spawn_blocking(|| {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)
        })
        .await;
        println!("{}", mock.with_chain(|c| c.known_blocks()));
    });
}

fn main() {
    if std::env::var("WORKLOAD_ROLE").as_deref() == Ok("mock") {
        return serve_mock();
    }
    // Only under `cargo bench` (which passes `--bench`): test runners list targets by running
    // them with `--list`, and this is a workload, not a test.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let slots: u64 = std::env::var("SLOTS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000);
    let mut child = std::process::Command::new(std::env::current_exe().expect("own path"))
        .env("WORKLOAD_ROLE", "mock")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("mock process");
    let mut child_out = std::io::BufReader::new(child.stdout.take().expect("mock stdout"));
    let mut first = String::new();
    std::io::BufRead::read_line(&mut child_out, &mut first).expect("mock address");
    let mut parts = first.split_whitespace();
    let url = parts.next().expect("url").to_owned();
    let secret =
        alloy_rpc_types_engine::JwtSecret::from_hex(parts.next().expect("secret")).expect("secret");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let system = EngineSystem::start_with_options(EngineConfig::default(), vec![ClientOptions::new(url, secret)])
            .await
            .expect("engine");
        let engine = system.handle();
        let baseline_kib = kib("VmRSS:");
        let started = Instant::now();
        for slot in 1..=slots {
            // One transfer per slot, so blocks carry transactions and receipts.
            let (raw, _) = signed_transfer(DEV_PRIVATE_KEY, 263_634, slot - 1, Address::repeat_byte(0x77), U256::from(1u64)).expect("tx");
            engine.send_raw_transaction(raw).await.expect("send");
            let head = engine.forkchoice().await.expect("forkchoice");
            let peg_ins = if slot % 3 == 0 {
                vec![AddBalance(Address::with_last_byte((slot % 200) as u8 + 1), ConsensusAmount::from_satoshi(1_000).expect("amount"))]
            } else {
                Vec::new()
            };
            let built = engine.build_payload(BuildPayloadRequest::new(head.head_timestamp + 2).with_peg_ins(peg_ins)).await.expect("build");
            let hash = engine.commit_payload(built.execution_data).await.expect("commit");
            let block = engine.get_block(hash, true).await.expect("block").expect("committed block");
            let receipts = engine.get_receipts(hash).await.expect("receipts");
            assert_eq!(block.transactions.len(), receipts.len());
            if slot % 10 == 0 {
                engine.finalize(hash).await.expect("finalize");
            }
        }
        let elapsed = started.elapsed();
        let status = engine.status().await.expect("status");
        let c = status.caches;
        let served = c.blocks.hits + c.receipts.hits + c.receipts_joined_in_flight;
        let asked = served + c.blocks.misses + c.receipts.misses;
        println!("workload: {slots} slots in {:.1} s ({:.2} ms/slot)", elapsed.as_secs_f64(), elapsed.as_secs_f64() * 1e3 / slots as f64);
        println!(
            "caches: blocks {}/{} entries ({} hits, {} misses, {} evictions), receipts {}/{} ({} hits, {} joined the post-commit fetch, {} misses), payloads {}/{}",
            c.blocks.len, c.blocks.capacity, c.blocks.hits, c.blocks.misses, c.blocks.evictions,
            c.receipts.len, c.receipts.capacity, c.receipts.hits, c.receipts_joined_in_flight, c.receipts.misses,
            c.payloads.len, c.payloads.capacity
        );
        println!("cache hit ratio of the Alys workload (block + receipts reads served without an EL call): {:.2} %", served as f64 * 100.0 / asked.max(1) as f64);
        println!(
            "engine process peak RSS (VmHWM) {:.1} MiB; RSS before the slots {:.1} MiB (the mock runs in a child process)",
            kib("VmHWM:") as f64 / 1024.0,
            baseline_kib as f64 / 1024.0,
        );
        system.shutdown().await;
    });
    drop(child.stdin.take()); // EOF: the mock reports its block count and exits
    let mut blocks = String::new();
    let _ = std::io::BufRead::read_line(&mut child_out, &mut blocks);
    let _ = child.wait();
    println!("the mock held {} blocks", blocks.trim());
}
