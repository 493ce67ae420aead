//! Binary logistic regression: turning a table into a feature matrix and labels, training by
//! full-batch Newton's method with L2 regularisation, and the model file.
//!
//! Training minimises `mean(log loss) + l2 / 2 * |w|^2` (the bias is not penalised) and is
//! deterministic to the bit on every target: sums run over rows in file order, `exp` and
//! `log1p` come from `libm`, the Newton system is solved by a fixed Cholesky factorisation,
//! and nothing depends on threads or hashing. Features are expected to be standardised
//! upstream (the `normalize` step); this module does no IO.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::csv::{CellError, Csv, CsvError, push_number};
use crate::metrics::{self, Evaluation, MetricsError};

/// The value of `Model::kind` for models written by this module.
pub const KIND: &str = "logistic-regression";

/// A feature matrix (row-major) with binary labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub features: Vec<String>,
    values: Vec<f64>,
    pub labels: Vec<bool>,
    /// The label values of the negative rows, each once, in order of first appearance.
    pub negatives: Vec<String>,
}

#[derive(Debug, Error)]
pub enum DataError {
    #[error(transparent)]
    Csv(#[from] CsvError),
    #[error(transparent)]
    Cell(#[from] CellError),
    #[error("label column '{0}' is not in the header")]
    MissingLabel(String),
    #[error("feature column '{0}' is not in the header")]
    MissingFeature(String),
    #[error("the table has no feature columns besides the label '{0}'")]
    NoFeatures(String),
}

impl Dataset {
    /// Reads `label` (rows whose label equals `positive` are positive, all others negative)
    /// and the numeric `features`; when `features` is `None`, every other column is one, in
    /// file order.
    pub fn from_csv(
        csv: &Csv,
        label: &str,
        positive: &str,
        features: Option<&[String]>,
    ) -> Result<Self, DataError> {
        let label_column = csv
            .position(label)
            .ok_or_else(|| DataError::MissingLabel(label.to_owned()))?;
        let features: Vec<String> = match features {
            Some(names) => names.to_vec(),
            None => csv
                .columns()
                .iter()
                .filter(|name| **name != label)
                .map(|name| (*name).to_owned())
                .collect(),
        };
        if features.is_empty() {
            return Err(DataError::NoFeatures(label.to_owned()));
        }
        let positions = features
            .iter()
            .map(|name| {
                csv.position(name)
                    .ok_or_else(|| DataError::MissingFeature(name.clone()))
            })
            .collect::<Result<Vec<usize>, DataError>>()?;
        let mut values = Vec::new();
        let mut labels = Vec::new();
        let mut negatives: Vec<String> = Vec::new();
        let mut rows = csv.rows();
        while let Some(row) = rows.next_row() {
            let row = row?;
            let class = row.fields[label_column];
            if class.is_empty() {
                return Err(row.error(label_column, "the label is empty").into());
            }
            labels.push(class == positive);
            if class != positive && !negatives.iter().any(|seen| seen == class) {
                negatives.push(class.to_owned());
            }
            for &column in &positions {
                values.push(row.number(column)?);
            }
        }
        Ok(Dataset {
            features,
            values,
            labels,
            negatives,
        })
    }

    /// Builds a dataset from rows of feature values (with no negative label values).
    pub fn from_rows(features: Vec<String>, rows: &[Vec<f64>], labels: Vec<bool>) -> Self {
        assert_eq!(rows.len(), labels.len(), "one label per row");
        assert!(
            rows.iter().all(|row| row.len() == features.len()),
            "one value per feature in every row"
        );
        Dataset {
            features,
            values: rows.concat(),
            labels,
            negatives: Vec::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.labels.len()
    }

    /// The feature values of row `index` (0-based).
    pub fn row(&self, index: usize) -> &[f64] {
        let width = self.features.len();
        &self.values[index * width..(index + 1) * width]
    }
}

/// Training settings.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainConfig {
    /// L2 penalty on the weights (not the bias), relative to the mean log loss.
    pub l2: f64,
    /// Most Newton steps to take.
    pub max_iter: usize,
    /// Training stops once no gradient component exceeds this.
    pub tolerance: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            l2: 0.01,
            max_iter: 100,
            tolerance: 1e-8,
        }
    }
}

/// A trained model, as stored in the model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Always [`KIND`].
    pub kind: String,
    /// Feature columns in the order of `weights`.
    pub features: Vec<String>,
    pub weights: Vec<f64>,
    pub bias: f64,
    /// The label column of the training table.
    pub label: String,
    /// The label value predicted by a probability of at least `threshold`.
    pub positive: String,
    pub threshold: f64,
    pub l2: f64,
    /// Newton steps taken.
    pub iterations: usize,
    /// Whether the gradient fell below the tolerance within the allowed steps.
    pub converged: bool,
    /// Mean log loss on the training rows (without the penalty).
    pub training_loss: f64,
    pub training_rows: usize,
}

#[derive(Debug, Error)]
pub enum TrainError {
    #[error("l2 must be a finite number of at least 0, got {0}")]
    L2(f64),
    #[error("max-iter must be at least 1")]
    MaxIter,
    #[error("tolerance must be a finite number above 0, got {0}")]
    Tolerance(f64),
    #[error("the training table has no rows")]
    NoRows,
    #[error("no training row has the positive label '{0}'")]
    NoPositives(String),
    #[error("every training row has the positive label '{0}'; both classes are needed")]
    NoNegatives(String),
}

#[derive(Debug, Error)]
pub enum ModelError {
    #[error("the model is not valid JSON for a model")]
    Json(#[source] serde_json::Error),
    #[error("the model is of kind '{0}', expected '{KIND}'")]
    Kind(String),
    #[error("the model has {weights} weights for {features} features")]
    Shape { weights: usize, features: usize },
}

impl Model {
    pub fn from_json(bytes: &[u8]) -> Result<Self, ModelError> {
        let model: Model = serde_json::from_slice(bytes).map_err(ModelError::Json)?;
        model.check()?;
        Ok(model)
    }

    /// The checks [`Model::from_json`] makes beyond the JSON's shape: the kind, and one
    /// weight per feature.
    pub fn check(&self) -> Result<(), ModelError> {
        if self.kind != KIND {
            return Err(ModelError::Kind(self.kind.clone()));
        }
        if self.weights.len() != self.features.len() {
            return Err(ModelError::Shape {
                weights: self.weights.len(),
                features: self.features.len(),
            });
        }
        Ok(())
    }

    /// Pretty JSON with shortest round-trip floats; the same model gives the same bytes.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a model always serialises") + "\n"
    }

    /// The log-odds of the positive class for one row of feature values.
    pub fn decision(&self, row: &[f64]) -> f64 {
        self.weights
            .iter()
            .zip(row)
            .fold(self.bias, |sum, (w, x)| sum + w * x)
    }

    /// The probability of the positive class.
    pub fn probability(&self, row: &[f64]) -> f64 {
        sigmoid(self.decision(row))
    }

    /// The probability of the positive class for every row of `data`.
    pub fn probabilities(&self, data: &Dataset) -> Vec<f64> {
        (0..data.rows())
            .map(|i| self.probability(data.row(i)))
            .collect()
    }

    /// Scores the model on a table holding its feature columns and its label column.
    pub fn evaluate(&self, csv: &Csv, threshold: f64) -> Result<Evaluation, EvaluateError> {
        Ok(self.score(csv, threshold)?.evaluation)
    }

    /// [`Model::evaluate`], keeping each row's probability and the table's negative label
    /// values.
    pub fn score(&self, csv: &Csv, threshold: f64) -> Result<Scored, EvaluateError> {
        let data = Dataset::from_csv(csv, &self.label, &self.positive, Some(&self.features))?;
        let probabilities = self.probabilities(&data);
        let evaluation = metrics::evaluate(&probabilities, &data.labels, threshold)?;
        Ok(Scored {
            evaluation,
            probabilities,
            labels: data.labels,
            negatives: data.negatives,
        })
    }

    /// The label predicted for `probability`: [`Model::positive`] from `threshold` on,
    /// `negative` below it.
    pub fn predicted<'a>(&'a self, probability: f64, threshold: f64, negative: &'a str) -> &'a str {
        if probability >= threshold {
            &self.positive
        } else {
            negative
        }
    }

    /// A CSV table `probability,label` with one row per probability, in order: the
    /// probability as the shortest text that reads back exactly, and the predicted label.
    pub fn predictions_csv(
        &self,
        probabilities: &[f64],
        threshold: f64,
        negative: &str,
    ) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + probabilities.len() * 24);
        out.extend_from_slice(b"probability,label\n");
        for &probability in probabilities {
            push_number(&mut out, probability);
            out.push(b',');
            out.extend_from_slice(self.predicted(probability, threshold, negative).as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The label to predict below the threshold: `given` when there is one (not empty),
    /// else the one label value of the negative rows seen (`Scored::negatives`).
    pub fn negative_label(
        &self,
        given: Option<&str>,
        seen: &[String],
    ) -> Result<String, LabelError> {
        match given.filter(|label| !label.is_empty()) {
            Some(label) if label == self.positive => Err(LabelError::Positive(label.to_owned())),
            Some(label) if label.contains([',', '"', '\n', '\r']) => {
                Err(LabelError::NotCsv(label.to_owned()))
            }
            Some(label) => Ok(label.to_owned()),
            None => match seen {
                [one] => Ok(one.clone()),
                [] => Err(LabelError::NoneSeen(self.positive.clone())),
                several => Err(LabelError::Several(
                    several
                        .iter()
                        .map(|label| format!("'{label}'"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )),
            },
        }
    }
}

/// A model's scores on a table.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    pub evaluation: Evaluation,
    /// The probability of the positive class, one per row, in table order.
    pub probabilities: Vec<f64>,
    /// Whether each row is positive, in table order.
    pub labels: Vec<bool>,
    /// The label values of the negative rows, each once, in order of first appearance.
    pub negatives: Vec<String>,
}

/// No single label to give negative predictions.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LabelError {
    #[error("the negative label '{0}' is the positive label")]
    Positive(String),
    #[error(
        "the negative label '{0}' cannot go into a CSV field (it holds a comma, quote or line break)"
    )]
    NotCsv(String),
    #[error("no row is negative, so the negative label is unknown (every row is '{0}')")]
    NoneSeen(String),
    #[error("the negative rows hold several labels ({0})")]
    Several(String),
}

#[derive(Debug, Error)]
pub enum EvaluateError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Trains a model on `data`; `label` and `positive` are recorded in the model.
pub fn train(
    data: &Dataset,
    label: &str,
    positive: &str,
    config: &TrainConfig,
) -> Result<Model, TrainError> {
    if !(config.l2.is_finite() && config.l2 >= 0.0) {
        return Err(TrainError::L2(config.l2));
    }
    if config.max_iter == 0 {
        return Err(TrainError::MaxIter);
    }
    if !(config.tolerance.is_finite() && config.tolerance > 0.0) {
        return Err(TrainError::Tolerance(config.tolerance));
    }
    if data.rows() == 0 {
        return Err(TrainError::NoRows);
    }
    if !data.labels.contains(&true) {
        return Err(TrainError::NoPositives(positive.to_owned()));
    }
    if !data.labels.contains(&false) {
        return Err(TrainError::NoNegatives(positive.to_owned()));
    }

    let width = data.features.len();
    // Parameters: the weights, then the bias.
    let mut theta = vec![0.0; width + 1];
    let mut iterations = 0;
    let mut converged = false;
    loop {
        let (gradient, hessian) = derivatives(data, &theta, config.l2);
        let largest = gradient.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        if largest <= config.tolerance {
            converged = true;
            break;
        }
        if iterations == config.max_iter {
            break;
        }
        let step = solve_damped(hessian, &gradient);
        let current = objective(data, &theta, config.l2);
        let slope: f64 = gradient.iter().zip(&step).map(|(g, s)| g * s).sum();
        // Backtracking line search on the Newton direction (Armijo condition).
        let mut length = 1.0;
        let mut accepted = None;
        while length > 1e-10 {
            let candidate: Vec<f64> = theta
                .iter()
                .zip(&step)
                .map(|(t, s)| t - length * s)
                .collect();
            if objective(data, &candidate, config.l2) <= current - 1e-4 * length * slope {
                accepted = Some(candidate);
                break;
            }
            length *= 0.5;
        }
        iterations += 1;
        match accepted {
            Some(candidate) => theta = candidate,
            // No step lowers the objective: it is as low as floating point can tell.
            None => break,
        }
    }

    let bias = theta.pop().expect("theta holds the bias");
    let training_loss = mean_log_loss(data, &theta, bias);
    Ok(Model {
        kind: KIND.to_owned(),
        features: data.features.clone(),
        weights: theta,
        bias,
        label: label.to_owned(),
        positive: positive.to_owned(),
        threshold: 0.5,
        l2: config.l2,
        iterations,
        converged,
        training_loss,
        training_rows: data.rows(),
    })
}

/// `1 / (1 + e^-z)`, without overflow for large `|z|`.
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + libm::exp(-z))
    } else {
        let e = libm::exp(z);
        e / (1.0 + e)
    }
}

/// `ln(1 + e^z)`, without overflow for large `|z|`.
fn softplus(z: f64) -> f64 {
    z.max(0.0) + libm::log1p(libm::exp(-z.abs()))
}

/// Log loss of one row with log-odds `z`: `-ln p` for a positive, `-ln(1 - p)` otherwise.
fn row_loss(z: f64, positive: bool) -> f64 {
    if positive { softplus(-z) } else { softplus(z) }
}

fn decision(row: &[f64], weights: &[f64], bias: f64) -> f64 {
    weights
        .iter()
        .zip(row)
        .fold(bias, |sum, (w, x)| sum + w * x)
}

fn mean_log_loss(data: &Dataset, weights: &[f64], bias: f64) -> f64 {
    let total: f64 = (0..data.rows())
        .map(|i| row_loss(decision(data.row(i), weights, bias), data.labels[i]))
        .sum();
    total / data.rows() as f64
}

fn objective(data: &Dataset, theta: &[f64], l2: f64) -> f64 {
    let (weights, bias) = theta.split_at(theta.len() - 1);
    let penalty: f64 = weights.iter().map(|w| w * w).sum();
    mean_log_loss(data, weights, bias[0]) + 0.5 * l2 * penalty
}

/// Gradient and Hessian (row-major, full) of the objective at `theta`.
fn derivatives(data: &Dataset, theta: &[f64], l2: f64) -> (Vec<f64>, Vec<f64>) {
    let size = theta.len();
    let (weights, bias) = theta.split_at(size - 1);
    let mut gradient = vec![0.0; size];
    let mut hessian = vec![0.0; size * size];
    let mut extended = vec![1.0; size];
    for i in 0..data.rows() {
        let row = data.row(i);
        extended[..size - 1].copy_from_slice(row);
        let p = sigmoid(decision(row, weights, bias[0]));
        let residual = p - if data.labels[i] { 1.0 } else { 0.0 };
        let curvature = p * (1.0 - p);
        for a in 0..size {
            gradient[a] += residual * extended[a];
            let scaled = curvature * extended[a];
            for b in 0..=a {
                hessian[a * size + b] += scaled * extended[b];
            }
        }
    }
    let n = data.rows() as f64;
    for a in 0..size {
        gradient[a] /= n;
        for b in 0..=a {
            hessian[a * size + b] /= n;
            hessian[b * size + a] = hessian[a * size + b];
        }
    }
    for a in 0..size - 1 {
        gradient[a] += l2 * weights[a];
        hessian[a * size + a] += l2;
    }
    (gradient, hessian)
}

/// Solves `H x = g` for a symmetric positive semi-definite `H`, adding a growing multiple of
/// the identity until the Cholesky factorisation succeeds.
fn solve_damped(hessian: Vec<f64>, gradient: &[f64]) -> Vec<f64> {
    let size = gradient.len();
    let mut damping = 0.0;
    loop {
        let mut matrix = hessian.clone();
        for a in 0..size {
            matrix[a * size + a] += damping;
        }
        if let Some(solution) = cholesky_solve(matrix, gradient) {
            return solution;
        }
        damping = if damping == 0.0 {
            1e-10
        } else {
            damping * 10.0
        };
    }
}

/// Solves `A x = b` by Cholesky factorisation; `None` if `A` is not positive definite.
fn cholesky_solve(mut a: Vec<f64>, b: &[f64]) -> Option<Vec<f64>> {
    let n = b.len();
    // Lower triangle of `a` becomes L with A = L L^T.
    for j in 0..n {
        let mut diagonal = a[j * n + j];
        for k in 0..j {
            diagonal -= a[j * n + k] * a[j * n + k];
        }
        if !(diagonal > 0.0 && diagonal.is_finite()) {
            return None;
        }
        let root = libm::sqrt(diagonal);
        a[j * n + j] = root;
        for i in j + 1..n {
            let mut value = a[i * n + j];
            for k in 0..j {
                value -= a[i * n + k] * a[j * n + k];
            }
            a[i * n + j] = value / root;
        }
    }
    let mut y = vec![0.0; n];
    for i in 0..n {
        let mut value = b[i];
        for k in 0..i {
            value -= a[i * n + k] * y[k];
        }
        y[i] = value / a[i * n + i];
    }
    let mut x = vec![0.0; n];
    for i in (0..n).rev() {
        let mut value = y[i];
        for k in i + 1..n {
            value -= a[k * n + i] * x[k];
        }
        x[i] = value / a[i * n + i];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(count: usize) -> Vec<String> {
        (0..count).map(|i| format!("x{i}")).collect()
    }

    /// Two overlapping classes along one feature, with a constant second feature.
    fn overlapping() -> Dataset {
        let xs = [-2.0, -1.5, -1.0, -0.5, 0.2, -0.2, 0.5, 1.0, 1.5, 2.0];
        let labels = vec![
            false, false, false, false, false, true, true, true, true, true,
        ];
        let rows: Vec<Vec<f64>> = xs.iter().map(|x| vec![*x, 0.0]).collect();
        Dataset::from_rows(names(2), &rows, labels)
    }

    #[test]
    fn sigmoid_and_softplus_are_stable_at_the_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert!((sigmoid(2.0) + sigmoid(-2.0) - 1.0).abs() < 1e-15);
        assert_eq!(softplus(1000.0), 1000.0);
        assert_eq!(softplus(-1000.0), 0.0);
        assert!((softplus(0.0) - core::f64::consts::LN_2).abs() < 1e-15);
    }

    #[test]
    fn cholesky_solves_a_known_system() {
        // [[4, 2], [2, 3]] x = [2, 1]  =>  x = [0.5, 0].
        let x = cholesky_solve(vec![4.0, 2.0, 2.0, 3.0], &[2.0, 1.0]).unwrap();
        assert!((x[0] - 0.5).abs() < 1e-15 && x[1].abs() < 1e-15, "{x:?}");
        assert!(cholesky_solve(vec![1.0, 2.0, 2.0, 1.0], &[1.0, 1.0]).is_none());
    }

    #[test]
    fn newton_reaches_a_stationary_point_of_the_objective() {
        let data = overlapping();
        let config = TrainConfig {
            l2: 0.1,
            ..TrainConfig::default()
        };
        let model = train(&data, "y", "1", &config).unwrap();
        assert!(model.converged);
        assert!(model.iterations < 20, "{}", model.iterations);
        assert!(model.weights[0] > 0.0);
        // The constant feature carries no signal and is penalised to zero.
        assert_eq!(model.weights[1], 0.0);
        let mut theta = model.weights.clone();
        theta.push(model.bias);
        let (gradient, _) = derivatives(&data, &theta, 0.1);
        assert!(gradient.iter().all(|g| g.abs() <= 1e-8), "{gradient:?}");
        // Moving any parameter a little makes the objective worse.
        let best = objective(&data, &theta, 0.1);
        for i in 0..theta.len() {
            for delta in [-1e-3, 1e-3] {
                let mut moved = theta.clone();
                moved[i] += delta;
                assert!(objective(&data, &moved, 0.1) >= best);
            }
        }
    }

    #[test]
    fn the_fit_is_reproducible_to_the_bit() {
        let data = overlapping();
        let a = train(&data, "y", "1", &TrainConfig::default()).unwrap();
        let b = train(&data, "y", "1", &TrainConfig::default()).unwrap();
        assert_eq!(a.to_json(), b.to_json());
        // The classes mirror each other about 0, so the bias is 0.
        assert!(a.bias.abs() < 1e-9, "{}", a.bias);
        // Pinned to the bit: the same value must come out of every build target.
        assert_eq!(a.training_loss, 0.2682850189064724);
        assert_eq!(a.training_loss.to_bits(), 4598504613162611022);
    }

    #[test]
    fn a_stronger_penalty_shrinks_the_weights() {
        let data = overlapping();
        let weak = train(&data, "y", "1", &TrainConfig::default()).unwrap();
        let strong = train(
            &data,
            "y",
            "1",
            &TrainConfig {
                l2: 1.0,
                ..TrainConfig::default()
            },
        )
        .unwrap();
        assert!(strong.weights[0] < weak.weights[0]);
        assert!(strong.training_loss > weak.training_loss);
    }

    #[test]
    fn separable_data_without_penalty_stops_at_max_iter() {
        let rows = vec![vec![-1.0], vec![-0.5], vec![0.5], vec![1.0]];
        let data = Dataset::from_rows(names(1), &rows, vec![false, false, true, true]);
        let config = TrainConfig {
            l2: 0.0,
            max_iter: 5,
            tolerance: 1e-12,
        };
        let model = train(&data, "y", "1", &config).unwrap();
        assert!(!model.converged);
        assert_eq!(model.iterations, 5);
        assert!(model.training_loss < 0.1);
    }

    #[test]
    fn rejects_bad_settings_and_single_class_data() {
        let data = overlapping();
        let bad = [
            TrainConfig {
                l2: -1.0,
                ..TrainConfig::default()
            },
            TrainConfig {
                max_iter: 0,
                ..TrainConfig::default()
            },
            TrainConfig {
                tolerance: 0.0,
                ..TrainConfig::default()
            },
        ];
        for config in bad {
            assert!(train(&data, "y", "1", &config).is_err());
        }
        let one_class = Dataset::from_rows(names(1), &[vec![1.0], vec![2.0]], vec![true, true]);
        assert_eq!(
            train(&one_class, "y", "M", &TrainConfig::default())
                .unwrap_err()
                .to_string(),
            "every training row has the positive label 'M'; both classes are needed"
        );
        let none = Dataset::from_rows(names(1), &[vec![1.0]], vec![false]);
        assert_eq!(
            train(&none, "y", "M", &TrainConfig::default())
                .unwrap_err()
                .to_string(),
            "no training row has the positive label 'M'"
        );
    }

    #[test]
    fn reads_features_and_labels_from_a_table() {
        let csv = Csv::parse(b"a,label,b\n1,M,2\n3,B,4\n").unwrap();
        let data = Dataset::from_csv(&csv, "label", "M", None).unwrap();
        assert_eq!(data.features, ["a", "b"]);
        assert_eq!(data.row(1), [3.0, 4.0]);
        assert_eq!(data.labels, [true, false]);
        assert_eq!(data.negatives, ["B"]);
        let csv_several = Csv::parse(b"a,label\n1,C\n2,M\n3,B\n4,C\n").unwrap();
        let several = Dataset::from_csv(&csv_several, "label", "M", None).unwrap();
        assert_eq!(several.negatives, ["C", "B"]);
        let chosen = ["b".to_owned(), "a".to_owned()];
        let data = Dataset::from_csv(&csv, "label", "M", Some(&chosen)).unwrap();
        assert_eq!(data.row(0), [2.0, 1.0]);
        let missing = ["c".to_owned()];
        assert_eq!(
            Dataset::from_csv(&csv, "label", "M", Some(&missing))
                .unwrap_err()
                .to_string(),
            "feature column 'c' is not in the header"
        );
        assert_eq!(
            Dataset::from_csv(&csv, "class", "M", None)
                .unwrap_err()
                .to_string(),
            "label column 'class' is not in the header"
        );
        let csv = Csv::parse(b"a,label\n1,\n").unwrap();
        assert_eq!(
            Dataset::from_csv(&csv, "label", "M", None)
                .unwrap_err()
                .to_string(),
            "row 2, column 'label': the label is empty"
        );
    }

    #[test]
    fn model_files_round_trip_and_are_checked() {
        let model = train(&overlapping(), "y", "1", &TrainConfig::default()).unwrap();
        let json = model.to_json();
        assert_eq!(Model::from_json(json.as_bytes()).unwrap(), model);
        let wrong_kind = json.replace(KIND, "tree");
        assert_eq!(
            Model::from_json(wrong_kind.as_bytes())
                .unwrap_err()
                .to_string(),
            "the model is of kind 'tree', expected 'logistic-regression'"
        );
        let mut short = model.clone();
        short.weights.pop();
        assert_eq!(
            Model::from_json(short.to_json().as_bytes())
                .unwrap_err()
                .to_string(),
            "the model has 1 weights for 2 features"
        );
        assert_eq!(model.probability(&[0.0, 0.0]), sigmoid(model.bias));
    }

    #[test]
    fn scoring_keeps_each_rows_probability_in_table_order() {
        let model = train(&overlapping(), "y", "1", &TrainConfig::default()).unwrap();
        let csv = Csv::parse(b"x0,x1,y\n-2,0,0\n2,0,1\n0.2,0,0\n").unwrap();
        let scored = model.score(&csv, 0.5).unwrap();
        let expected: Vec<f64> = [-2.0, 2.0, 0.2]
            .iter()
            .map(|x| model.probability(&[*x, 0.0]))
            .collect();
        assert_eq!(scored.probabilities, expected);
        assert_eq!(scored.negatives, ["0"]);
        assert_eq!(scored.evaluation, model.evaluate(&csv, 0.5).unwrap());
    }

    #[test]
    fn predictions_are_shortest_probabilities_and_predicted_labels() {
        let model = train(&overlapping(), "y", "M", &TrainConfig::default()).unwrap();
        let csv = model.predictions_csv(&[0.75, 0.5, 0.1, 1.0 / 3.0], 0.5, "B");
        assert_eq!(
            String::from_utf8(csv).unwrap(),
            "probability,label\n0.75,M\n0.5,M\n0.1,B\n0.3333333333333333,B\n"
        );
        let csv = model.predictions_csv(&[0.5], 0.6, "B");
        assert_eq!(csv, b"probability,label\n0.5,B\n");
        assert_eq!(model.predictions_csv(&[], 0.5, "B"), b"probability,label\n");
    }

    #[test]
    fn the_negative_label_is_given_or_the_one_seen() {
        let model = train(&overlapping(), "y", "M", &TrainConfig::default()).unwrap();
        let seen = |labels: &[&str]| -> Vec<String> {
            labels.iter().map(|label| (*label).to_owned()).collect()
        };
        assert_eq!(model.negative_label(None, &seen(&["B"])).unwrap(), "B");
        assert_eq!(model.negative_label(Some(""), &seen(&["B"])).unwrap(), "B");
        assert_eq!(
            model
                .negative_label(Some("benign"), &seen(&["B", "C"]))
                .unwrap(),
            "benign"
        );
        let err = |given: Option<&str>, labels: &[&str]| {
            model
                .negative_label(given, &seen(labels))
                .unwrap_err()
                .to_string()
        };
        assert_eq!(
            err(None, &["B", "C"]),
            "the negative rows hold several labels ('B', 'C')"
        );
        assert_eq!(
            err(None, &[]),
            "no row is negative, so the negative label is unknown (every row is 'M')"
        );
        assert_eq!(
            err(Some("M"), &["B"]),
            "the negative label 'M' is the positive label"
        );
        assert_eq!(
            err(Some("B,C"), &["B"]),
            "the negative label 'B,C' cannot go into a CSV field (it holds a comma, quote or line break)"
        );
    }
}
