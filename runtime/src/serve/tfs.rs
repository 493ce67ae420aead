//! TF Serving's REST API, as documented for `tensorflow_model_server --rest_api_port`:
//!
//! ```text
//! GET  /v1/models/{name}[/versions/{v}|/labels/{l}]            model status
//! GET  /v1/models/{name}[/versions/{v}|/labels/{l}]/metadata   signature_def
//! POST /v1/models/{name}[/versions/{v}|/labels/{l}]:predict    row or column format
//! ```
//!
//! A predict request carries `instances` (the row format: one element per example, the
//! input's value or an object of named inputs) or `inputs` (the column format: the
//! input's value or an object of named inputs, each batched), and is answered with
//! `predictions` or `outputs` in the same format. As TF Serving's REST documentation
//! says: BYTES values may be given as `{"b64": "..."}`, outputs whose name ends in
//! `_bytes` are answered that way, and `NaN`, `Infinity` and `-Infinity` are read and
//! written as bare tokens. A version's status is its real load state (`START` before its
//! first load, `LOADING`, `AVAILABLE`, `END` after scaling to zero or a failed load), and
//! also carries KServe's v1 `name` and `ready`. Errors are `{"error": "..."}`.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiter::{Jiter, Peek};
use serde_json::{Map, Value, json};

use crate::models::{Signature, TensorSpec};

use super::body::Body;
use super::json::{self, Discover, OrSyntax, ReadError, Style};
use super::registry::{Selector, Served};
use super::tensor::{Data, Datatype, Tensor};
use super::{ApiError, AppState, observe, predict};

const PROTOCOL: &str = "tfs";
/// The one signature a Sluice model has, under TF Serving's default name.
const SIGNATURE: &str = "serving_default";

/// The model and version a URL names, and what follows them.
#[derive(Debug, PartialEq)]
struct Target {
    name: String,
    selector: Selector,
    /// `metadata` for GET, `predict` (after `:`) for POST; empty for status.
    rest: String,
}

fn parse_target(path: &str) -> Result<Target, ApiError> {
    let (path, method) = match path.rsplit_once(':') {
        Some((path, method)) => (path, Some(method)),
        None => (path, None),
    };
    let segments: Vec<&str> = path.split('/').collect();
    let (name, selector, tail) = match segments.as_slice() {
        [name, "versions", v, tail @ ..] => {
            let version = v.parse().map_err(|_| {
                ApiError::not_found(format!(
                    "'{v}' is not a version number (versions are 1, 2, ...)"
                ))
            })?;
            (*name, Selector::Version(version), tail)
        }
        [name, "labels", label, tail @ ..] => (*name, Selector::Label((*label).to_owned()), tail),
        [name, tail @ ..] => (*name, Selector::Default, tail),
        [] => unreachable!("split yields at least one segment"),
    };
    if name.is_empty() {
        return Err(ApiError::not_found(
            "the URL names no model: /v1/models/{name}",
        ));
    }
    let rest = match (tail, method) {
        ([], None) => String::new(),
        (["metadata"], None) => "metadata".to_owned(),
        ([], Some(method)) => method.to_owned(),
        _ => {
            return Err(ApiError::not_found(format!(
                "no such endpoint: /v1/models/{path}{}",
                method.map(|m| format!(":{m}")).unwrap_or_default()
            )));
        }
    };
    Ok(Target {
        name: name.to_owned(),
        selector,
        rest,
    })
}

/// Model status and metadata.
pub(super) async fn get(State(state): State<Arc<AppState>>, Path(path): Path<String>) -> Response {
    let answer = (|| {
        let target = parse_target(&path)?;
        match target.rest.as_str() {
            "" => status(&state, &target),
            "metadata" => metadata(&state, &target),
            other => Err(ApiError::not_allowed(
                format!(":{other} takes POST"),
                "POST",
            )),
        }
    })();
    match answer {
        Ok(value) => Json(value).into_response(),
        Err(e) => e.into_response(),
    }
}

fn status(state: &AppState, target: &Target) -> Result<Value, ApiError> {
    let (versions, _, _) = state
        .registry
        .describe(&target.name)
        .ok_or_else(|| ApiError::not_found(format!("model '{}' is not served", target.name)))?;
    let shown: Vec<Arc<Served>> = match &target.selector {
        Selector::Default => versions,
        selector => vec![state.registry.route(&target.name, selector)?],
    };
    let statuses: Vec<Value> = shown
        .iter()
        .rev()
        .map(|v| {
            let (state, code, message) = v.load_state().tf_status();
            json!({
                "version": v.meta.version.to_string(),
                "state": state,
                "status": { "error_code": code, "error_message": message }
            })
        })
        .collect();
    // KServe's v1 protocol reads readiness from the same URL: the version a request
    // would reach serves now or loads on its first request.
    let routed = state.registry.peek_route(&target.name, &target.selector)?;
    Ok(json!({
        "model_version_status": statuses,
        "name": target.name,
        "ready": !routed.load_state().is_failed(),
    }))
}

fn metadata(state: &AppState, target: &Target) -> Result<Value, ApiError> {
    let served = state.registry.route(&target.name, &target.selector)?;
    let specs = |list: &[TensorSpec]| -> Map<String, Value> {
        list.iter()
            .map(|spec| (spec.name.clone(), tensor_info(spec)))
            .collect()
    };
    let signature = &served.meta.signature;
    Ok(json!({
        "model_spec": {
            "name": target.name,
            "signature_name": "",
            "version": served.meta.version.to_string(),
        },
        "metadata": {
            "signature_def": {
                "signature_def": {
                    SIGNATURE: {
                        "inputs": specs(&signature.inputs),
                        "outputs": specs(&signature.outputs),
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        }
    }))
}

/// A `TensorInfo` in proto3 JSON: int64 sizes as strings.
fn tensor_info(spec: &TensorSpec) -> Value {
    let dtype = Datatype::parse(&spec.datatype).map_or("DT_INVALID", Datatype::tf_name);
    let dims: Vec<Value> = spec
        .shape
        .iter()
        .map(|d| json!({ "size": d.to_string(), "name": "" }))
        .collect();
    json!({
        "dtype": dtype,
        "tensor_shape": { "dim": dims, "unknown_rank": false },
        "name": spec.name,
    })
}

/// `:predict`.
pub(super) async fn post(
    State(state): State<Arc<AppState>>,
    Path(path): Path<String>,
    body: Result<Body, ApiError>,
) -> Response {
    let started = Instant::now();
    let target = match parse_target(&path) {
        Ok(t) => t,
        Err(e) => return e.into_response(),
    };
    match target.rest.as_str() {
        "predict" => {}
        "classify" | "regress" => {
            return ApiError::bad_request(format!(
                ":{} needs a TensorFlow classification or regression signature; Sluice models answer :predict",
                target.rest
            ))
            .into_response();
        }
        "" | "metadata" => {
            return ApiError::not_allowed(format!("/v1/models/{path} takes GET"), "GET, HEAD")
                .into_response();
        }
        other => {
            return ApiError::not_found(format!("no method ':{other}'; use :predict"))
                .into_response();
        }
    }
    let result = async {
        let (bytes, mut budget) = body.map_err(|e| (None, e))?.split();
        let mut format = Format::Row;
        let asked = &mut format;
        // The closure owns the body's bytes, which go as soon as they are read.
        let selector = &target.selector;
        let (served, outputs) =
            predict(&state, &target.name, selector, &mut budget, move |served| {
                let (inputs, f) = parse_request(&bytes, &served.meta.signature)?;
                *asked = f;
                Ok(inputs)
            })
            .await?;
        let version = served.meta.version;
        let answer = match format {
            Format::Row => rows(&outputs),
            Format::Column => columns(&outputs),
        };
        answer
            .map_err(|e| (Some(version), e))
            .map(|a| (Some(version), a))
    }
    .await;
    let (version, response) = match result {
        Ok((version, answer)) => (
            version,
            ([(header::CONTENT_TYPE, "application/json")], answer).into_response(),
        ),
        Err((version, e)) => (version, e.into_response()),
    };
    observe(
        &state,
        &target.name,
        version,
        PROTOCOL,
        response.status(),
        started,
    );
    response
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Format {
    Row,
    Column,
}

/// The inputs of a predict request, typed by the signature, and the format it used.
fn parse_request(body: &[u8], signature: &Signature) -> Result<(Vec<Tensor>, Format), ApiError> {
    let mut j = json::parser(body);
    read_request(&mut j, signature, body.len()).map_err(ApiError::bad_request)
}

fn read_request(
    j: &mut Jiter,
    signature: &Signature,
    body_len: usize,
) -> Result<(Vec<Tensor>, Format), String> {
    let whole = |e: ReadError| e.about("the request");
    if j.peek().or_syntax().map_err(whole)? != Peek::Object {
        return Err("the request body must be a JSON object".to_owned());
    }
    let mut read: Option<(Vec<Tensor>, Format)> = None;
    let mut signature_name = false;
    let mut key = j
        .known_object()
        .or_syntax()
        .map_err(whole)?
        .map(str::to_owned);
    while let Some(k) = key {
        match k.as_str() {
            "signature_name" => {
                if signature_name {
                    return Err("'signature_name' is given twice".to_owned());
                }
                signature_name = true;
                match j.peek().or_syntax().map_err(whole)? {
                    Peek::String => match j.known_str().or_syntax().map_err(whole)? {
                        "" | SIGNATURE => {}
                        other => {
                            return Err(format!(
                                "signature '{other}' not found; the model has only '{SIGNATURE}'"
                            ));
                        }
                    },
                    _ => return Err("'signature_name' must be a string".to_owned()),
                }
            }
            "instances" | "inputs" => {
                if read.is_some() {
                    return Err(
                        "a request has either 'instances' (row format) or 'inputs' (column format), not both"
                            .to_owned(),
                    );
                }
                read = Some(if k == "instances" {
                    (instances(j, signature, body_len)?, Format::Row)
                } else {
                    (columns_in(j, signature, body_len)?, Format::Column)
                });
            }
            other => {
                return Err(format!(
                    "unknown key '{other}'; a predict request has 'instances' or 'inputs' (and 'signature_name')"
                ));
            }
        }
        key = j.next_key().or_syntax().map_err(whole)?.map(str::to_owned);
    }
    j.finish().or_syntax().map_err(whole)?;
    read.ok_or_else(|| "missing 'instances' or 'inputs'".to_owned())
}

/// A typed buffer and a shape tracker for each input of the signature.
fn buffers(signature: &Signature, room: usize) -> Result<Vec<(Discover, Data)>, String> {
    signature
        .inputs
        .iter()
        .map(|spec| {
            let datatype = Datatype::parse(&spec.datatype)
                .map_err(|e| format!("the model's signature is damaged: {e}"))?;
            Ok((Discover::default(), Data::with_capacity(datatype, room)))
        })
        .collect()
}

/// Room to reserve per input: a guess at the elements, bounded by the body (a JSON
/// element takes at least two bytes).
fn room(body_len: usize, inputs: usize) -> usize {
    body_len / 8 / inputs.max(1)
}

/// The row format: `instances` is a list with one element per example, each the input's
/// value (one input) or an object of named inputs. Every instance has the same shape.
fn instances(j: &mut Jiter, signature: &Signature, body_len: usize) -> Result<Vec<Tensor>, String> {
    let specs = &signature.inputs;
    let at = |e: ReadError| e.about("'instances'");
    if j.peek().or_syntax().map_err(at)? != Peek::Array {
        j.next_skip().or_syntax().map_err(at)?;
        return Err("'instances' must be a list, one element per example".to_owned());
    }
    let mut buffers = buffers(signature, room(body_len, specs.len()))?;
    let mut named_form: Option<bool> = None;
    let mut rows = 0u64;
    let mut next = j.known_array().or_syntax().map_err(at)?;
    while let Some(peek) = next {
        let i = rows;
        let named = peek == Peek::Object && !json::is_b64_object(j);
        match named_form {
            None => named_form = Some(named),
            Some(first) if first != named => {
                return Err(format!(
                    "instance {i} {} its inputs, but instance 0 {}; give every instance alike",
                    if named { "names" } else { "does not name" },
                    if first { "does" } else { "does not" },
                ));
            }
            Some(_) => {}
        }
        if named {
            let mut seen = vec![false; specs.len()];
            let mut key = j.known_object().or_syntax().map_err(at)?.map(str::to_owned);
            while let Some(k) = key {
                let index = specs
                    .iter()
                    .position(|s| s.name == k)
                    .ok_or_else(|| format!("instance {i} has unknown input '{k}'"))?;
                if std::mem::replace(&mut seen[index], true) {
                    return Err(format!("instance {i} gives input '{k}' twice"));
                }
                let peek = j.peek().or_syntax().map_err(at)?;
                let (discover, data) = &mut buffers[index];
                discover
                    .read(j, peek, data, true)
                    .map_err(|e| e.about(&format!("input '{k}' of instance {i}")))?;
                key = j.next_key().or_syntax().map_err(at)?.map(str::to_owned);
            }
            if let Some(missing) = seen.iter().position(|s| !s) {
                return Err(format!(
                    "instance {i} lacks input '{}'",
                    specs[missing].name
                ));
            }
        } else {
            let [spec] = specs.as_slice() else {
                return Err(format!(
                    "instance {i} must be an object of named inputs ({}), as the model takes several",
                    super::names(specs.iter().map(|s| s.name.as_str()))
                ));
            };
            let (discover, data) = &mut buffers[0];
            discover
                .read(j, peek, data, true)
                .map_err(|e| e.about(&format!("input '{}' of instance {i}", spec.name)))?;
        }
        rows += 1;
        next = j.array_step().or_syntax().map_err(at)?;
    }
    if rows == 0 {
        return Err("'instances' is empty".to_owned());
    }
    specs
        .iter()
        .zip(buffers)
        .map(|(spec, (discover, data))| {
            let mut shape = vec![rows];
            shape.extend(discover.shape());
            Tensor::new(&spec.name, shape, data).map_err(|e| format!("input '{}': {e}", spec.name))
        })
        .collect()
}

/// The column format: `inputs` is the one input's value, or an object of named inputs,
/// each a tensor of any shape.
fn columns_in(
    j: &mut Jiter,
    signature: &Signature,
    body_len: usize,
) -> Result<Vec<Tensor>, String> {
    let specs = &signature.inputs;
    let at = |e: ReadError| e.about("'inputs'");
    let mut buffers = buffers(signature, room(body_len, specs.len()))?;
    let peek = j.peek().or_syntax().map_err(at)?;
    let named = peek == Peek::Object && !json::is_b64_object(j);
    if !named {
        let [spec] = specs.as_slice() else {
            j.next_skip().or_syntax().map_err(at)?;
            return Err(format!(
                "'inputs' must be an object of named inputs ({}), as the model takes several",
                super::names(specs.iter().map(|s| s.name.as_str()))
            ));
        };
        let (discover, data) = &mut buffers[0];
        discover
            .read(j, peek, data, true)
            .map_err(|e| e.about(&format!("input '{}'", spec.name)))?;
    } else {
        let mut seen = vec![false; specs.len()];
        let mut key = j.known_object().or_syntax().map_err(at)?.map(str::to_owned);
        while let Some(k) = key {
            let index = specs.iter().position(|s| s.name == k).ok_or_else(|| {
                if specs.len() == 1 {
                    format!(
                        "'inputs' must be the value of input '{}' or an object holding it, not an object with '{k}'",
                        specs[0].name
                    )
                } else {
                    format!("'inputs' has unknown input '{k}'")
                }
            })?;
            if std::mem::replace(&mut seen[index], true) {
                return Err(format!("'inputs' gives input '{k}' twice"));
            }
            let peek = j.peek().or_syntax().map_err(at)?;
            let (discover, data) = &mut buffers[index];
            discover
                .read(j, peek, data, true)
                .map_err(|e| e.about(&format!("input '{k}'")))?;
            key = j.next_key().or_syntax().map_err(at)?.map(str::to_owned);
        }
        if let Some(missing) = seen.iter().position(|s| !s) {
            return Err(format!("'inputs' lacks input '{}'", specs[missing].name));
        }
    }
    specs
        .iter()
        .zip(buffers)
        .map(|(spec, (discover, data))| {
            Tensor::new(&spec.name, discover.shape(), data)
                .map_err(|e| format!("input '{}': {e}", spec.name))
        })
        .collect()
}

/// How TF Serving writes an output: `NaN`/`Infinity` tokens, and BYTES as `{"b64": ...}`
/// when its name ends in `_bytes` (or when it is not UTF-8 text).
/// Reads `bytes` as a predict request against `signature` the way `post` does, fits the
/// tensors to it, and writes them back in both formats.
pub(super) fn fuzz(bytes: &[u8], signature: &Signature) {
    let Ok((tensors, _)) = parse_request(bytes, signature) else {
        return;
    };
    let Ok(tensors) = super::conform_inputs(signature, tensors) else {
        return;
    };
    let _ = rows(&tensors);
    let _ = columns(&tensors);
}

fn style(output: &str) -> Style {
    Style {
        nonfinite_tokens: true,
        bytes_b64: output.ends_with("_bytes"),
        b64_fallback: true,
    }
}

fn unwritable(e: json::Unwritable) -> ApiError {
    ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
}

/// `predictions`: one element per example; an object of named outputs when there are
/// several. Every output must share the batch dimension.
fn rows(outputs: &[Tensor]) -> Result<Vec<u8>, ApiError> {
    let batch = outputs.first().and_then(|t| t.shape.first().copied());
    if batch.is_none() || outputs.iter().any(|t| t.shape.first().copied() != batch) {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the predictor's outputs differ in their first dimension, so they cannot be given as rows; ask with 'inputs' (column format)",
        ));
    }
    let rows = batch.unwrap_or(0) as usize;
    let mut out = json::Out::with_capacity(64 + rows * 24 * outputs.len());
    out.raw("{\"predictions\":[");
    // Elements per row of each output, and where each output's next row starts.
    let per_row: Vec<usize> = outputs
        .iter()
        .map(|t| t.shape[1..].iter().product::<u64>() as usize)
        .collect();
    for i in 0..rows {
        if i > 0 {
            out.raw(",");
        }
        match outputs {
            [only] => {
                out.nested(
                    &only.data,
                    &only.shape[1..],
                    i * per_row[0],
                    style(&only.name),
                )
                .map_err(unwritable)?;
            }
            many => {
                out.raw("{");
                for (k, t) in many.iter().enumerate() {
                    if k > 0 {
                        out.raw(",");
                    }
                    out.key(&t.name);
                    out.nested(&t.data, &t.shape[1..], i * per_row[k], style(&t.name))
                        .map_err(unwritable)?;
                }
                out.raw("}");
            }
        }
    }
    out.raw("]}");
    Ok(out.buf)
}

/// `outputs`: the one output's value, or an object of named outputs.
fn columns(outputs: &[Tensor]) -> Result<Vec<u8>, ApiError> {
    let size: usize = outputs.iter().map(|t| t.data.len() * 24).sum();
    let mut out = json::Out::with_capacity(64 + size);
    out.raw("{\"outputs\":");
    match outputs {
        [only] => {
            out.nested(&only.data, &only.shape, 0, style(&only.name))
                .map_err(unwritable)?;
        }
        many => {
            out.raw("{");
            for (k, t) in many.iter().enumerate() {
                if k > 0 {
                    out.raw(",");
                }
                out.key(&t.name);
                out.nested(&t.data, &t.shape, 0, style(&t.name))
                    .map_err(unwritable)?;
            }
            out.raw("}");
        }
    }
    out.raw("}");
    Ok(out.buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::tensor::Data;

    fn signature(inputs: &[(&str, &str, &[i64])]) -> Signature {
        Signature {
            inputs: inputs
                .iter()
                .map(|(n, d, s)| TensorSpec {
                    name: (*n).into(),
                    datatype: (*d).into(),
                    shape: s.to_vec(),
                })
                .collect(),
            outputs: Vec::new(),
        }
    }

    #[test]
    fn urls() {
        let t = parse_target("cancer/versions/3:predict").unwrap();
        assert_eq!(
            t,
            Target {
                name: "cancer".into(),
                selector: Selector::Version(3),
                rest: "predict".into()
            }
        );
        let t = parse_target("cancer/labels/stable/metadata").unwrap();
        assert_eq!(t.selector, Selector::Label("stable".into()));
        assert_eq!(t.rest, "metadata");
        assert_eq!(parse_target("cancer").unwrap().selector, Selector::Default);
        assert_eq!(
            parse_target("cancer/versions/x").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            parse_target("cancer/other").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            parse_target("cancer/metadata:predict").unwrap_err().status,
            StatusCode::NOT_FOUND
        );
    }

    fn parse(request: &str, sig: &Signature) -> Result<(Vec<Tensor>, Format), ApiError> {
        parse_request(request.as_bytes(), sig)
    }

    fn answer(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn row_format_with_one_input_takes_plain_values_or_named_objects() {
        let sig = signature(&[("x", "FP64", &[-1, 2])]);
        let plain = r#"{"instances": [[1.0, 2.0], [3.0, 4.0]]}"#;
        let named = r#"{"instances": [{"x": [1.0, 2.0]}, {"x": [3, 4.0]}]}"#;
        for request in [plain, named] {
            let (tensors, format) = parse(request, &sig).unwrap();
            assert_eq!(format, Format::Row);
            assert_eq!(tensors[0].shape, vec![2, 2]);
            assert_eq!(tensors[0].data, Data::Fp64(vec![1.0, 2.0, 3.0, 4.0]));
        }
    }

    #[test]
    fn column_format_with_several_inputs() {
        let sig = signature(&[("a", "INT64", &[-1]), ("b", "BYTES", &[-1])]);
        let (tensors, format) = parse(
            r#"{"inputs": {"a": [1, 2], "b": ["x", {"b64": "eQ=="}]}}"#,
            &sig,
        )
        .unwrap();
        assert_eq!(format, Format::Column);
        assert_eq!(
            tensors[1].data,
            Data::Bytes(vec![b"x".to_vec(), b"y".to_vec()])
        );
        let e = parse(r#"{"inputs": {"a": [1, 2]}}"#, &sig).unwrap_err();
        assert_eq!(e.message, "'inputs' lacks input 'b'");
    }

    #[test]
    fn tf_serving_tokens_and_b64_values() {
        let sig = signature(&[("x", "FP64", &[-1])]);
        let (tensors, _) = parse(r#"{"instances": [NaN, Infinity, -Infinity, 1]}"#, &sig).unwrap();
        let Data::Fp64(v) = &tensors[0].data else {
            panic!()
        };
        assert!(v[0].is_nan() && v[1] == f64::INFINITY && v[2] == f64::NEG_INFINITY);
        let sig = signature(&[("image_bytes", "BYTES", &[-1])]);
        let e = parse(
            r#"{"instances": [{"b64": "/9j/"}, {"image_bytes": {"b64": "AAE="}}]}"#,
            &sig,
        )
        .unwrap_err();
        assert_eq!(
            e.message,
            "instance 1 names its inputs, but instance 0 does not; give every instance alike"
        );
    }

    #[test]
    fn b64_rows_of_one_bytes_input() {
        let sig = signature(&[("image_bytes", "BYTES", &[-1])]);
        let (tensors, _) =
            parse(r#"{"instances": [{"b64": "/9j/"}, {"b64": "AAE"}]}"#, &sig).unwrap();
        assert_eq!(tensors[0].shape, [2]);
        assert_eq!(
            tensors[0].data,
            Data::Bytes(vec![vec![0xff, 0xd8, 0xff], vec![0, 1]])
        );
        let (tensors, _) = parse(
            r#"{"instances": [{"image_bytes": {"b64": "/9j/"}}, {"image_bytes": "text"}]}"#,
            &sig,
        )
        .unwrap();
        assert_eq!(
            tensors[0].data,
            Data::Bytes(vec![vec![0xff, 0xd8, 0xff], b"text".to_vec()])
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let sig = signature(&[("x", "FP64", &[-1, 2])]);
        let cases = [
            ("{}", "missing 'instances' or 'inputs'"),
            (r#"{"instances": []}"#, "'instances' is empty"),
            (
                r#"{"instances": 3}"#,
                "'instances' must be a list, one element per example",
            ),
            (
                r#"{"instances": [[1.0]], "inputs": [[1.0]]}"#,
                "a request has either",
            ),
            (
                r#"{"instances": [[1.0, 2.0], [1.0]]}"#,
                "input 'x' of instance 1: it differs in shape from the instances before it",
            ),
            (
                r#"{"instances": [[[1.0, 2.0], [1.0]]]}"#,
                "input 'x' of instance 0: it is ragged: its lists at depth 1 differ in length or nesting",
            ),
            (
                r#"{"instances": [["a", 2.0]]}"#,
                "input 'x' of instance 0: element 0 is \"a\", not FP64",
            ),
            (
                r#"{"signature_name": "other", "instances": [[1.0, 2.0]]}"#,
                "signature 'other' not found",
            ),
            (r#"{"instance": [[1.0, 2.0]]}"#, "unknown key 'instance'"),
            (
                r#"{"instances": [[1.0, 2.0]]} x"#,
                "the request body is not valid JSON",
            ),
            ("[1, 2]", "the request body must be a JSON object"),
            (
                r#"{"instances": [{"x": [1.0, 2.0], "y": 1}]}"#,
                "instance 0 has unknown input 'y'",
            ),
        ];
        for (request, expected) in cases {
            let e = parse(request, &sig).unwrap_err();
            assert_eq!(e.status, StatusCode::BAD_REQUEST);
            assert!(e.message.starts_with(expected), "{request}: {}", e.message);
        }
    }

    #[test]
    fn answers_in_the_format_asked() {
        let outputs = vec![
            Tensor {
                name: "probability".into(),
                shape: vec![2],
                data: Data::Fp64(vec![0.25, f64::NAN]),
            },
            Tensor {
                name: "label".into(),
                shape: vec![2],
                data: Data::Bytes(vec![b"B".to_vec(), b"M".to_vec()]),
            },
        ];
        assert_eq!(
            answer(rows(&outputs).unwrap()),
            r#"{"predictions":[{"probability":0.25,"label":"B"},{"probability":NaN,"label":"M"}]}"#
        );
        assert_eq!(
            answer(columns(&outputs).unwrap()),
            r#"{"outputs":{"probability":[0.25,NaN],"label":["B","M"]}}"#
        );
        assert_eq!(
            answer(rows(&outputs[1..]).unwrap()),
            r#"{"predictions":["B","M"]}"#
        );
        let image = Tensor {
            name: "image_bytes".into(),
            shape: vec![1, 1],
            data: Data::Bytes(vec![b"hi".to_vec()]),
        };
        assert_eq!(
            answer(rows(&[image]).unwrap()),
            r#"{"predictions":[[{"b64":"aGk="}]]}"#
        );
    }
}
