//! The plain-Rust view of a typed step's invocation: its parameters by name and its input
//! and output artifacts by sandbox path, with the checks every typed step makes on them.
//! The components convert their `wit-bindgen` types into these, so the checks are tested
//! natively and the message texts are the same in every step.

use thiserror::Error;

/// A parameter value, one case per KFP parameter type.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    Float(f64),
    Bool(bool),
    /// `JsonObject` or `JsonArray` parameters, as JSON text.
    Json(String),
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::Str(_) => "a string",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Bool(_) => "a boolean",
            Value::Json(_) => "JSON",
        }
    }
}

/// A parameter or artifact the step cannot work with: always the pipeline author's to fix.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum InvocationError {
    #[error("unknown parameter '{name}', expected {expected}")]
    UnknownParam { name: String, expected: String },
    #[error("parameter '{0}' is given twice")]
    DuplicateParam(String),
    #[error("parameter '{0}' is required")]
    MissingParam(String),
    #[error("parameter '{name}' must be {expected}, got {found}")]
    WrongType {
        name: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("parameter '{name}' {problem}")]
    OutOfRange { name: String, problem: String },
    #[error("input artifact '{0}' was not given")]
    MissingInput(String),
    #[error("output artifact '{0}' was not given")]
    MissingOutput(String),
}

/// What a typed step was asked to do.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Invocation {
    pub params: Vec<(String, Value)>,
    /// `(name, path)` of each input artifact.
    pub inputs: Vec<(String, String)>,
    /// `(name, path)` of each output artifact.
    pub outputs: Vec<(String, String)>,
}

impl Invocation {
    /// Checks that every parameter is one of `known` and none is given twice.
    pub fn expect_params(&self, known: &[&str]) -> Result<(), InvocationError> {
        for (index, (name, _)) in self.params.iter().enumerate() {
            if !known.contains(&name.as_str()) {
                let expected: Vec<String> = known.iter().map(|k| format!("'{k}'")).collect();
                return Err(InvocationError::UnknownParam {
                    name: name.clone(),
                    expected: if expected.is_empty() {
                        "none".to_owned()
                    } else {
                        expected.join(", ")
                    },
                });
            }
            if self.params[..index].iter().any(|(other, _)| other == name) {
                return Err(InvocationError::DuplicateParam(name.clone()));
            }
        }
        Ok(())
    }

    fn param(&self, name: &str) -> Option<&Value> {
        self.params
            .iter()
            .find(|(param, _)| param == name)
            .map(|(_, value)| value)
    }

    fn wrong_type(name: &str, expected: &'static str, value: &Value) -> InvocationError {
        InvocationError::WrongType {
            name: name.to_owned(),
            expected,
            found: value.kind(),
        }
    }

    /// A float parameter; an integer is accepted and converted.
    pub fn float(&self, name: &str) -> Result<Option<f64>, InvocationError> {
        match self.param(name) {
            None => Ok(None),
            Some(Value::Float(value)) => Ok(Some(*value)),
            Some(Value::Int(value)) => Ok(Some(*value as f64)),
            Some(other) => Err(Self::wrong_type(name, "a float", other)),
        }
    }

    pub fn int(&self, name: &str) -> Result<Option<i64>, InvocationError> {
        match self.param(name) {
            None => Ok(None),
            Some(Value::Int(value)) => Ok(Some(*value)),
            Some(other) => Err(Self::wrong_type(name, "an integer", other)),
        }
    }

    pub fn string(&self, name: &str) -> Result<Option<&str>, InvocationError> {
        match self.param(name) {
            None => Ok(None),
            Some(Value::Str(value)) => Ok(Some(value)),
            Some(other) => Err(Self::wrong_type(name, "a string", other)),
        }
    }

    /// A float parameter that, when given, lies in `0..=1` (`inclusive`) or strictly
    /// between 0 and 1.
    pub fn fraction(&self, name: &str, inclusive: bool) -> Result<Option<f64>, InvocationError> {
        let value = self.float(name)?;
        if let Some(value) = value {
            let inside = if inclusive {
                (0.0..=1.0).contains(&value)
            } else {
                value > 0.0 && value < 1.0
            };
            if !inside {
                let range = if inclusive {
                    "between 0 and 1"
                } else {
                    "strictly between 0 and 1"
                };
                return Err(InvocationError::OutOfRange {
                    name: name.to_owned(),
                    problem: format!("must be {range}, got {value}"),
                });
            }
        }
        Ok(value)
    }

    /// A parameter that must be present.
    pub fn required<T>(
        name: &str,
        value: Result<Option<T>, InvocationError>,
    ) -> Result<T, InvocationError> {
        value?.ok_or_else(|| InvocationError::MissingParam(name.to_owned()))
    }

    /// The sandbox path of input artifact `name`.
    pub fn input(&self, name: &str) -> Result<&str, InvocationError> {
        find(&self.inputs, name).ok_or_else(|| InvocationError::MissingInput(name.to_owned()))
    }

    /// The sandbox path of output artifact `name`.
    pub fn output(&self, name: &str) -> Result<&str, InvocationError> {
        find(&self.outputs, name).ok_or_else(|| InvocationError::MissingOutput(name.to_owned()))
    }
}

fn find<'a>(artifacts: &'a [(String, String)], name: &str) -> Option<&'a str> {
    artifacts
        .iter()
        .find(|(artifact, _)| artifact == name)
        .map(|(_, path)| path.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invocation() -> Invocation {
        Invocation {
            params: vec![
                ("test_fraction".into(), Value::Float(0.2)),
                ("seed".into(), Value::Int(42)),
                ("stratify".into(), Value::Str("diagnosis".into())),
            ],
            inputs: vec![("data".into(), "/inputs/data/data".into())],
            outputs: vec![("train".into(), "/outputs/train/data".into())],
        }
    }

    #[test]
    fn reads_typed_parameters() {
        let inv = invocation();
        assert_eq!(inv.float("test_fraction").unwrap(), Some(0.2));
        assert_eq!(inv.float("seed").unwrap(), Some(42.0));
        assert_eq!(inv.int("seed").unwrap(), Some(42));
        assert_eq!(inv.string("stratify").unwrap(), Some("diagnosis"));
        assert_eq!(inv.float("threshold").unwrap(), None);
        assert_eq!(Invocation::required("seed", inv.int("seed")).unwrap(), 42);
    }

    #[test]
    fn names_the_parameter_and_both_types_on_a_mismatch() {
        let inv = invocation();
        assert_eq!(
            inv.int("test_fraction").unwrap_err().to_string(),
            "parameter 'test_fraction' must be an integer, got a float"
        );
        assert_eq!(
            inv.float("stratify").unwrap_err().to_string(),
            "parameter 'stratify' must be a float, got a string"
        );
        assert_eq!(
            Invocation::required("threshold", inv.float("threshold"))
                .unwrap_err()
                .to_string(),
            "parameter 'threshold' is required"
        );
    }

    #[test]
    fn fractions_must_lie_in_their_range() {
        let inv = Invocation {
            params: vec![
                ("zero".into(), Value::Float(0.0)),
                ("two".into(), Value::Int(2)),
            ],
            ..Invocation::default()
        };
        assert_eq!(inv.fraction("zero", true).unwrap(), Some(0.0));
        assert_eq!(
            inv.fraction("zero", false).unwrap_err().to_string(),
            "parameter 'zero' must be strictly between 0 and 1, got 0"
        );
        assert_eq!(
            inv.fraction("two", true).unwrap_err().to_string(),
            "parameter 'two' must be between 0 and 1, got 2"
        );
        assert_eq!(inv.fraction("absent", false).unwrap(), None);
    }

    #[test]
    fn rejects_unknown_and_repeated_parameters() {
        let mut inv = invocation();
        assert!(
            inv.expect_params(&["test_fraction", "seed", "stratify"])
                .is_ok()
        );
        assert_eq!(
            inv.expect_params(&["seed", "stratify"])
                .unwrap_err()
                .to_string(),
            "unknown parameter 'test_fraction', expected 'seed', 'stratify'"
        );
        inv.params.push(("seed".into(), Value::Int(1)));
        assert_eq!(
            inv.expect_params(&["test_fraction", "seed", "stratify"])
                .unwrap_err(),
            InvocationError::DuplicateParam("seed".into())
        );
    }

    #[test]
    fn finds_artifacts_by_name() {
        let inv = invocation();
        assert_eq!(inv.input("data").unwrap(), "/inputs/data/data");
        assert_eq!(inv.output("train").unwrap(), "/outputs/train/data");
        assert_eq!(
            inv.output("test").unwrap_err().to_string(),
            "output artifact 'test' was not given"
        );
        assert_eq!(
            inv.input("model").unwrap_err().to_string(),
            "input artifact 'model' was not given"
        );
    }
}
