//! KFP parameter values: JSON values of the IR's parameter types, parsed from and
//! rendered to the text that files, command lines and run records hold.

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

/// The type of a KFP parameter (`parameterType` in the IR).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ParameterType {
    String,
    NumberInteger,
    NumberDouble,
    Boolean,
    List,
    Struct,
    TaskFinalStatus,
    TaskConfig,
}

impl ParameterType {
    pub fn as_str(self) -> &'static str {
        match self {
            ParameterType::String => "STRING",
            ParameterType::NumberInteger => "NUMBER_INTEGER",
            ParameterType::NumberDouble => "NUMBER_DOUBLE",
            ParameterType::Boolean => "BOOLEAN",
            ParameterType::List => "LIST",
            ParameterType::Struct => "STRUCT",
            ParameterType::TaskFinalStatus => "TASK_FINAL_STATUS",
            ParameterType::TaskConfig => "TASK_CONFIG",
        }
    }
}

/// A value that is not one of its parameter type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ValueError {
    /// `found` is the value as written (a JSON value, or quoted text), shortened.
    #[error("expected a {expected} value{hint}, found {found}")]
    Wrong {
        expected: &'static str,
        /// What the type's values look like, for a text that did not parse.
        hint: &'static str,
        found: String,
    },
    #[error("{found} is outside the 64-bit integer range of a {expected} value")]
    OutOfRange {
        expected: &'static str,
        found: String,
    },
}

/// Brings a value to its declared type, as KFP's backend does when it resolves a task's
/// inputs (`normalizeResolvedParameterValue`): any value reaching a STRING input becomes
/// its text ([`text_of`]); integers stay integers (the IR writes an integer default as
/// `3.0`), doubles are doubles; anything else of the wrong kind is an error.
pub fn coerce(ty: ParameterType, value: &Json) -> Result<Json, ValueError> {
    let wrong = || ValueError::Wrong {
        expected: ty.as_str(),
        hint: "",
        found: shorten(&value.to_string()),
    };
    let out_of_range = || ValueError::OutOfRange {
        expected: ty.as_str(),
        found: shorten(&value.to_string()),
    };
    Ok(match ty {
        ParameterType::String => Json::String(text_of(value)),
        // A 64-bit signed integer, as KFP's backend keeps one; beyond its range is an
        // error, never a value clamped to the range's end.
        ParameterType::NumberInteger => match value {
            Json::Number(n) if n.is_i64() => value.clone(),
            Json::Number(n) if n.is_u64() => return Err(out_of_range()),
            Json::Number(n) => {
                let f = n.as_f64().ok_or_else(wrong)?;
                if f.fract() != 0.0 || !f.is_finite() {
                    return Err(wrong());
                }
                // i64::MIN is -2^63 exactly; 2^63 is the first value past i64::MAX.
                if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&f) {
                    return Err(out_of_range());
                }
                Json::from(f as i64)
            }
            _ => return Err(wrong()),
        },
        ParameterType::NumberDouble => match value {
            Json::Number(n) => {
                let f = n.as_f64().ok_or_else(wrong)?;
                serde_json::Number::from_f64(f)
                    .map(Json::Number)
                    .ok_or_else(wrong)?
            }
            _ => return Err(wrong()),
        },
        ParameterType::Boolean => match value {
            Json::Bool(_) => value.clone(),
            _ => return Err(wrong()),
        },
        ParameterType::List => match value {
            Json::Array(_) => whole_numbers(value),
            _ => return Err(wrong()),
        },
        ParameterType::Struct | ParameterType::TaskFinalStatus | ParameterType::TaskConfig => {
            match value {
                Json::Object(_) => whole_numbers(value),
                _ => return Err(wrong()),
            }
        }
    })
}

/// A value as text, as KFP's backend writes a parameter value it hands on as a string
/// (`PBValueToText`): a string as it is; a number in decimal without an exponent or a
/// needless fraction (`7`, `0.5`, `0.0000001`); `true`/`false`; a list or struct as its
/// compact JSON, whole numbers without a fraction; null as nothing.
pub fn text_of(value: &Json) -> String {
    match value {
        Json::Null => String::new(),
        Json::String(s) => s.clone(),
        Json::Bool(b) => b.to_string(),
        // Rust prints an f64 as Go's FormatFloat(f, 'f', -1, 64) does: the shortest
        // digits that read back, never an exponent, no `.0` on a whole number.
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (None, Some(u), _) => u.to_string(),
            (None, None, Some(f)) => f.to_string(),
            _ => n.to_string(),
        },
        Json::Array(_) | Json::Object(_) => whole_numbers(value).to_string(),
    }
}

/// Numbers inside lists and structs as KFP's backend hands them to steps: protobuf
/// `Value`s hold doubles, and its JSON writes a whole one without a fraction (`4`, not
/// `4.0`), so a step reads back the integer the pipeline author wrote.
fn whole_numbers(value: &Json) -> Json {
    match value {
        Json::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() && f.fract() == 0.0 && f.abs() < 9.0e15 => {
                Json::from(f as i64)
            }
            _ => value.clone(),
        },
        Json::Array(items) => Json::Array(items.iter().map(whole_numbers).collect()),
        Json::Object(map) => Json::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), whole_numbers(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

/// Parses text (a `--param` value, or what a step wrote to an output parameter file) as
/// a value of the type.
pub fn parse(ty: ParameterType, text: &str) -> Result<Json, ValueError> {
    let trimmed = text.trim();
    let value = match ty {
        ParameterType::String => return Ok(Json::String(text.to_owned())),
        ParameterType::Boolean => match trimmed {
            "true" | "True" | "TRUE" | "1" => Json::Bool(true),
            "false" | "False" | "FALSE" | "0" => Json::Bool(false),
            _ => {
                return Err(ValueError::Wrong {
                    expected: ty.as_str(),
                    hint: " (true or false)",
                    found: format!("'{}'", shorten(text)),
                });
            }
        },
        _ => serde_json::from_str(trimmed).map_err(|_| ValueError::Wrong {
            expected: ty.as_str(),
            hint: match ty {
                ParameterType::List => " (a JSON array)",
                ParameterType::Struct => " (a JSON object)",
                _ => "",
            },
            found: format!("'{}'", shorten(text)),
        })?,
    };
    coerce(ty, &value)
}

pub use super::render;

fn shorten(text: &str) -> String {
    if text.chars().count() > 60 {
        let head: String = text.chars().take(57).collect();
        format!("{head}...")
    } else {
        text.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_take_their_declared_types() {
        assert_eq!(
            coerce(ParameterType::NumberInteger, &json!(3.0)).unwrap(),
            json!(3)
        );
        assert!(coerce(ParameterType::NumberInteger, &json!(3.5)).is_err());
        // Beyond 64 bits is an error, never clamped.
        for big in [
            json!(1e300),
            json!(9_223_372_036_854_775_808u64),
            json!(-1e19),
        ] {
            let e = coerce(ParameterType::NumberInteger, &big)
                .unwrap_err()
                .to_string();
            assert!(e.contains("outside the 64-bit integer range"), "{e}");
        }
        assert_eq!(
            coerce(ParameterType::NumberInteger, &json!(i64::MIN)).unwrap(),
            json!(i64::MIN)
        );
        assert_eq!(
            coerce(ParameterType::NumberDouble, &json!(2)).unwrap(),
            json!(2.0)
        );
        assert_eq!(parse(ParameterType::List, "[1, 2]").unwrap(), json!([1, 2]));
        assert_eq!(
            coerce(
                ParameterType::Struct,
                &json!({"n": 4.0, "f": 0.5, "l": [1.0]})
            )
            .unwrap(),
            json!({"n": 4, "f": 0.5, "l": [1]})
        );
        assert_eq!(parse(ParameterType::String, " a ").unwrap(), json!(" a "));
        assert_eq!(parse(ParameterType::Boolean, "True").unwrap(), json!(true));
        let e = parse(ParameterType::NumberInteger, "x")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "expected a NUMBER_INTEGER value, found 'x'");
        assert!(parse(ParameterType::Struct, "[1]").is_err());
        assert_eq!(render(&json!("s")), "s");
        assert_eq!(render(&json!([1, "a"])), r#"[1,"a"]"#);
        assert_eq!(render(&json!(1.5)), "1.5");
    }

    #[test]
    fn anything_reaching_a_string_input_becomes_its_text() {
        let text = |v: Json| coerce(ParameterType::String, &v).unwrap();
        assert_eq!(text(json!(7.0)), json!("7"));
        assert_eq!(text(json!(7)), json!("7"));
        assert_eq!(text(json!(0.5)), json!("0.5"));
        assert_eq!(text(json!(1e21)), json!("1000000000000000000000"));
        assert_eq!(text(json!(1e-7)), json!("0.0000001"));
        assert_eq!(text(json!(-3.25)), json!("-3.25"));
        assert_eq!(text(json!(true)), json!("true"));
        assert_eq!(
            text(json!({"a": 1.0, "b": [2.0, 0.5]})),
            json!(r#"{"a":1,"b":[2,0.5]}"#)
        );
        assert_eq!(text(json!([1.0, "x"])), json!(r#"[1,"x"]"#));
        assert_eq!(text(json!("as is")), json!("as is"));
    }
}
