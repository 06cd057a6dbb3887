//! Talking JSON-RPC to execution clients for alys-engine.
//!
//! | module | what |
//! |---|---|
//! | [`auth`] | [`JwtAuthLayer`]: HS256 bearer token with a fresh `iat` per request |
//! | [`client`] | the [`ExecutionClient`] trait, [`BuiltPayload`], [`Capabilities`], [`SyncState`] |
//! | [`decode`] | answers (HTTP bodies) into our types without a network: for fuzzing and property tests |
//! | [`http`] | [`HttpExecutionClient`]: alloy `RootProvider` + `EngineApi` over hyper with JWT |
//! | [`jwt`] | [`load_jwt_secret`]: the secret file, with errors naming the file |
//! | [`quirks`] | [`Quirks`]: kind-specific behaviour in one table |
//! | [`response_id`] | [`ResponseIdLayer`]: an answer must carry its request's JSON-RPC id |
//!
//! ```no_run
//! use engine_clients::{ClientOptions, ExecutionClient, HttpExecutionClient};
//! # async fn demo() -> Result<(), engine_types::EngineError> {
//! let options = ClientOptions::with_secret_file("http://127.0.0.1:8551", "jwt.hex".as_ref())?;
//! let client = HttpExecutionClient::connect(options).await?;
//! println!("{} {}", client.identity().kind, client.identity().version);
//! # Ok(()) }
//! ```

pub mod auth;
pub mod client;
pub mod decode;
pub mod http;
pub mod jwt;
pub mod quirks;
pub mod response_id;

pub use auth::{JwtAuthLayer, SecretCell, bearer_token};
pub use client::{BuiltPayload, Capabilities, ExecutionClient, SyncState};
pub use http::{ClientOptions, HttpExecutionClient, RpcObserver, classify};
pub use jwt::{load_jwt_secret, parse_jwt_secret};
pub use quirks::Quirks;
pub use response_id::{MismatchedResponseId, ResponseIdLayer};
