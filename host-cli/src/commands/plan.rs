//! `sluice plan <pipeline>`: show the tasks in the order they would run, as text,
//! Graphviz DOT or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use sluice_runtime::plan::{Format, Plan};
use sluice_runtime::spec::PipelineFile;

use super::{key_value, report_plan_errors};

#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file
    pipeline: PathBuf,
    /// Set a pipeline parameter (repeatable)
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = key_value)]
    params: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanFormat {
    Text,
    Dot,
    Json,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let file = PipelineFile::load(&args.pipeline)?;
    let plan = match Plan::build(&file, &args.params) {
        Ok(plan) => plan,
        Err(errors) => return Ok(report_plan_errors(&errors)),
    };
    let format = match args.format {
        PlanFormat::Text => Format::Text,
        PlanFormat::Dot => Format::Dot,
        PlanFormat::Json => Format::Json,
    };
    print!("{}", plan.render(format));
    Ok(ExitCode::SUCCESS)
}
