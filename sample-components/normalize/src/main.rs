//! `normalize` command component: z-score or min-max normalisation of every column but the
//! excluded ones. Without `--stats` it fits the statistics on `--data`; with `--stats` it
//! applies statistics fitted earlier (the test split is normalised with the training split's
//! statistics). The fitted or applied statistics are written to `--fitted-stats`.
//!
//! Throughput matters here (it is the step Sluice benchmarks wasm against native): the input
//! is read with one `fs::read` and the output is written in 1 MiB chunks. All the
//! arithmetic lives in `sluice_ml::normalize`; this file only does the IO.

//!
//! The same normalisation is exported as a transform (`sluice:pipeline/transform`), which
//! takes the table by value and returns the normalised one by value.

#[cfg(target_arch = "wasm32")]
sluice_transform_guest::export!(Normalize with_types_in sluice_transform_guest);

use std::fs::{self, File};
use std::process::ExitCode;

use anyhow::Context;
use sluice_ml::cli::{Args, Command, Opt};
use sluice_ml::csv::Csv;
use sluice_ml::describe;
use sluice_ml::entry;
use sluice_ml::normalize::{self, FittedStats, Method};
use sluice_transform_guest::{Request, Response, StepError, WitRequest, bytes_port, table_port};

const COMMAND: Command = Command {
    name: "normalize",
    about: "Normalises the numeric columns of a CSV table, fitting or applying statistics.",
    options: &[
        Opt {
            name: "data",
            value: "<csv>",
            required: true,
            help: "the table to normalise",
        },
        Opt {
            name: "exclude",
            value: "<col>[,<col>...]",
            required: true,
            help: "columns copied unchanged (the label); may be empty",
        },
        Opt {
            name: "method",
            value: "zscore|minmax",
            required: false,
            help: "normalisation when fitting (default zscore); when applying, must match the statistics",
        },
        Opt {
            name: "stats",
            value: "<json>",
            required: false,
            help: "statistics to apply instead of fitting new ones",
        },
        Opt {
            name: "output",
            value: "<csv>",
            required: true,
            help: "where to write the normalised table",
        },
        Opt {
            name: "fitted-stats",
            value: "<json>",
            required: true,
            help: "where to write the statistics used",
        },
    ],
};

fn main() -> ExitCode {
    entry::main(&COMMAND, |args| run(args).map(|()| ExitCode::SUCCESS))
}

fn run(args: &Args) -> anyhow::Result<()> {
    let method: Option<Method> = args.get("method").map(str::parse).transpose()?;
    let exclude: Vec<&str> = args
        .value("exclude")?
        .split(',')
        .filter(|name| !name.is_empty())
        .collect();
    let data_path = args.value("data")?;
    let data = fs::read(data_path).with_context(|| format!("cannot read {data_path}"))?;
    let csv = Csv::parse(&data).with_context(|| format!("in {data_path}"))?;

    let stats = match args.get("stats") {
        Some(stats_path) => {
            let bytes =
                fs::read(stats_path).with_context(|| format!("cannot read {stats_path}"))?;
            let stats =
                FittedStats::from_json(&bytes).with_context(|| format!("in {stats_path}"))?;
            stats.expect_method(method)?;
            stats
        }
        None => normalize::fit(&csv, &exclude, method.unwrap_or(Method::Zscore))
            .with_context(|| format!("in {data_path}"))?,
    };

    let output = args.value("output")?;
    // `apply` hands over 1 MiB chunks, so the file needs no buffered writer.
    let mut file = File::create(output).with_context(|| format!("cannot create {output}"))?;
    normalize::apply(&csv, &stats, &exclude, &mut file)
        .with_context(|| format!("cannot normalise {data_path} into {output}"))?;

    let fitted = args.value("fitted-stats")?;
    fs::write(fitted, stats.to_json()).with_context(|| format!("cannot write {fitted}"))?;
    Ok(())
}

struct Normalize;

impl sluice_transform_guest::Guest for Normalize {
    fn transform(request: WitRequest) -> Result<Response, StepError> {
        let invalid = |err: &dyn std::error::Error| StepError::InvalidInput(describe(err));
        let mut request = Request::from(request);
        let method: Option<Method> = request
            .text("method")
            .map(|m| m.parse())
            .transpose()
            .map_err(|e| invalid(&e))?;
        let exclude_text = request.text("exclude").unwrap_or_default();
        let exclude: Vec<&str> = exclude_text.split(',').filter(|n| !n.is_empty()).collect();
        let table = request.table("data")?;
        let stats = match request.bytes("stats")? {
            Some(bytes) => {
                let stats = FittedStats::from_json(&bytes).map_err(|e| {
                    StepError::InvalidInput(format!("in input 'stats': {}", describe(&e)))
                })?;
                stats.expect_method(method).map_err(|e| invalid(&e))?;
                stats
            }
            None => normalize::fit_table(&table, &exclude, method.unwrap_or(Method::Zscore))
                .map_err(|e| {
                    StepError::InvalidInput(format!("in input 'data': {}", describe(&e)))
                })?,
        };
        let normalized = normalize::apply_table(table, &stats, &exclude)
            .map_err(|e| StepError::InvalidInput(format!("in input 'data': {}", describe(&e))))?;
        Ok(Response {
            outputs: vec![
                table_port("normalized", normalized),
                bytes_port("fitted_stats", stats.to_json()),
            ],
            params: Vec::new(),
            metrics: Vec::new(),
        })
    }
}
