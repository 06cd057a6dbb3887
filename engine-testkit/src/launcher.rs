//! Launchers for real execution clients in end-to-end tests.
//!
//! [`RealExecutionClient::start`] writes a post-merge geth-style genesis (see [`GenesisOptions`])
//! and a fresh JWT secret into a temporary directory, starts the client in its own process group
//! on free `127.0.0.1` ports, and returns once its Engine API answers
//! `engine_exchangeCapabilities` and its HTTP RPC answers `eth_chainId`. Dropping the
//! [`RealExecutionClient`] kills the whole process group and removes the directory.
//! [`RealExecutionClient::kill`] crashes it (SIGKILL, data kept) and
//! [`RealExecutionClient::restart`] starts it again on the same data directory and ports, for
//! chaos tests.
//!
//! | client | found through ([`locate`]) | started as |
//! |---|---|---|
//! | EthereumJS | `ETHEREUMJS_BIN`, else the pinned npm package in `engine-testkit/el` | `node …/cli.js --gethGenesis …` |
//! | Reth | `RETH_BIN`, else `reth` on `PATH` | `reth node --chain genesis.json …` |
//! | Geth | `GETH_BIN`, else `geth` on `PATH` | `geth init` then `geth --datadir …` |
//!
//! Things learned from running EthereumJS 0.10.5 that shape this module:
//! * It rejects a JWT whose `exp` claim is `null` ("Token expired"), which is what
//!   `Claims { exp: None, .. }` serializes to; tokens here come from
//!   [`engine_clients::bearer_token`], which leaves `exp` out.
//! * It handles SIGTERM by a slow shutdown (about 8 s), so the process group gets SIGKILL after a
//!   short grace period; the chain lives in a temporary directory, so nothing is lost.
//! * Its RLPx/discovery sockets bind `0.0.0.0` whatever the flags say; with `--maxPeers 0` they
//!   accept no peers. The two RPC servers are bound to `127.0.0.1`.
//!
//! ```no_run
//! # async fn demo() -> Result<(), engine_testkit::launcher::LaunchError> {
//! use engine_testkit::launcher::{GenesisOptions, RealClientKind, RealExecutionClient};
//!
//! let genesis = GenesisOptions::default().with_cancun(true);
//! let el = RealExecutionClient::start(RealClientKind::EthereumJs, &genesis).await?;
//! println!("engine API at {} (secret {})", el.engine_url(), el.jwt_secret_path().display());
//! // `el` is dropped here: the client's process group is killed.
//! # Ok(())
//! # }
//! ```

use std::{
    collections::BTreeMap,
    fmt,
    fs::{self, File},
    io::{self, Read as _, Seek as _, SeekFrom},
    net::TcpListener,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::{Address, Bytes, U256, address, hex};
use alloy_rpc_types_engine::JwtSecret;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Map, Value, json};
use tempfile::TempDir;

/// Private key of [`DEV_ACCOUNT`], the widely used devnet key. Test-only: never fund it anywhere
/// that matters.
pub const DEV_PRIVATE_KEY: &str =
    "bcdf20249abf0ed6d944c0288fad489e33f66b3960d9e6229c1cd214ed3bbe31";

/// Address of [`DEV_PRIVATE_KEY`]; [`GenesisOptions::default`] prefunds it with 1 000 000 ETH.
pub const DEV_ACCOUNT: Address = address!("8943545177806ED17B9F23F0a21ee5948eCaa776");

/// How long [`RealExecutionClient::start`] waits for the client to answer (EthereumJS needs
/// 2–4 s on an idle machine, more on a loaded CI runner).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between readiness probes.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// Timeout of one readiness probe (the spec's timeout for `engine_exchangeCapabilities`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the client may take to exit after SIGTERM before its group gets SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the process to be reaped after SIGKILL.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);
/// Poll interval while waiting for the process to exit.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Upper bound for `geth init`.
const GETH_INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Log lines quoted in [`LaunchError`]s.
const ERROR_LOG_LINES: usize = 40;
/// Only the end of the log is read for [`RealExecutionClient::log_tail`].
const LOG_TAIL_MAX_BYTES: u64 = 64 * 1024;

/// The EthereumJS entry point inside this crate, installed by `npm ci` in `engine-testkit/el`.
const ETHEREUMJS_CLI: &str = "el/node_modules/@ethereumjs/client/dist/esm/bin/cli.js";
/// What to do when EthereumJS is missing.
const ETHEREUMJS_INSTALL_HINT: &str = "run `just setup` (npm ci in engine-testkit/el)";

/// Which real execution client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RealClientKind {
    /// EthereumJS (`@ethereumjs/client`, pinned in `engine-testkit/el/package.json`).
    EthereumJs,
    /// Reth (`reth` binary).
    Reth,
    /// Go-ethereum (`geth` binary).
    Geth,
}

impl RealClientKind {
    /// Every kind, for tests that loop over the clients.
    pub const ALL: [Self; 3] = [Self::EthereumJs, Self::Reth, Self::Geth];

    /// Short lower-case name used in errors and log messages: `ethereumjs`, `reth`, `geth`.
    pub const fn name(self) -> &'static str {
        match self {
            Self::EthereumJs => "ethereumjs",
            Self::Reth => "reth",
            Self::Geth => "geth",
        }
    }

    /// The environment variable that overrides where [`locate`] finds the client.
    pub const fn bin_env_var(self) -> &'static str {
        match self {
            Self::EthereumJs => "ETHEREUMJS_BIN",
            Self::Reth => "RETH_BIN",
            Self::Geth => "GETH_BIN",
        }
    }
}

impl fmt::Display for RealClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Genesis options for a launched client.
///
/// The genesis is post-merge from block 0 (every pre-merge fork at block 0,
/// `terminalTotalDifficulty: 0`, `shanghaiTime: 0`) and optionally Cancun from 0 as well; see
/// [`GenesisOptions::geth_genesis`].
///
/// ```
/// use alloy_primitives::{Address, U256};
/// use engine_testkit::launcher::GenesisOptions;
///
/// let genesis = GenesisOptions::default()
///     .with_cancun(true)
///     .with_prefunded(Address::repeat_byte(0x11), U256::from(10u64).pow(U256::from(18u64)));
/// assert_eq!(genesis.chain_id, 263_634);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GenesisOptions {
    /// EIP-155 chain id (also used as the network id).
    pub chain_id: u64,
    /// Activate Cancun at genesis (engine methods V3); otherwise the chain stays on Shanghai (V2).
    pub cancun: bool,
    /// Accounts funded at genesis, in wei. Repeated addresses are summed.
    pub prefunded: Vec<(Address, U256)>,
    /// Contracts present at genesis: address and runtime (deployed) code.
    pub contracts: Vec<(Address, Bytes)>,
}

impl Default for GenesisOptions {
    /// Chain 263634, Shanghai, [`DEV_ACCOUNT`] prefunded with 1 000 000 ETH, no contracts.
    fn default() -> Self {
        let one_million_eth = U256::from(1_000_000u64) * U256::from(10u64).pow(U256::from(18u64));
        Self {
            chain_id: Self::DEFAULT_CHAIN_ID,
            cancun: false,
            prefunded: vec![(DEV_ACCOUNT, one_million_eth)],
            contracts: Vec::new(),
        }
    }
}

impl GenesisOptions {
    /// The chain id of [`GenesisOptions::default`].
    pub const DEFAULT_CHAIN_ID: u64 = 263_634;

    /// Gas limit of the genesis block (30 M, as on mainnet).
    pub const GAS_LIMIT: u64 = 30_000_000;

    /// Returns these options with another chain id.
    pub fn with_chain_id(mut self, chain_id: u64) -> Self {
        self.chain_id = chain_id;
        self
    }

    /// Returns these options with Cancun active at genesis (`true`) or not.
    pub fn with_cancun(mut self, cancun: bool) -> Self {
        self.cancun = cancun;
        self
    }

    /// Returns these options with `address` funded with `wei` more.
    pub fn with_prefunded(mut self, address: Address, wei: U256) -> Self {
        self.prefunded.push((address, wei));
        self
    }

    /// The engine's fork schedule for this genesis (every fork is active from genesis).
    pub const fn fork_schedule(&self, _genesis_timestamp: u64) -> engine_types::ForkSchedule {
        if self.cancun {
            engine_types::ForkSchedule::cancun()
        } else {
            engine_types::ForkSchedule::shanghai()
        }
    }

    /// Returns these options with a contract whose runtime code is `code` at `address`.
    pub fn with_contract(mut self, address: Address, code: Bytes) -> Self {
        self.contracts.push((address, code));
        self
    }

    /// The geth-style genesis JSON (accepted by EthereumJS `--gethGenesis`, `reth --chain` and
    /// `geth init`) with the given genesis `timestamp` (unix seconds).
    pub fn geth_genesis(&self, timestamp: u64) -> Value {
        let zero_hash = hex::encode_prefixed([0u8; 32]);
        let mut config = json!({
            "chainId": self.chain_id,
            "homesteadBlock": 0,
            "eip150Block": 0,
            "eip155Block": 0,
            "eip158Block": 0,
            "byzantiumBlock": 0,
            "constantinopleBlock": 0,
            "petersburgBlock": 0,
            "istanbulBlock": 0,
            "muirGlacierBlock": 0,
            "berlinBlock": 0,
            "londonBlock": 0,
            "arrowGlacierBlock": 0,
            "grayGlacierBlock": 0,
            "mergeNetsplitBlock": 0,
            "mergeForkBlock": 0,
            "terminalTotalDifficulty": 0,
            "terminalTotalDifficultyPassed": true,
            "shanghaiTime": 0,
        });
        let mut genesis = json!({
            "config": Value::Null,
            "nonce": "0x0",
            "timestamp": format!("{timestamp:#x}"),
            "extraData": "0x",
            "gasLimit": format!("{:#x}", Self::GAS_LIMIT),
            "difficulty": "0x0",
            "mixHash": zero_hash,
            "coinbase": hex::encode_prefixed([0u8; 20]),
            "baseFeePerGas": "0x3b9aca00",
            "number": "0x0",
            "gasUsed": "0x0",
            "parentHash": zero_hash,
            "alloc": self.alloc(),
        });
        if self.cancun {
            config["cancunTime"] = json!(0);
            // Geth ≥ 1.15 refuses a Cancun genesis without its blob schedule; the values are
            // the mainnet ones from EIP-4844.
            config["blobSchedule"] =
                json!({ "cancun": { "target": 3, "max": 6, "baseFeeUpdateFraction": 3_338_477 } });
            genesis["excessBlobGas"] = json!("0x0");
            genesis["blobGasUsed"] = json!("0x0");
        }
        genesis["config"] = config;
        genesis
    }

    /// The `alloc` object: balances and contract code keyed by lower-case `0x` address.
    fn alloc(&self) -> Map<String, Value> {
        let mut balances: BTreeMap<Address, U256> = BTreeMap::new();
        for (address, wei) in &self.prefunded {
            let balance = balances.entry(*address).or_default();
            *balance = balance.saturating_add(*wei);
        }
        let mut alloc = Map::new();
        for (address, wei) in &balances {
            alloc.insert(
                hex::encode_prefixed(address),
                json!({ "balance": format!("{wei:#x}") }),
            );
        }
        for (address, code) in &self.contracts {
            let entry = alloc
                .entry(hex::encode_prefixed(address))
                .or_insert_with(|| json!({ "balance": "0x0" }));
            entry["code"] = json!(hex::encode_prefixed(code));
        }
        alloc
    }
}

/// Why a real execution client could not be started.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The client (or what it needs to run, such as `node`) is not installed.
    #[error("{client} is not available: {hint}")]
    NotInstalled {
        /// Which client.
        client: &'static str,
        /// How to install it or which environment variable to set.
        hint: String,
    },
    /// A file or process operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done, naming the path or command.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The client kept running but did not answer its RPC ports in time.
    #[error(
        "{client} did not answer engine_exchangeCapabilities and eth_chainId within {waited:?} \
         (a heavily loaded machine may need longer); last log lines:\n{log_tail}"
    )]
    NotReady {
        /// Which client.
        client: &'static str,
        /// How long it was given.
        waited: Duration,
        /// The end of its log.
        log_tail: String,
    },
    /// The client exited before it was ready.
    #[error("{client} exited during startup ({status}); last log lines:\n{log_tail}")]
    Exited {
        /// Which client.
        client: &'static str,
        /// Exit code or signal.
        status: String,
        /// The end of its log.
        log_tail: String,
    },
}

impl LaunchError {
    fn io(what: impl Into<String>) -> impl FnOnce(io::Error) -> Self {
        let what = what.into();
        move |source| Self::Io { what, source }
    }
}

/// Where the binary or entry point of a client is, or why it is not available.
///
/// * EthereumJS: `ETHEREUMJS_BIN` (a `cli.js`, run with `node`, or an executable), else the
///   package pinned in `engine-testkit/el` (`just setup` installs it). A `.js` entry also needs
///   `node` on `PATH`.
/// * Reth: `RETH_BIN`, else `reth` on `PATH`.
/// * Geth: `GETH_BIN`, else `geth` on `PATH`.
///
/// Tests that treat a client as optional match on [`LaunchError::NotInstalled`] and print its
/// hint.
pub fn locate(kind: RealClientKind) -> Result<PathBuf, LaunchError> {
    match kind {
        RealClientKind::EthereumJs => locate_ethereumjs(),
        RealClientKind::Reth | RealClientKind::Geth => locate_binary(kind),
    }
}

fn locate_ethereumjs() -> Result<PathBuf, LaunchError> {
    let kind = RealClientKind::EthereumJs;
    let var = kind.bin_env_var();
    let entry = match env_path(var) {
        Some(path) if path.is_file() => path,
        Some(path) => {
            return Err(LaunchError::NotInstalled {
                client: kind.name(),
                hint: format!(
                    "{var}={} is not a file: point it at @ethereumjs/client's dist/esm/bin/cli.js \
                     or an `ethereumjs` executable, or unset it and {ETHEREUMJS_INSTALL_HINT}",
                    path.display()
                ),
            });
        }
        None => {
            let pinned = Path::new(env!("CARGO_MANIFEST_DIR")).join(ETHEREUMJS_CLI);
            if !pinned.is_file() {
                return Err(LaunchError::NotInstalled {
                    client: kind.name(),
                    hint: format!(
                        "{} is missing: {ETHEREUMJS_INSTALL_HINT}, or set {var}",
                        pinned.display()
                    ),
                });
            }
            pinned
        }
    };
    if is_js_entry(&entry) && find_on_path("node").is_none() {
        return Err(LaunchError::NotInstalled {
            client: kind.name(),
            hint: format!(
                "`node` (Node.js 18 or newer) is not on PATH, and {} needs it",
                entry.display()
            ),
        });
    }
    Ok(entry)
}

fn locate_binary(kind: RealClientKind) -> Result<PathBuf, LaunchError> {
    let var = kind.bin_env_var();
    let name = kind.name();
    if let Some(path) = env_path(var) {
        if is_executable(&path) {
            return Ok(path);
        }
        return Err(LaunchError::NotInstalled {
            client: name,
            hint: format!("{var}={} is not an executable file", path.display()),
        });
    }
    find_on_path(name).ok_or_else(|| LaunchError::NotInstalled {
        client: name,
        hint: format!("{name} not found (set {var} or put {name} on PATH)"),
    })
}

/// A non-empty path from the environment.
fn env_path(var: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

fn is_js_entry(path: &Path) -> bool {
    path.extension()
        .is_some_and(|ext| ext == "js" || ext == "mjs" || ext == "cjs")
}

/// Files and ports of one launch.
#[derive(Debug)]
struct Layout {
    program: PathBuf,
    genesis: PathBuf,
    chain_dir: PathBuf,
    jwt: PathBuf,
    chain_id: u64,
    engine_port: u16,
    eth_port: u16,
    p2p_port: u16,
}

impl Layout {
    /// The command that runs the client, without stdio or process-group settings.
    fn client_command(&self, kind: RealClientKind) -> Command {
        let (engine_port, eth_port, p2p_port) = (
            self.engine_port.to_string(),
            self.eth_port.to_string(),
            self.p2p_port.to_string(),
        );
        match kind {
            RealClientKind::EthereumJs => {
                let mut cmd = if is_js_entry(&self.program) {
                    let mut node = Command::new("node");
                    node.arg(&self.program);
                    node
                } else {
                    Command::new(&self.program)
                };
                // `--isSingleNode`: without it EthereumJS never considers itself synced and
                // refuses eth_sendRawTransaction; `--saveReceipts`: otherwise it keeps none.
                cmd.arg("--gethGenesis")
                    .arg(&self.genesis)
                    .arg("--dataDir")
                    .arg(&self.chain_dir)
                    .args(["--rpc", "--rpcAddr", "127.0.0.1", "--rpcPort", &eth_port])
                    .args(["--rpcEngine", "--rpcEngineAddr", "127.0.0.1"])
                    .args(["--rpcEnginePort", &engine_port])
                    .arg("--jwtSecret")
                    .arg(&self.jwt)
                    .args([
                        "--port",
                        &p2p_port,
                        "--extIP",
                        "127.0.0.1",
                        "--maxPeers",
                        "0",
                    ])
                    .args(["--isSingleNode", "--saveReceipts"])
                    .args(["--discDns", "false", "--discV4", "false"])
                    .args(["--logFile", "false", "--logLevel", "warn"]);
                cmd
            }
            RealClientKind::Reth => {
                let mut cmd = Command::new(&self.program);
                // `--ipcdisable`: reth's default IPC path is the shared /tmp/reth.ipc, which
                // parallel tests would fight over.
                cmd.arg("node")
                    .arg("--chain")
                    .arg(&self.genesis)
                    .arg("--datadir")
                    .arg(&self.chain_dir)
                    .args([
                        "--authrpc.addr",
                        "127.0.0.1",
                        "--authrpc.port",
                        &engine_port,
                    ])
                    .arg("--authrpc.jwtsecret")
                    .arg(&self.jwt)
                    .args([
                        "--http",
                        "--http.addr",
                        "127.0.0.1",
                        "--http.port",
                        &eth_port,
                    ])
                    .args(["--http.api", "eth,net,web3"])
                    .args(["--port", &p2p_port, "--discovery.port", &p2p_port])
                    .args(["--disable-discovery", "--max-outbound-peers", "0"])
                    .args(["--max-inbound-peers", "0", "--ipcdisable"])
                    .arg("--log.file.directory")
                    .arg(self.chain_dir.join("logs"));
                cmd
            }
            RealClientKind::Geth => {
                let mut cmd = Command::new(&self.program);
                cmd.arg("--datadir")
                    .arg(&self.chain_dir)
                    .args(["--networkid", &self.chain_id.to_string()])
                    .args([
                        "--authrpc.addr",
                        "127.0.0.1",
                        "--authrpc.port",
                        &engine_port,
                    ])
                    .arg("--authrpc.jwtsecret")
                    .arg(&self.jwt)
                    .args([
                        "--http",
                        "--http.addr",
                        "127.0.0.1",
                        "--http.port",
                        &eth_port,
                    ])
                    .args(["--http.api", "eth,net,web3"])
                    .args(["--port", &p2p_port, "--nodiscover", "--maxpeers", "0"])
                    .args(["--syncmode", "full", "--ipcdisable"]);
                cmd
            }
        }
    }

    /// `geth init --datadir D genesis.json`.
    fn geth_init_command(&self) -> Command {
        let mut cmd = Command::new(&self.program);
        cmd.arg("init")
            .arg("--datadir")
            .arg(&self.chain_dir)
            .arg(&self.genesis);
        cmd
    }
}

/// A running real execution client; its whole process group is killed on drop (SIGTERM, then
/// SIGKILL after ~2 s grace).
///
/// Dropping blocks the current thread for up to about 4 s (EthereumJS ignores SIGTERM for longer
/// than the grace period, so each drop of it costs the full 2 s). The temporary directory with
/// the chain, genesis, JWT secret and log is removed after the process is gone.
#[derive(Debug)]
pub struct RealExecutionClient {
    kind: RealClientKind,
    child: Child,
    /// Set once the process has been waited for; after that its pid may be reused, so the
    /// group must not be signalled any more.
    reaped: bool,
    engine_url: String,
    eth_url: String,
    jwt_secret: JwtSecret,
    jwt_path: PathBuf,
    log_path: PathBuf,
    genesis_timestamp: u64,
    /// Program, files and ports, kept to start the client again ([`Self::restart`]).
    layout: Layout,
    /// Dropped after `Drop::drop` has killed the process.
    data_dir: TempDir,
}

impl RealExecutionClient {
    /// Starts `kind` on a fresh chain described by `genesis` and waits (up to 60 s) until its
    /// Engine API and HTTP RPC answer.
    ///
    /// The genesis timestamp is the current unix time, so the first block may use
    /// [`Self::genesis_timestamp`] `+ 1` or later.
    pub async fn start(
        kind: RealClientKind,
        genesis: &GenesisOptions,
    ) -> Result<Self, LaunchError> {
        let program = locate(kind)?;
        let data_dir = tempfile::Builder::new()
            .prefix(&format!("alys-{}-", kind.name()))
            .tempdir()
            .map_err(LaunchError::io(
                "creating a temporary directory for the execution client",
            ))?;
        let dir = data_dir.path();

        let genesis_timestamp = unix_now();
        let genesis_path = dir.join("genesis.json");
        let genesis_json = serde_json::to_vec_pretty(&genesis.geth_genesis(genesis_timestamp))
            .map_err(|err| LaunchError::Io {
                what: "serializing the genesis".to_owned(),
                source: io::Error::other(err),
            })?;
        fs::write(&genesis_path, genesis_json).map_err(LaunchError::io(format!(
            "writing {}",
            genesis_path.display()
        )))?;

        let jwt_secret = JwtSecret::random();
        let jwt_path = dir.join("jwt.hex");
        fs::write(&jwt_path, hex::encode(jwt_secret.as_bytes()))
            .map_err(LaunchError::io(format!("writing {}", jwt_path.display())))?;

        let chain_dir = dir.join("chain");
        fs::create_dir(&chain_dir)
            .map_err(LaunchError::io(format!("creating {}", chain_dir.display())))?;

        let log_path = dir.join("client.log");
        let [engine_port, eth_port, p2p_port] = free_ports()?;
        let layout = Layout {
            program,
            genesis: genesis_path,
            chain_dir,
            jwt: jwt_path.clone(),
            chain_id: genesis.chain_id,
            engine_port,
            eth_port,
            p2p_port,
        };

        if kind == RealClientKind::Geth {
            geth_init(&layout, &log_path).await?;
        }

        let child = spawn_client(kind, &layout, dir, &log_path)?;

        let mut client = Self {
            kind,
            child,
            reaped: false,
            engine_url: format!("http://127.0.0.1:{engine_port}"),
            eth_url: format!("http://127.0.0.1:{eth_port}"),
            jwt_secret,
            jwt_path,
            log_path,
            genesis_timestamp,
            layout,
            data_dir,
        };
        // On error `client` is dropped here, which kills the process group.
        client.wait_until_ready().await?;
        tracing::info!(
            client = kind.name(),
            pid = client.pid(),
            engine = %client.engine_url,
            eth = %client.eth_url,
            "real execution client ready"
        );
        Ok(client)
    }

    /// Which client this is.
    pub const fn kind(&self) -> RealClientKind {
        self.kind
    }

    /// The Engine API endpoint, `http://127.0.0.1:PORT` (JWT required).
    pub fn engine_url(&self) -> &str {
        &self.engine_url
    }

    /// The plain HTTP JSON-RPC endpoint (`eth_`, `net_`, `web3_`), `http://127.0.0.1:PORT`.
    pub fn eth_url(&self) -> &str {
        &self.eth_url
    }

    /// The file holding the JWT secret as 64 hex characters (no `0x`).
    pub fn jwt_secret_path(&self) -> &Path {
        &self.jwt_path
    }

    /// The JWT secret the client checks Engine API calls against.
    ///
    /// Sign tokens for it with [`engine_clients::bearer_token`] (no `exp`): EthereumJS rejects
    /// `"exp": null` as expired.
    pub const fn jwt_secret(&self) -> JwtSecret {
        self.jwt_secret
    }

    /// Timestamp (unix seconds) of the genesis block.
    pub const fn genesis_timestamp(&self) -> u64 {
        self.genesis_timestamp
    }

    /// Process id of the client, which is also its process-group id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The directory holding the genesis, JWT secret, chain data and log; removed on drop.
    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// Crash the client: SIGKILL to its process group at once (no graceful shutdown, as in a
    /// power cut of the process) and reap it. Its data directory, ports and JWT secret are
    /// kept for [`Self::restart`]. Killing a client that is not running does nothing.
    ///
    /// Blocks the current thread until the process is reaped (at most about 2 s).
    pub fn kill(&mut self) {
        if self.reaped {
            return;
        }
        if let Ok(pgid) = libc::pid_t::try_from(self.child.id()) {
            signal_group(pgid, libc::SIGKILL);
        }
        self.reap();
    }

    /// Start the client again on the same data directory, genesis, JWT secret and ports (after
    /// [`Self::kill`]; a running client is killed first) and wait, like [`Self::start`], until
    /// its RPC ports answer. What the client kept of its chain is up to the client.
    pub async fn restart(&mut self) -> Result<(), LaunchError> {
        self.kill();
        let child = spawn_client(
            self.kind,
            &self.layout,
            self.data_dir.path(),
            &self.log_path,
        )?;
        self.child = child;
        self.reaped = false;
        self.wait_until_ready().await?;
        tracing::info!(
            client = self.kind.name(),
            pid = self.pid(),
            "real execution client restarted"
        );
        Ok(())
    }

    /// Wait (up to [`REAP_TIMEOUT`]) for the killed process and reap it.
    fn reap(&mut self) {
        let deadline = Instant::now() + REAP_TIMEOUT;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(_)) | Err(_) => {
                    self.reaped = true;
                    return;
                }
                Ok(None) => std::thread::sleep(EXIT_POLL_INTERVAL),
            }
        }
        tracing::warn!(
            client = self.kind.name(),
            pid = self.child.id(),
            "execution client did not exit within {REAP_TIMEOUT:?} of SIGKILL"
        );
    }

    /// The last `lines` lines of the client's stdout+stderr log, for error messages.
    ///
    /// Only the last 64 KiB of the log are read. If the log cannot be read, the answer says so.
    pub fn log_tail(&self, lines: usize) -> String {
        match read_tail(&self.log_path, lines) {
            Ok(tail) => tail,
            Err(err) => format!("(could not read {}: {err})", self.log_path.display()),
        }
    }

    /// The log tail as quoted in errors: never empty, so a silent client is visible as such.
    fn error_log_tail(&self) -> String {
        let tail = self.log_tail(ERROR_LOG_LINES);
        if tail.trim().is_empty() {
            format!("(nothing in {})", self.log_path.display())
        } else {
            tail
        }
    }

    /// Polls the RPC ports every 250 ms until both answer, the process exits, or 60 s pass.
    async fn wait_until_ready(&mut self) -> Result<(), LaunchError> {
        let http = http_client();
        let started = Instant::now();
        while started.elapsed() < READY_TIMEOUT {
            if let Some(status) = exit_status_without_reaping(&self.child) {
                return Err(LaunchError::Exited {
                    client: self.kind.name(),
                    status,
                    log_tail: self.error_log_tail(),
                });
            }
            if self.answers_rpc(&http).await {
                return Ok(());
            }
            tokio::time::sleep(READY_POLL_INTERVAL).await;
        }
        Err(LaunchError::NotReady {
            client: self.kind.name(),
            waited: started.elapsed(),
            log_tail: self.error_log_tail(),
        })
    }

    /// Whether `engine_exchangeCapabilities` (with a JWT) and `eth_chainId` both answer with a
    /// result.
    async fn answers_rpc(&self, http: &HttpClient) -> bool {
        let engine = rpc_probe(
            http,
            &self.engine_url,
            "engine_exchangeCapabilities",
            json!([[]]),
            Some(&self.jwt_secret),
        )
        .await;
        if let Err(reason) = engine {
            tracing::trace!(client = self.kind.name(), %reason, "engine API not ready yet");
            return false;
        }
        match rpc_probe(http, &self.eth_url, "eth_chainId", json!([]), None).await {
            Ok(_) => true,
            Err(reason) => {
                tracing::trace!(client = self.kind.name(), %reason, "HTTP RPC not ready yet");
                false
            }
        }
    }

    /// SIGTERM to the group, SIGKILL after the grace period, then reap the process.
    fn shut_down(&mut self) {
        if self.reaped {
            return;
        }
        let Ok(pgid) = libc::pid_t::try_from(self.child.id()) else {
            return;
        };
        if exit_status_without_reaping(&self.child).is_none() {
            signal_group(pgid, libc::SIGTERM);
            wait_for_exit(&self.child, SHUTDOWN_GRACE);
        }
        // Also when the leader has exited on its own: whatever it started is still in the
        // group. The unreaped leader keeps the group id from being reused until here.
        signal_group(pgid, libc::SIGKILL);
        self.reap();
    }
}

impl Drop for RealExecutionClient {
    fn drop(&mut self) {
        self.shut_down();
    }
}

/// Start `kind` as laid out in `layout`, in `dir`, appending its output to `log_path`.
fn spawn_client(
    kind: RealClientKind,
    layout: &Layout,
    dir: &Path,
    log_path: &Path,
) -> Result<Child, LaunchError> {
    let mut command = layout.client_command(kind);
    let (stdout, stderr) = log_stdio(log_path)?;
    // Its own process group, so that Drop can kill everything it starts (npm/npx wrappers
    // leave a `node` child behind when only the direct child is killed).
    command
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .process_group(0);
    tracing::debug!(
        client = kind.name(),
        ?command,
        "starting real execution client"
    );
    command
        .spawn()
        .map_err(|source| spawn_error(kind, &layout.program, source))
}

type HttpClient = Client<HttpConnector, Full<bytes::Bytes>>;

fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One JSON-RPC call with a 1 s timeout; `Ok` with the `result`, or why there is none.
async fn rpc_probe(
    http: &HttpClient,
    url: &str,
    method: &str,
    params: Value,
    jwt: Option<&JwtSecret>,
) -> Result<Value, String> {
    let body = json!({ "jsonrpc": "2.0", "id": 1, "method": method, "params": params });
    let mut request = hyper::Request::post(url).header(CONTENT_TYPE, "application/json");
    if let Some(secret) = jwt {
        let token =
            engine_clients::bearer_token(secret).map_err(|err| format!("signing a JWT: {err}"))?;
        request = request.header(AUTHORIZATION, token);
    }
    let request = request
        .body(Full::new(bytes::Bytes::from(body.to_string())))
        .map_err(|e| e.to_string())?;
    let exchange = async {
        let response = http.request(request).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if !status.is_success() {
            return Err(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ));
        }
        let mut reply: Value = serde_json::from_slice(&bytes).map_err(|e| e.to_string())?;
        match reply.get_mut("result").map(Value::take) {
            Some(result) if !result.is_null() => Ok(result),
            _ => Err(format!("no result from {method}: {reply}")),
        }
    };
    tokio::time::timeout(PROBE_TIMEOUT, exchange)
        .await
        .map_err(|_| format!("{method} took longer than {PROBE_TIMEOUT:?}"))?
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// `N` distinct free TCP ports on 127.0.0.1. All listeners are held until every port is chosen,
/// so the ports differ; another process may still take one before the client binds it.
fn free_ports<const N: usize>() -> Result<[u16; N], LaunchError> {
    let mut listeners = Vec::with_capacity(N);
    let mut ports = [0u16; N];
    for port in &mut ports {
        let listener = TcpListener::bind("127.0.0.1:0")
            .map_err(LaunchError::io("binding 127.0.0.1:0 to find a free port"))?;
        *port = listener
            .local_addr()
            .map_err(LaunchError::io("reading the address of a free port"))?
            .port();
        listeners.push(listener);
    }
    Ok(ports)
}

/// Stdout and stderr both appending to the log file.
fn log_stdio(log_path: &Path) -> Result<(Stdio, Stdio), LaunchError> {
    let log = File::options()
        .create(true)
        .append(true)
        .open(log_path)
        .map_err(LaunchError::io(format!("opening {}", log_path.display())))?;
    let log_for_stderr = log.try_clone().map_err(LaunchError::io(format!(
        "duplicating {}",
        log_path.display()
    )))?;
    Ok((Stdio::from(log), Stdio::from(log_for_stderr)))
}

fn spawn_error(kind: RealClientKind, program: &Path, source: io::Error) -> LaunchError {
    if source.kind() == io::ErrorKind::NotFound {
        let hint = if kind == RealClientKind::EthereumJs && is_js_entry(program) {
            "`node` (Node.js 18 or newer) could not be started; put it on PATH".to_owned()
        } else {
            format!(
                "{} could not be executed; set {}",
                program.display(),
                kind.bin_env_var()
            )
        };
        return LaunchError::NotInstalled {
            client: kind.name(),
            hint,
        };
    }
    LaunchError::Io {
        what: format!("starting {} ({})", kind.name(), program.display()),
        source,
    }
}

/// Runs `geth init`, bounded by [`GETH_INIT_TIMEOUT`], with its output in the log.
async fn geth_init(layout: &Layout, log_path: &Path) -> Result<(), LaunchError> {
    let client = RealClientKind::Geth.name();
    let (stdout, stderr) = log_stdio(log_path)?;
    let mut command = tokio::process::Command::from(layout.geth_init_command());
    command
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .kill_on_drop(true);
    let status = tokio::time::timeout(GETH_INIT_TIMEOUT, command.status()).await;
    let log_tail = || read_tail(log_path, ERROR_LOG_LINES).unwrap_or_default();
    match status {
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(LaunchError::Exited {
            client,
            status: format!("`geth init` failed: {status}"),
            log_tail: log_tail(),
        }),
        Ok(Err(source)) => Err(spawn_error(RealClientKind::Geth, &layout.program, source)),
        Err(_) => Err(LaunchError::NotReady {
            client,
            waited: GETH_INIT_TIMEOUT,
            log_tail: log_tail(),
        }),
    }
}

/// The last `lines` lines of the file (only its last [`LOG_TAIL_MAX_BYTES`] are read).
fn read_tail(path: &Path, lines: usize) -> io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(LOG_TAIL_MAX_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    // When reading from the middle of the file the first line is probably cut; drop it.
    let first_whole = usize::from(start > 0 && all.len() > 1);
    let from = all.len().saturating_sub(lines).max(first_whole);
    Ok(all.get(from..).unwrap_or_default().join("\n"))
}

/// How the process ended, if it has, *without* reaping it: while it stays a zombie its pid, and
/// so its process-group id, cannot be reused, which keeps the group kill in Drop safe.
fn exit_status_without_reaping(child: &Child) -> Option<String> {
    let pid = libc::id_t::try_from(child.id()).ok()?;
    // SAFETY: `siginfo_t` is plain data for which all-zero bytes are a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: `info` is a valid, writable `siginfo_t`; WNOWAIT leaves the child waitable.
    let rc = unsafe {
        libc::waitid(
            libc::P_PID,
            pid,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        )
    };
    if rc != 0 {
        let err = io::Error::last_os_error();
        // ECHILD: already reaped, so it has certainly exited; anything else (EINTR) says nothing.
        return (err.raw_os_error() == Some(libc::ECHILD))
            .then(|| format!("already reaped: {err}"));
    }
    // SAFETY: waitid filled `info` for a child-state change (or left it zeroed if none).
    let (exited_pid, status) = unsafe { (info.si_pid(), info.si_status()) };
    if exited_pid == 0 {
        return None;
    }
    Some(match info.si_code {
        libc::CLD_EXITED => format!("exit code {status}"),
        libc::CLD_KILLED | libc::CLD_DUMPED => format!("killed by signal {status}"),
        code => format!("wait code {code}, status {status}"),
    })
}

/// Waits up to `limit` for the process to exit (without reaping it).
fn wait_for_exit(child: &Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if exit_status_without_reaping(child).is_some() {
            return;
        }
        std::thread::sleep(EXIT_POLL_INTERVAL);
    }
}

fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
    if pgid <= 1 {
        return;
    }
    // SAFETY: plain syscall; a negative pid addresses the process group the client leads.
    let rc = unsafe { libc::kill(-pgid, signal) };
    if rc != 0 {
        let err = io::Error::last_os_error();
        if err.raw_os_error() != Some(libc::ESRCH) {
            tracing::warn!(pgid, signal, %err, "signalling the execution client's process group failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn genesis_has_post_merge_config_and_merges_alloc_entries() {
        let contract = Address::repeat_byte(0xcc);
        let options = GenesisOptions::default()
            .with_prefunded(DEV_ACCOUNT, U256::from(1u64))
            .with_prefunded(contract, U256::from(7u64))
            .with_contract(contract, Bytes::from_static(&[0x60, 0x00]));
        let genesis = options.geth_genesis(0x1234);

        assert_eq!(genesis["config"]["chainId"], json!(263_634));
        assert_eq!(genesis["config"]["terminalTotalDifficulty"], json!(0));
        assert_eq!(genesis["config"]["shanghaiTime"], json!(0));
        assert!(genesis["config"].get("cancunTime").is_none());
        assert!(genesis.get("excessBlobGas").is_none());
        assert_eq!(genesis["timestamp"], json!("0x1234"));
        assert_eq!(genesis["difficulty"], json!("0x0"));

        let alloc = &genesis["alloc"];
        let dev = &alloc[hex::encode_prefixed(DEV_ACCOUNT)];
        assert_eq!(
            dev["balance"],
            json!("0xd3c21bcecceda1000001"),
            "1e24 + 1 wei"
        );
        let deployed = &alloc[hex::encode_prefixed(contract)];
        assert_eq!(deployed["balance"], json!("0x7"));
        assert_eq!(deployed["code"], json!("0x6000"));
    }

    #[test]
    fn cancun_genesis_has_blob_fields() {
        let genesis = GenesisOptions::default().with_cancun(true).geth_genesis(1);
        assert_eq!(genesis["config"]["cancunTime"], json!(0));
        assert_eq!(genesis["config"]["blobSchedule"]["cancun"]["max"], json!(6));
        assert_eq!(genesis["excessBlobGas"], json!("0x0"));
        assert_eq!(genesis["blobGasUsed"], json!("0x0"));
    }

    #[test]
    fn read_tail_returns_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        fs::write(&path, "one\ntwo\nthree\n").unwrap();
        assert_eq!(read_tail(&path, 2).unwrap(), "two\nthree");
        assert_eq!(read_tail(&path, 10).unwrap(), "one\ntwo\nthree");
        assert_eq!(read_tail(&path, 0).unwrap(), "");
    }

    #[test]
    fn free_ports_are_distinct() {
        let [a, b, c] = free_ports().unwrap();
        assert!(a != b && b != c && a != c, "{a} {b} {c}");
    }
}
