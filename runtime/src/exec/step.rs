//! One task of a workflow that another engine schedules (an exported Argo Workflow): the
//! *step file* the export writes for each task, and [`run_step`], which runs it inside the
//! task's pod as `sluice task exec --step FILE`.
//!
//! Unlike an attempt file, a step file is written before anything runs, so it holds no
//! digests: the workflow engine places each artifact input at `inputs/<name>/data` of the
//! step's task folder ([`STEP_ROOT`]) and passes each parameter on the command line
//! (`--value NAME=TEXT`); constants and defaults are in the file. The step then runs like
//! an attempt of a local run (the wasm sandbox, or a container's command as a process
//! inside the container the engine started), writes each output at `outputs/<name>/data`,
//! where the engine collects it, and the result file at the task folder's root. It writes
//! no run record: the engine keeps the workflow's state.
//!
//! The file is JSON with a `version` field ([`super::attempt::ATTEMPT_VERSION`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::Prepared;
use super::attempt::{
    ATTEMPT_VERSION, AttemptError, AttemptFile, ComponentFile, HostSettings, InputFile, Outcome,
    RESULT_FILE, ResultFile, run_attempt,
};
use super::runners::{ContainerRunner, Policy};
use super::wasm::WasmConfig;
use crate::events::Observer;
use crate::launcher::task::Interface;
use crate::spec::{ResourceSpec, TypeSpec};
use crate::store::TaskDir;

/// The task folder of a step in its container: inputs at `inputs/<name>/data`, outputs
/// at `outputs/<name>/data`, each name as [`crate::store::path_segment`] writes it.
pub const STEP_ROOT: &str = "/sluice/task";
/// Where an exported workflow places the step file.
pub const STEP_FILE: &str = "/sluice/step.json";
/// The folder of a step's task folder where the engine places the candidates of an input
/// that is one of several: `candidates/<name>/<k>/data` for the `k`th.
pub const CANDIDATES: &str = "candidates";
/// Where a step image built with embedded components holds them, by digest
/// (`sha256-<hex>.wasm`).
pub const COMPONENTS_DIR: &str = "/sluice/components";

/// A step file: one task of a pipeline, as every run of an exported workflow runs it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StepFile {
    /// [`ATTEMPT_VERSION`].
    pub version: u32,
    /// The pipeline's name.
    pub pipeline: String,
    pub task: String,
    /// The component, its wasm implementation (if it runs as wasm) named where the step
    /// finds it: a file under [`COMPONENTS_DIR`], or an `oci://` reference by digest.
    pub component: ComponentFile,
    /// Every input that has a value, by input name.
    pub inputs: BTreeMap<String, StepInput>,
    pub resources: ResourceSpec,
    /// The attempt's wall-clock limit, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The implementation chosen for the task, and why; a container's runs as a process
    /// in the container the engine started.
    pub prepared: Prepared,
    /// For a task of a compiled KFP pipeline: what its executor input is built from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kfp: Option<KfpStep>,
}

/// What a KFP task's step needs to build its executor input as KFP's driver does: the
/// component's interface (by which its values are typed and defaulted), and the names its
/// input artifacts had where they were made.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KfpStep {
    pub inputs: Interface,
    pub outputs: Interface,
    /// What `{{$.pipeline_root}}` resolves to.
    pub pipeline_root: String,
    /// Each input artifact's name in its producer (its output's name), by input.
    #[serde(default)]
    pub artifact_names: BTreeMap<String, String>,
}

/// A condition of an exported workflow: a check step that binds its inputs as a KFP group
/// does and evaluates the group's CEL expression over them, writing `true` or `false` at
/// `outputs/holds/data` (the workflow's `when` reads it).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConditionFile {
    /// [`ATTEMPT_VERSION`].
    pub version: u32,
    pub pipeline: String,
    /// The group whose condition it is.
    pub group: String,
    /// CEL over `inputs.parameter_values` (KFP's form).
    pub condition: String,
    pub inputs: BTreeMap<String, StepInput>,
}

impl ConditionFile {
    /// Reads a condition file, refusing one of another version.
    pub fn read(path: &Path) -> Result<ConditionFile, AttemptError> {
        super::attempt::read_versioned(path)
    }
}

/// The output a condition step writes.
pub const CONDITION_OUTPUT: &str = "holds";

/// Where one input of a step gets its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "from", rename_all = "snake_case")]
pub enum StepInput {
    /// Written in the pipeline: a constant, or the component's default.
    Constant {
        value: String,
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        type_: Option<TypeSpec>,
    },
    /// Given on the step's command line (`--value NAME=TEXT`): a pipeline parameter.
    Value {
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        type_: Option<TypeSpec>,
    },
    /// A file or folder the engine placed at `inputs/<name>/data` (with, for a KFP
    /// artifact, its metadata at `inputs/<name>/metadata.json`). A KFP parameter given so
    /// is the file's text.
    Artifact {
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        type_: Option<TypeSpec>,
        /// Absent when its producer did not succeed (the step runs however its upstream
        /// ended): the input then has no value, as in a local run.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        optional: bool,
    },
    /// A KFP run placeholder (`{{$.pipeline_job_name}}`), filled in when the step runs.
    RunText {
        text: String,
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        type_: Option<TypeSpec>,
    },
    /// How a task or group of the workflow ended, given on the command line as the
    /// engine's phase of it (`--value NAME={{tasks.X.status}}`): KFP's
    /// `PipelineTaskFinalStatus` of `task`.
    FinalStatus { task: String },
    /// A field of another input's JSON value, by a CEL field selector (KFP's
    /// `parameterExpressionSelector`), taken when the step runs.
    Select {
        of: Box<StepInput>,
        selector: String,
    },
    /// The first of these that has a value when the step runs (KFP's `dsl.OneOf`, and a
    /// nested pipeline's default for an input its parent may leave unset): each artifact
    /// candidate optional, at `candidates/<name>/<k>/data` ([`CANDIDATES`]); at most one
    /// other candidate, the last, which always has a value. The input has no value when
    /// none has.
    OneOf { of: Vec<StepInput> },
}

impl StepInput {
    /// Whether its value comes on the command line.
    pub fn is_given(&self) -> bool {
        match self {
            StepInput::Value { .. } | StepInput::FinalStatus { .. } => true,
            StepInput::Select { of, .. } => of.is_given(),
            StepInput::OneOf { of } => of.last().is_some_and(StepInput::is_given),
            _ => false,
        }
    }

    fn type_(&self) -> Option<&TypeSpec> {
        match self {
            StepInput::Constant { type_, .. }
            | StepInput::Value { type_ }
            | StepInput::Artifact { type_, .. }
            | StepInput::RunText { type_, .. } => type_.as_ref(),
            StepInput::OneOf { of } => of.first().and_then(StepInput::type_),
            StepInput::FinalStatus { .. } | StepInput::Select { .. } => None,
        }
    }
}

/// The inputs of a step with each that is one of several ([`StepInput::OneOf`]) replaced
/// by the first of its candidates that has a value: an artifact candidate the engine
/// placed in its folder under [`CANDIDATES`] is moved to the input's own place
/// (`inputs/<name>/data`, its metadata beside it; copied when the engine mounted it and it
/// cannot move), any other always has one; an input none of whose candidates has a value
/// is left out. The `--value`s of candidates not taken are dropped; one for an input that
/// is one of several but takes none from the command line is an error.
fn choose(
    inputs: &mut BTreeMap<String, StepInput>,
    values: &mut Vec<(String, String)>,
    root: &Path,
    task: &str,
) -> Result<(), StepError> {
    let mut chosen = BTreeMap::new();
    for (name, input) in inputs.iter() {
        let StepInput::OneOf { of } = input else {
            chosen.insert(name.clone(), input.clone());
            continue;
        };
        let segment = crate::store::path_segment(name);
        for (k, candidate) in of.iter().enumerate() {
            let StepInput::Artifact { type_, .. } = candidate else {
                chosen.insert(name.clone(), candidate.clone());
                break;
            };
            let from = root.join(CANDIDATES).join(&segment).join(k.to_string());
            if std::fs::symlink_metadata(from.join("data")).is_err() {
                continue;
            }
            let to = root.join("inputs").join(&segment);
            for file in ["data", "metadata.json"] {
                if std::fs::symlink_metadata(from.join(file)).is_ok() {
                    take(&from.join(file), &to.join(file)).map_err(|e| StepError::Input {
                        path: from.join(file),
                        message: format!("cannot take input '{name}' from it: {e}"),
                    })?;
                }
            }
            chosen.insert(
                name.clone(),
                StepInput::Artifact {
                    type_: type_.clone(),
                    optional: false,
                },
            );
            break;
        }
    }
    let mut kept = Vec::new();
    for (name, value) in values.drain(..) {
        match inputs.get(&name) {
            Some(input @ StepInput::OneOf { .. }) => {
                if !input.is_given() {
                    return Err(StepError::Usage {
                        message: format!(
                            "--value {name}: input '{name}' of '{task}' is not given on the command line"
                        ),
                    });
                }
                if chosen.get(&name).is_some_and(StepInput::is_given) {
                    kept.push((name, value));
                }
            }
            _ => kept.push((name, value)),
        }
    }
    *inputs = chosen;
    *values = kept;
    Ok(())
}

/// Moves a file or folder, or copies it when it cannot move (a mount point, another file
/// system).
fn take(from: &Path, to: &Path) -> std::io::Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)?;
    }
    if std::fs::rename(from, to).is_ok() {
        return Ok(());
    }
    crate::files::copy_tree(from, to)
}

/// The text of every input that has one (all but artifacts), as the step reads it; with
/// `check_types`, a value given on the command line must be of its input's type.
fn input_texts(
    pipeline: &str,
    inputs: &BTreeMap<String, StepInput>,
    options: &StepOptions,
    task: &str,
    check_types: bool,
) -> Result<BTreeMap<String, String>, StepError> {
    let mut given: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in &options.values {
        match inputs.get(name) {
            Some(input) if input.is_given() => {}
            Some(_) => {
                return Err(StepError::Usage {
                    message: format!(
                        "--value {name}: input '{name}' of '{task}' is not given on the command line"
                    ),
                });
            }
            None => {
                return Err(StepError::Usage {
                    message: format!("--value {name}: '{task}' has no such input"),
                });
            }
        }
        if given.insert(name, value).is_some() {
            return Err(StepError::Usage {
                message: format!("--value {name}: given twice"),
            });
        }
    }
    let mut texts = BTreeMap::new();
    for (name, input) in inputs {
        let (input, selector) = match input {
            StepInput::Select { of, selector } => (of.as_ref(), Some(selector)),
            other => (other, None),
        };
        let text = match input {
            StepInput::Artifact { .. } if selector.is_some() => {
                let path = options
                    .root
                    .join("inputs")
                    .join(crate::store::path_segment(name))
                    .join("data");
                super::read_value_file(&path)
            }
            StepInput::Constant { value, .. } => value.clone(),
            StepInput::RunText { text, .. } => run_placeholder(text, pipeline, options, task),
            StepInput::Value { .. } | StepInput::FinalStatus { .. } => {
                let Some(text) = given.get(name.as_str()) else {
                    return Err(StepError::Usage {
                        message: format!("input '{name}' needs --value {name}=TEXT"),
                    });
                };
                // A value the engine was given at submission has not been checked yet (a
                // KFP task's are, by its interface, when they are bound).
                if check_types
                    && let StepInput::Value { type_: Some(t) } = input
                    && let Some(param) = t.param_type()
                {
                    param.check(text).map_err(|e| StepError::Usage {
                        message: format!("--value {name}: {e}"),
                    })?;
                }
                match input {
                    StepInput::FinalStatus { task: of } => {
                        let resource_name = format!("{pipeline}-{}", options.run_id);
                        final_status(text, &resource_name, of).to_string()
                    }
                    _ => (*text).to_owned(),
                }
            }
            // An input that is one of several has been chosen (`choose`) by now.
            StepInput::Artifact { .. } | StepInput::Select { .. } | StepInput::OneOf { .. } => {
                continue;
            }
        };
        let text = match selector {
            None => text,
            Some(selector) => {
                let value = serde_json::from_str(&text)
                    .unwrap_or_else(|_| serde_json::Value::String(text.clone()));
                let selected = crate::launcher::expr::Selector::compile(selector)
                    .and_then(|s| s.select(&value))
                    .map_err(|e| StepError::Usage {
                        message: format!("input '{name}': {e}"),
                    })?;
                crate::launcher::values::render(&selected)
            }
        };
        texts.insert(name.clone(), text);
    }
    Ok(texts)
}

/// KFP's run placeholders as a step of an exported workflow has them: the run is the
/// workflow (`--run`), the task its pod (`--task-id`).
fn run_placeholder(text: &str, pipeline: &str, options: &StepOptions, task: &str) -> String {
    match text {
        "{{$.pipeline_job_name}}" => pipeline.to_owned(),
        "{{$.pipeline_job_resource_name}}" => format!("{pipeline}-{}", options.run_id),
        "{{$.pipeline_job_uuid}}" => options.run_id.clone(),
        "{{$.pipeline_task_name}}" => task.to_owned(),
        "{{$.pipeline_task_uuid}}" => options.task_id.clone(),
        "{{$.pipeline_job_create_time_utc}}" | "{{$.pipeline_job_schedule_time_utc}}" => {
            options.created.clone()
        }
        other => other.to_owned(),
    }
}

/// KFP's `PipelineTaskFinalStatus` of a task or group from its Argo phase: `Succeeded`,
/// or `Skipped` (its condition did not hold), is `COMPLETE`; `Failed`, `Error` and
/// `Omitted` (skipped after a failure) are `FAILED`.
pub fn final_status(phase: &str, resource_name: &str, task: &str) -> serde_json::Value {
    let (state, error) = match phase {
        "Succeeded" | "Skipped" => ("COMPLETE", serde_json::json!({})),
        other => (
            "FAILED",
            serde_json::json!({"code": 2, "message": format!("'{task}' ended {other}")}),
        ),
    };
    serde_json::json!({
        "state": state,
        "pipelineJobResourceName": resource_name,
        "pipelineTaskName": task,
        "error": error,
    })
}

/// Inputs' texts as JSON values: a final status as the object it is, any other as `value`
/// makes it.
fn json_values(
    texts: &BTreeMap<String, String>,
    inputs: &BTreeMap<String, StepInput>,
    value: impl Fn(&str, &StepInput) -> serde_json::Value,
) -> BTreeMap<String, serde_json::Value> {
    texts
        .iter()
        .map(|(name, text)| {
            let json = match inputs.get(name) {
                Some(StepInput::FinalStatus { .. }) => {
                    serde_json::from_str(text).unwrap_or(serde_json::Value::Null)
                }
                Some(input) => value(text, input),
                None => serde_json::Value::String(text.clone()),
            };
            (name.clone(), json)
        })
        .collect()
}

/// A value's text as the JSON value of its type (a v1 type name), as a KFP group binds
/// it; text when it has no parameter type or does not parse as one.
fn typed(text: &str, type_: Option<&TypeSpec>) -> serde_json::Value {
    type_
        .and_then(|t| crate::launcher::task::parameter_type(&t.name))
        .and_then(|t| crate::launcher::values::parse(t, text).ok())
        .unwrap_or_else(|| serde_json::Value::String(text.to_owned()))
}

/// Runs a condition file: writes `true` or `false` at `outputs/holds/data` of the task
/// folder and returns it. A condition that cannot be evaluated is an error naming it.
pub fn run_condition(file: &ConditionFile, options: &StepOptions) -> Result<bool, StepError> {
    let dir = TaskDir {
        root: options.root.clone(),
        outputs: options.root.join("outputs"),
    };
    let mut inputs = file.inputs.clone();
    let options = &mut options.clone();
    choose(&mut inputs, &mut options.values, &options.root, &file.group)?;
    let mut texts = input_texts(&file.pipeline, &inputs, options, &file.group, false)?;
    for (name, input) in &inputs {
        if let StepInput::Artifact { .. } = input {
            let path = dir.input_file(name);
            let bytes = crate::files::read_limited(
                &path,
                super::ARGV_MAX as u64,
                crate::files::Follow::Yes,
            )
            .map_err(|e| StepError::Input {
                path: path.clone(),
                message: format!("input '{name}': {e}"),
            })?;
            texts.insert(name.clone(), String::from_utf8_lossy(&bytes).into_owned());
        }
    }
    let mut params = json_values(&texts, &inputs, |text, input| typed(text, input.type_()));
    crate::launcher::resolve_parameter_references(&mut params);
    let holds = crate::launcher::expr::Condition::compile(&file.condition)
        .and_then(|c| c.holds(&params))
        .map_err(|e| StepError::Usage {
            message: format!(
                "group '{}': condition `{}`: {e}",
                file.group, file.condition
            ),
        })?;
    let out = dir.output_file(CONDITION_OUTPUT);
    std::fs::create_dir_all(out.parent().unwrap_or(&dir.root))
        .and_then(|()| std::fs::write(&out, holds.to_string()))
        .map_err(|e| StepError::Input {
            path: out.clone(),
            message: format!("cannot write the outcome: {e}"),
        })?;
    Ok(holds)
}

/// A step that cannot run: its file, or the values or artifacts it was given.
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    #[error(transparent)]
    File(#[from] AttemptError),
    #[error("{}: {message}", path.display())]
    Input { path: PathBuf, message: String },
    #[error("{message}")]
    Usage { message: String },
}

impl StepFile {
    /// Reads a step file, refusing one of another version.
    pub fn read(path: &Path) -> Result<StepFile, AttemptError> {
        super::attempt::read_versioned(path)
    }
}

/// How a step runs in its container.
#[derive(Clone, Debug)]
pub struct StepOptions {
    /// The task folder ([`STEP_ROOT`] in an exported workflow).
    pub root: PathBuf,
    /// `--value NAME=TEXT`, for every input the file says comes from the command line.
    pub values: Vec<(String, String)>,
    /// Where compiled wasm is cached.
    pub cache_dir: PathBuf,
    /// The run's name, as the engine names it (`{{workflow.name}}`).
    pub run_id: String,
    /// The task's id in the run (`{{pod.name}}`).
    pub task_id: String,
    /// When the run was created, RFC 3339 (`{{workflow.creationTimestamp}}`).
    pub created: String,
    /// Components pulled before the step ran: reference to (file, pinned reference).
    pub pulled: BTreeMap<String, (PathBuf, String)>,
}

/// Runs a step file, as `sluice task exec --step` does: lays its inputs out in the task
/// folder, runs it, takes a KFP step's executor output, writes parameter values the step
/// returned (and a KFP artifact's metadata, at `outputs/<name>/metadata.json`) and the
/// result file (`result.json`) into the task folder, and returns the result. A declared
/// output the step did not write fails it, naming the output.
pub async fn run_step(
    file: StepFile,
    options: StepOptions,
    cancel: CancellationToken,
    observer: Arc<dyn Observer>,
) -> Result<ResultFile, StepError> {
    let (mut file, mut options) = (file, options);
    choose(
        &mut file.inputs,
        &mut options.values,
        &options.root,
        &file.task,
    )?;
    let dir = TaskDir {
        root: options.root.clone(),
        outputs: options.root.join("outputs"),
    };
    let texts = input_texts(
        &file.pipeline,
        &file.inputs,
        &options,
        &file.task,
        file.kfp.is_none(),
    )?;
    let kfp_artifact = |name: &str| {
        file.kfp
            .as_ref()
            .is_some_and(|k| k.inputs.artifacts.contains_key(name))
    };
    // A KFP parameter passed as a file is the file's text.
    let mut texts = texts;
    if file.kfp.is_some() {
        for (name, input) in &file.inputs {
            let path = dir.input_file(name);
            let missing = std::fs::symlink_metadata(&path).is_err();
            match input {
                // Its producer did not succeed: no value (KFP's binding takes the default).
                StepInput::Artifact { optional: true, .. } if missing => {}
                StepInput::Artifact { .. } if !kfp_artifact(name) => {
                    texts.insert(name.clone(), super::read_value_file(&path));
                }
                _ => {}
            }
        }
    }
    let mut context = None;
    if let Some(kfp) = &file.kfp {
        // As text: KFP's binding types them by the component's interface.
        let mut params = json_values(&texts, &file.inputs, |text, _| {
            serde_json::Value::String(text.to_owned())
        });
        crate::launcher::resolve_parameter_references(&mut params);
        crate::launcher::task::bind(&kfp.inputs, &mut params, |n| {
            file.inputs.contains_key(n) && kfp_artifact(n)
        })
        .map_err(|message| StepError::Usage { message })?;
        texts = params
            .iter()
            .map(|(n, v)| (n.clone(), crate::launcher::values::render(v)))
            .collect();
        let mut artifacts = BTreeMap::new();
        for (name, spec) in &kfp.inputs.artifacts {
            if !file.inputs.contains_key(name) {
                continue;
            }
            let metadata = std::fs::read(dir.input_file(name).with_file_name("metadata.json"))
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .unwrap_or_else(|| serde_json::json!({}));
            artifacts.insert(
                name.clone(),
                vec![crate::launcher::InputArtifact {
                    key: name.clone(),
                    name: kfp
                        .artifact_names
                        .get(name)
                        .cloned()
                        .unwrap_or(name.clone()),
                    type_: spec.artifact_type.clone(),
                    metadata,
                    uri: None,
                }],
            );
        }
        context = Some(crate::launcher::TaskContext {
            params,
            artifacts,
            output_params: kfp.outputs.parameters.keys().cloned().collect(),
            output_artifacts: kfp
                .outputs
                .artifacts
                .iter()
                .map(|(n, a)| (n.clone(), a.artifact_type.clone()))
                .collect(),
            pipeline_name: file.pipeline.clone(),
            run_id: options.run_id.clone(),
            task_name: file.task.clone(),
            task_id: options.task_id.clone(),
            created: options.created.clone(),
            pipeline_root: kfp.pipeline_root.clone(),
        });
    }
    let mut inputs = BTreeMap::new();
    let mut names: Vec<&String> = file
        .inputs
        .iter()
        .filter(|(name, input)| match input {
            StepInput::Artifact { optional: true, .. } => {
                std::fs::symlink_metadata(dir.input_file(name)).is_ok()
            }
            _ => true,
        })
        .map(|(name, _)| name)
        .collect();
    // Parameters KFP's binding gave a default to may have no step input of their own.
    let defaulted: Vec<&String> = texts.keys().filter(|n| !names.contains(n)).collect();
    names.extend(defaulted);
    for name in names {
        let path = dir.input_file(name);
        let value = texts.get(name.as_str());
        let type_ = match (file.inputs.get(name), &file.kfp) {
            (_, Some(kfp)) => kfp
                .inputs
                .parameters
                .get(name)
                .map(|p| TypeSpec::named(crate::launcher::task::v1_type(p.parameter_type)))
                .or_else(|| {
                    kfp.inputs
                        .artifacts
                        .get(name)
                        .map(|a| TypeSpec::named(a.artifact_type.title()))
                }),
            (Some(input), None) => input.type_().cloned(),
            (None, None) => None,
        };
        let input_error = |message: String| StepError::Input {
            path: path.clone(),
            message,
        };
        // A parameter given as a file keeps it (the engine may have mounted it); its value
        // as bound is what placeholders see.
        if let Some(value) = value
            && std::fs::symlink_metadata(&path).is_err()
        {
            let parent = path.parent().unwrap_or(&options.root);
            std::fs::create_dir_all(parent)
                .and_then(|()| std::fs::write(&path, value))
                .map_err(|e| input_error(format!("cannot write input '{name}': {e}")))?;
        }
        let (digest, size) = crate::store::digest_of(&path).map_err(|e| {
            input_error(format!(
                "input '{name}' is not there: {}",
                super::error_chain(&e)
            ))
        })?;
        inputs.insert(
            name.clone(),
            InputFile {
                digest,
                size,
                value: value.cloned(),
                type_,
            },
        );
    }
    // Each output's folder, as a local run's task folder has them.
    let outputs = dir.outputs();
    for output in &file.component.spec.outputs {
        let folder = outputs.join(crate::store::path_segment(&output.name));
        std::fs::create_dir_all(&folder).map_err(|e| StepError::Input {
            path: folder.clone(),
            message: format!("cannot create the folder of output '{}': {e}", output.name),
        })?;
    }
    let mut wasm = WasmConfig::new(options.cache_dir.clone());
    wasm.pulled = options.pulled.clone().into_iter().collect();
    wasm.instances = 1;
    let policy = Policy {
        runner: ContainerRunner::Process,
        ..Policy::default()
    };
    let attempt = AttemptFile {
        version: ATTEMPT_VERSION,
        run_id: options.run_id.clone(),
        task: file.task.clone(),
        attempt: 1,
        component: file.component.clone(),
        inputs,
        root: dir.root.clone(),
        outputs: outputs.clone(),
        resources: file.resources.clone(),
        timeout_ms: file.timeout_ms,
        prepared: file.prepared.clone(),
        kfp: context.clone(),
        transform: None,
        host: HostSettings::new(&wasm, &policy),
    };
    // A KFP v2 step written as a v1 component reports through an executor output too.
    let context = context.or_else(|| {
        file.component
            .spec
            .implementation
            .container
            .is_some()
            .then_some(())?;
        let component = crate::spec::Component {
            spec: file.component.spec.clone(),
            path: file.component.path.clone(),
            digest: file.component.digest.clone(),
        };
        component.uses_executor_input().then(|| {
            let sink = crate::events::TaskSink::new(file.task.clone(), observer.clone());
            super::launch::context_for_v1(&attempt.clone().invocation(cancel.clone(), sink))
        })
    });
    let mut result = run_attempt(attempt, cancel, observer)
        .await
        .map_err(|message| StepError::Usage { message })?;
    if let Outcome::Succeeded(completion) = &mut result.outcome {
        let finished = match &context {
            Some(context) => super::launch::finish(context, &dir, completion),
            None => Ok(()),
        };
        let written = finished
            .map_err(|f| f.message)
            .and_then(|()| write_outputs(&file, &dir, completion));
        if let Err(message) = written {
            result.outcome = Outcome::Failed(super::Failure::failed(message));
        }
    }
    result.write(&options.root.join(RESULT_FILE))?;
    Ok(result)
}

/// Writes the parameter values a step returned at their outputs' paths (and a KFP
/// artifact's metadata beside it), and checks every declared output is there.
fn write_outputs(
    file: &StepFile,
    dir: &TaskDir,
    completion: &super::Completion,
) -> Result<(), String> {
    if let Some(kfp) = &file.kfp {
        for name in kfp.outputs.artifacts.keys() {
            let metadata = completion
                .metadata
                .get(name)
                .cloned()
                .unwrap_or_else(|| serde_json::json!({}));
            let path = dir.output_file(name).with_file_name("metadata.json");
            std::fs::write(&path, metadata.to_string())
                .map_err(|e| format!("cannot write the metadata of output '{name}': {e}"))?;
        }
    }
    for output in &file.component.spec.outputs {
        let path = dir.output_file(&output.name);
        if let Some(value) = completion.params.get(&output.name) {
            let parent = path.parent().unwrap_or(&dir.root);
            std::fs::create_dir_all(parent)
                .and_then(|()| std::fs::write(&path, value))
                .map_err(|e| format!("cannot write output '{}': {e}", output.name))?;
        } else if std::fs::symlink_metadata(&path).is_err() {
            return Err(format!("output '{}' was not written", output.name));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_inputs_say_where_their_value_comes_from() {
        let inputs = BTreeMap::from([
            (
                "a".to_owned(),
                StepInput::Constant {
                    value: "x".into(),
                    type_: None,
                },
            ),
            ("b".to_owned(), StepInput::Value { type_: None }),
            (
                "c".to_owned(),
                StepInput::Artifact {
                    type_: None,
                    optional: false,
                },
            ),
        ]);
        let json = serde_json::to_string(&inputs).unwrap();
        assert_eq!(
            json,
            r#"{"a":{"from":"constant","value":"x"},"b":{"from":"value"},"c":{"from":"artifact"}}"#
        );
        let back: BTreeMap<String, StepInput> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, inputs);
    }

    #[test]
    fn values_given_at_submission_are_checked_against_their_type() {
        let inputs = BTreeMap::from([(
            "n".to_owned(),
            StepInput::Value {
                type_: Some(TypeSpec::named("Integer")),
            },
        )]);
        let options = |value: &str| StepOptions {
            root: PathBuf::from("/nonexistent"),
            values: vec![("n".into(), value.into())],
            cache_dir: PathBuf::new(),
            run_id: "r".into(),
            task_id: "t".into(),
            created: "2026-12-01T00:00:00Z".into(),
            pulled: BTreeMap::new(),
        };
        let texts = input_texts("p", &inputs, &options("12"), "t", true).unwrap();
        assert_eq!(texts["n"], "12");
        let err = input_texts("p", &inputs, &options("abc"), "t", true).unwrap_err();
        assert!(err.to_string().starts_with("--value n: "), "{err}");
    }

    #[test]
    fn one_of_several_takes_the_first_candidate_the_engine_placed() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let artifact = || StepInput::Artifact {
            type_: None,
            optional: true,
        };
        let inputs = BTreeMap::from([
            // Made by the second branch only.
            (
                "value".to_owned(),
                StepInput::OneOf {
                    of: vec![artifact(), artifact(), artifact()],
                },
            ),
            // No branch ran: the default given on the command line.
            (
                "fallback".to_owned(),
                StepInput::OneOf {
                    of: vec![artifact(), StepInput::Value { type_: None }],
                },
            ),
            // Nothing ran and there is no default.
            (
                "nothing".to_owned(),
                StepInput::OneOf {
                    of: vec![artifact()],
                },
            ),
            // A branch ran, so the default given is not taken.
            (
                "made".to_owned(),
                StepInput::OneOf {
                    of: vec![artifact(), StepInput::Value { type_: None }],
                },
            ),
        ]);
        let place = |name: &str, k: usize, text: &str| {
            let folder = root.join(CANDIDATES).join(name).join(k.to_string());
            std::fs::create_dir_all(&folder).unwrap();
            std::fs::write(folder.join("data"), text).unwrap();
            std::fs::write(folder.join("metadata.json"), format!("{{\"from\": {k}}}")).unwrap();
        };
        place("value", 1, "T");
        place("made", 0, "made");
        let values = vec![
            ("fallback".to_owned(), "default".to_owned()),
            ("made".to_owned(), "default".to_owned()),
        ];
        let (mut chosen, mut kept) = (inputs.clone(), values);
        choose(&mut chosen, &mut kept, root, "join").unwrap();
        assert_eq!(
            chosen.get("value"),
            Some(&StepInput::Artifact {
                type_: None,
                optional: false
            })
        );
        let taken = |name: &str, file: &str| {
            std::fs::read_to_string(root.join("inputs").join(name).join(file)).unwrap()
        };
        assert_eq!(taken("value", "data"), "T");
        assert_eq!(taken("value", "metadata.json"), r#"{"from": 1}"#);
        assert_eq!(
            chosen.get("fallback"),
            Some(&StepInput::Value { type_: None })
        );
        assert_eq!(chosen.get("nothing"), None);
        assert_eq!(taken("made", "data"), "made");
        assert_eq!(kept, vec![("fallback".to_owned(), "default".to_owned())]);

        // A value for one of several that takes none from the command line.
        let mut bad = vec![("value".to_owned(), "x".to_owned())];
        let err = choose(&mut inputs.clone(), &mut bad, root, "join").unwrap_err();
        assert_eq!(
            err.to_string(),
            "--value value: input 'value' of 'join' is not given on the command line"
        );
    }

    #[test]
    fn a_float_parameter_compares_as_a_number_in_a_condition() {
        let dir = tempfile::tempdir().unwrap();
        let file = ConditionFile {
            version: ATTEMPT_VERSION,
            pipeline: "p".into(),
            group: "condition-1".into(),
            condition: "inputs.parameter_values['rate'] < 0.5".into(),
            inputs: BTreeMap::from([(
                "rate".to_owned(),
                StepInput::Value {
                    type_: Some(TypeSpec::named("Float")),
                },
            )]),
        };
        let options = StepOptions {
            root: dir.path().to_owned(),
            values: vec![("rate".into(), "0.25".into())],
            cache_dir: PathBuf::new(),
            run_id: "r".into(),
            task_id: "t".into(),
            created: String::new(),
            pulled: BTreeMap::new(),
        };
        assert!(run_condition(&file, &options).unwrap());
        let written = std::fs::read_to_string(dir.path().join("outputs/holds/data")).unwrap();
        assert_eq!(written, "true");
    }
}
