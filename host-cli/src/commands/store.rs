//! `sluice store gc`: remove the stored artifacts nothing refers to any more.

use std::process::ExitCode;

use anyhow::Result;
use sluice_runtime::maintenance::collect_garbage;

use super::open_store;
use crate::Paths;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Remove artifacts no run records and no published model version was made from
    Gc {
        /// Say what would be removed, and remove nothing
        #[arg(long)]
        dry_run: bool,
    },
}

pub fn run(paths: &Paths, command: Command) -> Result<ExitCode> {
    let Command::Gc { dry_run } = command;
    let store = open_store(paths)?;
    let collected = collect_garbage(&store, dry_run)?;
    for stored in &collected.removed {
        outln!(
            "{} {} ({} bytes)",
            if dry_run { "would remove" } else { "removed" },
            stored.digest,
            stored.size
        );
    }
    let mib = collected.bytes as f64 / f64::from(1 << 20);
    outln!(
        "{} {} artifacts ({mib:.1} MiB) and {} unfinished writes; kept {} that runs or models refer to{}",
        if dry_run { "would remove" } else { "removed" },
        collected.removed.len(),
        collected.leftovers,
        collected.kept,
        match collected.in_progress {
            0 => String::new(),
            n => format!(" and {n} a run in progress may yet record"),
        }
    );
    Ok(ExitCode::SUCCESS)
}
