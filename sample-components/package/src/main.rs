//! `package` command component: bundles a model file (`--model`) with the normalisation
//! statistics of its training table (`--stats`) and the label of its negative class
//! (`--negative`) into one JSON document (`--bundle`) that the predictor component loads.
//! A model, statistics file or label that cannot be bundled exits 1 with one line naming
//! the files and the problem; nothing is written then. The checks and the format live in
//! `sluice_ml::bundle`; this file only does the IO.

#![forbid(unsafe_code)]

use std::fs;
use std::process::ExitCode;

use anyhow::Context;
use sluice_ml::bundle::Bundle;
use sluice_ml::cli::{Args, Command, Opt};
use sluice_ml::entry;

const COMMAND: Command = Command {
    name: "package",
    about: "Bundles a model with its normalisation statistics for a predictor.",
    options: &[
        Opt {
            name: "model",
            value: "<json>",
            required: true,
            help: "the model, as train wrote it",
        },
        Opt {
            name: "stats",
            value: "<json>",
            required: true,
            help: "the statistics the training table was normalised with",
        },
        Opt {
            name: "negative",
            value: "<label>",
            required: true,
            help: "the label predicted below the model's threshold",
        },
        Opt {
            name: "bundle",
            value: "<json>",
            required: true,
            help: "where to write the bundle",
        },
    ],
};

fn main() -> ExitCode {
    entry::main(&COMMAND, |args| run(args).map(|()| ExitCode::SUCCESS))
}

fn run(args: &Args) -> anyhow::Result<()> {
    let model_path = args.value("model")?;
    let stats_path = args.value("stats")?;
    let model = fs::read(model_path).with_context(|| format!("cannot read {model_path}"))?;
    let stats = fs::read(stats_path).with_context(|| format!("cannot read {stats_path}"))?;
    let bundle = Bundle::pack(&model, &stats, args.value("negative")?)
        .with_context(|| format!("cannot bundle {model_path} with {stats_path}"))?;
    let bundle_path = args.value("bundle")?;
    fs::write(bundle_path, bundle.to_json())
        .with_context(|| format!("cannot write {bundle_path}"))?;
    Ok(())
}
