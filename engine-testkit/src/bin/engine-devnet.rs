//! `engine-devnet`: the Alys slot loop through the supervised actor tree.
//!
//! By default it starts the embedded MockExecutionLayer; `--el ethereumjs` and `--el reth`
//! launch the real client on a fresh chain (the configured fork times then count from its
//! genesis); `--engine-url/--eth-url/--jwt-secret` attach to a running client.
//! Every slot: build (peg-ins every few slots) → commit → the block with its transactions → its
//! receipts; every N slots the block is finalized. Traces go to Jaeger when the `OTEL_*`
//! variables are set; `--metrics ADDR` serves Prometheus metrics.

use std::{
    net::SocketAddr,
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, B256};
use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use engine_actor::{EngineHandle, EngineSystem, init_telemetry_with_log_level};
use engine_clients::ClientOptions;
use engine_testkit::{
    GenesisOptions, MockConfig, MockExecutionLayer, RealClientKind, RealExecutionClient,
};
use engine_types::{AddBalance, BuildPayloadRequest, ConsensusAmount, EngineConfig};
use serde::Serialize;
use tracing::Instrument;

/// Which execution client the devnet drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ElChoice {
    /// The embedded mock (a real JSON-RPC server with JWT checks, in this process).
    Mock,
    /// The real EthereumJS client from engine-testkit/el (`just setup` installs it).
    Ethereumjs,
    /// A real Reth (`RETH_BIN`, or `reth` on PATH).
    Reth,
}

/// Play the Alys slot loop against an execution client through the engine's actor tree.
#[derive(Debug, Parser)]
#[command(name = "engine-devnet", version, about)]
struct Args {
    /// Execution client to start (ignored with --engine-url).
    #[arg(long, value_enum, default_value_t = ElChoice::Mock)]
    el: ElChoice,
    /// Attach to a running client's Engine API instead (needs --jwt-secret).
    #[arg(long, requires = "jwt_secret")]
    engine_url: Option<String>,
    /// Public JSON-RPC URL of the attached client (default: the engine URL).
    #[arg(long, requires = "engine_url")]
    eth_url: Option<String>,
    /// JWT secret file of the attached client.
    #[arg(long)]
    jwt_secret: Option<PathBuf>,
    /// Engine configuration (TOML; `ALYS_ENGINE_*` variables override it). Its endpoints are
    /// replaced by the client chosen above.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Stop after this many slots and print a summary (default: run until Ctrl-C).
    #[arg(long)]
    slots: Option<u64>,
    /// Slot length in milliseconds.
    #[arg(long, default_value_t = 2000)]
    slot_ms: u64,
    /// Add peg-ins every this many slots.
    #[arg(long, default_value_t = 3)]
    peg_in_every: u64,
    /// Finalize every this many slots.
    #[arg(long, default_value_t = 10)]
    finalize_every: u64,
    /// Prepare each next payload right after a commit (build = getPayload only).
    #[arg(long)]
    prepare: bool,
    /// Serve Prometheus metrics at this address (e.g. 127.0.0.1:9464).
    #[arg(long)]
    metrics: Option<SocketAddr>,
    /// Print the summary as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Default, Serialize)]
struct Summary {
    slots: u64,
    committed: u64,
    failed: u64,
    head_number: u64,
    head_hash: B256,
    finalized_hash: B256,
    peg_ins: u64,
    build_ms_avg: f64,
    commit_ms_avg: f64,
    block_cache_hit_ratio: f64,
    preparations_used: u64,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // `just run -- --slots 5` hands us a literal `--` first; accept it like `just run --slots 5`.
    let argv: Vec<std::ffi::OsString> = std::env::args_os()
        .enumerate()
        .filter(|(i, a)| !(*i == 1 && a == "--"))
        .map(|(_, a)| a)
        .collect();
    let args = match Args::try_parse_from(argv) {
        Ok(args) => args,
        Err(e)
            if matches!(
                e.kind(),
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion
            ) =>
        {
            e.exit()
        }
        Err(e) => {
            // One line: what is wrong; `--help` lists the options.
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            eprintln!("engine-devnet: {first} (see --help)");
            std::process::exit(2);
        }
    };
    // Logs only for errors unless RUST_LOG says otherwise: the devnet prints its own lines.
    let telemetry = match init_telemetry_with_log_level("alys-engine-devnet", "error") {
        Ok(guard) => guard,
        Err(e) => {
            eprintln!("engine-devnet: {e}");
            std::process::exit(1);
        }
    };
    let result = run(args).await;
    drop(telemetry);
    if let Err(e) = result {
        eprintln!("engine-devnet: {e:#}");
        std::process::exit(1);
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

fn peg_ins_for(slot: u64, every: u64) -> anyhow::Result<Vec<AddBalance>> {
    if !slot.is_multiple_of(every) {
        return Ok(Vec::new());
    }
    let address = Address::with_last_byte((slot % 251) as u8 + 1);
    Ok(vec![AddBalance(
        address,
        ConsensusAmount::from_satoshi(100_000 * slot)?,
    )])
}

async fn run(args: Args) -> anyhow::Result<()> {
    if args.slot_ms == 0 || args.peg_in_every == 0 || args.finalize_every == 0 {
        bail!("--slot-ms, --peg-in-every and --finalize-every must be positive");
    }
    let mut config = EngineConfig::load(args.config.as_deref())?;
    // Keep whichever backend we start alive for the whole run.
    let mut _mock = None;
    let mut _real = None;
    let options = if let Some(url) = &args.engine_url {
        let secret = args
            .jwt_secret
            .as_deref()
            .context("--jwt-secret is required with --engine-url")?;
        let mut options = ClientOptions::with_secret_file(url.clone(), secret)?;
        if let Some(eth) = &args.eth_url {
            options = options.with_eth_url(eth.clone());
        }
        options
    } else {
        match args.el {
            ElChoice::Mock => {
                let mock = MockExecutionLayer::start(
                    MockConfig::default().with_fork_schedule(config.fork_schedule),
                )
                .await?;
                let options = ClientOptions::new(mock.url(), mock.jwt_secret());
                _mock = Some(mock);
                options
            }
            ElChoice::Ethereumjs | ElChoice::Reth => {
                let kind = if args.el == ElChoice::Reth {
                    RealClientKind::Reth
                } else {
                    RealClientKind::EthereumJs
                };
                eprintln!("starting {kind}…");
                // The configured fork times count from the launched chain's genesis.
                let genesis = GenesisOptions::default().with_forks(config.fork_schedule);
                let el = RealExecutionClient::start(kind, &genesis).await?;
                config.fork_schedule = genesis.fork_schedule(el.genesis_timestamp());
                let options =
                    ClientOptions::new(el.engine_url(), el.jwt_secret()).with_eth_url(el.eth_url());
                _real = Some(el);
                options
            }
        }
    };
    let options = options.with_engine_config(&config);
    let url = options.engine_url.clone();
    let system = EngineSystem::start_with_options(config, vec![options])
        .await
        .with_context(|| format!("cannot connect to the execution client at {url}"))?;
    let engine = system.handle();
    let status = engine.status().await?;
    let session = status.sessions.first().context("no session")?;
    let what = if _mock.is_some() {
        " (the embedded mock, impersonating it)"
    } else {
        ""
    };
    eprintln!(
        "connected to {} {} at {url}{what}",
        session.identity.kind, session.identity.version
    );
    let metrics_server = match args.metrics {
        Some(addr) => {
            let (bound, task) = system.serve_metrics(addr).await?;
            eprintln!("metrics at http://{bound}/metrics");
            Some(task)
        }
        None => None,
    };
    let result = slot_loop(&args, &engine).await;
    if let Some(task) = metrics_server {
        task.abort();
    }
    system.shutdown().await;
    let summary = result?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "summary: {} slots, {} committed, {} failed, head #{} {}, finalized {}, {} peg-ins, build {:.1} ms avg, commit {:.1} ms avg, block cache hit ratio {:.0} %",
            summary.slots,
            summary.committed,
            summary.failed,
            summary.head_number,
            short(summary.head_hash),
            short(summary.finalized_hash),
            summary.peg_ins,
            summary.build_ms_avg,
            summary.commit_ms_avg,
            summary.block_cache_hit_ratio * 100.0
        );
    }
    if summary.failed > 0 {
        bail!("{} of {} slots failed", summary.failed, summary.slots);
    }
    Ok(())
}

async fn slot_loop(args: &Args, engine: &EngineHandle) -> anyhow::Result<Summary> {
    let mut summary = Summary::default();
    let (mut build_total, mut commit_total) = (Duration::ZERO, Duration::ZERO);
    let mut ticker = tokio::time::interval(Duration::from_millis(args.slot_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let shutdown = tokio::signal::ctrl_c();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => { eprintln!("\nCtrl-C: stopping"); break; }
            _ = ticker.tick() => {}
        }
        summary.slots += 1;
        let slot = summary.slots;
        let span = tracing::info_span!(target: "engine_devnet", "alys.slot", slot);
        let result: anyhow::Result<_> = async {
            let head = engine.forkchoice().await?;
            let timestamp = unix_now().max(head.head_timestamp + 1);
            let peg_ins = peg_ins_for(slot, args.peg_in_every)?;
            let started = Instant::now();
            let built = engine
                .build_payload(BuildPayloadRequest::new(timestamp).with_peg_ins(peg_ins.clone()))
                .await?;
            let build = started.elapsed();
            let commit_started = Instant::now();
            let hash = engine.commit_payload(built.execution_data).await?;
            let commit = commit_started.elapsed();
            let block = engine
                .get_block(hash, true)
                .await?
                .context("committed block not found")?;
            let receipts = engine.get_receipts(hash).await?;
            if slot.is_multiple_of(args.finalize_every) {
                engine.finalize(hash).await?;
            }
            if args.prepare {
                let next = BuildPayloadRequest::new(
                    (timestamp + args.slot_ms.div_ceil(1000)).max(timestamp + 1),
                )
                .with_peg_ins(peg_ins_for(slot + 1, args.peg_in_every)?);
                engine.prepare_payload(next).await?;
            }
            Ok((
                block.header.number,
                hash,
                build,
                commit,
                peg_ins.len(),
                receipts.len(),
            ))
        }
        .instrument(span)
        .await;
        let status = engine.status().await?;
        let blocks = status.caches.blocks;
        let hit_ratio = blocks.hits as f64 / (blocks.hits + blocks.misses).max(1) as f64;
        let healthy = status.sessions.iter().filter(|s| s.is_healthy()).count();
        match result {
            Ok((number, hash, build, commit, peg_ins, receipts)) => {
                summary.committed += 1;
                summary.peg_ins += peg_ins as u64;
                summary.head_number = number;
                build_total += build;
                commit_total += commit;
                println!(
                    "slot {slot:>5}  head #{number:<6} {}  finalized {}  build {:>5.1} ms  commit {:>5.1} ms  peg-ins {peg_ins}  receipts {receipts}  cache hits {:>3.0} %  sessions {healthy}/{}",
                    short(hash),
                    short(status.forkchoice.finalized),
                    build.as_secs_f64() * 1e3,
                    commit.as_secs_f64() * 1e3,
                    hit_ratio * 100.0,
                    status.sessions.len(),
                );
            }
            Err(e) => {
                summary.failed += 1;
                eprintln!("slot {slot:>5}  FAILED: {e:#}");
            }
        }
        summary.head_hash = status.forkchoice.head;
        summary.finalized_hash = status.forkchoice.finalized;
        summary.block_cache_hit_ratio = hit_ratio;
        summary.preparations_used = status.preparation.used;
        if args.slots.is_some_and(|n| slot >= n) {
            break;
        }
    }
    if summary.committed > 0 {
        summary.build_ms_avg = build_total.as_secs_f64() * 1e3 / summary.committed as f64;
        summary.commit_ms_avg = commit_total.as_secs_f64() * 1e3 / summary.committed as f64;
    }
    Ok(summary)
}

fn short(hash: B256) -> String {
    let s = hash.to_string();
    format!("{}…{}", &s[..8], &s[s.len() - 4..])
}
