//! `sluice component run <component.yaml>`: run one component on its own, as KFP users
//! do before composing it into a pipeline, and copy its outputs to a folder.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_runtime::plan::Plan;
use sluice_runtime::schedule::Options;
use sluice_runtime::session::Pipeline;
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
    let graph_tasks = match component.graph() {
        Some(_) => Some(sluice_runtime::spec::graph::load_tasks(&component)?),
        None => None,
    };
    let planned = match &graph_tasks {
        Some(tasks) => Plan::for_graph(component.clone(), tasks, &args.inputs),
        None => Plan::for_component(component.clone(), &args.inputs),
    };
    let plan = match planned {
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
        Pipeline::Plan {
            plan,
            kind: RunKind::Component,
        },
        Options {
            flags: args.exec.recorded_flags(),
            ..Options::default()
        },
        &args.exec,
        display,
        args.verbose,
    )?;
    let record = store.run(&run_id)?;
    if !record.tasks.iter().all(|t| t.state == TaskState::Succeeded) {
        return Ok(code);
    }
    std::fs::create_dir_all(&args.output_dir)
        .with_context(|| format!("cannot create {}", args.output_dir.display()))?;
    let wrote = |dest: &std::path::Path| {
        if !args.json {
            outln!("wrote {}", dest.display());
        }
    };
    match component.graph() {
        // A graph's outputs are those its `outputValues` take from its tasks.
        Some(graph) => {
            use sluice_runtime::spec::graph::GraphArgument;
            for (name, value) in &graph.output_values {
                let dest = args.output_dir.join(path_segment(name));
                match value {
                    GraphArgument::TaskOutput {
                        task_id,
                        output_name,
                    } => {
                        let output = record
                            .tasks
                            .iter()
                            .find(|t| &t.name == task_id)
                            .and_then(|t| t.outputs.iter().find(|o| &o.name == output_name))
                            .with_context(|| {
                                format!("task '{task_id}' recorded no output '{output_name}'")
                            })?;
                        store.export(&output.digest, &dest)?;
                    }
                    GraphArgument::Constant(text) => std::fs::write(&dest, text)?,
                    GraphArgument::GraphInput { input_name } => {
                        let given = args.inputs.iter().rev().find(|(n, _)| n == input_name);
                        std::fs::write(&dest, given.map_or("", |(_, v)| v.as_str()))?
                    }
                }
                wrote(&dest);
            }
        }
        None => {
            for output in &record.tasks[0].outputs {
                let dest = args.output_dir.join(path_segment(&output.name));
                store.export(&output.digest, &dest)?;
                wrote(&dest);
            }
        }
    }
    Ok(code)
}
