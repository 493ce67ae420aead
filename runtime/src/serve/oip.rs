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
//! Tensors travel as `{name, shape, datatype, data}`, `data` flat in row-major order or
//! nested exactly as `shape` says. A request may also carry `id`, `parameters`, `outputs`,
//! and `model_name` and `model_version` as KServe's SDK sends them (they must agree with
//! the URL). Numeric inputs of another type than the model's are converted when nothing is
//! lost. Also the binary tensor data extension that Triton's clients use by default: with
//! an `Inference-Header-Content-Length` header, the body is the JSON header followed by
//! raw little-endian tensor bytes, each input marked `"parameters": {"binary_data_size":
//! n}`; outputs come back the same way when asked (`binary_data` on an output, or
//! `binary_data_output` on the request). JSON answers cannot hold NaN, infinities or
//! BYTES that are not UTF-8: such an output is a 500 that says to ask for it as binary.

use std::sync::Arc;
use std::time::Instant;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiter::{Jiter, Peek};
use serde_json::{Value, json};

use crate::models::TensorSpec;

use super::body::Body;
use super::json::{self, OrSyntax, ReadError, Style};
use super::registry::{Selector, Served};
use super::tensor::{Data, Datatype, Tensor, declared_shape, element_count};
use super::{ApiError, AppState, observe, predict};

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
) -> Response {
    readiness(&state, &name, &Selector::Default)
}

pub(super) async fn version_ready(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    match version_selector(&name, &version) {
        Ok(selector) => readiness(&state, &name, &selector),
        Err(e) => e.into_response(),
    }
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

/// A version is ready when it serves now or can load on its next request; one whose last
/// load failed is not (503, as KServe answers, with `"ready": false`).
fn readiness(state: &AppState, name: &str, selector: &Selector) -> Response {
    match state.registry.route(name, selector) {
        Ok(served) => {
            let ready = !served.load_state().is_failed();
            let status = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            (status, Json(json!({ "name": name, "ready": ready }))).into_response()
        }
        Err(e) => ApiError::from(e).into_response(),
    }
}

pub(super) async fn infer(
    State(state): State<Arc<AppState>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Response {
    run_infer(&state, &name, Ok(None), &headers, body).await
}

pub(super) async fn version_infer(
    State(state): State<Arc<AppState>>,
    Path((name, version)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Response {
    let version = version
        .parse()
        .map(Some)
        .map_err(|_| ApiError::not_found(format!("model '{name}' has no version '{version}'")));
    run_infer(&state, &name, version, &headers, body).await
}

async fn run_infer(
    state: &AppState,
    name: &str,
    url_version: Result<Option<u64>, ApiError>,
    headers: &HeaderMap,
    body: Result<Body, ApiError>,
) -> Response {
    let started = Instant::now();
    let result = async {
        let url_version = url_version.map_err(|e| (None, e))?;
        let (bytes, mut budget) = body.map_err(|e| (None, e))?.split();
        let header_len = header_length(headers, bytes.len()).map_err(|e| (None, e))?;
        let mut request = Request::parse(&bytes, header_len).map_err(|e| (None, e))?;
        // The tensors hold what the predictor needs; the body's bytes go now.
        drop(bytes);
        let selector = request.selector(name, url_version).map_err(|e| (None, e))?;
        let inputs = std::mem::take(&mut request.inputs);
        let (served, outputs) =
            predict(state, name, &selector, &mut budget, |_| Ok(inputs)).await?;
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

/// Where the JSON header ends: at `Inference-Header-Content-Length`, else at the end.
fn header_length(headers: &HeaderMap, body_len: usize) -> Result<usize, ApiError> {
    match headers.get(HEADER_LENGTH) {
        None => Ok(body_len),
        Some(v) => v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .filter(|&n| n <= body_len)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "Inference-Header-Content-Length must be a number of bytes no larger than the body ({body_len})"
                ))
            }),
    }
}

/// An inference request, its tensors read and typed as the client declared them.
#[derive(Debug)]
struct Request {
    id: Option<String>,
    model_name: Option<String>,
    model_version: Option<String>,
    /// `parameters.binary_data_output`.
    binary_output: bool,
    inputs: Vec<Tensor>,
    /// The outputs asked for, in order; every output when `None`.
    outputs: Option<Vec<Wanted>>,
}

/// One requested output: its name and, when it says, whether it wants binary data.
#[derive(Debug)]
struct Wanted {
    name: String,
    binary: Option<bool>,
}

/// An input while its object is being read: `data` waits, on a copy of the parser, for
/// the name, shape and datatype when it comes before them.
struct PendingInput<'j> {
    name: Option<String>,
    dims: Option<Vec<i64>>,
    datatype: Option<Datatype>,
    binary_size: Option<u64>,
    data: Option<PendingData<'j>>,
}

enum PendingData<'j> {
    Read(Data),
    Later(Jiter<'j>),
}

impl Request {
    /// Reads the JSON header (`bytes[..header_len]`) and the binary data after it.
    fn parse(bytes: &[u8], header_len: usize) -> Result<Request, ApiError> {
        let (header, binary) = bytes.split_at(header_len);
        let mut j = json::parser(header);
        Request::read(&mut j, header.len(), binary).map_err(ApiError::bad_request)
    }

    fn read(j: &mut Jiter, header_len: usize, binary: &[u8]) -> Result<Request, String> {
        let syntax = |e: ReadError| e.about("the inference request");
        if j.peek().or_syntax().map_err(syntax)? != Peek::Object {
            return Err("the inference request must be a JSON object".to_owned());
        }
        let mut request = Request {
            id: None,
            model_name: None,
            model_version: None,
            binary_output: false,
            inputs: Vec::new(),
            outputs: None,
        };
        let mut seen: Vec<&'static str> = Vec::new();
        let mut pending: Option<Vec<PendingInput>> = None;
        let mut key = j.known_object().or_syntax().map_err(syntax)?.map(Key::of);
        while let Some(k) = key {
            let name = k.name();
            if seen.contains(&name) {
                return Err(format!("'{name}' is given twice"));
            }
            seen.push(name);
            match k {
                Key::Id => request.id = Some(string(j, "'id'")?),
                Key::ModelName => request.model_name = Some(string(j, "'model_name'")?),
                Key::ModelVersion => request.model_version = version_text(j)?,
                Key::Parameters => request.binary_output = parameters(j)?,
                Key::Inputs => pending = Some(inputs(j, header_len)?),
                Key::Outputs => request.outputs = Some(outputs(j)?),
                Key::Unknown(other) => {
                    return Err(format!(
                        "unknown key '{other}'; an inference request has 'inputs' and optionally 'id', 'parameters', 'outputs', 'model_name' and 'model_version'"
                    ));
                }
            }
            key = j.next_key().or_syntax().map_err(syntax)?.map(Key::of);
        }
        j.finish().or_syntax().map_err(syntax)?;
        let Some(pending) = pending else {
            return Err("missing 'inputs'".to_owned());
        };
        request.inputs = finish_inputs(pending, header_len, binary)?;
        Ok(request)
    }

    /// The version to serve: the URL's, or the body's `model_version` when only it names
    /// one; they must agree, as must the body's `model_name` with the URL's model.
    fn selector(&self, name: &str, url_version: Option<u64>) -> Result<Selector, ApiError> {
        if let Some(body_name) = &self.model_name
            && !body_name.is_empty()
            && body_name != name
        {
            return Err(ApiError::bad_request(format!(
                "the body names model '{body_name}', but the URL names '{name}'"
            )));
        }
        let body_version = match (self.model_version.as_deref(), url_version) {
            (None | Some(""), _) => None,
            (Some(text), url) => match (text.parse::<u64>(), url) {
                (Ok(v), _) => Some(v),
                (Err(_), Some(url)) => {
                    return Err(ApiError::bad_request(format!(
                        "the body names version '{text}', but the URL names version {url}"
                    )));
                }
                (Err(_), None) => {
                    return Err(ApiError::not_found(format!(
                        "model '{name}' has no version '{text}'"
                    )));
                }
            },
        };
        match (url_version, body_version) {
            (Some(url), Some(body)) if url != body => Err(ApiError::bad_request(format!(
                "the body names version {body}, but the URL names version {url}"
            ))),
            (Some(v), _) | (None, Some(v)) => Ok(Selector::Version(v)),
            (None, None) => Ok(Selector::Default),
        }
    }

    /// Which outputs to give, in order, and whether each is binary.
    fn wanted(&self, served: &Served) -> Result<Vec<(String, bool)>, ApiError> {
        let outputs = &served.meta.signature.outputs;
        let Some(requested) = &self.outputs else {
            return Ok(outputs
                .iter()
                .map(|s| (s.name.clone(), self.binary_output))
                .collect());
        };
        requested
            .iter()
            .map(|want| {
                if !outputs.iter().any(|s| s.name == want.name) {
                    return Err(ApiError::bad_request(format!(
                        "the model has no output '{}'; it gives {}",
                        want.name,
                        super::names(outputs.iter().map(|s| s.name.as_str()))
                    )));
                }
                Ok((want.name.clone(), want.binary.unwrap_or(self.binary_output)))
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
        let version = served.meta.version;
        let style = Style {
            nonfinite_tokens: false,
            bytes_b64: false,
            b64_fallback: false,
        };
        let mut out = json::Out::with_capacity(256);
        let mut binary = Vec::new();
        out.raw("{");
        out.key("model_name");
        out.string(name);
        out.raw(",");
        out.key("model_version");
        out.string(&version.to_string());
        if let Some(id) = &self.id {
            out.raw(",");
            out.key("id");
            out.string(id);
        }
        out.raw(",");
        out.key("outputs");
        out.raw("[");
        for (i, (want, as_binary)) in wanted.iter().enumerate() {
            let tensor = outputs
                .iter()
                .find(|t| &t.name == want)
                .expect("outputs were checked against the signature");
            if i > 0 {
                out.raw(",");
            }
            out.raw("{");
            out.key("name");
            out.string(&tensor.name);
            out.raw(",");
            out.key("datatype");
            out.string(tensor.data.datatype().name());
            out.raw(",");
            out.key("shape");
            out.shape(&tensor.shape);
            out.raw(",");
            if *as_binary {
                let before = binary.len();
                encode(&tensor.data, &mut binary);
                out.key("parameters");
                out.raw("{");
                out.key("binary_data_size");
                out.uint((binary.len() - before) as u64);
                out.raw("}");
            } else {
                out.key("data");
                out.flat(&tensor.data, 0..tensor.data.len(), style)
                    .map_err(|e| {
                        ApiError::new(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!(
                                "model '{name}' version {version} gave output '{}' whose {e}; ask for it as binary data (\"parameters\": {{\"binary_data\": true}})",
                                tensor.name
                            ),
                        )
                    })?;
            }
            out.raw("}");
        }
        out.raw("]}");
        let text = out.buf;
        if !wanted.iter().any(|(_, b)| *b) {
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

/// The keys of an inference request.
enum Key {
    Id,
    ModelName,
    ModelVersion,
    Parameters,
    Inputs,
    Outputs,
    Unknown(String),
}

impl Key {
    fn of(key: &str) -> Key {
        match key {
            "id" => Key::Id,
            "model_name" => Key::ModelName,
            "model_version" => Key::ModelVersion,
            "parameters" => Key::Parameters,
            "inputs" => Key::Inputs,
            "outputs" => Key::Outputs,
            other => Key::Unknown(other.to_owned()),
        }
    }

    fn name(&self) -> &'static str {
        match self {
            Key::Id => "id",
            Key::ModelName => "model_name",
            Key::ModelVersion => "model_version",
            Key::Parameters => "parameters",
            Key::Inputs => "inputs",
            Key::Outputs => "outputs",
            Key::Unknown(_) => "",
        }
    }
}

/// A string value, or a message naming `what` it should have been.
fn string(j: &mut Jiter, what: &str) -> Result<String, String> {
    match j.peek().or_syntax().map_err(|e| e.about(what))? {
        Peek::String => Ok(j
            .known_str()
            .or_syntax()
            .map_err(|e| e.about(what))?
            .to_owned()),
        _ => Err(format!("{what} must be a string")),
    }
}

/// `model_version`: a string as KServe sends it (a number is taken too), or null.
fn version_text(j: &mut Jiter) -> Result<Option<String>, String> {
    let what = "'model_version'";
    let peek = j.peek().or_syntax().map_err(|e| e.about(what))?;
    match peek {
        Peek::Null => {
            j.known_null().or_syntax().map_err(|e| e.about(what))?;
            Ok(None)
        }
        Peek::String => Ok(Some(string(j, what)?)),
        p if p.is_num() => {
            let text = j
                .known_number_bytes(p)
                .or_syntax()
                .map_err(|e| e.about(what))?;
            Ok(Some(String::from_utf8_lossy(text).into_owned()))
        }
        _ => Err(format!("{what} must be a string")),
    }
}

/// A boolean parameter: JSON `true`/`false`.
fn boolean(j: &mut Jiter, what: &str) -> Result<bool, String> {
    match j.peek().or_syntax().map_err(|e| e.about(what))? {
        p @ (Peek::True | Peek::False) => {
            Ok(j.known_bool(p).or_syntax().map_err(|e| e.about(what))?)
        }
        _ => Err(format!("{what} must be true or false")),
    }
}

/// The request's `parameters`: `binary_data_output`; other parameters are ignored, as
/// Triton ignores those it does not know.
fn parameters(j: &mut Jiter) -> Result<bool, String> {
    let what = "'parameters'";
    let at = |e: ReadError| e.about(what);
    if j.peek().or_syntax().map_err(at)? != Peek::Object {
        return Err(format!("{what} must be an object"));
    }
    let mut binary = false;
    let mut key = j.known_object().or_syntax().map_err(at)?.map(str::to_owned);
    while let Some(k) = key {
        if k == "binary_data_output" {
            binary = boolean(j, "'binary_data_output'")?;
        } else {
            j.next_skip().or_syntax().map_err(at)?;
        }
        key = j.next_key().or_syntax().map_err(at)?.map(str::to_owned);
    }
    Ok(binary)
}

/// `inputs`: a non-empty list of tensors. Data that comes after its name, shape and
/// datatype is read at once; data before them waits on a copy of the parser.
fn inputs<'j>(j: &mut Jiter<'j>, body_len: usize) -> Result<Vec<PendingInput<'j>>, String> {
    let at = |e: ReadError| e.about("'inputs'");
    let peek = j.peek().or_syntax().map_err(at)?;
    let not_list = || "'inputs' must be a non-empty list of tensors".to_owned();
    if peek != Peek::Array {
        return Err(not_list());
    }
    let mut list = Vec::new();
    let mut next = j.known_array().or_syntax().map_err(at)?;
    while let Some(peek) = next {
        let i = list.len();
        if peek != Peek::Object {
            return Err(format!(
                "inputs[{i}] must be an object with name, shape, datatype and data"
            ));
        }
        list.push(input(j, i, body_len)?);
        next = j.array_step().or_syntax().map_err(at)?;
    }
    if list.is_empty() {
        return Err(not_list());
    }
    Ok(list)
}

fn input<'j>(j: &mut Jiter<'j>, i: usize, body_len: usize) -> Result<PendingInput<'j>, String> {
    let mut p = PendingInput {
        name: None,
        dims: None,
        datatype: None,
        binary_size: None,
        data: None,
    };
    let label = |p: &PendingInput| match &p.name {
        Some(name) => format!("input '{name}'"),
        None => format!("inputs[{i}]"),
    };
    let mut key = j
        .known_object()
        .or_syntax()
        .map_err(|e| e.about(&label(&p)))?
        .map(str::to_owned);
    while let Some(k) = key {
        let what = label(&p);
        let twice = || format!("{what} has '{k}' twice");
        match k.as_str() {
            "name" => {
                if p.name.is_some() {
                    return Err(twice());
                }
                p.name = Some(string(j, &format!("the name of inputs[{i}]"))?);
            }
            "shape" => {
                if p.dims.is_some() {
                    return Err(twice());
                }
                p.dims = Some(dims(j, &what)?);
            }
            "datatype" => {
                if p.datatype.is_some() {
                    return Err(twice());
                }
                let text = string(j, &format!("the datatype of {what}"))?;
                p.datatype = Some(Datatype::parse(&text).map_err(|e| format!("{what}: {e}"))?);
            }
            "parameters" => p.binary_size = input_parameters(j, &what)?,
            "data" => {
                if p.data.is_some() {
                    return Err(twice());
                }
                p.data = Some(match (&p.name, &p.dims, p.datatype) {
                    (Some(name), Some(dims), Some(datatype)) => {
                        let shape = declared_shape(name, dims).map_err(|e| e.to_string())?;
                        PendingData::Read(
                            json::read_shaped(j, &shape, datatype, false, body_len)
                                .map_err(|e| e.about(&what))?,
                        )
                    }
                    _ => {
                        let later = j.clone();
                        j.next_skip().or_syntax().map_err(|e| e.about(&what))?;
                        PendingData::Later(later)
                    }
                });
            }
            other => {
                return Err(format!(
                    "{what} has unknown key '{other}'; an input has name, shape, datatype, data and parameters"
                ));
            }
        }
        key = j
            .next_key()
            .or_syntax()
            .map_err(|e| e.about(&label(&p)))?
            .map(str::to_owned);
    }
    Ok(p)
}

/// A shape: a list of whole numbers (checked for sign and size once the name is known).
fn dims(j: &mut Jiter, what: &str) -> Result<Vec<i64>, String> {
    let wrong = || format!("{what} lacks 'shape' (a list of non-negative integers)");
    let at = |e: ReadError| e.about(what);
    if j.peek().or_syntax().map_err(at)? != Peek::Array {
        j.next_skip().or_syntax().map_err(at)?;
        return Err(wrong());
    }
    let mut dims = Vec::new();
    let mut next = j.known_array().or_syntax().map_err(at)?;
    while let Some(peek) = next {
        if !peek.is_num() || dims.len() > super::tensor::MAX_RANK {
            return Err(wrong());
        }
        match j.known_number(peek) {
            Ok(jiter::NumberAny::Int(jiter::NumberInt::Int(n))) => dims.push(n),
            _ => {
                return Err(format!(
                    "{what}: dimension {} of 'shape' is not a whole number a shape can hold",
                    dims.len()
                ));
            }
        }
        next = j.array_step().or_syntax().map_err(at)?;
    }
    Ok(dims)
}

/// An input's `parameters`: `binary_data_size`; shared memory is refused, and other
/// parameters are ignored.
fn input_parameters(j: &mut Jiter, what: &str) -> Result<Option<u64>, String> {
    let at = |e: ReadError| e.about(what);
    if j.peek().or_syntax().map_err(at)? != Peek::Object {
        return Err(format!("the parameters of {what} must be an object"));
    }
    let mut size = None;
    let mut key = j.known_object().or_syntax().map_err(at)?.map(str::to_owned);
    while let Some(k) = key {
        match k.as_str() {
            "binary_data_size" => {
                let peek = j.peek().or_syntax().map_err(at)?;
                match peek.is_num().then(|| j.known_number(peek)) {
                    Some(Ok(jiter::NumberAny::Int(jiter::NumberInt::Int(n)))) if n >= 0 => {
                        size = Some(n as u64)
                    }
                    _ => {
                        return Err(format!(
                            "{what}: binary_data_size must be a number of bytes"
                        ));
                    }
                }
            }
            k if k.starts_with("shared_memory") => {
                return Err(format!(
                    "{what}: shared memory is not supported; send the data in the body"
                ));
            }
            _ => j.next_skip().or_syntax().map_err(at)?,
        }
        key = j.next_key().or_syntax().map_err(at)?.map(str::to_owned);
    }
    Ok(size)
}

/// `outputs`: `[{"name": ..., "parameters": {"binary_data": true}}, ...]`, not empty.
fn outputs(j: &mut Jiter) -> Result<Vec<Wanted>, String> {
    let at = |e: ReadError| e.about("'outputs'");
    if j.peek().or_syntax().map_err(at)? != Peek::Array {
        return Err("'outputs' must be a list of {\"name\": ...} objects".to_owned());
    }
    let mut wanted = Vec::new();
    let mut next = j.known_array().or_syntax().map_err(at)?;
    while let Some(peek) = next {
        let i = wanted.len();
        if peek != Peek::Object {
            return Err(format!("outputs[{i}] must be an object with a 'name'"));
        }
        let mut name = None;
        let mut binary = None;
        let mut key = j.known_object().or_syntax().map_err(at)?.map(str::to_owned);
        while let Some(k) = key {
            match k.as_str() {
                "name" => name = Some(string(j, &format!("the name of outputs[{i}]"))?),
                "parameters" => binary = output_parameters(j, i)?,
                other => {
                    return Err(format!(
                        "outputs[{i}] has unknown key '{other}'; an output has name and parameters"
                    ));
                }
            }
            key = j.next_key().or_syntax().map_err(at)?.map(str::to_owned);
        }
        let name = name.ok_or_else(|| format!("outputs[{i}] lacks 'name' (a string)"))?;
        if wanted.iter().any(|w: &Wanted| w.name == name) {
            return Err(format!("output '{name}' is asked for twice"));
        }
        wanted.push(Wanted { name, binary });
        next = j.array_step().or_syntax().map_err(at)?;
    }
    if wanted.is_empty() {
        return Err(
            "'outputs' is empty; leave it out to get every output, or name the ones to give"
                .to_owned(),
        );
    }
    Ok(wanted)
}

fn output_parameters(j: &mut Jiter, i: usize) -> Result<Option<bool>, String> {
    let what = format!("the parameters of outputs[{i}]");
    let at = |e: ReadError| e.about(&what);
    if j.peek().or_syntax().map_err(at)? != Peek::Object {
        return Err(format!("{what} must be an object"));
    }
    let mut binary = None;
    let mut key = j.known_object().or_syntax().map_err(at)?.map(str::to_owned);
    while let Some(k) = key {
        match k.as_str() {
            "binary_data" => binary = Some(boolean(j, "'binary_data'")?),
            "classification" => {
                let peek = j.peek().or_syntax().map_err(at)?;
                match peek.is_num().then(|| j.known_number(peek)) {
                    Some(Ok(jiter::NumberAny::Int(jiter::NumberInt::Int(0)))) => {}
                    _ => {
                        return Err(format!(
                            "outputs[{i}]: the classification extension is not supported"
                        ));
                    }
                }
            }
            k if k.starts_with("shared_memory") => {
                return Err(format!("outputs[{i}]: shared memory is not supported"));
            }
            _ => j.next_skip().or_syntax().map_err(at)?,
        }
        key = j.next_key().or_syntax().map_err(at)?.map(str::to_owned);
    }
    Ok(binary)
}

/// Every input with its data: read now if it waited, or taken from the binary part, in
/// order; the binary part must be used up exactly.
fn finish_inputs(
    pending: Vec<PendingInput>,
    body_len: usize,
    binary: &[u8],
) -> Result<Vec<Tensor>, String> {
    let mut offset = 0usize;
    let mut tensors: Vec<Tensor> = Vec::with_capacity(pending.len());
    for (i, p) in pending.into_iter().enumerate() {
        let name = p
            .name
            .ok_or_else(|| format!("inputs[{i}] lacks 'name' (a string)"))?;
        let what = format!("input '{name}'");
        let dims = p
            .dims
            .ok_or_else(|| format!("{what} lacks 'shape' (a list of non-negative integers)"))?;
        let datatype = p
            .datatype
            .ok_or_else(|| format!("{what} lacks 'datatype' (FP64, INT64, BYTES, ...)"))?;
        let shape = declared_shape(&name, &dims).map_err(|e| e.to_string())?;
        let data = match (p.binary_size, p.data) {
            (Some(_), Some(_)) => {
                return Err(format!(
                    "{what} has both 'data' and binary_data_size; give one"
                ));
            }
            (None, None) => return Err(format!("{what} lacks 'data'")),
            (None, Some(PendingData::Read(data))) => data,
            (None, Some(PendingData::Later(mut later))) => {
                json::read_shaped(&mut later, &shape, datatype, false, body_len)
                    .map_err(|e| e.about(&what))?
            }
            (Some(size), None) => {
                let remaining = binary.len() - offset;
                let size = usize::try_from(size)
                    .ok()
                    .filter(|&s| s <= remaining)
                    .ok_or_else(|| {
                        format!(
                            "{what} wants {size} bytes of binary data, but only {remaining} remain in the body"
                        )
                    })?;
                let bytes = &binary[offset..offset + size];
                offset += size;
                let data = decode(datatype, bytes).map_err(|e| format!("{what}: {e}"))?;
                let expected = element_count(&shape).expect("declared shapes do not overflow");
                if data.len() as u64 != expected {
                    return Err(format!(
                        "{what} has shape {shape:?}, which holds {expected} elements, but its binary data holds {}",
                        data.len()
                    ));
                }
                data
            }
        };
        if tensors.iter().any(|t| t.name == name) {
            return Err(format!("{what} is given twice"));
        }
        tensors.push(Tensor { name, shape, data });
    }
    if offset != binary.len() {
        return Err(format!(
            "the body holds {} bytes of binary data after the JSON header, but the inputs' binary_data_size add up to {offset}",
            binary.len()
        ));
    }
    Ok(tensors)
}

/// Raw tensor bytes as the binary extension lays them out: little-endian elements,
/// one byte per BOOL, and each BYTES element as a 4-byte little-endian length and its
/// bytes.
fn decode(datatype: Datatype, bytes: &[u8]) -> Result<Data, String> {
    fn fixed<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Result<Vec<T>, String> {
        if !bytes.len().is_multiple_of(N) {
            return Err(format!(
                "{} bytes of binary data is not a whole number of {N}-byte elements",
                bytes.len()
            ));
        }
        Ok(bytes
            .chunks_exact(N)
            .map(|c| f(c.try_into().expect("chunks are N bytes")))
            .collect())
    }
    Ok(match datatype {
        Datatype::Bool => Data::Bool(fixed::<1, _>(bytes, |[b]| b != 0)?),
        Datatype::Int32 => Data::Int32(fixed(bytes, i32::from_le_bytes)?),
        Datatype::Int64 => Data::Int64(fixed(bytes, i64::from_le_bytes)?),
        Datatype::Fp32 => Data::Fp32(fixed(bytes, f32::from_le_bytes)?),
        Datatype::Fp64 => Data::Fp64(fixed(bytes, f64::from_le_bytes)?),
        Datatype::Bytes => {
            let mut items = Vec::new();
            let mut rest = bytes;
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<4>() else {
                    return Err("binary BYTES data ends inside a length prefix".to_owned());
                };
                let len = u32::from_le_bytes(*len) as usize;
                if tail.len() < len {
                    return Err("binary BYTES data ends inside an element".to_owned());
                }
                let (item, tail) = tail.split_at(len);
                items.push(item.to_vec());
                rest = tail;
            }
            Data::Bytes(items)
        }
    })
}

/// Reads `bytes` as an inference request the way `infer` does: the JSON header ends at
/// the first NUL byte (the binary tensor data follows it), or at the end. The tensors are
/// then fitted to `signature` and written back in both encodings.
pub(super) fn fuzz(bytes: &[u8], signature: &crate::models::Signature) {
    let header_len = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    let mut body = bytes[..header_len].to_vec();
    body.extend_from_slice(bytes.get(header_len + 1..).unwrap_or_default());
    let Ok(mut request) = Request::parse(&body, header_len) else {
        return;
    };
    let _ = request.selector("m", None);
    let inputs = std::mem::take(&mut request.inputs);
    let Ok(inputs) = super::conform_inputs(signature, inputs) else {
        return;
    };
    for tensor in &inputs {
        let mut out = json::Out::with_capacity(64);
        let style = Style {
            nonfinite_tokens: false,
            bytes_b64: false,
            b64_fallback: false,
        };
        let _ = out.flat(&tensor.data, 0..tensor.data.len(), style);
        let mut binary = Vec::new();
        encode(&tensor.data, &mut binary);
    }
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
            out.extend_from_slice(s);
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(json: &str) -> Result<Request, String> {
        Request::parse(json.as_bytes(), json.len()).map_err(|e| e.message)
    }

    #[test]
    fn nested_data_must_match_the_declared_shape() {
        let row = |n: usize| format!("[{}]", vec!["1.5"; n].join(","));
        // Two rows of 31 and 29 values: 60 elements as [2, 30] holds, nested wrongly.
        let body = format!(
            r#"{{"inputs": [{{"name": "features", "shape": [2, 30], "datatype": "FP64", "data": [{}, {}]}}]}}"#,
            row(31),
            row(29)
        );
        assert_eq!(
            parse(&body).unwrap_err(),
            "input 'features': data[0] holds more than 30 elements, but shape [2, 30] says 30"
        );
        let body = format!(
            r#"{{"inputs": [{{"name": "features", "shape": [2, 30], "datatype": "FP64", "data": [{}, {}]}}]}}"#,
            row(30),
            row(30)
        );
        assert_eq!(parse(&body).unwrap().inputs[0].data.len(), 60);
        // The same check when data comes before the shape and datatype.
        let body = format!(
            r#"{{"inputs": [{{"data": [{}, {}], "name": "features", "datatype": "FP64", "shape": [2, 30]}}]}}"#,
            row(29),
            row(31)
        );
        assert_eq!(
            parse(&body).unwrap_err(),
            "input 'features': data[0] holds 29 elements, but shape [2, 30] says 30"
        );
    }

    #[test]
    fn shapes_are_checked_before_anything_is_read() {
        for (shape, expected) in [
            (
                "[2, -30]",
                "input 'x': dimension 1 of shape [2, -30] is negative (-30)",
            ),
            (
                "[4294967296, 4294967296]",
                "input 'x': shape [4294967296, 4294967296] holds more elements than can be addressed",
            ),
            (
                "[99999999999999999999]",
                "input 'x': dimension 0 of 'shape' is not a whole number a shape can hold",
            ),
            (
                "[1.5]",
                "input 'x': dimension 0 of 'shape' is not a whole number a shape can hold",
            ),
            (
                "3",
                "input 'x' lacks 'shape' (a list of non-negative integers)",
            ),
        ] {
            let body = format!(
                r#"{{"inputs": [{{"name": "x", "shape": {shape}, "datatype": "FP64", "data": [1]}}]}}"#
            );
            assert_eq!(parse(&body).unwrap_err(), expected, "{shape}");
        }
    }

    #[test]
    fn what_kserve_and_triton_clients_send_is_read() {
        let request = parse(
            r#"{"id": "7", "model_name": "m", "model_version": "2", "parameters": {"binary_data_output": true, "priority": 1},
                "inputs": [{"name": "x", "shape": [1, 2], "datatype": "INT64", "parameters": {"content_type": "np"}, "data": [[1, 2]]}],
                "outputs": [{"name": "y", "parameters": {"binary_data": false}}]}"#,
        )
        .unwrap();
        assert_eq!(request.id.as_deref(), Some("7"));
        assert!(request.binary_output);
        assert_eq!(request.inputs[0].data, Data::Int64(vec![1, 2]));
        assert_eq!(request.outputs.as_ref().unwrap()[0].binary, Some(false));
        assert_eq!(request.selector("m", None).unwrap(), Selector::Version(2));
        assert_eq!(
            request.selector("m", Some(2)).unwrap(),
            Selector::Version(2)
        );
        assert_eq!(
            request.selector("m", Some(3)).unwrap_err().message,
            "the body names version 2, but the URL names version 3"
        );
        assert_eq!(
            request.selector("other", None).unwrap_err().message,
            "the body names model 'm', but the URL names 'other'"
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        for (body, expected) in [
            (r#"[]"#, "the inference request must be a JSON object"),
            (r#"{}"#, "missing 'inputs'"),
            (
                r#"{"inputs": []}"#,
                "'inputs' must be a non-empty list of tensors",
            ),
            (
                r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}], "outputs": []}"#,
                "'outputs' is empty; leave it out to get every output, or name the ones to give",
            ),
            (
                r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}], "inputs": []}"#,
                "'inputs' is given twice",
            ),
            (
                r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}, {"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}]}"#,
                "input 'x' is given twice",
            ),
            (
                r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64"}]}"#,
                "input 'x' lacks 'data'",
            ),
            (
                r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}], "rows": 1}"#,
                "unknown key 'rows'; an inference request has 'inputs' and optionally 'id', 'parameters', 'outputs', 'model_name' and 'model_version'",
            ),
            (
                r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "parameters": {"shared_memory_region": "r"}}]}"#,
                "input 'x': shared memory is not supported; send the data in the body",
            ),
            (
                r#"{"inputs": [{"name": "x", "shape": [1], "datatype": "FP64", "data": [1]}], "outputs": [{"name": "y", "parameters": {"classification": 3}}]}"#,
                "outputs[0]: the classification extension is not supported",
            ),
        ] {
            assert_eq!(parse(body).unwrap_err(), expected, "{body}");
        }
        assert!(
            parse("{\"inputs\": [")
                .unwrap_err()
                .starts_with("the request body is not valid JSON")
        );
    }

    #[test]
    fn binary_data_round_trips() {
        for data in [
            Data::Fp64(vec![1.5, -2.25]),
            Data::Fp32(vec![0.5]),
            Data::Int64(vec![-7, 9]),
            Data::Int32(vec![3]),
            Data::Bool(vec![true, false]),
            Data::Bytes(vec![b"M".to_vec(), Vec::new(), vec![0xff, 0x00]]),
        ] {
            let mut bytes = Vec::new();
            encode(&data, &mut bytes);
            assert_eq!(decode(data.datatype(), &bytes).unwrap(), data);
        }
    }

    #[test]
    fn truncated_binary_data_is_an_error() {
        assert!(
            decode(Datatype::Fp64, &[0; 12])
                .unwrap_err()
                .contains("not a whole number of 8-byte elements")
        );
        assert!(
            decode(Datatype::Bytes, &[5, 0, 0, 0, b'a'])
                .unwrap_err()
                .contains("ends inside an element")
        );
        assert!(
            decode(Datatype::Bytes, &[5, 0])
                .unwrap_err()
                .contains("length prefix")
        );
        let mut body = br#"{"inputs": [{"name": "x", "shape": [2], "datatype": "FP64", "parameters": {"binary_data_size": 16}}]}"#.to_vec();
        let header = body.len();
        body.extend_from_slice(&[0; 8]);
        assert_eq!(
            Request::parse(&body, header).unwrap_err().message,
            "input 'x' wants 16 bytes of binary data, but only 8 remain in the body"
        );
    }
}
