//! The compiled `Bridge.sol` on real execution clients (EthereumJS and Reth, one test body per
//! client), against the mock's emulation of it: the same signed transactions go to both, and
//! the mock must produce the same `RequestPegOut` log (topics, data, bloom) and revert exactly
//! where the contract reverts. The two peg-out rules (legacy, bridge-emitted) pinned on a
//! peg-out through a forwarding contract and a contract creation that emits the event.
//!
//! EthereumJS is required (`just setup` installs it). Reth runs when `RETH_BIN` is set (then it
//! is required) or `reth` is on PATH; otherwise its cases print `SKIPPED: …`.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, Bytes, TxKind, U256, address};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use alloy_rpc_types_eth::{Filter, TransactionReceipt};
use alloy_sol_types::SolEvent;
use engine_actor::{PegOutRule, PegOutRules, peg_outs_by_rule};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{
    BRIDGE_ADDRESS, ClientProfile, DEV_ACCOUNT, DEV_PRIVATE_KEY, GenesisOptions, MockConfig,
    MockExecutionLayer, PEG_OUT_GAS_LIMIT, RealClientKind, RealExecutionClient, RequestPegOut,
    bridge_runtime_code, forwarder_runtime_code, peg_out_event_init_code, request_peg_out_calldata,
    signed_eip1559, signed_peg_out,
};
use engine_types::{ForkSchedule, require_valid};
use rstest::rstest;

const CHAIN_ID: u64 = GenesisOptions::DEFAULT_CHAIN_ID;
/// Where `Bridge.sol` sends the value it burns.
const BURN_ADDRESS: Address = address!("000000000000000000000000000000000000dEaD");
/// A 34-character base58 P2PKH address, as a user would pass it.
const BTC_ADDRESS: &[u8] = b"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2";
/// 0.02 BTC: 2 000 000 sat at 1e10 wei per sat.
const PEG_OUT_WEI: u64 = 2_000_000 * 10_000_000_000;
const MAX_SLOTS: usize = 5;
/// Not [`engine_types::DEFAULT_FEE_RECIPIENT`]: that is 0x…dEaD too, and the priority fees
/// would then mix with the burnt value.
const FEE_RECIPIENT: Address = Address::repeat_byte(0xfe);

/// `kind` with the bridge deployed, and a client of it; `None` when the test is skipped.
async fn start_real(kind: RealClientKind) -> Option<(RealExecutionClient, HttpExecutionClient)> {
    let genesis = GenesisOptions::default().with_contract(BRIDGE_ADDRESS, bridge_runtime_code());
    let el = RealExecutionClient::start_or_skip(kind, &genesis)
        .await
        .unwrap_or_else(|err| panic!("{kind} starts: {err}"))?;
    let options = ClientOptions::new(el.engine_url(), el.jwt_secret())
        .with_eth_url(el.eth_url())
        .with_fork_schedule(ForkSchedule::shanghai());
    let client = HttpExecutionClient::connect(options)
        .await
        .unwrap_or_else(|e| panic!("connect failed: {e}\n{}", el.log_tail(40)));
    Some((el, client))
}

async fn start_mock() -> (MockExecutionLayer, HttpExecutionClient) {
    // Same chain id as the genesis above, so the very same signed bytes are valid on both.
    let mut config = MockConfig::default().with_profile(ClientProfile::nethermind());
    config.chain_id = CHAIN_ID;
    let mock = MockExecutionLayer::start(config).await.unwrap();
    let options = ClientOptions::new(mock.url(), mock.jwt_secret())
        .with_fork_schedule(mock.config().fork_schedule);
    let client = HttpExecutionClient::connect(options).await.unwrap();
    (mock, client)
}

/// One Alys slot on the current head (fcU with attributes → getPayload → newPayload → fcU);
/// returns the new head's hash and number.
async fn slot(client: &HttpExecutionClient) -> (B256, u64) {
    let head = client
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .unwrap();
    let timestamp = head.header.timestamp + 1;
    let state = ForkchoiceState {
        head_block_hash: head.header.hash,
        safe_block_hash: B256::ZERO,
        finalized_block_hash: B256::ZERO,
    };
    let attrs = PayloadAttributes {
        timestamp,
        prev_randao: B256::ZERO,
        suggested_fee_recipient: FEE_RECIPIENT,
        withdrawals: Some(Vec::new()),
        parent_beacon_block_root: None,
        ..Default::default()
    };
    let id = client
        .forkchoice_updated(state, Some(attrs))
        .await
        .unwrap()
        .payload_id
        .expect("payload id");
    // Give the builder a moment to pick up the pool.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let built = client.get_payload(id, timestamp, None).await.unwrap();
    let status = client.new_payload(&built.execution_data).await.unwrap();
    require_valid(&status, built.block_hash()).unwrap();
    let commit = ForkchoiceState {
        head_block_hash: built.block_hash(),
        ..state
    };
    let updated = client.forkchoice_updated(commit, None).await.unwrap();
    assert!(updated.payload_status.is_valid(), "{updated:?}");
    (built.block_hash(), built.block_number())
}

/// Sends `raw` and drives slots until its receipt appears (at most [`MAX_SLOTS`]).
async fn include(client: &HttpExecutionClient, raws: &[Bytes]) -> Vec<TransactionReceipt> {
    let mut hashes = Vec::new();
    for raw in raws {
        hashes.push(client.send_raw_transaction(raw.clone()).await.unwrap());
    }
    let mut receipts = Vec::new();
    for _ in 0..MAX_SLOTS {
        slot(client).await;
        receipts.clear();
        for hash in &hashes {
            match client.transaction_receipt(*hash).await.unwrap() {
                Some(receipt) => receipts.push(receipt),
                None => break,
            }
        }
        if receipts.len() == hashes.len() {
            return receipts;
        }
    }
    panic!("{hashes:?} not all included within {MAX_SLOTS} slots");
}

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peg_out_emits_the_log_the_mock_synthesizes(#[case] kind: RealClientKind) {
    let Some((el, client)) = start_real(kind).await else {
        return;
    };
    let value = U256::from(PEG_OUT_WEI);
    let (raw, tx_hash) = signed_peg_out(DEV_PRIVATE_KEY, CHAIN_ID, 0, BTC_ADDRESS, value).unwrap();

    let [receipt] = &include(&client, std::slice::from_ref(&raw)).await[..] else {
        unreachable!("one transaction, one receipt")
    };
    assert!(
        receipt.status(),
        "peg-out reverted: {receipt:?}\n{}",
        el.log_tail(30)
    );
    let block_number = receipt.block_number.unwrap();
    let [log] = receipt.inner.logs() else {
        panic!("expected exactly one log: {receipt:?}");
    };
    assert_eq!(log.address(), BRIDGE_ADDRESS);
    assert_eq!(
        log.topics(),
        [RequestPegOut::SIGNATURE_HASH, DEV_ACCOUNT.into_word()]
    );
    let event = RequestPegOut::decode_log(&log.inner).unwrap().data;
    assert_eq!(event._evmAddress, DEV_ACCOUNT);
    assert_eq!(event._bitcoinAddress.as_ref(), BTC_ADDRESS);
    assert_eq!(event._value, value);
    assert_eq!(log.transaction_hash, Some(tx_hash));
    assert_eq!(log.block_number, Some(block_number));
    println!(
        "{kind}: peg-out {tx_hash} in block #{block_number}, gas used {}",
        receipt.gas_used
    );
    println!("  topics: {:?}", log.topics());
    println!("  data:   {}", log.data().data);
    println!(
        "  event:  RequestPegOut {{ _evmAddress: {}, _bitcoinAddress: {:?} ({}), _value: {} wei }}",
        event._evmAddress,
        String::from_utf8_lossy(&event._bitcoinAddress),
        event._bitcoinAddress,
        event._value
    );

    // The value is burnt: it sits at 0x…dEaD, not in the bridge.
    assert_eq!(
        client
            .balance(BURN_ADDRESS, BlockId::latest())
            .await
            .unwrap(),
        value
    );
    assert_eq!(
        client
            .balance(BRIDGE_ADDRESS, BlockId::latest())
            .await
            .unwrap(),
        U256::ZERO
    );

    // eth_getLogs by address and event topic finds it; block receipts carry it too.
    let filter = Filter::new()
        .address(BRIDGE_ADDRESS)
        .event_signature(RequestPegOut::SIGNATURE_HASH)
        .from_block(0)
        .to_block(block_number);
    let found = client.logs(&filter).await.unwrap();
    assert_eq!(found, vec![log.clone()]);
    let in_block = client
        .block_receipts(BlockId::number(block_number))
        .await
        .unwrap()
        .unwrap();
    assert!(in_block.iter().any(|r| r.inner.logs() == [log.clone()]));

    // The same signed bytes through the mock: the same log, byte for byte, and the same bloom.
    let (_mock, mock_client) = start_mock().await;
    let [mock_receipt] = &include(&mock_client, &[raw]).await[..] else {
        unreachable!("one transaction, one receipt")
    };
    assert_eq!(mock_receipt.transaction_hash, tx_hash);
    assert!(mock_receipt.status());
    let [mock_log] = mock_receipt.inner.logs() else {
        panic!("mock: expected exactly one log: {mock_receipt:?}");
    };
    assert_eq!(mock_log.inner, log.inner, "address, topics and data");
    assert_eq!(mock_receipt.inner.logs_bloom(), receipt.inner.logs_bloom());
    assert_eq!(mock_log.log_index, log.log_index);
    assert_eq!(mock_log.transaction_index, log.transaction_index);
}

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mock_reverts_exactly_where_the_compiled_bridge_reverts(#[case] kind: RealClientKind) {
    let good = request_peg_out_calldata(b"tb1qexample").to_vec();
    let mut length_past_end = good.clone();
    length_past_end[4 + 63] = 0x40;
    let mut huge_offset = good.clone();
    huge_offset[4 + 23] = 1;
    let mut trailing_and_dirty = good.clone();
    *trailing_and_dirty.last_mut().unwrap() = 0xee;
    trailing_and_dirty.extend_from_slice(&[0xab; 7]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("no calldata", Vec::new()),
        ("unknown selector", vec![0x12, 0x34, 0x56, 0x78]),
        ("selector only", good[..4].to_vec()),
        ("head cut short", good[..20].to_vec()),
        ("length past the end", length_past_end),
        ("offset above 2^64", huge_offset),
        ("bytes cut short", good[..4 + 64 + 5].to_vec()),
        ("unpadded tail", good[..4 + 64 + 11].to_vec()),
        ("trailing bytes, dirty padding", trailing_and_dirty),
        ("canonical", good.clone()),
    ];
    let raws: Vec<Bytes> = cases
        .iter()
        .enumerate()
        .map(|(nonce, (_, input))| {
            signed_eip1559(
                DEV_PRIVATE_KEY,
                CHAIN_ID,
                nonce as u64,
                TxKind::Call(BRIDGE_ADDRESS),
                U256::from(1_000u64),
                Bytes::from(input.clone()),
                PEG_OUT_GAS_LIMIT,
            )
            .unwrap()
            .0
        })
        .collect();

    let Some((el, client)) = start_real(kind).await else {
        return;
    };
    let (_mock, mock_client) = start_mock().await;
    let real = include(&client, &raws).await;
    let emulated = include(&mock_client, &raws).await;
    for (((name, _), real), emulated) in cases.iter().zip(&real).zip(&emulated) {
        println!(
            "{name:<30} {kind} status {} logs {}; mock status {} logs {}",
            real.status(),
            real.inner.logs().len(),
            emulated.status(),
            emulated.inner.logs().len()
        );
        assert_eq!(
            emulated.status(),
            real.status(),
            "{name}\n{}",
            el.log_tail(20)
        );
        let strip = |r: &TransactionReceipt| -> Vec<_> {
            r.inner.logs().iter().map(|l| l.inner.clone()).collect()
        };
        assert_eq!(strip(emulated), strip(real), "{name}: logs");
    }
    // Both sides saw reverts and successes, so the comparison pinned something.
    assert!(real.iter().any(|r| !r.status()) && real.iter().any(|r| r.status()));
}

/// Where the forwarding contract lives in the genesis of the rule test.
const FORWARDER: Address = Address::repeat_byte(0xf0);

/// The two peg-out rules on the same three transactions: a peg-out sent to the bridge (both
/// count it), one through a forwarding contract (only the bridge-emitted rule: the legacy rule
/// skips receipts not sent to the bridge), and a contract creation whose constructor emits the
/// event without burning anything (only the legacy rule: its hole). A rule switch at a height
/// applies the legacy rule below it and the other from it.
#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_peg_out_rules_on_a_forwarded_peg_out_and_a_creation_that_emits_the_event(
    #[case] kind: RealClientKind,
) {
    let genesis = GenesisOptions::default()
        .with_contract(BRIDGE_ADDRESS, bridge_runtime_code())
        .with_contract(FORWARDER, forwarder_runtime_code(BRIDGE_ADDRESS));
    let Some(el) = RealExecutionClient::start_or_skip(kind, &genesis)
        .await
        .unwrap()
    else {
        return;
    };
    let options = ClientOptions::new(el.engine_url(), el.jwt_secret())
        .with_eth_url(el.eth_url())
        .with_fork_schedule(ForkSchedule::shanghai());
    let client = HttpExecutionClient::connect(options).await.unwrap();
    let value = U256::from(PEG_OUT_WEI);
    let direct = signed_peg_out(DEV_PRIVATE_KEY, CHAIN_ID, 0, BTC_ADDRESS, value)
        .unwrap()
        .0;
    let forwarded = signed_eip1559(
        DEV_PRIVATE_KEY,
        CHAIN_ID,
        1,
        TxKind::Call(FORWARDER),
        value,
        request_peg_out_calldata(BTC_ADDRESS),
        2 * PEG_OUT_GAS_LIMIT,
    )
    .unwrap()
    .0;
    let creation = signed_eip1559(
        DEV_PRIVATE_KEY,
        CHAIN_ID,
        2,
        TxKind::Create,
        U256::ZERO,
        peg_out_event_init_code(BTC_ADDRESS, value).unwrap(),
        200_000,
    )
    .unwrap()
    .0;
    let receipts = include(&client, &[direct, forwarded, creation]).await;
    assert!(
        receipts.iter().all(TransactionReceipt::status),
        "{receipts:#?}"
    );
    let count = |rule, r: &TransactionReceipt| {
        peg_outs_by_rule(rule, BRIDGE_ADDRESS, std::slice::from_ref(r)).len()
    };
    let answers: Vec<(usize, usize)> = receipts
        .iter()
        .map(|r| {
            (
                count(PegOutRule::Legacy, r),
                count(PegOutRule::BridgeEmitted, r),
            )
        })
        .collect();
    println!(
        "{kind}: (legacy, bridge-emitted) peg-outs for direct, forwarded, creation: {answers:?}"
    );
    assert_eq!(answers, vec![(1, 1), (0, 1), (1, 0)]);
    let forwarded_event =
        &peg_outs_by_rule(PegOutRule::BridgeEmitted, BRIDGE_ADDRESS, &receipts[1..2])[0];
    assert_eq!(
        forwarded_event.evm_address, FORWARDER,
        "the bridge saw the forwarder as sender"
    );
    assert_eq!(forwarded_event.value_wei, value);

    // The switch at a height: the creation's block under each side of it.
    let creation_block = receipts[2].block_number.unwrap();
    let before = PegOutRules {
        bridge: BRIDGE_ADDRESS,
        bridge_emitted_from: Some(creation_block + 1),
    };
    let from = PegOutRules {
        bridge: BRIDGE_ADDRESS,
        bridge_emitted_from: Some(creation_block),
    };
    assert_eq!(before.peg_outs(creation_block, &receipts[2..]).len(), 1);
    assert_eq!(from.peg_outs(creation_block, &receipts[2..]).len(), 0);
}
