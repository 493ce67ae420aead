//! `split` typed step: splits input artifact `data` (a CSV table) into output artifacts
//! `train` and `test`, deterministically for a given `seed`, optionally stratified by the
//! column named in `stratify`. Parameters: `test_fraction` (float, default 0.25), `seed`
//! (integer, required), `stratify` (string, optional; empty means none).
//!
//! This file only converts between the WIT types and `sluice_ml`, reads and writes the
//! artifact files, and reports through the host interface; the split itself is
//! `sluice_ml::split`. Parameters and table contents the step cannot use are
//! `invalid-input`; failing to read or write a file is `failed`.

// Exported only in the wasm build: native linkers reject the component-model symbol
// names, and natively this crate exists only for its unit tests (hence no dead-code
// warnings there).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[cfg(target_arch = "wasm32")]
sluice_step_guest::export!(Split with_types_in sluice_step_guest);
#[cfg(target_arch = "wasm32")]
sluice_transform_guest::export!(Split with_types_in sluice_transform_guest);

use std::fs;

use sluice_ml::split::{SplitConfig, split_csv, split_table};
use sluice_ml::{describe, step};
use sluice_step_guest::host::{self, Level};
use sluice_step_guest::{Guest, Invocation, Metric, Outcome, StepError, convert};

struct Split;

const DEFAULT_TEST_FRACTION: f64 = 0.25;

impl Guest for Split {
    fn run(inv: Invocation) -> Result<Outcome, StepError> {
        let inv = convert(inv);
        let (config, paths) = plan(&inv).map_err(|err| StepError::InvalidInput(err.to_string()))?;
        host::progress(0, 3);

        let data = fs::read(paths.data)
            .map_err(|err| StepError::Failed(format!("cannot read {}: {err}", paths.data)))?;
        host::progress(1, 3);

        let split = split_csv(&data, &config).map_err(|err| {
            StepError::InvalidInput(format!("in input 'data': {}", describe(&err)))
        })?;
        let stratified = match &config.stratify {
            Some(column) => format!(", stratified by '{column}'"),
            None => String::new(),
        };
        host::log(
            Level::Info,
            &format!(
                "{} rows: {} for training, {} for testing (seed {}{stratified})",
                split.train_rows + split.test_rows,
                split.train_rows,
                split.test_rows,
                config.seed as i64,
            ),
        );
        host::progress(2, 3);

        for (path, bytes) in [(paths.train, &split.train), (paths.test, &split.test)] {
            fs::write(path, bytes)
                .map_err(|err| StepError::Failed(format!("cannot write {path}: {err}")))?;
        }
        host::progress(3, 3);
        Ok(Outcome {
            params: Vec::new(),
            metrics: vec![
                Metric {
                    name: "train_rows".to_owned(),
                    value: split.train_rows as f64,
                },
                Metric {
                    name: "test_rows".to_owned(),
                    value: split.test_rows as f64,
                },
            ],
        })
    }
}

struct Paths<'a> {
    data: &'a str,
    train: &'a str,
    test: &'a str,
}

/// The transform: the same split of a table held by column, returned by value.
impl sluice_transform_guest::Guest for Split {
    fn transform(
        request: sluice_transform_guest::WitRequest,
    ) -> Result<sluice_transform_guest::Response, sluice_transform_guest::StepError> {
        use sluice_transform_guest::{Request, StepError, Value, metric, table_port};
        let mut request = Request::from(request);
        let params = step::Invocation {
            params: request
                .params
                .iter()
                .map(|param| {
                    let value = match &param.value {
                        Value::Str(text) => step::Value::Str(text.clone()),
                        Value::Int(number) => step::Value::Int(*number),
                        Value::Float(number) => step::Value::Float(*number),
                        Value::Boolean(flag) => step::Value::Bool(*flag),
                        Value::Json(text) => step::Value::Json(text.clone()),
                    };
                    (param.name.clone(), value)
                })
                .collect(),
            inputs: Vec::new(),
            outputs: Vec::new(),
        };
        let config = config(&params).map_err(|err| StepError::InvalidInput(err.to_string()))?;
        let table = request.table("data")?;
        let (train, test) = split_table(&table, &config).map_err(|err| {
            StepError::InvalidInput(format!("in input 'data': {}", describe(&err)))
        })?;
        let metrics = vec![
            metric("train_rows", train.rows as f64),
            metric("test_rows", test.rows as f64),
        ];
        Ok(sluice_transform_guest::Response {
            outputs: vec![table_port("train", train), table_port("test", test)],
            params: Vec::new(),
            metrics,
        })
    }
}

/// Reads the parameters and artifact paths, rejecting anything unexpected.
fn plan(inv: &step::Invocation) -> Result<(SplitConfig, Paths<'_>), step::InvocationError> {
    let config = config(inv)?;
    let paths = Paths {
        data: inv.input("data")?,
        train: inv.output("train")?,
        test: inv.output("test")?,
    };
    Ok((config, paths))
}

/// Reads the parameters, rejecting anything unexpected.
fn config(inv: &step::Invocation) -> Result<SplitConfig, step::InvocationError> {
    inv.expect_params(&["test_fraction", "seed", "stratify"])?;
    Ok(SplitConfig {
        test_fraction: inv
            .fraction("test_fraction", false)?
            .unwrap_or(DEFAULT_TEST_FRACTION),
        // The seed's bits, so that negative seeds are as good as positive ones.
        seed: step::Invocation::required("seed", inv.int("seed"))? as u64,
        stratify: inv
            .string("stratify")?
            .filter(|column| !column.is_empty())
            .map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation(params: Vec<(&str, step::Value)>) -> step::Invocation {
        step::Invocation {
            params: params
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
            inputs: vec![("data".into(), "/inputs/data/data".into())],
            outputs: vec![
                ("train".into(), "/outputs/train/data".into()),
                ("test".into(), "/outputs/test/data".into()),
            ],
        }
    }

    #[test]
    fn defaults_the_fraction_and_reads_the_rest() {
        let inv = invocation(vec![
            ("seed", step::Value::Int(-1)),
            ("stratify", step::Value::Str("diagnosis".into())),
        ]);
        let (config, paths) = plan(&inv).unwrap();
        assert_eq!(config.test_fraction, 0.25);
        assert_eq!(config.seed, u64::MAX);
        assert_eq!(config.stratify.as_deref(), Some("diagnosis"));
        assert_eq!(paths.data, "/inputs/data/data");
        assert_eq!(paths.test, "/outputs/test/data");
    }

    #[test]
    fn an_empty_stratify_column_means_none() {
        let inv = invocation(vec![
            ("seed", step::Value::Int(1)),
            ("stratify", step::Value::Str(String::new())),
        ]);
        assert_eq!(plan(&inv).unwrap().0.stratify, None);
    }

    #[test]
    fn bad_parameters_are_named() {
        let err = plan(&invocation(vec![])).err().unwrap();
        assert_eq!(err.to_string(), "parameter 'seed' is required");
        let err = plan(&invocation(vec![
            ("seed", step::Value::Int(1)),
            ("test_fraction", step::Value::Str("0.2".into())),
        ]))
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "parameter 'test_fraction' must be a float, got a string"
        );
        let err = plan(&invocation(vec![
            ("seed", step::Value::Int(1)),
            ("fraction", step::Value::Float(0.2)),
        ]))
        .err()
        .unwrap();
        assert!(err.to_string().starts_with("unknown parameter 'fraction'"));
        let err = plan(&invocation(vec![
            ("seed", step::Value::Int(1)),
            ("test_fraction", step::Value::Float(1.0)),
        ]))
        .err()
        .unwrap();
        assert_eq!(
            err.to_string(),
            "parameter 'test_fraction' must be strictly between 0 and 1, got 1"
        );
    }
}
