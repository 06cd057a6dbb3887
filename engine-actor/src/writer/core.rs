//! [`WriteCore`]: the writer's state and the application of one write, independent of the
//! actor (unit tests drive it with any [`ExecutionClient`]).

use std::{future::Future, panic::AssertUnwindSafe, sync::Arc, time::Duration};

use engine_clients::ExecutionClient;
use engine_types::{
    EngineConfig, EngineError, FinalizeRequest, RevertRequest, validate_execution_data,
};
use futures_util::FutureExt;
use tokio::time::Instant;
use tracing::{Instrument, debug, error};

use super::{
    build::{self, PreparationChange, Prepared},
    commit,
    env::{Changes, WriteEnv},
    finality, forkchoice,
    store::PayloadStore,
};
use crate::{
    ForkchoiceSnapshot, InFlightWrite, WriterStatus,
    engine::CacheUpdate,
    metrics::EngineMetrics,
    protocol::{Reply, RequestContext, WriteRequest},
    session::SessionLink,
};

/// What a write changes outside the writer, in the order the writer hands it out (all before
/// the caller is answered).
#[derive(Debug)]
pub(crate) enum Effect {
    /// The forkchoice the writer now holds.
    Forkchoice(ForkchoiceSnapshot),
    /// The writer's status changed (a write started or finished).
    Status(Box<WriterStatus>),
    /// Something for the EngineActor's caches.
    Cache(CacheUpdate),
}

/// The writer's state: the forkchoice it holds, whether it has synchronised with the EL, the
/// preparation made ahead of the slot, and what it reports.
pub(crate) struct WriteCore {
    config: Arc<EngineConfig>,
    metrics: Arc<EngineMetrics>,
    snapshot: ForkchoiceSnapshot,
    initialized: bool,
    prepared: Option<Prepared>,
    status: WriterStatus,
    store: Arc<PayloadStore>,
}

/// Checks done before any IO; on failure the request is answered at once.
fn precheck(config: &EngineConfig, request: &WriteRequest) -> Result<(), EngineError> {
    match request {
        WriteRequest::BuildPayload(req, _) | WriteRequest::PreparePayload(req, _) => {
            req.validate(config.max_withdrawals_per_block, &config.fork_schedule)
        }
        WriteRequest::CommitPayload(data, _) | WriteRequest::ValidatePayload(data, _) => {
            validate_execution_data(data, &config.fork_schedule)
        }
        WriteRequest::ImportPayloads(payloads, _, _) => {
            for (i, data) in payloads.iter().enumerate() {
                validate_execution_data(data, &config.fork_schedule).map_err(|e| {
                    EngineError::invalid_request(format!("payloads[{i}]"), e.to_string())
                })?;
                if i > 0 && data.payload.parent_hash() != payloads[i - 1].payload.block_hash() {
                    return Err(EngineError::invalid_request(
                        format!("payloads[{i}]"),
                        "its parent is not the payload before it; import a run of consecutive blocks",
                    ));
                }
            }
            Ok(())
        }
        WriteRequest::FinalizeBlock(hash, _) => FinalizeRequest { hash: *hash }.validate(),
        WriteRequest::RevertToBlock(hash, _) => RevertRequest { hash: *hash }.validate(),
        WriteRequest::UpdateForkchoice(s, _) | WriteRequest::InitializeFromLegacy(s, _, _) => {
            if s.head_block_hash.is_zero() {
                Err(EngineError::invalid_request("head_block_hash", "zero hash"))
            } else {
                Ok(())
            }
        }
    }
}

/// The message of a caught panic.
fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a non-string panic".to_owned())
}

impl WriteCore {
    /// Not yet synchronised; `status` carries on from a predecessor's counters.
    pub(crate) fn new(
        config: Arc<EngineConfig>,
        metrics: Arc<EngineMetrics>,
        status: WriterStatus,
        store: Arc<PayloadStore>,
    ) -> Self {
        Self {
            config,
            metrics,
            snapshot: ForkchoiceSnapshot::default(),
            initialized: false,
            prepared: None,
            status: WriterStatus {
                generation: status.generation + 1,
                synchronized: false,
                in_flight: None,
                ..status
            },
            store,
        }
    }

    /// The payloads kept for catch-ups.
    pub(crate) const fn store(&self) -> &Arc<PayloadStore> {
        &self.store
    }

    /// Whether the writer has synchronised with the EL.
    pub(crate) const fn is_initialized(&self) -> bool {
        self.initialized
    }

    /// What the writer reports.
    pub(crate) const fn status(&self) -> &WriterStatus {
        &self.status
    }

    /// The forkchoice it holds.
    #[cfg(test)]
    pub(crate) const fn snapshot(&self) -> &ForkchoiceSnapshot {
        &self.snapshot
    }

    /// Initialisation found `snapshot` (reloaded and re-announced, or the EL's own head).
    pub(crate) fn initialized(
        &mut self,
        snapshot: ForkchoiceSnapshot,
        effects: &mut impl FnMut(Effect),
    ) {
        self.snapshot = snapshot;
        self.initialized = true;
        self.status.init_error = None;
        self.status.synchronized = true;
        self.count_replayed();
        effects(Effect::Forkchoice(snapshot));
        effects(Effect::Status(Box::new(self.status.clone())));
    }

    /// Initialisation failed for `reason` (reported until an attempt succeeds).
    pub(crate) fn initialization_failed(
        &mut self,
        reason: String,
        effects: &mut impl FnMut(Effect),
    ) {
        self.status.init_error = Some(reason);
        effects(Effect::Status(Box::new(self.status.clone())));
    }

    /// Apply one write over `links` (healthy sessions, the primary first; `no_session` says
    /// why there are none) and answer its caller. Effects are handed out before the answer.
    pub(crate) async fn apply<C: ExecutionClient>(
        &mut self,
        ctx: RequestContext,
        request: WriteRequest,
        links: Vec<SessionLink<C>>,
        no_session: Option<String>,
        effects: &mut impl FnMut(Effect),
    ) {
        let op = request.name();
        if request.caller_gone() {
            // Its deadline passed while it waited: it was answered with a timeout already.
            debug!(
                op,
                correlation_id = ctx.correlation_id,
                "write dropped: the caller stopped waiting"
            );
            self.status.writes_abandoned += 1;
            effects(Effect::Status(Box::new(self.status.clone())));
            return;
        }
        let adopts = matches!(request, WriteRequest::InitializeFromLegacy(..));
        if !self.initialized && !adopts {
            let reason = format!(
                "not synchronised with the execution client yet: {}",
                self.status.init_error.as_deref().unwrap_or("initialising")
            );
            return request.fail(EngineError::Unavailable { reason });
        }
        if let Err(e) = precheck(&self.config, &request) {
            return request.fail(e);
        }
        let Some(env) = WriteEnv::new(
            Arc::clone(&self.config),
            self.snapshot,
            links,
            self.prepared.clone(),
            Arc::clone(&self.store),
        ) else {
            let reason = no_session.unwrap_or_else(|| "no execution client session".into());
            return request.fail(EngineError::Unavailable { reason });
        };
        self.status.in_flight = Some(InFlightWrite {
            op,
            correlation_id: ctx.correlation_id,
            running_ms: 0,
            since: Some(Instant::now()),
        });
        effects(Effect::Status(Box::new(self.status.clone())));
        let span = ctx.span;
        let env = &env;
        match request {
            WriteRequest::BuildPayload(req, reply) => {
                self.finish(op, reply, build::build(env, req).instrument(span), effects)
                    .await;
            }
            WriteRequest::PreparePayload(req, reply) => {
                self.finish(
                    op,
                    reply,
                    build::prepare(env, req).instrument(span),
                    effects,
                )
                .await;
            }
            WriteRequest::CommitPayload(data, reply) => {
                self.finish(
                    op,
                    reply,
                    commit::commit(env, *data).instrument(span),
                    effects,
                )
                .await;
            }
            WriteRequest::ImportPayloads(payloads, fcu_every, reply) => {
                self.finish(
                    op,
                    reply,
                    engine_clients::with_import_deadlines(commit::import(env, payloads, fcu_every))
                        .instrument(span),
                    effects,
                )
                .await;
            }
            WriteRequest::ValidatePayload(data, reply) => {
                self.finish(
                    op,
                    reply,
                    commit::validate(env, *data).instrument(span),
                    effects,
                )
                .await;
            }
            WriteRequest::FinalizeBlock(hash, reply) => {
                self.finish(
                    op,
                    reply,
                    finality::finalize(env, hash).instrument(span),
                    effects,
                )
                .await;
            }
            WriteRequest::RevertToBlock(hash, reply) => {
                self.finish(
                    op,
                    reply,
                    finality::revert(env, hash).instrument(span),
                    effects,
                )
                .await;
            }
            WriteRequest::UpdateForkchoice(state, reply) => {
                let work = async move {
                    forkchoice::set_forkchoice(env, state, None)
                        .await
                        .map(|(_, changes)| ((), changes))
                };
                self.finish(op, reply, work.instrument(span), effects).await;
            }
            WriteRequest::InitializeFromLegacy(state, index, reply) => {
                let work = forkchoice::set_forkchoice(env, state, index);
                if self.finish(op, reply, work.instrument(span), effects).await {
                    self.initialized = true;
                    self.status.init_error = None;
                    self.status.synchronized = true;
                }
            }
        }
        self.status.in_flight = None;
        effects(Effect::Status(Box::new(self.status.clone())));
    }

    /// Run `work`, catching a panic; apply its changes, record metrics, answer.
    async fn finish<T: Send>(
        &mut self,
        op: &'static str,
        reply: Reply<T>,
        work: impl Future<Output = Result<(T, Changes), EngineError>>,
        effects: &mut impl FnMut(Effect),
    ) -> bool {
        let started = Instant::now();
        let result = match AssertUnwindSafe(work).catch_unwind().await {
            Ok(Ok((value, changes))) => {
                self.take(op, changes, effects);
                Ok(value)
            }
            Ok(Err(e)) => {
                if matches!(e, EngineError::Disagreement { .. }) {
                    self.record_disagreement(format!("{e}"), "refused");
                }
                Err(e)
            }
            Err(panic) => {
                let message = panic_message(panic.as_ref());
                error!(op, panic = %message, "a write panicked; nothing was applied and later writes go on");
                self.status.writes_panicked += 1;
                Err(EngineError::Unavailable {
                    reason: format!(
                        "the {op} write panicked ({message}); the engine's state is unchanged and later writes go on"
                    ),
                })
            }
        };
        let ok = result.is_ok();
        self.record(op, started.elapsed(), ok);
        self.status.writes_done += 1;
        self.count_replayed();
        let _ = reply.send(result);
        ok
    }

    fn record(&self, op: &'static str, elapsed: Duration, ok: bool) {
        let m = &self.metrics;
        m.write_duration
            .with_label_values(&[op, if ok { "ok" } else { "error" }])
            .observe(elapsed.as_secs_f64());
        if !ok {
            return;
        }
        match op {
            "build_payload" => m.blocks_built.inc(),
            "commit_payload" => {
                m.blocks_committed.inc();
                m.commit_duration.observe(elapsed.as_secs_f64());
            }
            "finalize_block" => {
                m.blocks_finalized.inc();
                m.finalize_duration.observe(elapsed.as_secs_f64());
            }
            _ => {}
        }
    }

    /// Apply a successful write's changes.
    fn take(&mut self, op: &'static str, changes: Changes, effects: &mut impl FnMut(Effect)) {
        let Changes {
            snapshot,
            built,
            committed,
            finalized,
            preparation,
            build_latency,
            disagreement,
        } = changes;
        if let Some(what) = disagreement {
            self.record_disagreement(format!("{what}; followed the primary"), "followed");
        }
        if let Some(snapshot) = snapshot {
            self.snapshot = snapshot;
            effects(Effect::Forkchoice(snapshot));
        }
        if let Some(change) = preparation {
            self.take_preparation(change);
        }
        if let Some((prepared, latency)) = build_latency {
            self.metrics
                .build_duration
                .with_label_values(&[if prepared { "true" } else { "false" }])
                .observe(latency.as_secs_f64());
            let stats = &mut self.status.preparation;
            let l = if prepared {
                &mut stats.prepared_builds
            } else {
                &mut stats.unprepared_builds
            };
            l.record(latency);
        }
        if let Some(built) = built {
            effects(Effect::Cache(CacheUpdate::Built(Box::new(built))));
        }
        if op == "import_payloads" {
            // A commit made head by an import counts like one by commit_payload.
            self.metrics.blocks_committed.inc_by(committed.len() as u64);
        }
        for committed in committed {
            self.metrics.observe_payload(
                committed.size_bytes,
                committed.transactions,
                committed.gas_used,
            );
            effects(Effect::Cache(CacheUpdate::Committed(committed)));
        }
        if let Some(hash) = finalized {
            effects(Effect::Cache(CacheUpdate::Finalized(hash)));
        }
        debug!(op, head = %self.snapshot.head, "write applied");
    }

    /// Blocks replayed into clients since the last count (the store counts them as they go).
    fn count_replayed(&mut self) {
        let replayed = self.store.replayed();
        self.metrics
            .blocks_replayed
            .inc_by(replayed.saturating_sub(self.status.blocks_replayed));
        self.status.blocks_replayed = replayed;
    }

    /// A disagreement between clients, counted and kept for the status.
    fn record_disagreement(&mut self, what: String, outcome: &'static str) {
        self.status.disagreements += 1;
        self.status.last_disagreement = Some(what);
        self.metrics
            .disagreements
            .with_label_values(&[outcome])
            .inc();
    }

    fn take_preparation(&mut self, change: PreparationChange) {
        if let Some(label) = change.label() {
            self.metrics.preparations.with_label_values(&[label]).inc();
        }
        let stats = &mut self.status.preparation;
        match change {
            PreparationChange::Made(prepared) => {
                stats.made += 1;
                if self.prepared.replace(*prepared).is_some() {
                    stats.wasted += 1;
                    self.metrics
                        .preparations
                        .with_label_values(&["wasted"])
                        .inc();
                }
            }
            PreparationChange::Used => {
                stats.used += 1;
                self.prepared = None;
            }
            PreparationChange::UnknownToEl => {
                stats.unknown_to_el += 1;
                self.prepared = None;
            }
            PreparationChange::Wasted => {
                stats.wasted += 1;
                self.prepared = None;
            }
            PreparationChange::None => {}
        }
    }
}
