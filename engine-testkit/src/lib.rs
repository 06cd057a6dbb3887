//! Test kit for alys-engine.
//!
//! * [`mock`]: [`MockExecutionLayer`], a real HTTP JSON-RPC server on `127.0.0.1:0` that checks
//!   the JWT, speaks Engine API V1–V4 and the `eth_` methods the engine uses, keeps an in-memory
//!   chain with real header hashes, records every request and injects faults on demand.
//! * [`launcher`]: starts real execution clients (EthereumJS from the pinned npm package, Reth and
//!   Geth when their binaries are present) with a post-merge genesis and a JWT secret.
//! * [`otlp`]: [`otlp::OtlpReceiver`], an OTLP/HTTP trace receiver that decodes what exporters send.
//! * [`tx`]: signed test transactions for `eth_sendRawTransaction`.
//! * [`harness`]: the harness every suite uses — an engine on the mock or a real EL (rstest
//!   fixtures), the test configuration, one slot through the engine or a client, and the
//!   in-memory [`harness::ScriptedClient`].
//! * [`bridge`]: the Alys peg-out bridge contract (address, runtime code, ABI, signed
//!   `requestPegOut` calls) and the log it emits, which the mock synthesizes.

pub mod bridge;
pub mod harness;
pub mod launcher;
pub mod mock;
pub mod otlp;
pub mod tx;

pub use launcher::{
    DEV_ACCOUNT, DEV_PRIVATE_KEY, GenesisOptions, LaunchError, RealClientKind, RealExecutionClient,
};
pub use mock::MockExecutionLayer;
