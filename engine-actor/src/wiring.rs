//! [`Wiring`]: the channels and counters one tree shares. It belongs to the supervisor and
//! outlives the actors, so a restarted child picks up where its predecessor left off (the
//! forkchoice it published, the sessions' status, the cache counters); each child gets only the
//! pieces it needs.

use std::sync::{
    Arc,
    atomic::{AtomicUsize, Ordering},
};

use engine_clients::ClientOptions;
use engine_types::EngineConfig;
use tokio::sync::{broadcast, watch};

use crate::{
    EngineEvent, ForkchoiceSnapshot, WriterStatus,
    cache::CacheCounterSet,
    engine::EngineRef,
    metrics::EngineMetrics,
    pegout::PegOutLog,
    session::SessionSet,
    writer::{PayloadStore, WriterRef},
};

/// Everything shared by the supervisor, its children and the handle.
#[derive(Debug)]
pub(crate) struct Wiring {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) client_options: Vec<ClientOptions>,
    /// Each session's status, in endpoint order (0 is the primary).
    pub(crate) sessions: SessionSet,
    /// The forkchoice the writer last applied; `None` until it synchronised with the EL.
    pub(crate) forkchoice: Arc<watch::Sender<Option<ForkchoiceSnapshot>>>,
    /// What the writer is doing.
    pub(crate) writer_status: Arc<watch::Sender<WriterStatus>>,
    /// The running EngineActor (reads, caches), `None` while it restarts.
    pub(crate) engine: Arc<watch::Sender<Option<EngineRef>>>,
    /// The running writer, `None` while it restarts.
    pub(crate) writer: watch::Sender<Option<WriterRef>>,
    /// Writes sent to the writer and not yet taken up.
    pub(crate) queued_writes: Arc<AtomicUsize>,
    /// Peg-out events.
    pub(crate) events: broadcast::Sender<EngineEvent>,
    /// Why the supervisor gave up, if it did.
    pub(crate) escalation: watch::Sender<Option<String>>,
    /// Set when the tree stopped for good (shutdown or escalation), with why: calls fail at once
    /// instead of waiting for a restart that will not come.
    pub(crate) stopped: watch::Sender<Option<String>>,
    pub(crate) metrics: Arc<EngineMetrics>,
    pub(crate) cache_counters: Arc<CacheCounterSet>,
    /// Payloads kept to catch up a client that lacks blocks (outlives writer restarts).
    pub(crate) store: Arc<PayloadStore>,
    /// Committed blocks still to scan for peg-outs, and the peg-outs found (outlives
    /// EngineActor restarts).
    pub(crate) peg_outs: Arc<PegOutLog>,
}

impl Wiring {
    /// The tree stopped for good: no actor will come back.
    pub(crate) fn stop(&self, why: String) {
        self.engine.send_replace(None);
        self.writer.send_replace(None);
        self.stopped.send_replace(Some(why));
    }

    /// A write was sent to the writer.
    pub(crate) fn write_queued(&self) {
        self.queued_writes.fetch_add(1, Ordering::AcqRel);
    }

    /// A write never reached the writer, or died with it: not waiting in any queue.
    pub(crate) fn write_dequeued(&self) {
        let _ = self
            .queued_writes
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }
}
