//! Kubeflow Pipelines v1 "mlpipeline-metrics" files: the JSON that steps write for outputs of
//! type `Metrics`, `{"metrics": [{"name": ..., "numberValue": ..., "format": "RAW"}]}`, with
//! the metric-name rule KFP enforces (`^[a-zA-Z]([-_a-zA-Z0-9]{0,62}[a-zA-Z0-9])?$`).

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
