//! The breast-cancer pipeline run through `sluice_ml` exactly as the components chain it:
//! validate, stratified split, normalise (fit on train, apply to test), train, evaluate,
//! package; then the packaged model served on the raw test rows.

use std::fs;

use sluice_ml::bundle::{Bundle, Predictor};
use sluice_ml::csv::Csv;
use sluice_ml::logistic::{self, Dataset, Model, TrainConfig};
use sluice_ml::metrics::Evaluation;
use sluice_ml::normalize::{self, FittedStats, Method};
use sluice_ml::schema::{self, Schema};
use sluice_ml::split::{SplitConfig, split_csv};
use sluice_ml::tensor::{Tensor, TensorData};

use crate::repository;

struct Run {
    train_rows: usize,
    test_rows: usize,
    /// The test rows before normalisation, as the split wrote them.
    raw_test: Vec<u8>,
    test_table: String,
    stats_json: String,
    model_json: String,
    evaluation: Evaluation,
    /// Evaluate's probability for each test row.
    probabilities: Vec<f64>,
    /// What evaluate writes to its `predictions` output.
    predictions: String,
}

fn run_pipeline() -> Run {
    let data_dir = repository().join("examples/breast-cancer/data");
    let data = fs::read(data_dir.join("breast_cancer.csv")).unwrap();
    let schema = Schema::from_json(&fs::read(data_dir.join("schema.json")).unwrap()).unwrap();

    let report = schema::validate(&Csv::parse(&data).unwrap(), &schema, 10).unwrap();
    assert_eq!((report.rows, report.columns), (569, 31));
    let counts = report.column_stats[30].counts.clone().unwrap();
    assert_eq!((counts["M"], counts["B"]), (212, 357));

    let split = split_csv(
        &data,
        &SplitConfig {
            test_fraction: 0.25,
            seed: 42,
            stratify: Some("diagnosis".to_owned()),
        },
    )
    .unwrap();

    let train_csv = Csv::parse(&split.train).unwrap();
    let stats = normalize::fit(&train_csv, &["diagnosis"], Method::Zscore).unwrap();
    // The statistics go through their JSON file between the two normalize steps, and must
    // come back exactly.
    let stats_json = stats.to_json();
    let reread = FittedStats::from_json(stats_json.as_bytes()).unwrap();
    assert_eq!(reread, stats);
    let stats = reread;
    let mut train_table = Vec::new();
    normalize::apply(&train_csv, &stats, &["diagnosis"], &mut train_table).unwrap();
    let mut test_table = Vec::new();
    let test_csv = Csv::parse(&split.test).unwrap();
    normalize::apply(&test_csv, &stats, &["diagnosis"], &mut test_table).unwrap();

    let train_csv = Csv::parse(&train_table).unwrap();
    let dataset = Dataset::from_csv(&train_csv, "diagnosis", "M", None).unwrap();
    let model = logistic::train(&dataset, "diagnosis", "M", &TrainConfig::default()).unwrap();
    let model_json = model.to_json();

    let reread = Model::from_json(model_json.as_bytes()).unwrap();
    assert_eq!(reread, model, "the model file holds the exact weights");
    let model = reread;
    let scored = model.score(&Csv::parse(&test_table).unwrap(), 0.5).unwrap();
    let negative = model.negative_label(None, &scored.negatives).unwrap();
    assert_eq!(negative, "B");
    let predictions = model.predictions_csv(&scored.probabilities, 0.5, &negative);
    Run {
        train_rows: split.train_rows,
        test_rows: split.test_rows,
        raw_test: split.test,
        test_table: String::from_utf8(test_table).unwrap(),
        stats_json,
        model_json,
        evaluation: scored.evaluation,
        probabilities: scored.probabilities,
        predictions: String::from_utf8(predictions).unwrap(),
    }
}

#[test]
fn the_model_diagnoses_the_held_out_quarter_well() {
    let run = run_pipeline();
    assert_eq!((run.train_rows, run.test_rows), (426, 143));
    let malignant = run.test_table.lines().filter(|l| l.ends_with(",M")).count();
    assert_eq!(
        malignant, 53,
        "the stratified test split keeps 212/569 malignant"
    );

    let e = &run.evaluation;
    assert_eq!(e.rows, 143);
    assert!(e.accuracy >= 0.93, "accuracy {}", e.accuracy);
    assert!(e.roc_auc >= 0.98, "roc auc {}", e.roc_auc);
    assert!(e.log_loss < 0.2, "log loss {}", e.log_loss);
    // Pinned: a change here means the split, the scaling or the training changed.
    let c = e.confusion;
    assert_eq!(
        (
            c.true_positives,
            c.false_positives,
            c.true_negatives,
            c.false_negatives
        ),
        (51, 0, 90, 2)
    );
    assert!(run.predictions.starts_with("probability,label\n"));
    assert_eq!(run.predictions.lines().count(), 1 + 143);
    let model = Model::from_json(run.model_json.as_bytes()).unwrap();
    assert!(model.converged);
    assert_eq!(model.features.len(), 30);
    assert_eq!(model.training_rows, 426);
}

#[test]
fn the_pipeline_is_reproducible_to_the_byte() {
    let a = run_pipeline();
    let b = run_pipeline();
    assert_eq!(a.test_table, b.test_table);
    assert_eq!(a.model_json, b.model_json);
    assert_eq!(a.evaluation, b.evaluation);
    assert_eq!(a.predictions, b.predictions);
}

#[test]
fn the_packaged_model_serves_what_evaluate_scored_bit_for_bit() {
    let run = run_pipeline();
    let bundle = Bundle::pack(run.model_json.as_bytes(), run.stats_json.as_bytes(), "B").unwrap();
    let predictor = Predictor::load(bundle.to_json().as_bytes()).unwrap();
    let model = Model::from_json(run.model_json.as_bytes()).unwrap();

    // A client sends the raw test rows, parsed from the original table, in the model's
    // feature order.
    let raw = Csv::parse(&run.raw_test).unwrap();
    let positions: Vec<usize> = model
        .features
        .iter()
        .map(|name| raw.position(name).unwrap())
        .collect();
    let mut values = Vec::new();
    let mut truth = Vec::new();
    let mut rows = raw.rows();
    while let Some(row) = rows.next_row() {
        let row = row.unwrap();
        for &column in &positions {
            values.push(row.number(column).unwrap());
        }
        truth.push(row.fields[raw.position("diagnosis").unwrap()].to_owned());
    }
    let outputs = predictor
        .predict(vec![Tensor {
            name: "features".to_owned(),
            shape: vec![truth.len() as u64, 30],
            data: TensorData::Fp64(values),
        }])
        .unwrap();
    let TensorData::Fp64(probabilities) = &outputs[0].data else {
        panic!("probabilities are FP64");
    };
    let TensorData::Bytes(labels) = &outputs[1].data else {
        panic!("labels are BYTES");
    };
    assert_eq!(outputs[0].shape, [143]);
    let bits = |values: &[f64]| values.iter().map(|v| v.to_bits()).collect::<Vec<u64>>();
    assert_eq!(bits(probabilities), bits(&run.probabilities));

    // The labels are evaluate's predictions, which reach its accuracy on the true labels.
    let predicted: Vec<&[u8]> = run
        .predictions
        .lines()
        .skip(1)
        .map(|line| line.split_once(',').unwrap().1.as_bytes())
        .collect();
    assert_eq!(labels, &predicted);
    let correct = labels
        .iter()
        .zip(&truth)
        .filter(|(p, t)| p.as_slice() == t.as_bytes())
        .count();
    assert_eq!(correct as f64 / 143.0, run.evaluation.accuracy);
}
