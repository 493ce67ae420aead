//! `sluice component run <component.yaml>`: run one component on its own, as KFP users
//! do before composing it into a pipeline, and copy its outputs to a folder.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_runtime::plan::Plan;
use sluice_runtime::schedule::Options;
use sluice_runtime::spec::Component;
use sluice_runtime::store::{RunKind, TaskState, path_segment};

use super::{Display, execute, key_value, report_plan_errors};
use crate::Paths;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Run one component with the given inputs
    Run(RunArgs),
}

#[derive(clap::Args)]
pub struct RunArgs {
    /// The component file
    component: PathBuf,
    /// An input value (repeatable); artifact-typed inputs take a file path
    #[arg(long = "input", short = 'i', value_name = "NAME=VALUE", value_parser = key_value)]
    inputs: Vec<(String, String)>,
    /// Where to write the outputs, one file per output
    #[arg(long, short = 'o', value_name = "DIR")]
    output_dir: PathBuf,
    /// Print the run record as JSON instead of progress and a summary
    #[arg(long)]
    json: bool,
    /// Show the component's output lines as they come (when not on a terminal)
    #[arg(long, short)]
    verbose: bool,
    #[command(flatten)]
    exec: super::ExecArgs,
}

pub fn run(paths: &Paths, command: Command) -> Result<ExitCode> {
    let Command::Run(args) = command;
    let component = Arc::new(Component::load(&args.component)?);
    let plan = match Plan::for_component(component, &args.inputs) {
        Ok(plan) => plan,
        Err(errors) => return Ok(report_plan_errors(&errors)),
    };
    let display = if args.json {
        Display::Json
    } else {
        Display::Auto
    };
    let (code, run_id, store) = execute(
        paths,
        plan,
        RunKind::Component,
        Options::default(),
        &args.exec,
        display,
        args.verbose,
    )?;
    let record = store.run(&run_id)?;
    let task = &record.tasks[0];
    if task.state == TaskState::Succeeded {
        std::fs::create_dir_all(&args.output_dir)
            .with_context(|| format!("cannot create {}", args.output_dir.display()))?;
        for output in &task.outputs {
            let dest = args.output_dir.join(path_segment(&output.name));
            store.export(&output.digest, &dest)?;
            if !args.json {
                println!("wrote {}", dest.display());
            }
        }
    }
    Ok(code)
}
