//! Chaos against real EthereumJS: the execution client is killed (SIGKILL to its process group)
//! in the middle of block production and started again on the same data directory and ports.
//! No block the engine reported committed may be lost, and afterwards the engine and the EL
//! agree on head, safe and finalized.
//!
//! EthereumJS is required (`just setup` installs it): this test fails if it is missing. The
//! test name contains `ethereumjs`, so nextest runs it in the serial `real-el` group.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, time::Duration};

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256};
use engine_actor::{CircuitState, EngineHandle, EngineSystem};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{GenesisOptions, RealClientKind, RealExecutionClient};
use engine_types::{
    AddBalance, BuildPayloadRequest, ConsensusAmount, EngineConfig, EngineError, ForkSchedule,
};

const SLOTS_BEFORE_KILL: usize = 6;
const SLOTS_AFTER_RESTART: usize = 6;

async fn try_slot(engine: &EngineHandle, n: usize) -> Result<B256, EngineError> {
    let head = engine.forkchoice().await?;
    let peg_in = AddBalance(
        Address::with_last_byte(n as u8),
        ConsensusAmount::from_satoshi(100 + n as u64).unwrap(),
    );
    let built = engine
        .build_payload(BuildPayloadRequest::new(head.head_timestamp + 2).with_peg_ins(vec![peg_in]))
        .await?;
    engine.commit_payload(built.execution_data).await
}

/// The EL's (head, safe, finalized) hashes as its own RPC reports them.
async fn el_forkchoice(el: &HttpExecutionClient) -> (B256, B256, B256) {
    let hash = |tag| async move {
        el.block(BlockId::Number(tag), false)
            .await
            .unwrap()
            .map(|b| b.header.hash)
            .unwrap_or_default()
    };
    (
        hash(BlockNumberOrTag::Latest).await,
        hash(BlockNumberOrTag::Safe).await,
        hash(BlockNumberOrTag::Finalized).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ethereumjs_killed_and_restarted_mid_production_loses_no_committed_block() {
    let mut el = RealExecutionClient::start(RealClientKind::EthereumJs, &GenesisOptions::default())
        .await
        .unwrap_or_else(|e| panic!("EthereumJS is required for this test (run `just setup`): {e}"));
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig {
        state_path: Some(dir.path().join("forkchoice.json")),
        ..EngineConfig::default()
    };
    config.fork_schedule = ForkSchedule::shanghai();
    config.health.poll_interval_ms = 200;
    config.health.failure_threshold = 2;
    config.health.open_ms = 500;
    config.health.startup_timeout_ms = 30_000;
    let options = ClientOptions::new(el.engine_url(), el.jwt_secret())
        .with_eth_url(el.eth_url())
        .with_fork_schedule(config.fork_schedule);
    let system = EngineSystem::start_with_options(config, vec![options.clone()])
        .await
        .expect("engine starts");
    let engine = system.handle();

    let mut committed = Vec::new();
    for n in 1..=SLOTS_BEFORE_KILL {
        let hash = try_slot(&engine, n)
            .await
            .unwrap_or_else(|e| panic!("slot {n}: {e}\n{}", el.log_tail(30)));
        committed.push(hash);
    }
    engine.finalize(committed[2]).await.unwrap();
    let before_kill = engine.forkchoice().await.unwrap();
    println!(
        "produced {} blocks, finalized #3; killing EthereumJS (pid {})",
        committed.len(),
        el.pid()
    );

    tokio::task::block_in_place(|| el.kill());
    let mut faults: BTreeMap<&'static str, u32> = BTreeMap::new();
    let mut attempts = 0;
    while attempts < 5 || engine.status().await.unwrap().sessions[0].circuit != CircuitState::Open {
        attempts += 1;
        assert!(attempts <= 50, "the breaker never opened");
        let err = try_slot(&engine, 100).await.unwrap_err();
        assert!(
            matches!(err.kind(), "transport" | "unavailable" | "timeout"),
            "slot while EthereumJS is down: {err:?}"
        );
        *faults.entry(err.kind()).or_default() += 1;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        engine.forkchoice().await.unwrap(),
        before_kill,
        "nothing applied while the EL was down"
    );

    let restart_started = std::time::Instant::now();
    el.restart()
        .await
        .unwrap_or_else(|e| panic!("EthereumJS restarts on its data directory: {e}"));
    println!(
        "EthereumJS restarted (pid {}) in {:.1} s",
        el.pid(),
        restart_started.elapsed().as_secs_f64()
    );
    // Before the engine says anything to it: what did EthereumJS keep through the crash?
    let observer = HttpExecutionClient::connect(options.clone()).await.unwrap();
    for (i, hash) in committed.iter().enumerate() {
        let kept = observer
            .block(BlockId::Hash((*hash).into()), false)
            .await
            .unwrap();
        assert!(
            kept.is_some(),
            "committed block #{} {hash} survived the crash",
            i + 1
        );
    }
    let (head_after_restart, _, finalized_after_restart) = el_forkchoice(&observer).await;
    let number_of = |hash: B256| committed.iter().position(|h| *h == hash).map(|i| i + 1);
    println!(
        "after the restart EthereumJS reports head #{:?} and finalized #{:?} (engine: #{} and #3)",
        number_of(head_after_restart),
        number_of(finalized_after_restart),
        before_kill.head_number
    );

    // Production resumes once the breaker lets calls through again.
    let mut waited = 0;
    let first_after = loop {
        match try_slot(&engine, SLOTS_BEFORE_KILL + 1).await {
            Ok(hash) => break hash,
            Err(e) => {
                waited += 1;
                assert!(
                    waited <= 100,
                    "production did not resume: {e}\n{}",
                    el.log_tail(30)
                );
                *faults.entry(e.kind()).or_default() += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    committed.push(first_after);
    for n in SLOTS_BEFORE_KILL + 2..=SLOTS_BEFORE_KILL + SLOTS_AFTER_RESTART {
        let hash = try_slot(&engine, n)
            .await
            .unwrap_or_else(|e| panic!("slot {n} after the restart: {e}\n{}", el.log_tail(30)));
        committed.push(hash);
    }
    let finalized = committed[committed.len() - 2];
    engine.finalize(finalized).await.unwrap();

    // The EL's own view, through the independent client.
    for (i, hash) in committed.iter().enumerate() {
        let number = i as u64 + 1;
        let canonical = observer
            .block(BlockId::Number(BlockNumberOrTag::Number(number)), false)
            .await
            .unwrap()
            .map(|b| b.header.hash);
        assert_eq!(
            canonical,
            Some(*hash),
            "committed block #{number} is on the EL's canonical chain"
        );
    }
    let snap = engine.forkchoice().await.unwrap();
    assert_eq!(
        snap.head_number,
        committed.len() as u64,
        "no slot applied twice"
    );
    assert_eq!(
        el_forkchoice(&observer).await,
        (snap.head, snap.safe, snap.finalized),
        "engine and EL agree on head, safe and finalized"
    );
    assert_eq!(
        (snap.head, snap.finalized),
        (*committed.last().unwrap(), finalized)
    );
    let status = engine.status().await.unwrap();
    assert_eq!(status.sessions[0].circuit, CircuitState::Closed);
    assert_eq!(system.escalation(), None);
    println!(
        "EthereumJS kill/restart: {} faults survived {faults:?}; breaker state changes {}; {} blocks committed (#{} head, #{} finalized), none lost",
        faults.values().sum::<u32>(),
        status.sessions[0].circuit_transitions,
        committed.len(),
        snap.head_number,
        snap.finalized_number
    );
    system.shutdown().await;
}
