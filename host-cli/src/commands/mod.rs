//! Subcommands, one file each, and what they share: `name=value` arguments, opening the
//! store, and running a plan with live progress, Ctrl-C handling and a summary.

pub mod bundle;
pub mod component;
pub mod compose;
pub mod export;
pub mod kfp;
pub mod logs;
pub mod models;
pub mod plan;
pub mod registry;
pub mod run;
pub mod runs;
pub mod serve;
pub mod store;
pub mod task;
pub mod ui;
pub mod validate;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_runtime::events::Observer;
use sluice_runtime::exec::docker::PullPolicy;
use sluice_runtime::exec::runners::{ContainerRunner, Policy, Runners};
use sluice_runtime::exec::wasm::{WasmConfig, WasmExecutor};
use sluice_runtime::exec::{Kind, Prepared, Target};
use sluice_runtime::plan::{Plan, PlanError};
use sluice_runtime::schedule::{Options, ScheduleError};
use sluice_runtime::session::{Backend, Pipeline, RunOptions, Session, SessionError};
use sluice_runtime::slurm::SlurmConfig;
use sluice_runtime::spec::Prefer;
use sluice_runtime::store::{DeployState, RunState, Store, default_home};
use tokio_util::sync::CancellationToken;

use crate::Paths;
use crate::progress::{Plain, Progress};

/// Parses `name=value`.
pub fn key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => Err(format!("expected name=value, found '{s}'")),
    }
}

/// A session over the home `paths` name, caching compiled wasm where they say.
pub fn open_session(paths: &Paths) -> Result<Session> {
    let session = Session::from_store(Arc::new(open_store(paths)?));
    Ok(match &paths.cache_dir {
        Some(dir) => session.with_cache_dir(dir.clone()),
        None => session,
    })
}

pub fn open_store(paths: &Paths) -> Result<Store> {
    let home = match &paths.home {
        Some(h) => h.clone(),
        None => default_home()?,
    };
    Store::open(&home).with_context(|| format!("cannot open the Sluice home {}", home.display()))
}

/// Prints plan errors, one per line, and returns the bad-input exit code.
pub fn report_plan_errors(errors: &[PlanError]) -> ExitCode {
    for e in errors {
        errln!("error: {e}");
    }
    ExitCode::from(crate::BAD_INPUT)
}

/// How tasks run: the flags `run` and `component run` share.
#[derive(clap::Args, Debug)]
pub struct ExecArgs {
    /// Prefer an implementation for every task (`container` or `wasm`), or for one
    /// (`TASK=container`); repeatable
    #[arg(long, value_name = "[TASK=]KIND", value_parser = prefer)]
    prefer: Vec<(Option<String>, Prefer)>,
    /// How container implementations run: in Docker, or as plain processes on this host
    /// [default: docker]
    #[arg(long, value_enum)]
    runner: Option<Runner>,
    /// When to pull container images (if-not-present, always, never) [default: if-not-present]
    #[arg(long, value_name = "POLICY", value_parser = pull_policy)]
    pull: Option<PullPolicy>,
    /// Leave each task's container in place (stopped) for debugging
    #[arg(long, overrides_with = "no_keep_containers")]
    keep_containers: bool,
    /// Remove each task's container when it ends (the default; undoes a resumed run's
    /// --keep-containers)
    #[arg(long, overrides_with = "keep_containers")]
    no_keep_containers: bool,
    /// Wall-clock limit of one attempt of every task that sets no `timeout` (`90s`,
    /// `2h`); without it, wasm attempts stop after 1h and others run until they end
    #[arg(long, value_name = "DURATION", value_parser = positive_duration)]
    pub timeout: Option<std::time::Duration>,
    /// Where attempts run: on this machine, or each as a job on the Slurm cluster this
    /// machine's `sbatch` reaches (the home must be on a file system every node shares)
    /// [default: local]
    #[arg(long, value_enum)]
    backend: Option<BackendKind>,
    /// `--backend slurm`: the partition every job is submitted to
    #[arg(long, value_name = "NAME", value_parser = slurm_name)]
    slurm_partition: Option<String>,
    /// `--backend slurm`: the account every job is charged to
    #[arg(long, value_name = "NAME", value_parser = slurm_name)]
    slurm_account: Option<String>,
    /// `--backend slurm`: an `sbatch` argument given to every job as it is
    /// (`--slurm-arg=--qos=high`); repeatable
    #[arg(long = "slurm-arg", value_name = "ARG", allow_hyphen_values = true, value_parser = sbatch_option)]
    slurm_args: Vec<String>,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Registry references to replace with pinned ones (set by `sluice runs rerun`).
    #[arg(skip)]
    pub pins: std::collections::HashMap<String, String>,
}

/// How registries are reached: the flags every command that pulls or pushes shares.
#[derive(clap::Args, Debug, Clone)]
pub struct RegistryArgs {
    /// Never touch the network: take registry components from the cache, or fail
    #[arg(long)]
    pub offline: bool,
    /// Speak plain HTTP to this registry (host:port); repeatable
    #[arg(
        long = "insecure-registry",
        value_name = "HOST:PORT",
        env = "SLUICE_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure: Vec<String>,
    /// Registry user name [default: from the Docker config file]
    #[arg(long, env = "SLUICE_REGISTRY_USERNAME", value_name = "USER")]
    pub username: Option<String>,
    /// Registry password
    #[arg(
        long,
        env = "SLUICE_REGISTRY_PASSWORD",
        hide_env_values = true,
        value_name = "PASSWORD"
    )]
    pub password: Option<String>,
}

impl RegistryArgs {
    /// No network at all: for commands that only read the cache.
    pub fn offline() -> RegistryArgs {
        RegistryArgs {
            offline: true,
            insecure: Vec::new(),
            username: None,
            password: None,
        }
    }

    pub fn registries(&self, cache_dir: &std::path::Path) -> sluice_runtime::oci::Registries {
        sluice_runtime::oci::Registries::new(cache_dir, self.options())
    }

    /// How these flags (and the registry variables of the environment) reach registries.
    pub fn options(&self) -> sluice_runtime::oci::RegistryOptions {
        let mut credentials = sluice_runtime::oci::auth::Explicit::from_env();
        credentials.username = self.username.clone();
        credentials.password = self.password.clone();
        sluice_runtime::oci::RegistryOptions {
            insecure: self.insecure.clone(),
            credentials,
            offline: self.offline,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum BackendKind {
    Local,
    Slurm,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Runner {
    Docker,
    Process,
}

fn prefer(s: &str) -> Result<(Option<String>, Prefer), String> {
    match s.split_once('=') {
        Some((task, kind)) if !task.is_empty() => Ok((Some(task.to_owned()), kind.parse()?)),
        _ => Ok((None, s.parse()?)),
    }
}

/// A duration longer than zero (`90s`, `2h`).
fn positive_duration(s: &str) -> Result<std::time::Duration, String> {
    match serve::duration(s)? {
        d if d.is_zero() => Err("expected a duration longer than 0".to_owned()),
        d => Ok(d),
    }
}

fn slurm_name(s: &str) -> Result<String, String> {
    sluice_runtime::spec::check_slurm_name(s).map(|()| s.to_owned())
}

fn sbatch_option(s: &str) -> Result<String, String> {
    sluice_runtime::spec::check_sbatch_option(s).map(|()| s.to_owned())
}

fn pull_policy(s: &str) -> Result<PullPolicy, String> {
    s.parse()
}

impl ExecArgs {
    /// These flags as a run record keeps them ([`ExecArgs::recorded`]).
    pub(crate) fn recorded_flags(&self) -> Vec<String> {
        let mut flags = Vec::new();
        self.recorded(&mut flags);
        flags
    }

    /// These flags as a run record keeps them: canonical spellings, only what was set,
    /// never the registry's (credentials among them).
    fn recorded(&self, flags: &mut Vec<String>) {
        for (task, kind) in &self.prefer {
            flags.push("--prefer".into());
            flags.push(match task {
                Some(task) => format!("{task}={kind}"),
                None => kind.to_string(),
            });
        }
        if let Some(runner) = self.runner {
            flags.push("--runner".into());
            flags.push(match runner {
                Runner::Docker => "docker".into(),
                Runner::Process => "process".into(),
            });
        }
        if let Some(pull) = self.pull {
            flags.push("--pull".into());
            flags.push(pull.to_string());
        }
        if self.keep_containers {
            flags.push("--keep-containers".into());
        }
        if let Some(timeout) = self.timeout {
            flags.push("--timeout".into());
            flags.push(humantime::format_duration(timeout).to_string());
        }
        if let Some(backend) = self.backend {
            flags.push("--backend".into());
            flags.push(match backend {
                BackendKind::Local => "local".into(),
                BackendKind::Slurm => "slurm".into(),
            });
        }
        if let Some(partition) = &self.slurm_partition {
            flags.extend(["--slurm-partition".into(), partition.clone()]);
        }
        if let Some(account) = &self.slurm_account {
            flags.extend(["--slurm-account".into(), account.clone()]);
        }
        for arg in &self.slurm_args {
            flags.push(format!("--slurm-arg={arg}"));
        }
    }

    /// Whether attempts run as Slurm jobs.
    pub(crate) fn on_slurm(&self) -> bool {
        self.backend == Some(BackendKind::Slurm)
    }

    /// Where attempts run, as these flags say.
    pub(crate) fn backend(&self) -> Result<Backend> {
        if !self.on_slurm() {
            if self.slurm_partition.is_some()
                || self.slurm_account.is_some()
                || !self.slurm_args.is_empty()
            {
                anyhow::bail!(
                    "--slurm-partition, --slurm-account and --slurm-arg need --backend slurm"
                );
            }
            return Ok(Backend::Local);
        }
        let sluice = std::env::current_exe()
            .context("cannot tell where this sluice program is, for the Slurm jobs to run it")?;
        let mut config = SlurmConfig::new(sluice);
        config.partition = self.slurm_partition.clone();
        config.account = self.slurm_account.clone();
        config.extra_args = self.slurm_args.clone();
        Ok(Backend::Slurm(config))
    }

    /// These flags over `earlier` ones: a flag given here wins, one not given keeps its
    /// earlier value; a repeatable flag given here replaces all its earlier values.
    fn over(self, earlier: ExecArgs) -> ExecArgs {
        let backend = self.backend.or(earlier.backend);
        // A run moved off Slurm (`--backend local`) leaves its Slurm settings behind.
        let earlier = if backend == Some(BackendKind::Slurm) {
            earlier
        } else {
            ExecArgs {
                slurm_partition: None,
                slurm_account: None,
                slurm_args: Vec::new(),
                ..earlier
            }
        };
        ExecArgs {
            prefer: if self.prefer.is_empty() {
                earlier.prefer
            } else {
                self.prefer
            },
            runner: self.runner.or(earlier.runner),
            pull: self.pull.or(earlier.pull),
            keep_containers: run::switch(
                self.keep_containers,
                self.no_keep_containers,
                earlier.keep_containers,
            ),
            no_keep_containers: false,
            timeout: self.timeout.or(earlier.timeout),
            backend,
            slurm_partition: self.slurm_partition.or(earlier.slurm_partition),
            slurm_account: self.slurm_account.or(earlier.slurm_account),
            slurm_args: if self.slurm_args.is_empty() {
                earlier.slurm_args
            } else {
                self.slurm_args
            },
            registry: self.registry,
            pins: self.pins,
        }
    }

    pub(crate) fn policy(&self) -> Policy {
        let mut policy = Policy {
            runner: match self.runner.unwrap_or(Runner::Docker) {
                Runner::Docker => ContainerRunner::Docker,
                Runner::Process => ContainerRunner::Process,
            },
            ..Policy::default()
        };
        policy.docker.pull = self.pull.unwrap_or_default();
        policy.docker.keep_containers = self.keep_containers;
        for (task, kind) in &self.prefer {
            match task {
                Some(task) => {
                    policy.prefer_tasks.insert(task.clone(), *kind);
                }
                None => policy.prefer = Some(*kind),
            }
        }
        policy
    }
}

/// How a run shows its progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Display {
    /// Live bars on a terminal, plain lines otherwise.
    Auto,
    /// Nothing while running; the final record as JSON on stdout.
    Json,
}

/// Runs a pipeline and prints its summary; the exit code says how it went.
pub fn execute(
    paths: &Paths,
    pipeline: Pipeline,
    mut options: Options,
    exec: &ExecArgs,
    display: Display,
    verbose: bool,
) -> Result<(ExitCode, String, Arc<Store>)> {
    let plan = pipeline.plan();
    // A `--prefer TASK=KIND` for a task the plan does not have is a typo, not a no-op.
    for (task, _) in &exec.prefer {
        if let Some(task) = task
            && plan.task(task).is_none()
        {
            let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
            anyhow::bail!(
                "--prefer {task}=...: {} has no task '{task}' (its tasks: {})",
                plan.source.display(),
                names.join(", ")
            );
        }
    }
    let session = open_session(paths)?;
    let store = session.store().clone();
    options.default_timeout = exec.timeout;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let observer: Arc<dyn Observer> = match display {
        Display::Json => Arc::new(crate::progress::Notes),
        Display::Auto if std::io::stderr().is_terminal() => Arc::new(Progress::new(plan)),
        Display::Auto => Arc::new(Plain::new(verbose)),
    };
    let source = plan.source.clone();
    let cancel = CancellationToken::new();
    let run_options = RunOptions {
        schedule: options,
        policy: exec.policy(),
        registry: exec.registry.options(),
        pins: exec.pins.clone(),
        observer,
        cancel: cancel.clone(),
        backend: exec.backend()?,
    };
    let finished = runtime.block_on(async {
        tokio::spawn(watch_signals(cancel));
        // On a worker thread: the run's tasks, spawned from there, start and hand back
        // their ends without waking the thread that blocks on the runtime.
        tokio::spawn(async move { session.run(pipeline, run_options).await })
            .await
            .context("the run's task panicked")
    })?;
    // Abandoned guest threads (stuck in a long host call after a cancel) must not hold
    // the process open.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    let finished = match finished {
        Ok(finished) => finished,
        // Each wiring problem is its own line, naming the pipeline file.
        Err(SessionError::Schedule(ScheduleError::Wiring(mismatches))) => {
            let lines: Vec<String> = mismatches
                .iter()
                .map(|m| format!("{}: {m}", source.display()))
                .collect();
            anyhow::bail!("{}", lines.join("\nerror: "));
        }
        Err(e) => return Err(e.into()),
    };
    let record = store.run(&finished.run_id)?;
    match display {
        Display::Json => outln!("{}", serde_json::to_string_pretty(&record)?),
        Display::Auto => crate::report::summary(&record),
    }
    let deploy_failed = finished
        .deploy
        .is_some_and(|d| d.state == DeployState::Failed);
    let code = match finished.state {
        RunState::Succeeded if deploy_failed => ExitCode::from(1),
        RunState::Succeeded => ExitCode::SUCCESS,
        RunState::Cancelled => ExitCode::from(130),
        _ => ExitCode::from(1),
    };
    Ok((code, finished.run_id, store))
}

/// How each task of a plan would run, read without running anything: wasm components are
/// loaded (through the compile cache) to read their interfaces; Docker is not contacted.
/// A component that cannot be loaded is described as such, with the reason.
pub fn describe_tasks(paths: &Paths, plan: &Plan) -> Result<Vec<Prepared>> {
    describe(
        paths,
        plan.tasks
            .iter()
            .map(sluice_runtime::schedule::target)
            .collect(),
    )
}

/// How each target would run; see [`describe_tasks`].
pub fn describe(paths: &Paths, targets: Vec<Target<'_>>) -> Result<Vec<Prepared>> {
    let store = open_store(paths)?;
    let cache_dir = paths.cache_dir.clone().unwrap_or_else(|| store.cache_dir());
    current_thread_runtime()?.block_on(async {
        let wasm = Arc::new(WasmExecutor::new(WasmConfig::new(cache_dir))?);
        let runners = Runners::new(wasm, Policy::default());
        let mut described = Vec::with_capacity(targets.len());
        for target in targets {
            described.push(match runners.describe(target).await {
                Ok(prepared) => prepared,
                Err(e) => Prepared {
                    kind: Kind::Wasm,
                    implementation: "wasm".into(),
                    reason: format!("cannot be loaded: {}", sluice_runtime::error_chain(&e)),
                    executable_digest: None,
                    transform: None,
                },
            });
        }
        anyhow::Ok(described)
    })
}

/// An async runtime on this thread, for commands that wait on one thing at a time.
pub(crate) fn current_thread_runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// The first Ctrl-C, SIGTERM or SIGHUP cancels the run; a second one exits at once (130
/// after Ctrl-C, 143 after SIGTERM, 129 after SIGHUP, as shells report them).
pub(crate) async fn watch_signals(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    // SIGTERM (a service manager, a CI timeout, `kill`) and SIGHUP (the terminal closed)
    // stop a run as Ctrl-C does: its tasks' processes, containers and Slurm jobs
    // stopped, the record complete.
    let mut term = signal(SignalKind::terminate()).ok();
    let mut hangup = signal(SignalKind::hangup()).ok();
    async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
        match s.as_mut() {
            Some(s) => {
                s.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let what = tokio::select! {
        r = tokio::signal::ctrl_c() => match r {
            Ok(()) => "Ctrl-C",
            Err(_) => return,
        },
        () = recv(&mut term) => "SIGTERM",
        () = recv(&mut hangup) => "SIGHUP",
    };
    errln!("cancelling ({what}): running tasks are being stopped (Ctrl-C again to quit at once)");
    cancel.cancel();
    tokio::select! {
        r = tokio::signal::ctrl_c() => if r.is_ok() { std::process::exit(130) },
        () = recv(&mut term) => std::process::exit(143),
        () = recv(&mut hangup) => std::process::exit(129),
    }
}
