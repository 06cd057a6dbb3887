//! At connect: is the client on the configured chain (`eth_chainId`, the genesis block)?

use alloy_eips::BlockId;
use alloy_provider::Provider;
use engine_types::{EngineError, Fork, ForkSchedule};
use serde_json::Value;
use tracing::{debug, info};

use super::HttpExecutionClient;
use crate::ExecutionClient;

impl HttpExecutionClient {
    /// Refuse a client on another chain than `options.chain` says: a different chain id or
    /// genesis hash is [`EngineError::WrongChain`], so a node never builds on a wrong chain.
    /// Fields left unset are not checked.
    pub(super) async fn verify_chain(&self) -> Result<(), EngineError> {
        let expected = self.options.chain;
        let endpoint = || self.options.engine_url.clone();
        if let Some(want) = expected.chain_id {
            let found = self.chain_id().await?;
            if found != want {
                return Err(EngineError::WrongChain {
                    endpoint: endpoint(),
                    field: "chain id".to_owned(),
                    found: found.to_string(),
                    expected: want.to_string(),
                });
            }
        }
        if let Some(want) = expected.genesis_hash {
            let genesis = self
                .block(BlockId::number(0), false)
                .await?
                .ok_or_else(|| EngineError::WrongChain {
                    endpoint: endpoint(),
                    field: "genesis hash".to_owned(),
                    found: "no block 0".to_owned(),
                    expected: want.to_string(),
                })?;
            if genesis.header.hash != want {
                return Err(EngineError::WrongChain {
                    endpoint: endpoint(),
                    field: "genesis hash".to_owned(),
                    found: genesis.header.hash.to_string(),
                    expected: want.to_string(),
                });
            }
        }
        if expected.check_fork_schedule {
            self.verify_fork_schedule().await?;
        }
        if expected.chain_id.is_some() || expected.genesis_hash.is_some() {
            info!(endpoint = %self.options.engine_url, chain_id = ?expected.chain_id, genesis = ?expected.genesis_hash, "the execution client is on the configured chain");
        }
        Ok(())
    }

    /// The fork the client is in now and the next one it has scheduled (`eth_config`,
    /// EIP-7910) against the configured schedule. A client without `eth_config` (EthereumJS
    /// 0.10.5) is not checked.
    async fn verify_fork_schedule(&self) -> Result<(), EngineError> {
        let answer = self
            .call(
                "eth_config",
                self.options.timeouts.eth(),
                true,
                || async move {
                    self.eth()
                        .client()
                        .request_noparams::<Value>("eth_config")
                        .await
                },
            )
            .await;
        let config = match answer {
            Ok(config) => config,
            Err(e @ (EngineError::Rpc { .. } | EngineError::MethodNotSupported { .. })) => {
                debug!(endpoint = %self.options.engine_url, error = %e, "no eth_config: the fork schedule is not checked");
                return Ok(());
            }
            Err(e) => return Err(e),
        };
        let schedule = self.options.fork_schedule;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let ours = schedule.fork_at(now);
        let ours_since = activation(&schedule, ours);
        let theirs = fork_of(&config["current"]);
        let theirs_since = config["current"]["activationTime"].as_u64();
        if theirs != Some(ours) || theirs_since != Some(ours_since) {
            return Err(self.wrong_fork(
                "the current fork (eth_config)",
                describe(theirs, theirs_since),
                describe(Some(ours), Some(ours_since)),
            ));
        }
        let our_next = next_fork(&schedule, now);
        let their_next = match &config["next"] {
            Value::Null => None,
            next => Some((fork_of(next), next["activationTime"].as_u64())),
        };
        let matches = match (our_next, their_next) {
            (None, None) => true,
            (Some((fork, at)), Some((their_fork, their_at))) => {
                their_fork == Some(fork) && their_at == Some(at)
            }
            _ => false,
        };
        if !matches {
            return Err(self.wrong_fork(
                "the next fork (eth_config)",
                their_next.map_or_else(|| "none".to_owned(), |(f, at)| describe(f, at)),
                our_next.map_or_else(|| "none".to_owned(), |(f, at)| describe(Some(f), Some(at))),
            ));
        }
        Ok(())
    }

    fn wrong_fork(&self, field: &str, found: String, expected: String) -> EngineError {
        EngineError::WrongChain {
            endpoint: self.options.engine_url.clone(),
            field: field.to_owned(),
            found,
            expected: format!("{expected} (fork_schedule)"),
        }
    }
}

fn describe(fork: Option<Fork>, since: Option<u64>) -> String {
    format!(
        "{} from {}",
        fork.map_or_else(|| "an unknown fork".to_owned(), |f| format!("{f:?}")),
        since.map_or_else(|| "an unknown time".to_owned(), |t| t.to_string())
    )
}

/// When `fork` activates under `schedule`.
fn activation(schedule: &ForkSchedule, fork: Fork) -> u64 {
    match fork {
        Fork::Paris => 0,
        Fork::Shanghai => schedule.shanghai_time,
        Fork::Cancun => schedule.cancun_time.unwrap_or(u64::MAX),
        Fork::Prague => schedule.prague_time.unwrap_or(u64::MAX),
    }
}

/// The first fork of `schedule` after `now`, with its time.
fn next_fork(schedule: &ForkSchedule, now: u64) -> Option<(Fork, u64)> {
    [
        (Fork::Shanghai, Some(schedule.shanghai_time)),
        (Fork::Cancun, schedule.cancun_time),
        (Fork::Prague, schedule.prague_time),
    ]
    .into_iter()
    .find_map(|(fork, at)| at.filter(|t| *t > now).map(|t| (fork, t)))
}

/// Which fork an `eth_config` fork object describes, from the system contracts EIP-7910 lists
/// for it: Prague adds the request and history contracts, Cancun the beacon-roots contract;
/// without either it is Shanghai (or older, which Alys never runs). Not from `blobSchedule`:
/// Reth 2.5.1 reports one on a Shanghai chain too.
fn fork_of(config: &Value) -> Option<Fork> {
    if !config.is_object() {
        return None;
    }
    let contracts = &config["systemContracts"];
    let has = |name: &str| contracts.get(name).is_some();
    Some(
        if has("HISTORY_STORAGE_ADDRESS") || has("CONSOLIDATION_REQUEST_PREDEPLOY_ADDRESS") {
            Fork::Prague
        } else if has("BEACON_ROOTS_ADDRESS") {
            Fork::Cancun
        } else {
            Fork::Shanghai
        },
    )
}
