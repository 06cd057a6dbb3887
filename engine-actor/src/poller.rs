//! `HealthPoller` and `CacheJanitor`: two actors that do one thing on an interval.

use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tracing::debug;

use tokio::sync::watch;

use crate::{
    engine::{EngineMsg, EngineRef},
    session::{SessionMsg, SessionSet},
};

/// Messages of the interval actors.
#[derive(Debug)]
pub(crate) enum TickMsg {
    /// Do the periodic work now.
    Tick,
    /// Test hook: panic inside the handler.
    #[cfg(feature = "test-hooks")]
    Crash,
}

/// The periodic work of an interval actor.
pub(crate) trait Periodic: Send + Sync + 'static {
    /// Called on every tick.
    fn tick(&mut self) -> impl Future<Output = ()> + Send;
}

/// An actor that calls `P::tick` every `interval`; the timer is stopped with the actor.
pub(crate) struct Interval<P>(std::marker::PhantomData<fn() -> P>);

impl<P> Default for Interval<P> {
    fn default() -> Self {
        Self(std::marker::PhantomData)
    }
}

/// Arguments of an interval actor.
pub(crate) struct IntervalArgs<P> {
    pub(crate) interval: Duration,
    pub(crate) work: P,
}

/// State of an interval actor.
pub(crate) struct IntervalState<P> {
    args: IntervalArgs<P>,
    timer: Option<ractor::concurrency::JoinHandle<()>>,
}

impl<P: Periodic> Actor for Interval<P> {
    type Msg = TickMsg;
    type State = IntervalState<P>;
    type Arguments = IntervalArgs<P>;

    async fn pre_start(
        &self,
        _myself: ActorRef<TickMsg>,
        args: IntervalArgs<P>,
    ) -> Result<IntervalState<P>, ActorProcessingErr> {
        Ok(IntervalState { args, timer: None })
    }

    async fn post_start(
        &self,
        myself: ActorRef<TickMsg>,
        state: &mut IntervalState<P>,
    ) -> Result<(), ActorProcessingErr> {
        state.timer = Some(myself.send_interval(state.args.interval, || TickMsg::Tick));
        Ok(())
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<TickMsg>,
        state: &mut IntervalState<P>,
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
        state: &mut IntervalState<P>,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            TickMsg::Tick => state.args.work.tick().await,
            #[cfg(feature = "test-hooks")]
            TickMsg::Crash => panic!("injected interval actor crash"),
        }
        Ok(())
    }
}

/// Every interval, asks each session to poll `eth_syncing` and `engine_exchangeCapabilities`
/// (sessions update their published health, which decides failover); a session that is not
/// connected takes the poll as a reconnect attempt.
#[derive(Debug)]
pub(crate) struct PollSessions {
    pub(crate) sessions: SessionSet,
}

impl Periodic for PollSessions {
    async fn tick(&mut self) {
        for session in self.sessions.iter() {
            if let Some(actor) = session.borrow().actor.clone() {
                let _ = actor.cast(SessionMsg::Poll);
            }
        }
    }
}

/// Every interval, asks the EngineActor to drop expired cache entries.
#[derive(Debug)]
pub(crate) struct SweepCaches {
    pub(crate) engine: watch::Receiver<Option<EngineRef>>,
    pub(crate) swept: usize,
}

impl Periodic for SweepCaches {
    async fn tick(&mut self) {
        let engine = self.engine.borrow().clone();
        if let Some(engine) = engine {
            // Bounded wait: a busy engine must not stall the janitor forever.
            if let Ok(ractor::rpc::CallResult::Success(n)) = engine
                .call(EngineMsg::SweepCaches, Some(Duration::from_secs(5)))
                .await
            {
                self.swept += n;
                debug!(swept = n, total = self.swept, "cache sweep");
            }
        }
    }
}

/// The HealthPoller.
pub(crate) type HealthPoller = Interval<PollSessions>;
/// The CacheJanitor.
pub(crate) type CacheJanitor = Interval<SweepCaches>;
