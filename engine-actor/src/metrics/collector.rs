//! [`StatusCollector`]: the families derived from state, read when Prometheus scrapes — cache
//! counters (kept across EngineActor restarts), each session's breaker, connection and sync, and
//! the peg-out scans still to do.

use std::sync::Arc;

use prometheus::{
    GaugeVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    core::{Collector, Desc},
    proto::MetricFamily,
};
use tracing::warn;

use super::names;
use crate::{CircuitState, cache::CacheCounterSet, pegout::PegOutLog, session::SessionSet};

/// The families, freshly made for one scrape (values are set, never incremented).
struct Families {
    cache_hits: IntCounterVec,
    cache_misses: IntCounterVec,
    cache_evictions: IntCounterVec,
    cache_entries: IntGaugeVec,
    circuit_changes: IntCounterVec,
    circuit_rejections: IntCounterVec,
    circuit_state: IntGaugeVec,
    connection_status: IntGaugeVec,
    sync_progress: GaugeVec,
    peg_out_scans_pending: IntGauge,
}

impl Families {
    fn new() -> Result<Self, prometheus::Error> {
        use names::*;
        let counter = |name: &str, help: &str, label: &str| {
            IntCounterVec::new(Opts::new(name, help), &[label])
        };
        let gauge =
            |name: &str, help: &str, label: &str| IntGaugeVec::new(Opts::new(name, help), &[label]);
        Ok(Self {
            cache_hits: counter(CACHE_HITS_TOTAL, "Cache hits by cache.", "cache")?,
            cache_misses: counter(CACHE_MISSES_TOTAL, "Cache misses by cache.", "cache")?,
            cache_evictions: counter(
                CACHE_EVICTIONS_TOTAL,
                "Cache evictions (capacity or expiry) by cache.",
                "cache",
            )?,
            cache_entries: gauge(CACHE_ENTRIES, "Cache entries by cache.", "cache")?,
            circuit_changes: IntCounterVec::new(
                Opts::new(
                    CIRCUIT_BREAKER_STATE_CHANGES_TOTAL,
                    "Circuit breaker state changes by endpoint, from and to state.",
                ),
                &["endpoint", "from_state", "to_state"],
            )?,
            circuit_rejections: counter(
                CIRCUIT_BREAKER_REJECTIONS_TOTAL,
                "Calls refused without IO because the endpoint's circuit breaker was open.",
                "endpoint",
            )?,
            circuit_state: gauge(
                CIRCUIT_BREAKER_STATE,
                "Circuit breaker state (0 closed, 1 half-open, 2 open).",
                "endpoint",
            )?,
            connection_status: gauge(
                CONNECTION_STATUS,
                "1 while the endpoint answers (connected, breaker not open, last call or poll without a connectivity error), else 0.",
                "endpoint",
            )?,
            sync_progress: GaugeVec::new(
                Opts::new(
                    SYNC_PROGRESS_PERCENT,
                    "Execution client sync progress (100 when synced).",
                ),
                &["endpoint"],
            )?,
            peg_out_scans_pending: IntGauge::new(
                PEG_OUT_SCANS_PENDING,
                "Committed blocks whose receipts are still to be scanned for peg-outs.",
            )?,
        })
    }

    fn collectors(&self) -> [&dyn Collector; 10] {
        [
            &self.cache_hits,
            &self.cache_misses,
            &self.cache_evictions,
            &self.cache_entries,
            &self.circuit_changes,
            &self.circuit_rejections,
            &self.circuit_state,
            &self.connection_status,
            &self.sync_progress,
            &self.peg_out_scans_pending,
        ]
    }

    fn fill(&self, sessions: &SessionSet, caches: &CacheCounterSet, peg_outs: &PegOutLog) {
        self.peg_out_scans_pending
            .set(i64::try_from(peg_outs.pending_count()).unwrap_or(i64::MAX));
        for (name, counters) in [
            ("payloads", &caches.payloads),
            ("blocks", &caches.blocks),
            ("receipts", &caches.receipts),
        ] {
            let (hits, misses, evictions) = counters.read();
            self.cache_hits.with_label_values(&[name]).inc_by(hits);
            self.cache_misses.with_label_values(&[name]).inc_by(misses);
            self.cache_evictions
                .with_label_values(&[name])
                .inc_by(evictions);
            self.cache_entries
                .with_label_values(&[name])
                .set(i64::try_from(counters.entries()).unwrap_or(i64::MAX));
        }
        for session in sessions.iter() {
            let s = session.borrow();
            let ep = s.endpoint.as_str();
            // Every possible change is exported from the start (at 0), so alerts have a series.
            for (from, to) in [
                (CircuitState::Closed, CircuitState::Open),
                (CircuitState::HalfOpen, CircuitState::Open),
                (CircuitState::HalfOpen, CircuitState::Closed),
            ] {
                self.circuit_changes
                    .with_label_values(&[ep, from.label(), to.label()]);
            }
            for change in &s.circuit_changes {
                self.circuit_changes
                    .with_label_values(&[ep, change.from.label(), change.to.label()])
                    .inc_by(change.count);
            }
            self.circuit_rejections
                .with_label_values(&[ep])
                .inc_by(s.breaker_rejections);
            let state = match s.circuit {
                CircuitState::Closed => 0,
                CircuitState::HalfOpen => 1,
                CircuitState::Open => 2,
            };
            self.circuit_state.with_label_values(&[ep]).set(state);
            self.connection_status
                .with_label_values(&[ep])
                .set(i64::from(s.is_reachable()));
            if let Some(sync) = s.sync {
                self.sync_progress
                    .with_label_values(&[ep])
                    .set(sync.progress_percent());
            }
        }
    }
}

/// Reads the tree's sessions and cache counters at scrape time.
pub(crate) struct StatusCollector {
    sessions: SessionSet,
    caches: Arc<CacheCounterSet>,
    peg_outs: Arc<PegOutLog>,
    descs: Vec<Desc>,
}

impl StatusCollector {
    /// A collector over `sessions`, `caches` and the peg-out log.
    pub(crate) fn new(
        sessions: SessionSet,
        caches: Arc<CacheCounterSet>,
        peg_outs: Arc<PegOutLog>,
    ) -> Result<Self, prometheus::Error> {
        let descs = Families::new()?
            .collectors()
            .iter()
            .flat_map(|c| c.desc().into_iter().cloned())
            .collect();
        Ok(Self {
            sessions,
            caches,
            peg_outs,
            descs,
        })
    }
}

impl Collector for StatusCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let families = match Families::new() {
            Ok(f) => f,
            Err(e) => {
                warn!(error = %e, "cannot build the status metric families");
                return Vec::new();
            }
        };
        families.fill(&self.sessions, &self.caches, &self.peg_outs);
        families
            .collectors()
            .iter()
            .flat_map(|c| c.collect())
            .collect()
    }
}
