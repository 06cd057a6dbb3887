//! Moving safely: the legacy `Engine` → `EngineActor` migration adapter (shadow, canary,
//! parallel, rollback) and the Lighthouse v4 (Capella) ↔ v5 (Deneb) compatibility layer.
//!
//! Nothing is exported yet: this crate is built in issue #5, after the actor tree.
