//! Talking JSON-RPC to execution clients for alys-engine.
//!
//! | module | what |
//! |---|---|
//! | `client` | the [`ExecutionClient`] trait, [`BuiltPayload`], [`Capabilities`], [`SyncState`] |
//! | `http` | [`HttpExecutionClient`]: alloy `RootProvider` + `EngineApi` over hyper, alloy's JWT `AuthLayer`, [`ClientOptions`], [`classify`] |
//! | `decode` | [`decode_response`]: answers (HTTP bodies) into our types without a network, for fuzzing and property tests |
//! | `jwt` | [`load_jwt_secret`]: the secret file, with errors naming the file; [`bearer_token`] |
//! | `quirks` | [`Quirks`]: kind-specific behaviour in one table |
//! | `response_id` | [`ResponseIdLayer`]: an answer must carry its request's JSON-RPC id |
//!
//! ```no_run
//! use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
//! # async fn demo() -> Result<(), engine_types::EngineError> {
//! let options = ClientOptions::with_secret_file("http://127.0.0.1:8551", "jwt.hex".as_ref())?;
//! let client = HttpExecutionClient::connect(options).await?;
//! println!("{} {}", client.identity().kind, client.identity().version);
//! # Ok(()) }
//! ```

mod block_payload;
mod client;
mod deadlines;
mod decode;
mod http;
mod jwt;
mod quirks;
mod response_id;

pub use block_payload::execution_data_from_block;
pub use client::{BuiltPayload, Capabilities, ExecutionClient, SyncState};
pub use deadlines::with_import_deadlines;
pub use decode::{DECODED_METHODS, Decoded, decode_response};
pub use http::{
    AuthStatusError, ClientOptions, HttpExecutionClient, RpcObserver, Unauthorized, classify,
};
pub use jwt::{bearer_token, load_jwt_secret, parse_jwt_secret};
pub use quirks::Quirks;
pub use response_id::{MismatchedResponseId, ResponseIdLayer};
