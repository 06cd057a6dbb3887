//! Reorgs through the actor tree on real execution clients (EthereumJS and Reth, one test body
//! per client). The competing blocks come from a second client of the same kind on the same
//! genesis, as they would from another Alys producer: the engine's client only ever builds on
//! its own head.
//!
//! Steps: five blocks of the main chain; a sibling of the head; a competing branch three blocks
//! deep (two validated, the tip committed); back to the main chain; a revert to an ancestor.
//! After every step the engine's head, its cached reads (by number and `latest`), the EL's
//! canonical chain and the peg-in balances all agree with the chain the step chose.
//!
//! EthereumJS is required (`just setup` installs it). Reth runs when `RETH_BIN` is set (then it
//! is required) or `reth` is on PATH; otherwise its case prints `SKIPPED: …`.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256, U256};
use alloy_rpc_types_engine::{ExecutionData, ForkchoiceState};
use engine_actor::BlockRef;
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{
    GenesisOptions, RealClientKind, RealEngine, RealExecutionClient, client_slot, peg_in,
};
use engine_types::{AddBalance, BuildPayloadRequest};
use rstest::rstest;

/// A block and the peg-ins it credits.
#[derive(Clone)]
struct Block {
    data: ExecutionData,
    peg_ins: Vec<AddBalance>,
}

impl Block {
    fn hash(&self) -> B256 {
        self.data.payload.block_hash()
    }
}

/// What the engine, its caches and the EL must all show after a step: `chain[n]` is block n.
async fn assert_agree(step: &str, real: &RealEngine, chain: &[&Block], watched: &[Address]) {
    let head = chain.last().expect("a chain");
    let number = chain.len() as u64;
    let ours = real.engine.forkchoice().await.unwrap();
    assert_eq!(
        (ours.head, ours.head_number),
        (head.hash(), number),
        "{step}: engine head"
    );
    let latest = real
        .engine
        .get_block(BlockRef::Latest, false)
        .await
        .unwrap()
        .expect("latest");
    assert_eq!(latest.header.hash, head.hash(), "{step}: cached latest");
    let el_latest = real
        .observer
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .expect("EL latest");
    assert_eq!(el_latest.header.hash, head.hash(), "{step}: EL head");
    for (i, block) in chain.iter().enumerate() {
        let n = i as u64 + 1;
        let cached = real
            .engine
            .get_block(BlockRef::Number(n), false)
            .await
            .unwrap()
            .map(|b| b.header.hash);
        let canonical = real
            .observer
            .block(BlockId::Number(BlockNumberOrTag::Number(n)), false)
            .await
            .unwrap()
            .map(|b| b.header.hash);
        assert_eq!(cached, Some(block.hash()), "{step}: engine's block #{n}");
        assert_eq!(canonical, Some(block.hash()), "{step}: EL's block #{n}");
    }
    let above = real
        .observer
        .block(BlockId::Number(BlockNumberOrTag::Number(number + 1)), false)
        .await
        .unwrap();
    assert!(above.is_none(), "{step}: nothing canonical above the head");
    let mut expected: BTreeMap<Address, U256> = watched.iter().map(|a| (*a, U256::ZERO)).collect();
    for block in chain {
        for p in &block.peg_ins {
            *expected.entry(p.address()).or_default() += p.amount().to_wei();
        }
    }
    for (address, want) in &expected {
        let got = real
            .observer
            .balance(*address, BlockId::latest())
            .await
            .unwrap();
        assert_eq!(got, *want, "{step}: balance of {address}");
    }
    println!(
        "{step}: head #{number} {} — engine, caches, EL and balances agree",
        head.hash()
    );
}

/// One block built by `producer` on `parent` (and made its head there).
async fn produce(
    producer: &HttpExecutionClient,
    parent: &Block,
    peg_in: AddBalance,
    withdrawal_index: u64,
) -> Block {
    let timestamp = parent.data.payload.timestamp() + 3;
    let data = client_slot(
        producer,
        parent.hash(),
        timestamp,
        &[peg_in],
        withdrawal_index,
    )
    .await
    .unwrap_or_else(|e| panic!("the second producer builds on {}: {e}", parent.hash()));
    Block {
        data,
        peg_ins: vec![peg_in],
    }
}

/// Hands `block` to `producer` (newPayload, then forkchoiceUpdated to it).
async fn import(producer: &HttpExecutionClient, block: &Block) {
    let status = producer.new_payload(&block.data).await.unwrap();
    assert!(status.is_valid(), "{status:?}");
    let head = ForkchoiceState {
        head_block_hash: block.hash(),
        safe_block_hash: B256::ZERO,
        finalized_block_hash: B256::ZERO,
    };
    let updated = producer.forkchoice_updated(head, None).await.unwrap();
    assert!(updated.payload_status.is_valid(), "{updated:?}");
}

/// How a client takes the revert of step 4.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revert {
    /// It moves its head back.
    Moves,
    /// It answers VALID and keeps its head (Reth by default): the engine reports that and
    /// changes nothing.
    Refused,
}

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs, &[], Revert::Moves)]
#[case::reth_el(RealClientKind::Reth, &[], Revert::Refused)]
#[case::reth_el_allowed_to_unwind(
    RealClientKind::Reth,
    &[
        "--engine.allow-unwind-canonical-header",
        "--engine.always-process-payload-attributes-on-canonical-head"
    ],
    Revert::Moves
)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sibling_branch_back_and_revert_keep_engine_caches_and_el_in_agreement(
    #[case] kind: RealClientKind,
    #[case] client_args: &[&str],
    #[case] revert: Revert,
) {
    let genesis = GenesisOptions::default();
    let Some(real) = RealEngine::start_or_skip_with_args(kind, &genesis, client_args, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{kind} and the engine start: {e:#}"))
    else {
        return;
    };
    // The second producer: the same client on the same genesis block.
    let second = RealExecutionClient::start(
        kind,
        &genesis.clone().with_timestamp(real.el.genesis_timestamp()),
    )
    .await
    .unwrap_or_else(|e| panic!("a second {kind} starts: {e}"));
    let producer = HttpExecutionClient::connect(
        ClientOptions::new(second.engine_url(), second.jwt_secret())
            .with_eth_url(second.eth_url())
            .with_fork_schedule(real.options.fork_schedule),
    )
    .await
    .unwrap();
    let genesis_block = real
        .observer
        .block(BlockId::Number(BlockNumberOrTag::Number(0)), false)
        .await
        .unwrap()
        .unwrap();
    let second_genesis = producer
        .block(BlockId::Number(BlockNumberOrTag::Number(0)), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(second_genesis.header.hash, genesis_block.header.hash);

    // Main chain: five blocks through the engine, each peg-in to an address of its own.
    let mut main: Vec<Block> = Vec::new();
    for n in 1..=5u8 {
        let head = real.engine.forkchoice().await.unwrap();
        let peg_ins = vec![peg_in(0x10 + n, 1_000 * u64::from(n))];
        let built = real
            .engine
            .build_payload(
                BuildPayloadRequest::new(head.head_timestamp + 2).with_peg_ins(peg_ins.clone()),
            )
            .await
            .unwrap();
        real.engine
            .commit_payload(built.execution_data.clone())
            .await
            .unwrap();
        main.push(Block {
            data: built.execution_data,
            peg_ins,
        });
    }
    let sibling_address = Address::repeat_byte(0x5b);
    let branch_addresses = [0x3bu8, 0x4b, 0x5c].map(Address::repeat_byte);
    let mut watched: Vec<Address> = main.iter().map(|b| b.peg_ins[0].address()).collect();
    watched.push(sibling_address);
    watched.extend(branch_addresses);
    assert_agree(
        "main chain",
        &real,
        &main.iter().collect::<Vec<_>>(),
        &watched,
    )
    .await;

    // The second producer: the competing branch from #2 first, then the sibling of #5.
    import(&producer, &main[0]).await;
    import(&producer, &main[1]).await;
    let b3 = produce(&producer, &main[1], peg_in(0x3b, 7), 100).await;
    let b4 = produce(&producer, &b3, peg_in(0x4b, 8), 101).await;
    let b5 = produce(&producer, &b4, peg_in(0x5c, 9), 102).await;
    import(&producer, &main[2]).await;
    import(&producer, &main[3]).await;
    let sibling = produce(&producer, &main[3], peg_in(0x5b, 5), 200).await;

    // 1. The sibling of the head replaces it.
    let hash = real
        .engine
        .commit_payload(sibling.data.clone())
        .await
        .unwrap_or_else(|e| panic!("committing the sibling: {e}\n{}", real.el.log_tail(20)));
    assert_eq!(hash, sibling.hash());
    assert_agree(
        "sibling of the head",
        &real,
        &[&main[0], &main[1], &main[2], &main[3], &sibling],
        &watched,
    )
    .await;

    // 2. A branch three blocks deep: two validated, the tip committed.
    real.engine.validate_payload(b3.data.clone()).await.unwrap();
    real.engine.validate_payload(b4.data.clone()).await.unwrap();
    real.engine
        .commit_payload(b5.data.clone())
        .await
        .unwrap_or_else(|e| panic!("committing the branch tip: {e}\n{}", real.el.log_tail(20)));
    assert_agree(
        "competing branch, three deep",
        &real,
        &[&main[0], &main[1], &b3, &b4, &b5],
        &watched,
    )
    .await;

    // 3. Back to the main chain.
    real.engine
        .commit_payload(main[4].data.clone())
        .await
        .unwrap_or_else(|e| panic!("back to the main chain: {e}\n{}", real.el.log_tail(20)));
    assert_agree(
        "back to the main chain",
        &real,
        &main.iter().collect::<Vec<_>>(),
        &watched,
    )
    .await;

    // 4. A revert to #3 of the main chain.
    let reverted = real.engine.revert_to(main[2].hash()).await;
    let kept: Vec<&Block> = match revert {
        Revert::Moves => {
            reverted.unwrap_or_else(|e| panic!("reverting to #3: {e}\n{}", real.el.log_tail(20)));
            vec![&main[0], &main[1], &main[2]]
        }
        Revert::Refused => {
            let err = reverted.expect_err("the client keeps its head");
            assert_eq!(err.kind(), "head_not_moved", "{err}");
            assert!(
                err.to_string()
                    .contains("--engine.allow-unwind-canonical-header"),
                "{err}"
            );
            println!("revert refused by {kind}: {err}");
            main.iter().collect()
        }
    };
    assert_agree(
        &format!("revert to #3 ({revert:?})"),
        &real,
        &kept,
        &watched,
    )
    .await;

    // The engine keeps producing on its head.
    let head = real.engine.forkchoice().await.unwrap();
    let built = real
        .engine
        .build_payload(BuildPayloadRequest::new(head.head_timestamp + 5))
        .await
        .unwrap();
    real.engine
        .commit_payload(built.execution_data)
        .await
        .unwrap();
    assert_eq!(
        real.engine.forkchoice().await.unwrap().head_number,
        kept.len() as u64 + 1
    );
    drop(second);
    real.system.shutdown().await;
}
