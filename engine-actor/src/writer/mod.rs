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
//! | `core.rs` | [`WriteCore`](core::WriteCore): applying one write, independent of the actor |

mod build;
mod commit;
mod core;
mod env;
mod finality;
mod forkchoice;
#[cfg(test)]
mod tests;

use std::{sync::Arc, time::Duration};

pub(crate) use core::{Effect, WriteCore};
use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::{info, warn};

use crate::{
    engine::EngineMsg,
    protocol::{RequestContext, WriteRequest},
    wiring::Wiring,
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

/// Construction arguments of the writer.
pub(crate) struct WriterArgs {
    pub(crate) wiring: Arc<Wiring>,
}

/// State of the writer actor.
pub(crate) struct WriterState {
    core: WriteCore,
    wiring: Arc<Wiring>,
    /// The latest scheduled initialisation attempt.
    init_attempt: u64,
    init_delay: Duration,
}

/// The writer actor.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Writer;

impl WriterState {
    /// Apply a write's effects where they belong: the forkchoice on its watch channel, cache
    /// updates to the running EngineActor (before the caller is answered, so a read right after
    /// the answer finds them).
    fn effect(wiring: &Wiring, effect: Effect) {
        match effect {
            Effect::Forkchoice(snapshot) => {
                wiring.forkchoice.send_replace(Some(snapshot));
            }
            Effect::Status(status) => {
                wiring.writer_status.send_replace(*status);
            }
            Effect::Cache(update) => {
                if let Some(engine) = wiring.engine.borrow().as_ref() {
                    let _ = engine.cast(EngineMsg::Written(update));
                }
            }
        }
    }

    /// One attempt to synchronise with the EL; schedules the next on failure.
    async fn initialize(&mut self, myself: &WriterRef) {
        let wiring = Arc::clone(&self.wiring);
        let links = wiring.healthy_links();
        let no_session = links.is_empty().then(|| wiring.no_session_reason());
        let result = match no_session {
            Some(reason) => Err(engine_types::EngineError::Unavailable { reason }),
            None => forkchoice::initialize(&wiring.config, links).await,
        };
        match result {
            Ok(snapshot) => {
                self.core
                    .initialized(snapshot, &mut |e| Self::effect(&wiring, e));
                self.init_delay = INIT_RETRY_FIRST;
            }
            Err(e) => {
                if self.init_delay >= INIT_RETRY_MAX {
                    warn!(error = %e, "engine initialisation failed; retrying");
                }
                let reason = match e {
                    engine_types::EngineError::Unavailable { reason } => reason,
                    other => other.to_string(),
                };
                self.core
                    .initialization_failed(reason, &mut |e| Self::effect(&wiring, e));
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
        let wiring = args.wiring;
        let core = WriteCore::new(
            Arc::clone(&wiring.config),
            Arc::clone(&wiring.metrics),
            wiring.writer_status.borrow().clone(),
        );
        // Nothing a predecessor queued is waiting any more; it is not synchronised yet.
        wiring
            .queued_writes
            .store(0, std::sync::atomic::Ordering::Release);
        wiring.writer_status.send_replace(core.status().clone());
        Ok(WriterState {
            core,
            wiring,
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
                state.wiring.write_dequeued();
                let adopts = matches!(request, WriteRequest::InitializeFromLegacy(..));
                if !state.core.is_initialized() && !adopts && !request.caller_gone() {
                    // A write while the EL was unreachable: one more attempt before refusing.
                    state.initialize(&myself).await;
                }
                let wiring = Arc::clone(&state.wiring);
                let links = wiring.healthy_links();
                let no_session = links.is_empty().then(|| wiring.no_session_reason());
                state
                    .core
                    .apply(ctx, request, links, no_session, &mut |e| {
                        WriterState::effect(&wiring, e)
                    })
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
