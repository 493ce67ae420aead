//! `sluice task exec <attempt file>`: runs one task attempt that a driver handed over as
//! a file (a Slurm job runs this), and writes its result file beside it.
//! `sluice task exec --step <step file>`: runs one step of an exported workflow in its pod.
//! `sluice task install <dir>`: copies this `sluice` into a folder (an exported workflow's
//! init container does, for container steps).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_runtime::events::{Event, Observer};
use sluice_runtime::exec::attempt::{Outcome, run_file};
use tokio_util::sync::CancellationToken;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run one task attempt from its attempt file (written by a run on a cluster backend)
    /// and write the result file beside it; the task's output lines go to standard error
    Exec(Box<ExecArgs>),
    /// Copy this `sluice` binary into a folder, as `<DIR>/sluice` (an exported workflow's
    /// init container does this for container steps)
    Install {
        /// The folder
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
pub struct ExecArgs {
    /// The attempt file (`attempt.json` in the attempt's task folder)
    #[arg(required_unless_present_any = ["step", "condition"], conflicts_with_all = ["step", "condition"])]
    attempt: Option<PathBuf>,
    /// Run a step of an exported workflow from its step file, its artifacts placed in the
    /// task folder, and write its outputs there
    #[arg(long, value_name = "FILE", conflicts_with = "condition")]
    step: Option<PathBuf>,
    /// Evaluate a condition of an exported workflow from its condition file, and write
    /// `true` or `false` at `outputs/holds/data` of the task folder
    #[arg(long, value_name = "FILE")]
    condition: Option<PathBuf>,
    /// `--step`: the task folder (inputs at `inputs/<name>/data`, outputs at
    /// `outputs/<name>/data`)
    #[arg(long, value_name = "DIR", default_value = sluice_runtime::exec::step::STEP_ROOT)]
    root: PathBuf,
    /// `--step`, `--condition`: the value of an input the file says is given here
    /// (repeatable)
    #[arg(long = "value", value_name = "NAME=TEXT", value_parser = super::key_value)]
    values: Vec<(String, String)>,
    /// `--step`: the run's name, as the workflow engine names it
    #[arg(long, value_name = "NAME", default_value = "step")]
    run: String,
    /// `--step`: the task's id in the run, as the workflow engine names it
    #[arg(long, value_name = "ID", default_value = "step")]
    task_id: String,
    /// `--step`: when the run was created (RFC 3339)
    #[arg(long, value_name = "TIME")]
    created: Option<String>,
    #[command(flatten)]
    registry: super::RegistryArgs,
}

pub fn run(paths: &crate::Paths, cmd: Command) -> Result<ExitCode> {
    let args = match cmd {
        Command::Install { dir } => return install(&dir),
        Command::Exec(args) => args,
    };
    if let Some(step) = &args.step {
        return run_step(paths, step, &args);
    }
    if let Some(condition) = &args.condition {
        let file = sluice_runtime::exec::step::ConditionFile::read(condition)?;
        let holds = sluice_runtime::exec::step::run_condition(
            &file,
            &step_options(paths, &args, Default::default()),
        )?;
        errln!(
            "condition `{}` of '{}' is {holds}",
            file.condition,
            file.group
        );
        return Ok(ExitCode::SUCCESS);
    }
    let attempt = args.attempt.clone().unwrap_or_default();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        tokio::spawn(stop_on_signal(cancel.clone()));
        run_file(&attempt, cancel, Arc::new(Echo)).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    let result = result?;
    Ok(match result.outcome {
        Outcome::Succeeded(_) => ExitCode::SUCCESS,
        Outcome::Failed(f) => {
            errln!("error: {}", f.message);
            ExitCode::FAILURE
        }
    })
}

/// Copies the running `sluice` to `<dir>/sluice`, executable.
fn install(dir: &std::path::Path) -> Result<ExitCode> {
    let me = std::env::current_exe().context("cannot find this sluice binary")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let to = dir.join("sluice");
    std::fs::copy(&me, &to)
        .with_context(|| format!("cannot copy {} to {}", me.display(), to.display()))?;
    Ok(ExitCode::SUCCESS)
}

/// Runs a step of an exported workflow: pulls its component when the step file names it
/// by reference, runs it, and exits 0 when it succeeded.
fn run_step(paths: &crate::Paths, step: &std::path::Path, args: &ExecArgs) -> Result<ExitCode> {
    use sluice_runtime::exec::step::{StepFile, run_step};
    let file = StepFile::read(step)?;
    let cache_dir = step_cache_dir(paths);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let reference = file
        .component
        .spec
        .implementation
        .wasm
        .as_ref()
        .and_then(|w| sluice_runtime::oci::is_reference(&w.component).then(|| w.component.clone()));
    let pulled = match reference {
        Some(reference) => {
            let registries = args.registry.registries(&cache_dir);
            runtime.block_on(sluice_runtime::oci::pull_for_run(
                &registries,
                [reference.as_str()],
                &Default::default(),
            ))?
        }
        None => Default::default(),
    };
    let options = step_options(paths, args, pulled.into_iter().collect());
    let cancel = CancellationToken::new();
    let result = runtime.block_on(async {
        tokio::spawn(stop_on_signal(cancel.clone()));
        run_step(file, options, cancel, Arc::new(Echo)).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    Ok(match result?.outcome {
        Outcome::Succeeded(_) => ExitCode::SUCCESS,
        Outcome::Failed(f) => {
            errln!("error: {}", f.message);
            ExitCode::FAILURE
        }
    })
}

/// Where a step caches compiled wasm: `--cache-dir`, or a folder under the temporary one.
fn step_cache_dir(paths: &crate::Paths) -> PathBuf {
    paths
        .cache_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("sluice-cache"))
}

fn step_options(
    paths: &crate::Paths,
    args: &ExecArgs,
    pulled: std::collections::BTreeMap<String, (PathBuf, String)>,
) -> sluice_runtime::exec::step::StepOptions {
    sluice_runtime::exec::step::StepOptions {
        root: args.root.clone(),
        values: args.values.clone(),
        cache_dir: step_cache_dir(paths),
        run_id: args.run.clone(),
        task_id: args.task_id.clone(),
        created: args
            .created
            .clone()
            .unwrap_or_else(|| jiff::Timestamp::now().to_string()),
        pulled,
    }
}

/// Writes the task's log lines to standard error as they come, each after its stream's
/// name, for the job's output file.
struct Echo;

impl Observer for Echo {
    fn event(&self, event: &Event) {
        if let Event::TaskLog { stream, line, .. } = event {
            errln!("[{}] {line}", stream.as_str());
        }
    }
}

/// SIGTERM (Slurm's `scancel`, its time limit) or SIGINT stops the attempt, which then
/// writes its result.
async fn stop_on_signal(cancel: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return;
    };
    let what = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    errln!("stopping the task ({what})");
    cancel.cancel();
}
