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
//! `predictions` or `outputs` in the same format. Errors are `{"error": "..."}`.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{Map, Value, json};

use crate::models::{Signature, TensorSpec};

use super::registry::{Selector, Served};
use super::tensor::{Datatype, Tensor};
use super::{ApiError, AppState, body, json_object, observe, predict};

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
            other => Err(ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!(":{other} takes POST"),
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
            json!({
                "version": v.meta.version.to_string(),
                "state": "AVAILABLE",
                "status": { "error_code": "OK", "error_message": "" }
            })
        })
        .collect();
    Ok(json!({ "model_version_status": statuses }))
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
    read: Result<Bytes, BytesRejection>,
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
            return ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                format!("/v1/models/{path} takes GET"),
            )
            .into_response();
        }
        other => {
            return ApiError::not_found(format!("no method ':{other}'; use :predict"))
                .into_response();
        }
    }
    let result = async {
        let request =
            json_object(&body(&state, read).map_err(|e| (None, e))?).map_err(|e| (None, e))?;
        let mut format = Format::Row;
        let (served, outputs) = predict(&state, &target.name, &target.selector, |served| {
            let (inputs, f) = parse_request(&request, &served.meta.signature)?;
            format = f;
            Ok(inputs)
        })
        .await?;
        let version = Some(served.meta.version);
        let answer = match format {
            Format::Row => rows(&outputs),
            Format::Column => Ok(columns(&outputs)),
        };
        answer.map_err(|e| (version, e)).map(|a| (version, a))
    }
    .await;
    let (version, response) = match result {
        Ok((version, answer)) => (version, Json(answer).into_response()),
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

/// The inputs of a predict request, and the format it used.
fn parse_request(
    request: &Map<String, Value>,
    signature: &Signature,
) -> Result<(Vec<Tensor>, Format), ApiError> {
    if let Some(name) = request.get("signature_name") {
        match name.as_str() {
            Some("" | SIGNATURE) => {}
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "signature '{other}' not found; the model has only '{SIGNATURE}'"
                )));
            }
            None => return Err(ApiError::bad_request("'signature_name' must be a string")),
        }
    }
    for key in request.keys() {
        if !matches!(key.as_str(), "signature_name" | "instances" | "inputs") {
            return Err(ApiError::bad_request(format!(
                "unknown key '{key}'; a predict request has 'instances' or 'inputs' (and 'signature_name')"
            )));
        }
    }
    match (request.get("instances"), request.get("inputs")) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "a request has either 'instances' (row format) or 'inputs' (column format), not both",
        )),
        (None, None) => Err(ApiError::bad_request("missing 'instances' or 'inputs'")),
        (Some(instances), None) => Ok((parse_instances(instances, signature)?, Format::Row)),
        (None, Some(inputs)) => Ok((parse_inputs(inputs, signature)?, Format::Column)),
    }
}

fn datatype(spec: &TensorSpec) -> Result<Datatype, ApiError> {
    Datatype::parse(&spec.datatype).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the model's signature is damaged: {e}"),
        )
    })
}

/// The row format: `instances` is a list with one element per example.
fn parse_instances(instances: &Value, signature: &Signature) -> Result<Vec<Tensor>, ApiError> {
    let Value::Array(rows) = instances else {
        return Err(ApiError::bad_request(
            "'instances' must be a list, one element per example",
        ));
    };
    if rows.is_empty() {
        return Err(ApiError::bad_request("'instances' is empty"));
    }
    let single = match signature.inputs.as_slice() {
        [only] => Some(only),
        _ => None,
    };
    let named = |row: &Value| {
        row.as_object()
            .filter(|o| single.is_none_or(|s| o.len() == 1 && o.contains_key(&s.name)))
            .is_some()
    };
    // One input: each element is its value, or an object naming it.
    if let Some(spec) = single
        && !rows.iter().all(named)
    {
        let refs: Vec<&Value> = rows.iter().collect();
        return Ok(vec![
            Tensor::from_rows(&spec.name, &refs, datatype(spec)?).map_err(ApiError::bad_request)?,
        ]);
    }
    let mut tensors = Vec::new();
    for spec in &signature.inputs {
        let mut values = Vec::with_capacity(rows.len());
        for (i, row) in rows.iter().enumerate() {
            let object = row.as_object().ok_or_else(|| {
                ApiError::bad_request(format!(
                    "instance {i} must be an object of named inputs ({}), as the model takes several",
                    super::names(signature.inputs.iter().map(|s| s.name.as_str()))
                ))
            })?;
            if let Some(key) = object
                .keys()
                .find(|k| !signature.inputs.iter().any(|s| &&s.name == k))
            {
                return Err(ApiError::bad_request(format!(
                    "instance {i} has unknown input '{key}'"
                )));
            }
            values.push(object.get(&spec.name).ok_or_else(|| {
                ApiError::bad_request(format!("instance {i} lacks input '{}'", spec.name))
            })?);
        }
        tensors.push(
            Tensor::from_rows(&spec.name, &values, datatype(spec)?)
                .map_err(ApiError::bad_request)?,
        );
    }
    Ok(tensors)
}

/// The column format: `inputs` is the one input's value, or an object of named inputs.
fn parse_inputs(inputs: &Value, signature: &Signature) -> Result<Vec<Tensor>, ApiError> {
    if let [spec] = signature.inputs.as_slice() {
        let value = match inputs.as_object() {
            Some(o) if o.len() == 1 && o.contains_key(&spec.name) => &o[&spec.name],
            _ => inputs,
        };
        if value.is_object() {
            return Err(ApiError::bad_request(format!(
                "'inputs' must be the value of input '{}' or an object holding it",
                spec.name
            )));
        }
        return Ok(vec![
            Tensor::from_nested(&spec.name, value, datatype(spec)?)
                .map_err(ApiError::bad_request)?,
        ]);
    }
    let Some(object) = inputs.as_object() else {
        return Err(ApiError::bad_request(format!(
            "'inputs' must be an object of named inputs ({}), as the model takes several",
            super::names(signature.inputs.iter().map(|s| s.name.as_str()))
        )));
    };
    if let Some(key) = object
        .keys()
        .find(|k| !signature.inputs.iter().any(|s| &&s.name == k))
    {
        return Err(ApiError::bad_request(format!(
            "'inputs' has unknown input '{key}'"
        )));
    }
    signature
        .inputs
        .iter()
        .map(|spec| {
            let value = object.get(&spec.name).ok_or_else(|| {
                ApiError::bad_request(format!("'inputs' lacks input '{}'", spec.name))
            })?;
            Tensor::from_nested(&spec.name, value, datatype(spec)?).map_err(ApiError::bad_request)
        })
        .collect()
}

/// `predictions`: one element per example; an object of named outputs when there are
/// several. Every output must share the batch dimension.
fn rows(outputs: &[Tensor]) -> Result<Value, ApiError> {
    let batch = outputs.first().and_then(|t| t.shape.first().copied());
    if outputs.iter().any(|t| t.shape.first().copied() != batch) {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the predictor's outputs differ in their first dimension, so they cannot be given as rows; ask with 'inputs' (column format)",
        ));
    }
    let predictions = match outputs {
        [only] => Value::Array(only.rows()),
        many => {
            let columns: Vec<Vec<Value>> = many.iter().map(Tensor::rows).collect();
            let n = columns.first().map_or(0, Vec::len);
            Value::Array(
                (0..n)
                    .map(|i| {
                        Value::Object(
                            many.iter()
                                .zip(&columns)
                                .map(|(t, col)| (t.name.clone(), col[i].clone()))
                                .collect(),
                        )
                    })
                    .collect(),
            )
        }
    };
    Ok(json!({ "predictions": predictions }))
}

/// `outputs`: the one output's value, or an object of named outputs.
fn columns(outputs: &[Tensor]) -> Value {
    let outputs = match outputs {
        [only] => only.nested(),
        many => Value::Object(many.iter().map(|t| (t.name.clone(), t.nested())).collect()),
    };
    json!({ "outputs": outputs })
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

    #[test]
    fn row_format_with_one_input_takes_plain_values_or_named_objects() {
        let sig = signature(&[("x", "FP64", &[-1, 2])]);
        let plain = json!({"instances": [[1.0, 2.0], [3.0, 4.0]]});
        let named = json!({"instances": [{"x": [1.0, 2.0]}, {"x": [3.0, 4.0]}]});
        for request in [plain, named] {
            let (tensors, format) = parse_request(request.as_object().unwrap(), &sig).unwrap();
            assert_eq!(format, Format::Row);
            assert_eq!(tensors[0].shape, vec![2, 2]);
            assert_eq!(tensors[0].data, Data::Fp64(vec![1.0, 2.0, 3.0, 4.0]));
        }
    }

    #[test]
    fn column_format_with_several_inputs() {
        let sig = signature(&[("a", "INT64", &[-1]), ("b", "BYTES", &[-1])]);
        let request = json!({"inputs": {"a": [1, 2], "b": ["x", "y"]}});
        let (tensors, format) = parse_request(request.as_object().unwrap(), &sig).unwrap();
        assert_eq!(format, Format::Column);
        assert_eq!(tensors[1].data, Data::Bytes(vec!["x".into(), "y".into()]));
        let missing = json!({"inputs": {"a": [1, 2]}});
        let e = parse_request(missing.as_object().unwrap(), &sig).unwrap_err();
        assert_eq!(e.message, "'inputs' lacks input 'b'");
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let sig = signature(&[("x", "FP64", &[-1, 2])]);
        let cases = [
            (json!({}), "missing 'instances' or 'inputs'"),
            (json!({"instances": [], }), "'instances' is empty"),
            (
                json!({"instances": 3}),
                "'instances' must be a list, one element per example",
            ),
            (
                json!({"instances": [[1.0]], "inputs": [[1.0]]}),
                "a request has either",
            ),
            (
                json!({"instances": [[1.0, 2.0], [1.0]]}),
                "input 'x' is ragged",
            ),
            (
                json!({"instances": [["a", 2.0]]}),
                "input 'x': element 0 is \"a\", not FP64",
            ),
            (
                json!({"signature_name": "other", "instances": [[1.0, 2.0]]}),
                "signature 'other' not found",
            ),
            (json!({"instance": [[1.0, 2.0]]}), "unknown key 'instance'"),
        ];
        for (request, expected) in cases {
            let e = parse_request(request.as_object().unwrap(), &sig).unwrap_err();
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
                data: Data::Fp64(vec![0.25, 0.75]),
            },
            Tensor {
                name: "label".into(),
                shape: vec![2],
                data: Data::Bytes(vec!["B".into(), "M".into()]),
            },
        ];
        assert_eq!(
            rows(&outputs).unwrap(),
            json!({"predictions": [{"probability": 0.25, "label": "B"}, {"probability": 0.75, "label": "M"}]})
        );
        assert_eq!(
            columns(&outputs),
            json!({"outputs": {"probability": [0.25, 0.75], "label": ["B", "M"]}})
        );
        assert_eq!(
            rows(&outputs[..1]).unwrap(),
            json!({"predictions": [0.25, 0.75]})
        );
    }
}
