//! The scheduler: runs a plan's tasks in dependency order on tokio, at most
//! `parallelism` at a time, with per-task retries (and backoff) and timeouts, and
//! cancellation. A failed task marks everything downstream `skipped`, and unless
//! `keep_going` no new task starts after a failure. It stages inputs and collects
//! outputs through the store and records every step there; how a task actually runs is
//! the [`Executor`]'s business, behind a trait.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

mod engine;
pub mod fuse;

use self::fuse::{Fusion, Mismatch};
use crate::events::{Event, Observer, TaskSink};
use crate::exec::{
    Executor, FailureKind, HeldTable, InputArg, Invocation, Prepared, Target, TransformCall,
    collect_outputs, error_chain,
};
pub use crate::plan::Caching;
use crate::plan::{ParamValue, Plan, PlannedTask, artifact_params};
use crate::store::{
    CachedTask, IoRecord, NewRun, NewTask, RunKind, RunState, Store, StoreError, TaskDir, TaskState,
};

#[derive(Clone, Debug)]
pub struct Options {
    /// Most tasks running at once.
    pub parallelism: usize,
    /// Keep starting independent tasks after one fails.
    pub keep_going: bool,
    /// Keep each attempt's working folder, even after success.
    pub keep_work: bool,
    /// Run consecutive transform tasks as fused chains, passing tables in memory.
    pub fuse: bool,
    /// Wall-clock limit of one attempt of a task that sets no `timeout`; without it, wasm
    /// attempts get [`WASM_TIMEOUT`] and others none.
    pub default_timeout: Option<Duration>,
    /// Tasks taken as done, by name, with what the earlier run's task they reuse recorded
    /// (`sluice runs resume`, `--from`). A task is reused only when every task upstream
    /// of it was, its executable and its inputs are the ones recorded, and every output
    /// is in the store with bytes that still match its digest; it is then recorded as
    /// succeeded with `cached_from` naming the task it reused, and never runs.
    pub reuse: BTreeMap<String, Reused>,
    /// How the run was started, kept in its record ([`crate::store::NewRun::flags`]).
    pub flags: Vec<String>,
    /// How tasks use the task cache; each task may narrow it ([`PlannedTask::caching`]).
    pub caching: Caching,
    /// A run this one resumes (`sluice runs resume`): a task whose namesake in that run
    /// succeeded under the same cache key (the same component, executable and inputs)
    /// takes its outputs instead of running, whatever its caching.
    pub resumes: Option<String>,
}

/// An earlier run's task that a new run may take as done ([`Options::reuse`]).
#[derive(Clone, Debug)]
pub struct Reused {
    /// Its outputs and metrics, and the run and task they come from.
    pub cached: CachedTask,
    /// The digest of the executable it ran (a wasm component's bytes), if it had one.
    pub executable_digest: Option<String>,
    /// The inputs it read, by name and digest.
    pub inputs: Vec<IoRecord>,
}

/// Wall-clock limit of one wasm attempt when neither the task nor the run sets one: a
/// guest blocked in a host call (a long sleep) uses no CPU time, so its CPU-time limit
/// alone would never stop it.
pub const WASM_TIMEOUT: Duration = crate::exec::wasm::DEFAULT_TIMEOUT;

/// How often the outputs of a container or process attempt are measured against its
/// `resources.ephemeral_storage`.
const STORAGE_CHECK: Duration = Duration::from_millis(250);

impl Default for Options {
    fn default() -> Self {
        Options {
            parallelism: std::thread::available_parallelism().map_or(2, |n| n.get()),
            keep_going: false,
            keep_work: false,
            fuse: true,
            default_timeout: None,
            reuse: BTreeMap::new(),
            flags: Vec::new(),
            caching: Caching::default(),
            resumes: None,
        }
    }
}

/// A run could not start. Nothing ran; the run may not have been recorded.
#[derive(Debug, thiserror::Error)]
pub enum ScheduleError {
    #[error("task '{task}'")]
    Prepare {
        task: String,
        #[source]
        source: crate::exec::PrepareError,
    },
    #[error("param '{param}': cannot import {}", path.display())]
    Import {
        param: String,
        path: std::path::PathBuf,
        #[source]
        source: StoreError,
    },
    #[error("cannot record the run")]
    Store(#[from] StoreError),
    /// Transform tasks wired table to table whose interfaces disagree; one line each.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Wiring(Vec<Mismatch>),
}

/// What an executor's `prepare` decides for one task of a plan.
pub fn target(task: &PlannedTask) -> Target<'_> {
    Target {
        task: &task.name,
        component: &task.component,
        resources: &task.resources,
        prefer: task.prefer,
    }
}

/// The cache key of a task: its component file's digest, the executable it runs and how,
/// and every input's digest by name (SHA-256 over their JSON, hex).
pub(crate) fn cache_key(
    component_digest: &str,
    prepared: &Prepared,
    inputs: &[IoRecord],
) -> String {
    let inputs: BTreeMap<&str, &str> = inputs
        .iter()
        .map(|r| (r.name.as_str(), r.digest.as_str()))
        .collect();
    let material = serde_json::json!({
        "component": component_digest,
        "image": prepared.executable_digest,
        "implementation": prepared.implementation,
        "inputs": inputs,
    });
    crate::spec::sha256_hex(material.to_string().as_bytes())
}

/// How a run ended.
#[derive(Clone, Debug, PartialEq)]
pub struct RunOutcome {
    pub run_id: String,
    pub state: RunState,
}

pub struct Scheduler {
    pub store: Arc<Store>,
    pub executor: Arc<dyn Executor>,
    pub observer: Arc<dyn Observer>,
    pub options: Options,
    /// Cancel to stop the run: running attempts are interrupted, nothing new starts.
    pub cancel: CancellationToken,
}

/// What one task's attempts came to.
pub(crate) enum TaskEnd {
    Succeeded {
        outputs: BTreeMap<String, IoRecord>,
        /// Table outputs handed on in memory to the next tasks of a fused chain.
        tables: BTreeMap<String, HeldTable>,
    },
    Failed {
        error: String,
    },
    Cancelled,
}

impl Scheduler {
    /// Prepares every component, imports artifact parameters, records the run, and runs it.
    pub async fn run(&self, plan: Arc<Plan>, kind: RunKind) -> Result<RunOutcome, ScheduleError> {
        let prepared = self.prepare(&plan).await?;
        self.run_prepared(plan, prepared, kind).await
    }

    /// Runs a plan whose tasks were prepared already (`prepared`, by task index): a front
    /// end with its own way to prepare, such as the KFP front end.
    pub async fn run_prepared(
        &self,
        plan: Arc<Plan>,
        mut prepared: Vec<Prepared>,
        kind: RunKind,
    ) -> Result<RunOutcome, ScheduleError> {
        // Fused chains run in the pipeline's own DAG; tables handed on in memory have one
        // producer instance each.
        let fuse = self.options.fuse && plan.groups.is_empty();
        let fusion = Fusion::decide(&plan, &prepared, fuse).map_err(ScheduleError::Wiring)?;
        for (c, chain) in fusion.chains.iter().enumerate() {
            for &i in chain {
                let p = &mut prepared[i];
                // A registry component keeps the pinned reference it was run at.
                p.implementation = match p
                    .implementation
                    .split_whitespace()
                    .find(|w| w.starts_with("oci://"))
                {
                    Some(pinned) => format!("wasm transform {pinned}"),
                    None => "wasm transform".into(),
                };
                p.reason = format!("fused chain {}: {}", c + 1, p.reason);
            }
        }
        let mut imported = HashMap::new();
        for (param, path) in artifact_params(&plan) {
            let artifact = self
                .store
                .import(path)
                .map_err(|source| ScheduleError::Import {
                    param: param.to_owned(),
                    path: path.to_owned(),
                    source,
                })?;
            imported.insert(param.to_owned(), artifact);
        }

        let params: BTreeMap<String, String> = plan
            .params
            .iter()
            .filter_map(|(name, p)| {
                let (value, _) = p.value.as_ref()?;
                Some((
                    name.clone(),
                    match value {
                        ParamValue::Value(v) => v.clone(),
                        ParamValue::File(_) => imported[name].digest.clone(),
                    },
                ))
            })
            .collect();
        // Tasks of the pipeline's own DAG are known now; those in groups, as the run
        // opens them.
        let new_tasks: Vec<NewTask<'_>> = plan
            .tasks
            .iter()
            .filter(|t| t.group.is_none())
            .map(|t| NewTask {
                name: &t.name,
                component: t.component.name(),
                component_file: &t.component.path,
                component_digest: &t.component.digest,
            })
            .collect();
        let run_id = self.store.begin_run(
            &NewRun {
                kind,
                name: &plan.name,
                source: &plan.source,
                source_digest: &plan.source_digest,
                params,
                flags: self.options.flags.clone(),
                graph: Some(
                    serde_json::to_string(&crate::plan::Graph::of(&plan, &fusion.chains))
                        .expect("a graph is plain data"),
                ),
            },
            &new_tasks,
        )?;
        // Tasks outside loops show from the start; a loop's, once per iteration.
        self.observer.event(&Event::RunStarted {
            run_id: run_id.clone(),
            name: plan.name.clone(),
            tasks: plan
                .tasks
                .iter()
                .filter(|t| !plan.in_loop(t.group))
                .map(|t| t.name.clone())
                .collect(),
            more: plan.tasks.iter().any(|t| plan.in_loop(t.group)),
        });

        let cleaner = (!self.options.keep_work).then(|| Cleaner::start(self.store.clone()));
        let journal = crate::store::Journal::start(self.store.clone());
        let setup = engine::RunSetup {
            run_id: run_id.clone(),
            plan: plan.clone(),
            prepared: &prepared,
            fusion: &fusion,
            imported: &imported,
            cleaner: cleaner.as_ref(),
            journal: journal.sender(self.store.clone()),
        };
        let mut state = engine::Engine::new(self, setup).run().await;
        // Every task's end is on record before the run's is.
        let unrecorded = tokio::task::spawn_blocking(move || journal.finish())
            .await
            .unwrap_or_else(|_| vec!["the run record's writer stopped".to_owned()]);
        for line in &unrecorded {
            self.observer.event(&Event::Note {
                line: format!("cannot record the end of {line}"),
            });
        }
        if !unrecorded.is_empty() && state == RunState::Succeeded {
            state = RunState::Failed;
        }
        if let Some(cleaner) = cleaner {
            let _ = tokio::task::spawn_blocking(move || cleaner.finish()).await;
        }
        let error = match state {
            RunState::Failed => Some("one or more tasks failed"),
            RunState::Cancelled => Some("cancelled"),
            _ => None,
        };
        self.store.finish_run(&run_id, state, error)?;
        self.observer.event(&Event::RunFinished {
            run_id: run_id.clone(),
            state,
        });
        Ok(RunOutcome { run_id, state })
    }

    /// Decides how every task runs and loads what it needs, before anything runs.
    async fn prepare(&self, plan: &Plan) -> Result<Vec<Prepared>, ScheduleError> {
        let mut prepared = Vec::with_capacity(plan.tasks.len());
        for task in &plan.tasks {
            let target = target(task);
            let p =
                self.executor
                    .prepare(target)
                    .await
                    .map_err(|source| ScheduleError::Prepare {
                        task: task.name.clone(),
                        source,
                    })?;
            prepared.push(p);
        }
        Ok(prepared)
    }

    pub(crate) fn finish_unstarted(
        &self,
        run_id: &str,
        task: &str,
        state: TaskState,
        reason: &str,
    ) {
        if let Err(e) =
            self.store
                .task_finished(run_id, task, state, Some(reason), &[], &BTreeMap::new())
        {
            self.observer.event(&Event::TaskLog {
                task: task.to_owned(),
                stream: crate::events::Stream::Host,
                line: format!("cannot record the task: {}", error_chain(&e)),
            });
        }
        self.observer.event(&Event::TaskFinished {
            task: task.to_owned(),
            state,
            attempts: 0,
            duration: None,
            error: Some(reason.to_owned()),
        });
    }
}

/// Removes finished attempts' folders on a thread of its own, off the tasks' path:
/// removing folders can take long (file systems that discard blocks synchronously spend
/// hundreds of microseconds per folder), and nothing waits for it but the run's end.
pub(crate) struct Cleaner {
    sender: std::sync::mpsc::Sender<TaskDir>,
    thread: std::thread::JoinHandle<()>,
}

impl Cleaner {
    pub(crate) fn start(store: Arc<Store>) -> Cleaner {
        let (sender, receiver) = std::sync::mpsc::channel::<TaskDir>();
        let thread = std::thread::spawn(move || {
            for dir in receiver {
                let _ = store.remove_task_dir(&dir);
            }
        });
        Cleaner { sender, thread }
    }

    pub(crate) fn handle(&self) -> std::sync::mpsc::Sender<TaskDir> {
        self.sender.clone()
    }

    /// Waits until every folder sent so far is gone.
    pub(crate) fn finish(self) {
        drop(self.sender);
        let _ = self.thread.join();
    }
}

/// How a task's resolved inputs are recorded.
pub(crate) fn input_records(inputs: &BTreeMap<String, InputArg>) -> Vec<IoRecord> {
    inputs
        .iter()
        .map(|(name, arg)| IoRecord {
            name: name.clone(),
            type_: arg.type_.as_ref().map(ToString::to_string),
            digest: arg.digest.clone(),
            size: arg.size,
            value: arg.value.clone(),
            metadata: None,
        })
        .collect()
}

/// One task's attempts, run on its own tokio task.
pub(crate) struct TaskRun {
    pub(crate) store: Arc<Store>,
    pub(crate) executor: Arc<dyn Executor>,
    pub(crate) observer: Arc<dyn Observer>,
    pub(crate) cancel: CancellationToken,
    /// Where finished attempts' folders go to be removed; `None` keeps them.
    pub(crate) cleaner: Option<std::sync::mpsc::Sender<TaskDir>>,
    /// Where the task's end goes to be recorded.
    pub(crate) journal: crate::store::JournalSender,
    pub(crate) run_id: String,
    pub(crate) task: Arc<PlannedTask>,
    /// For a KFP task: what its placeholders and executor input need.
    pub(crate) context: Option<Arc<crate::launcher::TaskContext>>,
    pub(crate) prepared: Prepared,
    /// For a task in a fused chain: its call through the transform export.
    pub(crate) transform: Option<Arc<TransformCall>>,
    /// The run's limit for attempts of tasks that set no `timeout`.
    pub(crate) default_timeout: Option<Duration>,
    /// The last attempt's end, until it is recorded (see `finish_attempt`).
    pub(crate) ended_attempt: std::sync::Mutex<Option<crate::store::AttemptEntry>>,
    /// How this task uses the task cache.
    pub(crate) caching: Caching,
    /// The task's cache key, once its inputs are known.
    pub(crate) cache_key: std::sync::OnceLock<String>,
    /// The run this one resumes: this task's namesake there, when it succeeded under this
    /// task's cache key, is taken instead of running, whatever the task's caching.
    pub(crate) resumes: Option<String>,
}

/// The outcome of one attempt, before retry decisions.
enum Attempt {
    Succeeded(
        BTreeMap<String, IoRecord>,
        BTreeMap<String, f64>,
        BTreeMap<String, HeldTable>,
    ),
    Failed {
        message: String,
        retryable: bool,
    },
    Cancelled,
}

impl TaskRun {
    pub(crate) async fn run(self, inputs: Result<BTreeMap<String, InputArg>, String>) -> TaskEnd {
        let task = &*self.task;
        let started = Instant::now();
        let mut inputs = match inputs {
            Ok(i) => i,
            Err(message) => {
                return self.end(
                    TaskState::Failed,
                    0,
                    started,
                    Some(message),
                    BTreeMap::new(),
                    BTreeMap::new(),
                );
            }
        };
        let input_records = input_records(&inputs);
        if let Some(end) = self.take_cached(&input_records) {
            return end;
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            // The last attempt there can be takes the inputs, so that a table handed over
            // in memory has one owner and reaches the guest without a copy.
            let given = if attempt > task.retry.limit {
                std::mem::take(&mut inputs)
            } else {
                inputs.clone()
            };
            let outcome = self.attempt(attempt, given, &input_records).await;
            match outcome {
                Attempt::Succeeded(outputs, metrics, tables) => {
                    let end = self.end(
                        TaskState::Succeeded,
                        attempt,
                        started,
                        None,
                        outputs,
                        metrics,
                    );
                    return match end {
                        TaskEnd::Succeeded { outputs, .. } => {
                            TaskEnd::Succeeded { outputs, tables }
                        }
                        other => other,
                    };
                }
                Attempt::Cancelled => {
                    return self.end(
                        TaskState::Cancelled,
                        attempt,
                        started,
                        Some("cancelled".into()),
                        BTreeMap::new(),
                        BTreeMap::new(),
                    );
                }
                Attempt::Failed { message, retryable } => {
                    if !retryable || attempt > task.retry.limit {
                        let message = if attempt > 1 {
                            format!("{message} (after {attempt} attempts)")
                        } else {
                            message
                        };
                        return self.end(
                            TaskState::Failed,
                            attempt,
                            started,
                            Some(message),
                            BTreeMap::new(),
                            BTreeMap::new(),
                        );
                    }
                    self.record_ended_attempt();
                    let delay = task.retry.delay(attempt);
                    self.observer.event(&Event::TaskRetrying {
                        task: task.name.clone(),
                        failed_attempt: attempt,
                        error: message,
                        delay,
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = self.cancel.cancelled() => {
                            return self.end(TaskState::Cancelled, attempt, started, Some("cancelled".into()), BTreeMap::new(), BTreeMap::new());
                        }
                    }
                }
            }
        }
    }

    /// The outputs of an earlier run of exactly this task (the same component, executable,
    /// implementation and input digests), when the task may use the cache and the cache
    /// has them with every output's bytes intact. Sets the task's cache key either way,
    /// but for a task in a fused chain, whose outputs are handed on in memory.
    fn take_cached(&self, inputs: &[IoRecord]) -> Option<TaskEnd> {
        // A fused task hands its tables on in memory; a host process whose program only
        // its inputs name runs bytes the key cannot say.
        if self.transform.is_some()
            || (self.prepared.kind == crate::exec::Kind::Process
                && self.prepared.executable_digest.is_none())
        {
            return None;
        }
        let key = self
            .cache_key
            .get_or_init(|| cache_key(&self.task.component.digest, &self.prepared, inputs));
        // A resumed run takes what its earlier run did with exactly these inputs, whatever
        // the task's caching says; the cache comes after.
        let resumed = self.resumes.as_deref().map(|run| {
            self.store
                .succeeded_in_run(run, &self.task.name, key)
                .map(|found| found.map(|c| (c, "resumed")))
        });
        let cached = match resumed {
            Some(Ok(Some(found))) => Ok(Some(found)),
            _ if !self.caching.enabled => Ok(None),
            _ => {
                let since = self
                    .caching
                    .max_staleness
                    .and_then(|age| jiff::Timestamp::now().checked_sub(age).ok());
                self.store
                    .find_cached(key, since)
                    .map(|found| found.map(|c| (c, "cached")))
            }
        };
        let (cached, how) = match cached {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(e) => {
                self.host_line(&format!("cache lookup failed: {}", error_chain(&e)));
                return None;
            }
        };
        let task = &self.task.name;
        let reuse = crate::store::Reuse {
            inputs,
            cached: &cached,
            executable_digest: self.prepared.executable_digest.as_deref(),
            cache_key: Some(key),
            cache_source: self.task.caching.enabled,
        };
        if let Err(e) = self.store.task_reused(&self.run_id, task, &reuse) {
            // Nothing reused: the task runs.
            self.host_line(&format!("cannot reuse cached outputs: {}", error_chain(&e)));
            return None;
        }
        self.host_line(&format!(
            "{how}: reusing the outputs of task '{}' of run {}",
            cached.task, cached.run
        ));
        self.observer.event(&Event::TaskFinished {
            task: task.clone(),
            state: TaskState::Succeeded,
            attempts: 0,
            duration: None,
            error: None,
        });
        Some(TaskEnd::Succeeded {
            outputs: cached
                .outputs
                .into_iter()
                .map(|o| (o.name.clone(), o))
                .collect(),
            tables: BTreeMap::new(),
        })
    }

    fn host_line(&self, line: &str) {
        self.observer.event(&Event::TaskLog {
            task: self.task.name.clone(),
            stream: crate::events::Stream::Host,
            line: line.to_owned(),
        });
    }

    async fn attempt(
        &self,
        attempt: u32,
        inputs: BTreeMap<String, InputArg>,
        input_records: &[IoRecord],
    ) -> Attempt {
        let task = &*self.task;
        let store = &self.store;
        // Written with the next batch of the run's record: with the attempt's end, when
        // that comes within the batch.
        self.record(crate::store::JournalEntry::Start {
            run: self.run_id.clone(),
            task: task.name.clone(),
            start: self.start_entry(attempt, input_records),
        });
        self.observer.event(&Event::TaskStarted {
            task: task.name.clone(),
            attempt,
            implementation: self.prepared.implementation.clone(),
            reason: self.prepared.reason.clone(),
        });

        let output_names: Vec<&str> = task
            .component
            .spec
            .outputs
            .iter()
            .map(|o| o.name.as_str())
            .collect();
        let staged = store
            .task_dir(
                &self.run_id,
                &task.name,
                attempt,
                inputs.values().any(|arg| arg.table.is_none()),
                &output_names,
                self.context.is_some(),
            )
            .and_then(|dir| {
                for (name, arg) in &inputs {
                    // A table handed over in memory is never staged.
                    if arg.table.is_none() {
                        store.stage_input(&dir, name, &arg.digest)?;
                    }
                }
                Ok(dir)
            });
        // A KFP step's task root, for its executor output.
        let kfp_step = self.context.is_some() || task.component.uses_executor_input();
        let staged = staged.and_then(|dir| {
            if kfp_step {
                let root = dir.outputs().join(crate::launcher::TASK_ROOT);
                std::fs::create_dir_all(&root).map_err(|e| StoreError::io("create", &root, e))?;
            }
            Ok(dir)
        });
        let dir = match staged {
            Ok(dir) => dir,
            Err(e) => {
                let message = format!("cannot prepare the task folder: {}", error_chain(&e));
                self.finish_attempt(attempt, TaskState::Failed, Some(&message), &[], None);
                return Attempt::Failed {
                    message,
                    retryable: false,
                };
            }
        };

        let set_limit = task.timeout.or(self.default_timeout);
        let limit = set_limit
            .or_else(|| (self.prepared.kind == crate::exec::Kind::Wasm).then_some(WASM_TIMEOUT));
        let started = Arc::new(tokio::sync::Notify::new());
        let token = self.cancel.child_token();
        let invocation = Invocation {
            run_id: self.run_id.clone(),
            task: task.name.clone(),
            attempt,
            component: task.component.clone(),
            inputs,
            dir: dir.clone(),
            resources: task.resources.clone(),
            timeout: set_limit,
            started: started.clone(),
            prepared: self.prepared.clone(),
            cancel: token.clone(),
            sink: TaskSink::new(task.name.clone(), self.observer.clone()),
            kfp: self.context.clone(),
            transform: self.transform.clone(),
        };
        // A KFP v2 step written as a v1 component reports through an executor output too.
        let v1_context = (self.context.is_none() && task.component.uses_executor_input())
            .then(|| Arc::new(crate::exec::launch::context_for_v1(&invocation)));
        let mut execution = self.executor.execute(invocation);
        let mut timed_out = None;
        let mut over_storage = None;
        // Wasm attempts are held to their storage limit as they write; others are measured.
        let storage = task
            .resources
            .ephemeral_storage
            .filter(|_| self.prepared.kind != crate::exec::Kind::Wasm);
        // A queued attempt's time counts once it runs, and again from the start of each
        // run of it (a job resubmitted after its node failed).
        let queues = self.executor.queues();
        // An executor that holds its attempts to their limit itself (a wasm attempt,
        // counted from when it has an instance) needs no clock here.
        let times_itself = self.executor.times_itself(&self.prepared);
        let deadline = async {
            if times_itself {
                return std::future::pending().await;
            }
            if !queues {
                return sleep_for(limit).await;
            }
            started.notified().await;
            loop {
                tokio::select! {
                    () = sleep_for(limit) => return,
                    () = started.notified() => {}
                }
            }
        };
        let watch = watch_storage(dir.outputs(), storage.map(|s| s.0));
        tokio::pin!(deadline, watch);
        let mut report = tokio::select! {
            report = &mut execution => report,
            _ = &mut deadline => {
                timed_out = limit;
                token.cancel();
                execution.await
            }
            used = &mut watch => {
                over_storage = Some(used);
                token.cancel();
                execution.await
            }
        };
        // Measured once more at the end: a task may write fast between two checks.
        if over_storage.is_none()
            && let Some(cap) = storage
        {
            let used = crate::exec::outputs_size(&dir.outputs());
            if used > cap.0 {
                over_storage = Some(used);
            }
        }
        if let (Some(used), Some(cap)) = (over_storage, storage) {
            report.result = Err(crate::exec::Failure::failed(format!(
                "ephemeral storage limit of {} exceeded (the outputs held {}; set \
                 resources.ephemeral_storage to allow more)",
                crate::spec::ByteSize(cap.0),
                crate::spec::ByteSize(used)
            )));
        }
        for log in &mut report.logs {
            log.attempt = attempt;
        }

        let outcome = match report.result {
            Ok(mut completion) => {
                let finished = match self.context.as_ref().or(v1_context.as_ref()) {
                    Some(kfp) => crate::exec::launch::finish(kfp, &dir, &mut completion),
                    None => Ok(()),
                };
                let collected = finished
                    .and_then(|()| collect_outputs(store, &task.component, &dir, &mut completion))
                    .and_then(|records| {
                        // A KFP step's outputs stay where it wrote them, as links into
                        // the store: the `uri`s it was given remain valid.
                        if self.context.is_some() {
                            for r in &records {
                                store
                                    .publish(&self.run_id, &task.name, &r.name, &r.digest)
                                    .map_err(|e| {
                                        crate::exec::Failure::failed(format!(
                                            "output '{}': {}",
                                            r.name,
                                            error_chain(&e)
                                        ))
                                    })?;
                            }
                        }
                        Ok(records)
                    });
                match collected {
                    Ok(records) => Attempt::Succeeded(
                        records.into_iter().map(|r| (r.name.clone(), r)).collect(),
                        completion.metrics,
                        completion.tables,
                    ),
                    Err(f) => Attempt::Failed {
                        message: f.message,
                        retryable: true,
                    },
                }
            }
            Err(f) => match (timed_out, f.kind) {
                (Some(limit), _) => Attempt::Failed {
                    message: crate::exec::timed_out(limit),
                    retryable: true,
                },
                (None, FailureKind::Interrupted) if self.cancel.is_cancelled() => {
                    Attempt::Cancelled
                }
                (None, FailureKind::InvalidInput) => Attempt::Failed {
                    message: f.message,
                    retryable: false,
                },
                (None, _) => Attempt::Failed {
                    message: f.message,
                    retryable: true,
                },
            },
        };
        let (state, error) = match &outcome {
            Attempt::Succeeded(..) => (TaskState::Succeeded, None),
            Attempt::Failed { message, .. } => (TaskState::Failed, Some(message.as_str())),
            Attempt::Cancelled => (TaskState::Cancelled, Some("cancelled")),
        };
        self.finish_attempt(attempt, state, error, &report.logs, report.ran_on);
        // A failed attempt's folder stays for debugging; a successful one's outputs are in
        // the store. A step that needed no folder has none to remove.
        if state == TaskState::Succeeded
            && let Some(cleaner) = &self.cleaner
            && dir.root.exists()
        {
            let _ = cleaner.send(dir);
        }
        outcome
    }

    /// Keeps how an attempt ended, to be recorded with the task's end when it is the last
    /// (one commit instead of two), or before the next attempt starts.
    fn finish_attempt(
        &self,
        attempt: u32,
        state: TaskState,
        error: Option<&str>,
        logs: &[crate::store::LogRecord],
        ran_on: Option<String>,
    ) {
        *self.ended_attempt.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(crate::store::AttemptEntry {
                attempt,
                state,
                error: error.map(str::to_owned),
                logs: logs.to_vec(),
                ran_on,
            });
    }

    /// An attempt's start as the journal keeps it.
    fn start_entry(&self, attempt: u32, inputs: &[IoRecord]) -> crate::store::StartEntry {
        crate::store::StartEntry {
            attempt,
            implementation: self.prepared.implementation.clone(),
            reason: self.prepared.reason.clone(),
            executable_digest: self.prepared.executable_digest.clone(),
            inputs: inputs.to_vec(),
            cache_key: self.cache_key.get().cloned(),
            cache_source: self.task.caching.enabled,
            at: jiff::Timestamp::now(),
        }
    }

    /// Hands an entry to the run's journal. One that cannot be written is said in the
    /// task's log; the task's end, written after it, fails the task if it cannot be either.
    fn record(&self, entry: crate::store::JournalEntry) {
        if let Err(e) = self.journal.record(entry) {
            self.host_line(&format!("cannot record the attempt: {}", error_chain(&e)));
        }
    }

    /// Records the attempt kept by `finish_attempt`, if any, on its own: another follows.
    fn record_ended_attempt(&self) {
        let ended = self
            .ended_attempt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(end) = ended {
            self.record(crate::store::JournalEntry::AttemptEnd {
                run: self.run_id.clone(),
                task: self.task.name.clone(),
                end,
                at: jiff::Timestamp::now(),
            });
        }
    }

    fn end(
        &self,
        state: TaskState,
        attempts: u32,
        started: Instant,
        error: Option<String>,
        outputs: BTreeMap<String, IoRecord>,
        metrics: BTreeMap<String, f64>,
    ) -> TaskEnd {
        let task = &*self.task;
        let last = self
            .ended_attempt
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let entry = crate::store::TaskEndEntry {
            run: self.run_id.clone(),
            task: task.name.clone(),
            state,
            error: error.clone(),
            outputs: outputs.values().cloned().collect(),
            metrics,
            last,
            at: jiff::Timestamp::now(),
        };
        // Written with other tasks' ends, off this task's way; a failure to write it
        // fails the run when it ends.
        let (state, error) = match self
            .journal
            .record(crate::store::JournalEntry::TaskEnd(entry))
        {
            Ok(()) => (state, error),
            Err(e) => (
                TaskState::Failed,
                Some(format!("cannot record the task: {}", error_chain(&e))),
            ),
        };
        self.observer.event(&Event::TaskFinished {
            task: task.name.clone(),
            state,
            attempts,
            duration: Some(started.elapsed()),
            error: error.clone(),
        });
        match state {
            TaskState::Succeeded => TaskEnd::Succeeded {
                outputs,
                tables: BTreeMap::new(),
            },
            TaskState::Cancelled => TaskEnd::Cancelled,
            _ => TaskEnd::Failed {
                error: error.unwrap_or_default(),
            },
        }
    }
}

#[cfg(test)]
mod tests;

/// Sleeps for `limit`, or forever without one.
async fn sleep_for(limit: Option<Duration>) {
    match limit {
        Some(limit) => tokio::time::sleep(limit).await,
        None => std::future::pending().await,
    }
}

/// Resolves with the bytes under `outputs` once they pass `cap`; never without a cap.
async fn watch_storage(outputs: std::path::PathBuf, cap: Option<u64>) -> u64 {
    let Some(cap) = cap else {
        return std::future::pending().await;
    };
    loop {
        tokio::time::sleep(STORAGE_CHECK).await;
        let dir = outputs.clone();
        let used = tokio::task::spawn_blocking(move || crate::exec::outputs_size(&dir))
            .await
            .unwrap_or(0);
        if used > cap {
            return used;
        }
    }
}
