//! `engine-load`: the actor tree under read load. On the embedded MockExecutionLayer it runs
//! the Alys slot producer (build → commit every slot, finalize every few slots) plus N
//! concurrent readers (blocks by tag, hash and number, receipts, forkchoice, status) for a
//! fixed time, then prints reads, read errors, read latency percentiles, slots, slot errors
//! and slot latency percentiles. Exits 1 if anything failed.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use clap::Parser;
use engine_actor::{BlockRef, EngineHandle, EngineSystem};
use engine_clients::ClientOptions;
use engine_testkit::{MockConfig, MockExecutionLayer};
use engine_types::{BuildPayloadRequest, EngineConfig, EngineError};
use serde::Serialize;

/// Load the engine: a slot producer plus concurrent readers against the embedded mock.
#[derive(Debug, Parser)]
#[command(name = "engine-load", version, about)]
struct Args {
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    seconds: u64,
    /// Concurrent readers.
    #[arg(long, default_value_t = 64)]
    readers: usize,
    /// Slot length in milliseconds (one build + commit per slot).
    #[arg(long, default_value_t = 100)]
    slot_ms: u64,
    /// Finalize the head every this many slots.
    #[arg(long, default_value_t = 8)]
    finalize_every: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Default, Serialize)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    max_ms: f64,
}

impl Latency {
    fn of(mut samples: Vec<Duration>) -> Self {
        if samples.is_empty() {
            return Self::default();
        }
        samples.sort_unstable();
        let at = |q: f64| {
            let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[i].as_secs_f64() * 1e3
        };
        Self {
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

#[derive(Debug, Serialize)]
struct Report {
    seconds: f64,
    readers: usize,
    reads: u64,
    read_errors: u64,
    reads_per_second: f64,
    read_latency: Latency,
    slots: u64,
    slot_errors: u64,
    slot_latency: Latency,
    head_number: u64,
    first_errors: Vec<String>,
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = match Args::try_parse() {
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
            eprintln!("engine-load: {first} (see --help)");
            std::process::exit(2);
        }
    };
    match run(args).await {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("engine-load: {e:#}");
            std::process::exit(1);
        }
    }
}

/// What one task measured.
#[derive(Default)]
struct Tally {
    ok: u64,
    errors: u64,
    latencies: Vec<Duration>,
    first_error: Option<String>,
}

impl Tally {
    fn record(&mut self, started: Instant, result: Result<(), String>) {
        self.latencies.push(started.elapsed());
        match result {
            Ok(()) => self.ok += 1,
            Err(e) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
        }
    }
}

fn found<T>(what: &str, r: Result<Option<T>, EngineError>) -> Result<(), String> {
    match r {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("{what}: not found")),
        Err(e) => Err(format!("{what}: {e}")),
    }
}

async fn reader(engine: EngineHandle, index: usize, stop: Arc<AtomicBool>) -> Tally {
    let mut tally = Tally::default();
    let mut n = index;
    while !stop.load(Ordering::Relaxed) {
        n = n.wrapping_add(1);
        let started = Instant::now();
        let result = match n % 6 {
            0 => found(
                "latest block",
                engine.get_block(BlockRef::Latest, false).await,
            ),
            1 => match engine.forkchoice().await {
                Ok(fc) => found("head by hash", engine.get_block(fc.head, true).await),
                Err(e) => Err(format!("forkchoice: {e}")),
            },
            2 => match engine.forkchoice().await {
                // An older block: a cache miss that goes to the EL.
                Ok(fc) => found(
                    "block by number",
                    engine
                        .get_block(BlockRef::Number(fc.head_number / 2), false)
                        .await,
                ),
                Err(e) => Err(format!("forkchoice: {e}")),
            },
            3 => match engine.forkchoice().await {
                Ok(fc) => engine
                    .get_receipts(fc.head)
                    .await
                    .map(drop)
                    .map_err(|e| format!("receipts: {e}")),
                Err(e) => Err(format!("forkchoice: {e}")),
            },
            4 => found(
                "finalized block",
                engine.get_block(BlockRef::Finalized, false).await,
            )
            .or_else(|e| {
                // Nothing finalized yet in the first slots is not an error.
                if e.ends_with("not found") {
                    Ok(())
                } else {
                    Err(e)
                }
            }),
            _ => engine
                .status()
                .await
                .map(drop)
                .map_err(|e| format!("status: {e}")),
        };
        tally.record(started, result);
    }
    tally
}

async fn producer(engine: EngineHandle, args: (u64, u64), stop: Arc<AtomicBool>) -> Tally {
    let (slot_ms, finalize_every) = args;
    let mut tally = Tally::default();
    let mut ticker = tokio::time::interval(Duration::from_millis(slot_ms));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut slot = 0u64;
    while !stop.load(Ordering::Relaxed) {
        ticker.tick().await;
        slot += 1;
        let started = Instant::now();
        let result = async {
            let head = engine.forkchoice().await.map_err(|e| e.to_string())?;
            let built = engine
                .build_payload(BuildPayloadRequest::new(head.head_timestamp + 1))
                .await
                .map_err(|e| format!("build: {e}"))?;
            let hash = engine
                .commit_payload(built.execution_data)
                .await
                .map_err(|e| format!("commit: {e}"))?;
            if slot.is_multiple_of(finalize_every) {
                engine
                    .finalize(hash)
                    .await
                    .map_err(|e| format!("finalize: {e}"))?;
            }
            Ok(())
        }
        .await;
        tally.record(started, result);
    }
    tally
}

async fn run(args: Args) -> anyhow::Result<bool> {
    if args.seconds == 0 || args.slot_ms == 0 || args.finalize_every == 0 {
        bail!("--seconds, --slot-ms and --finalize-every must be positive");
    }
    let config = EngineConfig::default();
    let mock =
        MockExecutionLayer::start(MockConfig::default().with_fork_schedule(config.fork_schedule))
            .await?;
    let options = ClientOptions::new(mock.url(), mock.jwt_secret())
        .with_fork_schedule(config.fork_schedule)
        .with_timeouts(config.timeouts)
        .with_retry(config.retry);
    let system = EngineSystem::start_with_options(config, vec![options])
        .await
        .with_context(|| format!("cannot start the engine on the mock at {}", mock.url()))?;
    let engine = system.handle();
    if !args.json {
        eprintln!(
            "engine-load: {} readers + slot producer ({} ms slots) for {} s on the embedded mock…",
            args.readers, args.slot_ms, args.seconds
        );
    }
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let producer = tokio::spawn(producer(
        engine.clone(),
        (args.slot_ms, args.finalize_every),
        Arc::clone(&stop),
    ));
    let readers: Vec<_> = (0..args.readers)
        .map(|i| tokio::spawn(reader(engine.clone(), i, Arc::clone(&stop))))
        .collect();
    tokio::time::sleep(Duration::from_secs(args.seconds)).await;
    stop.store(true, Ordering::Relaxed);
    let slots = producer.await.context("the slot producer panicked")?;
    let mut reads = Tally::default();
    let mut first_errors = Vec::new();
    for r in readers {
        let t = r.await.context("a reader panicked")?;
        reads.ok += t.ok;
        reads.errors += t.errors;
        reads.latencies.extend(t.latencies);
        first_errors.extend(t.first_error);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let head_number = engine.forkchoice().await?.head_number;
    system.shutdown().await;
    first_errors.extend(slots.first_error.clone());
    first_errors.truncate(5);
    let total_reads = reads.ok + reads.errors;
    let report = Report {
        seconds: elapsed,
        readers: args.readers,
        reads: total_reads,
        read_errors: reads.errors,
        reads_per_second: total_reads as f64 / elapsed,
        read_latency: Latency::of(reads.latencies),
        slots: slots.ok + slots.errors,
        slot_errors: slots.errors,
        slot_latency: Latency::of(slots.latencies),
        head_number,
        first_errors,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let l = &report.read_latency;
        let s = &report.slot_latency;
        println!(
            "reads: {} ({:.0}/s), {} errors, latency p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
            report.reads, report.reads_per_second, report.read_errors, l.p50_ms, l.p99_ms, l.max_ms
        );
        println!(
            "slots: {}, {} errors, latency (build + commit) p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; head #{}",
            report.slots, report.slot_errors, s.p50_ms, s.p99_ms, s.max_ms, report.head_number
        );
        for e in &report.first_errors {
            eprintln!("engine-load: error: {e}");
        }
    }
    Ok(report.read_errors == 0 && report.slot_errors == 0 && report.reads > 0 && report.slots > 0)
}
