//! Chaos: the actor tree against a MockExecutionLayer that misbehaves. The EL killed and
//! restarted mid-production, answers slower than the deadlines, broken answers (HTTP 500,
//! malformed JSON, truncated bodies, wrong JSON-RPC ids, dropped connections), SYNCING/INVALID
//! storms, a JWT secret rotated on disk, and the supervisor giving up after repeated crashes.
//!
//! What every test checks: errors come back typed (`EngineError::kind`), nothing panics, the
//! engine's forkchoice (in memory and on disk) only changes on success, every block the engine
//! reported committed is on the EL's canonical chain, and the engine and the EL agree on head and
//! finalized once the fault is gone. Every loop is bounded and every server is on 127.0.0.1;
//! deadlines and breaker durations are configured short instead of sleeping long. The fault
//! counts survived are printed (`--no-capture` shows them) for docs/reliability.md.
//!
//! (Longer than the ~600-line guideline on purpose: one suite is one test binary, and on a
//! 2-core machine every extra binary costs a link; its tests share the helpers at the top.)

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{collections::BTreeMap, time::Duration};

use alloy_primitives::B256;
use alloy_rpc_types_engine::JwtSecret;
use engine_actor::{
    BlockRef, ChildKind, CircuitState, EngineHandle, EngineSystem, ForkchoiceSnapshot,
    metric_names as names,
};
use engine_clients::{BuiltPayload, ClientOptions};
use engine_testkit::{
    ClientProfile, Fault, FaultRule, MockConfig, MockEngine, engine_slot, metric_sample,
    metric_sum, peg_in, scrape_metrics, wait_for,
};
use engine_types::{BuildPayloadRequest, EngineConfig, EngineError, RetryConfig, TimeoutConfig};
use rstest::rstest;

/// Retries of idempotent calls (reads, getPayload); writes are never retried by the client.
const MAX_RETRIES: usize = 2;
/// Slot-path deadline of the chaos client (newPayload, forkchoiceUpdated, getPayload).
const SLOT_CALL_DEADLINE_MS: u64 = 200;
/// Injected latency, well beyond the deadline.
const SLOW: Duration = Duration::from_millis(500);
/// Consecutive connectivity failures that open the breaker.
const FAILURE_THRESHOLD: u32 = 2;
/// How long an open breaker refuses calls before a probe.
const OPEN_MS: u64 = 300;

/// A [`MockEngine`] with the chaos settings: short slot-path deadlines, fast retries, a
/// breaker that opens after two failures; `tweak` changes them further.
async fn chaos_with(tweak: impl FnOnce(&mut EngineConfig, &mut ClientOptions)) -> MockEngine {
    let mock_config = MockConfig::default().with_profile(ClientProfile::reth());
    MockEngine::start_with(mock_config, |config, options| {
        config.health.failure_threshold = FAILURE_THRESHOLD;
        config.health.open_ms = OPEN_MS;
        config.health.startup_timeout_ms = 5_000;
        *options = options
            .clone()
            .with_timeouts(TimeoutConfig {
                forkchoice_updated_ms: SLOT_CALL_DEADLINE_MS,
                new_payload_ms: SLOT_CALL_DEADLINE_MS,
                get_payload_ms: SLOT_CALL_DEADLINE_MS,
                ..TimeoutConfig::default()
            })
            .with_retry(RetryConfig {
                max_retries: MAX_RETRIES,
                initial_backoff_ms: 1,
                max_backoff_ms: 5,
            });
        tweak(config, options);
    })
    .await
    .expect("engine starts")
}

async fn chaos() -> MockEngine {
    chaos_with(|_, _| {}).await
}

/// What every chaos test checks of the engine against its EL.
trait Consistency {
    /// The state file's forkchoice.
    fn persisted(&self) -> ForkchoiceSnapshot;
    /// The engine's forkchoice, checked against its state file.
    async fn forkchoice(&self) -> ForkchoiceSnapshot;
    /// Every block in `committed` is on the EL's chain and an ancestor of its head; the engine
    /// and the EL agree on head, safe and finalized; memory equals disk.
    async fn assert_consistent_with_el(&self, committed: &[B256]);
    /// Nothing was restarted and the supervisor did not give up.
    async fn assert_tree_intact(&self);
}

impl Consistency for MockEngine {
    fn persisted(&self) -> ForkchoiceSnapshot {
        ForkchoiceSnapshot::load(&self.state_path).unwrap().unwrap()
    }

    async fn forkchoice(&self) -> ForkchoiceSnapshot {
        let snap = self.engine.forkchoice().await.unwrap();
        assert_eq!(self.persisted(), snap, "the state file equals the memory");
        snap
    }

    async fn assert_consistent_with_el(&self, committed: &[B256]) {
        let snap = self.forkchoice().await;
        let (head, safe, finalized) = self
            .mock
            .with_chain(|c| (c.head(), c.safe(), c.finalized()));
        assert_eq!(
            (snap.head, snap.safe, snap.finalized),
            (head, safe, finalized),
            "engine and EL agree on head, safe and finalized"
        );
        for (i, hash) in committed.iter().enumerate() {
            let on_chain = self
                .mock
                .with_chain(|c| c.block(*hash).is_some() && c.is_ancestor(*hash, head));
            assert!(
                on_chain,
                "committed block {i} {hash} lost or off the head's chain"
            );
        }
        if let Some(last) = committed.last() {
            let number = self.mock.with_chain(|c| c.block(*last).unwrap().number);
            assert!(number <= snap.head_number);
        }
    }

    async fn assert_tree_intact(&self) {
        assert_eq!(self.system.escalation(), None);
        let restarts = self.system.restarts().await;
        assert!(
            restarts.values().all(|n| *n == 0),
            "no child restarted: {restarts:?}"
        );
    }
}

async fn build(engine: &EngineHandle) -> Result<BuiltPayload, EngineError> {
    let ts = engine.forkchoice().await?.head_timestamp + 2;
    engine
        .build_payload(BuildPayloadRequest::new(ts).with_peg_ins(vec![peg_in(0xc4, 10)]))
        .await
}

/// One Alys slot with a peg-in.
async fn try_slot(engine: &EngineHandle) -> Result<B256, EngineError> {
    engine_slot(engine, vec![peg_in(0xc4, 10)])
        .await
        .map(|slot| slot.hash)
}

/// How long a condition may take.
const WAIT: Duration = Duration::from_secs(5);

/// Head (hash, number), safe and finalized of a snapshot.
fn forkchoice_of(s: &ForkchoiceSnapshot) -> (B256, u64, B256, B256) {
    (s.head, s.head_number, s.safe, s.finalized)
}

async fn circuit(engine: &EngineHandle) -> Option<CircuitState> {
    engine
        .status()
        .await
        .ok()
        .and_then(|s| s.sessions.first().map(|s| s.circuit))
}

/// Faults survived, by error kind.
#[derive(Debug, Default)]
struct Tally(BTreeMap<&'static str, u32>);

impl Tally {
    fn count(&mut self, e: &EngineError) {
        *self.0.entry(e.kind()).or_default() += 1;
    }

    fn total(&self) -> u32 {
        self.0.values().sum()
    }
}

// --- a. the EL killed and restarted mid-production --------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn el_killed_and_restarted_mid_production_loses_no_committed_block() {
    let f = chaos().await;
    let (metrics_addr, metrics_server) = f
        .system
        .serve_metrics("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = format!("endpoint=\"{}\"", f.mock.url());
    let mut committed = Vec::new();
    for _ in 0..4 {
        committed.push(try_slot(&f.engine).await.expect("slot"));
    }
    f.engine.finalize(committed[1]).await.unwrap();
    let before_kill = f.forkchoice().await;
    let text = scrape_metrics(metrics_addr).await.unwrap();
    assert_eq!(
        metric_sample(&text, names::CIRCUIT_BREAKER_STATE, &endpoint),
        0.0
    );

    // Kill the EL. The node keeps producing: every slot fails with a typed error, and the
    // breaker opens after FAILURE_THRESHOLD connectivity failures.
    f.mock.stop().await;
    let mut tally = Tally::default();
    let mut attempts = 0;
    while attempts < 12 || circuit(&f.engine).await != Some(CircuitState::Open) {
        attempts += 1;
        assert!(attempts <= 100, "the breaker never opened");
        let err = try_slot(&f.engine).await.unwrap_err();
        assert!(
            matches!(err.kind(), "transport" | "unavailable"),
            "slot while the EL is down: {err:?}"
        );
        tally.count(&err);
        // A read the caches cannot answer.
        let err = f
            .engine
            .get_block(BlockRef::Number(1), false)
            .await
            .unwrap_err();
        tally.count(&err);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        f.forkchoice().await,
        before_kill,
        "nothing applied while down"
    );
    let text = scrape_metrics(metrics_addr).await.unwrap();
    assert_eq!(
        metric_sample(&text, names::CIRCUIT_BREAKER_STATE, &endpoint),
        2.0,
        "open"
    );
    assert_eq!(
        metric_sample(&text, names::CONNECTION_STATUS, &endpoint),
        0.0,
        "a dead EL is not reported connected"
    );

    // Restart on the same port, with the first health probe slow enough to be seen half-open.
    f.mock.inject(
        FaultRule::new(Fault::Latency(Duration::from_millis(400)))
            .on("eth_syncing")
            .times(1),
    );
    f.mock.restart().await.unwrap();
    wait_for("half-open", WAIT, || async {
        (circuit(&f.engine).await == Some(CircuitState::HalfOpen)).then_some(())
    })
    .await
    .unwrap();
    let text = scrape_metrics(metrics_addr).await.unwrap();
    assert_eq!(
        metric_sample(&text, names::CIRCUIT_BREAKER_STATE, &endpoint),
        1.0,
        "half-open while the probe is in flight"
    );
    wait_for("closed", WAIT, || async {
        (circuit(&f.engine).await == Some(CircuitState::Closed)).then_some(())
    })
    .await
    .unwrap();
    let text = scrape_metrics(metrics_addr).await.unwrap();
    assert_eq!(
        metric_sample(&text, names::CIRCUIT_BREAKER_STATE, &endpoint),
        0.0,
        "closed"
    );
    let changes = metric_sum(&text, names::CIRCUIT_BREAKER_STATE_CHANGES_TOTAL, &endpoint);
    // closed → open, (half-open → open) × n while down, half-open → closed.
    assert!(changes >= 2.0, "state changes counted: {changes}");
    for (from, to) in [("closed", "open"), ("half_open", "closed")] {
        let pair = format!("from_state=\"{from}\",to_state=\"{to}\"");
        assert!(
            text.lines().any(
                |l| l.starts_with(names::CIRCUIT_BREAKER_STATE_CHANGES_TOTAL)
                    && l.contains(&endpoint)
                    && l.contains(&pair)
                    && !l.ends_with(" 0")
            ),
            "{from} → {to} counted:\n{text}"
        );
    }
    assert!(
        metric_sample(&text, names::ERRORS_TOTAL, "error_type=\"unavailable\"") >= 1.0
            && metric_sample(&text, names::ERRORS_TOTAL, "error_type=\"transport\"") >= 1.0,
        "errors counted by type:\n{text}"
    );

    // Production resumes on the same chain.
    for _ in 0..4 {
        committed.push(try_slot(&f.engine).await.expect("slot"));
    }
    f.engine.finalize(committed[5]).await.unwrap();
    f.assert_consistent_with_el(&committed).await;
    let snap = f.forkchoice().await;
    assert_eq!(
        snap.head_number,
        committed.len() as u64,
        "no slot applied twice"
    );
    assert_eq!(snap.finalized, committed[5]);
    f.assert_tree_intact().await;
    metrics_server.abort();
    println!(
        "EL kill/restart: {} faults survived {:?} over {attempts} slot attempts; breaker state changes {changes} (closed → open → half-open → closed); {} blocks committed, none lost",
        tally.total(),
        tally.0,
        committed.len()
    );
    f.system.shutdown().await;
}

// --- b. answers slower than the deadline ------------------------------------------------------

/// getPayload is idempotent: slow answers are retried up to MAX_RETRIES times.
#[rstest]
#[case::recovers_within_the_retry_budget(MAX_RETRIES, None)]
#[case::times_out_after_the_retry_budget(MAX_RETRIES + 1, Some("timeout"))]
#[tokio::test]
async fn a_slow_get_payload_is_retried_per_the_retry_config(
    #[case] slow_answers: usize,
    #[case] failure: Option<&str>,
) {
    let f = chaos().await;
    try_slot(&f.engine).await.expect("slot");
    let before = f.forkchoice().await;
    f.mock.inject(
        FaultRule::new(Fault::Latency(SLOW))
            .on("engine_getPayload")
            .times(slow_answers),
    );
    f.mock.clear_requests();
    let result = build(&f.engine).await;
    assert_eq!(
        f.mock.requests_for("engine_getPayload").len(),
        (slow_answers + 1).min(MAX_RETRIES + 1),
        "one attempt plus retries, never more than the budget"
    );
    match failure {
        None => {
            let built = result.expect("a retry answered in time");
            let hash = f.engine.commit_payload(built.execution_data).await.unwrap();
            assert_eq!(f.forkchoice().await.head_number, before.head_number + 1);
            f.assert_consistent_with_el(&[hash]).await;
        }
        Some(kind) => {
            let err = result.unwrap_err();
            assert_eq!(err.kind(), kind, "{err:?}");
            assert_eq!(
                f.forkchoice().await,
                before,
                "a failed build changes nothing"
            );
            f.mock.clear_faults();
            let hash = try_slot(&f.engine).await.expect("slot");
            f.assert_consistent_with_el(&[hash]).await;
        }
    }
    f.assert_tree_intact().await;
    f.system.shutdown().await;
}

/// How a slow answer is slow.
#[derive(Debug, Clone, Copy)]
enum Slowness {
    /// The EL waits before processing: a caller that gave up leaves the call unprocessed.
    BeforeProcessing,
    /// The EL processes at once and answers late: the call was applied, the caller cannot know.
    AfterProcessing,
}

impl Slowness {
    const fn fault(self) -> Fault {
        match self {
            Self::BeforeProcessing => Fault::Latency(SLOW),
            Self::AfterProcessing => Fault::LateAnswer(SLOW),
        }
    }
}

/// newPayload and forkchoiceUpdated change the EL: a timed-out one is not retried by the
/// client, but its answer may have been lost after the EL applied it. The engine asks the EL
/// what it did: applied (the answer came late) → the commit succeeds; not applied (the EL was
/// still waiting) → a timeout, the state untouched, and the node's retry applies it once.
#[rstest]
#[tokio::test]
async fn a_commit_whose_answer_never_comes_is_reconciled_with_what_the_el_did(
    #[values("engine_newPayload", "engine_forkchoiceUpdated")] method: &str,
    #[values(Slowness::BeforeProcessing, Slowness::AfterProcessing)] slowness: Slowness,
) {
    let f = chaos().await;
    let first = try_slot(&f.engine).await.expect("slot");
    let built = build(&f.engine).await.unwrap();
    let hash = built.block_hash();
    let before = f.forkchoice().await;
    f.mock
        .inject(FaultRule::new(slowness.fault()).on(method).times(1));
    f.mock.clear_requests();
    let result = f.engine.commit_payload(built.execution_data.clone()).await;
    assert_eq!(
        f.mock.requests_for(method).len(),
        1,
        "writes are not retried"
    );
    match slowness {
        Slowness::AfterProcessing => {
            // The EL applied the call: its head (or its block) says so, and the engine follows.
            assert_eq!(result.expect("reconciled with the EL"), hash);
        }
        Slowness::BeforeProcessing => {
            let err = result.unwrap_err();
            assert!(
                matches!(&err, EngineError::Timeout { after, .. } if *after == Duration::from_millis(SLOT_CALL_DEADLINE_MS)),
                "{err:?}"
            );
            assert_eq!(
                f.forkchoice().await,
                before,
                "state untouched by a commit the EL did not apply"
            );
            // The EL processes the abandoned call only if its caller still waits: it does not.
            tokio::time::sleep(SLOW + Duration::from_millis(100)).await;
            assert_eq!(f.mock.with_chain(|c| c.head()), before.head);
            let again = f.engine.commit_payload(built.execution_data).await.unwrap();
            assert_eq!(again, hash);
        }
    }
    let after = f.forkchoice().await;
    assert_eq!(
        (after.head, after.head_number),
        (hash, before.head_number + 1),
        "the head moved once"
    );
    let heads: Vec<serde_json::Value> = f
        .mock
        .requests_for("engine_forkchoiceUpdated")
        .iter()
        .map(|r| r.params[0]["headBlockHash"].clone())
        .collect();
    assert!(
        heads.iter().all(|h| *h == serde_json::json!(hash)),
        "every forkchoiceUpdated of the episode names the committed block: {heads:?}"
    );
    f.assert_consistent_with_el(&[first, hash]).await;
    f.assert_tree_intact().await;
    println!(
        "{method} answering {slowness:?} after {SLOW:?} (deadline {SLOT_CALL_DEADLINE_MS} ms): {}",
        match slowness {
            Slowness::AfterProcessing => "reconciled: the EL had applied it, the commit succeeded",
            Slowness::BeforeProcessing =>
                "timed out, not applied; the node's retry applied it once",
        }
    );
    f.system.shutdown().await;
}

/// A reorg whose forkchoiceUpdated is answered too late (EthereumJS answers its first reorg
/// after 8 s, having moved its head at once): the engine finds the EL on the sibling and
/// commits it; engine, state file and EL agree, and a restarted engine re-announces the
/// sibling rather than rewinding the EL.
#[tokio::test]
async fn a_reorg_answered_late_ends_with_engine_state_file_and_el_on_the_sibling() {
    let f = chaos().await;
    let first = try_slot(&f.engine).await.expect("slot");
    let head = try_slot(&f.engine).await.expect("slot");
    // A sibling of the head: another block on `first`.
    let ts = f.forkchoice().await.head_timestamp + 1;
    let sibling = f
        .engine
        .build_payload(
            BuildPayloadRequest::new(ts)
                .with_parent(first)
                .with_peg_ins(vec![peg_in(0xc5, 20)]),
        )
        .await
        .unwrap();
    let sibling_hash = sibling.block_hash();
    assert_ne!(sibling_hash, head);
    f.mock.inject(
        FaultRule::new(Fault::LateAnswer(SLOW))
            .on("engine_forkchoiceUpdated")
            .times(1),
    );
    let committed = f
        .engine
        .commit_payload(sibling.execution_data)
        .await
        .unwrap();
    assert_eq!(committed, sibling_hash);
    assert_eq!(
        f.mock.with_chain(|c| c.head()),
        sibling_hash,
        "the EL is on the sibling"
    );
    f.assert_consistent_with_el(&[first, sibling_hash]).await;
    assert!(!f.mock.with_chain(|c| c.is_ancestor(head, sibling_hash)));

    // Restart on the same state file: the sibling is re-announced, the EL stays on it.
    let config = f.config.clone();
    let options = f.options.clone();
    f.system.shutdown().await;
    let system = EngineSystem::start_with_options(config, vec![options])
        .await
        .unwrap();
    let reloaded = system.handle().forkchoice().await.unwrap();
    assert_eq!(reloaded.head, sibling_hash);
    assert_eq!(f.mock.with_chain(|c| c.head()), sibling_hash);
    system.shutdown().await;
}

// --- c. broken answers at the actor level -----------------------------------------------------

#[derive(Debug, Clone, Copy)]
enum Step {
    /// The fault hits getPayload during a build (retried: idempotent).
    BuildGetPayload,
    /// The fault hits newPayload during a commit.
    CommitNewPayload,
    /// The fault hits forkchoiceUpdated during a commit.
    CommitForkchoice,
}

impl Step {
    const fn method(self) -> &'static str {
        match self {
            Self::BuildGetPayload => "engine_getPayload",
            Self::CommitNewPayload => "engine_newPayload",
            Self::CommitForkchoice => "engine_forkchoiceUpdated",
        }
    }
}

#[rstest]
#[tokio::test]
async fn a_broken_answer_is_a_typed_error_and_changes_nothing(
    #[values(
        (Fault::Http(500), "transport"),
        (Fault::MalformedJson, "decode"),
        (Fault::TruncatedBody, "decode"),
        (Fault::WrongId, "decode"),
        (Fault::DropConnection, "transport")
    )]
    fault: (Fault, &str),
    #[values(Step::BuildGetPayload, Step::CommitNewPayload, Step::CommitForkchoice)] step: Step,
) {
    let (fault, kind) = fault;
    let f = chaos().await;
    let first = try_slot(&f.engine).await.expect("slot");
    let built = match step {
        Step::BuildGetPayload => None,
        Step::CommitNewPayload | Step::CommitForkchoice => Some(build(&f.engine).await.unwrap()),
    };
    let before = f.forkchoice().await;
    // Until cleared: retries of idempotent calls meet the fault too.
    f.mock
        .inject(FaultRule::new(fault.clone()).on(step.method()));
    f.mock.clear_requests();
    let err = match &built {
        None => build(&f.engine).await.map(|b| b.block_hash()),
        Some(b) => f.engine.commit_payload(b.execution_data.clone()).await,
    }
    .unwrap_err();
    assert_eq!(err.kind(), kind, "{fault:?} on {step:?}: {err:?}");
    let attempts = f.mock.requests_for(step.method()).len();
    let expected_attempts = match step {
        Step::BuildGetPayload if err.is_retryable() => MAX_RETRIES + 1,
        _ => 1,
    };
    assert_eq!(
        attempts, expected_attempts,
        "retried only if idempotent and retryable"
    );
    assert_eq!(
        f.forkchoice().await,
        before,
        "state untouched (incl. withdrawal index)"
    );
    f.assert_tree_intact().await;

    // The actor is alive: once the EL answers properly the same step succeeds, applied once.
    f.mock.clear_faults();
    let hash = match built {
        None => {
            let built = build(&f.engine).await.unwrap();
            f.engine.commit_payload(built.execution_data).await.unwrap()
        }
        Some(b) => f.engine.commit_payload(b.execution_data).await.unwrap(),
    };
    assert_eq!(f.forkchoice().await.head_number, before.head_number + 1);
    f.assert_consistent_with_el(&[first, hash]).await;
    f.system.shutdown().await;
}

// --- d. SYNCING and INVALID storms ------------------------------------------------------------

const STORM_SLOTS: u32 = 25;

#[rstest]
#[case::syncing_new_payload(Fault::status("SYNCING"), "engine_newPayload", "syncing")]
#[case::accepted_new_payload(Fault::status("ACCEPTED"), "engine_newPayload", "accepted")]
#[case::invalid_new_payload(
    Fault::invalid("state root mismatch", Some(B256::repeat_byte(0x42))),
    "engine_newPayload",
    "invalid_payload"
)]
#[case::syncing_forkchoice_updated(Fault::status("SYNCING"), "engine_forkchoiceUpdated", "syncing")]
#[tokio::test]
async fn a_status_storm_leaves_state_untouched_and_is_counted(
    #[case] fault: Fault,
    #[case] method: &str,
    #[case] kind: &str,
) {
    let f = chaos().await;
    let (metrics_addr, metrics_server) = f
        .system
        .serve_metrics("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut committed = vec![
        try_slot(&f.engine).await.expect("slot"),
        try_slot(&f.engine).await.expect("slot"),
    ];
    f.engine.finalize(committed[0]).await.unwrap();
    let before = f.forkchoice().await;
    let text = scrape_metrics(metrics_addr).await.unwrap();
    let label = format!("error_type=\"{kind}\"");
    let errors_before = metric_sample(&text, names::ERRORS_TOTAL, &label);
    let committed_before = metric_sample(&text, names::BLOCKS_COMMITTED_TOTAL, "");

    f.mock.inject(FaultRule::new(fault).on(method));
    for n in 1..=STORM_SLOTS {
        let err = try_slot(&f.engine).await.unwrap_err();
        assert_eq!(err.kind(), kind, "slot {n} of the storm: {err:?}");
        if let EngineError::InvalidPayload {
            validation_error,
            latest_valid_hash,
            ..
        } = &err
        {
            assert_eq!(validation_error.as_deref(), Some("state root mismatch"));
            assert_eq!(*latest_valid_hash, Some(B256::repeat_byte(0x42)));
        }
        // Each build reserves its peg-ins' withdrawal indices (gaps are harmless); the
        // forkchoice must not move.
        assert_eq!(
            forkchoice_of(&f.forkchoice().await),
            forkchoice_of(&before),
            "slot {n}: head, safe and finalized untouched"
        );
    }
    assert_eq!(
        f.mock.with_chain(|c| (c.head(), c.finalized())),
        (before.head, before.finalized),
        "the EL's forkchoice never moved"
    );
    let text = scrape_metrics(metrics_addr).await.unwrap();
    assert_eq!(
        metric_sample(&text, names::ERRORS_TOTAL, &label) - errors_before,
        f64::from(STORM_SLOTS),
        "every refusal counted"
    );
    assert_eq!(
        metric_sample(&text, names::BLOCKS_COMMITTED_TOTAL, ""),
        committed_before
    );
    // Answers, not connectivity failures: the breaker stays closed.
    assert_eq!(circuit(&f.engine).await, Some(CircuitState::Closed));
    assert_eq!(
        metric_sample(&text, names::CIRCUIT_BREAKER_STATE_CHANGES_TOTAL, ""),
        0.0
    );

    // The storm ends: production resumes where it stopped.
    f.mock.clear_faults();
    committed.push(try_slot(&f.engine).await.expect("slot"));
    assert_eq!(f.forkchoice().await.head_number, before.head_number + 1);
    f.assert_consistent_with_el(&committed).await;
    f.assert_tree_intact().await;
    metrics_server.abort();
    println!(
        "{kind} storm on {method}: {STORM_SLOTS} consecutive slots refused, state untouched, recovered"
    );
    f.system.shutdown().await;
}

// --- e. supervisor escalation -----------------------------------------------------------------
// `actor_mock::repeated_crashes_escalate_with_a_reason` pins the reason text and that the
// supervisor stops; this adds what the node sees afterwards.

#[tokio::test]
async fn escalation_stops_the_whole_tree_and_a_new_system_resumes_from_disk() {
    let f = chaos_with(|c, _| c.supervision.max_restarts = 2).await;
    let one = try_slot(&f.engine).await.expect("slot");
    let two = try_slot(&f.engine).await.expect("slot");
    f.engine.finalize(one).await.unwrap();
    let before = f.forkchoice().await;
    for n in 1..=3u32 {
        f.system.crash_child(ChildKind::Engine);
        if n < 3 {
            wait_for("restart", WAIT, || async {
                f.system
                    .restarts()
                    .await
                    .get(&ChildKind::Engine)
                    .copied()
                    .filter(|r| *r >= n)
            })
            .await
            .unwrap();
            wait_for("initialised", WAIT, || async {
                f.engine.status().await.ok().filter(|s| s.initialized)
            })
            .await
            .unwrap();
        }
    }
    let reason = wait_for("escalation", WAIT, || async { f.system.escalation() })
        .await
        .unwrap();
    assert!(reason.contains("EngineActor stopped 3 times"), "{reason}");
    let restarts = f.system.metrics().render();
    assert_eq!(
        metric_sample(
            &restarts,
            names::ACTOR_RESTARTS_TOTAL,
            "child=\"EngineActor\""
        ),
        2.0
    );
    let MockEngine {
        mock,
        system,
        engine,
        config,
        options,
        state_path,
        dir: _dir,
    } = f;
    tokio::time::timeout(Duration::from_secs(5), system.wait_stopped())
        .await
        .expect("the supervisor stops");

    // Callers get a typed error at once, not a hang.
    let err = tokio::time::timeout(Duration::from_secs(2), engine.forkchoice())
        .await
        .expect("answered without waiting for a restart")
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err:?}");
    let err = tokio::time::timeout(Duration::from_secs(2), try_slot(&engine))
        .await
        .expect("answered without waiting for a restart")
        .unwrap_err();
    assert_eq!(err.kind(), "unavailable", "{err:?}");

    // No child outlives its supervisor: nothing polls the EL any more.
    mock.clear_requests();
    tokio::time::sleep(Duration::from_millis(300)).await; // six poll intervals
    let stray: Vec<String> = mock.requests().into_iter().map(|r| r.method).collect();
    assert!(
        stray.is_empty(),
        "requests after the tree stopped: {stray:?}"
    );

    // The node restarts the engine: state comes back from disk and production continues.
    let saved: ForkchoiceSnapshot =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    assert_eq!(saved, before, "the escalation lost nothing on disk");
    let system = EngineSystem::start_with_options(config, vec![options])
        .await
        .expect("a new engine starts on the same state");
    let engine = system.handle();
    assert_eq!(engine.forkchoice().await.unwrap(), before);
    let three = try_slot(&engine).await.expect("slot");
    let snap = engine.forkchoice().await.unwrap();
    assert_eq!((snap.head, snap.head_number), (three, 3));
    assert!(mock.with_chain(|c| c.is_ancestor(two, three)));
    assert_eq!(mock.with_chain(|c| (c.head(), c.finalized())), (three, one));
    println!(
        "escalation after 3 EngineActor crashes (limit 2): tree stopped, callers got `unavailable`, restart from disk resumed at #{}",
        snap.head_number
    );
    system.shutdown().await;
}

// --- f. the JWT secret rotated on disk --------------------------------------------------------

#[tokio::test]
async fn a_jwt_secret_rotated_on_disk_is_picked_up_by_a_running_engine() {
    let secret_dir = tempfile::tempdir().unwrap();
    let f = chaos_with(|_, _| {}).await;
    // Restart the engine reading its secret from a file, as a node does.
    let path = f.mock.write_jwt_secret(secret_dir.path()).unwrap();
    let mut options = ClientOptions::with_secret_file(f.mock.url(), &path).unwrap();
    options = options
        .with_fork_schedule(f.options.fork_schedule)
        .with_timeouts(f.options.timeouts)
        .with_retry(f.options.retry);
    let MockEngine {
        mock,
        system,
        config,
        dir: _dir,
        ..
    } = f;
    system.shutdown().await;
    let system = EngineSystem::start_with_options(config, vec![options])
        .await
        .unwrap();
    let engine = system.handle();
    let one = try_slot(&engine).await.expect("slot");

    // The operator rotates the secret: the EL and the file change together.
    let rotated = JwtSecret::random();
    mock.set_jwt_secret(rotated);
    std::fs::write(&path, alloy_primitives::hex::encode(rotated.as_bytes())).unwrap();
    mock.clear_requests();
    let two = try_slot(&engine).await.expect("slot");
    let refused = mock.requests().iter().filter(|r| !r.authorized).count();
    assert!(refused >= 1, "the old secret was refused at least once");
    assert_eq!(mock.with_chain(|c| c.head()), two);
    assert!(mock.with_chain(|c| c.is_ancestor(one, two)));
    let status = engine.status().await.unwrap();
    assert_eq!(status.sessions[0].circuit, CircuitState::Closed);
    assert_eq!(system.escalation(), None);
    assert!(system.restarts().await.values().all(|n| *n == 0));
    system.shutdown().await;
}

/// Reads asked while the EngineActor dies are answered by its successor, never with a zero
/// forkchoice or a spurious "stopped" error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_racing_an_engine_crash_are_answered_by_the_restarted_actor() {
    let chaos = chaos().await;
    let mut heads = Vec::new();
    for _ in 0..3 {
        heads.push(try_slot(&chaos.engine).await.expect("slot"));
    }
    let head = *heads.last().unwrap();
    // Four crashes: within the default limit of five restarts per minute.
    for round in 0u32..4 {
        // Queue reads, then crash the actor holding them.
        let engine = chaos.engine.clone();
        let reads = tokio::spawn(async move {
            tokio::join!(
                engine.forkchoice(),
                engine.get_block(head, false),
                engine.status()
            )
        });
        chaos.system.crash_child(ChildKind::Engine);
        let (forkchoice, block, status) = reads.await.unwrap();
        let forkchoice = forkchoice.unwrap_or_else(|e| panic!("round {round}: {e}"));
        assert_eq!(forkchoice.head, head, "round {round}");
        assert_eq!(block.unwrap().unwrap().header.hash, head, "round {round}");
        status.unwrap();
        // The next round crashes the restarted actor.
        // (The count moves when the restart is scheduled; the successor answers once it runs.)
        wait_for("the restart", WAIT, || async {
            let restarts = chaos.system.restarts().await;
            restarts
                .get(&ChildKind::Engine)
                .copied()
                .filter(|n| *n > round)
        })
        .await
        .unwrap();
        // forkchoice() waits until the successor has loaded the forkchoice.
        assert_eq!(chaos.engine.forkchoice().await.unwrap().head, head);
        assert!(chaos.engine.status().await.unwrap().initialized);
    }
    chaos.system.shutdown().await;
}
