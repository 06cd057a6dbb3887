//! engine-clients alone against real execution clients: ten Alys slots with peg-ins, then the
//! balances and the chain head read back over `eth_`.
//!
//! EthereumJS is required (installed by `just setup`): these tests fail if it is missing.
//! Reth and Geth run when `RETH_BIN`/`GETH_BIN` or the binaries on PATH exist; with the variable
//! set a missing binary fails the test, without it the test prints `SKIPPED: …` and why (and
//! `just test` leaves it out and counts it as skipped).

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{GenesisOptions, RealClientKind, RealExecutionClient};
use engine_types::{
    AddBalance, ClientKind, ConsensusAmount, DEFAULT_FEE_RECIPIENT, ForkSchedule, require_valid,
    withdrawals_from_peg_ins,
};
use rstest::rstest;

const SLOTS: u64 = 10;

/// Peg-ins of slot `n`: one to an address of its own, one to an address shared by all slots.
fn peg_ins(n: u64) -> Vec<AddBalance> {
    vec![
        AddBalance(
            Address::with_last_byte(n as u8),
            ConsensusAmount::from_satoshi(1_000 * n).unwrap(),
        ),
        AddBalance(
            Address::repeat_byte(0xcc),
            ConsensusAmount::from_satoshi(25).unwrap(),
        ),
    ]
}

#[rstest]
#[case::ethereumjs_el_shanghai(RealClientKind::EthereumJs, ForkSchedule::shanghai())]
#[case::ethereumjs_el_cancun(RealClientKind::EthereumJs, ForkSchedule::cancun())]
#[case::ethereumjs_el_prague(RealClientKind::EthereumJs, ForkSchedule::prague())]
#[case::reth_el_shanghai(RealClientKind::Reth, ForkSchedule::shanghai())]
#[case::reth_el_cancun(RealClientKind::Reth, ForkSchedule::cancun())]
#[case::reth_el_prague(RealClientKind::Reth, ForkSchedule::prague())]
#[case::geth_el_shanghai(RealClientKind::Geth, ForkSchedule::shanghai())]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_slots_with_peg_ins_on_a_real_client(
    #[case] kind: RealClientKind,
    #[case] forks: ForkSchedule,
) {
    let genesis = GenesisOptions::default().with_forks(forks);
    let Some(el) = RealExecutionClient::start_or_skip(kind, &genesis)
        .await
        .unwrap_or_else(|e| panic!("starting {kind} failed: {e}"))
    else {
        return;
    };
    let forks = genesis.fork_schedule(el.genesis_timestamp());
    let options = ClientOptions::new(el.engine_url(), el.jwt_secret())
        .with_eth_url(el.eth_url())
        .with_fork_schedule(forks);
    let client = HttpExecutionClient::connect(options)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connect to {kind:?} failed: {e}\n--- log ---\n{}",
                el.log_tail(40)
            )
        });
    let expected_kind = match kind {
        RealClientKind::EthereumJs => ClientKind::EthereumJs,
        RealClientKind::Reth => ClientKind::Reth,
        RealClientKind::Geth => ClientKind::Geth,
    };
    assert_eq!(
        client.identity().kind,
        expected_kind,
        "{:?}",
        client.identity()
    );
    println!(
        "{kind:?}: connected to {} {} ({:?})",
        client.identity().name,
        client.identity().version,
        client.identity().source
    );

    let genesis = client
        .block(BlockId::Number(BlockNumberOrTag::Number(0)), false)
        .await
        .unwrap()
        .expect("genesis");
    let mut head = genesis.header.hash;
    let mut expected: BTreeMap<Address, U256> = BTreeMap::new();
    let mut withdrawal_index = 0;
    let root = forks
        .fork_at(el.genesis_timestamp())
        .has_blob_fields()
        .then_some(B256::ZERO);
    for n in 1..=SLOTS {
        let timestamp = el.genesis_timestamp() + 2 * n;
        let pegs = peg_ins(n);
        let withdrawals = withdrawals_from_peg_ins(&pegs, withdrawal_index);
        withdrawal_index += withdrawals.len() as u64;
        let attrs = PayloadAttributes {
            timestamp,
            prev_randao: B256::ZERO,
            suggested_fee_recipient: DEFAULT_FEE_RECIPIENT,
            withdrawals: Some(withdrawals),
            parent_beacon_block_root: root,
            ..Default::default()
        };
        let state = ForkchoiceState {
            head_block_hash: head,
            safe_block_hash: B256::ZERO,
            finalized_block_hash: B256::ZERO,
        };
        let updated = client
            .forkchoice_updated(state, Some(attrs))
            .await
            .expect("forkchoiceUpdated with attributes");
        let payload_id = updated.payload_id.expect("payload id");
        let built = client
            .get_payload(payload_id, timestamp, root)
            .await
            .expect("getPayload");
        assert_eq!(
            built.execution_data.payload.withdrawals().map(Vec::len),
            Some(pegs.len()),
            "built payload carries the peg-ins"
        );
        let status = client
            .new_payload(&built.execution_data)
            .await
            .expect("newPayload");
        require_valid(&status, built.block_hash()).expect("payload VALID");
        // Finalize halfway through, so the tags are exercised too.
        let finalized = if n > SLOTS / 2 {
            genesis.header.hash
        } else {
            B256::ZERO
        };
        let commit = ForkchoiceState {
            head_block_hash: built.block_hash(),
            safe_block_hash: finalized,
            finalized_block_hash: finalized,
        };
        let committed = client
            .forkchoice_updated(commit, None)
            .await
            .expect("forkchoiceUpdated to the new head");
        assert!(
            committed.payload_status.is_valid(),
            "{:?}",
            committed.payload_status
        );
        head = built.block_hash();
        for p in &pegs {
            *expected.entry(p.address()).or_default() += p.amount().to_wei();
        }
        println!(
            "slot {n:>2}: block #{} {head} with {} peg-ins",
            built.block_number(),
            pegs.len()
        );
    }

    let latest = client
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .expect("latest block");
    assert_eq!(latest.header.number, SLOTS);
    assert_eq!(latest.header.hash, head);
    let finalized = client
        .block(BlockId::Number(BlockNumberOrTag::Finalized), false)
        .await
        .unwrap()
        .expect("finalized block");
    assert_eq!(finalized.header.hash, genesis.header.hash);
    println!(
        "head: block #{} {}",
        latest.header.number, latest.header.hash
    );
    for (address, want) in &expected {
        let got = client.balance(*address, BlockId::latest()).await.unwrap();
        println!("balance {address}: {got} wei (expected {want})");
        assert_eq!(got, *want, "peg-ins to {address} were not all credited");
    }
}

/// The fork schedule against the client's `eth_config` (EIP-7910) at connect: a Cancun chain
/// configured as Shanghai-only, or with a Prague the client does not schedule, is refused and
/// the error names both sides; the matching schedule connects. EthereumJS has no `eth_config`:
/// there the check is skipped and every schedule connects (the version checks then catch it).
#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs, false)]
#[case::reth_el(RealClientKind::Reth, true)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fork_schedule_is_checked_against_eth_config(
    #[case] kind: RealClientKind,
    #[case] has_eth_config: bool,
) {
    let genesis = GenesisOptions::default().with_forks(ForkSchedule::cancun());
    let Some(el) = RealExecutionClient::start_or_skip(kind, &genesis)
        .await
        .unwrap()
    else {
        return;
    };
    let right = genesis.fork_schedule(el.genesis_timestamp());
    let connect = |forks: ForkSchedule| {
        HttpExecutionClient::connect(
            ClientOptions::new(el.engine_url(), el.jwt_secret())
                .with_eth_url(el.eth_url())
                .with_fork_schedule(forks),
        )
    };
    connect(right)
        .await
        .expect("the client's own schedule connects");
    let shanghai_only = ForkSchedule::shanghai();
    let prague_later = ForkSchedule {
        prague_time: Some(right.shanghai_time + 10_000_000_000),
        ..right
    };
    for (wrong, field) in [(shanghai_only, "current fork"), (prague_later, "next fork")] {
        let result = connect(wrong).await;
        if !has_eth_config {
            assert!(result.is_ok(), "{kind}: no eth_config, nothing to check");
            continue;
        }
        let err = result.expect_err("a schedule the client does not run is refused");
        let text = err.to_string();
        println!("{kind}: {text}");
        assert!(
            text.contains(field) && text.contains("fork_schedule"),
            "{text}"
        );
    }
}
