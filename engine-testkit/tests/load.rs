//! The `engine-load` binary, briefly: readers and the slot producer run without errors.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

#[test]
fn two_seconds_of_load_have_no_errors() {
    let out = Command::new(env!("CARGO_BIN_EXE_engine-load"))
        .args([
            "--seconds",
            "2",
            "--readers",
            "8",
            "--slot-ms",
            "100",
            "--json",
        ])
        .env_remove("RUST_LOG")
        .output()
        .expect("engine-load runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "stdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("a JSON report");
    assert_eq!(report["read_errors"], 0, "{report}");
    assert_eq!(report["slot_errors"], 0, "{report}");
    assert!(report["reads"].as_u64().unwrap() > 0, "{report}");
    assert!(report["slots"].as_u64().unwrap() > 0, "{report}");
    assert!(report["head_number"].as_u64().unwrap() > 0, "{report}");
}

#[test]
fn a_zero_duration_is_one_clear_line_and_exit_1() {
    let out = Command::new(env!("CARGO_BIN_EXE_engine-load"))
        .args(["--seconds", "0"])
        .output()
        .expect("engine-load runs");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("--seconds"), "{stderr}");
}
