//! The EL-write turn: one lock over the [`Ledger`] of which path applied which state change.
//! Every call that changes the execution client's state (build, commit, finalize, adoption),
//! whichever path makes it, is made while holding it, so the answering write and its repeat by
//! the other path are one step, and no two writes overlap at the EL.
//!
//! Production calls have priority: a production call announces itself before it waits, and
//! shadow work in flight gives the turn up at once (its calls are dropped).

use std::{
    pin::Pin,
    sync::atomic::{AtomicUsize, Ordering},
};

use tokio::sync::{Mutex, MutexGuard, Notify, futures::Notified};

/// A path of the migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Path {
    Legacy,
    Actor,
}

impl Path {
    pub(super) const fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "legacy",
            Self::Actor => "actor",
        }
    }

    pub(super) const fn index(self) -> usize {
        match self {
            Self::Legacy => 0,
            Self::Actor => 1,
        }
    }

    pub(super) const fn other(self) -> Self {
        match self {
            Self::Legacy => Self::Actor,
            Self::Actor => Self::Legacy,
        }
    }
}

/// Which state changes (commits, finalizations, adoptions, numbered in order) each path has
/// applied. A path whose number is below the other's is behind: it adopts the other's state
/// before it is used.
#[derive(Debug)]
pub(super) struct Ledger {
    /// The latest change each path applied.
    applied: [u64; 2],
    /// Changes numbered so far.
    changes: u64,
    /// Shadow work was stopped mid-call since the last production write: its request may
    /// still reach the EL, so the next production write re-announces its forkchoice.
    pub(super) shadow_preempted: bool,
}

impl Ledger {
    /// The actor starts one change behind: it adopts legacy's state before its first call.
    const fn new() -> Self {
        Self {
            applied: [1, 0],
            changes: 1,
            shadow_preempted: false,
        }
    }

    /// Whether `path` has applied every change the other has.
    pub(super) const fn in_sync(&self, path: Path) -> bool {
        self.applied[path.index()] >= self.applied[path.other().index()]
    }

    /// The latest change `path` applied.
    pub(super) const fn applied(&self, path: Path) -> u64 {
        self.applied[path.index()]
    }

    /// `path` made a new change; returns its number.
    pub(super) fn record_change(&mut self, path: Path) -> u64 {
        self.changes += 1;
        self.applied[path.index()] = self.changes;
        self.changes
    }

    /// `path` applied change `seq` (a repeat, or adopting the other's state).
    pub(super) fn caught_up(&mut self, path: Path, seq: u64) {
        let applied = &mut self.applied[path.index()];
        *applied = (*applied).max(seq);
    }
}

/// The turn itself.
#[derive(Debug)]
pub(super) struct Turn {
    ledger: Mutex<Ledger>,
    production_waiting: AtomicUsize,
    production_arrived: Notify,
    production_done: Notify,
}

/// The turn held by a production call; shadow work waiting for it is told when it ends.
pub(super) struct ProductionTurn<'a> {
    ledger: MutexGuard<'a, Ledger>,
    done: &'a Notify,
}

impl std::ops::Deref for ProductionTurn<'_> {
    type Target = Ledger;

    fn deref(&self) -> &Ledger {
        &self.ledger
    }
}

impl std::ops::DerefMut for ProductionTurn<'_> {
    fn deref_mut(&mut self) -> &mut Ledger {
        &mut self.ledger
    }
}

impl Drop for ProductionTurn<'_> {
    fn drop(&mut self) {
        self.done.notify_waiters();
    }
}

impl Turn {
    pub(super) fn new() -> Self {
        Self {
            ledger: Mutex::new(Ledger::new()),
            production_waiting: AtomicUsize::new(0),
            production_arrived: Notify::new(),
            production_done: Notify::new(),
        }
    }

    /// Take the turn for a production call: shadow work in flight is told to stop.
    pub(super) async fn production(&self) -> ProductionTurn<'_> {
        self.production_waiting.fetch_add(1, Ordering::AcqRel);
        self.production_arrived.notify_waiters();
        let ledger = self.ledger.lock().await;
        self.production_waiting.fetch_sub(1, Ordering::AcqRel);
        ProductionTurn {
            ledger,
            done: &self.production_done,
        }
    }

    /// Take the turn for shadow work, after every production call that wants it. Calls made
    /// through the returned [`ShadowTurn`] stop when a production call arrives.
    pub(super) async fn shadow(&self) -> ShadowTurn<'_> {
        loop {
            let mut arrived = Box::pin(self.production_arrived.notified());
            arrived.as_mut().enable();
            let done = self.production_done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.production_waiting.load(Ordering::Acquire) > 0 {
                done.await;
                continue;
            }
            let ledger = self.ledger.lock().await;
            if self.production_waiting.load(Ordering::Acquire) > 0 {
                drop(ledger);
                tokio::task::yield_now().await;
                continue;
            }
            return ShadowTurn {
                ledger,
                stop: Stop {
                    arrived,
                    preempted: false,
                },
            };
        }
    }
}

/// The turn held by shadow work; it yields to the first production call that arrives.
pub(super) struct ShadowTurn<'a> {
    /// The ledger, to check readiness and record what the shadow work applied.
    pub(super) ledger: MutexGuard<'a, Ledger>,
    /// Runs the shadow work's calls until a production call arrives.
    pub(super) stop: Stop<'a>,
}

impl Drop for ShadowTurn<'_> {
    fn drop(&mut self) {
        if self.stop.preempted {
            // A dropped call may still reach the EL: the next production write re-announces.
            self.ledger.shadow_preempted = true;
        }
    }
}

/// Stops shadow calls when a production call arrives.
pub(super) struct Stop<'a> {
    arrived: Pin<Box<Notified<'a>>>,
    preempted: bool,
}

impl Stop<'_> {
    /// Run one call; `None` (the call dropped) as soon as a production call wants the turn.
    pub(super) async fn run<T>(&mut self, call: impl Future<Output = T>) -> Option<T> {
        if self.preempted {
            return None;
        }
        let outcome = tokio::select! {
            biased;
            () = self.arrived.as_mut() => None,
            done = call => Some(done),
        };
        self.preempted = outcome.is_none();
        outcome
    }

    /// Whether a production call stopped this shadow work.
    pub(super) const fn preempted(&self) -> bool {
        self.preempted
    }
}

#[cfg(test)]
mod tests {
    use std::{sync::Arc, time::Duration};

    use super::*;

    #[test]
    fn a_path_behind_is_not_in_sync_until_it_catches_up() {
        let mut ledger = Ledger::new();
        assert!(ledger.in_sync(Path::Legacy) && !ledger.in_sync(Path::Actor));
        ledger.caught_up(Path::Actor, ledger.applied(Path::Legacy));
        assert!(ledger.in_sync(Path::Actor));
        let seq = ledger.record_change(Path::Legacy);
        assert!(!ledger.in_sync(Path::Actor));
        ledger.caught_up(Path::Actor, seq);
        assert!(ledger.in_sync(Path::Actor) && ledger.in_sync(Path::Legacy));
    }

    #[tokio::test(start_paused = true)]
    async fn production_stops_shadow_work_in_flight_at_once() {
        let turn = Arc::new(Turn::new());
        let shadow = {
            let turn = Arc::clone(&turn);
            tokio::spawn(async move {
                let mut shadow = turn.shadow().await;
                shadow
                    .stop
                    .run(tokio::time::sleep(Duration::from_secs(60)))
                    .await
            })
        };
        // Let the shadow work take the turn.
        tokio::time::sleep(Duration::from_millis(1)).await;
        let started = tokio::time::Instant::now();
        let ledger = turn.production().await;
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "no waiting for the shadow"
        );
        assert!(ledger.shadow_preempted);
        drop(ledger);
        assert_eq!(
            shadow.await.unwrap(),
            None,
            "the shadow work did not complete"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn shadow_work_completes_when_nothing_else_wants_the_turn() {
        let turn = Turn::new();
        let mut shadow = turn.shadow().await;
        let done = shadow.stop.run(async { 7 }).await;
        assert_eq!(done, Some(7));
        assert!(!shadow.stop.preempted());
        drop(shadow);
        assert!(!turn.production().await.shadow_preempted);
    }
}
