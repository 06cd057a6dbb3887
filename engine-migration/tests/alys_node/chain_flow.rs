//! The node's chain flow through the shim on real execution clients: blocks produced on EL A
//! (`build_block` with the fee split and a peg-in), carried in the node's payload type,
//! imported on EL B (`commit_block`), read back as ethers blocks and receipts, fees computed by
//! the node's own arithmetic (copied from chain.rs) and checked against the EL's receipts and
//! the tips it credited; a peg-out found by the node's rule; finalize; a restart.

use std::time::Duration;

use alloy_eips::BlockId;
use alloy_primitives::{Address, B256, U256 as AU256};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{
    BRIDGE_ADDRESS, DEV_PRIVATE_KEY, GenesisOptions, RealClientKind, RealExecutionClient,
    bridge_runtime_code, signed_eip1559_transfer, signed_eip2930, signed_legacy, signed_peg_out,
};
use ethereum_types::{H160, H256, U256};
use ethers_core::types::{Block, Transaction, TransactionReceipt};
use rstest::rstest;

use crate::engine::{
    ConsensusAmount, Engine, new_http_engine_json_rpc, new_http_public_execution_json_rpc,
};
use crate::execution_layer::auth::JwtKey;
use crate::types::{ExecutionBlockHash, ExecutionPayloadCapella, MainnetEthSpec};

const CHAIN_ID: u64 = 263_634;
const BURN: Address = alloy_primitives::address!("000000000000000000000000000000000000dEaD");
const GWEI: u64 = 1_000_000_000;

// ---- the node's fee arithmetic, as app/src/chain.rs has it (L153-179, L232-250, L1614-1654)

trait TxFees {
    fn gas_tip_cap(&self) -> U256;
    fn gas_fee_cap(&self) -> U256;
    fn effective_gas_tip(&self, base_fee: U256) -> U256;
}

impl TxFees for Transaction {
    fn gas_tip_cap(&self) -> U256 {
        self.max_priority_fee_per_gas
            .unwrap_or(self.gas_price.unwrap())
    }
    fn gas_fee_cap(&self) -> U256 {
        self.max_fee_per_gas.unwrap_or(self.gas_price.unwrap())
    }
    fn effective_gas_tip(&self, base_fee: U256) -> U256 {
        let gas_fee_cap = self.gas_fee_cap();
        self.gas_tip_cap().min(gas_fee_cap - base_fee)
    }
}

fn total_fees(block: &Block<Transaction>, receipts: &[TransactionReceipt]) -> U256 {
    let mut fees_wei = U256::zero();
    for (tx, receipt) in block.transactions.iter().zip(receipts) {
        let miner_fee = tx.effective_gas_tip(block.base_fee_per_gas.unwrap());
        fees_wei += receipt.gas_used.unwrap() * miner_fee;
    }
    fees_wei
}

fn split_fees(fees: U256, miner: H160, federation: &[H160]) -> Vec<(H160, ConsensusAmount)> {
    if fees.is_zero() {
        return vec![];
    }
    let miner_fee = fees * U256::from(80u64) / U256::from(100u64);
    let federation_fee = (fees - miner_fee) / U256::from(federation.len());
    let mut add_balances = vec![(miner, ConsensusAmount::from_wei(miner_fee))];
    add_balances.extend(
        federation
            .iter()
            .map(|a| (*a, ConsensusAmount::from_wei(federation_fee))),
    );
    add_balances
}

// ---- the node's peg-out rule (crates/federation/src/lib.rs L258-307), matching part

fn legacy_peg_outs(receipts: &[TransactionReceipt]) -> Vec<U256> {
    let bridge = H160::from(BRIDGE_ADDRESS.0.0);
    let topic = H256::from(alloy_primitives::keccak256("RequestPegOut(address,bytes,uint256)").0);
    let mut values = Vec::new();
    for receipt in receipts {
        if receipt.to.is_some_and(|to| to != bridge) {
            continue;
        }
        for log in &receipt.logs {
            if log.topics.first() == Some(&topic) && log.data.len() >= 64 {
                // (bytes offset, uint256 value, …): the value is the second word.
                values.push(U256::from_big_endian(&log.data[32..64]));
            }
        }
    }
    values
}

// ----

fn shim(el: &RealExecutionClient) -> Engine {
    let key = JwtKey::from_slice(el.jwt_secret().as_bytes()).unwrap();
    Engine::new(
        new_http_engine_json_rpc(Some(el.engine_url().to_owned()), key),
        new_http_public_execution_json_rpc(Some(el.eth_url().to_owned())),
    )
}

async fn client(el: &RealExecutionClient) -> HttpExecutionClient {
    HttpExecutionClient::connect(
        ClientOptions::new(el.engine_url(), el.jwt_secret()).with_eth_url(el.eth_url()),
    )
    .await
    .unwrap()
}

async fn balance(el: &HttpExecutionClient, who: Address, number: u64) -> AU256 {
    el.balance(who, BlockId::number(number)).await.unwrap()
}

#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nodes_chain_flow_through_the_shim(#[case] kind: RealClientKind) {
    let genesis = GenesisOptions::default().with_contract(BRIDGE_ADDRESS, bridge_runtime_code());
    let Some(el_a) = RealExecutionClient::start_or_skip(kind, &genesis)
        .await
        .unwrap()
    else {
        return;
    };
    let genesis = genesis.with_timestamp(el_a.genesis_timestamp());
    let el_b = RealExecutionClient::start(kind, &genesis).await.unwrap();
    let (producer, importer) = (shim(&el_a), shim(&el_b));
    let (plain_a, plain_b) = (client(&el_a).await, client(&el_b).await);

    let genesis_a = producer
        .get_payload_by_tag_from_engine(crate::execution_layer::BlockByNumberQuery::Tag("0x0"))
        .await
        .unwrap();
    let genesis_b = importer
        .get_payload_by_tag_from_engine(crate::execution_layer::BlockByNumberQuery::Tag("0x0"))
        .await
        .unwrap();
    assert_eq!(genesis_a, genesis_b, "one genesis, byte for byte");

    let to = Address::repeat_byte(0x42);
    let txs = [
        signed_legacy(
            DEV_PRIVATE_KEY,
            CHAIN_ID,
            0,
            to,
            AU256::from(1u64),
            3 * u128::from(GWEI),
        )
        .unwrap(),
        signed_eip2930(
            DEV_PRIVATE_KEY,
            CHAIN_ID,
            1,
            to,
            AU256::from(2u64),
            2 * u128::from(GWEI),
        )
        .unwrap(),
        signed_eip1559_transfer(
            DEV_PRIVATE_KEY,
            CHAIN_ID,
            2,
            to,
            AU256::from(3u64),
            20 * u128::from(GWEI),
            u128::from(GWEI),
        )
        .unwrap(),
    ];
    for (raw, _) in &txs {
        plain_a.send_raw_transaction(raw.clone()).await.unwrap();
    }
    let miner = H160::repeat_byte(0xa1);
    let federation = [H160::repeat_byte(0xf1), H160::repeat_byte(0xf2)];
    let peg_in = H160::repeat_byte(0xb2);

    let mut timestamp = el_a.genesis_timestamp();
    let mut queued_fees = U256::zero();
    let mut fee_blocks = 0;
    let mut split_checked = 0;
    let mut included = 0;
    for slot in 1..=8u64 {
        timestamp += 2;
        let mut add_balances = split_fees(queued_fees, miner, &federation);
        let expected_credits = add_balances.clone();
        add_balances.push((peg_in, ConsensusAmount::from_satoshi(100)));
        let payload = producer
            .build_block(
                Duration::from_secs(timestamp),
                None,
                add_balances.into_iter().map(Into::into).collect(),
            )
            .await
            .unwrap_or_else(|e| panic!("slot {slot}: build: {e:?}"));
        // Carried as the node carries it: its own payload type (gossip, storage), then imported.
        let capella: ExecutionPayloadCapella<MainnetEthSpec> =
            payload.as_capella().unwrap().clone();
        let hash_a = producer.commit_block(payload.clone()).await.unwrap();
        let hash_b = importer.commit_block(capella.clone().into()).await.unwrap();
        assert_eq!(hash_a, hash_b, "slot {slot}: same block on both ELs");
        assert_eq!(hash_b, capella.block_hash);

        // get_block_and_receipts on the importer, in ethers types
        let block = importer.get_block_with_txs(&hash_b).await.unwrap().unwrap();
        let mut receipts = Vec::new();
        for tx in &block.transactions {
            receipts.push(
                importer
                    .get_transaction_receipt(tx.hash)
                    .await
                    .unwrap()
                    .unwrap(),
            );
        }
        let fees = total_fees(&block, &receipts);
        // Independently, from the EL's own receipts: (effective gas price − base fee) × gas.
        let base_fee = block.base_fee_per_gas.unwrap();
        let mut from_el = AU256::ZERO;
        for tx in &block.transactions {
            let r = plain_b
                .transaction_receipt(B256::from(tx.hash.0))
                .await
                .unwrap()
                .unwrap();
            println!(
                "{kind} slot {slot}: type {:?}, gas {}, effectiveGasPrice {}, base fee {base_fee}",
                tx.transaction_type, r.gas_used, r.effective_gas_price
            );
            // EthereumJS 0.10.5 reports a type-2 receipt's effectiveGasPrice as the tip alone
            // (spec: base fee + tip); docs/execution-clients.md. Pinned, so a fix shows up here.
            let tip = if kind == RealClientKind::EthereumJs && r.transaction_type() as u8 == 2 {
                r.effective_gas_price
            } else {
                r.effective_gas_price - base_fee.as_u128()
            };
            from_el += AU256::from(r.gas_used) * AU256::from(tip);
        }
        let number = block.number.unwrap().as_u64();
        let tips =
            balance(&plain_b, BURN, number).await - balance(&plain_b, BURN, number - 1).await;
        println!("{kind} slot {slot}: node fees {fees}, from receipts {from_el}, credited {tips}");
        assert_eq!(
            fees,
            U256::from_big_endian(&tips.to_be_bytes::<32>()),
            "slot {slot}: the node's fees are the tips the EL credited to the fee recipient"
        );
        assert_eq!(
            fees,
            U256::from_big_endian(&from_el.to_be_bytes::<32>()),
            "slot {slot}: the node's fees against the receipts' effective gas price"
        );
        // The fee split of the previous block reached its addresses exactly.
        for (address, amount) in &expected_credits {
            let who = Address::from(address.0);
            let credited =
                balance(&plain_b, who, number).await - balance(&plain_b, who, number - 1).await;
            assert_eq!(
                credited,
                AU256::from(amount.0) * AU256::from(GWEI),
                "slot {slot}: {address:?}"
            );
            split_checked += 1;
        }
        included += block.transactions.len();
        if !fees.is_zero() {
            fee_blocks += 1;
        }
        queued_fees = fees;
        if included == txs.len() && split_checked >= 3 {
            break;
        }
    }
    assert_eq!(
        included,
        txs.len(),
        "legacy, EIP-2930 and EIP-1559 all included"
    );
    assert!(
        fee_blocks >= 1 && split_checked >= 3,
        "fees split and credited"
    );

    // A peg-out: the node's rule finds it in the ethers receipts.
    let value = AU256::from(2_000_000u64) * AU256::from(10_000_000_000u64);
    let (raw, peg_out_tx) = signed_peg_out(
        DEV_PRIVATE_KEY,
        CHAIN_ID,
        3,
        b"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2",
        value,
    )
    .unwrap();
    plain_a.send_raw_transaction(raw).await.unwrap();
    let mut found = Vec::new();
    let mut last = ExecutionBlockHash::zero();
    for _ in 0..4 {
        timestamp += 2;
        let payload = producer
            .build_block(Duration::from_secs(timestamp), None, Vec::new())
            .await
            .unwrap();
        producer.commit_block(payload.clone()).await.unwrap();
        last = importer.commit_block(payload).await.unwrap();
        if let Some(receipt) = importer
            .get_transaction_receipt(H256::from(peg_out_tx.0))
            .await
            .unwrap()
        {
            found = legacy_peg_outs(&[receipt]);
            // The engine's own answer for that block (legacy rule by default) agrees.
            let ours = importer.alys().peg_outs(last.into_root()).await.unwrap();
            assert_eq!(ours.len(), 1, "{ours:?}");
            assert_eq!(ours[0].value_wei, value);
            break;
        }
    }
    assert_eq!(
        found,
        vec![U256::from_big_endian(&value.to_be_bytes::<32>())]
    );

    // Finalize, then a restart of the importer's engine: it follows the EL and builds on.
    importer.set_finalized(last).await;
    producer.set_finalized(last).await;
    let finalized = plain_b
        .block(BlockId::finalized(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(finalized.header.hash.0, last.into_root().0);
    importer.alys().shutdown().await;
    let restarted = shim(&el_b);
    let block = restarted.get_block_with_txs(&last).await.unwrap().unwrap();
    assert_eq!(block.hash.unwrap(), last.into_root());
    producer.alys().shutdown().await;
    restarted.alys().shutdown().await;
}
