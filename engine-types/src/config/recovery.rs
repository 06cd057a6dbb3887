//! [`RecoveryConfig`]: how the engine heals an execution client that lacks blocks, settles
//! disagreements between clients, and fails over without missing a slot.

use serde::{Deserialize, Serialize};

/// What a commit does when the execution clients disagree on a payload (VALID on one, INVALID
/// on another).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DisagreementPolicy {
    /// Refuse the payload: nothing is committed, the disagreement is counted and shown in the
    /// engine's status (`EngineError::Disagreement`). The default: a split between clients is
    /// a consensus bug in one of them, and an operator has to look.
    #[default]
    Refuse,
    /// Follow the primary's verdict; the disagreement is still counted and shown.
    FollowPrimary,
}

/// Catch-up, disagreement and failover settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecoveryConfig {
    /// Built, validated and committed payloads the engine keeps to replay into an execution
    /// client that lacks them (one restarted without its last blocks, a secondary that was
    /// down). Default 2048 (68 minutes of 2 s slots).
    pub stored_payloads: usize,
    /// Most blocks one catch-up replays; a client further behind must sync by itself.
    /// Default 2048.
    pub max_catch_up_blocks: usize,
    /// What a commit does when the clients disagree on a payload. Default `refuse`.
    pub disagreement: DisagreementPolicy,
    /// After how long a getPayload the primary has not answered is also asked of a secondary
    /// building the same slot (ms), at most half the slot; the first answer is used.
    /// Default 500.
    pub hedge_after_ms: u64,
    /// `/readyz` answers unready once the head has not moved for this many slots (a wedged
    /// producer or a node that stopped importing); 0 turns the check off. Default 30.
    pub ready_max_head_age_slots: u64,
}

impl RecoveryConfig {
    /// [`Self::hedge_after_ms`], at most half of a `slot_ms` slot.
    pub const fn hedge_after(&self, slot_ms: u64) -> std::time::Duration {
        let half_slot = slot_ms / 2;
        std::time::Duration::from_millis(if self.hedge_after_ms < half_slot {
            self.hedge_after_ms
        } else {
            half_slot
        })
    }
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            stored_payloads: 2_048,
            max_catch_up_blocks: 2_048,
            disagreement: DisagreementPolicy::Refuse,
            hedge_after_ms: 500,
            ready_max_head_age_slots: 30,
        }
    }
}
