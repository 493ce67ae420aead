//! KFP parameter values: JSON values of the IR's parameter types, parsed from and
//! rendered to the text that files, command lines and run records hold.

use serde_json::Value as Json;

use super::ir::ParameterType;

/// Brings a value to its declared type: integers as integers (the IR writes an integer
/// default as `3.0`), doubles as doubles; anything of the wrong kind is an error.
pub fn coerce(ty: ParameterType, value: &Json) -> Result<Json, String> {
    let wrong = || {
        format!(
            "expected a {} value, found {}",
            ty.as_str(),
            shorten(&value.to_string())
        )
    };
    Ok(match ty {
        ParameterType::String => match value {
            Json::String(_) => value.clone(),
            _ => return Err(wrong()),
        },
        ParameterType::NumberInteger => match value {
            Json::Number(n) if n.is_i64() || n.is_u64() => value.clone(),
            Json::Number(n) => {
                let f = n.as_f64().ok_or_else(wrong)?;
                if f.fract() != 0.0 || !f.is_finite() {
                    return Err(wrong());
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
pub fn parse(ty: ParameterType, text: &str) -> Result<Json, String> {
    let trimmed = text.trim();
    let value = match ty {
        ParameterType::String => return Ok(Json::String(text.to_owned())),
        ParameterType::Boolean => match trimmed {
            "true" | "True" | "TRUE" | "1" => Json::Bool(true),
            "false" | "False" | "FALSE" | "0" => Json::Bool(false),
            _ => {
                return Err(format!(
                    "expected a BOOLEAN value (true or false), found '{}'",
                    shorten(text)
                ));
            }
        },
        _ => serde_json::from_str(trimmed).map_err(|_| {
            format!(
                "expected a {} value{}, found '{}'",
                ty.as_str(),
                match ty {
                    ParameterType::List => " (a JSON array)",
                    ParameterType::Struct => " (a JSON object)",
                    _ => "",
                },
                shorten(text)
            )
        })?,
    };
    coerce(ty, &value)
}

/// The text of a value: a string as it is, anything else as compact JSON.
pub fn render(value: &Json) -> String {
    match value {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

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
        let e = parse(ParameterType::NumberInteger, "x").unwrap_err();
        assert_eq!(e, "expected a NUMBER_INTEGER value, found 'x'");
        assert!(parse(ParameterType::Struct, "[1]").is_err());
        assert_eq!(render(&json!("s")), "s");
        assert_eq!(render(&json!([1, "a"])), r#"[1,"a"]"#);
        assert_eq!(render(&json!(1.5)), "1.5");
    }
}
