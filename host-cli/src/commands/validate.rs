//! `sluice validate <file>...`: check pipelines and components without running them.
//! Every problem is one line naming the file and the field.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use sluice_runtime::plan::Plan;
use sluice_runtime::spec::{Component, DocumentKind, PipelineFile, detect_kind};

use super::key_value;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline or component files
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Parameter values to check the pipeline with
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = key_value)]
    params: Vec<(String, String)>,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let mut failed = false;
    for file in &args.files {
        match check(file, &args.params) {
            Ok(summary) => println!("{}: ok ({summary})", file.display()),
            Err(lines) => {
                failed = true;
                for line in lines {
                    eprintln!("error: {line}");
                }
            }
        }
    }
    Ok(if failed {
        ExitCode::from(crate::BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    })
}

fn check(file: &std::path::Path, params: &[(String, String)]) -> Result<String, Vec<String>> {
    let one = |e: &dyn std::fmt::Display| vec![e.to_string()];
    match detect_kind(file).map_err(|e| one(&e))? {
        DocumentKind::Component => {
            let c = Component::load(file).map_err(|e| one(&e))?;
            if let Some(wasm) = c.wasm_path()
                && !wasm.is_file()
            {
                return Err(vec![format!(
                    "{}: implementation.wasm.component: {} does not exist",
                    file.display(),
                    wasm.display()
                )]);
            }
            Ok(format!(
                "component '{}', {} inputs, {} outputs",
                c.name(),
                c.spec.inputs.len(),
                c.spec.outputs.len()
            ))
        }
        DocumentKind::Pipeline => {
            let p = PipelineFile::load(file).map_err(|e| one(&e))?;
            let plan = Plan::build(&p, params)
                .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
            let missing: Vec<String> =
                plan.tasks
                    .iter()
                    .filter_map(|t| {
                        let wasm = t.component.wasm_path()?;
                        (!wasm.is_file() && t.component.spec.implementation.container.is_none())
                            .then(|| {
                                format!(
                                    "{}: tasks.{}.component: {} names {}, which does not exist",
                                    file.display(),
                                    t.name,
                                    t.component.path.display(),
                                    wasm.display()
                                )
                            })
                    })
                    .collect();
            if !missing.is_empty() {
                return Err(missing);
            }
            Ok(format!(
                "pipeline '{}', {} tasks",
                plan.name,
                plan.tasks.len()
            ))
        }
        DocumentKind::KfpIr => {
            let ir = sluice_runtime::kfp::IrFile::load(file).map_err(|e| one(&e))?;
            // Values given are checked; required ones not given are only listed.
            let mut needs = Vec::new();
            if let Err(errors) = sluice_runtime::kfp::bind_params(&ir, params) {
                let (missing, bad): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| e.missing);
                if !bad.is_empty() {
                    return Err(bad.iter().map(ToString::to_string).collect());
                }
                needs = missing
                    .iter()
                    .map(|e| e.field.rsplit('.').next().unwrap_or_default().to_owned())
                    .collect();
            }
            let spec = &ir.spec;
            let dags = spec.components.values().filter(|c| c.dag.is_some()).count();
            let needs = if needs.is_empty() {
                String::new()
            } else {
                format!("; a run needs --param {}", needs.join(", "))
            };
            Ok(format!(
                "KFP pipeline '{}', {} components ({} DAGs), {} executors{needs}",
                ir.name(),
                spec.components.len(),
                dags,
                spec.deployment_spec.executors.len()
            ))
        }
    }
}
