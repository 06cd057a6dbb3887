//! [`AdapterConfig`] (comparison, rollback thresholds, shadow queue) and the [`Operation`]s
//! the adapter counts.

use crate::{health::Thresholds, legacy::StateValidator};

/// The adapter's operations (metric labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Operation {
    /// `build_block`.
    Build,
    /// `commit_block`.
    Commit,
    /// `set_finalized`.
    Finalize,
    /// `get_block_with_txs`.
    GetBlock,
    /// `get_transaction_receipt`.
    GetReceipt,
    /// `get_payload_bodies_by_hash_v1` (the node's `engine.api` call).
    GetPayloadBodies,
    /// `get_payload_by_tag_from_engine` (genesis).
    GetPayloadByTag,
}

impl Operation {
    pub(super) const COUNT: usize = 7;

    pub(super) const fn index(self) -> usize {
        match self {
            Self::Build => 0,
            Self::Commit => 1,
            Self::Finalize => 2,
            Self::GetBlock => 3,
            Self::GetReceipt => 4,
            Self::GetPayloadBodies => 5,
            Self::GetPayloadByTag => 6,
        }
    }

    /// The metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Build => "build",
            Self::Commit => "commit",
            Self::Finalize => "finalize",
            Self::GetBlock => "get_block",
            Self::GetReceipt => "get_receipt",
            Self::GetPayloadBodies => "get_payload_bodies",
            Self::GetPayloadByTag => "get_payload_by_tag",
        }
    }

    /// Whether the operation changes the ledger's state (a commit or finalization).
    pub(super) const fn changes_state(self) -> bool {
        matches!(self, Self::Commit | Self::Finalize)
    }
}

/// How the adapter compares, when it rolls back, and how much shadow work it queues.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct AdapterConfig {
    /// How results are compared.
    pub validator: StateValidator,
    /// When the health check rolls back.
    pub thresholds: Thresholds,
    /// Shadow jobs queued at most; more are dropped (counted).
    pub shadow_queue: usize,
    /// Consecutive failed health checks (one after each call) that roll back; one noisy
    /// sample does not roll a fleet back (ALYS-011 says three). 0 or 1: the first does.
    /// Default 3.
    pub failed_checks_to_roll_back: u32,
}

impl Default for AdapterConfig {
    fn default() -> Self {
        Self {
            validator: StateValidator::default(),
            thresholds: Thresholds::default(),
            shadow_queue: 64,
            failed_checks_to_roll_back: 3,
        }
    }
}

impl AdapterConfig {
    /// Roll back after this many consecutive failed health checks.
    pub const fn with_failed_checks_to_roll_back(mut self, checks: u32) -> Self {
        self.failed_checks_to_roll_back = checks;
        self
    }

    /// Roll back on these thresholds.
    pub const fn with_thresholds(mut self, thresholds: Thresholds) -> Self {
        self.thresholds = thresholds;
        self
    }

    /// Compare with this validator.
    pub const fn with_validator(mut self, validator: StateValidator) -> Self {
        self.validator = validator;
        self
    }

    /// Queue at most this many shadow jobs.
    pub const fn with_shadow_queue(mut self, jobs: usize) -> Self {
        self.shadow_queue = jobs;
        self
    }
}
