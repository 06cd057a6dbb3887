//! An engine on the mock ([`MockEngine`]) or on a real execution client ([`RealEngine`]), with
//! the fast test configuration, as rstest fixtures.

use std::{path::PathBuf, time::Duration};

use alloy_primitives::U256;
use engine_actor::{EngineHandle, EngineSystem};
use engine_clients::{ClientOptions, HttpExecutionClient};
use engine_types::{EngineConfig, RetryConfig};
use rstest::fixture;

use crate::{
    DEV_ACCOUNT, GenesisOptions, MockExecutionLayer, RealClientKind, RealExecutionClient,
    RecordingProxy,
    mock::{ClientProfile, MockConfig},
};

/// The configuration tests run the engine with: state persisted in `state_dir`, health polled
/// every 50 ms, the breaker opening after 2 failures for 200 ms, restarts after 10–50 ms.
pub fn test_engine_config(state_dir: &std::path::Path) -> EngineConfig {
    let mut config = EngineConfig {
        state_path: Some(state_dir.join("forkchoice.json")),
        ..EngineConfig::default()
    };
    config.health.poll_interval_ms = 50;
    config.health.failure_threshold = 2;
    config.health.open_ms = 200;
    config.supervision.backoff_initial_ms = 10;
    config.supervision.backoff_max_ms = 50;
    config
}

/// Options for `mock` under `config`: its URL and secret, the mock's fork schedule, one fast
/// retry of idempotent calls, no warm-up block at connect (the mock impersonates Reth, but its
/// first newPayload is not slow: the tests count the calls and blocks they make).
pub fn mock_client_options(mock: &MockExecutionLayer, config: &EngineConfig) -> ClientOptions {
    ClientOptions::new(mock.url(), mock.jwt_secret())
        .with_engine_config(config)
        .with_fork_schedule(mock.config().fork_schedule)
        .with_warm_up(false)
        .with_retry(RetryConfig {
            max_retries: 1,
            initial_backoff_ms: 1,
            max_backoff_ms: 2,
        })
}

/// The mock as most engine tests want it: Reth's profile, the dev account funded.
pub fn funded_mock_config() -> MockConfig {
    MockConfig::default()
        .with_profile(ClientProfile::reth())
        .with_prefunded(DEV_ACCOUNT, U256::from(10u64).pow(U256::from(21)))
}

/// An engine tree on its own [`MockExecutionLayer`].
#[derive(Debug)]
pub struct MockEngine {
    /// The mock EL.
    pub mock: MockExecutionLayer,
    /// The running tree.
    pub system: EngineSystem,
    /// Its handle.
    pub engine: EngineHandle,
    /// The configuration it runs with (to start another tree on the same state).
    pub config: EngineConfig,
    /// Its client options.
    pub options: ClientOptions,
    /// Where the forkchoice is persisted.
    pub state_path: PathBuf,
    /// Holds the state directory.
    pub dir: tempfile::TempDir,
}

impl MockEngine {
    /// The default: [`funded_mock_config`], [`test_engine_config`].
    pub async fn start() -> anyhow::Result<Self> {
        Self::start_with(funded_mock_config(), |_, _| {}).await
    }

    /// With this mock and the engine configuration and client options changed by `tweak`.
    pub async fn start_with(
        mock_config: MockConfig,
        tweak: impl FnOnce(&mut EngineConfig, &mut ClientOptions),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mock = MockExecutionLayer::start(mock_config).await?;
        let mut config = test_engine_config(dir.path());
        config.fork_schedule = mock.config().fork_schedule;
        let mut options = mock_client_options(&mock, &config);
        tweak(&mut config, &mut options);
        let state_path = config
            .state_path
            .clone()
            .unwrap_or_else(|| dir.path().join("forkchoice.json"));
        let system =
            EngineSystem::start_with_options(config.clone(), vec![options.clone()]).await?;
        let engine = system.handle();
        Ok(Self {
            mock,
            system,
            engine,
            config,
            options,
            state_path,
            dir,
        })
    }

    /// Shut the tree down (the mock keeps running until dropped).
    pub async fn shutdown(self) -> MockExecutionLayer {
        self.system.shutdown().await;
        self.mock
    }
}

/// An engine tree on a real execution client, with an independent client to check the EL. The
/// engine reaches the client's Engine API through a [`RecordingProxy`], so a test can check
/// every call it made ([`RealEngine::wire`]).
#[derive(Debug)]
pub struct RealEngine {
    /// The real EL (killed on drop).
    pub el: RealExecutionClient,
    /// The running tree.
    pub system: EngineSystem,
    /// Its handle.
    pub engine: EngineHandle,
    /// A client of the same EL, outside the engine (and outside the proxy).
    pub observer: HttpExecutionClient,
    /// Options the engine's session uses (to start another tree on the same EL).
    pub options: ClientOptions,
    /// Every Engine API exchange of the engine, as it crossed the wire. The engine's calls go
    /// through it: keep it (bind it when destructuring) for as long as the engine runs.
    pub wire: RecordingProxy,
    /// Where the forkchoice is persisted.
    pub state_path: PathBuf,
    /// Holds the state directory.
    pub dir: tempfile::TempDir,
}

impl RealEngine {
    /// `kind` on a fresh chain from `genesis`, the engine with [`test_engine_config`] changed
    /// by `tweak` (the fork schedule follows the genesis). The client is required: if it is
    /// not installed, that is an error.
    pub async fn start(
        kind: RealClientKind,
        genesis: &GenesisOptions,
        tweak: impl FnOnce(&mut EngineConfig),
    ) -> anyhow::Result<Self> {
        let el = RealExecutionClient::start(kind, genesis).await?;
        Self::on(el, genesis, tweak).await
    }

    /// Like [`Self::start`], but `Ok(None)` (the test is skipped, and says why) when the
    /// client is not installed and not required ([`RealExecutionClient::start_or_skip`]).
    pub async fn start_or_skip(
        kind: RealClientKind,
        genesis: &GenesisOptions,
        tweak: impl FnOnce(&mut EngineConfig),
    ) -> anyhow::Result<Option<Self>> {
        Self::start_or_skip_with_args(kind, genesis, &[], tweak).await
    }

    /// [`Self::start_or_skip`] with `client_args` appended to the client's command line.
    pub async fn start_or_skip_with_args(
        kind: RealClientKind,
        genesis: &GenesisOptions,
        client_args: &[&str],
        tweak: impl FnOnce(&mut EngineConfig),
    ) -> anyhow::Result<Option<Self>> {
        match RealExecutionClient::start_or_skip_with_args(kind, genesis, client_args).await? {
            Some(el) => Ok(Some(Self::on(el, genesis, tweak).await?)),
            None => Ok(None),
        }
    }

    async fn on(
        el: RealExecutionClient,
        genesis: &GenesisOptions,
        tweak: impl FnOnce(&mut EngineConfig),
    ) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let mut config = test_engine_config(dir.path());
        config.fork_schedule = genesis.fork_schedule(el.genesis_timestamp());
        // A real client starts slower than the mock answers.
        config.health.startup_timeout_ms = 60_000;
        tweak(&mut config);
        let wire = RecordingProxy::start(el.engine_url()).await?;
        let options = ClientOptions::new(wire.url(), el.jwt_secret())
            .with_eth_url(el.eth_url())
            .with_engine_config(&config);
        let state_path = config
            .state_path
            .clone()
            .unwrap_or_else(|| dir.path().join("forkchoice.json"));
        let system = EngineSystem::start_with_options(config, vec![options.clone()]).await?;
        let engine = system.handle();
        let observer = HttpExecutionClient::connect(
            ClientOptions::new(el.engine_url(), el.jwt_secret())
                .with_eth_url(el.eth_url())
                .with_fork_schedule(options.fork_schedule),
        )
        .await?;
        Ok(Self {
            el,
            system,
            engine,
            observer,
            options,
            wire,
            state_path,
            dir,
        })
    }
}

/// rstest fixture: [`MockEngine::start`]. Use as `#[future] mock_engine: MockEngine` and
/// `.await` it (it panics with the reason if the engine cannot start).
#[fixture]
pub async fn mock_engine() -> MockEngine {
    match MockEngine::start().await {
        Ok(engine) => engine,
        Err(e) => panic!("the engine did not start on the mock: {e:#}"),
    }
}

/// Polls `probe` every 20 ms until it answers `Some`, for at most `limit`; the error names
/// `what`.
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = probe().await {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            anyhow::bail!("{what}: not reached within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
