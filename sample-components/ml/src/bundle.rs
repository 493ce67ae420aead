//! Model bundles and the predictor that serves them. A bundle is one JSON document holding
//! a trained logistic model, the normalisation statistics its training table went through,
//! and the label to predict below the model's threshold (the model file names only the
//! positive label). The predictor takes raw feature rows, normalises each value with
//! [`normalize::Scaling::apply`] and scores the row with [`Model::probability`], the very
//! code the normalize and evaluate steps run, so a served probability is bit for bit the
//! one evaluate computed for the same row. No IO: callers hand in bytes and tensors.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::logistic::{Model, ModelError};
use crate::normalize::{FittedStats, NormalizeError, Scaling};
use crate::tensor::{Datatype, Signature, Tensor, TensorData, TensorSpec, shape_text};

/// The value of [`Bundle::format`] for bundles written by this module.
pub const FORMAT: &str = "sluice-logistic-bundle/v1";
/// The predictor's one input: a batch of raw feature rows.
pub const INPUT: &str = "features";
/// The predictor's output of positive-class probabilities.
pub const PROBABILITY: &str = "probability";
/// The predictor's output of predicted labels.
pub const LABEL: &str = "label";

/// What the `package` step writes and a predictor loads.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    /// Always [`FORMAT`].
    pub format: String,
    /// The model file's content.
    pub model: Model,
    /// The statistics file's content; they cover every feature of the model.
    pub normalization: FittedStats,
    /// The label predicted for a probability below the model's threshold.
    pub negative: String,
}

#[derive(Debug, Error)]
pub enum BundleError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Stats(#[from] NormalizeError),
    #[error("the bundle is not valid JSON for a model bundle")]
    Json(#[source] serde_json::Error),
    #[error("the bundle has no 'format', expected '{FORMAT}'")]
    NoFormat,
    #[error("the bundle's format is '{0}', expected '{FORMAT}'")]
    Format(String),
    #[error("the statistics do not cover the model's feature '{feature}'{more}")]
    Uncovered { feature: String, more: String },
    #[error("the model has no features")]
    NoFeatures,
    #[error("the negative label is empty")]
    EmptyNegative,
    #[error("the negative label '{0}' is the model's positive label")]
    SameLabel(String),
}

impl Bundle {
    /// Bundles a model file and a statistics file (their bytes), checking both and that
    /// the statistics cover every feature of the model.
    pub fn pack(model: &[u8], stats: &[u8], negative: &str) -> Result<Bundle, BundleError> {
        let bundle = Bundle {
            format: FORMAT.to_owned(),
            model: Model::from_json(model)?,
            normalization: FittedStats::from_json(stats)?,
            negative: negative.to_owned(),
        };
        bundle.check()?;
        Ok(bundle)
    }

    pub fn from_json(bytes: &[u8]) -> Result<Bundle, BundleError> {
        // The format first, so that another document says what it is not.
        #[derive(Deserialize)]
        struct Header {
            format: Option<String>,
        }
        let header: Header = serde_json::from_slice(bytes).map_err(BundleError::Json)?;
        match header.format {
            None => return Err(BundleError::NoFormat),
            Some(format) if format != FORMAT => return Err(BundleError::Format(format)),
            Some(_) => {}
        }
        let bundle: Bundle = serde_json::from_slice(bytes).map_err(BundleError::Json)?;
        bundle.check()?;
        Ok(bundle)
    }

    /// Pretty JSON with shortest round-trip floats; the same inputs give the same bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a bundle always serialises") + "\n"
    }

    fn check(&self) -> Result<(), BundleError> {
        if self.format != FORMAT {
            return Err(BundleError::Format(self.format.clone()));
        }
        self.model.check()?;
        if self.model.features.is_empty() {
            return Err(BundleError::NoFeatures);
        }
        let uncovered: Vec<&String> = self
            .model
            .features
            .iter()
            .filter(|feature| self.normalization.scaling(feature).is_none())
            .collect();
        if let Some(first) = uncovered.first() {
            return Err(BundleError::Uncovered {
                feature: (*first).clone(),
                more: match uncovered.len() {
                    1 => String::new(),
                    n => format!(" (nor {} more)", n - 1),
                },
            });
        }
        if self.negative.is_empty() {
            return Err(BundleError::EmptyNegative);
        }
        if self.negative == self.model.positive {
            return Err(BundleError::SameLabel(self.negative.clone()));
        }
        Ok(())
    }
}

/// A request the predictor cannot answer: always the client's to fix.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InputError {
    #[error("expected one input, '{INPUT}', got {0}")]
    Inputs(String),
    #[error("input '{INPUT}' holds {0} values; expected FP64 (or FP32, INT64, INT32)")]
    Datatype(Datatype),
    #[error("input '{INPUT}' has shape {found}; expected [-1, {width}]")]
    Shape { found: String, width: usize },
    #[error("input '{INPUT}' has shape {shape}, which holds {expected} values, but it has {found}")]
    Length {
        shape: String,
        expected: String,
        found: usize,
    },
    #[error(
        "input '{INPUT}' element [{row}, {column}] (feature '{feature}') is {value}; expected a finite number"
    )]
    NotFinite {
        row: usize,
        column: usize,
        feature: String,
        value: f64,
    },
    /// Finite features so far outside the training data's range that the score
    /// overflows: no probability can be given for the row.
    #[error(
        "input '{INPUT}' row {row} is too far outside the range the model was trained on: its score is not a finite number"
    )]
    OutOfRange { row: usize },
}

/// A loaded bundle, ready to predict.
#[derive(Debug, Clone, PartialEq)]
pub struct Predictor {
    model: Model,
    /// One per model feature, in the model's order.
    scalings: Vec<Scaling>,
    negative: String,
}

impl Predictor {
    /// Loads a bundle from its bytes.
    pub fn load(bytes: &[u8]) -> Result<Predictor, BundleError> {
        Bundle::from_json(bytes).map(Predictor::new)
    }

    /// A predictor for a bundle that [`Bundle::pack`] or [`Bundle::from_json`] made.
    pub fn new(bundle: Bundle) -> Predictor {
        let scalings = bundle
            .model
            .features
            .iter()
            .map(|feature| {
                bundle
                    .normalization
                    .scaling(feature)
                    .expect("a checked bundle's statistics cover every feature")
            })
            .collect();
        Predictor {
            model: bundle.model,
            scalings,
            negative: bundle.negative,
        }
    }

    /// The number of features a row holds (at least 1).
    pub fn width(&self) -> usize {
        self.model.features.len()
    }

    /// Input `features`: FP64 `[-1, width]`, raw values in the model's feature order.
    /// Outputs `probability` (FP64 `[-1]`) and `label` (BYTES `[-1]`).
    pub fn signature(&self) -> Signature {
        Signature {
            inputs: vec![TensorSpec {
                name: INPUT.to_owned(),
                datatype: Datatype::Fp64,
                shape: vec![-1, self.width() as i64],
            }],
            outputs: vec![
                TensorSpec {
                    name: PROBABILITY.to_owned(),
                    datatype: Datatype::Fp64,
                    shape: vec![-1],
                },
                TensorSpec {
                    name: LABEL.to_owned(),
                    datatype: Datatype::Bytes,
                    shape: vec![-1],
                },
            ],
        }
    }

    /// The positive-class probability of one row of raw feature values (one per feature,
    /// finite): normalised as the normalize step does, scored as evaluate does.
    pub fn probability(&self, row: &[f64]) -> f64 {
        let mut normalised = Vec::with_capacity(row.len());
        self.score(row, &mut normalised)
    }

    fn score(&self, row: &[f64], normalised: &mut Vec<f64>) -> f64 {
        normalised.clear();
        normalised.extend(
            row.iter()
                .zip(&self.scalings)
                .map(|(&value, scaling)| scaling.apply(value)),
        );
        self.model.probability(normalised)
    }

    /// The label predicted for `probability`: the model's positive label from its
    /// threshold on, the bundle's negative label below it.
    pub fn label(&self, probability: f64) -> &str {
        self.model
            .predicted(probability, self.model.threshold, &self.negative)
    }

    /// Predicts a batch: `inputs` must be exactly the tensor `features`, shaped
    /// `[rows, width]` (or `[width]` for one row) with numeric, finite values. Returns
    /// `probability` and `label`, each shaped `[rows]`.
    pub fn predict(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, InputError> {
        let input = match <[Tensor; 1]>::try_from(inputs) {
            Ok([input]) if input.name == INPUT => input,
            Ok([other]) => return Err(InputError::Inputs(format!("'{}'", other.name))),
            Err(inputs) if inputs.is_empty() => {
                return Err(InputError::Inputs("none".to_owned()));
            }
            Err(inputs) => {
                let names: Vec<String> = inputs.iter().map(|t| format!("'{}'", t.name)).collect();
                return Err(InputError::Inputs(names.join(", ")));
            }
        };
        let width = self.width();
        let rows = match input.shape.as_slice() {
            [columns] if *columns == width as u64 => 1,
            [rows, columns] if *columns == width as u64 => *rows,
            _ => {
                return Err(InputError::Shape {
                    found: shape_text(&input.shape),
                    width,
                });
            }
        };
        let found = input.data.len();
        let expected = rows.checked_mul(width as u64);
        if expected != Some(found as u64) {
            return Err(InputError::Length {
                shape: shape_text(&input.shape),
                expected: match expected {
                    Some(count) => count.to_string(),
                    None => "more".to_owned(),
                },
                found,
            });
        }
        let datatype = input.data.datatype();
        let values = input
            .data
            .into_f64()
            .ok_or(InputError::Datatype(datatype))?;
        let rows = found / width;
        let mut probabilities = Vec::with_capacity(rows);
        let mut labels = Vec::with_capacity(rows);
        let mut normalised = Vec::with_capacity(width);
        for (row, chunk) in values.chunks_exact(width).enumerate() {
            if let Some(column) = chunk.iter().position(|value| !value.is_finite()) {
                return Err(InputError::NotFinite {
                    row,
                    column,
                    feature: self.model.features[column].clone(),
                    value: chunk[column],
                });
            }
            let probability = self.score(chunk, &mut normalised);
            if !probability.is_finite() {
                return Err(InputError::OutOfRange { row });
            }
            probabilities.push(probability);
            labels.push(self.label(probability).as_bytes().to_vec());
        }
        Ok(vec![
            Tensor {
                name: PROBABILITY.to_owned(),
                shape: vec![rows as u64],
                data: TensorData::Fp64(probabilities),
            },
            Tensor {
                name: LABEL.to_owned(),
                shape: vec![rows as u64],
                data: TensorData::Bytes(labels),
            },
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logistic::{KIND, sigmoid};
    use crate::normalize::{ColumnStats, Method};

    fn model() -> Model {
        Model {
            kind: KIND.to_owned(),
            features: vec!["a".to_owned(), "b".to_owned()],
            weights: vec![1.0, -1.0],
            bias: 0.0,
            label: "diagnosis".to_owned(),
            positive: "M".to_owned(),
            threshold: 0.5,
            l2: 0.01,
            iterations: 3,
            converged: true,
            training_loss: 0.25,
            training_rows: 4,
        }
    }

    fn column(name: &str, mean: f64, std: f64) -> ColumnStats {
        ColumnStats {
            name: name.to_owned(),
            mean,
            std,
            min: mean - std,
            max: mean + std,
        }
    }

    /// `a` is centred on 10 and scaled by 2; `b` (listed first) is left as it is.
    fn stats() -> FittedStats {
        FittedStats {
            method: Method::Zscore,
            rows: 4,
            excluded: vec!["diagnosis".to_owned()],
            columns: vec![column("b", 0.0, 1.0), column("a", 10.0, 2.0)],
        }
    }

    fn pack(negative: &str) -> Result<Bundle, BundleError> {
        Bundle::pack(
            model().to_json().as_bytes(),
            stats().to_json().as_bytes(),
            negative,
        )
    }

    fn predictor() -> Predictor {
        Predictor::new(pack("B").unwrap())
    }

    fn features(shape: &[u64], data: TensorData) -> Vec<Tensor> {
        vec![Tensor {
            name: INPUT.to_owned(),
            shape: shape.to_vec(),
            data,
        }]
    }

    fn predict_err(inputs: Vec<Tensor>) -> String {
        predictor().predict(inputs).unwrap_err().to_string()
    }

    #[test]
    fn a_bundle_holds_the_model_and_statistics_files_as_they_are() {
        let bundle = pack("B").unwrap();
        let json: serde_json::Value = serde_json::from_str(&bundle.to_json()).unwrap();
        let model: serde_json::Value = serde_json::from_str(&model().to_json()).unwrap();
        let stats: serde_json::Value = serde_json::from_str(&stats().to_json()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "format": "sluice-logistic-bundle/v1",
                "model": model,
                "normalization": stats,
                "negative": "B",
            })
        );
        assert_eq!(
            Bundle::from_json(bundle.to_json().as_bytes()).unwrap(),
            bundle
        );
    }

    #[test]
    fn packing_names_what_is_wrong() {
        let err = |model: &str, stats: &str, negative: &str| {
            crate::describe(
                &Bundle::pack(model.as_bytes(), stats.as_bytes(), negative).unwrap_err(),
            )
        };
        let model_json = model().to_json();
        let stats_json = stats().to_json();
        assert!(
            err("{", &stats_json, "B").starts_with("the model is not valid JSON for a model: "),
            "{}",
            err("{", &stats_json, "B")
        );
        assert!(
            err(&model_json, "[]", "B")
                .starts_with("the statistics are not valid JSON for fitted statistics: ")
        );
        let mut narrow = stats();
        narrow.columns.retain(|c| c.name == "b");
        assert_eq!(
            err(&model_json, &narrow.to_json(), "B"),
            "the statistics do not cover the model's feature 'a'"
        );
        narrow.columns.clear();
        assert_eq!(
            err(&model_json, &narrow.to_json(), "B"),
            "the statistics do not cover the model's feature 'a' (nor 1 more)"
        );
        assert_eq!(
            err(&model_json, &stats_json, ""),
            "the negative label is empty"
        );
        assert_eq!(
            err(&model_json, &stats_json, "M"),
            "the negative label 'M' is the model's positive label"
        );
    }

    #[test]
    fn loading_rejects_other_documents() {
        let err = |json: &str| crate::describe(&Predictor::load(json.as_bytes()).unwrap_err());
        assert_eq!(
            err(&model().to_json()),
            "the bundle has no 'format', expected 'sluice-logistic-bundle/v1'"
        );
        assert_eq!(
            err(r#"{"format": "sluice-logistic-bundle/v2"}"#),
            "the bundle's format is 'sluice-logistic-bundle/v2', expected 'sluice-logistic-bundle/v1'"
        );
        assert!(err("not json").starts_with("the bundle is not valid JSON for a model bundle: "));
        let mut bundle = pack("B").unwrap();
        bundle.model.weights.pop();
        assert_eq!(
            err(&bundle.to_json()),
            "the model has 1 weights for 2 features"
        );
    }

    #[test]
    fn the_signature_takes_raw_rows_and_gives_probability_and_label() {
        let signature = predictor().signature();
        assert_eq!(
            signature.inputs,
            [TensorSpec {
                name: "features".to_owned(),
                datatype: Datatype::Fp64,
                shape: vec![-1, 2],
            }]
        );
        let outputs: Vec<(&str, Datatype, &[i64])> = signature
            .outputs
            .iter()
            .map(|spec| (spec.name.as_str(), spec.datatype, spec.shape.as_slice()))
            .collect();
        assert_eq!(
            outputs,
            [
                ("probability", Datatype::Fp64, &[-1][..]),
                ("label", Datatype::Bytes, &[-1][..])
            ]
        );
    }

    #[test]
    fn predicts_normalised_rows_in_the_models_feature_order() {
        // Row 1: a = 12 -> 1, b = 1 -> 1: log-odds 0, probability 0.5, positive.
        // Row 2: a = 10 -> 0, b = -2 -> -2: log-odds 2.
        // Row 3: a = 4 -> -3, b = 0: log-odds -3.
        let out = predictor()
            .predict(features(
                &[3, 2],
                TensorData::Fp64(vec![12.0, 1.0, 10.0, -2.0, 4.0, 0.0]),
            ))
            .unwrap();
        assert_eq!(
            out,
            [
                Tensor {
                    name: "probability".to_owned(),
                    shape: vec![3],
                    data: TensorData::Fp64(vec![0.5, sigmoid(2.0), sigmoid(-3.0)]),
                },
                Tensor {
                    name: "label".to_owned(),
                    shape: vec![3],
                    data: TensorData::Bytes(vec![b"M".to_vec(), b"M".to_vec(), b"B".to_vec()]),
                },
            ]
        );
        assert_eq!(predictor().probability(&[10.0, -2.0]), sigmoid(2.0));
    }

    #[test]
    fn accepts_one_row_other_numeric_types_and_empty_batches() {
        let p = predictor();
        let one = p
            .predict(features(&[2], TensorData::Fp64(vec![4.0, 0.0])))
            .unwrap();
        assert_eq!(one[0].shape, [1]);
        assert_eq!(one[1].data, TensorData::Bytes(vec![b"B".to_vec()]));
        for data in [
            TensorData::Fp32(vec![12.0, 1.0]),
            TensorData::Int64(vec![12, 1]),
            TensorData::Int32(vec![12, 1]),
        ] {
            let out = p.predict(features(&[1, 2], data)).unwrap();
            assert_eq!(out[0].data, TensorData::Fp64(vec![0.5]));
        }
        let none = p
            .predict(features(&[0, 2], TensorData::Fp64(vec![])))
            .unwrap();
        assert_eq!(
            (none[0].shape.as_slice(), none[1].shape.as_slice()),
            (&[0][..], &[0][..])
        );
    }

    #[test]
    fn rejects_requests_naming_what_was_expected() {
        assert_eq!(
            predict_err(vec![]),
            "expected one input, 'features', got none"
        );
        let mut renamed = features(&[1, 2], TensorData::Fp64(vec![1.0, 2.0]));
        renamed[0].name = "x".to_owned();
        assert_eq!(
            predict_err(renamed.clone()),
            "expected one input, 'features', got 'x'"
        );
        let mut two = features(&[1, 2], TensorData::Fp64(vec![1.0, 2.0]));
        two.extend(renamed);
        assert_eq!(
            predict_err(two),
            "expected one input, 'features', got 'features', 'x'"
        );
        assert_eq!(
            predict_err(features(&[2, 1], TensorData::Fp64(vec![1.0, 2.0]))),
            "input 'features' has shape [2, 1]; expected [-1, 2]"
        );
        assert_eq!(
            predict_err(features(&[1, 1, 2], TensorData::Fp64(vec![1.0, 2.0]))),
            "input 'features' has shape [1, 1, 2]; expected [-1, 2]"
        );
        assert_eq!(
            predict_err(features(&[2, 2], TensorData::Fp64(vec![1.0, 2.0]))),
            "input 'features' has shape [2, 2], which holds 4 values, but it has 2"
        );
        assert_eq!(
            predict_err(features(&[u64::MAX, 2], TensorData::Fp64(vec![1.0, 2.0]))),
            format!(
                "input 'features' has shape [{}, 2], which holds more values, but it has 2",
                u64::MAX
            )
        );
        assert_eq!(
            predict_err(features(
                &[1, 2],
                TensorData::Bytes(vec![b"1".to_vec(), b"2".to_vec()])
            )),
            "input 'features' holds BYTES values; expected FP64 (or FP32, INT64, INT32)"
        );
        assert_eq!(
            predict_err(features(
                &[2, 2],
                TensorData::Fp64(vec![1.0, 2.0, 3.0, f64::NAN])
            )),
            "input 'features' element [1, 1] (feature 'b') is NaN; expected a finite number"
        );
        // Finite features whose terms overflow to +inf and -inf: no silent NaN.
        let steep = Model {
            weights: vec![10.0, -10.0],
            ..model()
        };
        let flat = FittedStats {
            columns: vec![column("a", 0.0, 1.0), column("b", 0.0, 1.0)],
            ..stats()
        };
        let bundle =
            Bundle::pack(steep.to_json().as_bytes(), flat.to_json().as_bytes(), "B").unwrap();
        let err = Predictor::new(bundle)
            .predict(features(
                &[2, 2],
                TensorData::Fp64(vec![1.0, 2.0, 1e308, 1e308]),
            ))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "input 'features' row 1 is too far outside the range the model was trained on: its score is not a finite number"
        );
    }
}
