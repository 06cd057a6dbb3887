//! [`EngineApiSchemas`]: the execution-apis OpenRPC schemas (`engine-testkit/schemas/`, vendored
//! by `tools/vendor-execution-apis.py`, with their errata applied) as validators of each
//! method's params and result, and [`check_engine_calls`], which holds a recorded run to them
//! and to the fork schedule's method versions.

use std::{
    collections::BTreeMap,
    fmt,
    sync::{Arc, OnceLock},
};

use engine_types::{EngineMethod, ForkSchedule};
use jsonschema::{Draft, Registry, ValidationError, Validator, error::ValidationErrorKind};
use serde_json::{Value, json};

use super::Exchange;

/// The vendored document.
const DOCUMENT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/schemas/engine-api.json"
));
/// The URI the document is registered under, so `$ref`s can point into it.
const URI: &str = "urn:alys-engine:engine-api";

/// Validators for the params and the result of every `engine_*` method of the execution-apis
/// specification (see `engine-testkit/schemas/README.md`).
pub struct EngineApiSchemas {
    methods: BTreeMap<String, MethodSchemas>,
    commit: String,
}

struct MethodSchemas {
    params: Validator,
    result: Validator,
}

impl fmt::Debug for EngineApiSchemas {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EngineApiSchemas")
            .field("methods", &self.methods.keys().collect::<Vec<_>>())
            .field("commit", &self.commit)
            .finish()
    }
}

/// Why the vendored schemas could not be loaded (a broken `engine-api.json`: regenerate it).
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "engine-testkit/schemas/engine-api.json: {0} (regenerate it with `python3 tools/vendor-execution-apis.py`)"
)]
pub struct SchemaError(String);

impl EngineApiSchemas {
    /// The vendored schemas, compiled once per process.
    pub fn shared() -> Result<Arc<Self>, SchemaError> {
        static SHARED: OnceLock<Result<Arc<EngineApiSchemas>, SchemaError>> = OnceLock::new();
        SHARED.get_or_init(|| Self::load().map(Arc::new)).clone()
    }

    /// Compile the vendored schemas with their errata applied.
    pub fn load() -> Result<Self, SchemaError> {
        let mut doc: Value =
            serde_json::from_str(DOCUMENT).map_err(|e| SchemaError(format!("not JSON: {e}")))?;
        apply_errata(&mut doc)?;
        let registry = Registry::new()
            .add(URI, &doc)
            .and_then(|r| r.prepare())
            .map_err(|e| SchemaError(format!("cannot register it: {e}")))?;
        let options = jsonschema::options()
            .with_draft(Draft::Draft202012)
            .offline()
            .with_registry(&registry);
        let compile = |schema: &Value, what: &str| {
            options
                .build(schema)
                .map_err(|e| SchemaError(format!("{what}: {e}")))
        };
        let methods_doc = doc["methods"]
            .as_object()
            .ok_or_else(|| SchemaError("no `methods` object".into()))?;
        let mut methods = BTreeMap::new();
        for (name, method) in methods_doc {
            let params = method["params"]
                .as_array()
                .ok_or_else(|| SchemaError(format!("{name}: no `params` list")))?;
            // The whole params array: each param against its schema, required ones present,
            // nothing after the last.
            let required = params
                .iter()
                .rposition(|p| p["required"] == json!(true))
                .map_or(0, |i| i + 1);
            let mut array = json!({ "type": "array", "minItems": required, "items": false });
            if !params.is_empty() {
                array["prefixItems"] = (0..params.len())
                    .map(|i| json!({ "$ref": format!("{URI}#/methods/{name}/params/{i}/schema") }))
                    .collect();
            }
            let result = json!({ "$ref": format!("{URI}#/methods/{name}/result") });
            methods.insert(
                name.clone(),
                MethodSchemas {
                    params: compile(&array, &format!("{name} params"))?,
                    result: compile(&result, &format!("{name} result"))?,
                },
            );
        }
        let commit = doc["source"]["commit"]
            .as_str()
            .unwrap_or("unknown")
            .to_owned();
        Ok(Self { methods, commit })
    }

    /// The execution-apis commit the schemas come from.
    pub fn commit(&self) -> &str {
        &self.commit
    }

    /// What is wrong with one recorded call: its params against the method's schema, and its
    /// answer (a `result` against the result schema, or a well-formed JSON-RPC `error`). Empty
    /// when it conforms.
    pub fn check(&self, exchange: &Exchange) -> Vec<String> {
        let method = exchange.method.as_str();
        let Some(schemas) = self.methods.get(method) else {
            return vec![format!(
                "{method}: not an Engine API method of execution-apis {}",
                self.commit
            )];
        };
        let mut problems = Vec::new();
        let params = exchange.request.get("params").cloned().unwrap_or(json!([]));
        for error in schemas.params.iter_errors(&params) {
            describe(&format!("{method} params"), &error, &mut problems);
        }
        match &exchange.response {
            None => problems.push(format!(
                "{method}: no JSON answer (HTTP {})",
                exchange.http_status
            )),
            Some(answer) => match (answer.get("result"), answer.get("error")) {
                (Some(result), None) => {
                    for error in schemas.result.iter_errors(result) {
                        describe(&format!("{method} result"), &error, &mut problems);
                    }
                }
                (None, Some(error)) => {
                    if !(error["code"].is_i64() && error["message"].is_string()) {
                        problems.push(format!("{method}: malformed JSON-RPC error {error}"));
                    }
                }
                _ => problems.push(format!(
                    "{method}: an answer needs exactly one of `result` and `error`: {answer}"
                )),
            },
        }
        problems.sort();
        problems.dedup();
        problems
    }
}

/// One line per failed leaf: for an `anyOf`/`oneOf` that no branch matched, what each branch
/// objected to (the top error alone says only "not valid under any").
fn describe(what: &str, error: &ValidationError<'_>, out: &mut Vec<String>) {
    let branches = match error.kind() {
        ValidationErrorKind::AnyOf { context } | ValidationErrorKind::OneOfNotValid { context } => {
            Some(context)
        }
        _ => None,
    };
    match branches {
        Some(branches) if branches.iter().any(|b| !b.is_empty()) => {
            for (i, branch) in branches.iter().enumerate() {
                for error in branch {
                    describe(&format!("{what} (branch {i})"), error, out);
                }
            }
        }
        _ => out.push(format!(
            "{what}{}: {} [{}]",
            error.instance_path(),
            error.masked(),
            error.schema_path()
        )),
    }
}

fn apply_errata(doc: &mut Value) -> Result<(), SchemaError> {
    let errata = doc["errata"].as_array().cloned().unwrap_or_default();
    for erratum in errata {
        let pointer = erratum["pointer"]
            .as_str()
            .ok_or_else(|| SchemaError(format!("erratum without a pointer: {erratum}")))?;
        let slot = doc
            .pointer_mut(pointer)
            .ok_or_else(|| SchemaError(format!("erratum at {pointer}: nothing there")))?;
        *slot = erratum["replacement"].clone();
    }
    Ok(())
}

/// What a conforming run did: calls per method.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireReport {
    /// How many calls of each method crossed the wire.
    pub calls: BTreeMap<String, usize>,
    /// How many of them were answered with a JSON-RPC error.
    pub errors: usize,
}

impl fmt::Display for WireReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total: usize = self.calls.values().sum();
        write!(f, "{total} calls conform (")?;
        for (i, (method, n)) in self.calls.iter().enumerate() {
            let sep = if i == 0 { "" } else { ", " };
            write!(f, "{sep}{method} ×{n}")?;
        }
        write!(f, "; {} error answers)", self.errors)
    }
}

/// Holds a recorded run to the specification: every call and answer conforms to the
/// execution-apis schemas ([`EngineApiSchemas::check`]), and every forkchoiceUpdated with
/// attributes, getPayload and newPayload uses the version the fork `schedule` gives its
/// timestamp (the schemas cannot tell: they allow extra fields). `Err` lists every violation.
pub fn check_engine_calls(
    exchanges: &[Exchange],
    schedule: &ForkSchedule,
) -> Result<WireReport, Vec<String>> {
    let schemas = EngineApiSchemas::shared().map_err(|e| vec![e.to_string()])?;
    let mut problems = Vec::new();
    let mut report = WireReport::default();
    // Payload id → the timestamp of the attributes that started it.
    let mut builds: BTreeMap<String, u64> = BTreeMap::new();
    for exchange in exchanges {
        *report.calls.entry(exchange.method.clone()).or_default() += 1;
        problems.extend(schemas.check(exchange));
        let answer = exchange.response.as_ref();
        if answer.is_some_and(|a| a.get("error").is_some()) {
            report.errors += 1;
        }
        let params = &exchange.request["params"];
        let expected = if exchange.method.starts_with("engine_forkchoiceUpdated") {
            let timestamp = quantity(&params[1]["timestamp"]);
            if let (Some(timestamp), Some(id)) = (
                timestamp,
                answer.and_then(|a| a["result"]["payloadId"].as_str()),
            ) {
                builds.insert(id.to_owned(), timestamp);
            }
            timestamp.map(|t| schedule.fork_at(t).forkchoice_updated())
        } else if exchange.method.starts_with("engine_getPayload")
            && !exchange.method.starts_with("engine_getPayloadBodies")
        {
            params[0]
                .as_str()
                .and_then(|id| builds.get(id))
                .map(|t| schedule.fork_at(*t).get_payload())
        } else if exchange.method.starts_with("engine_newPayload") {
            quantity(&params[0]["timestamp"]).map(|t| schedule.fork_at(t).new_payload())
        } else {
            None
        };
        if let Some(expected) = expected.map(EngineMethod::as_str)
            && expected != exchange.method
        {
            problems.push(format!(
                "{} where the fork schedule needs {expected}: {}",
                exchange.method, exchange.request
            ));
        }
    }
    if problems.is_empty() {
        Ok(report)
    } else {
        Err(problems)
    }
}

/// A `0x` quantity as a number.
fn quantity(value: &Value) -> Option<u64> {
    value
        .as_str()
        .and_then(|s| s.strip_prefix("0x"))
        .and_then(|hex| u64::from_str_radix(hex, 16).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exchange(request: Value, response: Value) -> Exchange {
        Exchange {
            method: request["method"].as_str().unwrap_or_default().to_owned(),
            request,
            response: Some(response),
            http_status: 200,
        }
    }

    const HASH: &str = "0x1111111111111111111111111111111111111111111111111111111111111111";

    fn fcu(version: u8, timestamp: &str, id: &str) -> Exchange {
        let mut attributes = json!({
            "timestamp": timestamp,
            "prevRandao": HASH,
            "suggestedFeeRecipient": "0x000000000000000000000000000000000000dEaD",
            "withdrawals": [{ "index": "0x0", "validatorIndex": "0x0", "address": "0x0000000000000000000000000000000000000001", "amount": "0x3e8" }],
        });
        if version >= 3 {
            attributes["parentBeaconBlockRoot"] = json!(HASH);
        }
        exchange(
            json!({ "jsonrpc": "2.0", "id": 1, "method": format!("engine_forkchoiceUpdatedV{version}"),
                    "params": [{ "headBlockHash": HASH, "safeBlockHash": HASH, "finalizedBlockHash": HASH }, attributes] }),
            json!({ "jsonrpc": "2.0", "id": 1, "result": {
                "payloadStatus": { "status": "VALID", "latestValidHash": HASH, "validationError": null },
                "payloadId": id } }),
        )
    }

    #[test]
    fn the_vendored_schemas_compile_with_every_engine_method() {
        let schemas = EngineApiSchemas::shared().unwrap();
        let every = EngineMethod::ANNOUNCED
            .into_iter()
            .chain([EngineMethod::ExchangeCapabilities]);
        for method in every {
            assert!(
                schemas.methods.contains_key(method.as_str()),
                "{method} is missing"
            );
        }
        assert_eq!(schemas.commit().len(), 40);
    }

    #[test]
    fn a_conforming_build_passes_and_counts_its_calls() {
        let schedule = ForkSchedule::shanghai();
        let calls = [fcu(2, "0x10", "0x0000000000000001")];
        let report = check_engine_calls(&calls, &schedule).unwrap();
        assert_eq!(report.calls["engine_forkchoiceUpdatedV2"], 1);
        assert_eq!(report.errors, 0);
    }

    #[test]
    fn a_leading_zero_quantity_and_a_wrong_version_are_both_reported() {
        let schedule = ForkSchedule::cancun();
        let calls = [fcu(2, "0x010", "0x0000000000000001")];
        let problems = check_engine_calls(&calls, &schedule).unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("/1/timestamp") && p.contains("uint64")),
            "{problems:#?}"
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("where the fork schedule needs engine_forkchoiceUpdatedV3")),
            "{problems:#?}"
        );
    }

    #[test]
    fn a_get_payload_takes_the_version_of_the_build_it_ends() {
        let schedule = ForkSchedule::cancun();
        let id = "0x00000000000000aa";
        let get = exchange(
            json!({ "jsonrpc": "2.0", "id": 2, "method": "engine_getPayloadV2", "params": [id] }),
            json!({ "jsonrpc": "2.0", "id": 2, "error": { "code": -38005, "message": "Unsupported fork" } }),
        );
        let problems = check_engine_calls(&[fcu(3, "0x10", id), get], &schedule).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(
            problems[0].contains("needs engine_getPayloadV3"),
            "{problems:#?}"
        );
    }

    #[test]
    fn an_unknown_method_and_a_missing_answer_are_violations() {
        let schemas = EngineApiSchemas::shared().unwrap();
        let mut call = exchange(
            json!({ "jsonrpc": "2.0", "id": 3, "method": "engine_frobnicateV1", "params": [] }),
            json!({}),
        );
        assert!(schemas.check(&call)[0].contains("not an Engine API method"));
        call.method = "engine_exchangeCapabilities".into();
        call.request = json!({ "jsonrpc": "2.0", "id": 3, "method": "engine_exchangeCapabilities", "params": [["engine_newPayloadV2"]] });
        call.response = None;
        call.http_status = 502;
        assert_eq!(
            schemas.check(&call),
            vec!["engine_exchangeCapabilities: no JSON answer (HTTP 502)".to_owned()]
        );
    }
}
