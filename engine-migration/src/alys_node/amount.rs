//! The node's `ConsensusAmount` and `AddBalance`, with the old arithmetic on the node's own
//! `U256` and `H160` (ethereum-types 0.14), and the checked conversions beside them.

use std::ops::Add;

use ethereum_types::{H160, U256};

/// Wei per Gwei.
const WEI_PER_GWEI: u64 = 1_000_000_000;
/// Gwei per satoshi (1 sat = 10^10 wei).
const GWEI_PER_SATOSHI: u64 = 10;

/// An amount in Gwei, as the node's consensus code handles it (withdrawal amounts, fees,
/// peg-ins). Same representation and arithmetic as the old `engine::ConsensusAmount`.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConsensusAmount(pub u64);

impl ConsensusAmount {
    /// Wei → Gwei, truncating (`wei / 10^9`), as the old engine did. An amount above
    /// `u64::MAX` Gwei (over 1.8·10^28 wei) saturates instead of aborting the process as the old
    /// `try_into().unwrap()` did; [`ConsensusAmount::try_from_wei`] reports it.
    pub fn from_wei(amount: U256) -> Self {
        Self::try_from_wei(amount).unwrap_or(Self(u64::MAX))
    }

    /// Wei → Gwei, truncating; `None` above `u64::MAX` Gwei.
    pub fn try_from_wei(amount: U256) -> Option<Self> {
        let gwei = amount / U256::from(WEI_PER_GWEI);
        (gwei <= U256::from(u64::MAX)).then(|| Self(gwei.low_u64()))
    }

    /// Satoshi → Gwei (`× 10`), as the old engine did; saturates where the old one overflowed
    /// (above 1.8·10^18 sat, far beyond the 2.1·10^15 sat that exist).
    pub const fn from_satoshi(amount: u64) -> Self {
        Self(amount.saturating_mul(GWEI_PER_SATOSHI))
    }

    /// Satoshi → Gwei; `None` on overflow.
    pub const fn try_from_satoshi(amount: u64) -> Option<Self> {
        match amount.checked_mul(GWEI_PER_SATOSHI) {
            Some(gwei) => Some(Self(gwei)),
            None => None,
        }
    }

    /// The sum; `None` on overflow.
    pub const fn checked_add(self, other: Self) -> Option<Self> {
        match self.0.checked_add(other.0) {
            Some(sum) => Some(Self(sum)),
            None => None,
        }
    }

    /// The engine's amount (the same Gwei).
    pub const fn to_engine(self) -> engine_types::ConsensusAmount {
        engine_types::ConsensusAmount(self.0)
    }
}

impl Add for ConsensusAmount {
    type Output = Self;

    /// The sum, saturating where the old `u64` addition overflowed.
    fn add(self, rhs: Self) -> Self {
        Self(self.0.saturating_add(rhs.0))
    }
}

impl PartialEq<u64> for ConsensusAmount {
    fn eq(&self, other: &u64) -> bool {
        self.0 == *other
    }
}

/// A balance to credit through a withdrawal (a peg-in or a fee share), on the node's address
/// type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddBalance(pub H160, pub ConsensusAmount);

impl From<(H160, ConsensusAmount)> for AddBalance {
    fn from((address, amount): (H160, ConsensusAmount)) -> Self {
        Self(address, amount)
    }
}

impl From<AddBalance> for engine_types::AddBalance {
    fn from(AddBalance(address, amount): AddBalance) -> Self {
        Self(
            alloy_primitives::Address::from(address.0),
            amount.to_engine(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_old_arithmetic_on_the_nodes_types() {
        let wei = U256::from(1_234_567_891_234u64);
        assert_eq!(ConsensusAmount::from_wei(wei), 1_234u64);
        assert_eq!(ConsensusAmount::from_satoshi(7), 70u64);
        assert_eq!(
            ConsensusAmount::from_satoshi(7) + ConsensusAmount(5),
            ConsensusAmount(75)
        );
        assert_eq!(ConsensusAmount::default(), 0u64);
        let above = U256::from(u64::MAX) * U256::from(WEI_PER_GWEI) + U256::from(WEI_PER_GWEI);
        assert_eq!(ConsensusAmount::try_from_wei(above), None);
        assert_eq!(ConsensusAmount::from_wei(above), ConsensusAmount(u64::MAX));
        assert_eq!(ConsensusAmount::try_from_satoshi(u64::MAX), None);
        assert_eq!(
            ConsensusAmount(u64::MAX).checked_add(ConsensusAmount(1)),
            None
        );
        let node = AddBalance::from((H160::repeat_byte(0x11), ConsensusAmount(9)));
        let ours = engine_types::AddBalance::from(node);
        assert_eq!(ours.0, alloy_primitives::Address::repeat_byte(0x11));
        assert_eq!(ours.1, engine_types::ConsensusAmount(9));
    }
}
