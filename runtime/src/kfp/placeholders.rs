//! What a KFP v2 step sees: the `ExecutorInput` JSON (`{{$}}`) and the command line with
//! its placeholders resolved, as KFP's backend and local runners resolve them; and the
//! executor output a step may leave behind (`{{$.outputs.output_file}}`), read back.
//!
//! Paths depend on where the step runs (inside a container, or on the host), so both are
//! built per attempt from the executor's [`Paths`].

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};

use super::ir::ArtifactType;
use super::values::render;
use crate::exec::Paths;

/// Where a step's executor output goes, in a folder of the task's outputs folder that no
/// output's folder can be named (output folders never start with a dot). KFP's Python
/// executor takes this folder as the task's root: artifacts a step creates itself
/// (`dsl.get_uri()`) go there too.
pub const TASK_ROOT: &str = ".kfp";
pub const EXECUTOR_OUTPUT: &str = ".kfp/executor_output.json";

/// Everything about one KFP task that its command line and executor input need, beyond
/// what every executor already gets.
#[derive(Clone, Debug)]
pub struct TaskContext {
    /// Input parameter values, by input name.
    pub params: BTreeMap<String, Json>,
    /// Input artifacts, by input name; a list for `dsl.Collected` inputs.
    pub artifacts: BTreeMap<String, Vec<InputArtifact>>,
    /// Declared output parameters.
    pub output_params: Vec<String>,
    /// Declared output artifacts and their types.
    pub output_artifacts: BTreeMap<String, ArtifactType>,
    pub pipeline_name: String,
    pub run_id: String,
    pub task_name: String,
    pub task_id: String,
    /// When the run started, RFC 3339 in UTC.
    pub created: String,
}

impl TaskContext {
    /// The run's resource name, as KFP's backend names runs: the pipeline's name and the
    /// run's id.
    pub fn resource_name(&self) -> String {
        format!("{}-{}", self.pipeline_name, self.run_id)
    }

    /// The value of a run placeholder (`{{$.pipeline_job_name}}`, ...), if `text` is one.
    pub fn run_placeholder(&self, text: &str) -> Option<String> {
        Some(match text {
            "{{$.pipeline_job_name}}" => self.pipeline_name.clone(),
            "{{$.pipeline_job_resource_name}}" => self.resource_name(),
            "{{$.pipeline_job_uuid}}" => self.run_id.clone(),
            "{{$.pipeline_task_name}}" => self.task_name.clone(),
            "{{$.pipeline_task_uuid}}" => self.task_id.clone(),
            "{{$.pipeline_job_create_time_utc}}" | "{{$.pipeline_job_schedule_time_utc}}" => {
                self.created.clone()
            }
            "{{$.pipeline_root}}" => String::new(),
            _ => return None,
        })
    }
}

/// Run placeholders a command line or a parameter value may hold.
const RUN_PLACEHOLDERS: &[&str] = &[
    "{{$.pipeline_job_name}}",
    "{{$.pipeline_job_resource_name}}",
    "{{$.pipeline_job_uuid}}",
    "{{$.pipeline_task_name}}",
    "{{$.pipeline_task_uuid}}",
    "{{$.pipeline_job_create_time_utc}}",
    "{{$.pipeline_job_schedule_time_utc}}",
    "{{$.pipeline_root}}",
];

/// One artifact given to a task.
#[derive(Clone, Debug)]
pub struct InputArtifact {
    /// The input it is staged as (`inputs/<key>/data`).
    pub key: String,
    pub name: String,
    pub type_: ArtifactType,
    pub metadata: Json,
    /// Where it is published for the run (see [`crate::store::Store::run_artifacts`]);
    /// its `uri`, and the path the step reads. Without one, the staged copy's path.
    pub uri: Option<String>,
}

/// The `ExecutorInput` message as JSON, with paths as the step sees them. Artifacts'
/// `uri`s are local paths, which KFP's Python executor uses as `.path`.
pub fn executor_input(ctx: &TaskContext, paths: Paths<'_>) -> Json {
    let artifact = |name: &str, type_: &ArtifactType, uri: String, metadata: &Json| json!({"name": name, "type": type_, "uri": uri, "metadata": metadata});
    let inputs_artifacts: serde_json::Map<String, Json> = ctx
        .artifacts
        .iter()
        .map(|(name, list)| {
            let items: Vec<Json> = list
                .iter()
                .map(|a| {
                    let uri = a.uri.clone().unwrap_or_else(|| paths.input(&a.key));
                    artifact(&a.name, &a.type_, uri, &a.metadata)
                })
                .collect();
            (name.clone(), json!({ "artifacts": items }))
        })
        .collect();
    let output_params: serde_json::Map<String, Json> = ctx
        .output_params
        .iter()
        .map(|name| (name.clone(), json!({"outputFile": paths.output(name)})))
        .collect();
    let output_artifacts: serde_json::Map<String, Json> = ctx
        .output_artifacts
        .iter()
        .map(|(name, type_)| {
            let item = artifact(name, type_, paths.output(name), &json!({}));
            (name.clone(), json!({ "artifacts": [item] }))
        })
        .collect();
    json!({
        "inputs": {
            "parameterValues": ctx.params,
            "artifacts": inputs_artifacts,
        },
        "outputs": {
            "parameters": output_params,
            "artifacts": output_artifacts,
            "outputFile": paths.output_root_file(EXECUTOR_OUTPUT),
        }
    })
}

/// Resolves a command or argument list: `Concat` and `IfPresent` structures first, then
/// every `{{$...}}` placeholder in each element.
pub fn resolve(
    ctx: &TaskContext,
    paths: Paths<'_>,
    items: &[String],
) -> Result<Vec<String>, String> {
    let input = executor_input(ctx, paths);
    let provided = |name: &str| ctx.params.contains_key(name) || ctx.artifacts.contains_key(name);
    let mut out = Vec::new();
    for item in items {
        let mut parts = Vec::new();
        if item.starts_with("{\"Concat\": ") || item.starts_with("{\"IfPresent\": ") {
            let structure: Json = serde_json::from_str(item)
                .map_err(|e| format!("cannot read the placeholder {item}: {e}"))?;
            structural(&structure, &provided, &mut parts)?;
        } else {
            parts.push(item.clone());
        }
        for part in parts {
            out.push(substitute(&part, ctx, &input)?);
        }
    }
    Ok(out)
}

/// Expands `{"Concat": [...]}` and `{"IfPresent": {...}}` into zero or more elements.
fn structural(
    value: &Json,
    provided: &dyn Fn(&str) -> bool,
    out: &mut Vec<String>,
) -> Result<(), String> {
    match value {
        Json::String(s) => out.push(s.clone()),
        Json::Array(items) => {
            for item in items {
                structural(item, provided, out)?;
            }
        }
        Json::Object(map) => {
            if let Some(parts) = map.get("Concat") {
                let Json::Array(parts) = parts else {
                    return Err("a Concat placeholder holds a list".into());
                };
                let mut joined = String::new();
                for part in parts {
                    let mut pieces = Vec::new();
                    structural(part, provided, &mut pieces)?;
                    joined.push_str(&pieces.concat());
                }
                out.push(joined);
            } else if let Some(inner) = map.get("IfPresent") {
                let name = inner
                    .get("InputName")
                    .and_then(Json::as_str)
                    .ok_or("an IfPresent placeholder names its InputName")?;
                let branch = if provided(name) {
                    inner.get("Then")
                } else {
                    inner.get("Else")
                };
                if let Some(branch) = branch {
                    structural(branch, provided, out)?;
                }
            } else {
                return Err(format!("unknown placeholder structure {value}"));
            }
        }
        Json::Null => {}
        other => out.push(other.to_string()),
    }
    Ok(())
}

/// Replaces every placeholder in one element.
fn substitute(element: &str, ctx: &TaskContext, input: &Json) -> Result<String, String> {
    let mut text = element.to_owned();
    let constants = [
        ("{{$}}", input.to_string()),
        (
            "{{$.outputs.output_file}}",
            render(&input["outputs"]["outputFile"]),
        ),
        (
            "{{$.outputMetadataUri}}",
            render(&input["outputs"]["outputFile"]),
        ),
    ];
    for (placeholder, value) in &constants {
        if text.contains(placeholder) {
            text = text.replace(placeholder, value);
        }
    }
    for placeholder in RUN_PLACEHOLDERS {
        if text.contains(placeholder) {
            let value = ctx.run_placeholder(placeholder).unwrap_or_default();
            text = text.replace(placeholder, &value);
        }
    }
    if text.contains("{{$.workspace_path}}") {
        return Err(
            "{{$.workspace_path}} names a KFP workspace (a volume the run's tasks share), which Sluice does not provide"
                .into(),
        );
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(start) = rest.find("{{$.") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 4..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            rest = "";
            break;
        };
        let expr = &after[..end];
        out.push_str(&lookup(expr, input)?);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Resolves `inputs.parameters['x']`, `inputs.artifacts['x'].path|uri|metadata`,
/// `outputs.parameters['x'].output_file`, `outputs.artifacts['x'].path|uri|metadata`
/// against the executor input; absent values resolve to `null`, as in KFP.
fn lookup(expr: &str, input: &Json) -> Result<String, String> {
    let parts: Vec<&str> = expr
        .split(['.', '[', ']', '\''])
        .filter(|p| !p.is_empty())
        .collect();
    let value = match parts.as_slice() {
        ["inputs", "parameters", name] => input["inputs"]["parameterValues"].get(*name),
        ["outputs", "parameters", name, "output_file"] => {
            input["outputs"]["parameters"][*name].get("outputFile")
        }
        [side @ ("inputs" | "outputs"), "artifacts", name, field] => {
            let artifact = &input[*side]["artifacts"][*name]["artifacts"][0];
            match *field {
                "path" | "uri" => artifact.get("uri"),
                "metadata" => artifact.get("metadata"),
                other => {
                    return Err(format!(
                        "placeholder {{{{$.{expr}}}}}: unknown artifact field '{other}'"
                    ));
                }
            }
        }
        _ => return Err(format!("unknown placeholder {{{{$.{expr}}}}}")),
    };
    Ok(match value {
        Some(Json::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => "null".to_owned(),
    })
}

/// Resolves placeholders inside string parameter values (f-strings over upstream
/// outputs compile to such values), from the task's other parameters.
pub fn resolve_parameter_references(params: &mut BTreeMap<String, Json>) {
    let snapshot = params.clone();
    for value in params.values_mut() {
        let Json::String(s) = value else { continue };
        if !s.contains("{{$.inputs.parameters[") {
            continue;
        }
        let mut text = s.clone();
        for (name, v) in &snapshot {
            let placeholder = format!("{{{{$.inputs.parameters['{name}']}}}}");
            if text.contains(&placeholder) {
                text = text.replace(&placeholder, &render(v));
            }
        }
        *s = text;
    }
}

/// A text with `{{$.inputs.parameters['x']}}` placeholders resolved from `params` (as
/// their text); an error names a parameter the text asks for and `params` lacks.
pub fn resolve_text(text: &str, params: &BTreeMap<String, Json>) -> Result<String, String> {
    let mut out = text.to_owned();
    while let Some(start) = out.find("{{$.inputs.parameters['") {
        let rest = &out[start + "{{$.inputs.parameters['".len()..];
        let Some(end) = rest.find("']}}") else {
            return Err(format!("'{text}' has an unfinished placeholder"));
        };
        let name = &rest[..end];
        let value = params
            .get(name)
            .ok_or_else(|| format!("'{text}' asks for parameter '{name}', which has no value"))?;
        let placeholder_len = "{{$.inputs.parameters['".len() + end + "']}}".len();
        out.replace_range(start..start + placeholder_len, &render(value));
    }
    Ok(out)
}

/// What a step's executor output file said: parameter values, and metadata of output
/// artifacts (for `system.Metrics`, the metrics it logged).
#[derive(Debug, Default, PartialEq)]
pub struct ExecutorOutput {
    pub params: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, Json>,
    /// Artifacts the step placed elsewhere than where it was asked to (their `uri`).
    pub uris: BTreeMap<String, String>,
}

pub fn parse_executor_output(bytes: &[u8]) -> Result<ExecutorOutput, String> {
    let value: Json = serde_json::from_slice(bytes)
        .map_err(|e| format!("the executor output is not JSON: {e}"))?;
    let mut out = ExecutorOutput::default();
    if let Some(params) = value.get("parameterValues").and_then(Json::as_object) {
        for (name, v) in params {
            out.params.insert(name.clone(), render(v));
        }
    }
    // The older form: `parameters: {name: {stringValue|intValue|doubleValue}}`.
    if let Some(params) = value.get("parameters").and_then(Json::as_object) {
        for (name, v) in params {
            let text = ["stringValue", "intValue", "doubleValue"]
                .iter()
                .find_map(|k| v.get(*k))
                .map(render);
            if let Some(text) = text {
                out.params.entry(name.clone()).or_insert(text);
            }
        }
    }
    if let Some(artifacts) = value.get("artifacts").and_then(Json::as_object) {
        for (name, list) in artifacts {
            let artifact = &list["artifacts"][0];
            if let Some(metadata) = artifact.get("metadata")
                && metadata.as_object().is_some_and(|m| !m.is_empty())
            {
                out.metadata.insert(name.clone(), metadata.clone());
            }
            if let Some(uri) = artifact.get("uri").and_then(Json::as_str) {
                out.uris.insert(name.clone(), uri.to_owned());
            }
        }
    }
    Ok(out)
}

/// The context of a KFP v1 component task whose command line holds `executorInput`:
/// its parameter inputs as typed values, its other inputs and outputs as artifacts.
pub fn context_for_v1(inv: &crate::exec::Invocation) -> TaskContext {
    use crate::spec::ParamType;
    let mut params = BTreeMap::new();
    let mut artifacts = BTreeMap::new();
    for (name, arg) in &inv.inputs {
        let param = arg
            .type_
            .as_ref()
            .and_then(crate::spec::TypeSpec::param_type);
        let text = || match &arg.value {
            Some(v) => v.clone(),
            None => crate::exec::read_value_file(&inv.dir.input_file(name)),
        };
        match (&arg.type_, param) {
            // An untyped input is a string parameter, as KFP reads v1 components.
            (None, _) => {
                params.insert(name.clone(), Json::String(text()));
            }
            (Some(_), Some(ty)) => {
                let text = text();
                let value = match ty {
                    ParamType::String => Some(Json::String(text.clone())),
                    ParamType::Integer => text.trim().parse::<i64>().map(Json::from).ok(),
                    ParamType::Float => text
                        .trim()
                        .parse::<f64>()
                        .ok()
                        .and_then(|f| serde_json::Number::from_f64(f).map(Json::Number)),
                    ParamType::Boolean => crate::spec::types::parse_bool(&text).map(Json::Bool),
                    ParamType::JsonObject | ParamType::JsonArray => {
                        serde_json::from_str(&text).ok()
                    }
                };
                params.insert(name.clone(), value.unwrap_or(Json::String(text)));
            }
            (Some(_), None) => {
                let type_ = artifact_type(arg.type_.as_ref());
                artifacts.insert(
                    name.clone(),
                    vec![InputArtifact {
                        key: name.clone(),
                        name: name.clone(),
                        type_,
                        metadata: json!({}),
                        uri: None,
                    }],
                );
            }
        }
    }
    let outputs = &inv.component.spec.outputs;
    TaskContext {
        params,
        artifacts,
        output_params: outputs
            .iter()
            .filter(|o| o.param_type().is_some())
            .map(|o| o.name.clone())
            .collect(),
        output_artifacts: outputs
            .iter()
            .filter(|o| o.param_type().is_none())
            .map(|o| (o.name.clone(), artifact_type(o.type_.as_ref())))
            .collect(),
        pipeline_name: inv.component.name(),
        run_id: inv.run_id.clone(),
        task_name: inv.task.clone(),
        task_id: format!("{}-{}", inv.run_id, inv.task),
        created: String::new(),
    }
}

/// The KFP v2 artifact type of a v1 type name: `Dataset` is `system.Dataset`.
fn artifact_type(type_: Option<&crate::spec::TypeSpec>) -> ArtifactType {
    let title = match type_.map(|t| t.name.as_str()) {
        Some(name) if name.contains('.') => name.to_owned(),
        Some(
            name @ ("Dataset"
            | "Model"
            | "Metrics"
            | "ClassificationMetrics"
            | "SlicedClassificationMetrics"
            | "HTML"
            | "Markdown"
            | "Artifact"),
        ) => format!("system.{name}"),
        _ => "system.Artifact".to_owned(),
    };
    ArtifactType {
        schema_title: Some(title),
        schema_version: Some("0.0.1".into()),
    }
}

/// Moves an artifact a step wrote at a `uri` of its own (inside its outputs folder) to
/// where Sluice collects it. The `uri` is as the step saw it: a host path, or a path
/// under the container's outputs folder.
fn relocate(
    dir: &crate::store::TaskDir,
    name: &str,
    uri: &str,
) -> Result<(), crate::exec::Failure> {
    let outputs = std::path::absolute(dir.outputs()).unwrap_or_else(|_| dir.outputs());
    let container_root = crate::exec::docker::CONTAINER_OUTPUTS;
    let host = if let Ok(rest) = std::path::Path::new(uri).strip_prefix(&outputs) {
        outputs.join(rest)
    } else if let Some(rest) = uri
        .strip_prefix(container_root)
        .and_then(|r| r.strip_prefix('/'))
    {
        outputs.join(rest)
    } else {
        // Remote storage, or outside the task's folder: nothing Sluice can collect.
        return Ok(());
    };
    let expected =
        std::path::absolute(dir.output_file(name)).unwrap_or_else(|_| dir.output_file(name));
    if host == expected
        || std::fs::symlink_metadata(&expected).is_ok()
        || !host.starts_with(&outputs)
    {
        return Ok(());
    }
    if host
        .components()
        .any(|c| c == std::path::Component::ParentDir)
    {
        return Err(crate::exec::Failure::failed(format!(
            "output '{name}': its uri {uri} leaves the task's folder"
        )));
    }
    if std::fs::symlink_metadata(&host).is_ok() {
        std::fs::rename(&host, &expected).map_err(|e| {
            crate::exec::Failure::failed(format!("output '{name}': cannot take {uri}: {e}"))
        })?;
    }
    Ok(())
}

/// Artifact types whose content is their metadata: KFP steps log metrics into the
/// executor output and never write the file.
const METADATA_ONLY: &[&str] = &[
    "system.Metrics",
    "system.ClassificationMetrics",
    "system.SlicedClassificationMetrics",
];

/// After a step succeeded: takes its executor output (parameter values, artifact
/// metadata, metrics logged to `system.Metrics` artifacts), and leaves an empty file for
/// metrics artifacts the step had no reason to write.
pub fn finish(
    ctx: &TaskContext,
    dir: &crate::store::TaskDir,
    completion: &mut crate::exec::Completion,
) -> Result<(), crate::exec::Failure> {
    let path = dir.outputs().join(EXECUTOR_OUTPUT);
    let read = crate::files::read_limited(
        &path,
        crate::files::GUEST_JSON_MAX,
        crate::files::Follow::No,
    );
    let bytes = match read {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(crate::exec::Failure::failed(format!(
                "the executor output {EXECUTOR_OUTPUT} {e}"
            )));
        }
    };
    if let Some(bytes) = bytes {
        let output = parse_executor_output(&bytes).map_err(crate::exec::Failure::failed)?;
        for (name, uri) in &output.uris {
            if ctx.output_artifacts.contains_key(name) {
                relocate(dir, name, uri)?;
            }
        }
        for (name, value) in output.params {
            if ctx.output_params.contains(&name) {
                completion.params.entry(name).or_insert(value);
            }
        }
        for (name, metadata) in output.metadata {
            let Some(type_) = ctx.output_artifacts.get(&name) else {
                continue;
            };
            if type_.title() == "system.Metrics"
                && let Some(map) = metadata.as_object()
            {
                for (metric, value) in map {
                    if let Some(v) = value.as_f64() {
                        completion.metrics.insert(metric.clone(), v);
                    }
                }
            }
            completion.metadata.insert(name, metadata);
        }
    }
    for (name, type_) in &ctx.output_artifacts {
        let file = dir.output_file(name);
        if METADATA_ONLY.contains(&type_.title()) && std::fs::symlink_metadata(&file).is_err() {
            std::fs::write(&file, b"")
                .map_err(|e| crate::exec::Failure::failed(format!("output '{name}': {e}")))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::TaskDir;

    fn ctx() -> TaskContext {
        TaskContext {
            params: BTreeMap::from([
                ("msg".into(), json!("hi")),
                ("n".into(), json!(3)),
                ("xs".into(), json!([1, 2])),
            ]),
            artifacts: BTreeMap::from([(
                "data".into(),
                vec![InputArtifact {
                    key: "data".into(),
                    name: "out".into(),
                    type_: ArtifactType {
                        schema_title: Some("system.Dataset".into()),
                        schema_version: Some("0.0.1".into()),
                    },
                    metadata: json!({"rows": 3}),
                    uri: None,
                }],
            )]),
            output_params: vec!["result".into()],
            output_artifacts: BTreeMap::from([("model".into(), ArtifactType::default())]),
            pipeline_name: "p".into(),
            run_id: "r1".into(),
            task_name: "t".into(),
            task_id: "7".into(),
            created: "2026-11-28T00:00:00Z".into(),
        }
    }

    const UNDER: Paths<'static> = Paths::Under {
        inputs: "/tmp/inputs",
        outputs: "/tmp/outputs",
    };

    #[test]
    fn placeholders_resolve_as_in_kfp() {
        let c = ctx();
        let items: Vec<String> = [
            "{{$.inputs.parameters['msg']}}",
            "n={{$.inputs.parameters['n']}}",
            "{{$.inputs.parameters['xs']}}",
            "{{$.inputs.artifacts['data'].path}}",
            "{{$.inputs.artifacts['data'].metadata}}",
            "{{$.outputs.parameters['result'].output_file}}",
            "{{$.outputs.artifacts['model'].uri}}",
            "{{$.outputs.output_file}}",
            "{{$.pipeline_job_name}}/{{$.pipeline_task_name}}",
            r#"{"Concat": ["a-", "{{$.inputs.parameters['msg']}}", "-b"]}"#,
            r#"{"IfPresent": {"InputName": "msg", "Then": ["--msg", "{{$.inputs.parameters['msg']}}"]}}"#,
            r#"{"IfPresent": {"InputName": "absent", "Then": ["x"], "Else": ["y"]}}"#,
            r#"{"IfPresent": {"InputName": "absent", "Then": ["x"]}}"#,
            "{{$.inputs.parameters['absent']}}",
        ]
        .map(String::from)
        .to_vec();
        let out = resolve(&c, UNDER, &items).unwrap();
        assert_eq!(
            out,
            [
                "hi",
                "n=3",
                "[1,2]",
                "/tmp/inputs/data/data",
                r#"{"rows":3}"#,
                "/tmp/outputs/result/data",
                "/tmp/outputs/model/data",
                "/tmp/outputs/.kfp/executor_output.json",
                "p/t",
                "a-hi-b",
                "--msg",
                "hi",
                "y",
                "null",
            ]
        );
        assert!(resolve(&c, UNDER, &["{{$.bogus}}".into()]).is_err());
    }

    #[test]
    fn executor_input_has_kfps_shape() {
        let dir = TaskDir::new("/w".into());
        let input = executor_input(&ctx(), Paths::Host(&dir));
        assert_eq!(input["inputs"]["parameterValues"]["n"], json!(3));
        let data = &input["inputs"]["artifacts"]["data"]["artifacts"][0];
        assert_eq!(data["uri"], json!("/w/inputs/data/data"));
        assert_eq!(data["type"]["schemaTitle"], json!("system.Dataset"));
        assert_eq!(
            input["outputs"]["parameters"]["result"]["outputFile"],
            json!("/w/outputs/result/data")
        );
        assert_eq!(
            input["outputs"]["outputFile"],
            json!("/w/outputs/.kfp/executor_output.json")
        );
    }

    #[test]
    fn f_string_values_take_their_references() {
        let mut params = BTreeMap::from([
            ("pipelinechannel--a-Output".to_owned(), json!(2.5)),
            (
                "text".to_owned(),
                json!("{{$.inputs.parameters['pipelinechannel--a-Output']}}-x"),
            ),
        ]);
        resolve_parameter_references(&mut params);
        assert_eq!(params["text"], json!("2.5-x"));
    }

    #[test]
    fn executor_output_is_read_back() {
        let out = parse_executor_output(
            br#"{"parameterValues": {"Output": 3.5, "s": "x", "l": [1]},
                 "artifacts": {"m": {"artifacts": [{"name": "m", "metadata": {"accuracy": 0.9}}]},
                               "d": {"artifacts": [{"name": "d", "metadata": {}}]}}}"#,
        )
        .unwrap();
        assert_eq!(out.params["Output"], "3.5");
        assert_eq!(out.params["s"], "x");
        assert_eq!(out.params["l"], "[1]");
        assert_eq!(out.metadata["m"], json!({"accuracy": 0.9}));
        assert!(!out.metadata.contains_key("d"));
        assert!(parse_executor_output(b"nope").is_err());
    }
}
