//! The mock execution layer.
