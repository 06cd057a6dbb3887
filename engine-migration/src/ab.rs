//! Sticky A/B assignment: an id (a session, a slot, a block hash) always lands on the same side
//! for a given percentage, on every machine and every Rust release.
//!
//! The bucket is the first 8 bytes of the id's Keccak-256, big-endian, modulo 10 000; an id goes
//! to the candidate side when its bucket is below `percent × 100`. Keccak-256 is fixed by its
//! specification (unlike `std`'s `DefaultHasher`, which may change between releases), and
//! raising the percentage only moves ids from the baseline to the candidate, never back.

use alloy_primitives::keccak256;
use engine_types::EngineError;
use serde::Serialize;

/// Buckets per split (so a split has 0.01 % resolution).
pub const BUCKETS: u64 = 10_000;

/// The side of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Side {
    /// The path in production today (legacy engine, Lighthouse v4).
    Baseline,
    /// The path being rolled out (actor, Lighthouse v5).
    Candidate,
}

/// An id's bucket, `0..BUCKETS`.
pub fn bucket(id: &[u8]) -> u64 {
    let hash = keccak256(id);
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash[..8]);
    u64::from_be_bytes(first) % BUCKETS
}

/// `percent` % of ids go to the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AbSplit {
    percent: u8,
}

impl AbSplit {
    /// A split sending `percent` (0–100) % of ids to the candidate.
    pub fn new(percent: u8) -> Result<Self, EngineError> {
        if percent > 100 {
            return Err(EngineError::invalid_request(
                "percent",
                format!("{percent} is not a percentage; use 0 to 100"),
            ));
        }
        Ok(Self { percent })
    }

    /// The percentage sent to the candidate.
    pub const fn percent(self) -> u8 {
        self.percent
    }

    /// Where `id` goes.
    pub fn side(self, id: &[u8]) -> Side {
        if bucket(id) < u64::from(self.percent) * (BUCKETS / 100) {
            Side::Candidate
        } else {
            Side::Baseline
        }
    }

    /// Where the slot at `timestamp` goes (the key is the timestamp's 8 big-endian bytes, so a
    /// replay of the same slots gives the same split).
    pub fn side_for_slot(self, timestamp: u64) -> Side {
        self.side(&timestamp.to_be_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ends_are_all_or_nothing() {
        let (none, all) = (AbSplit::new(0).unwrap(), AbSplit::new(100).unwrap());
        for i in 0u32..1000 {
            assert_eq!(none.side(&i.to_be_bytes()), Side::Baseline);
            assert_eq!(all.side(&i.to_be_bytes()), Side::Candidate);
        }
        assert!(AbSplit::new(101).is_err());
    }

    #[test]
    fn raising_the_percentage_never_moves_an_id_back() {
        for i in 0u32..2000 {
            let id = format!("session-{i}");
            let mut seen_candidate = false;
            for p in 0..=100 {
                let side = AbSplit::new(p).unwrap().side(id.as_bytes());
                if seen_candidate {
                    assert_eq!(side, Side::Candidate, "{id} moved back at {p} %");
                }
                seen_candidate |= side == Side::Candidate;
            }
        }
    }
}
