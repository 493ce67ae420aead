//! `sluice run <pipeline>`: validate, plan and run a pipeline.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sluice_runtime::plan::Plan;
use sluice_runtime::schedule::Options;
use sluice_runtime::session::Pipeline;
use sluice_runtime::spec::{DocumentKind, PipelineFile, detect_kind};
use sluice_runtime::store::{RunKind, RunState};

use super::{Display, execute, key_value, report_plan_errors};
use crate::Paths;

#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file: a Sluice pipeline, or a pipeline compiled by the KFP SDK
    pub(crate) pipeline: PathBuf,
    /// Set a pipeline parameter (repeatable); artifact parameters take a file path
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = key_value)]
    pub(crate) params: Vec<(String, String)>,
    #[command(flatten)]
    pub(crate) flags: RunFlags,
}

/// How a run goes: the flags `run`, `runs resume` and `runs rerun` share. The run record
/// keeps them (all but `--json`, `--verbose` and the registry's), so a resumed or repeated
/// run goes the way the run went unless it is given other flags.
#[derive(clap::Args)]
pub struct RunFlags {
    /// Most tasks running at once [default: the number of cores; 64 with --backend slurm]
    #[arg(long, value_name = "N")]
    pub(crate) parallelism: Option<usize>,
    /// Keep starting independent tasks after one fails
    #[arg(long, overrides_with = "no_keep_going")]
    pub(crate) keep_going: bool,
    /// Start no new task after one fails (the default; undoes a resumed run's --keep-going)
    #[arg(long, overrides_with = "keep_going")]
    pub(crate) no_keep_going: bool,
    /// Keep every attempt's working folder under <home>/runs
    #[arg(long, overrides_with = "no_keep_work")]
    pub(crate) keep_work: bool,
    /// Remove each attempt's working folder once it is done with (the default; undoes a
    /// resumed run's --keep-work)
    #[arg(long, overrides_with = "keep_work")]
    pub(crate) no_keep_work: bool,
    /// Print the run record as JSON instead of progress and a summary
    #[arg(long)]
    pub(crate) json: bool,
    /// Show each task's output lines as they come (when not on a terminal)
    #[arg(long, short)]
    pub(crate) verbose: bool,
    /// Run every task on its own, passing tables through files, even where consecutive
    /// transform tasks could run as a fused chain
    #[arg(long, overrides_with = "fuse")]
    pub(crate) no_fuse: bool,
    /// Run consecutive transform tasks as fused chains (the default; undoes a resumed
    /// run's --no-fuse)
    #[arg(long, overrides_with = "no_fuse")]
    pub(crate) fuse: bool,
    /// Run every task, even those whose outputs the task cache has from an earlier run
    #[arg(long, overrides_with = "cache")]
    pub(crate) no_cache: bool,
    /// Take outputs from the task cache where it has them (the default; undoes a resumed
    /// run's --no-cache)
    #[arg(long, overrides_with = "no_cache")]
    pub(crate) cache: bool,
    /// Take cached outputs only of tasks that ended at most this long ago (`7d`, `12h`)
    #[arg(long, value_name = "DURATION", value_parser = super::serve::duration)]
    pub(crate) max_cache_staleness: Option<std::time::Duration>,
    /// KFP pipelines: run image TO wherever a task names image FROM (repeatable)
    #[arg(long, value_name = "FROM=TO", value_parser = key_value)]
    pub(crate) image_map: Vec<(String, String)>,
    #[command(flatten)]
    pub(crate) exec: super::ExecArgs,
}

/// Most jobs a Slurm run has queued or running at once unless `--parallelism` says.
const SLURM_PARALLELISM: usize = 64;

/// A switch over a run's recorded value of it: on if given, off if its negation was given,
/// else as the run had it.
pub(crate) fn switch(on: bool, off: bool, earlier: bool) -> bool {
    (on || earlier) && !off
}

/// Flags as a run record keeps them, read back.
#[derive(clap::Parser)]
#[command(no_binary_name = true)]
struct Recorded {
    #[command(flatten)]
    flags: RunFlags,
}

impl RunFlags {
    /// These flags as the run record keeps them ([`sluice_runtime::store::NewRun::flags`]).
    pub(crate) fn recorded(&self) -> Vec<String> {
        let mut flags = Vec::new();
        if let Some(n) = self.parallelism {
            flags.extend(["--parallelism".to_owned(), n.to_string()]);
        }
        for (set, flag) in [
            (self.keep_going, "--keep-going"),
            (self.keep_work, "--keep-work"),
            (self.no_fuse, "--no-fuse"),
            (self.no_cache, "--no-cache"),
        ] {
            if set {
                flags.push(flag.to_owned());
            }
        }
        if let Some(age) = self.max_cache_staleness {
            flags.extend([
                "--max-cache-staleness".to_owned(),
                humantime::format_duration(age).to_string(),
            ]);
        }
        for (from, to) in &self.image_map {
            flags.extend(["--image-map".to_owned(), format!("{from}={to}")]);
        }
        self.exec.recorded(&mut flags);
        flags
    }

    /// These flags over the ones run `record` was started with: a flag given here wins,
    /// one not given keeps the run's value.
    fn over(self, record: &sluice_runtime::store::RunRecord) -> Result<RunFlags> {
        use clap::Parser;
        let earlier = Recorded::try_parse_from(&record.flags)
            .map_err(|e| {
                anyhow::anyhow!(
                    "run {}: its recorded flags ({}) are not understood: {}",
                    record.id,
                    record.flags.join(" "),
                    e.kind()
                )
            })?
            .flags;
        // A repeatable flag given again replaces all the run's values of it.
        let image_map = if self.image_map.is_empty() {
            earlier.image_map
        } else {
            self.image_map
        };
        Ok(RunFlags {
            parallelism: self.parallelism.or(earlier.parallelism),
            keep_going: switch(self.keep_going, self.no_keep_going, earlier.keep_going),
            no_keep_going: false,
            keep_work: switch(self.keep_work, self.no_keep_work, earlier.keep_work),
            no_keep_work: false,
            json: self.json,
            verbose: self.verbose,
            no_fuse: switch(self.no_fuse, self.fuse, earlier.no_fuse),
            fuse: false,
            no_cache: switch(self.no_cache, self.cache, earlier.no_cache),
            cache: false,
            max_cache_staleness: self.max_cache_staleness.or(earlier.max_cache_staleness),
            image_map,
            exec: self.exec.over(earlier.exec),
        })
    }

    /// The scheduler's options these flags ask for.
    pub(crate) fn options(&self) -> Result<Options> {
        let mut options = Options {
            keep_going: self.keep_going,
            keep_work: self.keep_work,
            fuse: !self.no_fuse,
            flags: self.recorded(),
            caching: sluice_runtime::schedule::Caching {
                enabled: !self.no_cache,
                max_staleness: self.max_cache_staleness,
            },
            ..Options::default()
        };
        if let Some(p) = self.parallelism {
            anyhow::ensure!(p > 0, "--parallelism must be at least 1");
            options.parallelism = p;
        } else if self.exec.on_slurm() {
            // The cluster's scheduler, not this machine's cores, bounds a Slurm run.
            options.parallelism = SLURM_PARALLELISM;
        }
        Ok(options)
    }

    pub(crate) fn display(&self) -> Display {
        if self.json {
            Display::Json
        } else {
            Display::Auto
        }
    }
}

/// Loads a pipeline; the component files of tasks that name a registry component
/// (`oci://...`) are pulled (or taken from the cache) first. Returns the file and those
/// references.
pub fn load_pipeline(
    paths: &Paths,
    registry: &super::RegistryArgs,
    path: &std::path::Path,
) -> Result<(PipelineFile, Vec<String>)> {
    let file = PipelineFile::load(path)?;
    let references: Vec<String> = file
        .spec
        .tasks
        .values()
        .filter(|t| sluice_runtime::oci::is_reference(&t.component))
        .map(|t| t.component.clone())
        .collect();
    if references.is_empty() {
        return Ok((file, references));
    }
    let pulled = super::registry::component_files(paths, registry, &references)?;
    Ok((PipelineFile::load_with(path, &pulled)?, references))
}

pub fn run(paths: &Paths, mut args: Args) -> Result<ExitCode> {
    // A bundle: its components go to the cache, its files under the home; then its
    // pipeline runs like any other.
    if sluice_runtime::oci::bundle::is_bundle(&args.pipeline) {
        let store = super::open_store(paths)?;
        let cache_dir = paths.cache_dir.clone().unwrap_or_else(|| store.cache_dir());
        let registries = args.flags.exec.registry.registries(&cache_dir);
        let opened = sluice_runtime::oci::bundle::open(&args.pipeline, store.home(), &registries)?;
        if let Some((names, archive)) = opened.images {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(sluice_runtime::exec::docker::load_images(archive))?;
            errln!(
                "loaded container images from the bundle: {}",
                names.join(", ")
            );
        }
        args.pipeline = opened.pipeline;
    }
    match detect_kind(&args.pipeline)? {
        DocumentKind::Pipeline => {}
        DocumentKind::Component => anyhow::bail!(
            "{} is a component; run it with `sluice component run`",
            args.pipeline.display()
        ),
        DocumentKind::KfpIr => return super::kfp::run(paths, &args),
    }
    let (file, _) = load_pipeline(paths, &args.flags.exec.registry, &args.pipeline)?;
    let plan = match Plan::build(&file, &args.params) {
        Ok(plan) => plan,
        Err(errors) => return Ok(report_plan_errors(&errors)),
    };
    let options = args.flags.options()?;
    let (code, _, _) = execute(
        paths,
        Pipeline::Plan {
            plan,
            kind: RunKind::Pipeline,
        },
        options,
        &args.flags.exec,
        args.flags.display(),
        args.flags.verbose,
    )?;
    Ok(code)
}

#[derive(clap::Args)]
pub struct RerunArgs {
    /// A run id or a unique prefix of one
    run: String,
    /// Run only this task and everything downstream of it; the other tasks reuse the
    /// outputs they had in the run (which must be a run of the same pipeline content)
    #[arg(long, value_name = "TASK")]
    from: Option<String>,
    /// Flags not given here keep the values the run was started with
    #[command(flatten)]
    flags: RunFlags,
}

#[derive(clap::Args)]
pub struct ResumeArgs {
    /// A run id or a unique prefix of one
    run: String,
    /// Flags not given here keep the values the run was started with
    #[command(flatten)]
    flags: RunFlags,
}

/// `sluice runs resume <run>`: a new run of the recorded run's pipeline, with its
/// parameters and flags, in which every task that succeeded is taken as done with its
/// recorded outputs (checked to be in the store) and the others run.
pub fn resume(paths: &Paths, args: ResumeArgs) -> Result<ExitCode> {
    let ResumeArgs { run, flags } = args;
    rerun_with(
        paths,
        RerunArgs {
            run,
            from: None,
            flags,
        },
        Reuse::Succeeded,
    )
}

/// What a new run of a recorded run takes from it.
#[derive(Clone, Copy, PartialEq)]
enum Reuse<'a> {
    /// Nothing: every task runs.
    Nothing,
    /// The outputs of every task that succeeded.
    Succeeded,
    /// The outputs of every task that succeeded, except this task and its downstream.
    Before(&'a str),
}

/// The tasks a new run takes as done, with what they reuse; refuses a pipeline whose
/// content changed since the run, whose outputs would not be the ones recorded.
fn reused_tasks(
    record: &sluice_runtime::store::RunRecord,
    file_digest: &str,
    plan: &Plan,
    reuse: Reuse<'_>,
) -> Result<std::collections::BTreeMap<String, sluice_runtime::schedule::Reused>> {
    use sluice_runtime::schedule::Reused;
    use sluice_runtime::store::{CachedTask, TaskState};
    if reuse == Reuse::Nothing {
        return Ok(Default::default());
    }
    anyhow::ensure!(
        file_digest == record.source_digest,
        "{} changed since run {} ({} then, {} now): its recorded outputs are not this pipeline's; `sluice runs rerun {}` runs the current content from the start",
        record.source,
        record.id,
        record.source_digest,
        file_digest,
        record.id
    );
    let mut again = std::collections::BTreeSet::new();
    if let Reuse::Before(from) = reuse {
        let Some(start) = plan.tasks.iter().position(|t| t.name == from) else {
            let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
            anyhow::bail!(
                "--from: run {} has no task '{from}' (its tasks: {})",
                record.id,
                names.join(", ")
            );
        };
        let downstream = plan.downstream();
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if again.insert(plan.tasks[i].name.as_str()) {
                stack.extend(&downstream[i]);
            }
        }
    }
    Ok(record
        .tasks
        .iter()
        .filter(|t| t.state == TaskState::Succeeded && !again.contains(t.name.as_str()))
        // The same component bytes as when it ran, or it runs again.
        .filter(|t| {
            plan.task(&t.name)
                .is_some_and(|p| p.component.digest == t.component_digest)
        })
        .map(|t| {
            (
                t.name.clone(),
                Reused {
                    cached: CachedTask {
                        run: record.id.clone(),
                        task: t.name.clone(),
                        outputs: t.outputs.clone(),
                        metrics: t.metrics.clone(),
                    },
                    executable_digest: t.executable_digest.clone(),
                    inputs: t.inputs.clone(),
                },
            )
        })
        .collect())
}

/// `sluice runs rerun <run>`: the recorded run's pipeline again, with its parameter
/// values, its artifact parameters' exact bytes (from the store), and each registry
/// component at the digest the run resolved it to.
pub fn rerun(paths: &Paths, args: RerunArgs) -> Result<ExitCode> {
    let from = args.from.clone();
    let reuse = match &from {
        Some(task) => Reuse::Before(task),
        None => Reuse::Nothing,
    };
    rerun_with(paths, args, reuse)
}

fn rerun_with(paths: &Paths, args: RerunArgs, reuse: Reuse<'_>) -> Result<ExitCode> {
    let store = super::open_store(paths)?;
    let id = store.resolve_run(&args.run)?;
    let record = store.run(&id)?;
    anyhow::ensure!(
        record.kind == RunKind::Pipeline,
        "run {id} ran a single component; run it again with `sluice component run`"
    );
    anyhow::ensure!(
        reuse == Reuse::Nothing || record.state != RunState::Running,
        "run {id} is still running; wait for it to end (or stop it) before resuming it"
    );
    let mut flags = args.flags.over(&record)?;
    // Jobs the run's driver left behind (it was killed) would run its tasks twice, on
    // Slurm or beside a resume moved to this machine.
    let ran_on_slurm = record
        .flags
        .windows(2)
        .any(|w| w[0] == "--backend" && w[1] == "slurm");
    if reuse == Reuse::Succeeded && (flags.exec.on_slurm() || ran_on_slurm) {
        let left = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("cannot start the async runtime")?
            .block_on(sluice_runtime::slurm::cancel_left_jobs(&id));
        match left {
            Ok(ids) if !ids.is_empty() => errln!(
                "cancelled {} Slurm job(s) run {id} left queued or running: {}",
                ids.len(),
                ids.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Ok(_) => {}
            Err(e) => errln!("warning: cannot look for Slurm jobs run {id} left behind: {e}"),
        }
    }
    let source = PathBuf::from(&record.source);
    if detect_kind(&source)? == DocumentKind::KfpIr {
        anyhow::ensure!(
            !matches!(reuse, Reuse::Before(_)),
            "run {id} ran a compiled KFP pipeline: --from is for Sluice pipelines; \
             `sluice runs resume {id}` runs what did not succeed"
        );
        return rerun_kfp(paths, &store, &record, source, flags, reuse);
    }
    let (file, _) = load_pipeline(paths, &flags.exec.registry, &source)?;
    if reuse == Reuse::Nothing && file.digest != record.source_digest {
        errln!(
            "warning: {} changed since run {id}; running its current content",
            source.display()
        );
    }
    let params = recorded_params(&store, &record, |name| {
        file.spec.params.get(name).is_some_and(|p| p.is_artifact())
    })?;
    // The digest each task's registry component had.
    let pinned: std::collections::HashMap<&str, &str> = record
        .tasks
        .iter()
        .filter_map(|t| {
            let implementation = t.implementation.as_deref()?;
            let token = implementation
                .split_whitespace()
                .find(|w| w.starts_with("oci://") && w.contains("@sha256:"))?;
            Some((t.name.as_str(), token))
        })
        .collect();
    let plan = match Plan::build(&file, &params) {
        Ok(plan) => plan,
        Err(errors) => return Ok(report_plan_errors(&errors)),
    };
    for task in &plan.tasks {
        if let (Some(reference), Some(pin)) = (
            task.component.wasm_reference(),
            pinned.get(task.name.as_str()),
        ) {
            flags
                .exec
                .pins
                .insert(reference.to_owned(), (*pin).to_owned());
        }
    }
    let reused = reused_tasks(&record, &file.digest, &plan, reuse)?;
    let mut options = flags.options()?;
    // A fused chain hands tables on in memory from task to task; with some of its tasks
    // reused and not run, the others run unfused and read the store.
    options.fuse &= reused.is_empty();
    // `--from TASK` asks for TASK and its downstream to run, not to come from the cache.
    if let Reuse::Before(_) = reuse {
        options.caching.enabled = false;
    }
    options.reuse = reused;
    let (code, _, _) = execute(
        paths,
        Pipeline::Plan {
            plan,
            kind: RunKind::Pipeline,
        },
        options,
        &flags.exec,
        flags.display(),
        flags.verbose,
    )?;
    Ok(code)
}

/// A recorded run of a compiled KFP pipeline, again: the same parameter values, and the
/// same bytes for its artifact inputs.
fn rerun_kfp(
    paths: &Paths,
    store: &sluice_runtime::store::Store,
    record: &sluice_runtime::store::RunRecord,
    source: PathBuf,
    flags: RunFlags,
    reuse: Reuse<'_>,
) -> Result<ExitCode> {
    let file = sluice_runtime::kfp::IrFile::load(&source)?;
    if reuse == Reuse::Succeeded {
        anyhow::ensure!(
            file.digest == record.source_digest,
            "{} changed since run {} ({} then, {} now): its recorded outputs are not this pipeline's; `sluice runs rerun {}` runs the current content from the start",
            record.source,
            record.id,
            record.source_digest,
            file.digest,
            record.id
        );
    }
    if file.digest != record.source_digest {
        errln!(
            "warning: {} changed since run {}; running its current content",
            source.display(),
            record.id
        );
    }
    let artifacts = &file.spec.root.input_definitions.artifacts;
    let params = recorded_params(store, record, |name| artifacts.contains_key(name))?;
    let run_args = Args {
        pipeline: source,
        params,
        flags,
    };
    let resumes = (reuse == Reuse::Succeeded).then(|| record.id.clone());
    super::kfp::run_resuming(paths, &run_args, resumes)
}

/// A recorded run's parameter values, as `--param`s: artifact parameters went into the
/// store by digest, so their exact bytes are exported again and given by path.
fn recorded_params(
    store: &sluice_runtime::store::Store,
    record: &sluice_runtime::store::RunRecord,
    is_artifact: impl Fn(&str) -> bool,
) -> Result<Vec<(String, String)>> {
    let inputs = store.home().join("rerun").join(&record.id);
    let mut params = Vec::new();
    for (name, value) in &record.params {
        if is_artifact(name) {
            // The recorded bytes, or nothing: a digest is never read as a path.
            anyhow::ensure!(
                store.contains(value),
                "param '{name}': the file it had in run {} ({value}) is no longer in the store; give it again with --param {name}=FILE on a new run",
                record.id
            );
            std::fs::create_dir_all(&inputs)?;
            let dest = inputs.join(sluice_runtime::store::path_segment(name));
            store.export(value, &dest)?;
            params.push((name.clone(), dest.display().to_string()));
        } else {
            params.push((name.clone(), value.clone()));
        }
    }
    Ok(params)
}
