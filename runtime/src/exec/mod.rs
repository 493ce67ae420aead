//! Executors run one attempt of one task. This module holds what every executor shares:
//! the [`Executor`] trait the scheduler calls, the [`Invocation`] it receives, how a
//! failure is classified, how placeholders see a task's inputs, and how declared outputs
//! are collected into the store afterwards. Executors know nothing of the scheduler.

pub mod attempt;
pub mod capture;
pub mod docker;
pub mod launch;
pub mod process;
pub mod runners;
pub mod step;
pub mod wasm;

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

pub(crate) use crate::error_chain;
use crate::events::TaskSink;
use crate::spec::placeholder::{Arg, Bindings, expand};
use crate::spec::{Component, ResourceSpec, TypeSpec};
use crate::store::{IoRecord, LogRecord, Store, StoreError, TaskDir, path_segment};
use crate::table::SharedTable;

/// An input of one task attempt. Every input is an artifact in the store (a constant is
/// stored like any file) and is staged at `inputs/<name>/data` of the task folder.
#[derive(Clone, Debug)]
pub struct InputArg {
    pub digest: String,
    pub size: u64,
    /// The text, when the input was given as a value rather than produced as a file.
    pub value: Option<String>,
    /// The type the component declares for this input.
    pub type_: Option<TypeSpec>,
    /// The table itself, when the upstream task of a fused chain handed it over in memory;
    /// nothing is staged for the input then.
    pub table: Option<SharedTable>,
}

/// A task run through its component's `sluice:pipeline/transform` export, as a member of a
/// fused chain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformCall {
    /// Artifact inputs and outputs that cross the interface as tables; other artifacts
    /// cross as bytes.
    pub tables: BTreeSet<String>,
    /// Table outputs handed back in memory, for the next tasks of the chain, instead of
    /// being written as CSV files.
    pub in_memory: BTreeSet<String>,
    /// Outputs handed back in memory that are written as CSV files too (to be stored).
    pub also_written: BTreeSet<String>,
}

/// A table output handed back in memory, with the digest it is recorded under.
#[derive(Clone, Debug, PartialEq)]
pub struct HeldTable {
    pub table: SharedTable,
    pub digest: String,
    pub size: u64,
}

/// Everything an executor needs to run one attempt.
#[derive(Clone, Debug)]
pub struct Invocation {
    pub run_id: String,
    pub task: String,
    pub attempt: u32,
    pub component: Arc<Component>,
    /// Present inputs only; an absent optional input is simply missing.
    pub inputs: BTreeMap<String, InputArg>,
    pub dir: TaskDir,
    pub resources: ResourceSpec,
    /// The wall-clock limit the task or the run sets for an attempt (not the wasm
    /// default). The scheduler enforces the attempt's limit by firing `cancel`; a cluster
    /// backend also gives it to the cluster's scheduler.
    pub timeout: Option<std::time::Duration>,
    /// For an executor whose attempts wait in a queue ([`Executor::queues`]): notified
    /// when the attempt starts running, which is when its time limit starts to count;
    /// notified again when it starts over elsewhere (its node failed), which starts the
    /// limit again.
    pub started: Arc<tokio::sync::Notify>,
    /// What `prepare` decided for this task.
    pub prepared: Prepared,
    /// Fires when the attempt must stop: the run was cancelled or the attempt timed out.
    pub cancel: CancellationToken,
    pub sink: TaskSink,
    /// For a task of a KFP pipeline (IR): its executor input and placeholders.
    pub kfp: Option<Arc<crate::launcher::TaskContext>>,
    /// Present when the task runs through its component's transform export.
    pub transform: Option<Arc<TransformCall>>,
}

/// Which of a component's implementations runs a task, and on what.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// `implementation.wasm`, under wasmtime.
    Wasm,
    /// `implementation.container`, in a Docker container.
    Container,
    /// `implementation.container`'s command run directly on the host (`--runner process`).
    Process,
}

/// How a task will run, decided before the run starts.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prepared {
    pub kind: Kind,
    /// Shown to users and recorded, e.g. `wasm command` or `container train:0.1.0`.
    pub implementation: String,
    /// Why this implementation was chosen, e.g. `the task requests 1 nvidia.com/gpu`.
    pub reason: String,
    /// Digest of the executable (the `.wasm` bytes, or an image id).
    pub executable_digest: Option<String>,
    /// For a wasm component that exports `sluice:pipeline/transform`: the interface it
    /// exports and the type of its `transform` function, as read from the binary.
    pub transform: Option<TransformExport>,
}

/// The transform export of a component, as read from its binary.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransformExport {
    /// e.g. `sluice:pipeline/transform@0.1.0`.
    pub interface: String,
    /// The function's type in WIT syntax, expanded down to primitive types.
    pub signature: String,
    /// Whether this host can call it (its type is the one Sluice was built with).
    pub callable: bool,
}

/// What `prepare` decides for: one task of a plan.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub task: &'a str,
    pub component: &'a Component,
    pub resources: &'a ResourceSpec,
    /// What the pipeline prefers for the task, if anything.
    pub prefer: Option<crate::spec::Prefer>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The program failed; another attempt may succeed.
    Failed,
    /// The step rejected its input; retrying cannot help.
    InvalidInput,
    /// The attempt stopped because its cancellation token fired.
    Interrupted,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    pub kind: FailureKind,
    /// One line for the user.
    pub message: String,
}

impl Failure {
    pub fn failed(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Failed,
            message: message.into(),
        }
    }

    /// The attempt was stopped (Ctrl-C, a timeout's cancellation) before it ended.
    pub fn interrupted(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Interrupted,
            message: message.into(),
        }
    }
}

/// What a successful attempt returns besides its output files.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Completion {
    /// Values for parameter outputs, returned directly by typed steps.
    pub params: BTreeMap<String, String>,
    pub metrics: BTreeMap<String, f64>,
    /// Metadata of artifact outputs, as a KFP step's executor output gave it.
    pub metadata: BTreeMap<String, serde_json::Value>,
    /// Table outputs handed back in memory (see [`TransformCall::in_memory`]); never
    /// written to an attempt's result file, since only a chain within one process has them.
    #[serde(skip)]
    pub tables: BTreeMap<String, HeldTable>,
}

/// The result of one attempt and the logs it produced either way.
#[derive(Debug)]
pub struct Report {
    pub result: Result<Completion, Failure>,
    pub logs: Vec<LogRecord>,
    /// Where the attempt ran, when not in this process: `Slurm job 404 on node2`. Kept
    /// with the attempt in the run record.
    pub ran_on: Option<String>,
}

/// A component could not be made ready to run.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("component '{component}' has no wasm implementation")]
    NoWasm { component: String },
    #[error("cannot read wasm component {}", path.display())]
    Read {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a valid component: {message}", path.display())]
    Invalid {
        path: std::path::PathBuf,
        message: String,
    },
    /// A service the task needs to run did not answer (the Docker Engine).
    #[error("cannot reach {service}: {detail}")]
    Unreachable { service: String, detail: String },
    /// The host lacks what a task run as a host process needs (a program on its PATH, a
    /// Python package): the environment's failure, not the pipeline's.
    #[error("{message}")]
    HostLacks { message: String },
    #[error("{message}")]
    Other { message: String },
}

/// Runs task attempts. Implementations must return promptly once `cancel` fires.
pub trait Executor: Send + Sync {
    /// Decides how a task will run and loads (compiles, pulls, checks) what it needs,
    /// before any task runs.
    fn prepare<'a>(&'a self, target: Target<'a>) -> BoxFuture<'a, Result<Prepared, PrepareError>>;

    /// Runs one attempt. Output files are left under `inv.dir.outputs()`.
    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Report>;

    /// Whether attempts may wait in a queue before they run (a cluster's). If so, an
    /// attempt's time limit counts from when `execute` notifies [`Invocation::started`];
    /// otherwise from the call to `execute`.
    fn queues(&self) -> bool {
        false
    }

    /// Whether an attempt prepared as `prepared` is held to its time limit
    /// (`Invocation::timeout`, or the 1 h default of a wasm attempt) by `execute` itself,
    /// counted from when it has what it runs on; the scheduler then sets no clock of its
    /// own on it. The wasm executor does: its attempts run on the thread that polls
    /// `execute` and may first wait for an instance slot.
    fn times_itself(&self, prepared: &Prepared) -> bool {
        let _ = prepared;
        false
    }
}

/// Where a program finds its task folder's inputs and outputs.
#[derive(Clone, Copy, Debug)]
pub enum Paths<'a> {
    /// Under fixed roots inside a sandbox or a container: `<inputs>/<name>/data`.
    Under { inputs: &'a str, outputs: &'a str },
    /// At the task folder's own paths on the host.
    Host(&'a TaskDir),
}

impl crate::launcher::Locations for Paths<'_> {
    fn input(&self, name: &str) -> String {
        Paths::input(self, name)
    }
    fn output(&self, name: &str) -> String {
        Paths::output(self, name)
    }
    fn output_root_file(&self, file: &str) -> String {
        Paths::output_root_file(self, file)
    }
}

impl Paths<'_> {
    pub fn input(&self, name: &str) -> String {
        match self {
            Paths::Under { inputs, .. } => format!("{inputs}/{}/data", path_segment(name)),
            Paths::Host(dir) => dir.input_file(name).display().to_string(),
        }
    }

    pub fn output(&self, name: &str) -> String {
        match self {
            Paths::Under { outputs, .. } => format!("{outputs}/{}/data", path_segment(name)),
            Paths::Host(dir) => dir.output_file(name).display().to_string(),
        }
    }

    /// A file directly in the outputs folder, beside the outputs' own folders.
    pub fn output_root_file(&self, file: &str) -> String {
        match self {
            Paths::Under { outputs, .. } => format!("{outputs}/{file}"),
            Paths::Host(dir) => dir.outputs().join(file).display().to_string(),
        }
    }
}

/// How an attempt stopped at its wall-clock limit is said, whoever stopped it (the
/// scheduler's clock, or an executor that times its attempts itself): the wasm host's
/// wording, so both read the same.
pub(crate) fn timed_out(limit: std::time::Duration) -> String {
    crate::wasm::limits::Stop::TimedOut(limit).to_string()
}

/// Expands a `command` or `args` list for one attempt; a placeholder it cannot expand is
/// the task's invalid input.
pub fn expand_args(
    inv: &Invocation,
    paths: Paths<'_>,
    args: &[Arg],
) -> Result<Vec<String>, Failure> {
    let invalid = |message: String| Failure {
        kind: FailureKind::InvalidInput,
        message,
    };
    if let Some(kfp) = &inv.kfp {
        // A KFP IR command line: plain strings holding `{{$...}}` placeholders.
        let items: Vec<String> = args
            .iter()
            .map(|a| match a {
                Arg::Literal(s) => Ok(s.clone()),
                other => Err(invalid(format!("unexpected placeholder {other:?}"))),
            })
            .collect::<Result<_, _>>()?;
        let argv =
            crate::launcher::resolve(kfp, &paths, &items).map_err(|e| invalid(error_chain(&e)))?;
        return check_argv_size(argv).map_err(invalid);
    }
    expand(args, &TaskBindings { inv, paths })
        .map_err(|e| invalid(e.to_string()))
        .and_then(|argv| check_argv_size(argv).map_err(invalid))
}

/// What one file, folder or link costs in an attempt's storage: one block, for its inode
/// and entry.
pub const ENTRY_COST: u64 = 4096;

/// The bytes under an attempt's outputs folder as its storage limit counts them: each
/// file's length (holes included) plus [`ENTRY_COST`] for every entry. Symlinks are not
/// followed; what cannot be read counts nothing.
pub fn outputs_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut total = 0u64;
    for entry in entries.flatten() {
        let Ok(meta) = entry.metadata() else {
            continue;
        };
        total = total.saturating_add(ENTRY_COST);
        if meta.is_dir() {
            total = total.saturating_add(outputs_size(&entry.path()));
        } else if meta.is_file() {
            total = total.saturating_add(meta.len());
        }
    }
    total
}

/// Most bytes of one attempt's command line, all arguments with their NUL terminators:
/// Linux's usual `ARG_MAX` (2 MiB), applied to wasm guests too, whose argv is copied into
/// their memory.
pub const ARGV_MAX: usize = 2 << 20;

fn check_argv_size(argv: Vec<String>) -> Result<Vec<String>, String> {
    let size: usize = argv.iter().map(|a| a.len() + 1).sum();
    if size > ARGV_MAX {
        return Err(format!(
            "the command line is {}, over the limit of {} (pass large values as artifacts, by path)",
            crate::spec::ByteSize(size as u64),
            crate::spec::ByteSize(ARGV_MAX as u64)
        ));
    }
    Ok(argv)
}

/// An artifact's text for a value placeholder. Reads at most one byte past
/// [`ARGV_MAX`], so an input too large for a command line is refused by its size without
/// being read whole; an unreadable input reads as empty.
pub(crate) fn read_value_file(path: &Path) -> String {
    let bytes = crate::files::read_prefix(path, ARGV_MAX as u64 + 1, crate::files::Follow::No)
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// How placeholders see a task: values of present inputs (an artifact's value is its
/// text), and each input's and output's path as the program sees it.
struct TaskBindings<'a> {
    inv: &'a Invocation,
    paths: Paths<'a>,
}

impl Bindings for TaskBindings<'_> {
    fn value(&self, input: &str) -> Option<Cow<'_, str>> {
        let arg = self.inv.inputs.get(input)?;
        Some(match &arg.value {
            Some(v) => Cow::Borrowed(v.as_str()),
            None => Cow::Owned(read_value_file(&self.inv.dir.input_file(input))),
        })
    }
    fn is_present(&self, input: &str) -> bool {
        self.inv.inputs.contains_key(input)
    }
    fn input_path(&self, input: &str) -> String {
        self.paths.input(input)
    }
    fn output_path(&self, output: &str) -> String {
        self.paths.output(output)
    }
    fn executor_input(&self) -> String {
        let context = launch::context_for_v1(self.inv);
        crate::launcher::executor_input(&context, &self.paths).to_string()
    }
    fn executor_output(&self) -> String {
        self.paths
            .output_root_file(crate::launcher::EXECUTOR_OUTPUT)
    }
}

/// Largest parameter output whose text is copied into the run record.
const RECORDED_VALUE_MAX: u64 = 4096;

/// Moves every declared output of a finished attempt into the store. A parameter value a
/// typed step returned is stored as the output's content; otherwise `outputs/<name>/data`
/// must exist, as a file or (as KFP allows) a folder. Outputs of type `Metrics` are read as KFP
/// `mlpipeline-metrics` JSON and their values added to the task's metrics.
pub fn collect_outputs(
    store: &Store,
    component: &Component,
    dir: &TaskDir,
    completion: &mut Completion,
) -> Result<Vec<IoRecord>, Failure> {
    let mut records = Vec::new();
    for output in &component.spec.outputs {
        // Held and not also written: handed on in memory only.
        if let Some(held) = completion.tables.get(&output.name)
            && !dir.output_file(&output.name).exists()
        {
            // Handed to the next task of a fused chain; recorded, never stored.
            records.push(IoRecord {
                name: output.name.clone(),
                type_: output.type_.as_ref().map(ToString::to_string),
                digest: held.digest.clone(),
                size: held.size,
                value: None,
                metadata: Some(serde_json::json!({
                    "in_memory": true,
                    "rows": held.table.rows,
                    "columns": held.table.columns.len(),
                })),
            });
            continue;
        }
        let stored = if let Some(value) = completion.params.get(&output.name) {
            store.put_bytes(value.as_bytes())
        } else {
            let path = dir.output_file(&output.name);
            if std::fs::symlink_metadata(&path).is_err() {
                return Err(Failure::failed(format!(
                    "output '{}' was not written",
                    output.name
                )));
            }
            store.ingest(&path)
        };
        let artifact = stored.map_err(|e| store_failure(&output.name, e))?;
        let small_text = || -> Option<String> {
            if artifact.size > RECORDED_VALUE_MAX {
                return None;
            }
            String::from_utf8(store.read(&artifact.digest).ok()?).ok()
        };
        let value = if output.param_type().is_some() {
            small_text()
        } else {
            None
        };
        if output.is_metrics() {
            let bytes = store
                .read(&artifact.digest)
                .map_err(|e| store_failure(&output.name, e))?;
            let metrics = parse_kfp_metrics(&bytes).map_err(|e| {
                Failure::failed(format!("output '{}': {}", output.name, error_chain(&e)))
            })?;
            completion.metrics.extend(metrics);
        }
        records.push(IoRecord {
            name: output.name.clone(),
            type_: output.type_.as_ref().map(ToString::to_string),
            digest: artifact.digest,
            size: artifact.size,
            value,
            metadata: completion.metadata.get(&output.name).cloned(),
        });
    }
    Ok(records)
}

fn store_failure(output: &str, e: StoreError) -> Failure {
    Failure::failed(format!("output '{output}': {}", error_chain(&e)))
}

/// A KFP metrics file that is not one.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    #[error("expected KFP mlpipeline-metrics JSON")]
    NotMetrics(#[source] serde_json::Error),
    #[error("metric '{0}' has no numeric numberValue")]
    NotANumber(String),
}

/// Reads KFP v1 `mlpipeline-metrics` JSON: `{"metrics": [{"name", "numberValue", "format"}]}`,
/// a `numberValue` being a number or a numeric string.
pub fn parse_kfp_metrics(bytes: &[u8]) -> Result<BTreeMap<String, f64>, MetricsError> {
    #[derive(serde::Deserialize)]
    struct File {
        metrics: Vec<Metric>,
    }
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Metric {
        name: String,
        number_value: serde_json::Value,
    }
    let file: File = serde_json::from_slice(bytes).map_err(MetricsError::NotMetrics)?;
    let mut out = BTreeMap::new();
    for m in file.metrics {
        let value = match &m.number_value {
            serde_json::Value::Number(n) => n.as_f64(),
            serde_json::Value::String(s) => s.parse().ok(),
            _ => None,
        }
        .ok_or_else(|| MetricsError::NotANumber(m.name.clone()))?;
        out.insert(m.name, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kfp_metrics() {
        let m = parse_kfp_metrics(
            br#"{"metrics": [{"name": "accuracy-score", "numberValue": 0.97, "format": "RAW"},
                             {"name": "f1", "numberValue": "0.5"}]}"#,
        )
        .unwrap();
        assert_eq!(m["accuracy-score"], 0.97);
        assert_eq!(m["f1"], 0.5);
        assert!(parse_kfp_metrics(b"{}").is_err());
        assert!(
            parse_kfp_metrics(br#"{"metrics": [{"name": "x", "numberValue": null}]}"#).is_err()
        );
    }
}
