//! The library's entry point: `Session::open(home)?.run(pipeline, options)` pulls what a
//! run needs from registries, prepares every task's executor, schedules, records and, when
//! the run succeeded and its pipeline says so, deploys. The `sluice` command, the
//! benchmarks (but the one that times a registry pull on its own) and the runtime's
//! integration tests run pipelines through it; only the scheduler's own unit tests wire
//! executors, runners and a scheduler by hand.
//!
//! ```no_run
//! # async fn example(plan: sluice_runtime::plan::Plan) -> Result<(), sluice_runtime::session::SessionError> {
//! use sluice_runtime::session::{Pipeline, RunOptions, Session};
//! use sluice_runtime::store::RunKind;
//!
//! let session = Session::open(std::path::Path::new("/tmp/sluice-home"))?;
//! let finished = session
//!     .run(Pipeline::Plan { plan, kind: RunKind::Pipeline }, RunOptions::default())
//!     .await?;
//! println!("run {} ended {:?}", finished.run_id, finished.state);
//! # Ok(()) }
//! ```

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::events::{Event, Observer, Quiet};
use crate::exec::attempt::HostSettings;
use crate::exec::runners::{Policy, Runners};
use crate::exec::wasm::{CacheStats, WasmConfig, WasmExecutor};
use crate::exec::{Executor, PrepareError};
use crate::oci::{OciError, Registries, RegistryOptions};
use crate::plan::Plan;
use crate::schedule::{self, ScheduleError, Scheduler};
use crate::slurm::{SlurmConfig, SlurmExecutor};
use crate::store::{DeployRecord, LiveLogs, RunKind, RunState, Store, StoreError};

/// What a session runs.
#[derive(Debug)]
pub enum Pipeline {
    /// A planned Sluice pipeline (`RunKind::Pipeline`) or one component on its own
    /// (`RunKind::Component`).
    Plan { plan: Plan, kind: RunKind },
    /// A pipeline compiled by the KFP SDK, lowered into its plan with its parameters
    /// bound ([`crate::kfp::bind_params`], [`crate::kfp::lower::lower`]). Its containers
    /// are prepared as KFP's front end prepares them ([`crate::kfp::prepare`]).
    Kfp { plan: Plan },
}

impl Pipeline {
    /// The plan it runs.
    pub fn plan(&self) -> &Plan {
        match self {
            Pipeline::Plan { plan, .. } | Pipeline::Kfp { plan } => plan,
        }
    }
}

/// How a session runs a pipeline.
#[derive(Clone)]
pub struct RunOptions {
    /// Parallelism, `--keep-going`, the task cache, timeouts, resumed tasks, recorded flags.
    pub schedule: schedule::Options,
    /// Which implementation runs each task, and how containers run.
    pub policy: Policy,
    /// How registries are reached, for the wasm components a Sluice pipeline names by
    /// reference (a compiled KFP pipeline names none).
    pub registry: RegistryOptions,
    /// Registry references to replace with pinned ones (`oci://...:tag` to `...@sha256:`),
    /// so that a rerun runs exactly what its run ran.
    pub pins: HashMap<String, String>,
    /// Receives the run's events (notes, task starts, logs, ends).
    pub observer: Arc<dyn Observer>,
    /// Cancels the run: running attempts stop, nothing new starts, the run ends
    /// `cancelled`.
    pub cancel: CancellationToken,
    /// Where attempts run.
    pub backend: Backend,
}

/// Where a run's attempts run.
#[derive(Clone, Debug, Default)]
pub enum Backend {
    /// In this process and on this machine.
    #[default]
    Local,
    /// Each attempt as a Slurm job ([`crate::slurm`]); this process drives the run. The
    /// home must be on a file system every node shares. Transform chains are not fused:
    /// their tables cannot pass in memory from one job to the next.
    Slurm(SlurmConfig),
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            schedule: schedule::Options::default(),
            policy: Policy::default(),
            registry: RegistryOptions::default(),
            pins: HashMap::new(),
            observer: Arc::new(Quiet),
            cancel: CancellationToken::new(),
            backend: Backend::Local,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("schedule", &self.schedule)
            .field("policy", &self.policy)
            .field("registry", &self.registry)
            .field("pins", &self.pins)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct Finished {
    pub run_id: String,
    pub state: RunState,
    /// What became of the pipeline's `deploy` section, when it has one.
    pub deploy: Option<DeployRecord>,
    /// Wasm components this run compiled, and those it took from the compile cache.
    pub compiled: CacheStats,
}

/// A run that could not start. Nothing ran; the run may not have been recorded.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A wasm component the pipeline names by reference could not be pulled.
    #[error(transparent)]
    Pull(#[from] OciError),
    /// The wasm host could not be set up.
    #[error(transparent)]
    Host(#[from] PrepareError),
    #[error(transparent)]
    Schedule(#[from] ScheduleError),
}

/// A Sluice home opened for running pipelines.
#[derive(Debug, Clone)]
pub struct Session {
    store: Arc<Store>,
    cache_dir: PathBuf,
}

impl Session {
    /// Opens (creating if needed) the home at `home`; compiled wasm is cached under its
    /// `cache/` folder unless [`Session::with_cache_dir`] says otherwise.
    pub fn open(home: &Path) -> Result<Session, StoreError> {
        Ok(Session::from_store(Arc::new(Store::open(home)?)))
    }

    /// A session over a store already open.
    pub fn from_store(store: Arc<Store>) -> Session {
        Session {
            cache_dir: store.cache_dir(),
            store,
        }
    }

    /// Caches compiled wasm and pulled components under `dir` instead of the home's (made
    /// absolute, as the jobs of a cluster backend need it).
    pub fn with_cache_dir(mut self, dir: PathBuf) -> Session {
        self.cache_dir = std::path::absolute(&dir).unwrap_or(dir);
        self
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// The registries of this session's cache, reached as `options` say.
    pub fn registries(&self, options: &RegistryOptions) -> Registries {
        Registries::new(&self.cache_dir, options.clone())
    }

    /// Runs a pipeline to its end: pulls the wasm components it names by reference,
    /// prepares every task's executor (failing before anything runs if one cannot be
    /// prepared), runs and records every task, then deploys what its `deploy` section
    /// says if the run succeeded. A run that starts always ends recorded, whatever its
    /// tasks do; only a run that cannot start is an error.
    pub async fn run(
        &self,
        pipeline: Pipeline,
        options: RunOptions,
    ) -> Result<Finished, SessionError> {
        match pipeline {
            Pipeline::Plan { plan, kind } => self.run_plan(plan, kind, false, options).await,
            Pipeline::Kfp { plan } => self.run_plan(plan, RunKind::Pipeline, true, options).await,
        }
    }

    async fn run_plan(
        &self,
        plan: Plan,
        kind: RunKind,
        kfp: bool,
        options: RunOptions,
    ) -> Result<Finished, SessionError> {
        let mut wasm = WasmConfig::new(self.cache_dir.clone());
        // A slot for every attempt the run may have going at once, so that none waits
        // for an instance (up to the most slots an executor has).
        wasm.instances = u32::try_from(options.schedule.parallelism)
            .unwrap_or(u32::MAX)
            .clamp(1, crate::exec::wasm::MAX_INSTANCES);
        let references: Vec<&str> = plan
            .tasks
            .iter()
            .filter_map(|t| t.component.wasm_reference())
            .collect();
        if !references.is_empty() {
            let registries = self.registries(&options.registry);
            wasm.pulled = crate::oci::pull_for_run(&registries, references, &options.pins).await?;
        }
        let host = HostSettings::new(&wasm, &options.policy);
        let wasm = Arc::new(WasmExecutor::new(wasm)?);
        let runners: Arc<dyn Executor> = Arc::new(Runners::new(wasm.clone(), options.policy));
        let mut schedule = options.schedule;
        let executor = match options.backend {
            Backend::Local => runners,
            Backend::Slurm(mut config) => {
                schedule.fuse = false;
                // The pipeline's own settings, where the command line gives none.
                if let Some(spec) = &plan.slurm {
                    config.partition = config.partition.or_else(|| spec.partition.clone());
                    config.account = config.account.or_else(|| spec.account.clone());
                    if config.extra_args.is_empty() {
                        config.extra_args = spec.args.clone();
                    }
                }
                let observer = options.observer.clone();
                Arc::new(SlurmExecutor::new(runners, host, config, observer)) as Arc<dyn Executor>
            }
        };
        let plan = Arc::new(plan);
        // What tasks write goes to their live logs as well, for other processes to follow.
        let observer: Arc<dyn Observer> = Arc::new(LiveTee {
            store: self.store.clone(),
            live: std::sync::OnceLock::new(),
            inner: options.observer,
        });
        let scheduler = Scheduler {
            store: self.store.clone(),
            executor,
            observer,
            options: schedule,
            cancel: options.cancel,
        };
        let outcome = if kfp {
            let prepared = crate::kfp::prepare(&plan, scheduler.executor.as_ref()).await?;
            for note in prepared.notes {
                scheduler.observer.event(&Event::Note { line: note });
            }
            scheduler
                .run_prepared(plan.clone(), prepared.tasks, kind)
                .await?
        } else {
            scheduler.run(plan.clone(), kind).await?
        };
        // The pipeline's last act, once its record is final.
        let deploy = match plan.deploy {
            Some(_) => {
                let record = self.store.run(&outcome.run_id)?;
                crate::deploy::deploy(&self.store, &plan, &record, &self.cache_dir).await
            }
            None => None,
        };
        Ok(Finished {
            run_id: outcome.run_id,
            state: outcome.state,
            deploy,
            compiled: wasm.cache_stats(),
        })
    }
}

/// Passes every event on, and writes the lines tasks write to the run's live log
/// ([`LiveLogs`]) as they come; the log goes when the run ends.
struct LiveTee {
    store: Arc<Store>,
    live: std::sync::OnceLock<LiveLogs>,
    inner: Arc<dyn Observer>,
}

impl Observer for LiveTee {
    fn event(&self, event: &Event) {
        match event {
            Event::RunStarted { run_id, .. } => {
                let _ = self.live.set(LiveLogs::new(&self.store, run_id));
            }
            Event::TaskLog { task, stream, line } => {
                if let Some(live) = self.live.get() {
                    live.line(task, stream.as_str(), line);
                }
            }
            Event::RunFinished { .. } => {
                if let Some(live) = self.live.get() {
                    live.finish_all();
                }
            }
            _ => {}
        }
        self.inner.event(event);
    }
}
