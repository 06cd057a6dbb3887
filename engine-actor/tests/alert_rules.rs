//! The Prometheus alert rules in `ops/prometheus/`: `promtool check rules` and `promtool test
//! rules` pass, and every metric they query is one the engine exports.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::{
    collections::BTreeSet,
    env,
    path::{Path, PathBuf},
    process::Command,
};

const RULES: &str = "ops/prometheus/engine-alerts.yml";
const RULE_TESTS: &str = "ops/prometheus/engine-alerts.test.yml";

/// The workspace root (the rule paths are relative to it).
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine-actor is inside the workspace")
        .to_path_buf()
}

fn read(relative: &str) -> String {
    let path = workspace().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// `PROMTOOL` (which must then be a file), else `promtool` on `PATH`.
fn promtool() -> Option<PathBuf> {
    if let Some(named) = env::var_os("PROMTOOL").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(named);
        assert!(
            path.is_file(),
            "PROMTOOL={} is not a file: point it at a promtool binary or unset it",
            path.display()
        );
        return Some(path);
    }
    env::split_paths(&env::var_os("PATH")?)
        .map(|dir| dir.join("promtool"))
        .find(|p| p.is_file())
}

/// Runs `promtool ARGS` in the workspace root and fails the test, with promtool's output, unless
/// it succeeds.
fn run_promtool(promtool: &Path, args: &[&str]) {
    let output = Command::new(promtool)
        .args(args)
        .current_dir(workspace())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", promtool.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "`promtool {}` failed ({}):\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        args.join(" "),
        output.status,
    );
    println!("promtool {}:\n{stdout}{stderr}", args.join(" "));
}

/// `promtool check rules` and `promtool test rules` pass. Skipped where promtool is missing,
/// except in CI (`CI=true`), where it must be there.
#[test]
fn promtool_checks_and_unit_tests_the_alert_rules() {
    let Some(promtool) = promtool() else {
        assert!(
            env::var("CI").as_deref() != Ok("true"),
            "promtool is required in CI (CI=true) to check the alert rules: .ci/run installs it \
             (DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
             prometheus); or set PROMTOOL to a promtool binary"
        );
        println!(
            "SKIPPED: promtool is not installed (apt-get install prometheus, or set PROMTOOL)"
        );
        return;
    };
    run_promtool(&promtool, &["check", "rules", RULES]);
    run_promtool(&promtool, &["test", "rules", RULE_TESTS]);
}

/// The PromQL of each `expr:` of a rule file: inline, or a block scalar (`expr: >-`, `expr: |`)
/// whose lines are indented deeper than the key.
fn exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut exprs = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(value) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let value = value.trim();
        if !value.starts_with(['>', '|']) {
            exprs.push(value.to_owned());
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let block: Vec<&str> = lines[i + 1..]
            .iter()
            .take_while(|l| l.trim().is_empty() || l.len() - l.trim_start().len() > indent)
            .map(|l| l.trim())
            .collect();
        exprs.push(block.join(" "));
    }
    exprs
}

/// The metric families a PromQL expression or series selector names (histogram series suffixes
/// stripped).
fn families(promql: &str) -> Vec<&str> {
    promql
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("engine_"))
        .map(|token| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| token.strip_suffix(s))
                .unwrap_or(token)
        })
        .collect()
}

/// A renamed or removed metric breaks the rules (and their tests' input series) here, not
/// silently in production.
#[test]
fn the_alert_rules_query_only_exported_metrics() {
    let rules = read(RULES);
    let exprs = exprs(&rules);
    assert_eq!(exprs.len(), 10, "expected 10 alert expressions in {RULES}");
    let mut used = BTreeSet::new();
    for expr in &exprs {
        assert!(
            expr.contains("engine_"),
            "an expr names no engine metric: {expr}"
        );
        for family in families(expr) {
            assert!(
                engine_actor::metric_names::ALL.contains(&family),
                "{RULES} queries {family}, which the engine does not export: {expr}"
            );
            used.insert(family);
        }
    }
    assert!(
        used.len() >= 12,
        "only {} metrics used: {used:?}",
        used.len()
    );

    let tests = read(RULE_TESTS);
    let series: Vec<&str> = tests
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- series:"))
        .collect();
    assert!(!series.is_empty(), "no input series in {RULE_TESTS}");
    for s in series {
        for family in families(s) {
            assert!(
                engine_actor::metric_names::ALL.contains(&family),
                "{RULE_TESTS} feeds {family}, which the engine does not export: {s}"
            );
        }
    }
}

/// Every alert of the rule file has a unit test where it fires and one where it stays silent
/// (`exp_alerts: []`).
#[test]
fn every_alert_has_a_firing_and_a_silent_unit_test() {
    let rules = read(RULES);
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim_start().strip_prefix("- alert:"))
        .map(str::trim)
        .collect();
    assert_eq!(alerts.len(), 10, "expected 10 alerts in {RULES}");

    let tests = read(RULE_TESTS);
    let mut firing = BTreeSet::new();
    let mut silent = BTreeSet::new();
    let mut alertname = None;
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            alertname = Some(name.trim());
        } else if let Some(expected) = line.strip_prefix("exp_alerts:") {
            let name = alertname
                .take()
                .unwrap_or_else(|| panic!("exp_alerts without alertname in {RULE_TESTS}"));
            if expected.trim() == "[]" {
                silent.insert(name);
            } else {
                firing.insert(name);
            }
        }
    }
    for alert in alerts {
        assert!(
            firing.contains(alert),
            "{RULE_TESTS} never makes {alert} fire"
        );
        assert!(
            silent.contains(alert),
            "{RULE_TESTS} has no case where {alert} must not fire"
        );
    }
}
