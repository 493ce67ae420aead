//! `sluice push`, `sluice pull`, `sluice inspect` and `sluice cache`: wasm components in
//! OCI registries and the local cache of pulled ones.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use sluice_runtime::files;
use sluice_runtime::oci::{OciRef, Registries};
use sluice_runtime::spec::Component;

use super::{RegistryArgs, open_store};
use crate::Paths;

#[derive(clap::Args)]
pub struct PushArgs {
    /// The component: a .wasm file, or a component.yaml (pushed with its wasm
    /// implementation, so that a pipeline task can name the reference alone)
    file: PathBuf,
    /// Where to push it: oci://registry/repository:tag
    reference: String,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args)]
pub struct PullArgs {
    /// oci://registry/repository:tag or oci://registry/repository@sha256:...
    reference: String,
    /// Also copy the component to this file
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Args)]
pub struct InspectArgs {
    /// oci://registry/repository:tag or oci://registry/repository@sha256:...
    reference: String,
    /// Print JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    registry: RegistryArgs,
}

#[derive(clap::Subcommand)]
pub enum CacheCommand {
    /// List the cached components and the tags that name them
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Remove every cached component (they are pulled again when needed)
    Prune,
}

fn setup(paths: &Paths, args: &RegistryArgs) -> Result<(Registries, tokio::runtime::Runtime)> {
    let store = open_store(paths)?;
    let cache_dir = paths.cache_dir.clone().unwrap_or_else(|| store.cache_dir());
    Ok((
        args.registries(&cache_dir),
        super::current_thread_runtime()?,
    ))
}

pub fn push(paths: &Paths, args: PushArgs) -> Result<ExitCode> {
    let reference = OciRef::parse(&args.reference)?;
    // A component file travels with its wasm implementation, so that a pipeline task
    // can name the reference alone.
    let is_yaml = args
        .file
        .extension()
        .is_some_and(|e| e == "yaml" || e == "yml");
    let (wasm_file, description) = if is_yaml {
        let component = Component::load(&args.file)?;
        let wasm = component.wasm_path().with_context(|| {
            format!(
                "{}: implementation.wasm.component must be a local .wasm file to push",
                args.file.display()
            )
        })?;
        let text = files::read_text_limited(&args.file, files::SPEC_FILE_MAX, files::Follow::Yes)
            .with_context(|| format!("cannot read {}", args.file.display()))?;
        (wasm, Some(text))
    } else {
        (args.file.clone(), None)
    };
    let wasm = files::read_limited(&wasm_file, files::WASM_FILE_MAX, files::Follow::Yes)
        .with_context(|| format!("cannot read {}", wasm_file.display()))?;
    let title = wasm_file.file_name().map_or("component.wasm".into(), |n| {
        n.to_string_lossy().into_owned()
    });
    let (registries, runtime) = setup(paths, &args.registry)?;
    let digest =
        runtime.block_on(registries.push(&wasm, &title, &reference, description.as_deref()))?;
    outln!("pushed {} as {reference}", args.file.display());
    outln!("{}", reference.at(&digest));
    Ok(ExitCode::SUCCESS)
}

pub fn pull(paths: &Paths, args: PullArgs) -> Result<ExitCode> {
    let reference = OciRef::parse(&args.reference)?;
    let (registries, runtime) = setup(paths, &args.registry)?;
    let pulled = runtime.block_on(registries.pull(&reference))?;
    outln!(
        "{} {} (component {})",
        if pulled.cached { "cached" } else { "pulled" },
        pulled.pinned,
        pulled.wasm_digest
    );
    if let Some(out) = args.output {
        sluice_runtime::store::write_out(&pulled.path, &out)?;
        outln!("wrote {}", out.display());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn inspect(paths: &Paths, args: InspectArgs) -> Result<ExitCode> {
    let reference = OciRef::parse(&args.reference)?;
    let (registries, runtime) = setup(paths, &args.registry)?;
    let (digest, manifest, config) = runtime.block_on(registries.inspect(&reference))?;
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "reference": reference.to_string(),
                "digest": digest,
                "manifest": manifest,
                "config": config,
            }))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    outln!("reference  {reference}");
    outln!("digest     {digest}");
    outln!("pinned     {}", reference.at(&digest));
    for (key, value) in manifest.annotations.iter().flatten() {
        outln!("annotation {key} = {value}");
    }
    for layer in &manifest.layers {
        outln!(
            "layer      {} {} ({} bytes)",
            layer.media_type,
            layer.digest,
            layer.size
        );
    }
    outln!("platform   {}/{}", config.architecture, config.os);
    if let Some(component) = &config.component {
        // The component's world, in WIT: what it imports and exports.
        let name = reference
            .repository()
            .rsplit('/')
            .next()
            .unwrap_or("component")
            .replace(|c: char| !c.is_ascii_alphanumeric(), "-");
        outln!("world {name} {{");
        for import in &component.imports {
            outln!("  import {import};");
        }
        for export in &component.exports {
            outln!("  export {export};");
        }
        outln!("}}");
    }
    Ok(ExitCode::SUCCESS)
}

pub fn cache(paths: &Paths, command: CacheCommand) -> Result<ExitCode> {
    let (registries, _) = setup(paths, &RegistryArgs::offline())?;
    let cache = registries.cache();
    match command {
        CacheCommand::List { json } => {
            let entries = cache.list();
            if json {
                let list: Vec<_> = entries
                    .iter()
                    .map(|(e, tags)| {
                        serde_json::json!({
                            "digest": e.manifest_digest,
                            "component": e.wasm_digest,
                            "size": e.size,
                            "tags": tags,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else if entries.is_empty() {
                outln!("the component cache ({}) is empty", cache.root().display());
            } else {
                crate::report::cache_list(&entries);
            }
        }
        CacheCommand::Prune => {
            let (count, bytes) = cache.prune()?;
            outln!(
                "removed {} ({})",
                sluice_runtime::count(count, "cached component"),
                sluice_runtime::count(bytes as usize, "byte")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The component files of tasks that name a registry component, pulled (or taken from the
/// cache), by reference.
pub fn component_files(
    paths: &Paths,
    args: &RegistryArgs,
    references: &[String],
) -> Result<std::collections::HashMap<String, PathBuf>> {
    let (registries, runtime) = setup(paths, args)?;
    let mut files = std::collections::HashMap::new();
    for text in references {
        let reference = OciRef::parse(text)?;
        let file = runtime.block_on(registries.component_file(&reference))?;
        files.insert(text.clone(), file);
    }
    Ok(files)
}
