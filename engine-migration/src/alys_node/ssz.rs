//! The consensus-spec SSZ encoding of `ExecutionPayload` (Capella, Deneb; mainnet preset), to
//! and from alloy's payloads. Lighthouse's `ExecutionPayloadCapella` / `ExecutionPayloadDeneb`
//! implement the same encoding, so the node converts with `from_ssz_bytes` / `as_ssz_bytes` and
//! no Lighthouse type crosses into our crates.
//!
//! Layout (`specs/capella/beacon-chain.md`, `specs/deneb/beacon-chain.md`): the fixed part in
//! field order, with a 4-byte little-endian offset in place of each variable-size field
//! (`extra_data`, `transactions`, `withdrawals`), then the variable parts in the same order.

use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{Address, B256, Bloom, Bytes, U256};
use alloy_rpc_types_engine::{
    ExecutionPayload, ExecutionPayloadV1, ExecutionPayloadV2, ExecutionPayloadV3,
};

/// Mainnet preset bounds of the payload's lists.
pub mod limits {
    /// `MAX_EXTRA_DATA_BYTES`.
    pub const MAX_EXTRA_DATA_BYTES: usize = 32;
    /// `MAX_WITHDRAWALS_PER_PAYLOAD`.
    pub const MAX_WITHDRAWALS_PER_PAYLOAD: usize = 16;
    /// `MAX_TRANSACTIONS_PER_PAYLOAD` (2^20).
    pub const MAX_TRANSACTIONS_PER_PAYLOAD: usize = 1 << 20;
    /// `MAX_BYTES_PER_TRANSACTION` (2^30).
    pub const MAX_BYTES_PER_TRANSACTION: usize = 1 << 30;
}

/// Which container the bytes hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SszFork {
    /// `ExecutionPayload` of Capella (alloy's V2, Lighthouse's `ExecutionPayloadCapella`).
    Capella,
    /// `ExecutionPayload` of Deneb (alloy's V3, Lighthouse's `ExecutionPayloadDeneb`).
    Deneb,
}

impl SszFork {
    /// Size of the fixed part (offsets included).
    const fn fixed_len(self) -> usize {
        match self {
            Self::Capella => CAPELLA_FIXED,
            Self::Deneb => CAPELLA_FIXED + 16,
        }
    }
}

/// 32+20+32+32+256+32 + 4×8 + 4 (extra_data) + 32 (base fee) + 32 (block hash) + 4 + 4.
const CAPELLA_FIXED: usize = 512;
/// index, validator_index, address, amount.
const WITHDRAWAL_LEN: usize = 8 + 8 + 20 + 8;

/// Why a payload does not fit the consensus container, or bytes are not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PayloadSszError {
    /// A V1 (Bellatrix) or V4 payload: the node's blocks hold Capella or Deneb payloads.
    #[error("a {0} payload has no Capella/Deneb container; build it for Shanghai or Cancun")]
    UnsupportedVersion(&'static str),
    /// `extra_data` longer than `MAX_EXTRA_DATA_BYTES`.
    #[error(
        "extra_data is {len} bytes, the limit is {}",
        limits::MAX_EXTRA_DATA_BYTES
    )]
    ExtraDataTooLong {
        /// Its length.
        len: usize,
    },
    /// More withdrawals than `MAX_WITHDRAWALS_PER_PAYLOAD`.
    #[error(
        "{count} withdrawals, the limit is {}",
        limits::MAX_WITHDRAWALS_PER_PAYLOAD
    )]
    TooManyWithdrawals {
        /// How many.
        count: usize,
    },
    /// More transactions than `MAX_TRANSACTIONS_PER_PAYLOAD`.
    #[error(
        "{count} transactions, the limit is {}",
        limits::MAX_TRANSACTIONS_PER_PAYLOAD
    )]
    TooManyTransactions {
        /// How many.
        count: usize,
    },
    /// A transaction longer than `MAX_BYTES_PER_TRANSACTION`.
    #[error(
        "transaction {index} is {len} bytes, the limit is {}",
        limits::MAX_BYTES_PER_TRANSACTION
    )]
    TransactionTooLarge {
        /// Its position.
        index: usize,
        /// Its length.
        len: usize,
    },
    /// Bytes that are not a valid encoding of the container.
    #[error("not a {fork:?} ExecutionPayload in SSZ: {what}")]
    Malformed {
        /// The container expected.
        fork: SszFork,
        /// What is wrong.
        what: String,
    },
}

/// The fork whose container holds `payload`.
pub const fn ssz_fork_of(payload: &ExecutionPayload) -> Result<SszFork, PayloadSszError> {
    match payload {
        ExecutionPayload::V1(_) => Err(PayloadSszError::UnsupportedVersion("V1 (Bellatrix)")),
        ExecutionPayload::V2(_) => Ok(SszFork::Capella),
        ExecutionPayload::V3(_) => Ok(SszFork::Deneb),
        ExecutionPayload::V4(_) => Err(PayloadSszError::UnsupportedVersion("V4 (Prague)")),
    }
}

/// `payload` in SSZ: V2 as Capella's container, V3 as Deneb's. Every list bound is checked.
pub fn payload_to_ssz(payload: &ExecutionPayload) -> Result<Vec<u8>, PayloadSszError> {
    let fork = ssz_fork_of(payload)?;
    let v2 = match payload {
        ExecutionPayload::V2(p) => p,
        ExecutionPayload::V3(p) => &p.payload_inner,
        ExecutionPayload::V1(_) | ExecutionPayload::V4(_) => {
            return Err(PayloadSszError::UnsupportedVersion("V1/V4"));
        }
    };
    let v1 = &v2.payload_inner;
    check_bounds(v1, &v2.withdrawals)?;
    let tx_bytes: usize = v1.transactions.iter().map(|t| 4 + t.len()).sum();
    let mut out = Vec::with_capacity(
        fork.fixed_len() + v1.extra_data.len() + tx_bytes + v2.withdrawals.len() * WITHDRAWAL_LEN,
    );
    let extra_at = fork.fixed_len();
    let txs_at = extra_at + v1.extra_data.len();
    let withdrawals_at = txs_at + tx_bytes;
    out.extend_from_slice(v1.parent_hash.as_slice());
    out.extend_from_slice(v1.fee_recipient.as_slice());
    out.extend_from_slice(v1.state_root.as_slice());
    out.extend_from_slice(v1.receipts_root.as_slice());
    out.extend_from_slice(v1.logs_bloom.as_slice());
    out.extend_from_slice(v1.prev_randao.as_slice());
    for n in [v1.block_number, v1.gas_limit, v1.gas_used, v1.timestamp] {
        out.extend_from_slice(&n.to_le_bytes());
    }
    put_offset(&mut out, extra_at);
    out.extend_from_slice(&v1.base_fee_per_gas.to_le_bytes::<32>());
    out.extend_from_slice(v1.block_hash.as_slice());
    put_offset(&mut out, txs_at);
    put_offset(&mut out, withdrawals_at);
    if let ExecutionPayload::V3(p) = payload {
        out.extend_from_slice(&p.blob_gas_used.to_le_bytes());
        out.extend_from_slice(&p.excess_blob_gas.to_le_bytes());
    }
    out.extend_from_slice(&v1.extra_data);
    let mut at = 4 * v1.transactions.len();
    for tx in &v1.transactions {
        put_offset(&mut out, at);
        at += tx.len();
    }
    for tx in &v1.transactions {
        out.extend_from_slice(tx);
    }
    for w in &v2.withdrawals {
        out.extend_from_slice(&w.index.to_le_bytes());
        out.extend_from_slice(&w.validator_index.to_le_bytes());
        out.extend_from_slice(w.address.as_slice());
        out.extend_from_slice(&w.amount.to_le_bytes());
    }
    Ok(out)
}

fn check_bounds(
    v1: &ExecutionPayloadV1,
    withdrawals: &[Withdrawal],
) -> Result<(), PayloadSszError> {
    if v1.extra_data.len() > limits::MAX_EXTRA_DATA_BYTES {
        return Err(PayloadSszError::ExtraDataTooLong {
            len: v1.extra_data.len(),
        });
    }
    if withdrawals.len() > limits::MAX_WITHDRAWALS_PER_PAYLOAD {
        return Err(PayloadSszError::TooManyWithdrawals {
            count: withdrawals.len(),
        });
    }
    if v1.transactions.len() > limits::MAX_TRANSACTIONS_PER_PAYLOAD {
        return Err(PayloadSszError::TooManyTransactions {
            count: v1.transactions.len(),
        });
    }
    if let Some((index, tx)) = v1
        .transactions
        .iter()
        .enumerate()
        .find(|(_, t)| t.len() > limits::MAX_BYTES_PER_TRANSACTION)
    {
        return Err(PayloadSszError::TransactionTooLarge {
            index,
            len: tx.len(),
        });
    }
    Ok(())
}

fn put_offset(out: &mut Vec<u8>, offset: usize) {
    // Every offset is bounded by the list limits checked before (well under 2^32 for any
    // payload that fits in memory); saturate rather than wrap if not.
    out.extend_from_slice(&u32::try_from(offset).unwrap_or(u32::MAX).to_le_bytes());
}

/// Reads the fixed part field by field.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
    fork: SszFork,
}

impl<'a> Reader<'a> {
    fn malformed(&self, what: impl Into<String>) -> PayloadSszError {
        PayloadSszError::Malformed {
            fork: self.fork,
            what: what.into(),
        }
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], PayloadSszError> {
        let end = self.at + n;
        let slice = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| self.malformed(format!("ends at byte {}", self.bytes.len())))?;
        self.at = end;
        Ok(slice)
    }

    fn b256(&mut self) -> Result<B256, PayloadSszError> {
        Ok(B256::from_slice(self.take(32)?))
    }

    fn u64(&mut self) -> Result<u64, PayloadSszError> {
        let mut le = [0u8; 8];
        le.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(le))
    }

    fn offset(&mut self) -> Result<usize, PayloadSszError> {
        let mut le = [0u8; 4];
        le.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(le) as usize)
    }
}

/// The payload `bytes` encode, as alloy's V2 (Capella) or V3 (Deneb). Strict: offsets must be
/// in order and inside the bytes, the first one right after the fixed part, every list within
/// its bound.
pub fn payload_from_ssz(fork: SszFork, bytes: &[u8]) -> Result<ExecutionPayload, PayloadSszError> {
    let mut r = Reader { bytes, at: 0, fork };
    let parent_hash = r.b256()?;
    let fee_recipient = Address::from_slice(r.take(20)?);
    let state_root = r.b256()?;
    let receipts_root = r.b256()?;
    let logs_bloom = Bloom::from_slice(r.take(256)?);
    let prev_randao = r.b256()?;
    let block_number = r.u64()?;
    let gas_limit = r.u64()?;
    let gas_used = r.u64()?;
    let timestamp = r.u64()?;
    let extra_at = r.offset()?;
    let base_fee_per_gas = U256::from_le_slice(r.take(32)?);
    let block_hash = r.b256()?;
    let txs_at = r.offset()?;
    let withdrawals_at = r.offset()?;
    let blob_gas = match fork {
        SszFork::Capella => None,
        SszFork::Deneb => Some((r.u64()?, r.u64()?)),
    };
    if extra_at != fork.fixed_len() {
        return Err(r.malformed(format!(
            "the first offset is {extra_at}, the fixed part is {} bytes",
            fork.fixed_len()
        )));
    }
    if !(extra_at <= txs_at && txs_at <= withdrawals_at && withdrawals_at <= bytes.len()) {
        return Err(r.malformed(format!(
            "offsets {extra_at}, {txs_at}, {withdrawals_at} are out of order or beyond {} bytes",
            bytes.len()
        )));
    }
    let extra_data = &bytes[extra_at..txs_at];
    if extra_data.len() > limits::MAX_EXTRA_DATA_BYTES {
        return Err(PayloadSszError::ExtraDataTooLong {
            len: extra_data.len(),
        });
    }
    let transactions = decode_transactions(&r, &bytes[txs_at..withdrawals_at])?;
    let withdrawals = decode_withdrawals(&r, &bytes[withdrawals_at..])?;
    let v2 = ExecutionPayloadV2 {
        payload_inner: ExecutionPayloadV1 {
            parent_hash,
            fee_recipient,
            state_root,
            receipts_root,
            logs_bloom,
            prev_randao,
            block_number,
            gas_limit,
            gas_used,
            timestamp,
            extra_data: Bytes::copy_from_slice(extra_data),
            base_fee_per_gas,
            block_hash,
            transactions,
        },
        withdrawals,
    };
    Ok(match blob_gas {
        None => ExecutionPayload::V2(v2),
        Some((blob_gas_used, excess_blob_gas)) => ExecutionPayload::V3(ExecutionPayloadV3 {
            payload_inner: v2,
            blob_gas_used,
            excess_blob_gas,
        }),
    })
}

fn decode_transactions(r: &Reader<'_>, list: &[u8]) -> Result<Vec<Bytes>, PayloadSszError> {
    if list.is_empty() {
        return Ok(Vec::new());
    }
    let offset_at = |i: usize| -> Result<usize, PayloadSszError> {
        list.get(4 * i..4 * i + 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| r.malformed("the transactions list ends inside its offsets"))
    };
    let first = offset_at(0)?;
    if !first.is_multiple_of(4) || first == 0 || first > list.len() {
        return Err(r.malformed(format!(
            "the transactions list's first offset is {first} in {} bytes",
            list.len()
        )));
    }
    let count = first / 4;
    if count > limits::MAX_TRANSACTIONS_PER_PAYLOAD {
        return Err(PayloadSszError::TooManyTransactions { count });
    }
    let mut transactions = Vec::with_capacity(count);
    for i in 0..count {
        let start = offset_at(i)?;
        let end = if i + 1 == count {
            list.len()
        } else {
            offset_at(i + 1)?
        };
        if start > end || end > list.len() {
            return Err(r.malformed(format!(
                "transaction {i} spans {start}..{end} of {} bytes",
                list.len()
            )));
        }
        if end - start > limits::MAX_BYTES_PER_TRANSACTION {
            return Err(PayloadSszError::TransactionTooLarge {
                index: i,
                len: end - start,
            });
        }
        transactions.push(Bytes::copy_from_slice(&list[start..end]));
    }
    Ok(transactions)
}

fn decode_withdrawals(r: &Reader<'_>, list: &[u8]) -> Result<Vec<Withdrawal>, PayloadSszError> {
    if !list.len().is_multiple_of(WITHDRAWAL_LEN) {
        return Err(r.malformed(format!(
            "the withdrawals are {} bytes, not a multiple of {WITHDRAWAL_LEN}",
            list.len()
        )));
    }
    let count = list.len() / WITHDRAWAL_LEN;
    if count > limits::MAX_WITHDRAWALS_PER_PAYLOAD {
        return Err(PayloadSszError::TooManyWithdrawals { count });
    }
    let u64_at = |b: &[u8], at: usize| {
        let mut le = [0u8; 8];
        le.copy_from_slice(&b[at..at + 8]);
        u64::from_le_bytes(le)
    };
    Ok(list
        .chunks_exact(WITHDRAWAL_LEN)
        .map(|w| Withdrawal {
            index: u64_at(w, 0),
            validator_index: u64_at(w, 8),
            address: Address::from_slice(&w[16..36]),
            amount: u64_at(w, 36),
        })
        .collect())
}
