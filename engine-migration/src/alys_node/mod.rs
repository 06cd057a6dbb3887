//! What the Alys node's `app/src/engine.rs` shim needs (`docs/integration-alys.md`), in the
//! node's own types: payloads as the consensus-spec SSZ that Lighthouse's
//! `ExecutionPayloadCapella` / `ExecutionPayloadDeneb` implement, blocks and receipts as
//! ethers-core types, hashes and amounts as ethereum-types. Behind the `alys-node` feature.
//!
//! | module | what |
//! |---|---|
//! | `ssz` | [`payload_to_ssz`] / [`payload_from_ssz`]: alloy V2/V3 payloads ↔ the Capella/Deneb containers, every bound checked ([`PayloadSszError`]) |
//! | `amount` | the node's [`ConsensusAmount`] and [`AddBalance`] (old arithmetic, checked variants) |
//! | `ethers` | alloy blocks and receipts → the node's ethers types |
//! | `engine` | [`AlysEngine`]: the node-facing engine, started from the node's CLI values without blocking |

mod amount;
mod engine;
mod ethers;
mod ssz;

pub use alloy_rpc_types_engine::ExecutionPayloadBodyV1 as PayloadBody;
pub use amount::{AddBalance, ConsensusAmount};
pub use engine::{
    AlysEngine, DEFAULT_ENGINE_URL, DEFAULT_PUBLIC_URL, EngineEndpoint, NodePayload, PublicEndpoint,
};
pub use engine_types::EngineError;
pub use ethers::{NodeBlock, NodeReceipt, block_to_ethers, receipt_to_ethers};
pub use ssz::{PayloadSszError, SszFork, limits, payload_from_ssz, payload_to_ssz, ssz_fork_of};
