//! Plain data for alys-engine. No network IO lives here.
//!
//! | module | what |
//! |---|---|
//! | `config` | [`EngineConfig`]: TOML + `ALYS_ENGINE_*` overrides, defaults, validation |
//! | `error` | [`EngineError`]: every failure classified once, [`Severity`], error codes |
//! | `fork` | [`ForkSchedule`] and the Engine API [`EngineMethod`] versions per [`Fork`] |
//! | `client_kind` | [`ClientKind`] / [`ClientIdentity`] from version strings and codes |
//! | `amount` | [`ConsensusAmount`] (Gwei) and [`AddBalance`] peg-ins, checked arithmetic |
//! | `request` | build/commit/finalize/revert requests and their validation, [`require_valid`] |

mod amount;
mod client_kind;
mod config;
mod error;
mod fork;
mod request;

pub use amount::{AddBalance, ConsensusAmount, PegIn, withdrawals_from_peg_ins};
pub use client_kind::{ClientIdentity, ClientKind, IdentitySource};
pub use config::{
    CacheConfig, ChainConfig, DisagreementPolicy, ENV_PREFIX, EndpointConfig, EngineConfig,
    HealthConfig, MigrationConfig, RecoveryConfig, RetryConfig, SupervisionConfig, TimeoutConfig,
};
pub use error::{EngineError, Severity, codes};
pub use fork::{EngineMethod, Fork, ForkSchedule};
pub use request::{
    BuildPayloadRequest, CommitPayloadRequest, DEFAULT_FEE_RECIPIENT, FinalizeRequest,
    RevertRequest, require_valid, validate_execution_data,
};
