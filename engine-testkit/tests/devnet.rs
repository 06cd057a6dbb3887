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
