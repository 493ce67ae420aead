//! `sluice runs list` and `sluice runs show <run-id>`: the recorded runs.

use std::process::ExitCode;

use anyhow::Result;

use super::open_store;
use crate::Paths;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List recent runs, newest first
    List {
        /// How many runs to show
        #[arg(long, short = 'n', default_value_t = 20)]
        limit: usize,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Run a recorded pipeline run again: the same parameters, artifact bytes and
    /// registry component digests (with --from TASK, only TASK and what is downstream of it)
    Rerun(super::run::RerunArgs),
    /// Run only what did not succeed in a run (failed, skipped, cancelled or interrupted
    /// tasks), reusing the recorded outputs of the tasks that succeeded
    Resume(super::run::ResumeArgs),
    /// Show one run: its tasks, inputs, outputs and metrics
    Show {
        /// A run id or a unique prefix of one
        run: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
}

pub fn run(paths: &Paths, command: Command) -> Result<ExitCode> {
    let store = open_store(paths)?;
    match command {
        Command::Rerun(args) => {
            drop(store);
            return super::run::rerun(paths, args);
        }
        Command::Resume(args) => {
            drop(store);
            return super::run::resume(paths, args);
        }
        Command::List { limit, json } => {
            let runs = store.list_runs(limit)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&runs)?);
            } else if runs.is_empty() {
                outln!("no runs yet");
            } else {
                crate::report::run_list(&runs);
            }
        }
        Command::Show { run, json } => {
            let id = store.resolve_run(&run)?;
            let record = store.run(&id)?;
            if json {
                outln!("{}", serde_json::to_string_pretty(&record)?);
            } else {
                crate::report::run_details(&record);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
