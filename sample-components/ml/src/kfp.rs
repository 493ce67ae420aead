//! Kubeflow Pipelines v1 "mlpipeline-metrics" files: the JSON that steps write for outputs of
//! type `Metrics`, `{"metrics": [{"name": ..., "numberValue": ..., "format": "RAW"}]}`, with
//! the metric-name rule KFP enforces (`^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$`); and
//! "mlpipeline-ui-metadata" files, the JSON of visualisations KFP's UI draws for a step:
//! here a ROC curve and a confusion matrix, their CSV stored inline.

use serde::{Deserialize, Serialize};
use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsFile {
    pub metrics: Vec<Metric>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metric {
    pub name: String,
    #[serde(rename = "numberValue")]
    pub number_value: f64,
    pub format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Format {
    Raw,
    Percentage,
}

#[derive(Debug, Clone, PartialEq, Error)]
pub enum KfpError {
    #[error(
        "metric name '{0}' is not valid: it must start with a letter, end with a letter or digit, \
         use only letters, digits, '-' and '_', and be at most 64 characters"
    )]
    Name(String),
    #[error("metric '{name}' has the value {value}, which JSON cannot hold")]
    NotFinite { name: String, value: f64 },
}

/// Whether KFP accepts `name` as a metric name.
pub fn is_valid_metric_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    bytes.len() <= 64
        && first.is_ascii_alphabetic()
        && last.is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_')
}

/// The mlpipeline-metrics JSON for `(name, value)` pairs, all with format `RAW`.
pub fn metrics_json(metrics: &[(&str, f64)]) -> Result<String, KfpError> {
    let mut file = MetricsFile {
        metrics: Vec::with_capacity(metrics.len()),
    };
    for &(name, value) in metrics {
        if !is_valid_metric_name(name) {
            return Err(KfpError::Name(name.to_owned()));
        }
        if !value.is_finite() {
            return Err(KfpError::NotFinite {
                name: name.to_owned(),
                value,
            });
        }
        file.metrics.push(Metric {
            name: name.to_owned(),
            number_value: value,
            format: Format::Raw,
        });
    }
    Ok(serde_json::to_string_pretty(&file).expect("metrics always serialise") + "\n")
}

/// The mlpipeline-ui-metadata JSON of a binary classifier: a `roc` output (CSV
/// `fpr,tpr,thresholds`, one row per point) and a `confusion_matrix` output (CSV
/// `target,predicted,count` over `labels`, negative first), both `"storage": "inline"`.
pub fn ui_metadata_json(
    roc: &[crate::metrics::RocPoint],
    confusion: &crate::metrics::ConfusionMatrix,
    positive: &str,
    negative: &str,
) -> String {
    use std::fmt::Write as _;
    let mut curve = String::new();
    for p in roc {
        let _ = writeln!(
            curve,
            "{},{},{}",
            p.false_positive_rate, p.true_positive_rate, p.threshold
        );
    }
    let c = confusion;
    let mut matrix = String::new();
    for (target, predicted, count) in [
        (negative, negative, c.true_negatives),
        (negative, positive, c.false_positives),
        (positive, negative, c.false_negatives),
        (positive, positive, c.true_positives),
    ] {
        let _ = writeln!(matrix, "{target},{predicted},{count}");
    }
    let column = |name: &str, kind: &str| serde_json::json!({ "name": name, "type": kind });
    let doc = serde_json::json!({
        "outputs": [
            {
                "type": "roc",
                "format": "csv",
                "storage": "inline",
                "schema": [column("fpr", "NUMBER"), column("tpr", "NUMBER"), column("thresholds", "NUMBER")],
                "source": curve,
            },
            {
                "type": "confusion_matrix",
                "format": "csv",
                "storage": "inline",
                "schema": [column("target", "CATEGORY"), column("predicted", "CATEGORY"), column("count", "NUMBER")],
                "labels": [negative, positive],
                "source": matrix,
            },
        ]
    });
    serde_json::to_string_pretty(&doc).expect("plain data") + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_kfp_shape() {
        let json = metrics_json(&[("train-log-loss", 0.08), ("accuracy", 1.0)]).unwrap();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"metrics": [
                {"name": "train-log-loss", "numberValue": 0.08, "format": "RAW"},
                {"name": "accuracy", "numberValue": 1.0, "format": "RAW"},
            ]})
        );
        let file: MetricsFile = serde_json::from_str(&json).unwrap();
        assert_eq!(file.metrics[0].format, Format::Raw);
    }

    #[test]
    fn ui_metadata_holds_the_curve_and_the_matrix_inline() {
        use crate::metrics::{ConfusionMatrix, RocPoint};
        let roc = [
            RocPoint {
                threshold: 1.0,
                false_positive_rate: 0.0,
                true_positive_rate: 0.0,
            },
            RocPoint {
                threshold: 0.5,
                false_positive_rate: 0.25,
                true_positive_rate: 1.0,
            },
        ];
        let c = ConfusionMatrix {
            true_positives: 5,
            false_positives: 1,
            true_negatives: 3,
            false_negatives: 0,
        };
        let doc: serde_json::Value =
            serde_json::from_str(&ui_metadata_json(&roc, &c, "M", "B")).unwrap();
        assert_eq!(doc["outputs"][0]["type"], "roc");
        assert_eq!(doc["outputs"][0]["source"], "0,0,1\n0.25,1,0.5\n");
        assert_eq!(doc["outputs"][1]["labels"], serde_json::json!(["B", "M"]));
        assert_eq!(doc["outputs"][1]["source"], "B,B,3\nB,M,1\nM,B,0\nM,M,5\n");
    }

    #[test]
    fn applies_the_kfp_name_rule() {
        for good in ["a", "roc-auc", "log_loss", "f1", "A9", &"a".repeat(64)] {
            assert!(is_valid_metric_name(good), "{good}");
        }
        for bad in [
            "",
            "1a",
            "-a",
            "a-",
            "a_",
            "a.b",
            "a b",
            "é",
            &"a".repeat(65),
        ] {
            assert!(!is_valid_metric_name(bad), "{bad}");
        }
        assert!(matches!(
            metrics_json(&[("roc auc", 0.5)]),
            Err(KfpError::Name(_))
        ));
        assert!(matches!(
            metrics_json(&[("loss", f64::NAN)]),
            Err(KfpError::NotFinite { .. })
        ));
    }
}
