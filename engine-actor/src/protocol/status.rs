//! What `status()` reports.

use serde::Serialize;

use crate::{CacheStats, ForkchoiceSnapshot, SessionStatus};

/// Cache counters of the engine.
#[derive(Debug, Clone, Default, Serialize)]
#[non_exhaustive]
pub struct CachesStatus {
    /// Payloads by id.
    pub payloads: CacheStats,
    /// Blocks by hash.
    pub blocks: CacheStats,
    /// Receipts by block hash.
    pub receipts: CacheStats,
    /// Receipt reads that joined the post-commit fetch in flight (no extra EL call).
    pub receipts_joined_in_flight: u64,
}

/// The write being applied now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InFlightWrite {
    /// The operation (`commit_payload`, ...).
    pub op: &'static str,
    /// The request's correlation id.
    pub correlation_id: u64,
    /// How long it has been running (ms), when status was taken.
    pub running_ms: u64,
    /// When it started.
    #[serde(skip)]
    pub(crate) since: Option<tokio::time::Instant>,
}

impl WriterStatus {
    /// This status with the running time of the write in flight filled in as of now.
    pub(crate) fn with_running_time(mut self) -> Self {
        if let Some(w) = &mut self.in_flight {
            w.running_ms = w.since.map_or(0, |t| {
                u64::try_from(t.elapsed().as_millis()).unwrap_or(u64::MAX)
            });
        }
        self
    }
}

/// What the writer reports: the write in flight, preparation, why it is not initialised.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct WriterStatus {
    /// How many writers have started (1 for the first; a restart adds one).
    pub generation: u64,
    /// Whether the running writer has synchronised with the EL (false while it restarts and
    /// reloads the state file).
    pub synchronized: bool,
    /// The write being applied, if any.
    pub in_flight: Option<InFlightWrite>,
    /// Writes sent and not yet taken up by the writer.
    pub queued_writes: usize,
    /// Writes applied (successfully or not) since the engine started.
    pub writes_done: u64,
    /// Writes that panicked (answered with an error; later writes went on).
    pub writes_panicked: u64,
    /// Writes never started because their caller had stopped waiting.
    pub writes_abandoned: u64,
    /// Why the engine is not synchronised with the EL, while it is not.
    pub init_error: Option<String>,
    /// Payload preparation ahead of the slot.
    pub preparation: PreparationStats,
    /// Payloads the execution clients disagreed on (VALID on one, INVALID on another).
    pub disagreements: u64,
    /// The last of them: which payload, who said what, and what the policy did.
    pub last_disagreement: Option<String>,
    /// Blocks replayed into execution clients that lacked them.
    pub blocks_replayed: u64,
}

/// What an import of a run of payloads did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct ImportReport {
    /// Payloads committed (validated and made head).
    pub imported: usize,
    /// The head after the import.
    pub head: alloy_primitives::B256,
    /// Its number.
    pub head_number: u64,
    /// Where the import stopped early and why: the index of the payload that failed.
    pub stopped: Option<(usize, String)>,
}

/// Everything `status()` reports.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct EngineStatus {
    /// Forkchoice as last applied.
    pub forkchoice: ForkchoiceSnapshot,
    /// Whether the engine has synchronised with the EL since it started.
    pub initialized: bool,
    /// Per-session health, kind, version, capabilities, circuit state.
    pub sessions: Vec<SessionStatus>,
    /// Cache counters.
    pub caches: CachesStatus,
    /// Writes waiting behind the one in flight.
    pub queued_writes: usize,
    /// The writer: write in flight, counts, preparation.
    pub writer: WriterStatus,
    /// Payload preparation ahead of the slot (same as `writer.preparation`).
    pub preparation: PreparationStats,
}

/// Count, total and largest of a latency.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct LatencyStats {
    /// Samples.
    pub count: u64,
    /// Sum (ms).
    pub total_ms: f64,
    /// Largest (ms).
    pub max_ms: f64,
}

impl LatencyStats {
    /// Add a sample.
    pub fn record(&mut self, latency: std::time::Duration) {
        let ms = latency.as_secs_f64() * 1e3;
        self.count += 1;
        self.total_ms += ms;
        self.max_ms = self.max_ms.max(ms);
    }

    /// Mean (ms), 0 without samples.
    pub fn mean_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.total_ms / self.count as f64
        }
    }
}

/// What became of payload preparations, and build latency with and without one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct PreparationStats {
    /// `PreparePayload`s that started a build at the EL.
    pub made: u64,
    /// Builds served by a preparation (getPayload only).
    pub used: u64,
    /// Preparations dropped unused (the build asked for something else, or a newer
    /// preparation replaced it).
    pub wasted: u64,
    /// Builds whose preparation the EL no longer knew (-38001), built afresh.
    pub unknown_to_el: u64,
    /// Build latency when a preparation was used.
    pub prepared_builds: LatencyStats,
    /// Build latency without one (forkchoiceUpdated + getPayload).
    pub unprepared_builds: LatencyStats,
}
