//! Peg-in amounts: the legacy `ConsensusAmount` (Gwei) and `AddBalance`, with checked
//! conversions.

use alloy_eips::eip4895::Withdrawal;
use alloy_primitives::{Address, U256};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Wei per Gwei.
const WEI_PER_GWEI: u64 = 1_000_000_000;
/// Gwei per satoshi: 1 sat = 1e10 wei = 10 Gwei.
const GWEI_PER_SATOSHI: u64 = 10;

/// An amount in Gwei, the unit of withdrawals (and so of peg-ins) on the execution layer.
///
/// ```
/// use engine_types::ConsensusAmount;
/// use alloy_primitives::U256;
/// assert_eq!(ConsensusAmount::from_satoshi(1).unwrap(), 10u64);
/// assert_eq!(ConsensusAmount::from_wei(U256::from(1_999_999_999u64)).unwrap(), 1u64);
/// assert!(ConsensusAmount::from_satoshi(u64::MAX).is_err()); // an error, not a wrap or panic
/// ```
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct ConsensusAmount(pub u64);

impl ConsensusAmount {
    /// `floor(wei / 1e9)`; an error when the result does not fit in `u64` Gwei.
    pub fn from_wei(wei: U256) -> Result<Self, EngineError> {
        let gwei = wei / U256::from(WEI_PER_GWEI);
        u64::try_from(gwei).map(Self).map_err(|_| {
            EngineError::invalid_request(
                "amount",
                format!("{wei} wei is more than u64::MAX Gwei and cannot be a withdrawal"),
            )
        })
    }

    /// `sat × 10` (1 satoshi = 10 Gwei); an error on overflow.
    pub fn from_satoshi(satoshi: u64) -> Result<Self, EngineError> {
        satoshi
            .checked_mul(GWEI_PER_SATOSHI)
            .map(Self)
            .ok_or_else(|| {
                EngineError::invalid_request(
                    "amount",
                    format!(
                        "{satoshi} sat overflows u64 Gwei (max {} sat)",
                        u64::MAX / 10
                    ),
                )
            })
    }

    /// The amount in wei (cannot overflow `U256`).
    pub fn to_wei(self) -> U256 {
        U256::from(self.0) * U256::from(WEI_PER_GWEI)
    }

    /// Checked addition; an error instead of a wrap.
    pub fn checked_add(self, other: Self) -> Result<Self, EngineError> {
        self.0.checked_add(other.0).map(Self).ok_or_else(|| {
            EngineError::invalid_request(
                "amount",
                format!("{} + {} Gwei overflows", self.0, other.0),
            )
        })
    }
}

impl PartialEq<u64> for ConsensusAmount {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for ConsensusAmount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} Gwei", self.0)
    }
}

/// A peg-in: credit `amount` to `address`, carried to the EL as a withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct AddBalance(pub Address, pub ConsensusAmount);

/// The domain name for an [`AddBalance`].
pub type PegIn = AddBalance;

impl AddBalance {
    /// The credited address.
    pub const fn address(&self) -> Address {
        self.0
    }

    /// The credited amount.
    pub const fn amount(&self) -> ConsensusAmount {
        self.1
    }

    /// The withdrawal carrying this peg-in. `index` should be unique and increasing across the
    /// chain (the legacy engine always sent 0, which every EL accepts but makes identical
    /// peg-ins indistinguishable).
    pub const fn into_withdrawal(self, index: u64) -> Withdrawal {
        Withdrawal {
            index,
            validator_index: 0,
            address: self.0,
            amount: self.1.0,
        }
    }
}

impl From<(Address, ConsensusAmount)> for AddBalance {
    fn from((address, amount): (Address, ConsensusAmount)) -> Self {
        Self(address, amount)
    }
}

impl From<&Withdrawal> for AddBalance {
    fn from(w: &Withdrawal) -> Self {
        Self(w.address, ConsensusAmount(w.amount))
    }
}

/// Turn peg-ins into withdrawals with consecutive indices starting at `first_index`.
pub fn withdrawals_from_peg_ins(peg_ins: &[AddBalance], first_index: u64) -> Vec<Withdrawal> {
    peg_ins
        .iter()
        .zip(first_index..)
        .map(|(peg_in, index)| peg_in.into_withdrawal(index))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn satoshi_is_ten_gwei_and_wei_is_floored() {
        assert_eq!(
            ConsensusAmount::from_satoshi(100_000_000).unwrap(),
            1_000_000_000u64
        );
        assert_eq!(
            ConsensusAmount::from_wei(U256::from(999_999_999u64)).unwrap(),
            0u64
        );
        assert_eq!(
            ConsensusAmount::from_wei(U256::from(10u64.pow(18))).unwrap(),
            10u64.pow(9)
        );
        assert!(ConsensusAmount::from_wei(U256::MAX).is_err());
        assert!(
            ConsensusAmount(u64::MAX)
                .checked_add(ConsensusAmount(1))
                .is_err()
        );
    }

    #[test]
    fn withdrawals_get_unique_increasing_indices() {
        let a = Address::repeat_byte(1);
        let peg_ins = vec![
            AddBalance(a, ConsensusAmount(5)),
            AddBalance(a, ConsensusAmount(5)),
        ];
        let ws = withdrawals_from_peg_ins(&peg_ins, 7);
        assert_eq!(ws.iter().map(|w| w.index).collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(ws[0].amount, 5);
        assert_eq!(AddBalance::from(&ws[1]), peg_ins[1]);
    }

    proptest! {
        #[test]
        fn from_satoshi_is_checked_times_ten(sat in any::<u64>()) {
            match sat.checked_mul(10) {
                Some(g) => prop_assert_eq!(ConsensusAmount::from_satoshi(sat).unwrap().0, g),
                None => prop_assert!(ConsensusAmount::from_satoshi(sat).is_err()),
            }
        }

        #[test]
        fn from_wei_round_trips_whole_gwei(gwei in any::<u64>(), rest in 0u64..1_000_000_000) {
            let wei = ConsensusAmount(gwei).to_wei() + U256::from(rest);
            prop_assert_eq!(ConsensusAmount::from_wei(wei).unwrap().0, gwei);
        }
    }
}
