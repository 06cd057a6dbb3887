//! The writer: the one owner of the execution client's state and of the state file. Every
//! state-changing request (build, prepare, commit, validate, finalize, revert, set or adopt the
//! forkchoice) goes through its mailbox and is awaited inline, so writes are ordered by
//! construction: no flag saying a write runs, no lock shared across restarts.
//!
//! After a write it publishes the forkchoice on a `watch` channel (read by the handle and the
//! EngineActor without a message), hands cache updates to whichever EngineActor is running, and
//! answers the caller itself — an EngineActor restart loses no reply. A write that panics is
//! answered with an error and changes nothing; the next write runs as usual. Shutdown stops the
//! writer between writes, so the write in flight finishes first.
//!
//! | file | what |
//! |---|---|
//! | `env.rs` | [`WriteEnv`](env::WriteEnv), [`Changes`](env::Changes), shared steps |
//! | `build.rs` | build and prepare |
//! | `commit.rs` | commit and validate |
//! | `finality.rs` | finalize and revert |
//! | `forkchoice.rs` | set/adopt the forkchoice, initialisation |
//! | `catch_up.rs` | replaying the blocks a session lacks |
//! | `store.rs` | [`PayloadStore`](store::PayloadStore): the payloads kept for catch-ups |
//! | `core.rs` | [`WriteCore`](core::WriteCore): applying one write, independent of the actor |

mod build;
mod catch_up;
mod commit;
mod core;
mod env;
mod finality;
mod forkchoice;
mod store;
#[cfg(test)]
mod tests;

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

pub(crate) use core::{Effect, WriteCore};
use engine_types::{EngineConfig, EngineError};
use ractor::{Actor, ActorProcessingErr, ActorRef};
pub(crate) use store::PayloadStore;
use tokio::sync::watch;
use tracing::{info, warn};

use crate::{
    ForkchoiceSnapshot, WriterStatus,
    engine::{EngineMsg, EngineRef},
    metrics::EngineMetrics,
    protocol::{RequestContext, WriteRequest},
    session::SessionSet,
};

/// A reference to the writer.
pub(crate) type WriterRef = ActorRef<WriterMsg>;

/// First delay between initialisation attempts while the EL is unreachable; doubled per
/// failed attempt up to [`INIT_RETRY_MAX`].
const INIT_RETRY_FIRST: Duration = Duration::from_millis(20);
/// Longest delay between initialisation attempts.
const INIT_RETRY_MAX: Duration = Duration::from_millis(500);

/// Messages of the writer.
pub(crate) enum WriterMsg {
    /// A state-changing request.
    Write(RequestContext, WriteRequest),
    /// Try to synchronise with the EL again. Only the latest scheduled attempt acts (a stale
    /// timer finding the writer initialised, or superseded, does nothing).
    RetryInitialize {
        /// Which scheduled attempt this is.
        attempt: u64,
    },
    /// Test hook: panic inside the handler (outside any write).
    #[cfg(feature = "test-hooks")]
    Crash,
}

/// Construction arguments of the writer: what it reads and where it publishes.
pub(crate) struct WriterArgs {
    pub(crate) config: Arc<EngineConfig>,
    pub(crate) metrics: Arc<EngineMetrics>,
    /// The sessions it writes through.
    pub(crate) sessions: SessionSet,
    /// Where it publishes the forkchoice.
    pub(crate) forkchoice: Arc<watch::Sender<Option<ForkchoiceSnapshot>>>,
    /// Where it publishes its status (a predecessor's counters carry on).
    pub(crate) status: Arc<watch::Sender<WriterStatus>>,
    /// The running EngineActor, for cache updates.
    pub(crate) engine: watch::Receiver<Option<EngineRef>>,
    /// Writes sent and not yet taken up.
    pub(crate) queued_writes: Arc<AtomicUsize>,
    /// Payloads kept for catch-ups (the supervisor's: it outlives writer restarts).
    pub(crate) store: Arc<PayloadStore>,
}

/// Where a write's effects go.
struct Outlets {
    forkchoice: Arc<watch::Sender<Option<ForkchoiceSnapshot>>>,
    status: Arc<watch::Sender<WriterStatus>>,
    engine: watch::Receiver<Option<EngineRef>>,
}

/// State of the writer actor.
pub(crate) struct WriterState {
    core: WriteCore,
    config: Arc<EngineConfig>,
    sessions: SessionSet,
    outlets: Outlets,
    queued_writes: Arc<AtomicUsize>,
    /// The latest scheduled initialisation attempt.
    init_attempt: u64,
    init_delay: Duration,
}

/// The writer actor.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Writer;

impl Outlets {
    /// Apply a write's effect where it belongs: the forkchoice and the status on their watch
    /// channels, cache updates to the running EngineActor (before the caller is answered, so a
    /// read right after the answer finds them).
    fn apply(&self, effect: Effect) {
        match effect {
            Effect::Forkchoice(snapshot) => {
                self.forkchoice.send_replace(Some(snapshot));
            }
            Effect::Status(status) => {
                self.status.send_replace(*status);
            }
            Effect::Cache(update) => {
                if let Some(engine) = self.engine.borrow().as_ref() {
                    let _ = engine.cast(EngineMsg::Written(update));
                }
            }
        }
    }
}

impl WriterState {
    /// One attempt to synchronise with the EL; schedules the next on failure.
    async fn initialize(&mut self, myself: &WriterRef) {
        let links = self.sessions.writable_links();
        let result = if links.is_empty() {
            Err(EngineError::Unavailable {
                reason: self.sessions.no_session_reason(),
            })
        } else {
            forkchoice::initialize(&self.config, links, Arc::clone(self.core.store())).await
        };
        let outlets = &self.outlets;
        match result {
            Ok(snapshot) => {
                self.core.initialized(snapshot, &mut |e| outlets.apply(e));
                self.init_delay = INIT_RETRY_FIRST;
            }
            Err(e) => {
                if self.init_delay >= INIT_RETRY_MAX {
                    warn!(error = %e, "engine initialisation failed; retrying");
                }
                let reason = match e {
                    EngineError::Unavailable { reason } => reason,
                    other => other.to_string(),
                };
                self.core
                    .initialization_failed(reason, &mut |e| outlets.apply(e));
                self.init_attempt += 1;
                let attempt = self.init_attempt;
                myself.send_after(self.init_delay, move || WriterMsg::RetryInitialize {
                    attempt,
                });
                self.init_delay = (self.init_delay * 2).min(INIT_RETRY_MAX);
            }
        }
    }
}

impl Actor for Writer {
    type Msg = WriterMsg;
    type State = WriterState;
    type Arguments = WriterArgs;

    async fn pre_start(
        &self,
        _myself: WriterRef,
        args: WriterArgs,
    ) -> Result<WriterState, ActorProcessingErr> {
        let core = WriteCore::new(
            Arc::clone(&args.config),
            args.metrics,
            args.status.borrow().clone(),
            args.store,
        );
        // Nothing a predecessor queued is waiting any more; it is not synchronised yet.
        args.queued_writes.store(0, Ordering::Release);
        args.status.send_replace(core.status().clone());
        Ok(WriterState {
            core,
            config: args.config,
            sessions: args.sessions,
            outlets: Outlets {
                forkchoice: args.forkchoice,
                status: args.status,
                engine: args.engine,
            },
            queued_writes: args.queued_writes,
            init_attempt: 0,
            init_delay: INIT_RETRY_FIRST,
        })
    }

    async fn post_start(
        &self,
        myself: WriterRef,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        // Synchronise in post_start: a failing pre_start produces no supervision event.
        state.initialize(&myself).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: WriterRef,
        msg: WriterMsg,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WriterMsg::Write(ctx, request) => {
                let _ =
                    state
                        .queued_writes
                        .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
                let adopts = matches!(request, WriteRequest::InitializeFromLegacy(..));
                if !state.core.is_initialized() && !adopts && !request.caller_gone() {
                    // A write while the EL was unreachable: one more attempt before refusing.
                    state.initialize(&myself).await;
                }
                let links = state.sessions.writable_links();
                let no_session = links.is_empty().then(|| state.sessions.no_session_reason());
                let outlets = &state.outlets;
                state
                    .core
                    .apply(ctx, request, links, no_session, &mut |e| outlets.apply(e))
                    .await;
            }
            WriterMsg::RetryInitialize { attempt } => {
                if attempt == state.init_attempt && !state.core.is_initialized() {
                    state.initialize(&myself).await;
                }
            }
            #[cfg(feature = "test-hooks")]
            WriterMsg::Crash => panic!("injected writer crash"),
        }
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: WriterRef,
        state: &mut WriterState,
    ) -> Result<(), ActorProcessingErr> {
        info!(
            writes = state.core.status().writes_done,
            "writer stopped; the forkchoice on disk is the last one applied"
        );
        Ok(())
    }
}
