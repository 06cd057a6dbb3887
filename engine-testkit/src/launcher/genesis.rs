//! [`GenesisOptions`] and the post-merge geth-style genesis JSON written for a launched client,
//! with the prefunded dev account.

use std::collections::BTreeMap;

use alloy_primitives::{Address, Bytes, U256, address, hex};
use serde_json::{Map, Value, json};

/// Private key of [`DEV_ACCOUNT`], the widely used devnet key. Test-only: never fund it anywhere
/// that matters.
pub const DEV_PRIVATE_KEY: &str =
    "bcdf20249abf0ed6d944c0288fad489e33f66b3960d9e6229c1cd214ed3bbe31";

/// Address of [`DEV_PRIVATE_KEY`]; [`GenesisOptions::default`] prefunds it with 1 000 000 ETH.
pub const DEV_ACCOUNT: Address = address!("8943545177806ED17B9F23F0a21ee5948eCaa776");

/// Genesis options for a launched client.
///
/// The genesis is post-merge from block 0 (every pre-merge fork at block 0,
/// `terminalTotalDifficulty: 0`, `shanghaiTime: 0`) and optionally Cancun from 0 as well; see
/// [`GenesisOptions::geth_genesis`].
///
/// ```
/// use alloy_primitives::{Address, U256};
/// use engine_testkit::GenesisOptions;
///
/// let genesis = GenesisOptions::default()
///     .with_cancun(true)
///     .with_prefunded(Address::repeat_byte(0x11), U256::from(10u64).pow(U256::from(18u64)));
/// assert_eq!(genesis.chain_id, 263_634);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisOptions {
    /// EIP-155 chain id (also used as the network id).
    pub chain_id: u64,
    /// Activate Cancun at genesis (engine methods V3); otherwise the chain stays on Shanghai (V2).
    pub cancun: bool,
    /// Accounts funded at genesis, in wei. Repeated addresses are summed.
    pub prefunded: Vec<(Address, U256)>,
    /// Contracts present at genesis: address and runtime (deployed) code.
    pub contracts: Vec<(Address, Bytes)>,
}

impl Default for GenesisOptions {
    /// Chain 263634, Shanghai, [`DEV_ACCOUNT`] prefunded with 1 000 000 ETH, no contracts.
    fn default() -> Self {
        let one_million_eth = U256::from(1_000_000u64) * U256::from(10u64).pow(U256::from(18u64));
        Self {
            chain_id: Self::DEFAULT_CHAIN_ID,
            cancun: false,
            prefunded: vec![(DEV_ACCOUNT, one_million_eth)],
            contracts: Vec::new(),
        }
    }
}

impl GenesisOptions {
    /// The chain id of [`GenesisOptions::default`].
    pub const DEFAULT_CHAIN_ID: u64 = 263_634;

    /// Gas limit of the genesis block (30 M, as on mainnet).
    pub const GAS_LIMIT: u64 = 30_000_000;

    /// Returns these options with another chain id.
    pub fn with_chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = chain_id;
        self
    }

    /// Returns these options with Cancun active at genesis (`true`) or not.
    pub fn with_cancun(mut self, cancun: bool) -> Self {
        self.cancun = cancun;
        self
    }

    /// Returns these options with `address` funded with `wei` more.
    pub fn with_prefunded(mut self, address: Address, wei: U256) -> Self {
        self.prefunded.push((address, wei));
        self
    }

    /// The engine's fork schedule for this genesis (every fork is active from genesis).
    pub const fn fork_schedule(&self, _genesis_timestamp: u64) -> engine_types::ForkSchedule {
        if self.cancun {
            engine_types::ForkSchedule::cancun()
        } else {
            engine_types::ForkSchedule::shanghai()
        }
    }

    /// Returns these options with a contract whose runtime code is `code` at `address`.
    pub fn with_contract(mut self, address: Address, code: Bytes) -> Self {
        self.contracts.push((address, code));
        self
    }

    /// The geth-style genesis JSON (accepted by EthereumJS `--gethGenesis`, `reth --chain` and
    /// `geth init`) with the given genesis `timestamp` (unix seconds).
    pub fn geth_genesis(&self, timestamp: u64) -> Value {
        let zero_hash = hex::encode_prefixed([0u8; 32]);
        let mut config = json!({
            "chainId": self.chain_id,
            "homesteadBlock": 0,
            "eip150Block": 0,
            "eip155Block": 0,
            "eip158Block": 0,
            "byzantiumBlock": 0,
            "constantinopleBlock": 0,
            "petersburgBlock": 0,
            "istanbulBlock": 0,
            "muirGlacierBlock": 0,
            "berlinBlock": 0,
            "londonBlock": 0,
            "arrowGlacierBlock": 0,
            "grayGlacierBlock": 0,
            "mergeNetsplitBlock": 0,
            "mergeForkBlock": 0,
            "terminalTotalDifficulty": 0,
            "terminalTotalDifficultyPassed": true,
            "shanghaiTime": 0,
        });
        let mut genesis = json!({
            "config": Value::Null,
            "nonce": "0x0",
            "timestamp": format!("{timestamp:#x}"),
            "extraData": "0x",
            "gasLimit": format!("{:#x}", Self::GAS_LIMIT),
            "difficulty": "0x0",
            "mixHash": zero_hash,
            "coinbase": hex::encode_prefixed([0u8; 20]),
            "baseFeePerGas": "0x3b9aca00",
            "number": "0x0",
            "gasUsed": "0x0",
            "parentHash": zero_hash,
            "alloc": self.alloc(),
        });
        if self.cancun {
            config["cancunTime"] = json!(0);
            // Geth ≥ 1.15 refuses a Cancun genesis without its blob schedule; the values are
            // the mainnet ones from EIP-4844.
            config["blobSchedule"] =
                json!({ "cancun": { "target": 3, "max": 6, "baseFeeUpdateFraction": 3_338_477 } });
            genesis["excessBlobGas"] = json!("0x0");
            genesis["blobGasUsed"] = json!("0x0");
        }
        genesis["config"] = config;
        genesis
    }

    /// The `alloc` object: balances and contract code keyed by lower-case `0x` address.
    fn alloc(&self) -> Map<String, Value> {
        let mut balances: BTreeMap<Address, U256> = BTreeMap::new();
        for (address, wei) in &self.prefunded {
            let balance = balances.entry(*address).or_default();
            *balance = balance.saturating_add(*wei);
        }
        let mut alloc = Map::new();
        for (address, wei) in &balances {
            alloc.insert(
                hex::encode_prefixed(address),
                json!({ "balance": format!("{wei:#x}") }),
            );
        }
        for (address, code) in &self.contracts {
            let entry = alloc
                .entry(hex::encode_prefixed(address))
                .or_insert_with(|| json!({ "balance": "0x0" }));
            entry["code"] = json!(hex::encode_prefixed(code));
        }
        alloc
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_has_post_merge_config_and_merges_alloc_entries() {
        let contract = Address::repeat_byte(0xcc);
        let options = GenesisOptions::default()
            .with_prefunded(DEV_ACCOUNT, U256::from(1u64))
            .with_prefunded(contract, U256::from(7u64))
            .with_contract(contract, Bytes::from_static(&[0x60, 0x00]));
        let genesis = options.geth_genesis(0x1234);

        assert_eq!(genesis["config"]["chainId"], json!(263_634));
        assert_eq!(genesis["config"]["terminalTotalDifficulty"], json!(0));
        assert_eq!(genesis["config"]["shanghaiTime"], json!(0));
        assert!(genesis["config"].get("cancunTime").is_none());
        assert!(genesis.get("excessBlobGas").is_none());
        assert_eq!(genesis["timestamp"], json!("0x1234"));
        assert_eq!(genesis["difficulty"], json!("0x0"));

        let alloc = &genesis["alloc"];
        let dev = &alloc[hex::encode_prefixed(DEV_ACCOUNT)];
        assert_eq!(
            dev["balance"],
            json!("0xd3c21bcecceda1000001"),
            "1e24 + 1 wei"
        );
        let deployed = &alloc[hex::encode_prefixed(contract)];
        assert_eq!(deployed["balance"], json!("0x7"));
        assert_eq!(deployed["code"], json!("0x6000"));
    }

    #[test]
    fn cancun_genesis_has_blob_fields() {
        let genesis = GenesisOptions::default().with_cancun(true).geth_genesis(1);
        assert_eq!(genesis["config"]["cancunTime"], json!(0));
        assert_eq!(genesis["config"]["blobSchedule"]["cancun"]["max"], json!(6));
        assert_eq!(genesis["excessBlobGas"], json!("0x0"));
        assert_eq!(genesis["blobGasUsed"], json!("0x0"));
    }
}
