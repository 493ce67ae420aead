//! `sluice validate <file>...`: check pipelines and components without running them.
//! Every problem is one line naming the file and the field.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use sluice_runtime::error::Blame;
use sluice_runtime::exec::{Kind, Prepared};
use sluice_runtime::plan::Plan;
use sluice_runtime::schedule::fuse::Fusion;
use sluice_runtime::spec::{Component, DocumentKind, PipelineFile, detect_kind};

use super::key_value;
use crate::Paths;

#[derive(clap::Args)]
pub struct Args {
    /// Pipeline or component files
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Parameter values to check the pipeline with
    #[arg(long = "param", short = 'p', value_name = "NAME=VALUE", value_parser = key_value)]
    params: Vec<(String, String)>,
}

pub fn run(paths: &Paths, args: Args) -> Result<ExitCode> {
    let mut failed = false;
    let mut environment = false;
    for file in &args.files {
        match check(paths, file, &args.params) {
            Ok(summary) => outln!("{}: ok ({summary})", file.display()),
            Err(problems) => {
                failed = true;
                environment |= problems.environment;
                for line in problems.lines {
                    errln!("error: {line}");
                }
            }
        }
    }
    Ok(if environment {
        ExitCode::from(crate::ENVIRONMENT)
    } else if failed {
        ExitCode::from(crate::BAD_INPUT)
    } else {
        ExitCode::SUCCESS
    })
}

/// What is wrong with a file, one line each; `environment` when it could not be checked
/// because the machine failed (the home cannot be written, say), not the file.
struct Problems {
    lines: Vec<String>,
    environment: bool,
}

impl From<Vec<String>> for Problems {
    fn from(lines: Vec<String>) -> Problems {
        Problems {
            lines,
            environment: false,
        }
    }
}

fn check(
    paths: &Paths,
    file: &std::path::Path,
    params: &[(String, String)],
) -> Result<String, Problems> {
    // The whole chain: `cannot read x.yaml: is a character device, not a regular file`.
    let one = |e: &dyn std::error::Error| vec![sluice_runtime::error_chain(e)];
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
                )]
                .into());
            }
            if c.wasm_path().is_some() {
                let resources = sluice_runtime::spec::ResourceSpec::default();
                let target = sluice_runtime::exec::Target {
                    task: "component",
                    component: &c,
                    resources: &resources,
                    prefer: None,
                };
                let described =
                    super::describe(paths, vec![target]).map_err(|e| vec![format!("{e:#}")])?;
                if let Some(problem) = transform_problem(&c, &described[0]) {
                    return Err(vec![format!(
                        "{}: implementation.wasm.transform: {problem}",
                        file.display()
                    )]
                    .into());
                }
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
                return Err(missing.into());
            }
            wiring(paths, file, &plan)?;
            Ok(format!(
                "pipeline '{}', {}",
                plan.name,
                sluice_runtime::count(plan.tasks.len(), "task")
            ))
        }
        DocumentKind::KfpIr => {
            let ir = sluice_runtime::kfp::IrFile::load(file).map_err(|e| one(&e))?;
            // Values given are checked; required ones not given are only listed.
            let mut needs = Vec::new();
            if let Err(errors) = sluice_runtime::kfp::bind_params(&ir, params) {
                let (missing, bad): (Vec<_>, Vec<_>) = errors.into_iter().partition(|e| e.missing);
                if !bad.is_empty() {
                    return Err(bad
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .into());
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

/// Reads each wasm component's interfaces from its binary: a component that declares a
/// transform must export one, and transforms wired table to table must agree.
fn wiring(paths: &Paths, file: &std::path::Path, plan: &Plan) -> Result<(), Problems> {
    let described = super::describe_tasks(paths, plan).map_err(|e| Problems {
        lines: vec![format!("{e:#}")],
        environment: sluice_runtime::error::blame(e.as_ref()) == Blame::Environment,
    })?;
    let mut errors = Vec::new();
    for (task, prepared) in plan.tasks.iter().zip(&described) {
        if let Some(problem) = transform_problem(&task.component, prepared) {
            errors.push(format!(
                "{}: tasks.{}.component: {}: implementation.wasm.transform: {problem}",
                file.display(),
                task.name,
                task.component.path.display(),
            ));
        }
    }
    if let Err(mismatches) = Fusion::decide(plan, &described, true) {
        errors.extend(
            mismatches
                .iter()
                .map(|m| format!("{}: {m}", file.display())),
        );
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors.into())
    }
}

/// Why a component that declares a transform cannot be called as one: its binary exports
/// none, or one of a type this Sluice does not call.
fn transform_problem(component: &Component, prepared: &Prepared) -> Option<String> {
    let declared = component
        .spec
        .implementation
        .wasm
        .as_ref()
        .is_some_and(|w| w.transform.is_some());
    let loaded = prepared.kind == Kind::Wasm && prepared.executable_digest.is_some();
    if !declared || !loaded {
        return None;
    }
    match &prepared.transform {
        Some(t) if t.callable => None,
        Some(t) => Some(format!(
            "declared, but the component exports {} with a type this Sluice cannot call: transform: {}",
            t.interface, t.signature
        )),
        None => Some(format!(
            "declared, but the component exports no {}",
            sluice_runtime::exec::wasm::TRANSFORM_INTERFACE
        )),
    }
}
