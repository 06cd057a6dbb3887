# alys-engine tasks. `just` lists them.

set shell := ["bash", "-euo", "pipefail", "-c"]

# In CI snapshots are checked, never written.
export INSTA_UPDATE := if env_var_or_default("CI", "") == "true" { "no" } else { "auto" }

el_dir := "engine-testkit/el"

# The Alys node's boundary (the shim's tests, the SSZ vectors) is behind a feature: tests and
# lints build it too.
features := "--features engine-migration/alys-node"

_default:
    @just --list

# Run the devnet: the Alys slot loop on the embedded mock execution client (`just run -- --help`).
run *ARGS: _el-if-needed
    cargo run --release -q -p engine-testkit --bin engine-devnet -- {{ARGS}}

# Install the real execution client used by the tests (EthereumJS, pinned in engine-testkit/el).
setup:
    npm ci --prefix {{el_dir}} --no-audit --no-fund --loglevel=error

_el-if-needed:
    @test -f {{el_dir}}/node_modules/@ethereumjs/client/package.json || just setup

# Every test: unit, integration against the mock EL, snapshots, end-to-end on real EthereumJS and
# Reth (and Geth when GETH_BIN is set), doctests. Tests of a client this machine lacks are left
# out and counted as skipped; a client named by RETH_BIN/GETH_BIN that is missing fails them.
test: _el-if-needed
    #!/usr/bin/env bash
    set -euo pipefail
    if ! cargo nextest --version >/dev/null 2>&1; then
        echo "cargo-nextest is not installed: running the tests with cargo test, one at a time (install it with 'cargo install cargo-nextest --locked' for parallel, one process per test)"
        cargo test --workspace {{features}} --lib --bins --tests -- --test-threads=1
        cargo test -p engine-benches --benches
        cargo test --workspace {{features}} --doc -q
        exit 0
    fi
    skip_filter=""
    skipped=()
    for client in reth geth; do
        var="$(echo "$client" | tr a-z A-Z)_BIN"
        if [ -z "${!var:-}" ] && ! command -v "$client" >/dev/null 2>&1; then
            skip_filter="${skip_filter:+$skip_filter | }test(/${client}_el/)"
            skipped+=("$client")
        fi
    done
    if [ -z "$skip_filter" ]; then
        cargo nextest run --workspace {{features}} --all-targets
    else
        cargo nextest run --workspace {{features}} --all-targets -E "not ($skip_filter)"
        for client in "${skipped[@]}"; do
            var="$(echo "$client" | tr a-z A-Z)_BIN"
            count="$(cargo nextest list --workspace {{features}} --all-targets -E "test(/${client}_el/)" --message-format oneline 2>/dev/null | grep -c . || true)"
            echo "SKIPPED: $count $client tests: $var is not set and $client is not on PATH"
        done
    fi
    cargo test --workspace {{features}} --doc -q

# Only the tests against real execution clients (EthereumJS; Reth/Geth when RETH_BIN/GETH_BIN or PATH has them).
e2e: _el-if-needed
    cargo nextest run --workspace {{features}} -E 'binary(/real_el/) | test(/(ethereumjs|reth|geth)_el/)'

# Formatting and clippy with warnings as errors.
lint:
    cargo fmt --all --check
    cargo clippy --workspace --all-targets {{features}} -- -D warnings

# Benchmarks against the in-process mock (criterion suites and the 10 000-slot workload).
bench:
    cargo bench -p engine-benches

# Benchmarks against a real client (not part of CI): BENCH_EL=ethereumjs (default) or reth
# (RETH_BIN or reth on PATH).
bench-e2e: _el-if-needed
    BENCH_EL="${BENCH_EL:-ethereumjs}" cargo bench -p engine-benches --bench prepared_build
    BENCH_EL="${BENCH_EL:-ethereumjs}" cargo bench -p engine-benches --bench el_slot
    BENCH_EL="${BENCH_EL:-ethereumjs}" cargo bench -p engine-benches --bench import

# API docs for every crate.
docs:
    cargo doc --workspace --no-deps

# Fuzz the decoding of execution-client answers for SECONDS (default 60; not in CI). Needs the
# nightly toolchain; installs cargo-fuzz if missing. Crashes land in fuzz/artifacts/.
fuzz SECONDS="60" *ARGS:
    command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
    mkdir -p fuzz/corpus/decode_response
    cd fuzz && cargo +nightly fuzz run decode_response corpus/decode_response seeds/decode_response -- -dict=decode_response.dict -max_total_time={{SECONDS}} -max_len=8192 {{ARGS}}

# Load: the slot producer plus 64 concurrent readers for 60 s against the mock (release build).
load *ARGS:
    cargo run --release -q -p engine-testkit --bin engine-load -- {{ARGS}}
