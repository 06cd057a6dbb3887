//! The Engine API methods of [`HttpExecutionClient`]: the version is chosen from the fork
//! schedule (never left to the EL to refuse) and checked against the client's capabilities
//! before any IO.

use alloy_primitives::{B256, U256};
use alloy_provider::{Provider, ext::EngineApi};
use alloy_rpc_types_engine::{
    CancunPayloadFields, ExecutionData, ExecutionPayload, ExecutionPayloadBodiesV1,
    ExecutionPayloadInputV2, ExecutionPayloadSidecar, ForkchoiceState, ForkchoiceUpdated,
    PayloadAttributes, PayloadId, PayloadStatus, PraguePayloadFields,
};
use engine_types::{EngineError, EngineMethod, Fork, validate_execution_data};
use tracing::{Span, debug};

use super::{
    HttpExecutionClient,
    call::no_fields,
    wire::{WireEnvelopeV3, WireEnvelopeV4},
};
use crate::{BuiltPayload, Capabilities};

/// How often newPayload is asked again on a client that answers SYNCING while still processing.
const SLOW_SYNCING_RETRIES: u32 = 3;
/// The pause before the first repeat (the n-th repeat waits n times as long).
const SLOW_SYNCING_PAUSE: std::time::Duration = std::time::Duration::from_millis(100);

/// Checks attributes fit the method version their timestamp selects.
fn check_attributes(fork: Fork, attrs: &PayloadAttributes) -> Result<(), EngineError> {
    let presence = |present: bool| if present { "present" } else { "missing" };
    if fork.has_withdrawals() != attrs.withdrawals.is_some() {
        return Err(EngineError::invalid_request(
            "attributes.withdrawals",
            format!(
                "{} for a {fork:?} timestamp ({})",
                presence(attrs.withdrawals.is_some()),
                attrs.timestamp
            ),
        ));
    }
    if fork.has_blob_fields() != attrs.parent_beacon_block_root.is_some() {
        return Err(EngineError::invalid_request(
            "attributes.parent_beacon_block_root",
            format!(
                "{} for a {fork:?} timestamp ({}); it is required from Cancun on and refused before",
                presence(attrs.parent_beacon_block_root.is_some()),
                attrs.timestamp
            ),
        ));
    }
    Ok(())
}

impl HttpExecutionClient {
    pub(super) async fn engine_exchange_capabilities(&self) -> Result<Capabilities, EngineError> {
        let ours: Vec<String> = EngineMethod::ANNOUNCED
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect();
        let method = EngineMethod::ExchangeCapabilities;
        let deadline = self.options.timeouts.for_engine_method(method);
        match self
            .call(method.as_str(), deadline, true, || {
                let ours = ours.clone();
                async move { self.engine().exchange_capabilities(ours).await }
            })
            .await
        {
            Ok(theirs) => Ok(Capabilities::from_methods(theirs)),
            Err(EngineError::MethodNotSupported { .. }) => Ok(Capabilities::unknown()),
            Err(e) => Err(e),
        }
    }

    pub(super) async fn engine_forkchoice_updated(
        &self,
        state: ForkchoiceState,
        attributes: Option<PayloadAttributes>,
    ) -> Result<ForkchoiceUpdated, EngineError> {
        if state.head_block_hash.is_zero() {
            return Err(EngineError::invalid_request(
                "forkchoice.head_block_hash",
                "zero hash",
            ));
        }
        let fork = match &attributes {
            Some(attrs) => {
                let fork = self.options.fork_schedule.fork_at(attrs.timestamp);
                check_attributes(fork, attrs)?;
                fork
            }
            // Without attributes any supported version will do; prefer the newest scheduled
            // fork's, stepping down to what the client offers.
            None => {
                let newest = self.options.fork_schedule.latest_scheduled();
                [Fork::Prague, Fork::Cancun, Fork::Shanghai, Fork::Paris]
                    .into_iter()
                    .filter(|f| *f <= newest)
                    .find(|f| self.capabilities.supports(f.forkchoice_updated()))
                    .unwrap_or(newest)
            }
        };
        let method = fork.forkchoice_updated();
        let deadline = self.engine_call_checked(method)?;
        let record = |u: &ForkchoiceUpdated, span: &Span| {
            span.record("engine.payload_status", u.payload_status.status.as_str());
            if let Some(id) = u.payload_id {
                span.record("engine.payload_id", id.to_string());
            }
        };
        let head = [("engine.block_hash", state.head_block_hash.to_string())];
        self.call_traced(method.as_str(), deadline, false, &head, record, || {
            let attrs = attributes.clone();
            async move {
                let engine = self.engine();
                match method {
                    EngineMethod::ForkchoiceUpdatedV1 => {
                        engine.fork_choice_updated_v1(state, attrs).await
                    }
                    EngineMethod::ForkchoiceUpdatedV2 => {
                        engine.fork_choice_updated_v2(state, attrs).await
                    }
                    _ => engine.fork_choice_updated_v3(state, attrs).await,
                }
            }
        })
        .await
    }

    pub(super) async fn engine_get_payload(
        &self,
        payload_id: PayloadId,
        timestamp: u64,
        parent_beacon_block_root: Option<B256>,
    ) -> Result<BuiltPayload, EngineError> {
        let fork = self.options.fork_schedule.fork_at(timestamp);
        let method = fork.get_payload();
        let deadline = self.engine_call_checked(method)?;
        let name = method.as_str();
        let root = || {
            parent_beacon_block_root.ok_or_else(|| {
                EngineError::invalid_request(
                    "parent_beacon_block_root",
                    format!("required to assemble a {fork:?} payload"),
                )
            })
        };
        let id_field = [("engine.payload_id", payload_id.to_string())];
        let (payload, sidecar, block_value) = match fork {
            Fork::Paris => {
                let p = self
                    .call_traced(name, deadline, true, &id_field, no_fields, || async move {
                        self.engine().get_payload_v1(payload_id).await
                    })
                    .await?;
                (
                    ExecutionPayload::V1(p),
                    ExecutionPayloadSidecar::none(),
                    U256::ZERO,
                )
            }
            Fork::Shanghai => {
                let env = self
                    .call_traced(name, deadline, true, &id_field, no_fields, || async move {
                        self.engine().get_payload_v2(payload_id).await
                    })
                    .await?;
                (
                    env.execution_payload.into_payload(),
                    ExecutionPayloadSidecar::none(),
                    env.block_value,
                )
            }
            Fork::Cancun => {
                let env = self
                    .call_traced(name, deadline, true, &id_field, no_fields, || async move {
                        self.engine()
                            .client()
                            .request::<_, WireEnvelopeV3>(name, (payload_id,))
                            .await
                    })
                    .await?;
                let cancun = CancunPayloadFields::new(root()?, env.blobs_bundle.versioned_hashes());
                (
                    ExecutionPayload::V3(env.execution_payload),
                    ExecutionPayloadSidecar::v3(cancun),
                    env.block_value,
                )
            }
            Fork::Prague => {
                let env = self
                    .call_traced(name, deadline, true, &id_field, no_fields, || async move {
                        self.engine()
                            .client()
                            .request::<_, WireEnvelopeV4>(name, (payload_id,))
                            .await
                    })
                    .await?;
                let cancun = CancunPayloadFields::new(root()?, env.blobs_bundle.versioned_hashes());
                (
                    ExecutionPayload::V3(env.execution_payload),
                    ExecutionPayloadSidecar::v4(
                        cancun,
                        PraguePayloadFields::new(env.execution_requests),
                    ),
                    env.block_value,
                )
            }
        };
        Ok(BuiltPayload {
            payload_id,
            execution_data: ExecutionData::new(payload, sidecar),
            block_value,
        })
    }

    /// newPayload; on a client that answers SYNCING when it is merely slow (the quirk
    /// `new_payload_syncing_when_slow`), asked again up to [`SLOW_SYNCING_RETRIES`] times while
    /// the call's deadline allows, so a block still being processed is not reported as unknown.
    pub(super) async fn engine_new_payload(
        &self,
        data: &ExecutionData,
    ) -> Result<PayloadStatus, EngineError> {
        let status = self.new_payload_once(data).await?;
        if !status.status.is_syncing() {
            self.set_processing_warm(true);
        }
        if !self.quirks.new_payload_syncing_when_slow || !status.status.is_syncing() {
            return Ok(status);
        }
        let fork = self.options.fork_schedule.fork_at(data.payload.timestamp());
        let deadline = tokio::time::Instant::now() + self.slot_bounded(fork.new_payload());
        let mut status = status;
        for attempt in 1..=SLOW_SYNCING_RETRIES {
            let pause = SLOW_SYNCING_PAUSE * attempt;
            if tokio::time::Instant::now() + pause >= deadline {
                break;
            }
            tokio::time::sleep(pause).await;
            debug!(attempt, block_hash = %data.payload.block_hash(), "newPayload answered SYNCING on a client that does so while still processing; asking again");
            status = self.new_payload_once(data).await?;
            if !status.status.is_syncing() {
                break;
            }
        }
        Ok(status)
    }

    async fn new_payload_once(&self, data: &ExecutionData) -> Result<PayloadStatus, EngineError> {
        validate_execution_data(data, &self.options.fork_schedule)?;
        let fork = self.options.fork_schedule.fork_at(data.payload.timestamp());
        let method = fork.new_payload();
        let deadline = self.engine_call_checked(method)?;
        let name = method.as_str();
        let missing = |what: &str| {
            EngineError::invalid_request(
                "payload",
                format!("{fork:?} payload without {what}; rebuild it for this fork"),
            )
        };
        let hash_field = [("engine.block_hash", data.payload.block_hash().to_string())];
        let record = |status: &PayloadStatus, span: &Span| {
            span.record("engine.payload_status", status.status.as_str());
        };
        match (&data.payload, fork) {
            (ExecutionPayload::V1(p), Fork::Paris) => {
                self.call_traced(name, deadline, false, &hash_field, record, || async move {
                    self.engine().new_payload_v1(p.clone()).await
                })
                .await
            }
            (ExecutionPayload::V2(p), Fork::Shanghai) => {
                let input = ExecutionPayloadInputV2 {
                    execution_payload: p.payload_inner.clone(),
                    withdrawals: Some(p.withdrawals.clone()),
                };
                self.call_traced(name, deadline, false, &hash_field, record, || {
                    let input = input.clone();
                    async move { self.engine().new_payload_v2(input).await }
                })
                .await
            }
            (ExecutionPayload::V3(p), Fork::Cancun) => {
                let root = data
                    .sidecar
                    .parent_beacon_block_root()
                    .ok_or_else(|| missing("parent beacon block root"))?;
                let hashes = data.sidecar.versioned_hashes().cloned().unwrap_or_default();
                self.call_traced(name, deadline, false, &hash_field, record, || {
                    let hashes = hashes.clone();
                    async move { self.engine().new_payload_v3(p.clone(), hashes, root).await }
                })
                .await
            }
            (ExecutionPayload::V3(p), Fork::Prague) => {
                let root = data
                    .sidecar
                    .parent_beacon_block_root()
                    .ok_or_else(|| missing("parent beacon block root"))?;
                let hashes = data.sidecar.versioned_hashes().cloned().unwrap_or_default();
                let requests = data
                    .sidecar
                    .prague()
                    .map(|p| p.requests.clone())
                    .ok_or_else(|| missing("execution requests"))?;
                self.call_traced(name, deadline, false, &hash_field, record, || {
                    let (hashes, requests) = (hashes.clone(), requests.clone());
                    async move {
                        self.engine()
                            .new_payload_v4_requests(p.clone(), hashes, root, requests)
                            .await
                    }
                })
                .await
            }
            _ => Err(missing("the payload version its timestamp needs")),
        }
    }

    pub(super) async fn engine_payload_bodies_by_hash(
        &self,
        hashes: Vec<B256>,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        let method = EngineMethod::GetPayloadBodiesByHashV1;
        let deadline = self.engine_call_checked(method)?;
        self.call(method.as_str(), deadline, true, || {
            let hashes = hashes.clone();
            async move { self.engine().get_payload_bodies_by_hash_v1(hashes).await }
        })
        .await
    }

    pub(super) async fn engine_payload_bodies_by_range(
        &self,
        start: u64,
        count: u64,
    ) -> Result<ExecutionPayloadBodiesV1, EngineError> {
        let method = EngineMethod::GetPayloadBodiesByRangeV1;
        let deadline = self.engine_call_checked(method)?;
        self.call(method.as_str(), deadline, true, || async move {
            self.engine()
                .get_payload_bodies_by_range_v1(start, count)
                .await
        })
        .await
    }
}
