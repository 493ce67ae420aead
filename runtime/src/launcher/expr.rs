//! CEL, as KFP's backend evaluates it: task conditions (`triggerPolicy.condition`) over
//! `inputs.parameter_values`, and `parameterExpressionSelector`s such as
//! `parseJson(string_value)["b"]` that pick a field of a loop item. Numbers reach CEL as
//! doubles, as protobuf `Value`s carry them, which is why the compiler writes
//! `int(inputs.parameter_values['x']) > 2` for integer parameters.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use cel::objects::Key;
use cel::{Context, ExecutionError, Program, Value};
use serde_json::Value as Json;

/// A CEL expression that does not compile, or that failed or gave the wrong kind of value
/// when evaluated. CEL's own messages are kept, on one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ExprError {
    #[error("not a valid CEL expression: {0}")]
    Syntax(String),
    #[error("condition `{expr}` gave {value}, not a boolean")]
    NotABoolean { expr: String, value: String },
    #[error("condition `{expr}` failed: {detail}")]
    Condition { expr: String, detail: String },
    #[error("selector `{expr}` failed: {detail}")]
    Selector { expr: String, detail: String },
    #[error("selector `{expr}` gave {value}, which is not a parameter value")]
    NotAValue { expr: String, value: String },
}

/// A compiled `triggerPolicy.condition`.
pub struct Condition {
    source: String,
    program: Program,
}

impl Condition {
    pub fn compile(source: &str) -> Result<Condition, ExprError> {
        let program =
            Program::compile(source).map_err(|e| ExprError::Syntax(one_line(&e.to_string())))?;
        Ok(Condition {
            source: source.to_owned(),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the condition holds for a task's parameter values.
    pub fn holds(&self, params: &BTreeMap<String, Json>) -> Result<bool, ExprError> {
        let values: HashMap<String, Value> =
            params.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
        let inputs: HashMap<String, Value> =
            HashMap::from([("parameter_values".to_owned(), values.into())]);
        let mut context = Context::default();
        context.add_variable_from_value("inputs", inputs);
        add_functions(&mut context);
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(ExprError::NotABoolean {
                expr: self.source.clone(),
                value: format!("{other:?}"),
            }),
            Err(e) => Err(ExprError::Condition {
                expr: self.source.clone(),
                detail: one_line(&e.to_string()),
            }),
        }
    }
}

/// A compiled `parameterExpressionSelector`, applied to one parameter value.
pub struct Selector {
    source: String,
    program: Program,
}

impl Selector {
    pub fn compile(source: &str) -> Result<Selector, ExprError> {
        let program =
            Program::compile(source).map_err(|e| ExprError::Syntax(one_line(&e.to_string())))?;
        Ok(Selector {
            source: source.to_owned(),
            program,
        })
    }

    /// Evaluates the selector with `string_value` bound to the value's text (its JSON,
    /// for anything but a string).
    pub fn select(&self, value: &Json) -> Result<Json, ExprError> {
        let text = match value {
            Json::String(s) => s.clone(),
            other => other.to_string(),
        };
        let mut context = Context::default();
        context.add_variable_from_value("string_value", Value::String(Arc::new(text)));
        context.add_variable_from_value("number_value", to_cel(value));
        context.add_variable_from_value("bool_value", to_cel(value));
        context.add_variable_from_value("list_value", to_cel(value));
        context.add_variable_from_value("struct_value", to_cel(value));
        add_functions(&mut context);
        let result = self
            .program
            .execute(&context)
            .map_err(|e| ExprError::Selector {
                expr: self.source.clone(),
                detail: one_line(&e.to_string()),
            })?;
        from_cel(&result).ok_or_else(|| ExprError::NotAValue {
            expr: self.source.clone(),
            value: format!("{result:?}"),
        })
    }
}

fn add_functions(context: &mut Context<'_, '_>) {
    let _ = context.add_function(
        "parseJson",
        |text: Arc<String>| -> Result<Value, ExecutionError> {
            let parsed: Json = serde_json::from_str(&text).map_err(|e| {
                ExecutionError::function_error("parseJson", format!("not JSON: {e}"))
            })?;
            Ok(to_cel(&parsed))
        },
    );
}

/// JSON to CEL, every number as a double (protobuf `Value` semantics).
pub fn to_cel(value: &Json) -> Value {
    match value {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        Json::String(s) => Value::String(Arc::new(s.clone())),
        Json::Array(items) => Value::List(Arc::new(items.iter().map(to_cel).collect())),
        Json::Object(map) => {
            let map: HashMap<String, Value> =
                map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect();
            map.into()
        }
    }
}

fn from_cel(value: &Value) -> Option<Json> {
    Some(match value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::UInt(u) => Json::from(*u),
        Value::Float(f) => serde_json::Number::from_f64(*f).map(Json::Number)?,
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(from_cel).collect::<Option<_>>()?),
        Value::Map(map) => {
            let mut out = serde_json::Map::new();
            for (k, v) in map.map.iter() {
                let key = match k {
                    Key::String(s) => s.to_string(),
                    Key::Int(i) => i.to_string(),
                    Key::Uint(u) => u.to_string(),
                    Key::Bool(b) => b.to_string(),
                };
                out.insert(key, from_cel(v)?);
            }
            Json::Object(out)
        }
        _ => return None,
    })
}

fn one_line(message: &str) -> String {
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn params(pairs: &[(&str, Json)]) -> BTreeMap<String, Json> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    #[test]
    fn conditions_as_the_kfp_compiler_writes_them() {
        let p = params(&[
            ("pipelinechannel--flip-Output", json!("heads")),
            ("pipelinechannel--seed", json!(4)),
            ("pipelinechannel--rate", json!(0.25)),
        ]);
        let holds = |src: &str| Condition::compile(src).unwrap().holds(&p).unwrap();
        assert!(holds(
            "inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads'"
        ));
        assert!(!holds(
            "!(inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads') && inputs.parameter_values['pipelinechannel--flip-Output'] == 'tails'"
        ));
        assert!(holds(
            "int(inputs.parameter_values['pipelinechannel--seed']) > 2"
        ));
        assert!(!holds(
            "int(inputs.parameter_values['pipelinechannel--seed']) == 3"
        ));
        assert!(holds(
            "inputs.parameter_values['pipelinechannel--rate'] < 0.5"
        ));
        assert!(Condition::compile("inputs.parameter_values[").is_err());
        let missing = Condition::compile("inputs.parameter_values['nope'] == 'x'")
            .unwrap()
            .holds(&p);
        assert!(missing.is_err(), "{missing:?}");
    }

    #[test]
    fn selectors_pick_fields_of_loop_items() {
        let s = Selector::compile(r#"parseJson(string_value)["b"]"#).unwrap();
        assert_eq!(s.select(&json!({"a": 1, "b": 2.5})).unwrap(), json!(2.5));
        assert_eq!(s.select(&json!(r#"{"b": "x"}"#)).unwrap(), json!("x"));
        assert!(s.select(&json!("not json")).is_err());
    }
}
