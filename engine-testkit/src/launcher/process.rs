//! The client processes: locating binaries, the per-kind command lines, free ports, spawning
//! and signalling process groups, the log file, and the RPC probe that decides readiness.

use std::{
    fs::{self, File},
    io::{self, Read as _, Seek as _, SeekFrom},
    net::TcpListener,
    os::unix::{fs::PermissionsExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use alloy_rpc_types_engine::JwtSecret;
use http_body_util::{BodyExt as _, Full};
use hyper::header::{AUTHORIZATION, CONTENT_TYPE};
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use serde_json::{Value, json};

use super::{ERROR_LOG_LINES, EXIT_POLL_INTERVAL, LaunchError, RealClientKind};

/// Timeout of one readiness probe (the spec's timeout for `engine_exchangeCapabilities`).
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Upper bound for `geth init`.
const GETH_INIT_TIMEOUT: Duration = Duration::from_secs(60);
/// Only the end of the log is read for
/// [`RealExecutionClient::log_tail`](super::RealExecutionClient::log_tail).
const LOG_TAIL_MAX_BYTES: u64 = 64 * 1024;

/// The EthereumJS entry point inside this crate, installed by `npm ci` in `engine-testkit/el`.
const ETHEREUMJS_CLI: &str = "el/node_modules/@ethereumjs/client/dist/esm/bin/cli.js";
/// What to do when EthereumJS is missing.
const ETHEREUMJS_INSTALL_HINT: &str = "run `just setup` (npm ci in engine-testkit/el)";

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
    let where_to_get = match kind {
        RealClientKind::Reth => {
            "; the tests' Reth is ../shared/el/reth.xz (unpack it as its README says, or let \
             .ci/run do it)"
        }
        _ => "",
    };
    find_on_path(name).ok_or_else(|| LaunchError::NotInstalled {
        client: name,
        hint: format!("{name} not found (set {var} or put {name} on PATH){where_to_get}"),
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
pub(super) struct Layout {
    pub(super) program: PathBuf,
    pub(super) genesis: PathBuf,
    pub(super) chain_dir: PathBuf,
    pub(super) jwt: PathBuf,
    pub(super) chain_id: u64,
    pub(super) engine_port: u16,
    pub(super) eth_port: u16,
    pub(super) p2p_port: u16,
    /// Flags appended to the client's command line (e.g. Reth's engine options).
    pub(super) extra_args: Vec<String>,
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
                // refuses eth_sendRawTransaction; `--saveReceipts`: otherwise it keeps none;
                // `--sync none`: without peers its beacon sync waits forever, and the first
                // forkchoiceUpdated that reorgs its head stops that sync with a fixed 8 s sleep
                // before answering (docs/execution-clients.md). Blocks still execute through
                // newPayload.
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
                    .args(["--isSingleNode", "--saveReceipts", "--sync", "none"])
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

/// Start `kind` as laid out in `layout`, in `dir`, appending its output to `log_path`.
pub(super) fn spawn_client(
    kind: RealClientKind,
    layout: &Layout,
    dir: &Path,
    log_path: &Path,
) -> Result<Child, LaunchError> {
    let mut command = layout.client_command(kind);
    command.args(&layout.extra_args);
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

pub(super) type HttpClient = Client<HttpConnector, Full<bytes::Bytes>>;

pub(super) fn http_client() -> HttpClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// One JSON-RPC call with a 1 s timeout; `Ok` with the `result`, or why there is none.
pub(super) async fn rpc_probe(
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

/// `N` distinct free TCP ports on 127.0.0.1. All listeners are held until every port is chosen,
/// so the ports differ; another process may still take one before the client binds it.
pub(super) fn free_ports<const N: usize>() -> Result<[u16; N], LaunchError> {
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
pub(super) async fn geth_init(layout: &Layout, log_path: &Path) -> Result<(), LaunchError> {
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
pub(super) fn read_tail(path: &Path, lines: usize) -> io::Result<String> {
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
pub(super) fn exit_status_without_reaping(child: &Child) -> Option<String> {
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
pub(super) fn wait_for_exit(child: &Child, limit: Duration) {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if exit_status_without_reaping(child).is_some() {
            return;
        }
        std::thread::sleep(EXIT_POLL_INTERVAL);
    }
}

pub(super) fn signal_group(pgid: libc::pid_t, signal: libc::c_int) {
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
