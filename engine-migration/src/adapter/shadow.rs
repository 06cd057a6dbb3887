//! Shadow mode's background work: the actor repeats legacy's calls and the answers are
//! compared. The work queue is bounded (a full queue drops work, counted); work runs only when
//! no production call wants the EL, and a production call arriving stops it at once.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, ExecutionPayload};
use engine_types::{AddBalance, EngineError};
use tokio::sync::{mpsc, oneshot};
use tracing::warn;

use super::{Operation, paths::Paths, turn::Path};
use crate::legacy::{MigrationPath, Mismatch};

/// A legacy change the actor is to repeat: the ledger number legacy had before it, and the
/// change's own.
#[derive(Debug, Clone, Copy)]
pub(super) struct Change {
    pub(super) before: u64,
    pub(super) seq: u64,
}

/// A job for the shadow worker.
pub(super) enum ShadowJob {
    /// Work queued in mode epoch `epoch` (dropped if the mode changed since).
    Work { epoch: u64, work: ShadowWork },
    /// Answer when every job queued before this one is done.
    Flush(oneshot::Sender<()>),
}

/// What the actor repeats.
pub(super) enum ShadowWork {
    /// Build on legacy's parent with legacy's peg-ins; compare with legacy's payload.
    Build {
        timestamp: Duration,
        parent: B256,
        add_balances: Vec<AddBalance>,
        legacy: Box<ExecutionPayload>,
    },
    /// Commit the block legacy committed.
    Commit {
        payload: Box<ExecutionData>,
        change: Change,
    },
    /// Finalize what legacy finalized.
    Finalize { hash: B256, change: Change },
}

impl ShadowWork {
    const fn operation(&self) -> Operation {
        match self {
            Self::Build { .. } => Operation::Build,
            Self::Commit { .. } => Operation::Commit,
            Self::Finalize { .. } => Operation::Finalize,
        }
    }
}

/// Runs shadow jobs in order until the adapter (the sender) is dropped.
pub(super) async fn shadow_worker<L, A>(
    paths: Arc<Paths<L, A>>,
    epoch: Arc<AtomicU64>,
    mut jobs: mpsc::Receiver<ShadowJob>,
) where
    L: MigrationPath,
    A: MigrationPath,
{
    while let Some(job) = jobs.recv().await {
        match job {
            ShadowJob::Flush(done) => drop(done.send(())),
            ShadowJob::Work {
                epoch: queued_in,
                work,
            } => {
                if queued_in != epoch.load(Ordering::Acquire) {
                    paths.dropped_shadow_work();
                    continue;
                }
                run(&paths, work).await;
            }
        }
    }
}

async fn run<L, A>(paths: &Paths<L, A>, work: ShadowWork)
where
    L: MigrationPath,
    A: MigrationPath,
{
    let op = work.operation();
    // After every production call that wants the EL.
    let mut turn = paths.turn.shadow().await;
    if let ShadowWork::Build { .. } = &work
        && !turn.ledger.in_sync(Path::Actor)
    {
        // The actor is behind legacy: a build now would start on a chain it has not caught
        // up to (the next commit or finalization job brings it up to date).
        paths.dropped_shadow_work();
        return;
    }
    // The actor must hold everything legacy held before this job's change.
    let before = match &work {
        ShadowWork::Build { .. } => 0,
        ShadowWork::Commit { change, .. } | ShadowWork::Finalize { change, .. } => change.before,
    };
    if turn.ledger.applied(Path::Actor) < before {
        let adopted = turn
            .stop
            .run(paths.adopt(Path::Actor, &mut turn.ledger))
            .await;
        if turn.stop.preempted() {
            paths.preempted_shadow_work();
            return;
        }
        if let Some(Err(e)) = adopted {
            paths.could_not_call(Path::Actor, op);
            warn!(error = %e, "shadow: the actor could not adopt the legacy state");
            return;
        }
        // It adopted legacy's state now, which already includes this job's change.
        paths.dropped_shadow_work();
        return;
    }
    let (legacy, actor) = match (
        paths.legacy.path_state().await,
        paths.actor.path_state().await,
    ) {
        (Ok(l), Ok(a)) => (l.forkchoice, a.forkchoice),
        (Err(e), _) | (_, Err(e)) => {
            warn!(error = %e, "shadow: could not read the paths' state; job dropped");
            paths.dropped_shadow_work();
            return;
        }
    };
    // The actor's calls carry its whole forkchoice: one runs only while that forkchoice (with
    // the job's own change) is the EL's, or it would move the EL back.
    let same_safe_and_finalized = legacy.safe_block_hash == actor.safe_block_hash
        && legacy.finalized_block_hash == actor.finalized_block_hash;
    match work {
        ShadowWork::Build {
            timestamp,
            parent,
            add_balances,
            legacy: legacy_payload,
        } => {
            if legacy.head_block_hash != parent || !same_safe_and_finalized {
                // Legacy moved past this build's parent: building there now would rewind.
                paths.dropped_shadow_work();
                return;
            }
            let call = paths.timed(
                Path::Actor,
                Operation::Build,
                paths
                    .actor
                    .build_block(timestamp, Some(parent), add_balances),
            );
            match turn.stop.run(call).await {
                Some(Ok(built)) => {
                    let mismatches = paths.validator.compare(&legacy_payload, &built.payload);
                    paths.compared(Operation::Build, &mismatches);
                }
                Some(Err(_)) => {}
                None => paths.preempted_shadow_work(),
            }
        }
        ShadowWork::Commit { payload, change } => {
            let expected = payload.payload.block_hash();
            if legacy.head_block_hash != expected || !same_safe_and_finalized {
                paths.dropped_shadow_work();
                return;
            }
            let call = paths.timed(
                Path::Actor,
                Operation::Commit,
                paths.actor.commit_block(*payload),
            );
            match turn.stop.run(call).await {
                Some(Ok(hash)) => {
                    turn.ledger.caught_up(Path::Actor, change.seq);
                    let mismatch = (hash != expected).then_some(Mismatch::BlockHash {
                        legacy: expected,
                        actor: hash,
                    });
                    paths.compared(Operation::Commit, &Vec::from_iter(mismatch));
                }
                Some(Err(e)) => {
                    paths.compare_outcomes(
                        Operation::Commit,
                        &Ok::<B256, EngineError>(expected),
                        &Err(e.clone()),
                        |_, _| Vec::new(),
                    );
                    paths.follower_failed(Path::Actor, Operation::Commit, &e);
                }
                None => paths.preempted_shadow_work(),
            }
        }
        ShadowWork::Finalize { hash, change } => {
            if legacy.finalized_block_hash != hash
                || legacy.head_block_hash != actor.head_block_hash
            {
                paths.dropped_shadow_work();
                return;
            }
            let call = paths.timed(
                Path::Actor,
                Operation::Finalize,
                paths.actor.set_finalized(hash),
            );
            match turn.stop.run(call).await {
                Some(Ok(())) => turn.ledger.caught_up(Path::Actor, change.seq),
                Some(Err(e)) => paths.follower_failed(Path::Actor, Operation::Finalize, &e),
                None => paths.preempted_shadow_work(),
            }
        }
    }
}
