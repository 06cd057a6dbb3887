//! The supervised ractor actor tree that drives the execution client for the Alys node:
//! `EngineSupervisor`, `EngineActor`, `ClientSession`, `HealthPoller`, `CacheJanitor`, the
//! `EngineHandle` callers use, and the legacy `Engine` facade.
//!
//! Nothing is exported yet: the tree is built in issue #3 on top of
//! [`engine_clients::ExecutionClient`]. Until then the node (and `engine-devnet`) can use
//! `engine-clients` directly.
