//! KFP's launcher protocol: what a KFP v2 step sees and leaves behind, whatever runs it.
//! The `ExecutorInput` JSON (`{{$}}`) and the command line with its placeholders resolved,
//! as KFP's backend and local runners resolve them; and the executor output a step may
//! leave behind (`{{$.outputs.output_file}}`), read back.
//!
//! Paths depend on where the step runs (inside a container, in a wasm sandbox, on the
//! host), so both are built per attempt from the executor's [`Locations`]. This module
//! sits below the executors and the plan: it knows KFP's messages, not how tasks run.

use std::collections::BTreeMap;

pub mod expr;
pub mod task;
pub mod values;

use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

/// A fault in a step's command line or executor output, as KFP's launcher would report it.
#[derive(Debug, thiserror::Error)]
pub enum LauncherError {
    #[error("cannot read the placeholder {item}")]
    Unreadable {
        item: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("a Concat placeholder holds a list")]
    ConcatNotAList,
    #[error("an IfPresent placeholder names its InputName")]
    IfPresentWithoutInput,
    #[error("unknown placeholder structure {0}")]
    UnknownStructure(String),
    #[error(
        "{{{{$.workspace_path}}}} names a KFP workspace (a volume the run's tasks share), which Sluice does not provide"
    )]
    Workspace,
    #[error("placeholder {{{{$.{expr}}}}}: unknown artifact field '{field}'")]
    UnknownArtifactField { expr: String, field: String },
    #[error("unknown placeholder {{{{$.{0}}}}}")]
    Unknown(String),
    #[error("'{0}' has an unfinished placeholder")]
    Unfinished(String),
    #[error("'{text}' asks for parameter '{name}', which has no value")]
    NoValue { text: String, name: String },
    #[error("the executor output is not JSON")]
    ExecutorOutput(#[source] serde_json::Error),
}

/// A KFP artifact type (`ArtifactTypeSchema`): `schemaTitle` such as `system.Dataset`,
/// and its `schemaVersion`.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactType {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
}

impl ArtifactType {
    pub fn title(&self) -> &str {
        self.schema_title.as_deref().unwrap_or("system.Artifact")
    }
}

/// Where a step finds its inputs and writes its outputs, as the step sees them (paths in
/// a container or sandbox, or on the host).
pub trait Locations {
    /// The file of input `name`.
    fn input(&self, name: &str) -> String;
    /// Where output `name` is written.
    fn output(&self, name: &str) -> String;
    /// A file directly in the outputs folder, beside the outputs' own folders.
    fn output_root_file(&self, file: &str) -> String;
}

/// A JSON value as text, as KFP passes parameter values on command lines: a string as
/// itself, anything else as JSON.
pub fn render(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Where a step's executor output goes, in a folder of the task's outputs folder that no
/// output's folder can be named (output folders never start with a dot). KFP's Python
/// executor takes this folder as the task's root: artifacts a step creates itself
/// (`dsl.get_uri()`) go there too.
pub const TASK_ROOT: &str = ".kfp";
pub const EXECUTOR_OUTPUT: &str = ".kfp/executor_output.json";

/// Everything about one KFP task that its command line and executor input need, beyond
/// what every executor already gets.
#[derive(Clone, Debug, Serialize, Deserialize)]
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
    /// What `{{$.pipeline_root}}` resolves to: the pipeline root the pipeline was compiled
    /// with, or else the folder the run's artifacts are published in.
    pub pipeline_root: String,
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
            "{{$.pipeline_root}}" => self.pipeline_root.clone(),
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
#[derive(Clone, Debug, Serialize, Deserialize)]
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
pub fn executor_input(ctx: &TaskContext, paths: &dyn Locations) -> Json {
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
    paths: &dyn Locations,
    items: &[String],
) -> Result<Vec<String>, LauncherError> {
    let input = executor_input(ctx, paths);
    let provided = |name: &str| ctx.params.contains_key(name) || ctx.artifacts.contains_key(name);
    let mut out = Vec::new();
    for item in items {
        let mut parts = Vec::new();
        if item.starts_with("{\"Concat\": ") || item.starts_with("{\"IfPresent\": ") {
            let structure: Json =
                serde_json::from_str(item).map_err(|source| LauncherError::Unreadable {
                    item: item.clone(),
                    source,
                })?;
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
) -> Result<(), LauncherError> {
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
                    return Err(LauncherError::ConcatNotAList);
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
                    .ok_or(LauncherError::IfPresentWithoutInput)?;
                let branch = if provided(name) {
                    inner.get("Then")
                } else {
                    inner.get("Else")
                };
                if let Some(branch) = branch {
                    structural(branch, provided, out)?;
                }
            } else {
                return Err(LauncherError::UnknownStructure(value.to_string()));
            }
        }
        Json::Null => {}
        other => out.push(other.to_string()),
    }
    Ok(())
}

/// Replaces every placeholder in one element.
fn substitute(element: &str, ctx: &TaskContext, input: &Json) -> Result<String, LauncherError> {
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
        return Err(LauncherError::Workspace);
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
fn lookup(expr: &str, input: &Json) -> Result<String, LauncherError> {
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
                    return Err(LauncherError::UnknownArtifactField {
                        expr: expr.to_owned(),
                        field: other.to_owned(),
                    });
                }
            }
        }
        _ => return Err(LauncherError::Unknown(expr.to_owned())),
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
pub fn resolve_text(text: &str, params: &BTreeMap<String, Json>) -> Result<String, LauncherError> {
    let mut out = text.to_owned();
    while let Some(start) = out.find("{{$.inputs.parameters['") {
        let rest = &out[start + "{{$.inputs.parameters['".len()..];
        let Some(end) = rest.find("']}}") else {
            return Err(LauncherError::Unfinished(text.to_owned()));
        };
        let name = &rest[..end];
        let value = params.get(name).ok_or_else(|| LauncherError::NoValue {
            text: text.to_owned(),
            name: name.to_owned(),
        })?;
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

/// Reads an executor output file (KFP's `ExecutorOutput` message as JSON).
pub fn parse_executor_output(bytes: &[u8]) -> Result<ExecutorOutput, LauncherError> {
    let value: Json = serde_json::from_slice(bytes).map_err(LauncherError::ExecutorOutput)?;
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

/// The KFP v2 artifact type of a v1 type name: `Dataset` is `system.Dataset`.
pub fn artifact_type(type_: Option<&crate::spec::TypeSpec>) -> ArtifactType {
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

/// Artifact types whose content is their metadata: KFP steps log metrics into the
/// executor output and never write the file.
pub const METADATA_ONLY: &[&str] = &[
    "system.Metrics",
    "system.ClassificationMetrics",
    "system.SlicedClassificationMetrics",
];

#[cfg(test)]
mod tests {
    use super::*;

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
            pipeline_root: "/home/runs/r1/.artifacts".into(),
        }
    }

    /// A step's view under fixed roots, as in a container.
    struct Under(&'static str);

    impl Locations for Under {
        fn input(&self, name: &str) -> String {
            format!("{}/inputs/{name}/data", self.0)
        }
        fn output(&self, name: &str) -> String {
            format!("{}/outputs/{name}/data", self.0)
        }
        fn output_root_file(&self, file: &str) -> String {
            format!("{}/outputs/{file}", self.0)
        }
    }

    const UNDER: &Under = &Under("/tmp");

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
        let input = executor_input(&ctx(), &Under("/w"));
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
