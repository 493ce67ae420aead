//! Runs a KFP pipeline IR the way KFP's backend drives it: a DAG at a time, each task
//! once its upstream tasks ended, with conditions decided from the values that reached
//! the task, loops expanded into one DAG run per item (at most `parallelismLimit` at
//! once) whose outputs are collected into lists, exit handlers and
//! `ALL_UPSTREAM_TASKS_COMPLETED` tasks run whatever became of their upstream, and
//! `taskFinalStatus` inputs telling them. Executor tasks go through the same task runner
//! as Sluice pipelines (staging, executors, retries, the task cache, records).
//!
//! Tasks are recorded as they become known: an executor task under its KFP task name,
//! with `.<index>` per enclosing loop (`square.0`, `square.1`); tasks a false condition
//! or a failure kept from running are recorded as skipped, with the reason.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use serde_json::{Value as Json, json};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::expr::{Condition, Selector};
use super::ir::{self, ArtifactType, ComponentSpec, DagSpec, IrFile, ParameterType, TaskSpec};
use super::values;
use super::{KfpPipeline, PreparedComponent};
use crate::error_chain;
use crate::events::{Event, Observer};
use crate::exec::{Executor, InputArg};
use crate::launcher::{InputArtifact, TaskContext};
use crate::plan::{Caching, PlannedTask};
use crate::schedule::{Cleaner, RunOutcome, ScheduleError, TaskEnd, TaskRun};
use crate::spec::{HumanDuration, RetrySpec, TypeSpec};
use crate::store::{IoRecord, NewRun, NewTask, RunKind, RunState, Store, TaskDir, TaskState};

#[derive(Clone, Debug)]
pub struct Options {
    /// Most executor tasks running at once.
    pub parallelism: usize,
    /// Keep starting independent tasks after one fails.
    pub keep_going: bool,
    /// Keep each attempt's working folder, even after success.
    pub keep_work: bool,
    /// Never reuse cached outputs (tasks still record their cache keys).
    pub no_cache: bool,
    /// Reuse only cached outputs of tasks that ended at most this long ago.
    pub max_cache_staleness: Option<std::time::Duration>,
    /// Wall-clock limit of one attempt of a task that sets none (see
    /// [`crate::schedule::Options::default_timeout`]).
    pub default_timeout: Option<std::time::Duration>,
    /// How the run was started, kept in its record ([`crate::store::NewRun::flags`]).
    pub flags: Vec<String>,
    /// A run this one resumes: each executor task whose cache key matches one of that
    /// run's succeeded tasks takes its outputs instead of running, caching or not.
    pub resumes: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            keep_going: false,
            keep_work: false,
            no_cache: false,
            max_cache_staleness: None,
            default_timeout: None,
            flags: Vec::new(),
            resumes: None,
        }
    }
}

pub struct Driver {
    pub store: Arc<Store>,
    pub executor: Arc<dyn Executor>,
    pub observer: Arc<dyn Observer>,
    pub options: Options,
    pub cancel: CancellationToken,
}

impl Driver {
    /// What the pipeline outputs, as records: each parameter's text stored by its
    /// digest, each artifact (`name[i]` for a list) as the task that made it stored it.
    fn run_outputs(&self, root: &ComponentSpec, outputs: &Outputs) -> Vec<IoRecord> {
        let mut records = Vec::new();
        for (name, value) in &outputs.params {
            let text = values::render(value);
            let Ok(stored) = self.store.put_bytes(text.as_bytes()) else {
                continue;
            };
            let type_ = root
                .output_definitions
                .parameters
                .get(name)
                .map(|p| p.parameter_type.as_str().to_owned());
            records.push(IoRecord {
                name: name.clone(),
                type_,
                digest: stored.digest,
                size: stored.size,
                value: Some(text),
                metadata: None,
            });
        }
        for (name, list) in &outputs.artifacts {
            for (i, a) in list.iter().enumerate() {
                records.push(IoRecord {
                    name: if list.len() == 1 {
                        name.clone()
                    } else {
                        format!("{name}[{i}]")
                    },
                    type_: Some(a.type_.title().to_owned()),
                    digest: a.digest.clone(),
                    size: a.size,
                    value: None,
                    metadata: Some(a.metadata.clone()),
                });
            }
        }
        records
    }
}

/// The inputs of a DAG component (a nested pipeline, a loop's body) with its defaults
/// for the parameters the parent left unset or null.
fn with_defaults(spec: &ComponentSpec, mut scope: Scope) -> Result<Scope, String> {
    for (name, p) in &spec.input_definitions.parameters {
        let unset = scope.params.get(name).is_none_or(Json::is_null);
        if let (true, Some(default)) = (unset, &p.default_value) {
            let value = values::coerce(p.parameter_type, default)
                .map_err(|m| format!("input '{name}': default: {m}"))?;
            scope.params.insert(name.clone(), value);
        }
    }
    Ok(scope)
}

/// Where the pipeline's own artifact inputs are published among the run's artifacts; no
/// task can have the name (task names do not start with a dot).
const PIPELINE_INPUTS: &str = ".inputs";

/// An artifact passed between tasks.
#[derive(Clone, Debug)]
struct Artifact {
    name: String,
    type_: ArtifactType,
    digest: String,
    size: u64,
    metadata: Json,
    /// Where it is published under the run's artifacts (its KFP `uri`): valid for as
    /// long as the run's record.
    uri: Option<String>,
}

#[derive(Clone, Debug, Default)]
struct Outputs {
    params: BTreeMap<String, Json>,
    artifacts: BTreeMap<String, Vec<Artifact>>,
}

/// How a task (or a DAG) ended.
#[derive(Clone, Debug)]
enum End {
    Succeeded(Outputs),
    Failed(String),
    /// Not run because an upstream task failed or the run stopped.
    Skipped(String),
    /// Its condition was false.
    NotTriggered,
    Cancelled,
}

impl End {
    fn is_bad(&self) -> bool {
        matches!(self, End::Failed(_) | End::Skipped(_) | End::Cancelled)
    }

    /// `PipelineTaskFinalStatus`, as an exit task receives it. The states are those KFP's
    /// backend reports (its executions' states): `COMPLETE`, `FAILED`, `CANCELED`. A failure
    /// comes with its message.
    fn final_status(&self, resource_name: &str, task: &str) -> Json {
        let (state, error) = match self {
            End::Succeeded(_) | End::NotTriggered => ("COMPLETE", None),
            End::Failed(m) | End::Skipped(m) => ("FAILED", Some(m.as_str())),
            End::Cancelled => ("CANCELED", Some("cancelled")),
        };
        let error = match error {
            Some(message) => json!({"code": 2, "message": message}),
            None => json!({}),
        };
        json!({
            "state": state,
            "pipelineJobResourceName": resource_name,
            "pipelineTaskName": task,
            "error": error,
        })
    }
}

/// Where a task sits: the DAG tasks enclosing it and its loop indices.
#[derive(Clone, Debug, Default)]
struct Place {
    path: Vec<String>,
    indices: Vec<usize>,
}

impl Place {
    fn enter(&self, task: &str) -> Place {
        let mut p = self.clone();
        p.path.push(task.to_owned());
        p
    }
    fn iteration(&self, index: usize) -> Place {
        let mut p = self.clone();
        p.indices.push(index);
        p
    }
    fn suffix(&self) -> String {
        self.indices.iter().map(|i| format!(".{i}")).collect()
    }
}

/// Inputs that reached a task.
#[derive(Clone, Debug, Default)]
struct Scope {
    params: BTreeMap<String, Json>,
    artifacts: BTreeMap<String, Vec<Artifact>>,
}

struct Run {
    store: Arc<Store>,
    executor: Arc<dyn Executor>,
    observer: Arc<dyn Observer>,
    options: Options,
    cancel: CancellationToken,
    pipeline: Arc<KfpPipeline>,
    run_id: String,
    /// When the run started, RFC 3339 in UTC.
    created: String,
    slots: Semaphore,
    names: Mutex<HashSet<String>>,
    stopped_by: Mutex<Option<String>>,
    cleaner: Option<std::sync::mpsc::Sender<TaskDir>>,
}

impl Driver {
    /// Records the run and drives it to its end. `params` are the pipeline's checked
    /// parameter values; `artifacts` its artifact inputs, files to import.
    pub async fn run(
        &self,
        pipeline: Arc<KfpPipeline>,
        params: BTreeMap<String, Json>,
        artifacts: BTreeMap<String, PathBuf>,
    ) -> Result<RunOutcome, ScheduleError> {
        let file = &pipeline.file;
        let mut scope = Scope {
            params: params.clone(),
            artifacts: BTreeMap::new(),
        };
        let mut recorded: BTreeMap<String, String> = params
            .iter()
            .map(|(k, v)| (k.clone(), values::render(v)))
            .collect();
        for (name, path) in &artifacts {
            let stored = self
                .store
                .import(path)
                .map_err(|source| ScheduleError::Import {
                    param: name.clone(),
                    path: path.clone(),
                    source,
                })?;
            let type_ = file.spec.root.input_definitions.artifacts[name]
                .artifact_type
                .clone();
            recorded.insert(name.clone(), stored.digest.clone());
            scope.artifacts.insert(
                name.clone(),
                vec![Artifact {
                    name: name.clone(),
                    type_,
                    digest: stored.digest,
                    size: stored.size,
                    metadata: json!({}),
                    uri: None,
                }],
            );
        }
        let run_id = self.store.begin_run(
            &NewRun {
                kind: RunKind::Pipeline,
                name: file.name(),
                source: &file.path,
                source_digest: &file.digest,
                params: recorded,
                flags: self.options.flags.clone(),
            },
            &[],
        )?;
        self.observer.event(&Event::RunStarted {
            run_id: run_id.clone(),
            name: file.name().to_owned(),
            tasks: Vec::new(),
        });
        // The pipeline's own artifact inputs have their place among the run's artifacts.
        for (name, list) in &mut scope.artifacts {
            for a in list {
                let published = self
                    .store
                    .publish(&run_id, PIPELINE_INPUTS, name, &a.digest)
                    .map_err(|source| ScheduleError::Import {
                        param: name.clone(),
                        path: artifacts[name].clone(),
                        source,
                    })?;
                a.uri = Some(published.display().to_string());
            }
        }
        let cleaner = (!self.options.keep_work).then(|| Cleaner::start(self.store.clone()));
        let run = Arc::new(Run {
            store: self.store.clone(),
            executor: self.executor.clone(),
            observer: self.observer.clone(),
            options: self.options.clone(),
            cancel: self.cancel.clone(),
            pipeline: pipeline.clone(),
            run_id: run_id.clone(),
            created: jiff::Timestamp::now()
                .strftime("%Y-%m-%dT%H:%M:%SZ")
                .to_string(),
            slots: Semaphore::new(self.options.parallelism.max(1)),
            names: Mutex::new(HashSet::new()),
            stopped_by: Mutex::new(None),
            cleaner: cleaner.as_ref().map(Cleaner::handle),
        });
        let end = run.clone().dag(None, scope, Place::default()).await;
        drop(run);
        if let End::Succeeded(outputs) = &end {
            let records = self.run_outputs(&file.spec.root, outputs);
            self.store.set_run_outputs(&run_id, &records)?;
        }
        if let Some(cleaner) = cleaner {
            let _ = tokio::task::spawn_blocking(move || cleaner.finish()).await;
        }
        let (state, error) = if self.cancel.is_cancelled() {
            (RunState::Cancelled, Some("cancelled".to_owned()))
        } else {
            match end {
                End::Succeeded(_) | End::NotTriggered => (RunState::Succeeded, None),
                End::Cancelled => (RunState::Cancelled, Some("cancelled".to_owned())),
                End::Failed(_) | End::Skipped(_) => (
                    RunState::Failed,
                    Some("one or more tasks failed".to_owned()),
                ),
            }
        };
        self.store.finish_run(&run_id, state, error.as_deref())?;
        self.observer.event(&Event::RunFinished {
            run_id: run_id.clone(),
            state,
        });
        Ok(RunOutcome { run_id, state })
    }
}

impl Run {
    fn file(&self) -> &IrFile {
        &self.pipeline.file
    }

    fn resource_name(&self) -> String {
        format!("{}-{}", self.file().name(), self.run_id)
    }

    fn context(&self, task_name: &str) -> TaskContext {
        TaskContext {
            params: BTreeMap::new(),
            artifacts: BTreeMap::new(),
            output_params: Vec::new(),
            output_artifacts: BTreeMap::new(),
            pipeline_name: self.file().name().to_owned(),
            run_id: self.run_id.clone(),
            task_name: task_name.to_owned(),
            task_id: format!("{}-{task_name}", self.run_id),
            created: self.created.clone(),
        }
    }

    fn run_placeholder(&self, text: &str, task: &TaskSpec) -> Option<String> {
        self.context(&task.task_info.name).run_placeholder(text)
    }

    fn component(&self, name: Option<&str>) -> &ComponentSpec {
        match name {
            None => &self.file().spec.root,
            Some(n) => &self.file().spec.components[n],
        }
    }

    /// Runs one DAG component with the inputs that reached it; its outputs are those its
    /// `dag.outputs` select.
    fn dag(
        self: Arc<Self>,
        component: Option<String>,
        scope: Scope,
        place: Place,
    ) -> BoxFuture<'static, End> {
        Box::pin(async move {
            let spec = self.component(component.as_deref());
            let dag = spec.dag.as_ref().expect("checked when loaded");
            let mut ends: BTreeMap<String, End> = BTreeMap::new();
            let mut started: BTreeSet<String> = BTreeSet::new();
            let mut running = FuturesUnordered::new();
            loop {
                // Tasks decided without running (skipped, cancelled) can let others be
                // decided in turn, whatever order their names sort in: pass over the DAG
                // until nothing more is decided before waiting for a running task.
                let mut decided = true;
                while decided {
                    decided = false;
                    for (name, task) in &dag.tasks {
                        if started.contains(name) {
                            continue;
                        }
                        let upstream = ir::upstream(task);
                        if !upstream.iter().all(|u| ends.contains_key(*u)) {
                            continue;
                        }
                        started.insert(name.clone());
                        if let Some(end) = self.gate(task, &upstream, &ends) {
                            if let End::Skipped(reason) = &end {
                                self.record_skipped(task, reason, &place.enter(name));
                            }
                            ends.insert(name.clone(), end);
                            decided = true;
                            continue;
                        }
                        let inputs = self.inputs(task, &scope, &ends);
                        let run = self.clone();
                        let (name, place) = (name.clone(), place.clone());
                        let component = component.clone();
                        running.push(async move {
                            let end = run.task(component, name.clone(), inputs, place).await;
                            (name, end)
                        });
                    }
                }
                match running.next().await {
                    Some((name, end)) => {
                        ends.insert(name, end);
                    }
                    None => break,
                }
            }
            // Every task ends decided; one still waiting on an upstream task that was
            // never decided (which the checks at load time rule out) is skipped, saying so.
            for (name, task) in &dag.tasks {
                if !ends.contains_key(name) {
                    let reason = "skipped: its upstream tasks never ended";
                    self.record_skipped(task, reason, &place.enter(name));
                    ends.insert(name.clone(), End::Skipped(reason.to_owned()));
                }
            }
            if let Some(bad) = dag.tasks.keys().find_map(|n| match &ends[n] {
                End::Failed(m) => Some(End::Failed(format!("task '{n}': {m}"))),
                _ => None,
            }) {
                return bad;
            }
            if ends.values().any(|e| matches!(e, End::Cancelled)) {
                return End::Cancelled;
            }
            if let Some((_, End::Skipped(m))) = ends.iter().find(|(_, e)| e.is_bad()) {
                return End::Failed(m.clone());
            }
            End::Succeeded(dag_outputs(dag, &ends))
        })
    }

    /// Decides a task that must not start: upstream failed, the run stopped or was
    /// cancelled. `None` when it may start.
    fn gate(
        &self,
        task: &TaskSpec,
        upstream: &BTreeSet<&str>,
        ends: &BTreeMap<String, End>,
    ) -> Option<End> {
        if self.cancel.is_cancelled() {
            return Some(End::Cancelled);
        }
        if task.trigger_policy.runs_after_any_end() {
            return None;
        }
        if let Some(failed) = upstream.iter().find(|u| ends[**u].is_bad()) {
            return Some(End::Skipped(format!(
                "skipped: upstream task '{failed}' failed"
            )));
        }
        let stopped = self
            .stopped_by
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        stopped.map(|failed| {
            End::Skipped(format!(
                "not started: the run stopped after '{failed}' failed (--keep-going runs independent tasks)"
            ))
        })
    }

    /// The values a task's inputs take, from the DAG's inputs, constants, upstream
    /// outputs and final statuses.
    fn inputs(
        &self,
        task: &TaskSpec,
        scope: &Scope,
        ends: &BTreeMap<String, End>,
    ) -> Result<Scope, String> {
        let mut out = Scope::default();
        for (name, input) in &task.inputs.parameters {
            let value = if let Some(from) = &input.component_input_parameter {
                scope.params.get(from).cloned()
            } else if let Some(o) = &input.task_output_parameter {
                match &ends[&o.producer_task] {
                    End::Succeeded(outs) => outs.params.get(&o.output_parameter_key).cloned(),
                    _ => None,
                }
            } else if let Some(v) = &input.runtime_value {
                // A run placeholder given as a value is resolved here, as KFP's driver does.
                let run_value = v
                    .constant
                    .as_str()
                    .and_then(|text| self.run_placeholder(text, task));
                Some(run_value.map_or_else(|| v.constant.clone(), Json::String))
            } else if let Some(s) = &input.task_final_status {
                let producer = &s.producer_task;
                Some(ends[producer].final_status(&self.resource_name(), producer))
            } else {
                None
            };
            let value = match (value, &input.parameter_expression_selector) {
                (Some(v), Some(selector)) => Some(
                    Selector::compile(selector)
                        .and_then(|s| s.select(&v))
                        .map_err(|m| format!("input '{name}': {m}"))?,
                ),
                (v, _) => v,
            };
            if let Some(v) = value {
                out.params.insert(name.clone(), v);
            }
        }
        for (name, input) in &task.inputs.artifacts {
            let value = if let Some(from) = &input.component_input_artifact {
                scope.artifacts.get(from).cloned()
            } else if let Some(o) = &input.task_output_artifact {
                match &ends[&o.producer_task] {
                    End::Succeeded(outs) => outs.artifacts.get(&o.output_artifact_key).cloned(),
                    _ => None,
                }
            } else {
                None
            };
            if let Some(v) = value {
                out.artifacts.insert(name.clone(), v);
            }
        }
        crate::launcher::resolve_parameter_references(&mut out.params);
        Ok(out)
    }

    /// Runs one task of a DAG: its condition, then its component (a nested DAG, a loop,
    /// a container or an importer).
    fn task(
        self: Arc<Self>,
        dag_component: Option<String>,
        name: String,
        inputs: Result<Scope, String>,
        place: Place,
    ) -> BoxFuture<'static, End> {
        Box::pin(async move {
            let parent = self.component(dag_component.as_deref());
            let task = &parent.dag.as_ref().expect("a DAG").tasks[&name];
            let inner = place.enter(&name);
            let inputs = match inputs {
                Ok(i) => i,
                Err(message) => {
                    self.record_failed(task, &message, &inner);
                    return End::Failed(message);
                }
            };
            if let Some(source) = task
                .trigger_policy
                .condition
                .as_deref()
                .filter(|c| !c.is_empty())
            {
                let verdict = Condition::compile(source).and_then(|c| c.holds(&inputs.params));
                match verdict {
                    Ok(true) => {}
                    Ok(false) => {
                        self.record_skipped(
                            task,
                            &format!("not run: condition `{source}` is false"),
                            &inner,
                        );
                        return End::NotTriggered;
                    }
                    Err(e) => {
                        let message = e.to_string();
                        self.record_failed(task, &message, &inner);
                        return End::Failed(message);
                    }
                }
            }
            let child_name = task.component_ref.name.clone();
            let child = self.component(Some(&child_name));
            if child.dag.is_some() {
                // A nested pipeline's inputs the parent leaves unset take its defaults,
                // as KFP's driver gives them.
                let inputs = match with_defaults(child, inputs) {
                    Ok(inputs) => inputs,
                    Err(e) => {
                        let message = e.to_string();
                        self.record_failed(task, &message, &inner);
                        return End::Failed(message);
                    }
                };
                if task.parameter_iterator.is_some() || task.artifact_iterator.is_some() {
                    return self.clone().iterate(task.clone(), inputs, inner).await;
                }
                return self.clone().dag(Some(child_name), inputs, inner).await;
            }
            self.clone()
                .executor_task(&name, task.clone(), inputs, place)
                .await
        })
    }

    /// A `ParallelFor`: one run of the loop's DAG per item, outputs collected into lists.
    async fn iterate(self: Arc<Self>, task: TaskSpec, inputs: Scope, place: Place) -> End {
        enum Item {
            Param(Json),
            Artifact(Artifact),
        }
        let (items, item_input): (Vec<Item>, String) = if let Some(it) = &task.parameter_iterator {
            let list = match (&it.items.raw, &it.items.input_parameter) {
                (Some(raw), _) => serde_json::from_str::<Json>(raw)
                    .map_err(|e| format!("the loop's items are not JSON: {e}")),
                (None, Some(param)) => match inputs.params.get(param) {
                    Some(Json::String(text)) => serde_json::from_str::<Json>(text).map_err(|_| {
                        format!("the loop's items ('{param}') are not a list: {text}")
                    }),
                    Some(v) => Ok(v.clone()),
                    None => Err(format!("the loop's items ('{param}') have no value")),
                },
                (None, None) => Err("the loop names no items".to_owned()),
            };
            let list = match list {
                Ok(Json::Array(items)) => items,
                Ok(other) => {
                    return self.loop_failed(
                        &task,
                        format!("the loop's items are not a list: {other}"),
                        &place,
                    );
                }
                Err(m) => return self.loop_failed(&task, m, &place),
            };
            (
                list.into_iter().map(Item::Param).collect(),
                it.item_input.clone(),
            )
        } else {
            let it = task.artifact_iterator.as_ref().expect("a loop");
            let list = inputs
                .artifacts
                .get(&it.items.input_artifact)
                .cloned()
                .unwrap_or_default();
            (
                list.into_iter().map(Item::Artifact).collect(),
                it.item_input.clone(),
            )
        };
        let limit = match task.iterator_policy.parallelism_limit {
            0 => items.len().max(1),
            n => n as usize,
        };
        let permits = Arc::new(Semaphore::new(limit));
        let body = task.component_ref.name.clone();
        let running = FuturesUnordered::new();
        for (i, item) in items.into_iter().enumerate() {
            let mut scope = inputs.clone();
            match item {
                Item::Param(v) => {
                    scope.params.insert(item_input.clone(), v);
                }
                Item::Artifact(a) => {
                    scope.artifacts.insert(item_input.clone(), vec![a]);
                }
            }
            let (run, permits, body, place) = (
                self.clone(),
                permits.clone(),
                body.clone(),
                place.iteration(i),
            );
            running.push(async move {
                let _permit = permits.acquire_owned().await;
                (i, run.dag(Some(body), scope, place).await)
            });
        }
        let mut ends: Vec<(usize, End)> = running.collect().await;
        ends.sort_by_key(|(i, _)| *i);
        if let Some((i, End::Failed(m))) = ends.iter().find(|(_, e)| matches!(e, End::Failed(_))) {
            return End::Failed(format!("iteration {i}: {m}"));
        }
        if ends.iter().any(|(_, e)| matches!(e, End::Cancelled)) {
            return End::Cancelled;
        }
        // Fan-in: each output a list over the iterations, in order.
        let spec = self.component(Some(&body));
        let mut outputs = Outputs::default();
        for name in spec.output_definitions.parameters.keys() {
            let values: Vec<Json> = ends
                .iter()
                .filter_map(|(_, e)| match e {
                    End::Succeeded(o) => o.params.get(name).cloned(),
                    _ => None,
                })
                .collect();
            outputs.params.insert(name.clone(), Json::Array(values));
        }
        for name in spec.output_definitions.artifacts.keys() {
            let list: Vec<Artifact> = ends
                .iter()
                .filter_map(|(_, e)| match e {
                    End::Succeeded(o) => o.artifacts.get(name).cloned(),
                    _ => None,
                })
                .flatten()
                .collect();
            outputs.artifacts.insert(name.clone(), list);
        }
        End::Succeeded(outputs)
    }

    /// Claims the record name of an executor task: its KFP name with its loop indices,
    /// or, should a nested pipeline reuse a name, with the enclosing DAG tasks in front.
    fn claim(&self, task: &str, place: &Place) -> String {
        let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
        let plain = format!("{task}{}", place.suffix());
        if names.insert(plain.clone()) {
            return plain;
        }
        let mut full = place.path.clone();
        full.push(task.to_owned());
        let mut name = format!("{}{}", full.join("."), place.suffix());
        let mut n = 2;
        while !names.insert(name.clone()) {
            name = format!("{}{}-{n}", full.join("."), place.suffix());
            n += 1;
        }
        name
    }

    fn add_record(&self, name: &str, component: &str) {
        let digest = self
            .pipeline
            .components
            .get(component)
            .map(|c| c.component.digest.clone())
            .unwrap_or_default();
        let added = self.store.add_task(
            &self.run_id,
            &NewTask {
                name,
                component: component.trim_start_matches("comp-").to_owned(),
                component_file: &self.file().path,
                component_digest: &digest,
            },
        );
        if let Err(e) = added {
            self.host_line(
                name,
                &format!("cannot record the task: {}", error_chain(&e)),
            );
        }
    }

    fn host_line(&self, task: &str, line: &str) {
        self.observer.event(&Event::TaskLog {
            task: task.to_owned(),
            stream: crate::events::Stream::Host,
            line: line.to_owned(),
        });
    }

    /// Records every executor task under `task` (itself, or those of its DAG) as ended
    /// without running.
    fn record_ended(&self, task: &TaskSpec, state: TaskState, reason: &str, place: &Place) {
        let component = &task.component_ref.name;
        let spec = self.component(Some(component));
        match &spec.dag {
            Some(dag) => {
                for (name, inner) in &dag.tasks {
                    self.record_ended(inner, state, reason, &place.enter(name));
                }
            }
            None => {
                let key = place.path.last().cloned().unwrap_or_default();
                let task_name = display_name(task, &key);
                let parent = Place {
                    path: place.path[..place.path.len().saturating_sub(1)].to_vec(),
                    indices: place.indices.clone(),
                };
                let name = self.claim(&task_name, &parent);
                self.add_record(&name, component);
                let _ = self.store.task_finished(
                    &self.run_id,
                    &name,
                    state,
                    Some(reason),
                    &[],
                    &BTreeMap::new(),
                );
                self.observer.event(&Event::TaskFinished {
                    task: name,
                    state,
                    attempts: 0,
                    duration: None,
                    error: Some(reason.to_owned()),
                });
            }
        }
    }

    /// A loop that cannot start: its tasks are recorded as not run, saying why, and the
    /// loop fails with the reason.
    fn loop_failed(&self, task: &TaskSpec, reason: String, place: &Place) -> End {
        let name = &task.task_info.name;
        self.record_ended(
            task,
            TaskState::Skipped,
            &format!("not run: loop '{name}' cannot start: {reason}"),
            place,
        );
        self.stop(name);
        End::Failed(reason)
    }

    fn record_skipped(&self, task: &TaskSpec, reason: &str, place: &Place) {
        self.record_ended(task, TaskState::Skipped, reason, place);
    }

    fn record_failed(&self, task: &TaskSpec, reason: &str, place: &Place) {
        if self.component(Some(&task.component_ref.name)).dag.is_none() {
            self.record_ended(task, TaskState::Failed, reason, place);
        }
        self.stop(&task.task_info.name);
    }

    fn stop(&self, task: &str) {
        if !self.options.keep_going {
            self.stopped_by
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .get_or_insert_with(|| task.to_owned());
        }
    }

    /// Runs a task whose component has an executor: an importer, or a container through
    /// the task runner, unless the cache has its outputs.
    async fn executor_task(
        self: Arc<Self>,
        key: &str,
        task: TaskSpec,
        inputs: Scope,
        place: Place,
    ) -> End {
        let component_name = task.component_ref.name.clone();
        let record = self.claim(&display_name(&task, key), &place);
        self.add_record(&record, &component_name);
        let prepared = &self.pipeline.components[&component_name];
        let spec = self.component(Some(&component_name));
        let end = match self.bind(spec, inputs) {
            Err(message) => Err(message),
            Ok(scope) => match (&prepared.importer, &prepared.kubernetes_only) {
                (Some(importer), _) => self.import(&record, importer, &scope),
                (None, Some(operation)) => self.kubernetes_only(&record, operation, spec, &scope),
                (None, None) => Ok(self
                    .clone()
                    .container(&task, &record, prepared, scope)
                    .await),
            },
        };
        match end {
            Ok(end) => {
                if matches!(end, End::Failed(_)) {
                    self.stop(&record);
                }
                end
            }
            Err(message) => {
                self.stop(&record);
                self.fail_unstarted(&record, message)
            }
        }
    }

    /// Applies the component's defaults and types to the inputs that reached a task.
    fn bind(&self, spec: &ComponentSpec, mut scope: Scope) -> Result<Scope, String> {
        for (name, p) in &spec.input_definitions.parameters {
            match scope.params.get(name) {
                Some(v) if !v.is_null() => {
                    let coerced = match (p.parameter_type, v) {
                        // A value that came through a file or a loop item as text.
                        (t, Json::String(s)) if t != ParameterType::String => values::parse(t, s),
                        (t, v) => values::coerce(t, v),
                    }
                    .map_err(|m| format!("input '{name}': {m}"))?;
                    scope.params.insert(name.clone(), coerced);
                }
                _ => match &p.default_value {
                    Some(d) => {
                        let d = values::coerce(p.parameter_type, d)
                            .map_err(|m| format!("input '{name}': default: {m}"))?;
                        scope.params.insert(name.clone(), d);
                    }
                    None if p.is_optional => {
                        scope.params.remove(name);
                    }
                    None => return Err(format!("input '{name}' has no value")),
                },
            }
        }
        for (name, a) in &spec.input_definitions.artifacts {
            if !scope.artifacts.contains_key(name) && !a.is_optional {
                return Err(format!("input artifact '{name}' has no value"));
            }
        }
        Ok(scope)
    }

    /// A volume operation of kfp-kubernetes: there is no cluster to create a volume in, so
    /// the task succeeds doing nothing, and a created volume's `name` is the one asked for.
    fn kubernetes_only(
        &self,
        record: &str,
        operation: &str,
        spec: &ComponentSpec,
        scope: &Scope,
    ) -> Result<End, String> {
        let note = format!(
            "the Kubernetes operation '{operation}' does not apply to a local run; nothing done"
        );
        self.host_line(record, &note);
        let mut outputs = Outputs::default();
        let mut records = Vec::new();
        if spec.output_definitions.parameters.contains_key("name") {
            let name = match (
                scope.params.get("pvc_name"),
                scope.params.get("pvc_name_suffix"),
            ) {
                (Some(n), _) => values::render(n),
                (None, Some(suffix)) => {
                    format!("{}{}", self.resource_name(), values::render(suffix))
                }
                (None, None) => self.resource_name(),
            };
            let stored = self
                .store
                .put_bytes(name.as_bytes())
                .map_err(|e| format!("output 'name': {}", error_chain(&e)))?;
            records.push(IoRecord {
                name: "name".into(),
                type_: Some("String".into()),
                digest: stored.digest,
                size: stored.size,
                value: Some(name.clone()),
                metadata: None,
            });
            outputs.params.insert("name".into(), Json::String(name));
        }
        self.store
            .task_finished(
                &self.run_id,
                record,
                TaskState::Succeeded,
                Some(&note),
                &records,
                &BTreeMap::new(),
            )
            .map_err(|e| format!("cannot record the task: {}", error_chain(&e)))?;
        self.observer.event(&Event::TaskFinished {
            task: record.to_owned(),
            state: TaskState::Succeeded,
            attempts: 0,
            duration: None,
            error: None,
        });
        Ok(End::Succeeded(outputs))
    }

    fn import(
        &self,
        record: &str,
        importer: &ir::ImporterSpec,
        scope: &Scope,
    ) -> Result<End, String> {
        let uri = match (
            &importer.artifact_uri.constant,
            &importer.artifact_uri.runtime_parameter,
        ) {
            (Some(c), _) => values::render(c),
            (None, Some(p)) => scope
                .params
                .get(p)
                .map(values::render)
                .ok_or_else(|| format!("the importer's URI parameter '{p}' has no value"))?,
            (None, None) => return Err("the importer names no artifactUri".into()),
        };
        let path = local_path(&uri)?;
        self.observer.event(&Event::TaskStarted {
            task: record.to_owned(),
            attempt: 1,
            implementation: "importer".into(),
            reason: format!("imports {uri}"),
        });
        let stored = self
            .store
            .import(&path)
            .map_err(|e| format!("cannot import {uri}: {}", error_chain(&e)))?;
        self.store
            .attempt_started(
                &self.run_id,
                record,
                &crate::store::AttemptStart {
                    attempt: 1,
                    implementation: "importer",
                    reason: &format!("imports {uri}"),
                    executable_digest: None,
                    inputs: &[],
                    cache_key: None,
                    at: jiff::Timestamp::now(),
                },
            )
            .map_err(|e| format!("cannot record the task: {}", error_chain(&e)))?;
        let metadata = importer.metadata.clone().unwrap_or_else(|| json!({}));
        let published = self
            .store
            .publish(&self.run_id, record, "artifact", &stored.digest)
            .map_err(|e| format!("cannot import {uri}: {}", error_chain(&e)))?;
        let artifact = Artifact {
            name: "artifact".into(),
            type_: importer.type_schema.clone(),
            digest: stored.digest.clone(),
            size: stored.size,
            metadata: metadata.clone(),
            uri: Some(published.display().to_string()),
        };
        let io = IoRecord {
            name: "artifact".into(),
            type_: Some(importer.type_schema.title().to_owned()),
            digest: stored.digest,
            size: stored.size,
            value: None,
            metadata: Some(metadata),
        };
        let _ = self.store.attempt_finished(
            &self.run_id,
            record,
            &crate::store::AttemptEnd {
                attempt: 1,
                state: TaskState::Succeeded,
                error: None,
                logs: &[],
                start: None,
            },
        );
        self.store
            .task_finished(
                &self.run_id,
                record,
                TaskState::Succeeded,
                None,
                &[io],
                &BTreeMap::new(),
            )
            .map_err(|e| format!("cannot record the task: {}", error_chain(&e)))?;
        self.observer.event(&Event::TaskFinished {
            task: record.to_owned(),
            state: TaskState::Succeeded,
            attempts: 1,
            duration: None,
            error: None,
        });
        Ok(End::Succeeded(Outputs {
            params: BTreeMap::new(),
            artifacts: BTreeMap::from([("artifact".to_owned(), vec![artifact])]),
        }))
    }

    async fn container(
        self: Arc<Self>,
        task: &TaskSpec,
        record: &str,
        prepared: &PreparedComponent,
        scope: Scope,
    ) -> End {
        let spec = self.component(Some(&task.component_ref.name));
        let (inputs, context) = match self.stage(record, spec, &scope) {
            Ok(x) => x,
            Err(message) => return self.fail_unstarted(record, message),
        };
        let slot = tokio::select! {
            slot = self.slots.acquire() => slot.ok(),
            () = self.cancel.cancelled() => None,
        };
        if slot.is_none() || self.cancel.is_cancelled() {
            let reason = "the run was cancelled before it started";
            self.end_unstarted(record, TaskState::Cancelled, reason);
            return End::Cancelled;
        }
        let resources = match &prepared.resources_at_run {
            None => prepared.resources.clone(),
            Some(spec) => match super::resources_at_run(spec, &scope.params) {
                Ok(resources) => resources,
                Err(message) => return self.fail_unstarted(record, message),
            },
        };
        let planned_caching = Caching {
            enabled: task.caching_options.enable_cache,
            max_staleness: None,
        };
        let planned = PlannedTask {
            name: record.to_owned(),
            component: prepared.component.clone(),
            inputs: Default::default(),
            upstream: Vec::new(),
            retry: retry_spec(task),
            timeout: None,
            resources,
            prefer: None,
            kfp: Some(Arc::new(context)),
            keep: Vec::new(),
            caching: planned_caching,
            group: None,
            after_groups: Vec::new(),
            trigger: Default::default(),
        };
        let runner = TaskRun {
            store: self.store.clone(),
            executor: self.executor.clone(),
            observer: self.observer.clone(),
            cancel: self.cancel.clone(),
            cleaner: self.cleaner.clone(),
            run_id: self.run_id.clone(),
            task: Arc::new(planned),
            prepared: prepared.prepared.clone(),
            transform: None,
            default_timeout: self.options.default_timeout,
            ended_attempt: Default::default(),
            caching: Caching {
                enabled: !self.options.no_cache,
                max_staleness: self.options.max_cache_staleness,
            }
            .and(planned_caching),
            cache_key: Default::default(),
            unrecorded_start: Default::default(),
            resumes: self.options.resumes.clone(),
        };
        match runner.run(Ok(inputs)).await {
            TaskEnd::Succeeded { outputs, .. } => {
                let records: Vec<IoRecord> = outputs.into_values().collect();
                match self.outputs(record, spec, &records) {
                    Ok(outputs) => End::Succeeded(outputs),
                    Err(message) => End::Failed(message),
                }
            }
            TaskEnd::Failed { error } => End::Failed(error),
            TaskEnd::Cancelled => End::Cancelled,
        }
    }

    fn fail_unstarted(&self, record: &str, message: String) -> End {
        self.end_unstarted(record, TaskState::Failed, &message);
        End::Failed(message)
    }

    /// Records an executor task that ended without an attempt, and tells the observer.
    fn end_unstarted(&self, record: &str, state: TaskState, reason: &str) {
        let _ = self.store.task_finished(
            &self.run_id,
            record,
            state,
            Some(reason),
            &[],
            &BTreeMap::new(),
        );
        self.observer.event(&Event::TaskFinished {
            task: record.to_owned(),
            state,
            attempts: 0,
            duration: None,
            error: Some(reason.to_owned()),
        });
    }

    /// Stores parameter values, and lays out the task's inputs and context.
    fn stage(
        &self,
        record: &str,
        spec: &ComponentSpec,
        scope: &Scope,
    ) -> Result<(BTreeMap<String, InputArg>, TaskContext), String> {
        let mut inputs = BTreeMap::new();
        for (name, value) in &scope.params {
            let text = values::render(value);
            let stored = self
                .store
                .put_bytes(text.as_bytes())
                .map_err(|e| format!("input '{name}': {}", error_chain(&e)))?;
            let type_ = spec
                .input_definitions
                .parameters
                .get(name)
                .map(|p| TypeSpec::named(v1_type(p.parameter_type)));
            inputs.insert(
                name.clone(),
                InputArg {
                    digest: stored.digest,
                    size: stored.size,
                    value: Some(text),
                    type_,
                    table: None,
                },
            );
        }
        let mut artifacts = BTreeMap::new();
        for (name, list) in &scope.artifacts {
            let is_list = spec
                .input_definitions
                .artifacts
                .get(name)
                .is_some_and(|a| a.is_artifact_list);
            let mut given = Vec::new();
            for (i, a) in list.iter().enumerate() {
                let key = if is_list {
                    format!("{name}[{i}]")
                } else {
                    name.clone()
                };
                inputs.insert(
                    key.clone(),
                    InputArg {
                        digest: a.digest.clone(),
                        size: a.size,
                        value: None,
                        type_: Some(TypeSpec::named(a.type_.title())),
                        table: None,
                    },
                );
                given.push(InputArtifact {
                    key,
                    name: a.name.clone(),
                    type_: a.type_.clone(),
                    metadata: a.metadata.clone(),
                    uri: a.uri.clone(),
                });
                if !is_list {
                    break;
                }
            }
            artifacts.insert(name.clone(), given);
        }
        let context = TaskContext {
            params: scope.params.clone(),
            artifacts,
            output_params: spec.output_definitions.parameters.keys().cloned().collect(),
            output_artifacts: spec
                .output_definitions
                .artifacts
                .iter()
                .map(|(n, a)| (n.clone(), a.artifact_type.clone()))
                .collect(),
            ..self.context(record)
        };
        Ok((inputs, context))
    }

    /// A task's recorded outputs as values for downstream tasks, its artifacts published
    /// under the run's artifacts as `record` (a task's own, already there; a cached one's,
    /// linked now).
    fn outputs(
        &self,
        record: &str,
        spec: &ComponentSpec,
        records: &[IoRecord],
    ) -> Result<Outputs, String> {
        let mut out = Outputs::default();
        for r in records {
            if let Some(p) = spec.output_definitions.parameters.get(&r.name) {
                let text = match &r.value {
                    Some(v) => v.clone(),
                    None => self
                        .store
                        .read(&r.digest)
                        .map(|b| String::from_utf8_lossy(&b).into_owned())
                        .unwrap_or_default(),
                };
                let value = values::parse(p.parameter_type, &text).unwrap_or(Json::String(text));
                out.params.insert(r.name.clone(), value);
            } else if let Some(a) = spec.output_definitions.artifacts.get(&r.name) {
                let published = self
                    .store
                    .publish(&self.run_id, record, &r.name, &r.digest)
                    .map_err(|e| format!("output '{}': {}", r.name, error_chain(&e)))?;
                out.artifacts.insert(
                    r.name.clone(),
                    vec![Artifact {
                        name: r.name.clone(),
                        type_: a.artifact_type.clone(),
                        digest: r.digest.clone(),
                        size: r.size,
                        metadata: r.metadata.clone().unwrap_or_else(|| json!({})),
                        uri: Some(published.display().to_string()),
                    }],
                );
            }
        }
        Ok(out)
    }
}

/// The name a task is recorded under: its display name (`taskInfo.name`), or its key.
fn display_name(task: &TaskSpec, key: &str) -> String {
    match task.task_info.name.as_str() {
        "" => key.to_owned(),
        name => name.to_owned(),
    }
}

/// The outputs a DAG exposes: each selected from one of its tasks (for `OneOf`, the
/// first branch that ran).
fn dag_outputs(dag: &DagSpec, ends: &BTreeMap<String, End>) -> Outputs {
    let produced = |task: &str| match ends.get(task) {
        Some(End::Succeeded(o)) => Some(o),
        _ => None,
    };
    let mut out = Outputs::default();
    for (name, spec) in &dag.outputs.parameters {
        if let Some(v) = spec.selectors().find_map(|s| {
            produced(&s.producer_subtask)?
                .params
                .get(&s.output_parameter_key)
                .cloned()
        }) {
            out.params.insert(name.clone(), v);
        }
    }
    for (name, spec) in &dag.outputs.artifacts {
        let list: Vec<Artifact> = spec
            .artifact_selectors
            .iter()
            .filter_map(|s| {
                produced(&s.producer_subtask)?
                    .artifacts
                    .get(&s.output_artifact_key)
                    .cloned()
            })
            .flatten()
            .collect();
        if !list.is_empty() {
            out.artifacts.insert(name.clone(), list);
        }
    }
    out
}

/// The KFP v1 type name a parameter type is recorded under.
pub(super) fn v1_type(ty: ParameterType) -> &'static str {
    match ty {
        ParameterType::String => "String",
        ParameterType::NumberInteger => "Integer",
        ParameterType::NumberDouble => "Float",
        ParameterType::Boolean => "Boolean",
        ParameterType::List => "JsonArray",
        ParameterType::Struct | ParameterType::TaskFinalStatus | ParameterType::TaskConfig => {
            "JsonObject"
        }
    }
}

pub(super) fn retry_spec(task: &TaskSpec) -> RetrySpec {
    let Some(policy) = &task.retry_policy else {
        return RetrySpec {
            limit: 0,
            ..RetrySpec::default()
        };
    };
    let base = RetrySpec::default();
    let duration = |d: &Option<String>, fallback: HumanDuration| {
        d.as_deref()
            .and_then(|d| ir::parse_duration(d).ok())
            .map(HumanDuration)
            .unwrap_or(fallback)
    };
    RetrySpec {
        limit: policy.max_retry_count,
        backoff: duration(
            &policy.backoff_duration,
            HumanDuration(std::time::Duration::ZERO),
        ),
        factor: policy.backoff_factor.unwrap_or(base.factor),
        max_backoff: duration(&policy.backoff_max_duration, base.max_backoff),
    }
}

/// A local file named by an importer URI: a path or a `file://` URI.
fn local_path(uri: &str) -> Result<PathBuf, String> {
    if let Some(path) = uri.strip_prefix("file://") {
        return Ok(PathBuf::from(path));
    }
    if let Some((scheme, _)) = uri.split_once("://") {
        return Err(format!(
            "cannot import '{uri}': a {scheme}:// URI needs remote storage; Sluice imports local paths and file:// URIs"
        ));
    }
    Ok(PathBuf::from(uri))
}
