//! The test harness every suite uses: an engine on the mock or on a real EL (rstest fixtures),
//! the test configuration, one slot through the engine or directly on a client, and an
//! in-memory [`ScriptedClient`] for unit tests of client-generic code.

mod fixtures;
mod metrics;
mod scripted;
mod slot;

pub use fixtures::{
    MockEngine, RealEngine, funded_mock_config, mock_client_options, mock_engine,
    test_engine_config, wait_for,
};
pub use metrics::{http_get, metric_sample, metric_sum, scrape_metrics};
pub use scripted::{Scripted, ScriptedCall, ScriptedClient, ScriptedMethod};
pub use slot::{Slot, client_slot, engine_slot, engine_slot_after, peg_in, peg_ins};
