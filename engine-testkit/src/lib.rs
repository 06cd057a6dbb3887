//! Test kit for alys-engine, every item at the crate root.
//!
//! | module | what |
//! |---|---|
//! | `mock` | [`MockExecutionLayer`], a real HTTP JSON-RPC server on `127.0.0.1:0` that checks the JWT, speaks Engine API V1–V4 and the `eth_` methods the engine uses, keeps an in-memory chain with real header hashes, records every request and injects faults ([`Fault`], [`FaultRule`]) |
//! | `launcher` | [`RealExecutionClient`]: real execution clients (EthereumJS from the pinned npm package, Reth and Geth when their binaries are present) on a post-merge genesis ([`GenesisOptions`]) with a JWT secret |
//! | `harness` | what every suite uses: an engine on the mock or a real EL ([`MockEngine`], [`RealEngine`], rstest fixtures), the test configuration, one slot through the engine or a client ([`engine_slot`], [`client_slot`]), the in-memory [`ScriptedClient`] |
//! | `otlp` | [`OtlpReceiver`], an OTLP/HTTP trace receiver that decodes what exporters send |
//! | `tls` | [`TlsFront`], a TLS server on `127.0.0.1` in front of a plain one (the mock), with its own certificate authority, for `https://` endpoints |
//! | `tx` | signed test transactions for `eth_sendRawTransaction` |
//! | `wire` | [`RecordingProxy`], which records every Engine API call to a real client, and the execution-apis schemas they are checked against |
//! | `bridge` | the Alys peg-out bridge contract (address, runtime code, ABI, signed `requestPegOut` calls) and the log it emits, which the mock synthesizes |

mod bridge;
mod harness;
mod launcher;
mod mock;
mod otlp;
mod tls;
mod tx;
mod wire;

pub use bridge::{
    BRIDGE_ADDRESS, PEG_OUT_GAS_LIMIT, RequestPegOut, bridge_runtime_code, decode_request_peg_out,
    forwarder_runtime_code, peg_out_event_init_code, request_peg_out_calldata, request_peg_out_log,
    requestPegOutCall, signed_peg_out,
};
pub use harness::{
    MockEngine, RealEngine, Scripted, ScriptedCall, ScriptedClient, ScriptedMethod, Slot,
    client_slot, engine_slot, engine_slot_after, funded_mock_config, http_get, metric_sample,
    metric_sum, mock_client_options, mock_engine, peg_in, peg_ins, scrape_metrics,
    test_engine_config, wait_for,
};
pub use launcher::{
    DEV_ACCOUNT, DEV_PRIVATE_KEY, GenesisOptions, LaunchError, RealClientKind, RealExecutionClient,
    locate,
};
pub use mock::{
    ClientProfile, Fault, FaultRule, MockBlockInfo, MockChain, MockConfig, MockError,
    MockExecutionLayer, RecordedRequest,
};
pub use otlp::{OtlpReceiver, ReceivedSpan};
pub use tls::TlsFront;
pub use tx::{
    TxError, signed_eip1559, signed_eip1559_transfer, signed_eip2930, signed_legacy,
    signed_transfer,
};
pub use wire::{
    EngineApiSchemas, Exchange, ProxyError, RecordingProxy, SchemaError, WireReport,
    check_engine_calls,
};
