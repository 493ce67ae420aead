//! Binary classification metrics from predicted probabilities and true labels: the confusion
//! matrix at a threshold, accuracy, precision, recall, F1, log loss, and ROC AUC computed
//! exactly from ranks (the Mann-Whitney statistic, ties sharing their average rank, in
//! integer arithmetic until the final division).

use serde::Serialize;
use thiserror::Error;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ConfusionMatrix {
    pub true_positives: usize,
    pub false_positives: usize,
    pub true_negatives: usize,
    pub false_negatives: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub rows: usize,
    pub threshold: f64,
    pub accuracy: f64,
    /// `0` when nothing is predicted positive.
    pub precision: f64,
    pub recall: f64,
    /// `0` when precision and recall are both `0`.
    pub f1: f64,
    pub roc_auc: f64,
    /// Mean negative log-likelihood, probabilities clipped to `[1e-15, 1 - 1e-15]`.
    pub log_loss: f64,
    pub confusion: ConfusionMatrix,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum MetricsError {
    #[error("there are {probabilities} probabilities for {labels} labels")]
    Length { probabilities: usize, labels: usize },
    #[error("there are no rows to evaluate")]
    NoRows,
    #[error("ROC AUC needs both classes, but every row is {0}")]
    OneClass(&'static str),
    #[error("threshold must be between 0 and 1, got {0}")]
    Threshold(f64),
    #[error("probability {0} is not between 0 and 1")]
    Probability(f64),
}

impl Evaluation {
    /// The scalar metrics under their KFP metric names, in a fixed order.
    pub fn named(&self) -> [(&'static str, f64); 6] {
        [
            ("accuracy", self.accuracy),
            ("precision", self.precision),
            ("recall", self.recall),
            ("f1", self.f1),
            ("roc-auc", self.roc_auc),
            ("log-loss", self.log_loss),
        ]
    }
}

/// Scores `probabilities` (of the positive class) against `labels` (`true` = positive);
/// a row is predicted positive when its probability is at least `threshold`.
pub fn evaluate(
    probabilities: &[f64],
    labels: &[bool],
    threshold: f64,
) -> Result<Evaluation, MetricsError> {
    if probabilities.len() != labels.len() {
        return Err(MetricsError::Length {
            probabilities: probabilities.len(),
            labels: labels.len(),
        });
    }
    if !(0.0..=1.0).contains(&threshold) {
        return Err(MetricsError::Threshold(threshold));
    }
    if let Some(bad) = probabilities.iter().find(|p| !(0.0..=1.0).contains(*p)) {
        return Err(MetricsError::Probability(*bad));
    }
    let rows = labels.len();
    if rows == 0 {
        return Err(MetricsError::NoRows);
    }
    let mut confusion = ConfusionMatrix {
        true_positives: 0,
        false_positives: 0,
        true_negatives: 0,
        false_negatives: 0,
    };
    for (&p, &positive) in probabilities.iter().zip(labels) {
        match (p >= threshold, positive) {
            (true, true) => confusion.true_positives += 1,
            (true, false) => confusion.false_positives += 1,
            (false, false) => confusion.true_negatives += 1,
            (false, true) => confusion.false_negatives += 1,
        }
    }
    let ConfusionMatrix {
        true_positives: tp,
        false_positives: fp,
        true_negatives: tn,
        false_negatives: fn_,
    } = confusion;
    let ratio = |num: usize, den: usize| {
        if den == 0 {
            0.0
        } else {
            num as f64 / den as f64
        }
    };
    let precision = ratio(tp, tp + fp);
    let recall = ratio(tp, tp + fn_);
    let f1 = ratio(2 * tp, 2 * tp + fp + fn_);
    Ok(Evaluation {
        rows,
        threshold,
        accuracy: ratio(tp + tn, rows),
        precision,
        recall,
        f1,
        roc_auc: roc_auc(probabilities, labels)?,
        log_loss: log_loss(probabilities, labels),
        confusion,
    })
}

/// Area under the ROC curve: the probability that a random positive scores above a random
/// negative, ties counting one half.
pub fn roc_auc(scores: &[f64], labels: &[bool]) -> Result<f64, MetricsError> {
    let positives = labels.iter().filter(|l| **l).count() as u128;
    let negatives = labels.len() as u128 - positives;
    if positives == 0 {
        return Err(MetricsError::OneClass("negative"));
    }
    if negatives == 0 {
        return Err(MetricsError::OneClass("positive"));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*a].total_cmp(&scores[*b]));
    // Twice the rank sum of the positives; a tie group over 1-based ranks first..=last
    // gives each member the average rank (first + last) / 2.
    let mut doubled_rank_sum: u128 = 0;
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && scores[order[end]] == scores[order[start]] {
            end += 1;
        }
        let tied_positives = order[start..end].iter().filter(|i| labels[**i]).count() as u128;
        doubled_rank_sum += tied_positives * (start as u128 + 1 + end as u128);
        start = end;
    }
    let doubled_u = doubled_rank_sum - positives * (positives + 1);
    Ok(doubled_u as f64 / (2 * positives * negatives) as f64)
}

/// One point of a ROC curve: predicting positive every row scored at least `threshold`
/// gives these false and true positive rates.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RocPoint {
    pub threshold: f64,
    pub false_positive_rate: f64,
    pub true_positive_rate: f64,
}

/// The ROC curve of `scores` against `labels`: one point per distinct score, highest
/// first, after the point (0, 0) at a threshold above every score (written as the
/// highest score's next float up, since JSON has no infinity). Rows sharing a score move
/// the curve diagonally, so the area under it is [`roc_auc`] with ties counted half.
pub fn roc_curve(scores: &[f64], labels: &[bool]) -> Result<Vec<RocPoint>, MetricsError> {
    if scores.len() != labels.len() {
        return Err(MetricsError::Length {
            probabilities: scores.len(),
            labels: labels.len(),
        });
    }
    let positives = labels.iter().filter(|l| **l).count();
    let negatives = labels.len() - positives;
    if positives == 0 {
        return Err(MetricsError::OneClass("negative"));
    }
    if negatives == 0 {
        return Err(MetricsError::OneClass("positive"));
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]));
    let top = scores[order[0]];
    let mut points = vec![RocPoint {
        threshold: f64::from_bits(top.to_bits() + 1),
        false_positive_rate: 0.0,
        true_positive_rate: 0.0,
    }];
    let (mut tp, mut fp) = (0usize, 0usize);
    let mut start = 0;
    while start < order.len() {
        let score = scores[order[start]];
        let mut end = start;
        while end < order.len() && scores[order[end]] == score {
            if labels[order[end]] {
                tp += 1;
            } else {
                fp += 1;
            }
            end += 1;
        }
        points.push(RocPoint {
            threshold: score,
            false_positive_rate: fp as f64 / negatives as f64,
            true_positive_rate: tp as f64 / positives as f64,
        });
        start = end;
    }
    Ok(points)
}

/// Mean log loss with probabilities clipped away from 0 and 1.
pub fn log_loss(probabilities: &[f64], labels: &[bool]) -> f64 {
    const EPSILON: f64 = 1e-15;
    let total: f64 = probabilities
        .iter()
        .zip(labels)
        .map(|(&p, &positive)| {
            let p = p.clamp(EPSILON, 1.0 - EPSILON);
            -libm::log(if positive { p } else { 1.0 - p })
        })
        .sum();
    total / probabilities.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_matrix_and_ratios() {
        let probabilities = [0.9, 0.8, 0.3, 0.6, 0.1, 0.2];
        let labels = [true, true, true, false, false, false];
        let e = evaluate(&probabilities, &labels, 0.5).unwrap();
        assert_eq!(
            e.confusion,
            ConfusionMatrix {
                true_positives: 2,
                false_positives: 1,
                true_negatives: 2,
                false_negatives: 1,
            }
        );
        assert_eq!(e.accuracy, 4.0 / 6.0);
        assert_eq!(e.precision, 2.0 / 3.0);
        assert_eq!(e.recall, 2.0 / 3.0);
        assert_eq!(e.f1, 2.0 / 3.0);
        // Pairs (positive, negative) ordered correctly: 0.9 and 0.8 beat all three
        // negatives, 0.3 beats 0.1 and 0.2: 8 of 9.
        assert_eq!(e.roc_auc, 8.0 / 9.0);
    }

    #[test]
    fn threshold_is_inclusive() {
        let e = evaluate(&[0.5, 0.4], &[true, false], 0.5).unwrap();
        assert_eq!(e.confusion.true_positives, 1);
        assert_eq!(e.confusion.true_negatives, 1);
        let e = evaluate(&[0.5, 0.4], &[true, false], 0.6).unwrap();
        assert_eq!(e.confusion.false_negatives, 1);
        assert_eq!((e.precision, e.recall, e.f1), (0.0, 0.0, 0.0));
    }

    #[test]
    fn roc_curve_runs_from_nothing_to_everything_and_its_area_is_the_auc() {
        let scores = [0.7, 0.5, 0.5, 0.2, 0.9, 0.1];
        let labels = [true, true, false, false, true, false];
        let curve = roc_curve(&scores, &labels).unwrap();
        let rates: Vec<(f64, f64)> = curve
            .iter()
            .map(|p| (p.false_positive_rate, p.true_positive_rate))
            .collect();
        assert_eq!(rates.first(), Some(&(0.0, 0.0)));
        assert_eq!(rates.last(), Some(&(1.0, 1.0)));
        assert!(curve[0].threshold > 0.9);
        assert_eq!(
            curve.len(),
            6,
            "one point per distinct score, and the start"
        );
        let area: f64 = rates
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum();
        assert!((area - roc_auc(&scores, &labels).unwrap()).abs() < 1e-12);
        assert_eq!(
            roc_curve(&[0.5], &[true]).unwrap_err(),
            MetricsError::OneClass("positive")
        );
    }

    #[test]
    fn roc_auc_gives_ties_half_credit() {
        assert_eq!(roc_auc(&[0.5, 0.5], &[true, false]).unwrap(), 0.5);
        assert_eq!(roc_auc(&[0.1, 0.9], &[false, true]).unwrap(), 1.0);
        assert_eq!(roc_auc(&[0.9, 0.1], &[false, true]).unwrap(), 0.0);
        // Positives 0.7, 0.5; negatives 0.5, 0.2: pairs 1 + 1 + 0.5 + 1 = 3.5 of 4.
        assert_eq!(
            roc_auc(&[0.7, 0.5, 0.5, 0.2], &[true, true, false, false]).unwrap(),
            0.875
        );
    }

    #[test]
    fn roc_auc_matches_counting_pairs_on_a_larger_sample() {
        let mut rng = crate::rng::SplitMix64::new(9);
        let scores: Vec<f64> = (0..300).map(|_| rng.below(20) as f64 / 20.0).collect();
        let labels: Vec<bool> = (0..300).map(|_| rng.below(3) == 0).collect();
        let mut credit = 0.0;
        let mut pairs = 0.0;
        for i in 0..300 {
            for j in 0..300 {
                if labels[i] && !labels[j] {
                    pairs += 1.0;
                    if scores[i] > scores[j] {
                        credit += 1.0;
                    } else if scores[i] == scores[j] {
                        credit += 0.5;
                    }
                }
            }
        }
        let expected: f64 = credit / pairs;
        assert!((roc_auc(&scores, &labels).unwrap() - expected).abs() < 1e-12);
    }

    #[test]
    fn log_loss_of_known_predictions() {
        let loss = log_loss(&[0.8, 0.4], &[true, false]);
        assert!((loss - (-(0.8f64.ln()) - 0.6f64.ln()) / 2.0).abs() < 1e-15);
        // A confident mistake is clipped rather than infinite.
        let loss = log_loss(&[0.0], &[true]);
        assert!(loss.is_finite() && loss > 34.0);
    }

    #[test]
    fn rejects_unusable_input() {
        assert_eq!(
            evaluate(&[0.5], &[true], 0.5).unwrap_err().to_string(),
            "ROC AUC needs both classes, but every row is positive"
        );
        assert!(matches!(evaluate(&[], &[], 0.5), Err(MetricsError::NoRows)));
        assert!(matches!(
            evaluate(&[0.5], &[true, false], 0.5),
            Err(MetricsError::Length { .. })
        ));
        assert!(matches!(
            evaluate(&[0.5, 0.2], &[true, false], 1.5),
            Err(MetricsError::Threshold(_))
        ));
        assert!(matches!(
            evaluate(&[1.5, 0.2], &[true, false], 0.5),
            Err(MetricsError::Probability(_))
        ));
    }

    #[test]
    fn names_are_stable() {
        let e = evaluate(&[0.9, 0.1], &[true, false], 0.5).unwrap();
        let names: Vec<&str> = e.named().iter().map(|(name, _)| *name).collect();
        assert_eq!(
            names,
            [
                "accuracy",
                "precision",
                "recall",
                "f1",
                "roc-auc",
                "log-loss"
            ]
        );
    }
}
