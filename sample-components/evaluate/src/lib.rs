//! `evaluate` typed step: scores a logistic regression model (input artifact `model`) on a
//! test table (input artifact `test`, normalised like the training table, holding the
//! model's label column). Writes output artifact `metrics` as KFP mlpipeline-metrics JSON
//! (`accuracy`, `precision`, `recall`, `f1`, `roc-auc`, `log-loss`), returns the same values
//! under the same names as outcome metrics, reports each through `host::metric`, and logs
//! the confusion matrix. Writes output artifact `predictions`, a CSV table
//! `probability,label` with one row per test row, and `mlpipeline-ui-metadata`, the ROC
//! curve and the confusion matrix as KFP's UI metadata (CSV inline). Parameters: `threshold` (float, default
//! 0.5), `negative` (string, optional: the label predicted below the threshold, by default
//! the one label of the test table's negative rows).
//!
//! This file only converts between the WIT types and `sluice_ml`, does the file IO and talks
//! to the host; the scoring is `sluice_ml::logistic` and `sluice_ml::metrics`. Parameters,
//! models and tables the step cannot use are `invalid-input`; failing to read or write a
//! file is `failed`.

// Exported only in the wasm build: native linkers reject the component-model symbol
// names, and natively this crate exists only for its unit tests (hence no dead-code
// warnings there).
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
#[cfg(target_arch = "wasm32")]
sluice_step_guest::export!(Evaluate with_types_in sluice_step_guest);

use std::fs;

use sluice_ml::csv::Csv;
use sluice_ml::logistic::Model;
use sluice_ml::{describe, kfp, step};
use sluice_step_guest::host::{self, Level};
use sluice_step_guest::{Guest, Invocation, Metric, Outcome, StepError, convert};

struct Evaluate;

const DEFAULT_THRESHOLD: f64 = 0.5;

impl Guest for Evaluate {
    fn run(inv: Invocation) -> Result<Outcome, StepError> {
        let inv = convert(inv);
        let job = plan(&inv).map_err(|err| StepError::InvalidInput(err.to_string()))?;
        host::progress(0, 3);

        let model_bytes = read(job.model)?;
        let model = Model::from_json(&model_bytes).map_err(|err| {
            StepError::InvalidInput(format!("in input 'model': {}", describe(&err)))
        })?;
        let test_bytes = read(job.test)?;
        host::progress(1, 3);

        let invalid_test = |err: &dyn std::error::Error| {
            StepError::InvalidInput(format!("in input 'test': {}", describe(err)))
        };
        let csv = Csv::parse(&test_bytes).map_err(|err| invalid_test(&err))?;
        let scored = model
            .score(&csv, job.threshold)
            .map_err(|err| invalid_test(&err))?;
        let negative = model
            .negative_label(job.negative, &scored.negatives)
            .map_err(|err| match job.negative {
                Some(_) => StepError::InvalidInput(format!("parameter 'negative': {err}")),
                None => StepError::InvalidInput(format!(
                    "in input 'test': {err}; name the label to predict with parameter 'negative'"
                )),
            })?;
        let evaluation = scored.evaluation;
        host::progress(2, 3);

        let c = evaluation.confusion;
        host::log(
            Level::Info,
            &format!(
                "confusion matrix (positive class '{}', threshold {}, {} rows): \
                 TP {}, FP {}, TN {}, FN {}",
                model.positive,
                evaluation.threshold,
                evaluation.rows,
                c.true_positives,
                c.false_positives,
                c.true_negatives,
                c.false_negatives,
            ),
        );
        let named = evaluation.named();
        let json = kfp::metrics_json(&named)
            .map_err(|err| StepError::Failed(format!("cannot express the metrics: {err}")))?;
        write(job.metrics, json.as_bytes())?;
        let predictions = model.predictions_csv(&scored.probabilities, job.threshold, &negative);
        write(job.predictions, &predictions)?;
        let roc = sluice_ml::metrics::roc_curve(&scored.probabilities, &scored.labels)
            .map_err(|err| invalid_test(&err))?;
        let ui = kfp::ui_metadata_json(&roc, &c, &model.positive, &negative);
        write(job.ui_metadata, ui.as_bytes())?;

        let mut metrics = Vec::with_capacity(named.len());
        for (name, value) in named {
            host::metric(name, value);
            metrics.push(Metric {
                name: name.to_owned(),
                value,
            });
        }
        host::progress(3, 3);
        Ok(Outcome {
            params: Vec::new(),
            metrics,
        })
    }
}

struct Job<'a> {
    threshold: f64,
    /// `None` when not given or empty.
    negative: Option<&'a str>,
    model: &'a str,
    test: &'a str,
    metrics: &'a str,
    predictions: &'a str,
    ui_metadata: &'a str,
}

/// Reads the parameter and artifact paths, rejecting anything unexpected.
fn plan(inv: &step::Invocation) -> Result<Job<'_>, step::InvocationError> {
    inv.expect_params(&["threshold", "negative"])?;
    Ok(Job {
        threshold: inv
            .fraction("threshold", true)?
            .unwrap_or(DEFAULT_THRESHOLD),
        negative: inv.string("negative")?.filter(|label| !label.is_empty()),
        model: inv.input("model")?,
        test: inv.input("test")?,
        metrics: inv.output("metrics")?,
        predictions: inv.output("predictions")?,
        ui_metadata: inv.output("mlpipeline-ui-metadata")?,
    })
}

fn read(path: &str) -> Result<Vec<u8>, StepError> {
    fs::read(path).map_err(|err| StepError::Failed(format!("cannot read {path}: {err}")))
}

fn write(path: &str, bytes: &[u8]) -> Result<(), StepError> {
    fs::write(path, bytes).map_err(|err| StepError::Failed(format!("cannot write {path}: {err}")))
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
            inputs: vec![
                ("model".into(), "/inputs/model/data".into()),
                ("test".into(), "/inputs/test/data".into()),
            ],
            outputs: vec![
                ("metrics".into(), "/outputs/metrics/data".into()),
                ("predictions".into(), "/outputs/predictions/data".into()),
                (
                    "mlpipeline-ui-metadata".into(),
                    "/outputs/mlpipeline-ui-metadata/data".into(),
                ),
            ],
        }
    }

    #[test]
    fn threshold_defaults_to_one_half() {
        let inv = invocation(vec![]);
        let job = plan(&inv).unwrap();
        assert_eq!(job.threshold, 0.5);
        assert_eq!(job.model, "/inputs/model/data");
        assert_eq!(job.metrics, "/outputs/metrics/data");
        assert_eq!(job.predictions, "/outputs/predictions/data");
        assert_eq!(job.ui_metadata, "/outputs/mlpipeline-ui-metadata/data");
        assert_eq!(job.negative, None);
        let inv = invocation(vec![("threshold", step::Value::Float(0.7))]);
        let job = plan(&inv).unwrap();
        assert_eq!(job.threshold, 0.7);
        let inv = invocation(vec![("negative", step::Value::Str("B".into()))]);
        assert_eq!(plan(&inv).unwrap().negative, Some("B"));
        let inv = invocation(vec![("negative", step::Value::Str(String::new()))]);
        assert_eq!(plan(&inv).unwrap().negative, None);
    }

    #[test]
    fn bad_thresholds_and_missing_artifacts_are_named() {
        let err = plan(&invocation(vec![("threshold", step::Value::Float(1.5))]))
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "parameter 'threshold' must be between 0 and 1, got 1.5"
        );
        let mut inv = invocation(vec![]);
        inv.inputs.pop();
        assert_eq!(
            plan(&inv).err().unwrap().to_string(),
            "input artifact 'test' was not given"
        );
        let mut inv = invocation(vec![]);
        inv.outputs.retain(|(name, _)| name != "predictions");
        assert_eq!(
            plan(&inv).err().unwrap().to_string(),
            "output artifact 'predictions' was not given"
        );
        let mut inv = invocation(vec![]);
        inv.outputs
            .retain(|(name, _)| name != "mlpipeline-ui-metadata");
        assert_eq!(
            plan(&inv).err().unwrap().to_string(),
            "output artifact 'mlpipeline-ui-metadata' was not given"
        );
    }
}
