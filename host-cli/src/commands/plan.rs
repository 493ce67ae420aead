//! `sluice plan <pipeline>`: show the tasks in the order they would run, as text,
//! Graphviz DOT or JSON.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use sluice_runtime::plan::{Format, Graph, Plan};
use sluice_runtime::schedule::fuse::Fusion;
use sluice_runtime::spec::{DocumentKind, PipelineFile, detect_kind};

use super::{key_value, report_plan_errors};
use crate::Paths;

#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file
    pipeline: PathBuf,
    /// Set a pipeline parameter (repeatable)
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = key_value)]
    params: Vec<(String, String)>,
    #[arg(long, value_enum, default_value_t = PlanFormat::Text)]
    format: PlanFormat,
    /// Show the plan as `sluice run --no-fuse` would run it: no fused chains
    #[arg(long)]
    no_fuse: bool,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum PlanFormat {
    Text,
    Dot,
    Json,
}

pub fn run(paths: &Paths, args: Args) -> Result<ExitCode> {
    if detect_kind(&args.pipeline)? == DocumentKind::KfpIr {
        return kfp(&args);
    }
    let file = PipelineFile::load(&args.pipeline)?;
    let plan = match Plan::build(&file, &args.params) {
        Ok(plan) => plan,
        Err(errors) => return Ok(report_plan_errors(&errors)),
    };
    let format = format(args.format);
    // Which tasks run as fused chains needs each component's interfaces.
    let described = super::describe_tasks(paths, &plan)?;
    let fusion = match Fusion::decide(&plan, &described, !args.no_fuse) {
        Ok(fusion) => fusion,
        Err(mismatches) => {
            for m in mismatches {
                errln!("error: {}: {m}", args.pipeline.display());
            }
            return Ok(ExitCode::from(crate::BAD_INPUT));
        }
    };
    match args.format {
        // The graph with its fused chains drawn as clusters of their own.
        PlanFormat::Dot => out!(
            "{}",
            Graph::of(&plan, &fusion.chains).dot(&plan.name, &|_| String::new())
        ),
        PlanFormat::Json => {
            let mut json: serde_json::Value = serde_json::from_str(&plan.render(format))?;
            json["fusion"] = fusion.to_json(&plan);
            outln!("{}", serde_json::to_string_pretty(&json)?);
        }
        _ => out!("{}\n{}", plan.render(format), fusion.render(&plan)),
    }
    Ok(ExitCode::SUCCESS)
}

/// A compiled KFP pipeline, lowered into the plan every format runs as: its executor
/// tasks and the groups (conditions, loops, nested pipelines) the run decides about as
/// values arrive.
fn kfp(args: &Args) -> Result<ExitCode> {
    let file = sluice_runtime::kfp::IrFile::load(&args.pipeline)?;
    // Bad values are errors; required parameters nobody gave show as such.
    let (params, errors) = sluice_runtime::kfp::bind_what_can_be(&file, &args.params);
    let bad: Vec<_> = errors.iter().filter(|e| !e.missing).collect();
    if !bad.is_empty() {
        for e in bad {
            errln!("error: {e}");
        }
        return Ok(ExitCode::from(crate::BAD_INPUT));
    }
    let plan = match sluice_runtime::kfp::lower::lower(&file, &params, &[]) {
        Ok(plan) => plan,
        Err(errors) => return Ok(report_plan_errors(&errors)),
    };
    out!("{}", plan.render(format(args.format)));
    Ok(ExitCode::SUCCESS)
}

fn format(format: PlanFormat) -> Format {
    match format {
        PlanFormat::Text => Format::Text,
        PlanFormat::Dot => Format::Dot,
        PlanFormat::Json => Format::Json,
    }
}
