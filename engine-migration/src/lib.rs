//! Moving safely: the Lighthouse v4 (Capella) ↔ v5 (Deneb) compatibility layer, and (to come)
//! the legacy `Engine` → `EngineActor` migration adapter and the migration controller.
//!
//! | module | what |
//! |---|---|
//! | [`lighthouse`] | [`CapellaPayload`] ↔ [`DenebPayload`], attributes and newPayload requests, with `From`/`TryFrom` |
//! | [`legacy`] | [`LegacyEngine`] (the old engine's operations), [`DirectEngine`] (the old path, status-checked), [`StateValidator`] |

pub mod legacy;
pub mod lighthouse;

pub use legacy::{DirectEngine, LegacyEngine, Mismatch, StateValidator};

pub use lighthouse::{
    CapellaAttributes, CapellaNewPayload, CapellaPayload, ConversionError, DenebAttributes,
    DenebNewPayload, DenebPayload,
};
