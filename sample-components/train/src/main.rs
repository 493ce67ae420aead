//! `train` command: fits a binary logistic regression on a (normalised) training table and
//! writes the model JSON, plus a KFP mlpipeline-metrics file with `--metrics`. The same
//! source is built as a wasm component and as a static musl binary for a container image;
//! both produce byte-identical model files from the same table, because all the arithmetic
//! lives in `sluice_ml::logistic` and avoids the platform's maths library. This file only
//! does the IO.

#![forbid(unsafe_code)]

use std::fs;
use std::process::ExitCode;

use anyhow::Context;
use sluice_ml::cli::{Args, Command, Opt};
use sluice_ml::csv::Csv;
use sluice_ml::entry;
use sluice_ml::logistic::{self, Dataset, TrainConfig};
use sluice_ml::{kfp, metrics};

const COMMAND: Command = Command {
    name: "train",
    about: "Trains a binary logistic regression (Newton's method, L2 penalty) on a CSV table.",
    options: &[
        Opt {
            name: "train",
            value: "<csv>",
            required: true,
            help: "training table: numeric features (standardised) and a label column",
        },
        Opt {
            name: "label",
            value: "<col>",
            required: true,
            help: "the label column; every other column is a feature",
        },
        Opt {
            name: "positive",
            value: "<value>",
            required: true,
            help: "the label value of the positive class",
        },
        Opt {
            name: "l2",
            value: "<f>",
            required: false,
            help: "L2 penalty on the weights (default 0.01)",
        },
        Opt {
            name: "max-iter",
            value: "<n>",
            required: false,
            help: "most Newton steps (default 100)",
        },
        Opt {
            name: "tolerance",
            value: "<f>",
            required: false,
            help: "stop when no gradient component exceeds this (default 1e-8)",
        },
        Opt {
            name: "model",
            value: "<json>",
            required: true,
            help: "where to write the model",
        },
        Opt {
            name: "metrics",
            value: "<json>",
            required: false,
            help: "where to write training metrics (KFP mlpipeline-metrics)",
        },
    ],
};

fn main() -> ExitCode {
    entry::main(&COMMAND, |args| run(args).map(|()| ExitCode::SUCCESS))
}

fn run(args: &Args) -> anyhow::Result<()> {
    let defaults = TrainConfig::default();
    let config = TrainConfig {
        l2: args.parsed("l2", "a number")?.unwrap_or(defaults.l2),
        max_iter: args
            .parsed("max-iter", "a whole number")?
            .unwrap_or(defaults.max_iter),
        tolerance: args
            .parsed("tolerance", "a number")?
            .unwrap_or(defaults.tolerance),
    };
    let label = args.value("label")?;
    let positive = args.value("positive")?;

    let train_path = args.value("train")?;
    let bytes = fs::read(train_path).with_context(|| format!("cannot read {train_path}"))?;
    let csv = Csv::parse(&bytes).with_context(|| format!("in {train_path}"))?;
    let data = Dataset::from_csv(&csv, label, positive, None)
        .with_context(|| format!("in {train_path}"))?;
    let model = logistic::train(&data, label, positive, &config)?;
    if !model.converged {
        eprintln!(
            "train: warning: not converged after {} Newton steps; the model is written anyway",
            model.iterations
        );
    }

    let model_path = args.value("model")?;
    fs::write(model_path, model.to_json()).with_context(|| format!("cannot write {model_path}"))?;

    if let Some(metrics_path) = args.get("metrics") {
        let fit = metrics::evaluate(&model.probabilities(&data), &data.labels, model.threshold)?;
        let json = kfp::metrics_json(&[
            ("train-log-loss", model.training_loss),
            ("train-accuracy", fit.accuracy),
            ("train-iterations", model.iterations as f64),
        ])?;
        fs::write(metrics_path, json).with_context(|| format!("cannot write {metrics_path}"))?;
    }
    Ok(())
}
