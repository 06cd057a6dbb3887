//! The Alys node's side of the boundary (feature `alys-node`): the shim in
//! `docs/alys-node/engine.rs`, compiled here against stand-ins of the node's types (Lighthouse's
//! payload layout on the crates Lighthouse uses, ethers-core blocks and receipts); the payload
//! conversion proven against vectors from remerkleable (the consensus spec's SSZ library) and by
//! property tests; the node's calls driven through the shim on the mock.

// Helpers of a test binary: panicking is how they fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]
// The stand-ins mirror the node's public items as the node declares them.
#![allow(unreachable_pub)]

// The shim names `lighthouse_wrapper::…`: this crate's stand-in modules answer to that name.
extern crate self as lighthouse_wrapper;

// Stand-ins hold what the node's modules have; not every item is used by every test.
#[path = "alys_node/chain_flow.rs"]
mod chain_flow;
#[allow(dead_code)]
#[path = "../../docs/alys-node/engine.rs"]
mod engine;
#[allow(dead_code)]
#[path = "alys_node/execution_layer.rs"]
mod execution_layer;
#[allow(dead_code)]
#[path = "alys_node/node.rs"]
mod node;
#[path = "alys_node/through_the_shim.rs"]
mod through_the_shim;
#[allow(dead_code)]
#[path = "alys_node/types.rs"]
mod types;
#[path = "alys_node/vectors.rs"]
mod vectors;

use node::{error, metrics};
