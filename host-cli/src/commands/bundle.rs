//! `sluice bundle <pipeline> -o <file>`: one OCI image-layout archive with the pipeline,
//! its files and every registry component it names, for a site with no registry.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sluice_runtime::plan::Plan;

use super::{RegistryArgs, open_store, report_plan_errors};
use crate::Paths;

#[derive(clap::Args)]
pub struct Args {
    /// The pipeline file
    pipeline: PathBuf,
    /// The archive to write
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
    /// Also bundle the container images of container implementations, exported from
    /// the Docker Engine
    #[arg(long)]
    with_images: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

pub fn run(paths: &Paths, args: Args) -> Result<ExitCode> {
    let (file, references) = super::run::load_pipeline(paths, &args.registry, &args.pipeline)?;
    let plan = match Plan::build(&file, &[]) {
        Ok(plan) => plan,
        Err(errors) => return Ok(report_plan_errors(&errors)),
    };
    let store = open_store(paths)?;
    let cache_dir = paths.cache_dir.clone().unwrap_or_else(|| store.cache_dir());
    let registries = args.registry.registries(&cache_dir);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    // Container images, exported from the engine, when asked for.
    let mut names: Vec<String> = Vec::new();
    let mut archive = None;
    if args.with_images {
        names = plan
            .tasks
            .iter()
            .filter_map(|t| t.component.spec.implementation.container.as_ref())
            .map(|c| c.image.clone())
            .collect();
        names.sort();
        names.dedup();
        archive = Some(runtime.block_on(sluice_runtime::exec::docker::save_images(&names))?);
    }
    let written = runtime
        .block_on(sluice_runtime::oci::bundle::write(
            &plan,
            &references,
            &registries,
            archive.map(|a| (names.as_slice(), a)),
            &args.output,
        ))
        .map_err(anyhow::Error::msg)?;
    outln!(
        "wrote {} ({} bytes): {} files, {} registry components and {} container images; run it with `sluice run {}`",
        args.output.display(),
        written.bytes,
        written.files,
        written.components,
        names.len(),
        args.output.display()
    );
    Ok(ExitCode::SUCCESS)
}
