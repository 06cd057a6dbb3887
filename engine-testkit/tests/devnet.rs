//! The `engine-devnet` binary end to end.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use engine_testkit::{RealClientKind, locate};
use rstest::rstest;

fn devnet(args: &[&str]) -> std::process::Output {
    // Give up on an unreachable execution client after 1.5 s instead of 15 s.
    devnet_with_startup_timeout(args, 1_500)
}

fn devnet_with_startup_timeout(args: &[&str], startup_timeout_ms: u64) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_engine-devnet"))
        .args(args)
        .env(
            "ALYS_ENGINE_HEALTH__STARTUP_TIMEOUT_MS",
            startup_timeout_ms.to_string(),
        )
        .env_remove("RUST_LOG")
        .output()
        .expect("devnet runs")
}

#[test]
fn five_slots_on_the_mock_commit_five_blocks() {
    let out = devnet(&[
        "--slots",
        "5",
        "--slot-ms",
        "100",
        "--peg-in-every",
        "2",
        "--finalize-every",
        "4",
        "--json",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json_start = stdout.find('{').expect("json summary");
    let summary: serde_json::Value =
        serde_json::from_str(&stdout[json_start..]).expect("valid json");
    assert_eq!(summary["committed"], 5);
    assert_eq!(summary["failed"], 0);
    assert_eq!(summary["head_number"], 5);
    assert_eq!(summary["peg_ins"], 2);
    assert_ne!(
        summary["finalized_hash"],
        serde_json::json!(format!("0x{}", "0".repeat(64)))
    );
}

#[test]
fn missing_jwt_file_is_one_clear_line_and_exit_1() {
    let out = devnet(&[
        "--engine-url",
        "http://127.0.0.1:9",
        "--jwt-secret",
        "/nonexistent/jwt.hex",
        "--slots",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("/nonexistent/jwt.hex") && stderr.contains("cannot read"),
        "{stderr}"
    );
    insta::assert_snapshot!("missing_jwt_file", stderr);
}

#[test]
fn unreachable_engine_is_one_clear_line_and_exit_1() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("jwt.hex");
    std::fs::write(&secret, "11".repeat(32)).unwrap();
    let out = devnet(&[
        "--engine-url",
        "http://127.0.0.1:9",
        "--jwt-secret",
        secret.to_str().unwrap(),
        "--slots",
        "1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot connect to the execution client at http://127.0.0.1:9"),
        "{stderr}"
    );
    insta::assert_snapshot!("unreachable_engine", stderr);
}

#[test]
fn help_snapshot() {
    let out = devnet(&["--help"]);
    assert!(out.status.success());
    insta::assert_snapshot!(String::from_utf8_lossy(&out.stdout));
}

/// `just run -- --el ethereumjs` and `--el reth`: the devnet launches the client itself.
#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs, "ethereumjs")]
#[case::reth_el(RealClientKind::Reth, "reth")]
fn five_slots_on_a_real_client(#[case] kind: RealClientKind, #[case] flag: &str) {
    match locate(kind) {
        Ok(_) => {}
        Err(err) if !kind.required_by_tests() => {
            eprintln!("SKIPPED: {err}");
            return;
        }
        Err(err) => panic!("{err}"),
    }
    // The default startup timeout: a fresh Reth's warm-up block takes seconds.
    let out = devnet_with_startup_timeout(
        &[
            "--el",
            flag,
            "--slots",
            "5",
            "--slot-ms",
            "300",
            "--prepare",
            "--json",
        ],
        15_000,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let json_start = stdout.find('{').expect("json summary");
    let summary: serde_json::Value =
        serde_json::from_str(&stdout[json_start..]).expect("valid json");
    assert_eq!(summary["committed"], 5);
    assert_eq!(summary["head_number"], 5);
}

#[test]
fn a_bad_flag_is_one_line_and_exit_2() {
    let out = devnet(&["--slots", "many"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    insta::assert_snapshot!("bad_flag", stderr);
}

#[test]
fn a_leading_double_dash_is_accepted() {
    let out = devnet(&["--", "--slots", "1", "--slot-ms", "100", "--json"]);
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The node builds with `panic = "abort"`, so a crash is a process death, not an actor
/// restart: the engine's process (the devnet, slots of 300 ms with peg-ins and finality) is
/// SIGKILLed mid-production, started again on the same state file, and produces on. Head,
/// finalized block and withdrawal index on disk agree with the EL after the kill (the EL may be
/// one block ahead: a commit whose forkchoiceUpdated landed before the file was written), and
/// after the restart nothing is lost or applied twice: the peg-in withdrawal indices along the
/// EL's chain run 0, 1, 2, … without a gap or a repeat.
#[rstest]
#[case::ethereumjs_el(RealClientKind::EthereumJs)]
#[case::reth_el(RealClientKind::Reth)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_process_killed_mid_production_resumes_consistently(
    #[case] kind: RealClientKind,
) {
    use alloy_eips::BlockId;
    use engine_actor::ForkchoiceSnapshot;
    use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
    use engine_testkit::{GenesisOptions, RealExecutionClient};

    let Some(el) = RealExecutionClient::start_or_skip(kind, &GenesisOptions::default())
        .await
        .unwrap()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("forkchoice.json");
    let config = dir.path().join("engine.toml");
    std::fs::write(
        &config,
        format!("state_path = {:?}\n", state.display().to_string()),
    )
    .unwrap();
    let args = |extra: &[&str]| -> Vec<String> {
        let mut args: Vec<String> = [
            "--engine-url",
            el.engine_url(),
            "--eth-url",
            el.eth_url(),
            "--jwt-secret",
            el.jwt_secret_path().to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
            "--slot-ms",
            "300",
            "--peg-in-every",
            "1",
            "--finalize-every",
            "3",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        args
    };
    let client = HttpExecutionClient::connect(
        ClientOptions::new(el.engine_url(), el.jwt_secret()).with_eth_url(el.eth_url()),
    )
    .await
    .unwrap();
    let head_number = || async {
        client
            .block(BlockId::latest(), false)
            .await
            .unwrap()
            .unwrap()
            .header
            .number
    };

    let mut engine = std::process::Command::new(env!("CARGO_BIN_EXE_engine-devnet"))
        .args(args(&[]))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while head_number().await < 8 && started.elapsed() < std::time::Duration::from_secs(60) {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    engine.kill().unwrap(); // SIGKILL
    engine.wait().unwrap();
    let on_disk = ForkchoiceSnapshot::load(&state)
        .unwrap()
        .expect("a state file");
    let el_head = client
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .unwrap();
    let el_finalized = client.block(BlockId::finalized(), false).await.unwrap();
    println!(
        "{kind}: killed at EL head #{}, state file head #{} finalized #{}, next withdrawal index {}",
        el_head.header.number,
        on_disk.head_number,
        on_disk.finalized_number,
        on_disk.next_withdrawal_index
    );
    assert!(on_disk.head_number >= 8 - 1, "{on_disk:?}");
    assert!(
        el_head.header.hash == on_disk.head
            || (el_head.header.number == on_disk.head_number + 1
                && el_head.header.parent_hash == on_disk.head),
        "EL head #{} {} against the file's #{} {}",
        el_head.header.number,
        el_head.header.hash,
        on_disk.head_number,
        on_disk.head
    );
    if let Some(finalized) = el_finalized {
        assert!(finalized.header.number >= on_disk.finalized_number);
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_engine-devnet"))
        .args(args(&["--slots", "4", "--json"]))
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "restart: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let after = ForkchoiceSnapshot::load(&state).unwrap().unwrap();
    let el_head = client
        .block(BlockId::latest(), false)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        el_head.header.hash, after.head,
        "engine file and EL agree after the restart"
    );
    assert!(after.head_number >= on_disk.head_number + 4);
    // Every withdrawal index on the chain exactly once, in order.
    let mut indices = Vec::new();
    for n in 1..=after.head_number {
        let block = client
            .block(BlockId::number(n), false)
            .await
            .unwrap()
            .unwrap();
        indices.extend(
            block
                .withdrawals
                .unwrap_or_default()
                .iter()
                .map(|w| w.index),
        );
    }
    let expected: Vec<u64> = (0..indices.len() as u64).collect();
    assert_eq!(indices, expected, "withdrawal indices along the chain");
    assert_eq!(after.next_withdrawal_index, indices.len() as u64);
    println!(
        "{kind}: restarted to #{}, {} withdrawals, indices 0..{} without gap or repeat",
        after.head_number,
        indices.len(),
        indices.len()
    );
}
