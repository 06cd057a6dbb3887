//! The actor tree against real execution clients, EthereumJS and Reth, one test body per
//! client: 50 Alys slots (build with peg-ins → commit → block with transactions → receipts →
//! finalize every 10th) with the EngineActor crashed and restarted halfway, and a bridge
//! `requestPegOut` call surfacing as exactly one `PegOutRequested` event; twenty prepared slots;
//! every fork schedule (Shanghai, Cancun, Prague, and all three in one chain) with each call on
//! the wire checked against the execution-apis schemas.
//!
//! EthereumJS is required (`just setup` installs it). Reth runs when `RETH_BIN` is set (then it
//! is required) or `reth` is on PATH; otherwise its cases print `SKIPPED: …`.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::{BTreeMap, BTreeSet},
    time::Duration,
};

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, Bytes, U256};
use engine_actor::{BlockRef, ChildKind, Engine, EngineEvent};
use engine_clients::ExecutionClient;
use engine_testkit::{
    BRIDGE_ADDRESS, DEV_PRIVATE_KEY, GenesisOptions, RealClientKind, RealEngine,
    bridge_runtime_code, check_engine_calls, peg_in, signed_peg_out, wait_for,
};
use engine_types::{AddBalance, BuildPayloadRequest, ConsensusAmount, Fork, ForkSchedule};
use rstest::rstest;

const WAIT: Duration = Duration::from_secs(10);

const SLOTS: u64 = 50;
const CRASH_AT: u64 = 25;
const PEG_OUT_AT: u64 = 7;

/// The engine on `kind`, or `None` when the test is skipped (it says why).
async fn start(
    kind: RealClientKind,
    genesis: &GenesisOptions,
    tweak: impl FnOnce(&mut engine_types::EngineConfig),
) -> Option<RealEngine> {
    RealEngine::start_or_skip(kind, genesis, tweak)
        .await
        .unwrap_or_else(|e| panic!("{kind} and the engine start: {e:#}"))
}

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_alys_slots_with_a_restart_and_a_peg_out(#[case] kind: RealClientKind) {
    let genesis = GenesisOptions::default().with_contract(BRIDGE_ADDRESS, bridge_runtime_code());
    let Some(RealEngine {
        el,
        system,
        engine,
        observer,
        wire: _wire,
        dir: _dir,
        ..
    }) = start(kind, &genesis, |config| {
        config.supervision.backoff_initial_ms = 20;
    })
    .await
    else {
        return;
    };
    let legacy = Engine::new(engine.clone());
    let mut events = engine.subscribe();

    let bitcoin_address = Bytes::from_static(b"bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq");
    let peg_out_value = U256::from(2_000_000u64) * U256::from(10_000_000_000u64); // 2,000,000 sat
    let mut peg_out_tx = None;
    let mut expected: BTreeMap<Address, U256> = BTreeMap::new();
    let mut transactions_seen = 0;
    let started = std::time::Instant::now();
    for slot in 1..=SLOTS {
        if slot == CRASH_AT {
            system.crash_child(ChildKind::Engine);
            wait_for("the restart", WAIT, || async {
                system.restarts().await.get(&ChildKind::Engine).copied()
            })
            .await
            .unwrap();
            let status = wait_for("the restarted engine", WAIT, || async {
                engine.status().await.ok().filter(|s| s.initialized)
            })
            .await
            .unwrap();
            println!(
                "slot {slot:>2}: EngineActor crashed and restarted; reloaded head #{} {}",
                status.forkchoice.head_number, status.forkchoice.head
            );
        }
        if slot == PEG_OUT_AT {
            let (raw, tx) =
                signed_peg_out(DEV_PRIVATE_KEY, 263_634, 0, &bitcoin_address, peg_out_value)
                    .unwrap();
            assert_eq!(engine.send_raw_transaction(raw).await.unwrap(), tx);
            peg_out_tx = Some(tx);
        }
        let peg_ins = vec![
            AddBalance(
                Address::with_last_byte(slot as u8),
                ConsensusAmount::from_satoshi(1_000 * slot).unwrap(),
            ),
            AddBalance(
                Address::repeat_byte(0xee),
                ConsensusAmount::from_satoshi(7).unwrap(),
            ),
        ];
        let head = engine.forkchoice().await.unwrap();
        let built = engine
            .build_payload(
                BuildPayloadRequest::new(head.head_timestamp + 2).with_peg_ins(peg_ins.clone()),
            )
            .await
            .unwrap_or_else(|e| panic!("slot {slot}: build failed: {e}\n{}", el.log_tail(30)));
        let hash = engine
            .commit_payload(built.execution_data)
            .await
            .unwrap_or_else(|e| panic!("slot {slot}: commit failed: {e}"));
        for p in &peg_ins {
            *expected.entry(p.address()).or_default() += p.amount().to_wei();
        }
        let block = legacy
            .get_block_with_txs(&hash)
            .await
            .unwrap()
            .expect("committed block");
        let receipts = engine.get_receipts(hash).await.unwrap();
        assert_eq!(
            receipts.len(),
            block.transactions.len(),
            "one receipt per transaction"
        );
        transactions_seen += block.transactions.len();
        if slot % 10 == 0 {
            engine.finalize(hash).await.unwrap();
        }
        println!(
            "slot {slot:>2}: block #{} {hash} txs {} peg-ins {}",
            block.header.number,
            block.transactions.len(),
            peg_ins.len()
        );
    }
    let elapsed = started.elapsed();

    // Every peg-in credited at the EL.
    for (address, want) in &expected {
        let got = observer.balance(*address, BlockId::latest()).await.unwrap();
        assert_eq!(got, *want, "peg-ins to {address}");
    }
    // The EL's finalized block is ours, and so is its head.
    let ours = engine.forkchoice().await.unwrap();
    let el_finalized = observer
        .block(BlockId::Number(BlockNumberOrTag::Finalized), false)
        .await
        .unwrap()
        .unwrap();
    let el_head = observer
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(el_finalized.header.hash, ours.finalized);
    assert_eq!(el_finalized.header.number, SLOTS);
    assert_eq!(el_head.header.hash, ours.head);
    let cached_finalized = engine
        .get_block(BlockRef::Finalized, false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cached_finalized.header.hash, ours.finalized);

    // The peg-out: exactly one event, with the amount and bitcoin address bytes.
    let tx = peg_out_tx.expect("peg-out sent");
    let mut peg_outs = Vec::new();
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(500), events.recv()).await {
        match event {
            Ok(EngineEvent::PegOutRequested(p)) => peg_outs.push(p),
            Ok(other) => panic!("unexpected event {other:?}"),
            Err(e) => panic!("event stream: {e}"),
        }
    }
    assert_eq!(peg_outs.len(), 1, "{peg_outs:?}");
    let p = &peg_outs[0];
    assert_eq!(p.tx_hash, tx);
    assert_eq!(p.value_wei, peg_out_value);
    assert_eq!(p.bitcoin_address, bitcoin_address);
    assert_eq!(p.evm_address, engine_testkit::DEV_ACCOUNT);

    let status = engine.status().await.unwrap();
    let restarts = system.restarts().await;
    println!(
        "{SLOTS} slots in {:.1} s ({:.0} ms/slot incl. reads), {transactions_seen} transactions, finalized #{} {}, restarts {:?}",
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / SLOTS as f64,
        el_finalized.header.number,
        ours.finalized,
        restarts
    );
    println!(
        "peg-out: tx {} block #{} {} sat to {:?}",
        p.tx_hash,
        p.block_number,
        p.value_wei / U256::from(10_000_000_000u64),
        String::from_utf8_lossy(&p.bitcoin_address)
    );
    println!(
        "caches: blocks {} hits / {} misses, receipts {} hits / {} joined the post-commit fetch / {} misses, payloads {} entries",
        status.caches.blocks.hits,
        status.caches.blocks.misses,
        status.caches.receipts.hits,
        status.caches.receipts_joined_in_flight,
        status.caches.receipts.misses,
        status.caches.payloads.len
    );
    assert_eq!(restarts.get(&ChildKind::Engine), Some(&1));
    system.shutdown().await;
}

/// Twenty slots where the next slot is prepared right after each commit, as Alys would with
/// the peg-ins it already knows: every build is getPayload only, every block commits, every
/// peg-in is credited.
#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_prepared_slots(#[case] kind: RealClientKind) {
    const PREPARED_SLOTS: u64 = 20;
    let Some(RealEngine {
        el: _el,
        system,
        engine,
        observer,
        wire: _wire,
        dir: _dir,
        ..
    }) = start(kind, &GenesisOptions::default(), |_| {}).await
    else {
        return;
    };
    let request_for = |timestamp: u64, slot: u64| {
        BuildPayloadRequest::new(timestamp).with_peg_ins(vec![AddBalance(
            Address::with_last_byte(0x80 + slot as u8),
            ConsensusAmount::from_satoshi(10 * slot).unwrap(),
        )])
    };
    let mut expected = U256::ZERO;
    let mut timestamp = engine.forkchoice().await.unwrap().head_timestamp + 2;
    engine
        .prepare_payload(request_for(timestamp, 1))
        .await
        .unwrap();
    for slot in 1..=PREPARED_SLOTS {
        let built = engine
            .build_payload(request_for(timestamp, slot))
            .await
            .unwrap();
        engine.commit_payload(built.execution_data).await.unwrap();
        expected = ConsensusAmount::from_satoshi(10 * slot).unwrap().to_wei();
        let got = observer
            .balance(
                Address::with_last_byte(0x80 + slot as u8),
                BlockId::latest(),
            )
            .await
            .unwrap();
        assert_eq!(got, expected, "slot {slot} peg-in");
        timestamp += 2;
        if slot < PREPARED_SLOTS {
            engine
                .prepare_payload(request_for(timestamp, slot + 1))
                .await
                .unwrap();
        }
    }
    let head = observer
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.header.number, PREPARED_SLOTS);
    let stats = engine.status().await.unwrap().preparation;
    println!(
        "{PREPARED_SLOTS} prepared slots: made {}, used {}, wasted {}, unknown to EL {}; build at slot time {:.1} ms mean (max {:.1} ms); last peg-in {expected} wei",
        stats.made,
        stats.used,
        stats.wasted,
        stats.unknown_to_el,
        stats.prepared_builds.mean_ms(),
        stats.prepared_builds.max_ms
    );
    assert_eq!(
        (stats.made, stats.used, stats.wasted, stats.unknown_to_el),
        (PREPARED_SLOTS, PREPARED_SLOTS, 0, 0)
    );
    system.shutdown().await;
}

/// Shanghai from genesis, Cancun at the third slot's timestamp, Prague at the sixth: every
/// method-version switch in one chain.
const ALL_THREE: ForkSchedule = ForkSchedule {
    shanghai_time: 0,
    cancun_time: Some(6),
    prague_time: Some(12),
};

/// Ten slots with peg-ins through the whole tree on each fork schedule: every block commits and
/// credits its peg-ins, each call uses the method version its timestamp's fork needs (V2, V3,
/// then getPayloadV4/newPayloadV4 with execution requests), and every request and answer on the
/// wire conforms to the execution-apis schemas.
#[rstest]
#[case::ethereumjs_el_shanghai(RealClientKind::EthereumJs, ForkSchedule::shanghai())]
#[case::ethereumjs_el_cancun(RealClientKind::EthereumJs, ForkSchedule::cancun())]
#[case::ethereumjs_el_prague(RealClientKind::EthereumJs, ForkSchedule::prague())]
#[case::ethereumjs_el_all_three(RealClientKind::EthereumJs, ALL_THREE)]
#[case::reth_el_shanghai(RealClientKind::Reth, ForkSchedule::shanghai())]
#[case::reth_el_cancun(RealClientKind::Reth, ForkSchedule::cancun())]
#[case::reth_el_prague(RealClientKind::Reth, ForkSchedule::prague())]
#[case::reth_el_all_three(RealClientKind::Reth, ALL_THREE)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_slots_on_every_fork_schedule(
    #[case] kind: RealClientKind,
    #[case] forks: ForkSchedule,
) {
    const FORK_SLOTS: u64 = 10;
    let genesis = GenesisOptions::default().with_forks(forks);
    let Some(real) = start(kind, &genesis, |_| {}).await else {
        return;
    };
    let schedule = real.options.fork_schedule;
    let mut forks_seen = BTreeSet::new();
    for slot in 1..=FORK_SLOTS {
        let head = real.engine.forkchoice().await.unwrap();
        let timestamp = head.head_timestamp + 2;
        let fork = schedule.fork_at(timestamp);
        let peg_in = peg_in(0x60 + slot as u8, 100 * slot);
        let built = real
            .engine
            .build_payload(BuildPayloadRequest::new(timestamp).with_peg_ins(vec![peg_in]))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "slot {slot} ({fork:?}): build: {e}\n{}",
                    real.el.log_tail(20)
                )
            });
        let data = &built.execution_data;
        assert_eq!(
            data.sidecar.parent_beacon_block_root().is_some(),
            fork.has_blob_fields(),
            "slot {slot} ({fork:?})"
        );
        assert_eq!(
            data.sidecar.requests().is_some(),
            fork == Fork::Prague,
            "slot {slot} ({fork:?}): execution requests only from Prague"
        );
        real.engine
            .commit_payload(built.execution_data)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "slot {slot} ({fork:?}): commit: {e}\n{}",
                    real.el.log_tail(20)
                )
            });
        let credited = real
            .observer
            .balance(peg_in.address(), BlockId::latest())
            .await
            .unwrap();
        assert_eq!(credited, peg_in.amount().to_wei(), "slot {slot} ({fork:?})");
        forks_seen.insert(fork);
    }
    let head = real
        .observer
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(head.header.number, FORK_SLOTS);
    assert_eq!(
        head.header.hash,
        real.engine.forkchoice().await.unwrap().head
    );

    let exchanges = real.wire.exchanges();
    let report = check_engine_calls(&exchanges, &schedule).unwrap_or_else(|violations| {
        panic!(
            "{} calls off the spec:\n{}",
            violations.len(),
            violations.join("\n")
        )
    });
    println!("{kind} {forks:?}: forks {forks_seen:?}; wire: {report}");
    let expected_forks: BTreeSet<Fork> = (1..=FORK_SLOTS)
        .map(|slot| schedule.fork_at(real.el.genesis_timestamp() + 2 * slot))
        .collect();
    assert_eq!(forks_seen, expected_forks);
    real.system.shutdown().await;
}
