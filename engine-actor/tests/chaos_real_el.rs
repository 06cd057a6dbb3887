//! Chaos against real execution clients (EthereumJS and Reth, one test body per client): the
//! client is killed (SIGKILL to its process group) in the middle of block production and
//! started again on the same data directory and ports. EthereumJS keeps every block; Reth keeps
//! only what it had persisted (its recent blocks live in memory) and the engine replays the
//! rest. No block the engine reported committed may be lost, production resumes within a few
//! slots, and afterwards the engine and the EL agree on head, safe and finalized.
//!
//! EthereumJS is required (`just setup` installs it). Reth runs when `RETH_BIN` is set (then it
//! is required) or `reth` is on PATH; otherwise its case prints `SKIPPED: …`.

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
use rstest::rstest;

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

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_and_restarted_mid_production_loses_no_committed_block(
    #[case] kind: RealClientKind,
) {
    let Some(mut el) = RealExecutionClient::start_or_skip(kind, &GenesisOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{kind} starts: {e}"))
    else {
        return;
    };
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
        "produced {} blocks, finalized #3; killing {kind} (pid {})",
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
            "slot while {kind} is down: {err:?}"
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
        .unwrap_or_else(|e| panic!("{kind} restarts on its data directory: {e}"));
    let restarted_in = restart_started.elapsed();
    println!(
        "{kind} restarted (pid {}) in {:.1} s",
        el.pid(),
        restarted_in.as_secs_f64()
    );
    // Before the engine says anything to it: what did the client keep through the crash?
    let observer = HttpExecutionClient::connect(options.clone()).await.unwrap();
    let mut kept = 0;
    for hash in &committed {
        if observer
            .block(BlockId::Hash((*hash).into()), false)
            .await
            .unwrap()
            .is_some()
        {
            kept += 1;
        }
    }
    if kind == RealClientKind::EthereumJs {
        assert_eq!(
            kept,
            committed.len(),
            "EthereumJS keeps every block through SIGKILL"
        );
    }
    let (head_after_restart, _, finalized_after_restart) = el_forkchoice(&observer).await;
    let number_of = |hash: B256| committed.iter().position(|h| *h == hash).map(|i| i + 1);
    println!(
        "after the restart {kind} has {kept} of the {} committed blocks, head #{:?}, finalized #{:?} (engine: #{} and #3)",
        committed.len(),
        number_of(head_after_restart),
        number_of(finalized_after_restart),
        before_kill.head_number
    );

    // Production resumes once the breaker lets calls through again (the engine replays what
    // the client lost).
    let resume_started = std::time::Instant::now();
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
    let resumed_after = resume_started.elapsed();
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
        "{kind} kill/restart: {} faults survived {faults:?}; {waited} slots failed after the restart, production resumed {:.1} s after the client answered again; {} blocks replayed; breaker state changes {}; {} blocks committed (#{} head, #{} finalized), none lost",
        faults.values().sum::<u32>(),
        resumed_after.as_secs_f64(),
        status.writer.blocks_replayed,
        status.sessions[0].circuit_transitions,
        committed.len(),
        snap.head_number,
        snap.finalized_number
    );
    system.shutdown().await;
}

/// The client's head hash, if it answers.
async fn latest(client: &HttpExecutionClient) -> Option<B256> {
    client
        .block(BlockId::latest(), false)
        .await
        .ok()
        .flatten()
        .map(|b| b.header.hash)
}

/// Two clients of one kind on one genesis, the secondary killed for twenty slots while the
/// primary produces: once it is back, the engine's commits bring it to the primary's head (the
/// blocks it missed are replayed), with the same balances.
#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secondary_down_for_twenty_slots_reaches_the_primarys_head(#[case] kind: RealClientKind) {
    const DOWN_SLOTS: usize = 20;
    let Some(primary) = RealExecutionClient::start_or_skip(kind, &GenesisOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{kind} starts: {e}"))
    else {
        return;
    };
    let genesis = GenesisOptions::default().with_timestamp(primary.genesis_timestamp());
    let mut secondary = RealExecutionClient::start(kind, &genesis)
        .await
        .unwrap_or_else(|e| panic!("a second {kind} starts: {e}"));
    let dir = tempfile::tempdir().unwrap();
    let mut config = EngineConfig {
        state_path: Some(dir.path().join("forkchoice.json")),
        ..EngineConfig::default()
    };
    config.health.poll_interval_ms = 200;
    config.health.failure_threshold = 2;
    config.health.open_ms = 500;
    config.health.startup_timeout_ms = 30_000;
    let options = |el: &RealExecutionClient| {
        ClientOptions::new(el.engine_url(), el.jwt_secret())
            .with_eth_url(el.eth_url())
            .with_engine_config(&config)
    };
    let system = EngineSystem::start_with_options(
        config.clone(),
        vec![options(&primary), options(&secondary)],
    )
    .await
    .expect("engine starts");
    let engine = system.handle();
    for n in 1..=2 {
        try_slot(&engine, n).await.unwrap();
    }
    tokio::task::block_in_place(|| secondary.kill());
    for n in 3..=2 + DOWN_SLOTS {
        try_slot(&engine, n)
            .await
            .unwrap_or_else(|e| panic!("slot {n} with the secondary down: {e}"));
    }
    secondary
        .restart()
        .await
        .unwrap_or_else(|e| panic!("{kind} restarts: {e}"));
    let back = std::time::Instant::now();
    let secondary_client = HttpExecutionClient::connect(options(&secondary))
        .await
        .unwrap();
    let primary_client = HttpExecutionClient::connect(options(&primary))
        .await
        .unwrap();
    let mut n = 3 + DOWN_SLOTS;
    let mut slots_to_catch_up = 0;
    loop {
        assert!(
            back.elapsed() < Duration::from_secs(60),
            "the secondary did not catch up within 60 s"
        );
        if try_slot(&engine, n).await.is_ok() {
            n += 1;
        }
        slots_to_catch_up += 1;
        if latest(&secondary_client).await == latest(&primary_client).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let took = back.elapsed();
    for i in 1..n {
        let address = Address::with_last_byte(i as u8);
        assert_eq!(
            secondary_client
                .balance(address, BlockId::latest())
                .await
                .unwrap(),
            primary_client
                .balance(address, BlockId::latest())
                .await
                .unwrap(),
            "balance of {address}"
        );
    }
    let status = engine.status().await.unwrap();
    println!(
        "{kind}: the secondary, down for {DOWN_SLOTS} slots, reached the primary's head {:.1} s after it answered again ({slots_to_catch_up} slots; {} blocks replayed)",
        took.as_secs_f64(),
        status.writer.blocks_replayed
    );
    system.shutdown().await;
}
