//! The Open Inference Protocol (KServe's v2 protocol, also Triton's) over HTTP/REST:
//!
//! ```text
//! GET  /v2                                         server metadata
//! GET  /v2/health/live, /v2/health/ready           server health
//! GET  /v2/models/{name}[/versions/{v}]            model metadata
//! GET  /v2/models/{name}[/versions/{v}]/ready      model readiness
//! POST /v2/models/{name}[/versions/{v}]/infer      inference
//! ```
//!
//! Tensors travel as `{name, shape, datatype, data}` with `data` flat in row-major order
//! (nested lists are accepted too). Also the binary tensor data extension that Triton's
//! clients use by default: with an `Inference-Header-Content-Length` header, the body is
//! the JSON header followed by raw little-endian tensor bytes, each input marked with
//! `"parameters": {"binary_data_size": n}`; outputs come back the same way when asked
//! (`binary_data` on an output, or `binary_data_output` on the request).

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::models::TensorSpec;

use super::registry::{Selector, Served};
use super::tensor::{Data, Datatype, Tensor};
use super::{ApiError, AppState, body, observe, predict};

const PROTOCOL: &str = "v2";
const HEADER_LENGTH: &str = "inference-header-content-length";

pub(super) async fn server_metadata() -> Json<Value> {
    Json(json!({
        "name": "sluice",
        "version": env!("CARGO_PKG_VERSION"),
        "extensions": ["binary_tensor_data"],
    }))
}

pub(super) async fn live() -> Json<Value> {
    Json(json!({ "live": true }))
}

/// Ready once the server listens: it binds only after loading every model's default
/// version.
pub(super) async fn ready() -> Json<Value> {
    Json(json!({ "ready": true }))
}

pub(super) async fn model_metadata(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &name, &Selector::Default)
}

pub(super) async fn version_metadata(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    metadata(&state, &name, &version_selector(&name, &version)?)
}

pub(super) async fn model_ready(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    readiness(&state, &name, &Selector::Default)
}

pub(super) async fn version_ready(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    readiness(&state, &name, &version_selector(&name, &version)?)
}

fn version_selector(name: &str, version: &str) -> Result<Selector, ApiError> {
    version
        .parse()
        .map(Selector::Version)
        .map_err(|_| ApiError::not_found(format!("model '{name}' has no version '{version}'")))
}

fn metadata(state: &AppState, name: &str, selector: &Selector) -> Result<Json<Value>, ApiError> {
    let served = state.registry.route(name, selector)?;
    let (versions, _, _) = state
        .registry
        .describe(name)
        .ok_or_else(|| ApiError::not_found(format!("model '{name}' is not served")))?;
    let specs = |list: &[TensorSpec]| -> Vec<Value> {
        list.iter()
            .map(|s| json!({ "name": s.name, "datatype": s.datatype, "shape": s.shape }))
            .collect()
    };
    let signature = &served.meta.signature;
    Ok(Json(json!({
        "name": name,
        "versions": versions.iter().map(|v| v.meta.version.to_string()).collect::<Vec<_>>(),
        "platform": "sluice_wasm",
        "inputs": specs(&signature.inputs),
        "outputs": specs(&signature.outputs),
    })))
}

/// A routed version is ready: it serves now, or loads on this request.
fn readiness(state: &AppState, name: &str, selector: &Selector) -> Result<Json<Value>, ApiError> {
    state.registry.route(name, selector)?;
    Ok(Json(json!({ "name": name, "ready": true })))
}

pub(super) async fn infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Response {
    run_infer(&state, &name, Ok(Selector::Default), &headers, read).await
}

pub(super) async fn version_infer(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Response {
    let selector = version_selector(&name, &version);
    run_infer(&state, &name, selector, &headers, read).await
}

async fn run_infer(
    state: &AppState,
    name: &str,
    selector: Result<Selector, ApiError>,
    headers: &HeaderMap,
    read: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let selector = selector.map_err(|e| (None, e))?;
        let bytes = body(state, read).map_err(|e| (None, e))?;
        let request = Request::parse(&bytes, headers).map_err(|e| (None, e))?;
        let (served, outputs) = predict(state, name, &selector, |_| request.tensors()).await?;
        let version = Some(served.meta.version);
        request
            .answer(name, &served, outputs)
            .map(|r| (version, r))
            .map_err(|e| (version, e))
    }
    .await;
    let (version, response) = match result {
        Ok((version, response)) => (version, response),
        Err((version, e)) => (version, e.into_response()),
    };
    observe(state, name, version, PROTOCOL, response.status(), started);
    response
}

/// An inference request: its JSON header and the binary data after it, if any.
struct Request {
    header: Map<String, Value>,
    binary: Bytes,
}

/// One requested output: its name and whether it wants binary data.
struct Wanted {
    name: String,
    binary: bool,
}

impl Request {
    fn parse(bytes: &Bytes, headers: &HeaderMap) -> Result<Request, ApiError> {
        let split = match headers.get(HEADER_LENGTH) {
            None => bytes.len(),
            Some(v) => v
                .to_str()
                .ok()
                .and_then(|s| s.trim().parse::<usize>().ok())
                .filter(|&n| n <= bytes.len())
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Inference-Header-Content-Length must be a number of bytes no larger than the body ({})",
                        bytes.len()
                    ))
                })?,
        };
        let header = match serde_json::from_slice::<Value>(&bytes[..split]) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return Err(ApiError::bad_request(
                    "the inference request must be a JSON object",
                ));
            }
            Err(e) => {
                return Err(ApiError::bad_request(format!(
                    "the inference request is not valid JSON: {e}"
                )));
            }
        };
        for key in header.keys() {
            if !matches!(key.as_str(), "id" | "parameters" | "inputs" | "outputs") {
                return Err(ApiError::bad_request(format!(
                    "unknown key '{key}'; an inference request has 'inputs' and optionally 'id', 'parameters' and 'outputs'"
                )));
            }
        }
        if header.get("id").is_some_and(|id| !id.is_string()) {
            return Err(ApiError::bad_request("'id' must be a string"));
        }
        if header.get("parameters").is_some_and(|p| !p.is_object()) {
            return Err(ApiError::bad_request("'parameters' must be an object"));
        }
        Ok(Request {
            header,
            binary: bytes.slice(split..),
        })
    }

    /// The request's input tensors, typed and shaped as it says.
    fn tensors(&self) -> Result<Vec<Tensor>, ApiError> {
        let Some(inputs) = self.header.get("inputs") else {
            return Err(ApiError::bad_request("missing 'inputs'"));
        };
        let Some(inputs) = inputs.as_array().filter(|a| !a.is_empty()) else {
            return Err(ApiError::bad_request(
                "'inputs' must be a non-empty list of tensors",
            ));
        };
        let mut offset = 0usize;
        let mut tensors: Vec<Tensor> = Vec::with_capacity(inputs.len());
        for (i, input) in inputs.iter().enumerate() {
            let tensor = self.tensor(i, input, &mut offset)?;
            if tensors.iter().any(|t| t.name == tensor.name) {
                return Err(ApiError::bad_request(format!(
                    "input '{}' is given twice",
                    tensor.name
                )));
            }
            tensors.push(tensor);
        }
        if offset != self.binary.len() {
            return Err(ApiError::bad_request(format!(
                "the body holds {} bytes of binary data after the JSON header, but the inputs' binary_data_size add up to {offset}",
                self.binary.len()
            )));
        }
        Ok(tensors)
    }

    fn tensor(&self, i: usize, input: &Value, offset: &mut usize) -> Result<Tensor, ApiError> {
        let bad = |m: String| ApiError::bad_request(m);
        let object = input.as_object().ok_or_else(|| {
            bad(format!(
                "inputs[{i}] must be an object with name, shape, datatype and data"
            ))
        })?;
        let name = object
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| bad(format!("inputs[{i}] lacks 'name' (a string)")))?;
        let shape: Vec<u64> = object
            .get("shape")
            .and_then(Value::as_array)
            .and_then(|dims| dims.iter().map(Value::as_u64).collect::<Option<Vec<u64>>>())
            .ok_or_else(|| {
                bad(format!(
                    "input '{name}' lacks 'shape' (a list of non-negative integers)"
                ))
            })?;
        let datatype = object
            .get("datatype")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                bad(format!(
                    "input '{name}' lacks 'datatype' (FP64, INT64, BYTES, ...)"
                ))
            })?;
        let datatype =
            Datatype::parse(datatype).map_err(|e| bad(format!("input '{name}': {e}")))?;
        let binary_size = object
            .get("parameters")
            .and_then(|p| p.get("binary_data_size"))
            .map(|v| {
                v.as_u64().ok_or_else(|| {
                    bad(format!(
                        "input '{name}': binary_data_size must be a number of bytes"
                    ))
                })
            })
            .transpose()?;
        match (binary_size, object.get("data")) {
            (Some(_), Some(_)) => Err(bad(format!(
                "input '{name}' has both 'data' and binary_data_size; give one"
            ))),
            (None, None) => Err(bad(format!("input '{name}' lacks 'data'"))),
            (None, Some(data)) => {
                let mut leaves = Vec::new();
                flatten(data, &mut leaves);
                Tensor::from_flat(name, shape, datatype, &leaves).map_err(bad)
            }
            (Some(size), None) => {
                let size = size as usize;
                let end = offset.checked_add(size).filter(|&e| e <= self.binary.len()).ok_or_else(|| {
                    bad(format!(
                        "input '{name}' wants {size} bytes of binary data, but only {} remain in the body",
                        self.binary.len() - *offset
                    ))
                })?;
                let bytes = &self.binary[*offset..end];
                *offset = end;
                let data = decode(name, datatype, bytes).map_err(bad)?;
                let expected: u64 = shape.iter().product();
                if data.len() as u64 != expected {
                    return Err(bad(format!(
                        "input '{name}' has shape {shape:?}, which holds {expected} elements, but its binary data holds {}",
                        data.len()
                    )));
                }
                Ok(Tensor {
                    name: name.to_owned(),
                    shape,
                    data,
                })
            }
        }
    }

    /// Which outputs to give, in order, and how.
    fn wanted(&self, served: &Served) -> Result<Vec<Wanted>, ApiError> {
        let all_binary = self
            .header
            .get("parameters")
            .and_then(|p| p.get("binary_data_output"))
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let Some(requested) = self.header.get("outputs") else {
            return Ok(served
                .meta
                .signature
                .outputs
                .iter()
                .map(|s| Wanted {
                    name: s.name.clone(),
                    binary: all_binary,
                })
                .collect());
        };
        let Some(requested) = requested.as_array() else {
            return Err(ApiError::bad_request(
                "'outputs' must be a list of {\"name\": ...} objects",
            ));
        };
        requested
            .iter()
            .enumerate()
            .map(|(i, o)| {
                let name = o.get("name").and_then(Value::as_str).ok_or_else(|| {
                    ApiError::bad_request(format!("outputs[{i}] lacks 'name' (a string)"))
                })?;
                if !served.meta.signature.outputs.iter().any(|s| s.name == name) {
                    return Err(ApiError::bad_request(format!(
                        "the model has no output '{name}'; it gives {}",
                        super::names(
                            served
                                .meta
                                .signature
                                .outputs
                                .iter()
                                .map(|s| s.name.as_str())
                        )
                    )));
                }
                let binary = o
                    .get("parameters")
                    .and_then(|p| p.get("binary_data"))
                    .and_then(Value::as_bool)
                    .unwrap_or(all_binary);
                Ok(Wanted {
                    name: name.to_owned(),
                    binary,
                })
            })
            .collect()
    }

    fn answer(
        &self,
        name: &str,
        served: &Served,
        outputs: Vec<Tensor>,
    ) -> Result<Response, ApiError> {
        let wanted = self.wanted(served)?;
        let mut binary = Vec::new();
        let mut given = Vec::with_capacity(wanted.len());
        for want in &wanted {
            let tensor = outputs
                .iter()
                .find(|t| t.name == want.name)
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        format!("the predictor did not give output '{}'", want.name),
                    )
                })?;
            let mut out = json!({
                "name": tensor.name,
                "datatype": tensor.data.datatype().name(),
                "shape": tensor.shape,
            });
            if want.binary {
                let before = binary.len();
                encode(&tensor.data, &mut binary);
                out["parameters"] = json!({ "binary_data_size": binary.len() - before });
            } else {
                out["data"] = tensor.flat();
            }
            given.push(out);
        }
        let mut response = json!({
            "model_name": name,
            "model_version": served.meta.version.to_string(),
            "outputs": given,
        });
        if let Some(id) = self.header.get("id") {
            response["id"] = id.clone();
        }
        let text = serde_json::to_vec(&response)
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        if binary.is_empty() && !wanted.iter().any(|w| w.binary) {
            return Ok(([(header::CONTENT_TYPE, "application/json")], text).into_response());
        }
        let length = HeaderValue::from(text.len());
        let mut body = text;
        body.extend_from_slice(&binary);
        Ok((
            [
                (
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/octet-stream"),
                ),
                (header::HeaderName::from_static(HEADER_LENGTH), length),
            ],
            body,
        )
            .into_response())
    }
}

fn flatten<'a>(value: &'a Value, out: &mut Vec<&'a Value>) {
    match value {
        Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        leaf => out.push(leaf),
    }
}

/// Raw tensor bytes as the binary extension lays them out: little-endian elements,
/// one byte per BOOL, and each BYTES element as a 4-byte little-endian length and its
/// bytes.
fn decode(name: &str, datatype: Datatype, bytes: &[u8]) -> Result<Data, String> {
    fn fixed<const N: usize, T>(
        name: &str,
        bytes: &[u8],
        f: fn([u8; N]) -> T,
    ) -> Result<Vec<T>, String> {
        if !bytes.len().is_multiple_of(N) {
            return Err(format!(
                "input '{name}': {} bytes of binary data is not a whole number of {N}-byte elements",
                bytes.len()
            ));
        }
        Ok(bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks are N bytes")))
            .collect())
    }
    Ok(match datatype {
        Datatype::Bool => Data::Bool(fixed::<1, _>(name, bytes, |[b]| b != 0)?),
        Datatype::Int32 => Data::Int32(fixed(name, bytes, i32::from_le_bytes)?),
        Datatype::Int64 => Data::Int64(fixed(name, bytes, i64::from_le_bytes)?),
        Datatype::Fp32 => Data::Fp32(fixed(name, bytes, f32::from_le_bytes)?),
        Datatype::Fp64 => Data::Fp64(fixed(name, bytes, f64::from_le_bytes)?),
        Datatype::Bytes => {
            let mut items = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err(format!(
                        "input '{name}': binary BYTES data ends inside a length prefix"
                    ));
                };
                let len = u32::from_le_bytes(*len) as usize;
                if tail.len() < len {
                    return Err(format!(
                        "input '{name}': binary BYTES data ends inside an element"
                    ));
                }
                let (item, tail) = tail.split_at(len);
                let item = std::str::from_utf8(item).map_err(|_| {
                    format!("input '{name}': element {} is not UTF-8 text", items.len())
                })?;
                items.push(item.to_owned());
                rest = tail;
            }
            Data::Bytes(items)
        }
    })
}

fn encode(data: &Data, out: &mut Vec<u8>) {
    match data {
        Data::Bool(v) => out.extend(v.iter().map(|&b| u8::from(b))),
        Data::Int32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Int64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Fp32(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Fp64(v) => v
            .iter()
            .for_each(|x| out.extend_from_slice(&x.to_le_bytes())),
        Data::Bytes(v) => v.iter().for_each(|s| {
            out.extend_from_slice(&(s.len() as u32).to_le_bytes());
            out.extend_from_slice(s.as_bytes());
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_data_round_trips() {
        for data in [
            Data::Fp64(vec![1.5, -2.25]),
            Data::Fp32(vec![0.5]),
            Data::Int64(vec![-7, 9]),
            Data::Int32(vec![3]),
            Data::Bool(vec![true, false]),
            Data::Bytes(vec!["M".into(), String::new(), "benign".into()]),
        ] {
            let mut bytes = Vec::new();
            encode(&data, &mut bytes);
            assert_eq!(decode("x", data.datatype(), &bytes).unwrap(), data);
        }
    }

    #[test]
    fn truncated_binary_data_is_an_error() {
        assert!(
            decode("x", Datatype::Fp64, &[0; 12])
                .unwrap_err()
                .contains("not a whole number of 8-byte elements")
        );
        assert!(
            decode("x", Datatype::Bytes, &[5, 0, 0, 0, b'a'])
                .unwrap_err()
                .contains("ends inside an element")
        );
        assert!(
            decode("x", Datatype::Bytes, &[5, 0])
                .unwrap_err()
                .contains("length prefix")
        );
    }
}
