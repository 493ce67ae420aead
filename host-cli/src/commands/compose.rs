//! `sluice compose <socket> --plug <component>... -o <out>`: one component from several.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};

#[derive(clap::Args)]
pub struct Args {
    /// The component whose imports are satisfied (e.g. a transform stage)
    socket: PathBuf,
    /// A component whose exports satisfy the socket's imports of the same name (repeatable)
    #[arg(long = "plug", value_name = "COMPONENT", required = true)]
    plugs: Vec<PathBuf>,
    /// Where to write the composed component
    #[arg(long, short, value_name = "FILE")]
    output: PathBuf,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let composed = match sluice_runtime::compose::compose(&args.socket, &args.plugs) {
        Ok(composed) => composed,
        Err(lines) => {
            for line in lines {
                errln!("error: {line}");
            }
            return Ok(ExitCode::from(crate::BAD_INPUT));
        }
    };
    std::fs::write(&args.output, &composed.bytes)
        .with_context(|| format!("cannot write {}", args.output.display()))?;
    for (import, plug) in &composed.plugged {
        outln!("plugged {import} <- {}", plug.display());
    }
    outln!(
        "wrote {} ({} bytes); it exports {} and imports {}",
        args.output.display(),
        composed.bytes.len(),
        join(&composed.exports),
        join(&composed.imports)
    );
    Ok(ExitCode::SUCCESS)
}

fn join(names: &[String]) -> String {
    if names.is_empty() {
        "nothing".into()
    } else {
        names.join(", ")
    }
}
