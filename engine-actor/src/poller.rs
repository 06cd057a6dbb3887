//! `HealthPoller` and `CacheJanitor`: small interval actors.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::watch;
use tracing::debug;

use crate::{
    messages::{EngineMsg, EngineRef},
    session::{SessionMsg, SessionStatus},
};

/// Messages of the interval actors.
#[derive(Debug)]
pub enum TickMsg {
    /// Do the periodic work now.
    Tick,
    /// Test hook: panic inside the handler (supervision tests).
    #[doc(hidden)]
    Crash,
}

/// Every interval, asks each session to poll `eth_syncing` and `engine_exchangeCapabilities`
/// (sessions update their published health, which decides failover), and reconnects sessions
/// that are not connected.
#[derive(Debug, Default, Clone, Copy)]
pub struct HealthPoller;

/// Arguments of the [`HealthPoller`].
pub struct HealthPollerArgs {
    /// Poll interval.
    pub interval: Duration,
    /// The sessions' published status (holds their current actor refs).
    pub sessions: Vec<watch::Receiver<SessionStatus>>,
}

/// State of the [`HealthPoller`].
pub struct HealthPollerState {
    args: HealthPollerArgs,
    timer: Option<ractor::concurrency::JoinHandle<()>>,
}

impl Actor for HealthPoller {
    type Msg = TickMsg;
    type State = HealthPollerState;
    type Arguments = HealthPollerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<TickMsg>,
        args: HealthPollerArgs,
    ) -> Result<HealthPollerState, ActorProcessingErr> {
        Ok(HealthPollerState { args, timer: None })
    }

    async fn post_start(
        &self,
        myself: ActorRef<TickMsg>,
        state: &mut HealthPollerState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer = Some(myself.send_interval(state.args.interval, || TickMsg::Tick));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<TickMsg>,
        state: &mut HealthPollerState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<TickMsg>,
        msg: TickMsg,
        state: &mut HealthPollerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TickMsg::Tick => {
                for session in &state.args.sessions {
                    if let Some(actor) = session.borrow().actor.clone() {
                        let _ = actor.cast(SessionMsg::Poll);
                    }
                }
            }
            TickMsg::Crash => panic!("injected HealthPoller crash"),
        }
        Ok(())
    }
}

/// Every interval, asks the EngineActor to drop expired cache entries.
#[derive(Debug, Default, Clone, Copy)]
pub struct CacheJanitor;

/// Arguments of the [`CacheJanitor`].
pub struct CacheJanitorArgs {
    /// Sweep interval.
    pub interval: Duration,
    /// The current EngineActor (changes when it restarts).
    pub engine: watch::Receiver<Option<EngineRef>>,
}

/// State of the [`CacheJanitor`].
pub struct CacheJanitorState {
    args: CacheJanitorArgs,
    timer: Option<ractor::concurrency::JoinHandle<()>>,
    swept: usize,
}

impl Actor for CacheJanitor {
    type Msg = TickMsg;
    type State = CacheJanitorState;
    type Arguments = CacheJanitorArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<TickMsg>,
        args: CacheJanitorArgs,
    ) -> Result<CacheJanitorState, ActorProcessingErr> {
        Ok(CacheJanitorState {
            args,
            timer: None,
            swept: 0,
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<TickMsg>,
        state: &mut CacheJanitorState,
    ) -> Result<(), ActorProcessingErr> {
        state.timer = Some(myself.send_interval(state.args.interval, || TickMsg::Tick));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<TickMsg>,
        state: &mut CacheJanitorState,
    ) -> Result<(), ActorProcessingErr> {
        if let Some(timer) = state.timer.take() {
            timer.abort();
        }
        Ok(())
    }

    async fn handle(
        &self,
        _myself: ActorRef<TickMsg>,
        msg: TickMsg,
        state: &mut CacheJanitorState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TickMsg::Tick => {
                let engine = state.args.engine.borrow().clone();
                if let Some(engine) = engine {
                    // Bounded wait: a busy engine must not stall the janitor forever.
                    if let Ok(ractor::rpc::CallResult::Success(n)) = engine
                        .call(EngineMsg::SweepCaches, Some(Duration::from_secs(5)))
                        .await
                    {
                        state.swept += n;
                        debug!(swept = n, total = state.swept, "cache sweep");
                    }
                }
            }
            TickMsg::Crash => panic!("injected CacheJanitor crash"),
        }
        Ok(())
    }
}
