//! Stand-in for `lighthouse_wrapper::types` (Lighthouse v4.5.0, rev 441fc16, plus Deneb's
//! payload as v4.6.0 declares it), built from the crates Lighthouse builds these types from
//! (ethereum_ssz, ssz_types, tree_hash, ethereum-types) with Lighthouse's field order and list
//! bounds. Only what the shim and the tests touch.

use std::fmt::Debug;

use ssz::{Decode, DecodeError, Encode};
use ssz_derive::{Decode, Encode};
use ssz_types::{
    FixedVector, VariableList,
    typenum::{U16, U32, U256, U1048576, U1073741824, Unsigned},
};
use tree_hash::{PackedEncoding, TreeHash, TreeHashType};
use tree_hash_derive::TreeHash;

pub type Hash256 = ethereum_types::H256;
pub type Address = ethereum_types::H160;
pub type Uint256 = ethereum_types::U256;

/// `EthSpec`, the payload's bounds.
pub trait EthSpec: 'static + Clone + Debug + PartialEq + Default + Send + Sync {
    type MaxBytesPerTransaction: Unsigned + Clone + Debug + PartialEq + Send + Sync;
    type MaxTransactionsPerPayload: Unsigned + Clone + Debug + PartialEq + Send + Sync;
    type BytesPerLogsBloom: Unsigned + Clone + Debug + PartialEq + Send + Sync;
    type MaxExtraDataBytes: Unsigned + Clone + Debug + PartialEq + Send + Sync;
    type MaxWithdrawalsPerPayload: Unsigned + Clone + Debug + PartialEq + Send + Sync;
}

/// Mainnet's bounds (eth_spec.rs:253-285).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct MainnetEthSpec;

impl EthSpec for MainnetEthSpec {
    type MaxBytesPerTransaction = U1073741824;
    type MaxTransactionsPerPayload = U1048576;
    type BytesPerLogsBloom = U256;
    type MaxExtraDataBytes = U32;
    type MaxWithdrawalsPerPayload = U16;
}

/// `ExecutionBlockHash`: a transparent `Hash256` (execution_block_hash.rs).
#[derive(Default, Clone, Copy, Eq, PartialEq, Hash, Debug)]
pub struct ExecutionBlockHash(Hash256);

impl ExecutionBlockHash {
    pub fn zero() -> Self {
        Self(Hash256::zero())
    }
    pub fn from_root(root: Hash256) -> Self {
        Self(root)
    }
    pub fn into_root(self) -> Hash256 {
        self.0
    }
}

impl Encode for ExecutionBlockHash {
    fn is_ssz_fixed_len() -> bool {
        <Hash256 as Encode>::is_ssz_fixed_len()
    }
    fn ssz_fixed_len() -> usize {
        <Hash256 as Encode>::ssz_fixed_len()
    }
    fn ssz_bytes_len(&self) -> usize {
        self.0.ssz_bytes_len()
    }
    fn ssz_append(&self, buf: &mut Vec<u8>) {
        self.0.ssz_append(buf)
    }
}

impl Decode for ExecutionBlockHash {
    fn is_ssz_fixed_len() -> bool {
        <Hash256 as Decode>::is_ssz_fixed_len()
    }
    fn ssz_fixed_len() -> usize {
        <Hash256 as Decode>::ssz_fixed_len()
    }
    fn from_ssz_bytes(bytes: &[u8]) -> Result<Self, DecodeError> {
        Hash256::from_ssz_bytes(bytes).map(Self)
    }
}

impl TreeHash for ExecutionBlockHash {
    fn tree_hash_type() -> TreeHashType {
        Hash256::tree_hash_type()
    }
    fn tree_hash_packed_encoding(&self) -> PackedEncoding {
        self.0.tree_hash_packed_encoding()
    }
    fn tree_hash_packing_factor() -> usize {
        Hash256::tree_hash_packing_factor()
    }
    fn tree_hash_root(&self) -> tree_hash::Hash256 {
        self.0.tree_hash_root()
    }
}

/// `Withdrawal` (withdrawal.rs).
#[derive(Debug, PartialEq, Eq, Hash, Clone, Encode, Decode, TreeHash)]
pub struct Withdrawal {
    pub index: u64,
    pub validator_index: u64,
    pub address: Address,
    pub amount: u64,
}

pub type Transaction<N> = VariableList<u8, N>;
pub type Transactions<T> = VariableList<
    Transaction<<T as EthSpec>::MaxBytesPerTransaction>,
    <T as EthSpec>::MaxTransactionsPerPayload,
>;
pub type Withdrawals<T> = VariableList<Withdrawal, <T as EthSpec>::MaxWithdrawalsPerPayload>;

/// `ExecutionPayloadCapella` (execution_payload.rs at 441fc16, declaration order).
#[derive(Default, Debug, Clone, PartialEq, Encode, Decode, TreeHash)]
#[ssz(struct_behaviour = "container")]
pub struct ExecutionPayloadCapella<T: EthSpec> {
    pub parent_hash: ExecutionBlockHash,
    pub fee_recipient: Address,
    pub state_root: Hash256,
    pub receipts_root: Hash256,
    pub logs_bloom: FixedVector<u8, T::BytesPerLogsBloom>,
    pub prev_randao: Hash256,
    pub block_number: u64,
    pub gas_limit: u64,
    pub gas_used: u64,
    pub timestamp: u64,
    pub extra_data: VariableList<u8, T::MaxExtraDataBytes>,
    pub base_fee_per_gas: Uint256,
    pub block_hash: ExecutionBlockHash,
    pub transactions: Transactions<T>,
    pub withdrawals: Withdrawals<T>,
}

/// `ExecutionPayloadDeneb` (execution_payload.rs at v4.6.0: Capella's fields, then the blob gas).
#[derive(Default, Debug, Clone, PartialEq, Encode, Decode, TreeHash)]
#[ssz(struct_behaviour = "container")]
pub struct ExecutionPayloadDeneb<T: EthSpec> {
    pub parent_hash: ExecutionBlockHash,
    pub fee_recipient: Address,
    pub state_root: Hash256,
    pub receipts_root: Hash256,
    pub logs_bloom: FixedVector<u8, T::BytesPerLogsBloom>,
    pub prev_randao: Hash256,
    pub block_number: u64,
    pub gas_limit: u64,
    pub gas_used: u64,
    pub timestamp: u64,
    pub extra_data: VariableList<u8, T::MaxExtraDataBytes>,
    pub base_fee_per_gas: Uint256,
    pub block_hash: ExecutionBlockHash,
    pub transactions: Transactions<T>,
    pub withdrawals: Withdrawals<T>,
    pub blob_gas_used: u64,
    pub excess_blob_gas: u64,
}

/// The superstruct enum `ExecutionPayload` (its Merge variant is not needed here).
#[derive(Debug, Clone, PartialEq)]
pub enum ExecutionPayload<T: EthSpec> {
    Capella(ExecutionPayloadCapella<T>),
    Deneb(ExecutionPayloadDeneb<T>),
}

impl<T: EthSpec> ExecutionPayload<T> {
    /// superstruct's partial getter.
    pub fn as_capella(&self) -> Result<&ExecutionPayloadCapella<T>, ()> {
        match self {
            Self::Capella(p) => Ok(p),
            Self::Deneb(_) => Err(()),
        }
    }

    pub fn block_hash(&self) -> ExecutionBlockHash {
        match self {
            Self::Capella(p) => p.block_hash,
            Self::Deneb(p) => p.block_hash,
        }
    }

    pub fn block_number(&self) -> u64 {
        match self {
            Self::Capella(p) => p.block_number,
            Self::Deneb(p) => p.block_number,
        }
    }
}

impl<T: EthSpec> From<ExecutionPayloadCapella<T>> for ExecutionPayload<T> {
    fn from(p: ExecutionPayloadCapella<T>) -> Self {
        Self::Capella(p)
    }
}
