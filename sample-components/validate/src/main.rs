//! `validate` command component: checks a CSV table against a table schema, then copies the
//! table unchanged to `--validated` and writes a JSON summary to `--report`. A table that
//! does not match exits 1 with one line per problem on stderr (the first ten), the first
//! being e.g. `row 17, column 'mean_radius': expected a number, found 'abc'`; nothing is
//! written then. All checking lives in `sluice_ml::schema`; this file only does the IO.

//!
//! The same check is exported as a transform (`sluice:pipeline/transform`), which takes the
//! table by value and hands it on by value when Sluice runs it in a fused chain.

#[cfg(target_arch = "wasm32")]
sluice_transform_guest::export!(Validate with_types_in sluice_transform_guest);

use std::fs;
use std::process::ExitCode;

use anyhow::Context;
use sluice_ml::cli::{Args, Command, Opt};
use sluice_ml::describe;
use sluice_ml::entry;
use sluice_ml::schema::{self, Schema};
use sluice_transform_guest::host::{self, Level};
use sluice_transform_guest::{Request, Response, StepError, WitRequest, bytes_port, table_port};

const COMMAND: Command = Command {
    name: "validate",
    about: "Checks a CSV table against a table schema and passes it on unchanged.",
    options: &[
        Opt {
            name: "data",
            value: "<csv>",
            required: true,
            help: "the table to check",
        },
        Opt {
            name: "schema",
            value: "<json>",
            required: true,
            help: "the table schema",
        },
        Opt {
            name: "validated",
            value: "<csv>",
            required: true,
            help: "where to copy the table once it is valid",
        },
        Opt {
            name: "report",
            value: "<json>",
            required: true,
            help: "where to write the summary (rows, columns, per-column statistics)",
        },
    ],
};

/// How many problems are printed before the count of the rest.
const SHOWN_PROBLEMS: usize = 10;

fn main() -> ExitCode {
    entry::main(&COMMAND, |args| {
        run(args).map(|outcome| match outcome {
            Outcome::Valid => ExitCode::SUCCESS,
            Outcome::Invalid(invalid) => {
                for problem in &invalid.problems {
                    eprintln!("{problem}");
                }
                if invalid.total > invalid.problems.len() {
                    eprintln!(
                        "... and {} more problems",
                        invalid.total - invalid.problems.len()
                    );
                }
                ExitCode::FAILURE
            }
        })
    })
}

enum Outcome {
    Valid,
    Invalid(schema::Invalid),
}

fn run(args: &Args) -> anyhow::Result<Outcome> {
    let data_path = args.value("data")?;
    let schema_path = args.value("schema")?;
    let data = fs::read(data_path).with_context(|| format!("cannot read {data_path}"))?;
    let schema_bytes =
        fs::read(schema_path).with_context(|| format!("cannot read {schema_path}"))?;
    let schema = Schema::from_json(&schema_bytes)
        .with_context(|| format!("cannot use the schema {schema_path}"))?;
    let report = match schema::validate_table(&data, &schema, SHOWN_PROBLEMS) {
        Ok(report) => report,
        Err(invalid) => return Ok(Outcome::Invalid(invalid)),
    };

    let validated = args.value("validated")?;
    fs::write(validated, &data).with_context(|| format!("cannot write {validated}"))?;
    let report_path = args.value("report")?;
    fs::write(report_path, report.to_json())
        .with_context(|| format!("cannot write {report_path}"))?;
    Ok(Outcome::Valid)
}

struct Validate;

impl sluice_transform_guest::Guest for Validate {
    fn transform(request: WitRequest) -> Result<Response, StepError> {
        let mut request = Request::from(request);
        let table = request.table("data")?;
        let schema_bytes = request
            .bytes("schema")?
            .ok_or_else(|| StepError::InvalidInput("input 'schema' is missing".to_owned()))?;
        let schema = Schema::from_json(&schema_bytes).map_err(|err| {
            StepError::InvalidInput(format!("cannot use the schema: {}", describe(&err)))
        })?;
        match schema::validate_columns(&table, &schema, SHOWN_PROBLEMS) {
            Ok(report) => Ok(Response {
                outputs: vec![
                    table_port("validated", table),
                    bytes_port("report", report.to_json()),
                ],
                params: Vec::new(),
                metrics: Vec::new(),
            }),
            Err(invalid) => {
                for problem in &invalid.problems {
                    host::log(Level::Error, &problem.to_string());
                }
                Err(StepError::InvalidInput(invalid.to_string()))
            }
        }
    }
}
