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
use crate::spec::{ResourceSpec, TypeSpec};
use crate::store::TaskDir;

/// The task folder of a step in its container: inputs at `inputs/<name>/data`, outputs
/// at `outputs/<name>/data`, each name as [`crate::store::path_segment`] writes it.
pub const STEP_ROOT: &str = "/sluice/task";
/// Where an exported workflow places the step file.
pub const STEP_FILE: &str = "/sluice/step.json";
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
}

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
    /// A file or folder the engine placed at `inputs/<name>/data`.
    Artifact {
        #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
        type_: Option<TypeSpec>,
    },
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
    /// Components pulled before the step ran: reference to (file, pinned reference).
    pub pulled: BTreeMap<String, (PathBuf, String)>,
}

/// Runs a step file, as `sluice task exec --step` does: lays its inputs out in the task
/// folder, runs it, writes parameter values a typed step returned and the result file
/// (`result.json`) into the task folder, and returns the result. A declared output the
/// step did not write fails it, naming the output.
pub async fn run_step(
    file: StepFile,
    options: StepOptions,
    cancel: CancellationToken,
    observer: Arc<dyn Observer>,
) -> Result<ResultFile, StepError> {
    let dir = TaskDir {
        root: options.root.clone(),
        outputs: options.root.join("outputs"),
    };
    let mut given: BTreeMap<&str, &str> = BTreeMap::new();
    for (name, value) in &options.values {
        match file.inputs.get(name) {
            Some(StepInput::Value { .. }) => {}
            Some(_) => {
                return Err(StepError::Usage {
                    message: format!(
                        "--value {name}: input '{name}' of task '{}' is not given on the command line",
                        file.task
                    ),
                });
            }
            None => {
                return Err(StepError::Usage {
                    message: format!("--value {name}: task '{}' has no such input", file.task),
                });
            }
        }
        if given.insert(name, value).is_some() {
            return Err(StepError::Usage {
                message: format!("--value {name}: given twice"),
            });
        }
    }
    let mut inputs = BTreeMap::new();
    for (name, input) in &file.inputs {
        let path = dir.input_file(name);
        let (value, type_) = match input {
            StepInput::Constant { value, type_ } => (Some(value.as_str()), type_),
            StepInput::Value { type_ } => match given.get(name.as_str()) {
                Some(v) => (Some(*v), type_),
                None => {
                    return Err(StepError::Usage {
                        message: format!("input '{name}' needs --value {name}=TEXT"),
                    });
                }
            },
            StepInput::Artifact { type_ } => (None, type_),
        };
        let input_error = |message: String| StepError::Input {
            path: path.clone(),
            message,
        };
        if let Some(value) = value {
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
                value: value.map(str::to_owned),
                type_: type_.clone(),
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
        kfp: None,
        transform: None,
        host: HostSettings::new(&wasm, &policy),
    };
    let mut result = run_attempt(attempt, cancel, observer)
        .await
        .map_err(|message| StepError::Usage { message })?;
    if let Outcome::Succeeded(completion) = &result.outcome
        && let Err(message) = write_outputs(&file, &dir, &completion.params)
    {
        result.outcome = Outcome::Failed(super::Failure::failed(message));
    }
    result.write(&options.root.join(RESULT_FILE))?;
    Ok(result)
}

/// Writes the parameter values a typed step returned at their outputs' paths, and checks
/// every declared output is there.
fn write_outputs(
    file: &StepFile,
    dir: &TaskDir,
    params: &BTreeMap<String, String>,
) -> Result<(), String> {
    for output in &file.component.spec.outputs {
        let path = dir.output_file(&output.name);
        if let Some(value) = params.get(&output.name) {
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
            ("c".to_owned(), StepInput::Artifact { type_: None }),
        ]);
        let json = serde_json::to_string(&inputs).unwrap();
        assert_eq!(
            json,
            r#"{"a":{"from":"constant","value":"x"},"b":{"from":"value"},"c":{"from":"artifact"}}"#
        );
        let back: BTreeMap<String, StepInput> = serde_json::from_str(&json).unwrap();
        assert_eq!(back, inputs);
    }
}
