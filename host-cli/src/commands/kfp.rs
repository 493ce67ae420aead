//! `sluice run` of a pipeline compiled by the KFP SDK (the IR YAML).

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_runtime::events::{Observer, Quiet};
use sluice_runtime::exec::runners::Runners;
use sluice_runtime::exec::wasm::{WasmConfig, WasmExecutor};
use sluice_runtime::kfp::{Driver, IrFile, KfpPipeline, Options, bind_params, not_applicable};
use sluice_runtime::store::RunState;
use tokio_util::sync::CancellationToken;

use super::{Display, open_store, watch_ctrl_c};
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
    let store = Arc::new(open_store(paths)?);
    let cache_dir = paths.cache_dir.clone().unwrap_or_else(|| store.cache_dir());
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
        Display::Json => Arc::new(Quiet),
        Display::Auto if std::io::stderr().is_terminal() => {
            match sluice_runtime::kfp::lower::lower(&file, &params) {
                Ok(plan) => Arc::new(crate::progress::Progress::new(&plan)),
                Err(_) => Arc::new(Plain::new(flags.verbose)),
            }
        }
        Display::Auto => Arc::new(Plain::new(flags.verbose)),
    };
    let mut options = Options {
        keep_going: flags.keep_going,
        keep_work: flags.keep_work,
        no_cache: flags.no_cache,
        max_cache_staleness: flags.max_cache_staleness,
        default_timeout: flags.exec.timeout,
        flags: flags.recorded(),
        resumes,
        ..Options::default()
    };
    if let Some(p) = flags.parallelism {
        anyhow::ensure!(p > 0, "--parallelism must be at least 1");
        options.parallelism = p;
    }
    let outcome = runtime.block_on(async {
        let wasm = Arc::new(WasmExecutor::new(WasmConfig::new(cache_dir))?);
        let executor = Arc::new(Runners::new(wasm, flags.exec.policy()));
        let pipeline = KfpPipeline::prepare(file, executor.as_ref(), &flags.image_map).await?;
        for note in &pipeline.notes {
            errln!("note: {note}");
        }
        let cancel = CancellationToken::new();
        tokio::spawn(watch_ctrl_c(cancel.clone()));
        let driver = Driver {
            store: store.clone(),
            executor,
            observer,
            options,
            cancel,
        };
        anyhow::Ok(
            driver
                .run(Arc::new(pipeline), params.values, params.artifacts)
                .await?,
        )
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
