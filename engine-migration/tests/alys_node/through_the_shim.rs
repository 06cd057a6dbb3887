//! The node's seven calls through the shim, in the node's own types, on the mock (with a public
//! `eth_` port like a real client's): genesis, build, commit, payload bodies, the block with
//! its transactions and their receipts in ethers types, finalize; the error the node syncs on;
//! the two old counters.

use std::time::Duration;

use alloy_primitives::{Address, U256};
use engine_testkit::{
    DEV_PRIVATE_KEY, MockConfig, MockExecutionLayer, funded_mock_config, signed_transfer,
};
use ethereum_types::{H160, H256};

use crate::engine::{
    AddBalance, ConsensusAmount, Engine, new_http_engine_json_rpc,
    new_http_public_execution_json_rpc,
};
use crate::error::Error;
use crate::execution_layer::{BlockByNumberQuery, auth::JwtKey};
use crate::metrics::{ALYS_REGISTRY, ENGINE_BUILD_BLOCK_CALLS, ENGINE_COMMIT_BLOCK_CALLS};
use crate::types::{ExecutionBlockHash, ExecutionPayload, MainnetEthSpec};

async fn node_engine(mock: &MockExecutionLayer) -> Engine {
    // What app.rs does, unchanged: the secret as bytes, both URLs from the CLI.
    let key = JwtKey::from_slice(mock.jwt_secret().as_bytes()).unwrap();
    Engine::new(
        new_http_engine_json_rpc(Some(mock.url()), key),
        new_http_public_execution_json_rpc(Some(mock.url())),
    )
}

fn config() -> MockConfig {
    funded_mock_config().with_public_eth()
}

#[tokio::test]
async fn the_nodes_calls_through_the_shim() {
    let mock = MockExecutionLayer::start(config()).await.unwrap();
    let engine = node_engine(&mock).await;

    // (3) store_genesis
    let genesis = engine
        .get_payload_by_tag_from_engine(BlockByNumberQuery::Tag("0x0"))
        .await
        .unwrap();
    assert_eq!(genesis.block_number, 0);
    let genesis_hash = genesis.block_hash;
    assert_eq!(
        genesis_hash.into_root().0,
        mock.with_chain(|c| c.genesis_hash()).0
    );

    // (2) produce_block: a peg-in and a fee share, as chain.rs hands them over
    let (raw, tx_hash) = signed_transfer(
        DEV_PRIVATE_KEY,
        263_634,
        0,
        Address::repeat_byte(0x55),
        U256::from(7u64),
    )
    .unwrap();
    let system = engine.alys().system_handle().await.unwrap();
    system.handle().send_raw_transaction(raw).await.unwrap();
    let miner = H160::repeat_byte(0xa1);
    let add_balances: Vec<(H160, ConsensusAmount)> = vec![
        (
            miner,
            ConsensusAmount::from_wei(U256::from(5_000_000_000u64).to_be_bytes().into()),
        ),
        (H160::repeat_byte(0xb2), ConsensusAmount::from_satoshi(100)),
    ];
    let payload = engine
        .build_block(
            Duration::from_secs(2),
            Some(genesis_hash),
            add_balances
                .into_iter()
                .map(Into::into)
                .collect::<Vec<AddBalance>>(),
        )
        .await
        .unwrap();
    let ExecutionPayload::Capella(capella) = &payload else {
        panic!("a Capella payload");
    };
    assert_eq!(capella.parent_hash, genesis_hash);
    assert_eq!(capella.transactions.len(), 1);
    let amounts: Vec<u64> = capella.withdrawals.iter().map(|w| w.amount).collect();
    assert_eq!(amounts, vec![5, 1000]);

    // (6) import_verified_block
    let committed = engine.commit_block(payload.clone()).await.unwrap();
    assert_eq!(committed, payload.block_hash());
    assert_eq!(mock.with_chain(|c| c.head()).0, committed.into_root().0);

    // (1) the parent's body is available
    let bodies = engine
        .api
        .get_payload_bodies_by_hash_v1::<MainnetEthSpec>(vec![committed])
        .await
        .unwrap();
    assert!(!bodies.is_empty() && bodies[0].is_some());

    // (4)+(5) get_block_and_receipts, in ethers types
    let block = engine
        .get_block_with_txs(&committed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(block.hash, Some(committed.into_root()));
    assert_eq!(block.transactions.len(), 1);
    assert_eq!(block.transactions[0].hash, H256::from(tx_hash.0));
    let receipt = engine
        .get_transaction_receipt(block.transactions[0].hash)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(receipt.block_hash, Some(committed.into_root()));
    assert!(receipt.gas_used.is_some_and(|g| !g.is_zero()));

    // (7) finalize: no result, and a refused one does not fail the node
    engine.set_finalized(committed).await;
    assert_eq!(
        mock.with_chain(|c| c.finalized()).0,
        committed.into_root().0
    );
    engine
        .set_finalized(ExecutionBlockHash::from_root(H256::repeat_byte(9)))
        .await;

    // A build on a parent the EL does not have: the node's "sync" error.
    let unknown = ExecutionBlockHash::from_root(H256::repeat_byte(0x77));
    let err = engine
        .build_block(Duration::from_secs(4), Some(unknown), Vec::new())
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::PayloadIdUnavailable | Error::EngineApiError(_)),
        "{err:?}"
    );

    // The node's two counters move as before, in the node's registry.
    assert!(
        ENGINE_BUILD_BLOCK_CALLS
            .with_label_values(&["success", "default"])
            .get()
            >= 1
    );
    assert!(
        ENGINE_COMMIT_BLOCK_CALLS
            .with_label_values(&["called"])
            .get()
            >= 1
    );
    let families: Vec<String> = ALYS_REGISTRY
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    assert!(
        families.contains(&"alys_engine_build_block_calls_total".to_owned()),
        "{families:?}"
    );
    assert!(
        engine
            .alys()
            .render_metrics()
            .contains("engine_blocks_committed_total 1")
    );
}

/// The node starts its engine before its execution client is up (containers start together):
/// construction returns at once, and the first call succeeds once the EL answers.
#[tokio::test]
async fn the_engine_starts_before_its_execution_client() {
    let mock = MockExecutionLayer::start(config()).await.unwrap();
    mock.stop().await;
    let engine = node_engine(&mock).await;
    let later = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        mock.restart().await.unwrap();
        mock
    });
    let genesis = engine
        .get_payload_by_tag_from_engine(BlockByNumberQuery::Tag("0x0"))
        .await
        .unwrap();
    assert_eq!(genesis.block_number, 0);
    drop(later.await.unwrap());
}

/// docs/integration-alys.md shows the shim in full: the very file these tests compile.
#[test]
fn the_documented_shim_is_the_compiled_one() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let shim = std::fs::read_to_string(format!("{root}/docs/alys-node/engine.rs")).unwrap();
    let doc = std::fs::read_to_string(format!("{root}/docs/integration-alys.md")).unwrap();
    let start = doc.find("```rust\n").expect("the shim's code block") + "```rust\n".len();
    let end = start + doc[start..].find("```\n").expect("its end");
    assert_eq!(
        &doc[start..end],
        shim,
        "update docs/integration-alys.md from docs/alys-node/engine.rs"
    );
}
