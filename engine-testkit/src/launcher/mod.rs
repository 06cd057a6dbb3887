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
//! # async fn demo() -> Result<(), engine_testkit::LaunchError> {
//! use engine_testkit::{GenesisOptions, RealClientKind, RealExecutionClient};
//!
//! let genesis = GenesisOptions::default().with_forks(engine_types::ForkSchedule::cancun());
//! let el = RealExecutionClient::start(RealClientKind::EthereumJs, &genesis).await?;
//! println!("engine API at {} (secret {})", el.engine_url(), el.jwt_secret_path().display());
//! // `el` is dropped here: the client's process group is killed.
//! # Ok(())
//! # }
//! ```

mod error;
mod genesis;
mod process;

use std::{
    fmt, fs, io,
    path::{Path, PathBuf},
    process::Child,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use alloy_primitives::hex;
use alloy_rpc_types_engine::JwtSecret;
use serde_json::json;
use tempfile::TempDir;

pub use error::LaunchError;
pub use genesis::{DEV_ACCOUNT, DEV_PRIVATE_KEY, GenesisOptions};
pub use process::locate;
use process::{
    HttpClient, Layout, exit_status_without_reaping, free_ports, geth_init, http_client, read_tail,
    rpc_probe, signal_group, spawn_client, wait_for_exit,
};

/// How long [`RealExecutionClient::start`] waits for the client to answer (EthereumJS needs
/// 2–4 s on an idle machine, more on a loaded CI runner).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// Pause between readiness probes.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long the client may take to exit after SIGTERM before its group gets SIGKILL.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// How long to wait for the process to be reaped after SIGKILL.
const REAP_TIMEOUT: Duration = Duration::from_secs(2);
/// Poll interval while waiting for the process to exit.
const EXIT_POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Log lines quoted in [`LaunchError`]s.
const ERROR_LOG_LINES: usize = 40;

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

    /// The marker in the names of tests on this client (`ethereumjs_el`, `reth_el`, `geth_el`,
    /// as in `#[case::reth_el(RealClientKind::Reth)]`): `just test` filters on it to leave out,
    /// and count as skipped, the tests of a client this machine does not have.
    pub const fn test_marker(self) -> &'static str {
        match self {
            Self::EthereumJs => "ethereumjs_el",
            Self::Reth => "reth_el",
            Self::Geth => "geth_el",
        }
    }

    /// Whether a test of this client must run here rather than be skipped: EthereumJS always
    /// (`just setup` installs it), Reth and Geth when their [`Self::bin_env_var`] is set (CI
    /// sets `RETH_BIN`). A required client that cannot be found fails the test.
    pub fn required_by_tests(self) -> bool {
        self == Self::EthereumJs
            || std::env::var_os(self.bin_env_var()).is_some_and(|v| !v.is_empty())
    }
}

impl fmt::Display for RealClientKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
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
    /// The genesis timestamp is the current unix time (unless [`GenesisOptions::timestamp`] sets
    /// one), so the first block may use [`Self::genesis_timestamp`] `+ 1` or later.
    pub async fn start(
        kind: RealClientKind,
        genesis: &GenesisOptions,
    ) -> Result<Self, LaunchError> {
        Self::start_with_args(kind, genesis, &[]).await
    }

    /// [`Self::start`] with `extra_args` appended to the client's command line (kept for
    /// [`Self::restart`]), e.g. `["--engine.allow-unwind-canonical-header"]` for Reth.
    pub async fn start_with_args(
        kind: RealClientKind,
        genesis: &GenesisOptions,
        extra_args: &[&str],
    ) -> Result<Self, LaunchError> {
        let program = locate(kind)?;
        let data_dir = tempfile::Builder::new()
            .prefix(&format!("alys-{}-", kind.name()))
            .tempdir()
            .map_err(LaunchError::io(
                "creating a temporary directory for the execution client",
            ))?;
        let dir = data_dir.path();

        let genesis_timestamp = genesis.timestamp.unwrap_or_else(unix_now);
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
            extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
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

    /// Starts `kind` for a test, like [`Self::start`], or skips the test: `Ok(None)`, after
    /// printing `SKIPPED: …` with the reason to stderr, when the client is not installed and not
    /// [required](RealClientKind::required_by_tests). Every other failure is an error.
    pub async fn start_or_skip(
        kind: RealClientKind,
        genesis: &GenesisOptions,
    ) -> Result<Option<Self>, LaunchError> {
        Self::start_or_skip_with_args(kind, genesis, &[]).await
    }

    /// [`Self::start_or_skip`] with `extra_args` (see [`Self::start_with_args`]).
    pub async fn start_or_skip_with_args(
        kind: RealClientKind,
        genesis: &GenesisOptions,
        extra_args: &[&str],
    ) -> Result<Option<Self>, LaunchError> {
        match Self::start_with_args(kind, genesis, extra_args).await {
            Ok(client) => Ok(Some(client)),
            Err(LaunchError::NotInstalled { client, hint }) if !kind.required_by_tests() => {
                eprintln!("SKIPPED: {client} is not installed here: {hint}");
                Ok(None)
            }
            Err(err) => Err(err),
        }
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

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}
