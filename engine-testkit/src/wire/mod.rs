//! What went over the wire to a real execution client: a recording proxy in front of its
//! Engine API, and the execution-apis schemas every recorded call is checked against.

mod proxy;
mod schema;

pub use proxy::{Exchange, ProxyError, RecordingProxy};
pub use schema::{EngineApiSchemas, SchemaError, WireReport, check_engine_calls};
