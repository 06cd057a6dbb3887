//! The Lighthouse v4 ↔ v5 compatibility client: both type families on one execution client.
//!
//! * **v4** (Capella): requests are converted to the Capella types (`TryFrom`, so blob gas or a
//!   beacon root is refused with the field named), Cancun-era timestamps are refused
//!   ([`ConversionError::CancunEra`]), and the answer must be a V2 payload.
//! * **v5** (Deneb): fork-aware; the method version follows the timestamp (V2 before Cancun,
//!   V3 from Cancun, V4 from Prague).
//!
//! [`CompatClient`] takes the v5 types (the family the node moves to) and routes each call by
//! its [`CompatMode`], which can be overridden per [`CompatOperation`] at runtime (the feature
//! flags). Canary assignment is sticky by the call's slot (the timestamp) or head hash, so the
//! forkchoiceUpdated, getPayload and newPayload of one slot take the same side.

mod mode;
mod stats;

use std::{
    fmt,
    sync::atomic::{AtomicU16, Ordering},
};

use alloy_primitives::B256;
use alloy_rpc_types_engine::{
    CancunPayloadFields, ExecutionData, ExecutionPayload, ExecutionPayloadSidecar,
    ForkchoiceUpdated, PayloadId, PayloadStatus, PraguePayloadFields,
};
use engine_clients::{BuiltPayload, ExecutionClient};
use engine_types::{EngineError, Fork};
use tracing::{info, warn};

pub use mode::{CompatMode, CompatOperation, Version};
use stats::OperationStats;

use crate::{
    ab::{AbSplit, Side},
    lighthouse::{
        CapellaAttributes, CapellaForkchoiceState, CapellaNewPayload, CapellaPayload,
        ConversionError, DenebAttributes, DenebForkchoiceState, DenebNewPayload, DenebPayload,
        require_pre_cancun,
    },
    metrics::CompatMetrics,
};

/// Both Lighthouse type families on one execution client; see the [module docs](self).
#[derive(Debug)]
pub struct CompatClient<C> {
    client: C,
    mode: AtomicU16,
    flags: [AtomicU16; 3],
    stats: [OperationStats; 3],
    metrics: CompatMetrics,
}

impl<C: ExecutionClient> CompatClient<C> {
    /// Over `client`, in `mode`, with no per-operation flags.
    pub fn new(client: C, mode: CompatMode, metrics: CompatMetrics) -> Self {
        metrics.mode.set(mode.code());
        Self {
            client,
            mode: AtomicU16::new(mode.encode()),
            flags: Default::default(),
            stats: Default::default(),
            metrics,
        }
    }

    /// The client underneath.
    pub const fn client(&self) -> &C {
        &self.client
    }

    /// The metrics.
    pub const fn metrics(&self) -> &CompatMetrics {
        &self.metrics
    }

    /// The client's mode.
    pub fn mode(&self) -> CompatMode {
        CompatMode::decode(self.mode.load(Ordering::Acquire)).unwrap_or(CompatMode::V4Only)
    }

    /// Switch the client's mode (effective on the next call); statistics restart. Returns the
    /// previous mode.
    pub fn set_mode(&self, mode: CompatMode) -> CompatMode {
        let previous = CompatMode::decode(self.mode.swap(mode.encode(), Ordering::AcqRel))
            .unwrap_or(CompatMode::V4Only);
        self.reset_stats();
        self.metrics.mode.set(mode.code());
        info!(%previous, %mode, "compat client mode switched");
        previous
    }

    /// Set (Some) or clear (None) the flag of one operation: while set, that operation runs in
    /// the flag's mode whatever the client's mode. Effective on the next call.
    pub fn set_operation_flag(&self, operation: CompatOperation, mode: Option<CompatMode>) {
        let bits = mode.map_or(0, CompatMode::encode);
        self.flags[operation.index()].store(bits, Ordering::Release);
        info!(operation = operation.as_str(), flag = ?mode, "compat operation flag set");
    }

    /// The mode `operation` runs in now.
    pub fn effective_mode(&self, operation: CompatOperation) -> CompatMode {
        CompatMode::decode(self.flags[operation.index()].load(Ordering::Acquire))
            .unwrap_or_else(|| self.mode())
    }

    /// Run `op` by its effective mode: `v4`/`v5` make the call on each side, `same` says
    /// whether two answers agree, `key` is the canary key.
    async fn route<T, F4, F5, Fut4, Fut5>(
        &self,
        op: CompatOperation,
        key: &[u8],
        v4: F4,
        v5: F5,
        same: impl Fn(&T, &T) -> bool,
    ) -> Result<T, EngineError>
    where
        T: fmt::Debug,
        F4: Fn() -> Fut4,
        F5: Fn() -> Fut5,
        Fut4: Future<Output = Result<T, EngineError>>,
        Fut5: Future<Output = Result<T, EngineError>>,
    {
        match self.effective_mode(op) {
            CompatMode::V4Only => self.timed(op, Version::V4, v4()).await,
            CompatMode::V5Only => self.timed(op, Version::V5, v5()).await,
            CompatMode::Parallel => {
                // v4 first, then v5 only if v4 succeeded: the two never overlap (EthereumJS,
                // asked for the same payload twice at once, returned two blocks with different
                // state roots), and v5 never changes the EL after v4's error was returned.
                let a = self.timed(op, Version::V4, v4()).await;
                if let Ok(a) = &a
                    && let Ok(b) = self.timed(op, Version::V5, v5()).await
                {
                    self.compared(op, same(a, &b), (a, &b));
                }
                a
            }
            CompatMode::V4Primary => match self.timed(op, Version::V4, v4()).await {
                Ok(a) => Ok(a),
                Err(e) => {
                    warn!(operation = op.as_str(), error = %e, "v4 failed; v5 answers");
                    self.timed(op, Version::V5, v5()).await
                }
            },
            CompatMode::V5Primary => match self.timed(op, Version::V5, v5()).await {
                Ok(b) => Ok(b),
                Err(e) => {
                    warn!(operation = op.as_str(), error = %e, "v5 failed; v4 answers");
                    self.timed(op, Version::V4, v4()).await
                }
            },
            CompatMode::Canary(p) => {
                let side = AbSplit::new(p).map_or(Side::Baseline, |s| s.side(key));
                match side {
                    Side::Candidate => self.timed(op, Version::V5, v5()).await,
                    Side::Baseline => self.timed(op, Version::V4, v4()).await,
                }
            }
        }
    }

    /// `engine_forkchoiceUpdated`, with attributes when a build starts. v4 drops nothing
    /// silently: attributes with a beacon root or a Cancun-era timestamp are refused there.
    pub async fn forkchoice_updated(
        &self,
        state: DenebForkchoiceState,
        attributes: Option<DenebAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        let key = attributes.as_ref().map_or_else(
            || state.0.head_block_hash.to_vec(),
            |a| a.0.timestamp.to_be_bytes().to_vec(),
        );
        let v4 = || {
            let attributes = attributes.clone();
            async move {
                let state = CapellaForkchoiceState::from(state);
                let attributes = match attributes {
                    Some(a) => {
                        require_pre_cancun(self.client.fork_schedule(), a.0.timestamp)
                            .map_err(conversion("forkchoiceUpdated attributes"))?;
                        let capella = CapellaAttributes::try_from(a)
                            .map_err(conversion("forkchoiceUpdated attributes"))?;
                        Some(capella.0)
                    }
                    None => None,
                };
                self.client.forkchoice_updated(state.0, attributes).await
            }
        };
        let v5 = || {
            let attributes = attributes.clone();
            async move {
                let attributes = attributes.map(|a| {
                    let mut a = a.0;
                    // Before Cancun the v5 path sends V2, which has no beacon root.
                    if !self
                        .client
                        .fork_schedule()
                        .fork_at(a.timestamp)
                        .has_blob_fields()
                    {
                        a.parent_beacon_block_root = None;
                    }
                    a
                });
                self.client.forkchoice_updated(state.0, attributes).await
            }
        };
        self.route(
            CompatOperation::ForkchoiceUpdated,
            &key,
            v4,
            v5,
            |a: &ForkchoiceUpdated, b: &ForkchoiceUpdated| {
                a.payload_status == b.payload_status
                    && a.payload_id.is_some() == b.payload_id.is_some()
            },
        )
        .await
    }

    /// `engine_getPayload` of a build started with attributes of `timestamp`. v4 requires a
    /// Capella payload back.
    pub async fn get_payload(
        &self,
        payload_id: PayloadId,
        timestamp: u64,
        parent_beacon_block_root: Option<B256>,
    ) -> Result<BuiltPayload, EngineError> {
        let v4 = || async move {
            require_pre_cancun(self.client.fork_schedule(), timestamp)
                .map_err(conversion("getPayload"))?;
            let built = self.client.get_payload(payload_id, timestamp, None).await?;
            match &built.execution_data.payload {
                ExecutionPayload::V2(_) => Ok(built),
                other => Err(EngineError::Decode {
                    method: "engine_getPayloadV2".into(),
                    message: format!(
                        "the v4 (Capella) path got a {} payload; expected a V2 payload",
                        payload_version(other)
                    ),
                }),
            }
        };
        let v5 = || async move {
            self.client
                .get_payload(payload_id, timestamp, parent_beacon_block_root)
                .await
        };
        self.route(
            CompatOperation::GetPayload,
            &timestamp.to_be_bytes(),
            v4,
            v5,
            |a: &BuiltPayload, b: &BuiltPayload| {
                a.block_hash() == b.block_hash() && a.block_value == b.block_value
            },
        )
        .await
    }

    /// `engine_newPayload` of a v5 request. v4 converts it to Capella (refusing blob gas and
    /// blobs, naming the field) and sends V2; v5 sends the version of the payload's fork.
    pub async fn new_payload(
        &self,
        request: DenebNewPayload,
    ) -> Result<PayloadStatus, EngineError> {
        let timestamp = request.payload.0.payload_inner.payload_inner.timestamp;
        let v4 = || {
            let request = request.clone();
            async move {
                require_pre_cancun(self.client.fork_schedule(), timestamp)
                    .map_err(conversion("newPayload"))?;
                let capella =
                    CapellaNewPayload::try_from(request).map_err(conversion("newPayload"))?;
                let data = ExecutionData::new(
                    ExecutionPayload::V2(capella.payload.0),
                    ExecutionPayloadSidecar::none(),
                );
                self.client.new_payload(&data).await
            }
        };
        let v5 = || {
            let request = request.clone();
            async move {
                let data = deneb_execution_data(self.client.fork_schedule(), request)?;
                self.client.new_payload(&data).await
            }
        };
        self.route(
            CompatOperation::NewPayload,
            &timestamp.to_be_bytes(),
            v4,
            v5,
            |a: &PayloadStatus, b: &PayloadStatus| a == b,
        )
        .await
    }
}

/// The wire form of a v5 request: V3 with its sidecar from Cancun on, V2 before (refusing
/// blob fields a pre-Cancun block cannot have).
fn deneb_execution_data(
    schedule: &engine_types::ForkSchedule,
    request: DenebNewPayload,
) -> Result<ExecutionData, EngineError> {
    let timestamp = request.payload.0.payload_inner.payload_inner.timestamp;
    let fork = schedule.fork_at(timestamp);
    if fork.has_blob_fields() {
        let cancun =
            CancunPayloadFields::new(request.parent_beacon_block_root, request.versioned_hashes);
        let sidecar = if fork >= Fork::Prague {
            ExecutionPayloadSidecar::v4(
                cancun,
                PraguePayloadFields::new(request.execution_requests.unwrap_or_default()),
            )
        } else {
            ExecutionPayloadSidecar::v3(cancun)
        };
        Ok(ExecutionData::new(
            ExecutionPayload::V3(request.payload.0),
            sidecar,
        ))
    } else {
        let capella = CapellaNewPayload::try_from(request).map_err(conversion("newPayload"))?;
        Ok(ExecutionData::new(
            ExecutionPayload::V2(capella.payload.0),
            ExecutionPayloadSidecar::none(),
        ))
    }
}

/// A built payload in the v5 request form (what a caller passes back to `new_payload`).
pub fn deneb_request(built: &BuiltPayload) -> Result<DenebNewPayload, EngineError> {
    let data = &built.execution_data;
    let root = data.sidecar.parent_beacon_block_root().unwrap_or_default();
    let hashes = data.sidecar.versioned_hashes().cloned().unwrap_or_default();
    let payload = match &data.payload {
        ExecutionPayload::V2(v2) => DenebPayload::from(CapellaPayload(v2.clone())),
        ExecutionPayload::V3(v3) => DenebPayload(v3.clone()),
        other => {
            return Err(EngineError::invalid_request(
                "payload",
                format!(
                    "a {} payload has no Deneb request form",
                    payload_version(other)
                ),
            ));
        }
    };
    Ok(DenebNewPayload {
        payload,
        versioned_hashes: hashes,
        parent_beacon_block_root: root,
        execution_requests: data.sidecar.requests().cloned(),
    })
}

const fn payload_version(payload: &ExecutionPayload) -> &'static str {
    match payload {
        ExecutionPayload::V1(_) => "V1",
        ExecutionPayload::V2(_) => "V2",
        ExecutionPayload::V3(_) => "V3",
        ExecutionPayload::V4(_) => "V4",
    }
}

fn conversion(what: &'static str) -> impl Fn(ConversionError) -> EngineError {
    move |e| EngineError::invalid_request(what, e.to_string())
}
