//! `sluice run` of a pipeline compiled by the KFP SDK (the IR YAML).

use std::process::ExitCode;

use anyhow::Result;
use sluice_runtime::kfp::{IrFile, bind_params, not_applicable};
use sluice_runtime::session::Pipeline;

use crate::Paths;

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
    let plan = match sluice_runtime::kfp::lower::lower(&file, &params, &flags.image_map) {
        Ok(plan) => plan,
        Err(errors) => return Ok(super::report_plan_errors(&errors)),
    };
    let mut options = flags.options()?;
    options.resumes = resumes;
    let (code, _, _) = super::execute(
        paths,
        Pipeline::Kfp { plan },
        options,
        &flags.exec,
        flags.display(),
        flags.verbose,
    )?;
    Ok(code)
}
