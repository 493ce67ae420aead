//! `sluice run` of a pipeline compiled by the KFP SDK (the IR YAML).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_runtime::events::Observer;
use sluice_runtime::kfp::{IrFile, bind_params, not_applicable};
use sluice_runtime::schedule::{Caching, Options};
use sluice_runtime::session::{Pipeline, RunOptions};
use sluice_runtime::store::RunState;
use tokio_util::sync::CancellationToken;

use super::{Display, watch_ctrl_c};
use crate::Paths;
use crate::progress::Plain;

pub fn run(paths: &Paths, args: &super::run::Args) -> Result<ExitCode> {
    run_resuming(paths, args, None)
}

/// Runs a compiled pipeline; with `resumes`, each task that succeeded in that run with
/// the same cache key (the same component, executable and inputs) is taken from it.
pub fn run_resuming(
    paths: &Paths,
    args: &super::run::Args,
    resumes: Option<String>,
) -> Result<ExitCode> {
    let flags = &args.flags;
    let file = IrFile::load(&args.pipeline)?;
    let params = match bind_params(&file, &args.params) {
        Ok(p) => p,
        Err(errors) => {
            for e in errors {
                errln!("error: {e}");
            }
            return Ok(ExitCode::from(crate::BAD_INPUT));
        }
    };
    for line in not_applicable(&file) {
        errln!("note: {line}");
    }
    let session = super::open_session(paths)?;
    let store = session.store().clone();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let display = if flags.json {
        Display::Json
    } else {
        Display::Auto
    };
    // On a terminal, a live line per task: those of the lowered plan at once, each loop
    // iteration's as it becomes known.
    let observer: Arc<dyn Observer> = match display {
        Display::Json => Arc::new(crate::progress::Notes),
        Display::Auto if std::io::stderr().is_terminal() => {
            match sluice_runtime::kfp::lower::lower(&file, &params) {
                Ok(plan) => Arc::new(crate::progress::Progress::new(&plan)),
                Err(_) => Arc::new(Plain::new(flags.verbose)),
            }
        }
        Display::Auto => Arc::new(Plain::new(flags.verbose)),
    };
    let mut schedule = Options {
        keep_going: flags.keep_going,
        keep_work: flags.keep_work,
        default_timeout: flags.exec.timeout,
        flags: flags.recorded(),
        caching: Caching {
            enabled: !flags.no_cache,
            max_staleness: flags.max_cache_staleness,
        },
        ..Options::default()
    };
    if let Some(p) = flags.parallelism {
        anyhow::ensure!(p > 0, "--parallelism must be at least 1");
        schedule.parallelism = p;
    }
    let cancel = CancellationToken::new();
    let options = RunOptions {
        schedule,
        policy: flags.exec.policy(),
        registry: flags.exec.registry.options(),
        resumes,
        observer,
        cancel: cancel.clone(),
        ..RunOptions::default()
    };
    let pipeline = Pipeline::Kfp {
        file,
        params,
        image_map: flags.image_map.clone(),
    };
    let outcome = runtime.block_on(async {
        tokio::spawn(watch_ctrl_c(cancel));
        session.run(pipeline, options).await
    });
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    let outcome = outcome?;
    let record = store.run(&outcome.run_id)?;
    match display {
        Display::Json => outln!("{}", serde_json::to_string_pretty(&record)?),
        Display::Auto => crate::report::summary(&record),
    }
    Ok(match outcome.state {
        RunState::Succeeded => ExitCode::SUCCESS,
        RunState::Cancelled => ExitCode::from(130),
        _ => ExitCode::from(1),
    })
}
