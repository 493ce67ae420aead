//! One task attempt as files, so that another process (on another machine of a cluster)
//! can run it: the *attempt file* the driver writes, holding everything
//! [`Executor::execute`] receives but the cancellation token and the event sink, and the
//! *result file* the attempt leaves beside it. Both are JSON with a `version` field
//! ([`ATTEMPT_VERSION`]); a reader refuses a version it does not know.
//!
//! `sluice task exec <attempt file>` reads the first, runs the attempt with the same
//! executors a local run uses (the wasm sandbox, the machine's Docker Engine, or the
//! process runner), and writes the second. Staging inputs before and collecting outputs
//! after stay with the driver, on the file system both share: only the driver writes the
//! run record.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::docker::{DockerConfig, PullPolicy};
use super::runners::{ContainerRunner, Policy, Runners};
use super::wasm::{WasmConfig, WasmExecutor};
use super::{Completion, Executor, Failure, InputArg, Invocation, Prepared, Report, TransformCall};
use crate::events::{Observer, TaskSink};
use crate::launcher::TaskContext;
use crate::spec::{Component, ComponentSpec, ResourceSpec, TypeSpec};
use crate::store::{LogRecord, TaskDir};

/// The version of the attempt and result files this build writes and reads.
pub const ATTEMPT_VERSION: u32 = 1;
/// The attempt file's name in its task folder.
pub const ATTEMPT_FILE: &str = crate::store::ATTEMPT_FILE;
/// The result file's name in its task folder.
pub const RESULT_FILE: &str = "result.json";

/// What an attempt runs with besides the task itself: how implementations run and the
/// defaults of the wasm sandbox, as the driver was configured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HostSettings {
    /// Where compiled wasm is cached (shared by every machine that runs attempts).
    pub cache_dir: PathBuf,
    /// Components pulled from registries before the run: reference to (file, pinned
    /// reference).
    #[serde(default)]
    pub pulled: BTreeMap<String, (PathBuf, String)>,
    /// `docker` or `process` (`--runner`).
    pub runner: String,
    /// `if-not-present`, `always` or `never` (`--pull`).
    pub pull: String,
    pub keep_containers: bool,
    /// Bytes kept of the beginning and of the end of each output stream.
    pub log_keep: usize,
    /// Wasm defaults, for tasks whose resources leave them unset: bytes of memory, CPU
    /// time in milliseconds, bytes of outputs, open handles.
    pub wasm_memory: u64,
    pub wasm_cpu_time_ms: u64,
    pub wasm_ephemeral_storage: u64,
    pub wasm_open_files: u32,
}

impl HostSettings {
    /// The settings of a driver whose wasm host and runners are configured so.
    pub fn new(wasm: &WasmConfig, policy: &Policy) -> HostSettings {
        // Absolute: they are read by another process, in another working folder.
        let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
        HostSettings {
            cache_dir: absolute(&wasm.cache_dir),
            pulled: wasm
                .pulled
                .iter()
                .map(|(k, (path, pinned))| (k.clone(), (absolute(path), pinned.clone())))
                .collect(),
            runner: match policy.runner {
                ContainerRunner::Docker => "docker",
                ContainerRunner::Process => "process",
            }
            .to_owned(),
            pull: policy.docker.pull.to_string(),
            keep_containers: policy.docker.keep_containers,
            log_keep: wasm.log_keep,
            wasm_memory: wasm.default_memory,
            wasm_cpu_time_ms: u64::try_from(wasm.default_cpu_time.as_millis()).unwrap_or(u64::MAX),
            wasm_ephemeral_storage: wasm.default_ephemeral_storage,
            wasm_open_files: wasm.default_open_files,
        }
    }

    fn wasm_config(&self) -> WasmConfig {
        WasmConfig {
            cache_dir: self.cache_dir.clone(),
            default_memory: self.wasm_memory,
            default_cpu_time: Duration::from_millis(self.wasm_cpu_time_ms),
            default_ephemeral_storage: self.wasm_ephemeral_storage,
            default_open_files: self.wasm_open_files,
            // A node runs one attempt.
            instances: 1,
            log_keep: self.log_keep,
            pulled: self
                .pulled
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect::<HashMap<_, _>>(),
        }
    }

    fn policy(&self) -> Result<Policy, String> {
        Ok(Policy {
            runner: self
                .runner
                .parse()
                .map_err(|e| format!("host.runner: {e}"))?,
            docker: DockerConfig {
                pull: self
                    .pull
                    .parse::<PullPolicy>()
                    .map_err(|e| format!("host.pull: {e}"))?,
                keep_containers: self.keep_containers,
                log_keep: self.log_keep,
            },
            ..Policy::default()
        })
    }
}

/// One input of the attempt: an artifact in the store, staged in the task folder.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InputFile {
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<TypeSpec>,
}

/// The component of the attempt: its spec, and the file it came from (absolute), against
/// which its `.wasm` path resolves.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ComponentFile {
    pub spec: ComponentSpec,
    pub path: PathBuf,
    pub digest: String,
}

/// An attempt file: one attempt of one task, ready to run anywhere the store and the
/// task folder are.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AttemptFile {
    /// [`ATTEMPT_VERSION`].
    pub version: u32,
    pub run_id: String,
    pub task: String,
    pub attempt: u32,
    pub component: ComponentFile,
    pub inputs: BTreeMap<String, InputFile>,
    /// The task folder (`inputs/` staged) and where outputs go.
    pub root: PathBuf,
    pub outputs: PathBuf,
    pub resources: ResourceSpec,
    /// The attempt's wall-clock limit, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// The implementation chosen for the task, and why.
    pub prepared: Prepared,
    /// A KFP task's executor input and placeholders.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kfp: Option<TaskContext>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<TransformCall>,
    pub host: HostSettings,
}

/// A task attempt that cannot be handed to another process.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    #[error("cannot read {}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

impl AttemptFile {
    /// The file for `inv`. An input handed over in memory (a fused chain) cannot cross
    /// processes and is an error; so is a component file whose path cannot be made
    /// absolute.
    pub fn new(inv: &Invocation, host: &HostSettings) -> Result<AttemptFile, String> {
        let mut inputs = BTreeMap::new();
        for (name, arg) in &inv.inputs {
            if arg.table.is_some() {
                return Err(format!(
                    "input '{name}' is a table held in memory, which cannot cross to another process"
                ));
            }
            inputs.insert(
                name.clone(),
                InputFile {
                    digest: arg.digest.clone(),
                    size: arg.size,
                    value: arg.value.clone(),
                    type_: arg.type_.clone(),
                },
            );
        }
        let absolute = |p: &Path| {
            std::path::absolute(p).map_err(|e| format!("cannot resolve {}: {e}", p.display()))
        };
        Ok(AttemptFile {
            version: ATTEMPT_VERSION,
            run_id: inv.run_id.clone(),
            task: inv.task.clone(),
            attempt: inv.attempt,
            component: ComponentFile {
                spec: inv.component.spec.clone(),
                path: absolute(&inv.component.path)?,
                digest: inv.component.digest.clone(),
            },
            inputs,
            root: absolute(&inv.dir.root)?,
            outputs: absolute(&inv.dir.outputs)?,
            resources: inv.resources.clone(),
            timeout_ms: inv
                .timeout
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            prepared: inv.prepared.clone(),
            kfp: inv.kfp.as_deref().cloned(),
            transform: inv.transform.as_deref().cloned(),
            host: host.clone(),
        })
    }

    /// Reads an attempt file, refusing one of another version with a line that says which.
    pub fn read(path: &Path) -> Result<AttemptFile, AttemptError> {
        read_versioned(path)
    }

    /// Writes the file at `path`, whole or not at all.
    pub fn write(&self, path: &Path) -> Result<(), AttemptError> {
        write_json(path, self)
    }

    /// The invocation it describes, cancelled by `cancel` and reporting to `sink`.
    pub fn invocation(self, cancel: CancellationToken, sink: TaskSink) -> Invocation {
        let inputs = self
            .inputs
            .into_iter()
            .map(|(name, i)| {
                let arg = InputArg {
                    digest: i.digest,
                    size: i.size,
                    value: i.value,
                    type_: i.type_,
                    table: None,
                };
                (name, arg)
            })
            .collect();
        Invocation {
            run_id: self.run_id,
            task: self.task,
            attempt: self.attempt,
            component: Arc::new(Component {
                spec: self.component.spec,
                path: self.component.path,
                digest: self.component.digest,
            }),
            inputs,
            dir: TaskDir {
                root: self.root,
                outputs: self.outputs,
            },
            resources: self.resources,
            timeout: self.timeout_ms.map(Duration::from_millis),
            started: Arc::new(tokio::sync::Notify::new()),
            prepared: self.prepared,
            cancel,
            sink,
            kfp: self.kfp.map(Arc::new),
            transform: self.transform.map(Arc::new),
        }
    }
}

/// How an attempt run from its file ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Succeeded(Completion),
    Failed(Failure),
}

/// A result file: what [`Executor::execute`] returned, and where it ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ResultFile {
    /// [`ATTEMPT_VERSION`].
    pub version: u32,
    pub outcome: Outcome,
    pub logs: Vec<LogRecord>,
    /// The host name of the machine it ran on.
    pub host: String,
}

impl ResultFile {
    pub fn read(path: &Path) -> Result<ResultFile, AttemptError> {
        read_versioned(path)
    }

    pub fn write(&self, path: &Path) -> Result<(), AttemptError> {
        write_json(path, self)
    }

    /// The report it holds.
    pub fn report(self) -> Report {
        Report {
            ran_on: None,
            result: match self.outcome {
                Outcome::Succeeded(c) => Ok(c),
                Outcome::Failed(f) => Err(f),
            },
            logs: self.logs,
        }
    }
}

pub(crate) fn read_versioned<T: serde::de::DeserializeOwned>(
    path: &Path,
) -> Result<T, AttemptError> {
    // No bigger than a pipeline file may be: a stray path (`/dev/zero`) is refused, not
    // read into memory.
    let bytes =
        crate::files::read_limited(path, crate::files::SPEC_FILE_MAX, crate::files::Follow::Yes)
            .map_err(|source| AttemptError::Read {
                path: path.to_owned(),
                source,
            })?;
    let invalid = |message: String| AttemptError::Invalid {
        path: path.to_owned(),
        message,
    };
    #[derive(Deserialize)]
    struct Version {
        version: Option<serde_json::Value>,
    }
    let version = serde_json::from_slice::<Version>(&bytes)
        .map_err(|e| invalid(format!("expected a JSON object: {e}")))?
        .version;
    match version {
        Some(v) if v == ATTEMPT_VERSION => {}
        Some(v) if v.is_u64() => {
            return Err(invalid(format!(
                "version: expected {ATTEMPT_VERSION}, found {v} (written by another release of Sluice)"
            )));
        }
        Some(v) => {
            return Err(invalid(format!(
                "version: expected the whole number {ATTEMPT_VERSION}, found {v}"
            )));
        }
        None => return Err(invalid("version: missing".into())),
    }
    serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))
}

fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), AttemptError> {
    let write = |source| AttemptError::Write {
        path: path.to_owned(),
        source,
    };
    let bytes = serde_json::to_vec_pretty(value).map_err(|e| write(std::io::Error::other(e)))?;
    let partial = path.with_extension("json.partial");
    std::fs::write(&partial, bytes)
        .and_then(|()| std::fs::rename(&partial, path))
        .map_err(write)
}

/// Runs the attempt an attempt file describes, as `sluice task exec` does: with the
/// executors a local run uses, cancelled when `cancel` fires (the job was cancelled or
/// reached its time limit), its log lines handed to `observer` as they come. Writes the
/// result file beside the attempt file, and returns it.
pub async fn run_file(
    path: &Path,
    cancel: CancellationToken,
    observer: Arc<dyn Observer>,
) -> Result<ResultFile, AttemptError> {
    let file = AttemptFile::read(path)?;
    let result = run_attempt(file, cancel, observer)
        .await
        .map_err(|message| AttemptError::Invalid {
            path: path.to_owned(),
            message,
        })?;
    result.write(&path.with_file_name(RESULT_FILE))?;
    Ok(result)
}

/// Runs an attempt with the executors a local run uses, and returns its result; the
/// error is a host setting this build cannot use, naming the field.
pub(crate) async fn run_attempt(
    file: AttemptFile,
    cancel: CancellationToken,
    observer: Arc<dyn Observer>,
) -> Result<ResultFile, String> {
    let policy = file.host.policy()?;
    let failed = |message: String| Report {
        ran_on: None,
        result: Err(Failure::failed(message)),
        logs: Vec::new(),
    };
    let report = match WasmExecutor::new(file.host.wasm_config()) {
        Ok(wasm) => {
            let runners = Runners::new(Arc::new(wasm), policy);
            let sink = TaskSink::new(file.task.clone(), observer);
            runners.execute(file.invocation(cancel, sink)).await
        }
        Err(e) => failed(format!(
            "cannot set up wasmtime: {}",
            super::error_chain(&e)
        )),
    };
    Ok(ResultFile {
        version: ATTEMPT_VERSION,
        outcome: match report.result {
            Ok(c) => Outcome::Succeeded(c),
            Err(f) => Outcome::Failed(f),
        },
        logs: report.logs,
        host: rustix::system::uname()
            .nodename()
            .to_string_lossy()
            .into_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_component_spec_reads_back_as_written() {
        let yaml = r#"
name: every placeholder
inputs:
  - {name: a, type: String, default: "x"}
  - {name: b, type: {GCSPath: {data_type: CSV}}, optional: true}
  - {name: c, type: Integer, default: "3"}
outputs:
  - {name: o, type: Dataset}
implementation:
  container:
    image: img
    command: [sh, -c, {executorInput: }, {outputMetadata: {}}]
    args:
      - {inputValue: a}
      - {inputPath: b}
      - {inputUri: b}
      - {outputPath: o}
      - {outputUri: o}
      - {concat: [--n=, {inputValue: c}]}
      - if: {cond: {isPresent: b}, then: [--b, {inputPath: b}], else: [--no-b]}
      - 7
      - true
    env: {A: "1"}
"#;
        let component = Component::parse(Path::new("/c/component.yaml"), yaml).unwrap();
        let written = serde_json::to_string(&component.spec).unwrap();
        let read: ComponentSpec = serde_json::from_str(&written).unwrap();
        assert_eq!(serde_json::to_string(&read).unwrap(), written);
        let container = read.implementation.container.unwrap();
        assert_eq!(
            container.args,
            component.spec.implementation.container.unwrap().args
        );
        assert_eq!(
            container.command[2],
            crate::spec::placeholder::Arg::ExecutorInput
        );
        assert_eq!(
            read.inputs[1].type_.as_ref().unwrap().to_string(),
            r#"GCSPath{"data_type":"CSV"}"#
        );
    }

    #[test]
    fn an_attempt_file_of_another_version_is_refused_in_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(ATTEMPT_FILE);
        std::fs::write(&path, r#"{"version": 2, "task": "t"}"#).unwrap();
        let err = AttemptFile::read(&path).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "{}: version: expected 1, found 2 (written by another release of Sluice)",
                path.display()
            )
        );
        std::fs::write(&path, r#"{"version": 1.0}"#).unwrap();
        assert_eq!(
            AttemptFile::read(&path).unwrap_err().to_string(),
            format!(
                "{}: version: expected the whole number 1, found 1.0",
                path.display()
            )
        );
        std::fs::write(&path, "[]").unwrap();
        assert!(
            AttemptFile::read(&path)
                .unwrap_err()
                .to_string()
                .contains("expected a JSON object")
        );
    }
}
