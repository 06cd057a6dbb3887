//! [`GenesisOptions`] and the post-merge geth-style genesis JSON written for a launched client,
//! with the prefunded dev account.

use std::collections::BTreeMap;

use alloy_eips::{
    eip2935::{HISTORY_STORAGE_ADDRESS, HISTORY_STORAGE_CODE},
    eip4788::{BEACON_ROOTS_ADDRESS, BEACON_ROOTS_CODE},
    eip7002::{WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS, WITHDRAWAL_REQUEST_PREDEPLOY_CODE},
    eip7251::{CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS, CONSOLIDATION_REQUEST_PREDEPLOY_CODE},
};
use alloy_primitives::{Address, Bytes, U256, address, hex};
use engine_types::{Fork, ForkSchedule};
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
/// `terminalTotalDifficulty: 0`) with Shanghai, and optionally Cancun and Prague, at times
/// given *relative to the genesis timestamp* (see [`GenesisOptions::forks`]); see
/// [`GenesisOptions::geth_genesis`].
///
/// ```
/// use alloy_primitives::{Address, U256};
/// use engine_testkit::GenesisOptions;
/// use engine_types::{Fork, ForkSchedule};
///
/// let genesis = GenesisOptions::default()
///     .with_forks(ForkSchedule::cancun())
///     .with_prefunded(Address::repeat_byte(0x11), U256::from(10u64).pow(U256::from(18u64)));
/// assert_eq!(genesis.chain_id, 263_634);
/// // Cancun from genesis, whenever the client is started.
/// assert_eq!(genesis.fork_schedule(1_700_000_000).fork_at(1_700_000_000), Fork::Cancun);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GenesisOptions {
    /// EIP-155 chain id (also used as the network id).
    pub chain_id: u64,
    /// When each fork activates, in seconds *after the genesis timestamp* (0: at genesis).
    /// Shanghai must be at 0 (Alys chains start post-merge with withdrawals).
    pub forks: ForkSchedule,
    /// Accounts funded at genesis, in wei. Repeated addresses are summed.
    pub prefunded: Vec<(Address, U256)>,
    /// Contracts present at genesis: address and runtime (deployed) code.
    pub contracts: Vec<(Address, Bytes)>,
    /// The genesis timestamp (unix seconds); `None`: the time the client is started. Two
    /// clients started with the same options and timestamp share the genesis block.
    pub timestamp: Option<u64>,
}

impl Default for GenesisOptions {
    /// Chain 263634, Shanghai, [`DEV_ACCOUNT`] prefunded with 1 000 000 ETH, no contracts.
    fn default() -> Self {
        let one_million_eth = U256::from(1_000_000u64) * U256::from(10u64).pow(U256::from(18u64));
        Self {
            chain_id: Self::DEFAULT_CHAIN_ID,
            forks: ForkSchedule::shanghai(),
            prefunded: vec![(DEV_ACCOUNT, one_million_eth)],
            contracts: Vec::new(),
            timestamp: None,
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

    /// Returns these options with the forks at `forks` (seconds after the genesis timestamp).
    pub fn with_forks(mut self, forks: ForkSchedule) -> Self {
        self.forks = forks;
        self
    }

    /// The newest fork this genesis schedules.
    pub const fn latest_fork(&self) -> Fork {
        self.forks.latest_scheduled()
    }

    /// Returns these options with `address` funded with `wei` more.
    pub fn with_prefunded(mut self, address: Address, wei: U256) -> Self {
        self.prefunded.push((address, wei));
        self
    }

    /// The engine's fork schedule for this genesis started at `genesis_timestamp`: the relative
    /// times of [`Self::forks`] made absolute (a fork at 0 stays at 0: active from genesis).
    pub const fn fork_schedule(&self, genesis_timestamp: u64) -> ForkSchedule {
        const fn absolute(relative: u64, genesis: u64) -> u64 {
            if relative == 0 {
                0
            } else {
                genesis.saturating_add(relative)
            }
        }
        ForkSchedule {
            shanghai_time: absolute(self.forks.shanghai_time, genesis_timestamp),
            cancun_time: match self.forks.cancun_time {
                Some(t) => Some(absolute(t, genesis_timestamp)),
                None => None,
            },
            prague_time: match self.forks.prague_time {
                Some(t) => Some(absolute(t, genesis_timestamp)),
                None => None,
            },
        }
    }

    /// Returns these options with the genesis at `timestamp` (unix seconds) instead of the
    /// start time, e.g. to start a second client on the same genesis block as a running one.
    pub const fn with_timestamp(mut self, timestamp: u64) -> Self {
        self.timestamp = Some(timestamp);
        self
    }

    /// Returns these options with a contract whose runtime code is `code` at `address`.
    pub fn with_contract(mut self, address: Address, code: Bytes) -> Self {
        self.contracts.push((address, code));
        self
    }

    /// The geth-style genesis JSON (accepted by EthereumJS `--gethGenesis`, `reth --chain` and
    /// `geth init`) with the given genesis `timestamp` (unix seconds).
    ///
    /// A scheduled Cancun brings the EIP-4788 beacon-roots contract and the blob schedule; a
    /// scheduled Prague the EIP-2935 history, EIP-7002 withdrawal-request and EIP-7251
    /// consolidation-request contracts (their code from alloy-eips), which Prague blocks call at
    /// every block: a client refuses to build without them. The genesis header carries the blob
    /// gas fields when Cancun is active at genesis.
    pub fn geth_genesis(&self, timestamp: u64) -> Value {
        let zero_hash = hex::encode_prefixed([0u8; 32]);
        let forks = self.fork_schedule(timestamp);
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
            "shanghaiTime": forks.shanghai_time,
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
        let mut blob_schedule = Map::new();
        if let Some(cancun) = forks.cancun_time {
            config["cancunTime"] = json!(cancun);
            // Geth ≥ 1.15 refuses a Cancun genesis without its blob schedule; the values are
            // the mainnet ones (EIP-4844, EIP-7691).
            blob_schedule.insert(
                "cancun".to_owned(),
                json!({ "target": 3, "max": 6, "baseFeeUpdateFraction": 3_338_477 }),
            );
            if cancun == 0 {
                genesis["excessBlobGas"] = json!("0x0");
                genesis["blobGasUsed"] = json!("0x0");
            }
        }
        if let Some(prague) = forks.prague_time {
            config["pragueTime"] = json!(prague);
            blob_schedule.insert(
                "prague".to_owned(),
                json!({ "target": 6, "max": 9, "baseFeeUpdateFraction": 5_007_716 }),
            );
        }
        if !blob_schedule.is_empty() {
            config["blobSchedule"] = Value::Object(blob_schedule);
        }
        genesis["config"] = config;
        genesis
    }

    /// The system contracts the scheduled forks need, unless the caller put code there.
    fn system_contracts(&self) -> Vec<(Address, &'static Bytes)> {
        let mut contracts = Vec::new();
        if self.forks.cancun_time.is_some() {
            contracts.push((BEACON_ROOTS_ADDRESS, &BEACON_ROOTS_CODE));
        }
        if self.forks.prague_time.is_some() {
            contracts.push((HISTORY_STORAGE_ADDRESS, &HISTORY_STORAGE_CODE));
            contracts.push((
                WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
                &WITHDRAWAL_REQUEST_PREDEPLOY_CODE,
            ));
            contracts.push((
                CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
                &CONSOLIDATION_REQUEST_PREDEPLOY_CODE,
            ));
        }
        contracts.retain(|(address, _)| !self.contracts.iter().any(|(a, _)| a == address));
        contracts
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
        let system = self
            .system_contracts()
            .into_iter()
            .map(|(address, code)| (address, code.clone()));
        for (address, code) in self.contracts.iter().cloned().chain(system) {
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
    fn cancun_genesis_has_blob_fields_and_the_beacon_roots_contract() {
        let genesis = GenesisOptions::default()
            .with_forks(ForkSchedule::cancun())
            .geth_genesis(1);
        assert_eq!(genesis["config"]["cancunTime"], json!(0));
        assert!(genesis["config"].get("pragueTime").is_none());
        assert_eq!(genesis["config"]["blobSchedule"]["cancun"]["max"], json!(6));
        assert_eq!(genesis["excessBlobGas"], json!("0x0"));
        assert_eq!(genesis["blobGasUsed"], json!("0x0"));
        let beacon_roots = &genesis["alloc"][hex::encode_prefixed(BEACON_ROOTS_ADDRESS)];
        assert_eq!(beacon_roots["code"], json!(BEACON_ROOTS_CODE.to_string()));
        assert!(
            genesis["alloc"]
                .get(hex::encode_prefixed(HISTORY_STORAGE_ADDRESS))
                .is_none()
        );
    }

    #[test]
    fn prague_genesis_has_the_system_contracts_and_both_blob_schedules() {
        let genesis = GenesisOptions::default()
            .with_forks(ForkSchedule::prague())
            .geth_genesis(1);
        assert_eq!(genesis["config"]["pragueTime"], json!(0));
        assert_eq!(genesis["config"]["blobSchedule"]["prague"]["max"], json!(9));
        for (address, code) in [
            (BEACON_ROOTS_ADDRESS, &BEACON_ROOTS_CODE),
            (HISTORY_STORAGE_ADDRESS, &HISTORY_STORAGE_CODE),
            (
                WITHDRAWAL_REQUEST_PREDEPLOY_ADDRESS,
                &WITHDRAWAL_REQUEST_PREDEPLOY_CODE,
            ),
            (
                CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS,
                &CONSOLIDATION_REQUEST_PREDEPLOY_CODE,
            ),
        ] {
            assert_eq!(
                genesis["alloc"][hex::encode_prefixed(address)]["code"],
                json!(code.to_string()),
                "{address}"
            );
        }
    }

    #[test]
    fn later_forks_are_relative_to_the_genesis_timestamp() {
        let options = GenesisOptions::default().with_forks(ForkSchedule {
            shanghai_time: 0,
            cancun_time: Some(10),
            prague_time: Some(20),
        });
        let genesis = options.geth_genesis(1_000);
        assert_eq!(genesis["config"]["shanghaiTime"], json!(0));
        assert_eq!(genesis["config"]["cancunTime"], json!(1_010));
        assert_eq!(genesis["config"]["pragueTime"], json!(1_020));
        assert!(
            genesis.get("excessBlobGas").is_none(),
            "Cancun is not active at genesis"
        );
        let schedule = options.fork_schedule(1_000);
        assert_eq!(schedule.fork_at(1_009), Fork::Shanghai);
        assert_eq!(schedule.fork_at(1_010), Fork::Cancun);
        assert_eq!(schedule.fork_at(1_020), Fork::Prague);
    }
}
