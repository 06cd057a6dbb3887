//! The write functions and [`WriteCore`] against the in-memory [`ScriptedClient`]: what each
//! write sends, what it changes, and what it refuses.

// Panicking is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{sync::Arc, time::Duration};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{ExecutionData, PayloadStatus, PayloadStatusEnum};
use engine_clients::BuiltPayload;
use engine_testkit::{Scripted, ScriptedCall, ScriptedClient, ScriptedMethod, peg_in};
use engine_types::{BuildPayloadRequest, EngineConfig, EngineError};
use tokio::sync::oneshot;

use super::{Effect, PayloadStore, WriteCore, forkchoice};
use crate::{
    ForkchoiceSnapshot,
    metrics::EngineMetrics,
    protocol::{Reply, RequestContext, WriteRequest},
    session::{LinkHealth, SessionLink},
};

/// A core over one or more scripted clients, already initialised on the first one's genesis.
struct Fixture {
    core: WriteCore,
    clients: Vec<Arc<ScriptedClient>>,
    effects: Vec<Effect>,
    _dir: tempfile::TempDir,
}

fn link(index: usize, client: &Arc<ScriptedClient>) -> SessionLink<ScriptedClient> {
    let health = LinkHealth::new(format!("scripted-{index}"), 3, Duration::from_secs(5), None);
    SessionLink::new(index, Arc::clone(client), Arc::new(health))
}

fn ctx() -> RequestContext {
    RequestContext {
        correlation_id: 1,
        span: tracing::Span::none(),
    }
}

impl Fixture {
    async fn new(sessions: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(EngineConfig {
            state_path: Some(dir.path().join("forkchoice.json")),
            ..EngineConfig::default()
        });
        let clients: Vec<_> = (0..sessions)
            .map(|_| Arc::new(ScriptedClient::new()))
            .collect();
        let store = Arc::new(PayloadStore::new(64));
        let mut core = WriteCore::new(
            Arc::clone(&config),
            Arc::new(EngineMetrics::new().unwrap()),
            Default::default(),
            Arc::clone(&store),
        );
        let links = clients
            .iter()
            .enumerate()
            .map(|(i, c)| link(i, c))
            .collect();
        let snapshot = forkchoice::initialize(&config, links, store).await.unwrap();
        core.initialized(snapshot, &mut drop);
        Self {
            core,
            clients,
            effects: Vec::new(),
            _dir: dir,
        }
    }

    fn links(&self) -> Vec<SessionLink<ScriptedClient>> {
        self.clients
            .iter()
            .enumerate()
            .map(|(i, c)| link(i, c))
            .collect()
    }

    fn primary(&self) -> &ScriptedClient {
        &self.clients[0]
    }

    /// Apply one write and return its answer.
    async fn write<T>(
        &mut self,
        make: impl FnOnce(Reply<T>) -> WriteRequest,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        let links = self.links();
        let effects = &mut self.effects;
        self.core
            .apply(ctx(), make(tx.into()), links, None, &mut |e| {
                effects.push(e)
            })
            .await;
        rx.await.expect("every applied write is answered")
    }

    async fn build(&mut self, request: BuildPayloadRequest) -> Result<BuiltPayload, EngineError> {
        self.write(|r| WriteRequest::BuildPayload(request, r)).await
    }

    async fn commit(&mut self, data: ExecutionData) -> Result<B256, EngineError> {
        self.write(|r| WriteRequest::CommitPayload(Box::new(data), r))
            .await
    }

    fn next(&self) -> BuildPayloadRequest {
        BuildPayloadRequest::new(self.core.snapshot().head_timestamp + 2)
    }

    async fn slot(&mut self) -> B256 {
        let built = self.build(self.next()).await.unwrap();
        self.commit(built.execution_data).await.unwrap()
    }

    fn persisted(&self) -> ForkchoiceSnapshot {
        ForkchoiceSnapshot::load(&self._dir.path().join("forkchoice.json"))
            .unwrap()
            .unwrap()
    }
}

#[tokio::test]
async fn a_write_that_panics_is_answered_with_an_error_and_the_next_ten_succeed() {
    let mut f = Fixture::new(1).await;
    f.primary()
        .script_forkchoice_updated(Scripted::Panic("a bug in the client"));
    let before = *f.core.snapshot();
    let err = f.build(f.next()).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::Unavailable { reason } if reason.contains("panicked") && reason.contains("a bug in the client")),
        "{err:?}"
    );
    assert_eq!(
        *f.core.snapshot(),
        before,
        "a panicked write changes nothing"
    );
    assert_eq!(f.core.status().writes_panicked, 1);
    for n in 1..=10u64 {
        let head = f.slot().await;
        assert_eq!(f.core.snapshot().head_number, n);
        assert_eq!(f.primary().head(), head);
    }
    assert_eq!(f.persisted(), *f.core.snapshot());
}

#[tokio::test]
async fn an_invalid_payload_is_refused_and_nothing_moves() {
    let mut f = Fixture::new(1).await;
    let built = f.build(f.next()).await.unwrap();
    f.primary()
        .script_new_payload(Scripted::Answer(Ok(PayloadStatus::new(
            PayloadStatusEnum::Invalid {
                validation_error: "bad state root".into(),
            },
            Some(f.core.snapshot().head),
        ))));
    let before = *f.core.snapshot();
    let fcus = f.primary().count(ScriptedMethod::ForkchoiceUpdated);
    let err = f.commit(built.execution_data).await.unwrap_err();
    assert!(
        matches!(&err, EngineError::InvalidPayload { validation_error: Some(v), latest_valid_hash: Some(h), .. } if v == "bad state root" && *h == before.head),
        "{err:?}"
    );
    assert_eq!(*f.core.snapshot(), before);
    assert_eq!(
        f.primary().count(ScriptedMethod::ForkchoiceUpdated),
        fcus,
        "no forkchoiceUpdated after INVALID"
    );
    assert_eq!(f.persisted(), before);
}

#[tokio::test]
async fn the_primarys_verdict_decides_and_every_session_gets_the_forkchoice() {
    let mut f = Fixture::new(2).await;
    let built = f.build(f.next()).await.unwrap();
    // The secondary disagrees: logged, not decisive.
    f.clients[1].script_new_payload(Scripted::Answer(Ok(PayloadStatus::from_status(
        PayloadStatusEnum::Syncing,
    ))));
    let hash = f.commit(built.execution_data.clone()).await.unwrap();
    assert_eq!(f.core.snapshot().head, hash);
    assert_eq!(f.primary().head(), hash);
    let announced = |c: &ScriptedClient| {
        c.calls().iter().any(|call| {
            matches!(call, ScriptedCall::ForkchoiceUpdated(s, None) if s.head_block_hash == hash)
        })
    };
    assert!(announced(&f.clients[0]) && announced(&f.clients[1]));

    // The primary says SYNCING: the commit fails and the head stays.
    let next = f.build(f.next()).await.unwrap();
    f.primary()
        .script_new_payload(Scripted::Answer(Ok(PayloadStatus::from_status(
            PayloadStatusEnum::Syncing,
        ))));
    let err = f.commit(next.execution_data).await.unwrap_err();
    assert!(matches!(err, EngineError::Syncing { .. }), "{err:?}");
    assert_eq!(f.core.snapshot().head, hash);
}

#[tokio::test]
async fn a_write_whose_caller_stopped_waiting_is_never_started() {
    let mut f = Fixture::new(1).await;
    let calls = f.primary().calls().len();
    let (tx, rx) = oneshot::channel::<Result<BuiltPayload, EngineError>>();
    drop(rx);
    let request = WriteRequest::BuildPayload(f.next(), tx.into());
    f.core
        .apply(ctx(), request, f.links(), None, &mut drop)
        .await;
    assert_eq!(f.primary().calls().len(), calls, "no call to the EL");
    assert_eq!(f.core.status().writes_abandoned, 1);
}

#[tokio::test]
async fn a_prepared_build_only_calls_get_payload_and_a_changed_one_builds_afresh() {
    let mut f = Fixture::new(1).await;
    let request = f.next().with_peg_ins(vec![peg_in(0xa1, 100)]);
    let prepared = request.clone();
    f.write(|r| WriteRequest::PreparePayload(prepared, r))
        .await
        .unwrap();
    let fcus = f.primary().count(ScriptedMethod::ForkchoiceUpdated);
    f.build(request.clone()).await.unwrap();
    assert_eq!(f.primary().count(ScriptedMethod::ForkchoiceUpdated), fcus);
    let stats = f.core.status().preparation;
    assert_eq!((stats.made, stats.used, stats.wasted), (1, 1, 0));

    let again = request.clone();
    f.write(|r| WriteRequest::PreparePayload(again, r))
        .await
        .unwrap();
    let changed = request.with_peg_ins(vec![peg_in(0xa1, 100), peg_in(0xa2, 1)]);
    let built = f.build(changed).await.unwrap();
    assert_eq!(
        built.execution_data.payload.withdrawals().map(Vec::len),
        Some(2)
    );
    let stats = f.core.status().preparation;
    assert_eq!((stats.made, stats.used, stats.wasted), (2, 1, 1));
}

#[tokio::test]
async fn withdrawal_indices_follow_commits_not_builds() {
    let mut f = Fixture::new(1).await;
    let request = f
        .next()
        .with_peg_ins(vec![peg_in(0xa1, 1), peg_in(0xa2, 2)]);
    let first = f.build(request.clone()).await.unwrap();
    let again = f.build(request).await.unwrap();
    let indices = |b: &BuiltPayload| -> Vec<u64> {
        b.execution_data
            .payload
            .withdrawals()
            .unwrap()
            .iter()
            .map(|w| w.index)
            .collect()
    };
    assert_eq!(indices(&first), [0, 1]);
    assert_eq!(
        indices(&again),
        [0, 1],
        "building twice gives the same block"
    );
    f.commit(again.execution_data).await.unwrap();
    assert_eq!(f.core.snapshot().next_withdrawal_index, 2);
    let next = f
        .build(f.next().with_peg_ins(vec![peg_in(0xa3, 3)]))
        .await
        .unwrap();
    assert_eq!(indices(&next), [2]);
}

#[tokio::test]
async fn finalize_refuses_what_is_not_on_the_heads_chain_and_needs_no_lookup_for_the_head() {
    let mut f = Fixture::new(1).await;
    let first = f.slot().await;
    let head = f.slot().await;
    let lookups = f.primary().count(ScriptedMethod::Block);
    f.write(|r| WriteRequest::FinalizeBlock(head, r))
        .await
        .unwrap();
    assert_eq!(
        f.primary().count(ScriptedMethod::Block),
        lookups,
        "the head is known"
    );
    let snap = *f.core.snapshot();
    assert_eq!(
        (snap.safe, snap.finalized, snap.finalized_number),
        (head, head, 2)
    );
    // Finality does not move back, and an unknown block is not a target.
    let err = f
        .write(|r| WriteRequest::FinalizeBlock(first, r))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("finality cannot move back"),
        "{err}"
    );
    let err = f
        .write(|r| WriteRequest::FinalizeBlock(B256::repeat_byte(9), r))
        .await
        .unwrap_err();
    assert!(matches!(err, EngineError::NotFound { .. }), "{err:?}");
    assert_eq!(*f.core.snapshot(), snap);
}

#[tokio::test]
async fn initialisation_re_announces_a_persisted_forkchoice() {
    let mut f = Fixture::new(1).await;
    let head = f.slot().await;
    let config = Arc::new(EngineConfig {
        state_path: Some(f._dir.path().join("forkchoice.json")),
        ..EngineConfig::default()
    });
    let client = Arc::clone(&f.clients[0]);
    let before = client.calls().len();
    let snapshot = forkchoice::initialize(
        &config,
        vec![link(0, &client)],
        Arc::new(PayloadStore::new(64)),
    )
    .await
    .unwrap();
    assert_eq!(snapshot.head, head);
    let announced = client.calls()[before..]
        .iter()
        .filter(
            |c| matches!(c, ScriptedCall::ForkchoiceUpdated(s, None) if s.head_block_hash == head),
        )
        .count();
    assert_eq!(
        announced, 1,
        "one forkchoiceUpdated re-announces the saved head"
    );
}

#[tokio::test]
async fn without_a_session_a_write_is_refused_with_the_reason() {
    let mut f = Fixture::new(1).await;
    let (tx, rx) = oneshot::channel::<Result<BuiltPayload, EngineError>>();
    let request = WriteRequest::BuildPayload(f.next(), tx.into());
    f.core
        .apply(
            ctx(),
            request,
            Vec::<SessionLink<ScriptedClient>>::new(),
            Some("no healthy execution client session: scripted (circuit: Open)".into()),
            &mut drop,
        )
        .await;
    let err = rx.await.unwrap().unwrap_err();
    assert!(err.to_string().contains("circuit: Open"), "{err}");
}
