//! `engine-devnet`: the Alys slot loop against an execution client.
//!
//! By default it starts the embedded MockExecutionLayer; `--el ethereumjs` launches the real
//! EthereumJS client; `--engine-url/--eth-url/--jwt-secret` attach to a running Reth or Geth.
//! Every slot: forkchoiceUpdated with attributes (peg-ins every few slots) → getPayload →
//! newPayload → forkchoiceUpdated, then the block with its transactions and its receipts;
//! every N slots the block is finalized.
//!
//! This devnet drives `engine-clients` directly; the supervised actor tree takes its place
//! when it lands.

use std::{
    path::PathBuf,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_eips::{BlockId, BlockNumberOrTag};
use alloy_primitives::{Address, B256};
use alloy_rpc_types_engine::{ForkchoiceState, PayloadAttributes};
use anyhow::{Context, bail};
use clap::{Parser, ValueEnum};
use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
use engine_testkit::{
    GenesisOptions, MockExecutionLayer, RealClientKind, RealExecutionClient, mock::MockConfig,
};
use engine_types::{
    AddBalance, ConsensusAmount, DEFAULT_FEE_RECIPIENT, ForkSchedule, require_valid,
    withdrawals_from_peg_ins,
};
use serde::Serialize;

/// Which execution client the devnet drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ElChoice {
    /// The embedded mock (a real JSON-RPC server with JWT checks, in this process).
    Mock,
    /// The real EthereumJS client from engine-testkit/el (`just setup` installs it).
    Ethereumjs,
}

/// Play the Alys slot loop against an execution client.
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
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
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

async fn run(args: Args) -> anyhow::Result<()> {
    if args.slot_ms == 0 || args.peg_in_every == 0 || args.finalize_every == 0 {
        bail!("--slot-ms, --peg-in-every and --finalize-every must be positive");
    }
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
                let mock = MockExecutionLayer::start(MockConfig::default()).await?;
                let options = ClientOptions::new(mock.url(), mock.jwt_secret());
                _mock = Some(mock);
                options
            }
            ElChoice::Ethereumjs => {
                eprintln!("starting EthereumJS…");
                let el = RealExecutionClient::start(
                    RealClientKind::EthereumJs,
                    &GenesisOptions::default(),
                )
                .await?;
                let options =
                    ClientOptions::new(el.engine_url(), el.jwt_secret()).with_eth_url(el.eth_url());
                _real = Some(el);
                options
            }
        }
    };
    let options = options.with_fork_schedule(ForkSchedule::shanghai());
    let url = options.engine_url.clone();
    let client = HttpExecutionClient::connect(options)
        .await
        .with_context(|| format!("cannot connect to the execution client at {url}"))?;
    let id = client.identity();
    let what = if _mock.is_some() {
        " (the embedded mock, impersonating it)"
    } else {
        ""
    };
    eprintln!("connected to {} {} at {url}{what}", id.kind, id.version);

    let head_block = client
        .block(BlockId::Number(BlockNumberOrTag::Latest), false)
        .await?
        .context("the execution client has no latest block")?;
    let mut head = head_block.header.hash;
    let mut head_timestamp = head_block.header.timestamp;
    let mut finalized = B256::ZERO;
    let mut summary = Summary::default();
    let (mut build_total, mut commit_total) = (Duration::ZERO, Duration::ZERO);
    let mut withdrawal_index = 0u64;
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
        let peg_ins = if slot % args.peg_in_every == 0 {
            vec![AddBalance(
                Address::with_last_byte((slot % 251) as u8 + 1),
                ConsensusAmount::from_satoshi(100_000 * slot)?,
            )]
        } else {
            Vec::new()
        };
        let timestamp = unix_now().max(head_timestamp + 1);
        let withdrawals = withdrawals_from_peg_ins(&peg_ins, withdrawal_index);
        let started = Instant::now();
        let result: anyhow::Result<_> = async {
            let attrs = PayloadAttributes {
                timestamp,
                prev_randao: B256::ZERO,
                suggested_fee_recipient: DEFAULT_FEE_RECIPIENT,
                withdrawals: Some(withdrawals.clone()),
                parent_beacon_block_root: None,
            };
            let state = ForkchoiceState {
                head_block_hash: head,
                safe_block_hash: finalized,
                finalized_block_hash: finalized,
            };
            let id = client
                .forkchoice_updated(state, Some(attrs))
                .await?
                .payload_id
                .context("no payload id")?;
            let built = client.get_payload(id, timestamp, None).await?;
            let build = started.elapsed();
            let commit_started = Instant::now();
            require_valid(
                &client.new_payload(&built.execution_data).await?,
                built.block_hash(),
            )?;
            let hash = built.block_hash();
            let new_finalized = if slot % args.finalize_every == 0 {
                hash
            } else {
                finalized
            };
            let state = ForkchoiceState {
                head_block_hash: hash,
                safe_block_hash: new_finalized,
                finalized_block_hash: new_finalized,
            };
            client.forkchoice_updated(state, None).await?;
            let commit = commit_started.elapsed();
            let block = client
                .block(BlockId::Hash(hash.into()), true)
                .await?
                .context("committed block not found")?;
            let receipts = client
                .block_receipts(BlockId::Number(BlockNumberOrTag::Number(
                    block.header.number,
                )))
                .await?
                .unwrap_or_default();
            Ok((built, new_finalized, build, commit, receipts.len()))
        }
        .await;
        match result {
            Ok((built, new_finalized, build, commit, receipts)) => {
                head = built.block_hash();
                head_timestamp = timestamp;
                finalized = new_finalized;
                withdrawal_index += withdrawals.len() as u64;
                summary.committed += 1;
                summary.peg_ins += peg_ins.len() as u64;
                summary.head_number = built.block_number();
                build_total += build;
                commit_total += commit;
                println!(
                    "slot {slot:>5}  head #{:<6} {}  finalized {}  build {:>4.1} ms  commit {:>4.1} ms  peg-ins {}  receipts {receipts}",
                    built.block_number(),
                    short(head),
                    short(finalized),
                    build.as_secs_f64() * 1e3,
                    commit.as_secs_f64() * 1e3,
                    peg_ins.len(),
                );
            }
            Err(e) => {
                summary.failed += 1;
                eprintln!("slot {slot:>5}  FAILED: {e:#}");
            }
        }
        if args.slots.is_some_and(|n| slot >= n) {
            break;
        }
    }
    summary.head_hash = head;
    summary.finalized_hash = finalized;
    if summary.committed > 0 {
        summary.build_ms_avg = build_total.as_secs_f64() * 1e3 / summary.committed as f64;
        summary.commit_ms_avg = commit_total.as_secs_f64() * 1e3 / summary.committed as f64;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        println!(
            "summary: {} slots, {} committed, {} failed, head #{} {}, finalized {}, {} peg-ins, build {:.1} ms avg, commit {:.1} ms avg",
            summary.slots,
            summary.committed,
            summary.failed,
            summary.head_number,
            short(head),
            short(finalized),
            summary.peg_ins,
            summary.build_ms_avg,
            summary.commit_ms_avg
        );
    }
    if summary.failed > 0 {
        bail!("{} of {} slots failed", summary.failed, summary.slots);
    }
    Ok(())
}

fn short(hash: B256) -> String {
    let s = hash.to_string();
    format!("{}…{}", &s[..8], &s[s.len() - 4..])
}
