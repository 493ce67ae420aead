//! `sluice export argo <pipeline>`: the pipeline as an Argo Workflows `Workflow` (or
//! `WorkflowTemplate`), and, when its wasm components travel in the step image, the build
//! context of that image.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use sluice_runtime::argo::model::ArtifactRepositoryRef;
use sluice_runtime::argo::{DocumentKind, ExportOptions, export};
use sluice_runtime::exec::Kind;
use sluice_runtime::exec::runners::{Policy, Runners};
use sluice_runtime::exec::wasm::{WasmConfig, WasmExecutor};
use sluice_runtime::plan::Plan;
use sluice_runtime::spec::{DocumentKind as FileKind, Prefer, detect_kind};

use super::{RegistryArgs, key_value, report_plan_errors};
use crate::Paths;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Write the pipeline as an Argo Workflow: one DAG, a template per task, wasm steps in
    /// the sluice-step image, container steps in their own images
    Argo(ArgoArgs),
}

#[derive(clap::Args)]
pub struct ArgoArgs {
    /// The pipeline file
    pipeline: PathBuf,
    /// Set a pipeline parameter (repeatable); an artifact parameter takes an
    /// http(s)://, s3:// or gs:// URL, or a small local text file written into the workflow
    #[arg(long = "param", short = 'p', visible_alias = "input", value_name = "NAME=VALUE", value_parser = key_value)]
    params: Vec<(String, String)>,
    /// Where to write the workflow [default: standard output]
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,
    /// What to write
    #[arg(long, value_enum, default_value_t = Kind_::Workflow)]
    kind: Kind_,
    /// The sluice-step image: it runs wasm steps and gives container steps `sluice`
    /// [default: sluice-step:<this version>]
    #[arg(long, value_name = "IMAGE", value_parser = image_reference)]
    step_image: Option<String>,
    /// Embed components pulled from registries in the wasm steps' image too, not only
    /// local files (for clusters that cannot reach the registries)
    #[arg(long)]
    embed: bool,
    /// The image wasm steps run in when components are embedded
    /// [default: <step image>-<pipeline>:<digest>]
    #[arg(long, value_name = "IMAGE", value_parser = image_reference)]
    image: Option<String>,
    /// Where to write that image's build context [default: beside the output,
    /// `<output>.image/`, or `<pipeline>.image/`]
    #[arg(long, value_name = "DIR")]
    context: Option<PathBuf>,
    /// Run wasm steps under this Kubernetes runtime class (a runwasi or SpinKube shim):
    /// refused, since Argo starts every step's command through its emissary executor, a
    /// Linux program such a shim cannot start (see docs/kubernetes.md)
    #[arg(long, value_name = "NAME")]
    runtime_class: Option<String>,
    /// The artifact repository outputs are kept in, as a key of a ConfigMap
    /// ([CONFIGMAP/]KEY) [default: the cluster's default]
    #[arg(long, value_name = "[CONFIGMAP/]KEY", value_parser = repository)]
    artifact_repository: Option<ArtifactRepositoryRef>,
    /// KFP pipelines: run image TO wherever a task names image FROM (repeatable)
    #[arg(long, value_name = "FROM=TO", value_parser = key_value)]
    image_map: Vec<(String, String)>,
    /// Prefer an implementation for every task (`container` or `wasm`), or for one
    /// (`TASK=container`); repeatable
    #[arg(long, value_name = "[TASK=]KIND", value_parser = super::prefer)]
    prefer: Vec<(Option<String>, Prefer)>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Kind_ {
    Workflow,
    WorkflowTemplate,
}

/// An image reference as Docker and Kubernetes take them
/// (`registry:5000/team/name:tag@sha256:...`): nothing but letters, digits and `._-/:@`.
fn image_reference(s: &str) -> Result<String, String> {
    let ok = !s.is_empty()
        && !s.starts_with(['-', '/', ':', '@'])
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/:@".contains(c));
    if ok {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "expected an image reference such as registry.example.com/team/sluice-step:0.1.0, found '{}'",
            s.escape_debug()
        ))
    }
}

fn repository(s: &str) -> Result<ArtifactRepositoryRef, String> {
    let (config_map, key) = match s.split_once('/') {
        Some((c, k)) => (Some(c.to_owned()), k),
        None => (None, s),
    };
    if key.is_empty() || config_map.as_deref() == Some("") {
        return Err(format!("expected [CONFIGMAP/]KEY, found '{s}'"));
    }
    Ok(ArtifactRepositoryRef {
        config_map,
        key: key.to_owned(),
    })
}

pub fn run(paths: &Paths, cmd: Command) -> Result<ExitCode> {
    let Command::Argo(args) = cmd;
    let mut platform = std::collections::BTreeMap::new();
    let mut platform_other = Vec::new();
    let is_kfp = detect_kind(&args.pipeline)? == FileKind::KfpIr;
    let plan = match detect_kind(&args.pipeline)? {
        FileKind::Pipeline => {
            let (file, _) = super::run::load_pipeline(paths, &args.registry, &args.pipeline)?;
            match Plan::build(&file, &args.params) {
                Ok(plan) => plan,
                Err(errors) => return Ok(report_plan_errors(&errors)),
            }
        }
        FileKind::Component => {
            let component = Arc::new(sluice_runtime::spec::Component::load(&args.pipeline)?);
            match Plan::for_component(component, &args.params) {
                Ok(plan) => plan,
                Err(errors) => return Ok(report_plan_errors(&errors)),
            }
        }
        FileKind::KfpIr => {
            let file = sluice_runtime::kfp::IrFile::load(&args.pipeline)?;
            let (params, errors) = sluice_runtime::kfp::bind_what_can_be(&file, &args.params);
            if !errors.is_empty() {
                for e in errors {
                    errln!("error: {e}");
                }
                return Ok(ExitCode::from(crate::BAD_INPUT));
            }
            for (name, spec) in &file.platform.platforms {
                for (executor, settings) in &spec.deployment_spec.executors {
                    let entry: &mut std::collections::BTreeMap<_, _> =
                        platform.entry(executor.clone()).or_default();
                    entry.extend(settings.clone());
                }
                platform_other.extend(spec.other.keys().map(|k| format!("{name}.{k}")));
            }
            match sluice_runtime::kfp::lower::lower(&file, &params, &args.image_map) {
                Ok(plan) => plan,
                Err(errors) => return Ok(report_plan_errors(&errors)),
            }
        }
    };
    let usage = |message: String| {
        errln!("error: {message}");
        Ok(ExitCode::from(crate::BAD_INPUT))
    };
    for (task, _) in &args.prefer {
        if let Some(task) = task
            && !plan.tasks.iter().any(|t| &t.name == task)
        {
            return usage(format!(
                "--prefer {task}=...: {} has no task '{task}'",
                args.pipeline.display()
            ));
        }
    }
    if !args.image_map.is_empty() && !is_kfp {
        return usage(format!(
            "--image-map: {} is not a compiled KFP pipeline",
            args.pipeline.display()
        ));
    }
    // Where the output and the image's build context go, checked before anything is written.
    let output = args.output.clone().filter(|p| p.as_os_str() != "-");
    let context = args.context.clone().unwrap_or_else(|| {
        let base = output
            .clone()
            .filter(|p| std::fs::metadata(p).map_or(true, |m| m.is_file()))
            .unwrap_or_else(|| PathBuf::from(args.pipeline.file_stem().unwrap_or_default()));
        let mut name = base.into_os_string();
        name.push(".image");
        PathBuf::from(name)
    });
    if context.exists() && !context.is_dir() {
        return usage(format!(
            "--context {}: exists and is not a folder",
            context.display()
        ));
    }
    let store = super::open_store(paths)?;
    let cache_dir = paths.cache_dir.clone().unwrap_or_else(|| store.cache_dir());
    let registries = args.registry.registries(&cache_dir);
    let wasm_references: Vec<&str> = plan
        .tasks
        .iter()
        .filter_map(|t| t.component.wasm_reference())
        .collect();
    let runtime = super::current_thread_runtime()?;
    let pulled = runtime.block_on(sluice_runtime::oci::pull_for_run(
        &registries,
        wasm_references,
        &Default::default(),
    ))?;
    let mut policy = Policy::default();
    for (task, kind) in &args.prefer {
        match task {
            Some(task) => {
                policy.prefer_tasks.insert(task.clone(), *kind);
            }
            None => policy.prefer = Some(*kind),
        }
    }
    let prepared = runtime.block_on(async {
        let mut wasm = WasmConfig::new(cache_dir.clone());
        wasm.pulled = pulled.clone();
        let runners = Runners::new(Arc::new(WasmExecutor::new(wasm)?), policy);
        let mut prepared = Vec::new();
        for task in &plan.tasks {
            let target = sluice_runtime::schedule::target(task);
            prepared.push(match runners.describe(target).await {
                Ok(p) => p,
                Err(e) => anyhow::bail!(
                    "{}: task '{}': {}",
                    args.pipeline.display(),
                    task.name,
                    sluice_runtime::error_chain(&e)
                ),
            });
        }
        anyhow::Ok(prepared)
    })?;
    let mut options = ExportOptions::new();
    options.kind = match args.kind {
        Kind_::Workflow => DocumentKind::Workflow,
        Kind_::WorkflowTemplate => DocumentKind::WorkflowTemplate,
    };
    if let Some(image) = &args.step_image {
        options.step_image = image.clone();
    }
    options.embed = args.embed;
    options.embed_image = args.image.clone();
    options.runtime_class = args.runtime_class.clone();
    options.artifact_repository = args.artifact_repository.clone();
    options.pulled = pulled;
    options.platform = platform;
    options.platform_other = platform_other;
    let exported = match export(&plan, &prepared, &options) {
        Ok(e) => e,
        Err(errors) => {
            for e in errors {
                errln!("error: {}: {e}", args.pipeline.display());
            }
            return Ok(ExitCode::from(crate::BAD_INPUT));
        }
    };
    let yaml = exported.to_yaml();
    if let Some(dockerfile) = exported.dockerfile(&options.step_image) {
        write_context(&context, &dockerfile, &exported.embedded)?;
    }
    match &output {
        Some(path) => std::fs::write(path, &yaml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => out!("{yaml}"),
    }
    let wasm = prepared.iter().filter(|p| p.kind == Kind::Wasm).count();
    errln!(
        "exported {} task(s) of {} ({wasm} wasm, {} container){}",
        plan.tasks.len(),
        args.pipeline.display(),
        plan.tasks.len() - wasm,
        output
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    if !exported.embedded.is_empty() {
        errln!(
            "wasm steps run in {}, which holds their components; build it with: docker build -t {} {}",
            exported.wasm_image,
            exported.wasm_image,
            context.display()
        );
    }
    for note in &exported.notes {
        errln!("note: {note}");
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the build context of the image wasm steps run in: its Dockerfile and each
/// embedded component under `components/`, by digest (and nothing else there).
fn write_context(
    dir: &Path,
    dockerfile: &str,
    embedded: &[sluice_runtime::argo::Embedded],
) -> Result<()> {
    let components = dir.join("components");
    if components.is_dir() {
        std::fs::remove_dir_all(&components)
            .with_context(|| format!("cannot empty {}", components.display()))?;
    }
    std::fs::create_dir_all(&components)
        .with_context(|| format!("cannot create {}", components.display()))?;
    std::fs::write(dir.join("Dockerfile"), dockerfile)
        .with_context(|| format!("cannot write {}", dir.join("Dockerfile").display()))?;
    for e in embedded {
        let to = components.join(e.file_name());
        std::fs::copy(&e.file, &to)
            .with_context(|| format!("cannot copy {} to {}", e.file.display(), to.display()))?;
    }
    Ok(())
}
