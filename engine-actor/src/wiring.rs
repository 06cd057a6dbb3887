//! [`Wiring`]: the channels and counters every actor of one tree shares. It outlives the
//! actors (it belongs to the supervisor), so a restarted child picks up where its predecessor
//! left off: the forkchoice it published, the sessions' status, the cache counters.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use engine_clients::ClientOptions;
use engine_types::EngineConfig;
use tokio::sync::{broadcast, watch};

use crate::{
    EngineEvent, ForkchoiceSnapshot, WriterStatus,
    cache::CacheCounters,
    engine::EngineRef,
    metrics::EngineMetrics,
    session::{SessionLink, SessionStatus},
    writer::WriterRef,
};

/// Counters of the engine's caches, kept across EngineActor restarts.
#[derive(Debug, Default)]
pub(crate) struct CacheCounterSet {
    pub(crate) payloads: Arc<CacheCounters>,
    pub(crate) blocks: Arc<CacheCounters>,
    pub(crate) receipts: Arc<CacheCounters>,
}

/// Everything shared by the supervisor, its children and the handle.
#[derive(Debug)]
pub(crate) struct Wiring {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) client_options: Vec<ClientOptions>,
    /// Each session's status, in endpoint order (0 is the primary).
    pub(crate) sessions: Vec<Arc<watch::Sender<SessionStatus>>>,
    /// The forkchoice the writer last applied; `None` until it synchronised with the EL.
    pub(crate) forkchoice: watch::Sender<Option<ForkchoiceSnapshot>>,
    /// What the writer is doing.
    pub(crate) writer_status: watch::Sender<WriterStatus>,
    /// The running EngineActor (reads, caches), `None` while it restarts.
    pub(crate) engine: watch::Sender<Option<EngineRef>>,
    /// The running writer, `None` while it restarts.
    pub(crate) writer: watch::Sender<Option<WriterRef>>,
    /// Writes sent to the writer and not yet taken up.
    pub(crate) queued_writes: AtomicUsize,
    /// Peg-out events.
    pub(crate) events: broadcast::Sender<EngineEvent>,
    /// Why the supervisor gave up, if it did.
    pub(crate) escalation: watch::Sender<Option<String>>,
    /// Set when the tree stopped for good (shutdown or escalation), with why: calls fail at once
    /// instead of waiting for a restart that will not come.
    pub(crate) stopped: watch::Sender<Option<String>>,
    pub(crate) metrics: Arc<EngineMetrics>,
    pub(crate) cache_counters: CacheCounterSet,
}

impl Wiring {
    /// The tree stopped for good: no actor will come back.
    pub(crate) fn stop(&self, why: String) {
        self.engine.send_replace(None);
        self.writer.send_replace(None);
        self.stopped.send_replace(Some(why));
    }

    /// The healthy sessions' links in endpoint order (the first is the primary).
    pub(crate) fn healthy_links(&self) -> Vec<SessionLink> {
        self.sessions
            .iter()
            .filter_map(|s| s.borrow().healthy_link())
            .collect()
    }

    /// Every session's status now.
    pub(crate) fn session_statuses(&self) -> Vec<SessionStatus> {
        self.sessions.iter().map(|s| s.borrow().clone()).collect()
    }

    /// Why no session can be used, for errors.
    pub(crate) fn no_session_reason(&self) -> String {
        let detail: Vec<String> = self
            .sessions
            .iter()
            .map(|s| s.borrow().describe())
            .collect();
        format!("no healthy execution client session: {}", detail.join("; "))
    }

    /// A write was sent to the writer.
    pub(crate) fn write_queued(&self) {
        self.queued_writes.fetch_add(1, Ordering::AcqRel);
    }

    /// The writer took a write up (or it will never arrive).
    pub(crate) fn write_dequeued(&self) {
        let _ = self
            .queued_writes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}
