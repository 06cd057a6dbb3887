//! Moving safely: the legacy `Engine` → `EngineActor` migration adapter, the Lighthouse v4
//! (Capella) ↔ v5 (Deneb) compatibility layer, and the controller that walks either migration
//! through its stages with automatic rollback.
//!
//! | module | what |
//! |---|---|
//! | `legacy` | [`LegacyEngine`] (the old engine's operations), [`DirectEngine`] (the old path, status-checked), [`MigrationPath`], [`StateValidator`] |
//! | `adapter` | [`MigrationAdapter`]: legacy-only, shadow, canary, parallel, actor-primary, actor-only, rollback |
//! | `lighthouse` | [`CapellaPayload`] ↔ [`DenebPayload`], attributes, forkchoice state and newPayload requests, with `From`/`TryFrom` |
//! | `compat` | [`CompatClient`]: the v4 and v5 paths on one execution client, modes, comparison, per-operation flags |
//! | `ab` | sticky A/B assignment with a hash stable across Rust releases (Keccak-256) |
//! | `health` | per-path statistics, the 0–100 health score, rollback thresholds |
//! | `controller` | [`MigrationController`]: pre-migration → parallel → canary steps → complete, or rolled back |
//! | `metrics` | Prometheus families of the adapter and the compat client |
//! | [`alys_node`] | (feature `alys-node`) what the Alys node's `engine.rs` shim needs, in the node's own types |
//!
//! The operator's view is `docs/migration-runbook.md`.
//!
//! Modes parse from the text operators type, and the canary split is a pure function of the
//! slot, so a replay routes every slot the same way:
//!
//! ```
//! use engine_migration::{AbSplit, MigrationMode, Side};
//!
//! let mode: MigrationMode = "canary:25".parse()?;
//! assert_eq!(mode, MigrationMode::Canary(25));
//! assert_eq!(mode.to_string(), "canary:25");
//! assert!("canary:250".parse::<MigrationMode>().is_err());
//!
//! let split = AbSplit::new(25)?;
//! let first: Vec<Side> = (1..=8u64).map(|slot| split.side_for_slot(2 * slot)).collect();
//! let again: Vec<Side> = (1..=8u64).map(|slot| split.side_for_slot(2 * slot)).collect();
//! assert_eq!(first, again);
//! # Ok::<(), engine_types::EngineError>(())
//! ```

mod ab;
mod adapter;
#[cfg(feature = "alys-node")]
pub mod alys_node;
mod compat;
mod controller;
mod health;
mod legacy;
mod lighthouse;
mod metrics;

pub use ab::{AbSplit, BUCKETS, Side, bucket};
pub use adapter::{
    AdapterConfig, AdapterReport, MigrationAdapter, MigrationMode, MismatchRecord, Operation,
    RECENT_MISMATCHES,
};
pub use compat::{CompatClient, CompatMode, CompatOperation, Version, deneb_request};
pub use controller::{ControllerConfig, Migratable, MigrationController, Stage};
pub use health::{HealthSample, PathSample, RollbackReason, RollbackRecord, Thresholds};
pub use legacy::{
    BoxedCall, DirectEngine, DynLegacyEngine, LegacyEngine, MigrationPath, Mismatch, PathState,
    StateValidator,
};
pub use lighthouse::{
    CapellaAttributes, CapellaForkchoiceState, CapellaNewPayload, CapellaPayload, ConversionError,
    DenebAttributes, DenebForkchoiceState, DenebNewPayload, DenebPayload, require_pre_cancun,
};
pub use metrics::{CompatMetrics, MigrationMetrics, names as metric_names};
