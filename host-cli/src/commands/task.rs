//! `sluice task exec <attempt file>`: runs one task attempt that a driver handed over as
//! a file (a Slurm job runs this), and writes its result file beside it.

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
    Exec {
        /// The attempt file (`attempt.json` in the attempt's task folder)
        attempt: PathBuf,
    },
}

pub fn run(cmd: Command) -> Result<ExitCode> {
    let Command::Exec { attempt } = cmd;
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
