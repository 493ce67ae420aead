//! `sluice logs <run-id> <task>`: what a task wrote to stdout and stderr, and what it
//! logged through the host, for every attempt.

use std::process::ExitCode;

use anyhow::Result;

use super::open_store;
use crate::Paths;

#[derive(clap::Args)]
pub struct Args {
    /// A run id or a unique prefix of one
    run: String,
    /// The task name
    task: String,
    /// Only this attempt
    #[arg(long)]
    attempt: Option<u32>,
}

pub fn run(paths: &Paths, args: Args) -> Result<ExitCode> {
    let store = open_store(paths)?;
    let id = store.resolve_run(&args.run)?;
    let logs: Vec<_> = store
        .logs(&id, &args.task)?
        .into_iter()
        .filter(|l| args.attempt.is_none_or(|a| a == l.attempt))
        .collect();
    if logs.is_empty() {
        errln!("task '{}' of run {id} wrote nothing", args.task);
    }
    let attempts: std::collections::BTreeSet<u32> = logs.iter().map(|l| l.attempt).collect();
    for log in &logs {
        if attempts.len() > 1 {
            outln!("== attempt {} {} ==", log.attempt, log.stream);
        } else {
            outln!("== {} ==", log.stream);
        }
        out!("{}", log.content);
        if !log.content.ends_with('\n') {
            outln!();
        }
    }
    Ok(ExitCode::SUCCESS)
}
