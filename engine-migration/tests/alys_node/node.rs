//! Stand-ins for the node's own modules the shim names: `crate::error::Error`
//! (app/src/error.rs, the engine-related variants) and the two engine counters of
//! `crate::metrics` (app/src/metrics.rs: `alys_` registry prefix, same labels).

pub mod error {
    #[derive(Debug)]
    #[allow(clippy::enum_variant_names)] // the node's names
    pub enum Error {
        PayloadIdUnavailable,
        InvalidBlockHash,
        EngineApiError(String),
        ExecutionLayerError(crate::execution_layer::Error),
        MissingBlock,
    }
}

pub mod metrics {
    use std::sync::LazyLock;

    use prometheus::{IntCounterVec, Opts, Registry};

    pub static ALYS_REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
        Registry::new_custom(Some("alys".to_owned()), None).expect("a valid prefix")
    });

    fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
        let c = IntCounterVec::new(Opts::new(name, help), labels).expect("a valid family");
        ALYS_REGISTRY
            .register(Box::new(c.clone()))
            .expect("registered once");
        c
    }

    pub static ENGINE_BUILD_BLOCK_CALLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
        counter(
            "engine_build_block_calls_total",
            "Number of times build_block is invoked",
            &["status", "reason"],
        )
    });

    pub static ENGINE_COMMIT_BLOCK_CALLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
        counter(
            "engine_commit_block_calls_total",
            "Number of times commit_block is invoked",
            &["status"],
        )
    });
}
