//! KFP type names and parameter values: which types are parameters and which are
//! artifacts, when two types may be wired together, and how a value of a parameter
//! type is checked and rendered. Pure functions; no IO.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The parameter types of KFP. Every other type name denotes an artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ParamType {
    String,
    Integer,
    Float,
    Boolean,
    JsonObject,
    JsonArray,
}

impl ParamType {
    /// Recognises the names KFP v1, the KFP v2 SDK and the KFP IR use for parameter types.
    pub fn from_name(name: &str) -> Option<ParamType> {
        Some(match name {
            "String" | "str" | "Text" | "STRING" => ParamType::String,
            "Integer" | "int" | "NUMBER_INTEGER" => ParamType::Integer,
            "Float" | "float" | "Double" | "NUMBER_DOUBLE" => ParamType::Float,
            "Boolean" | "bool" | "Bool" | "BOOLEAN" => ParamType::Boolean,
            "JsonObject" | "dict" | "Dict" | "STRUCT" => ParamType::JsonObject,
            "JsonArray" | "list" | "List" | "LIST" => ParamType::JsonArray,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "String",
            ParamType::Integer => "Integer",
            ParamType::Float => "Float",
            ParamType::Boolean => "Boolean",
            ParamType::JsonObject => "JsonObject",
            ParamType::JsonArray => "JsonArray",
        }
    }

    /// Checks that `text` is a value of this type (as KFP reads command-line values).
    pub fn check(self, text: &str) -> Result<(), ValueError> {
        let ok = match self {
            ParamType::String => true,
            ParamType::Integer => text.trim().parse::<i64>().is_ok(),
            ParamType::Float => text.trim().parse::<f64>().is_ok(),
            ParamType::Boolean => parse_bool(text).is_some(),
            ParamType::JsonObject => {
                matches!(serde_json::from_str(text), Ok(serde_json::Value::Object(_)))
            }
            ParamType::JsonArray => {
                matches!(serde_json::from_str(text), Ok(serde_json::Value::Array(_)))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(ValueError {
                expected: self,
                found: abbreviate(text),
            })
        }
    }
}

/// A text that is not a value of a parameter type.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("expected {} {expected}, found '{found}'", article(expected.name()))]
pub struct ValueError {
    pub expected: ParamType,
    /// The text, shortened to fit a line.
    pub found: String,
}

impl fmt::Display for ParamType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a boolean the way KFP does (Python's `strtobool`), case-insensitively.
pub fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "y" | "yes" | "t" | "true" | "on" | "1" => Some(true),
        "n" | "no" | "f" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// The declared type of an input or output: a name (`Dataset`, `Integer`, ...) and, in
/// KFP v1's dictionary form (`{GCSPath: {data_type: CSV}}`), its properties. Serializes in
/// the form it was read from: the name, or the one-key mapping.
#[derive(Clone, Debug, PartialEq)]
pub struct TypeSpec {
    pub name: String,
    pub properties: Option<serde_json::Value>,
}

impl Serialize for TypeSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match &self.properties {
            None => s.serialize_str(&self.name),
            Some(properties) => {
                let mut map = s.serialize_map(Some(1))?;
                map.serialize_entry(&self.name, properties)?;
                map.end()
            }
        }
    }
}

impl TypeSpec {
    pub fn named(name: impl Into<String>) -> TypeSpec {
        TypeSpec {
            name: name.into(),
            properties: None,
        }
    }

    /// The parameter type this names, or `None` for an artifact type.
    pub fn param_type(&self) -> Option<ParamType> {
        ParamType::from_name(&self.name)
    }

    pub fn is_artifact(&self) -> bool {
        self.param_type().is_none()
    }
}

impl fmt::Display for TypeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.properties {
            None => f.write_str(&self.name),
            Some(props) => write!(f, "{}{}", self.name, props),
        }
    }
}

impl<'de> Deserialize<'de> for TypeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let value = serde_json::Value::deserialize(deserializer)?;
        match value {
            serde_json::Value::String(name) => Ok(TypeSpec::named(name)),
            serde_json::Value::Object(map) if map.len() == 1 => {
                let (name, properties) = map.into_iter().next().expect("one entry");
                Ok(TypeSpec {
                    name,
                    properties: Some(properties),
                })
            }
            other => Err(D::Error::custom(format!(
                "expected a type name or a one-key mapping such as {{GCSPath: {{data_type: CSV}}}}, found {other}"
            ))),
        }
    }
}

/// Whether a value of type `from` may be passed to an input of type `to`, following KFP:
/// an absent type on either side matches anything, parameter types must be equal (modulo
/// their aliases), `Artifact` accepts every artifact type, and other artifact types match by
/// name (ignoring case) and, when both sides carry them, by properties.
pub fn compatible(from: Option<&TypeSpec>, to: Option<&TypeSpec>) -> bool {
    let (Some(from), Some(to)) = (from, to) else {
        return true;
    };
    match (from.param_type(), to.param_type()) {
        (Some(a), Some(b)) => a == b,
        (None, None) => {
            let generic = |t: &TypeSpec| t.name.eq_ignore_ascii_case("Artifact");
            if generic(from) || generic(to) {
                return true;
            }
            from.name.eq_ignore_ascii_case(&to.name)
                && match (&from.properties, &to.properties) {
                    (Some(a), Some(b)) => a == b,
                    _ => true,
                }
        }
        _ => false,
    }
}

/// Renders a YAML scalar as KFP v1 does when it stringifies a constant argument
/// (Python's `str()`: `True`/`False` for booleans). Mappings and sequences become JSON.
pub fn render_constant(value: &serde_yaml_ng::Value) -> Option<String> {
    use serde_yaml_ng::Value;
    Some(match value {
        Value::Null => return None,
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(_) | Value::Mapping(_) => serde_json::to_string(value).ok()?,
        Value::Tagged(tagged) => return render_constant(&tagged.value),
    })
}

fn article(word: &str) -> &'static str {
    match word.chars().next() {
        Some('A' | 'E' | 'I' | 'O' | 'U') => "an",
        _ => "a",
    }
}

/// Shortens a value for an error message.
pub(crate) fn abbreviate(text: &str) -> String {
    const MAX: usize = 60;
    if text.chars().count() <= MAX {
        text.to_owned()
    } else {
        let head: String = text.chars().take(MAX).collect();
        format!("{head}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_aliases() {
        assert_eq!(ParamType::from_name("int"), Some(ParamType::Integer));
        assert_eq!(
            ParamType::from_name("NUMBER_DOUBLE"),
            Some(ParamType::Float)
        );
        assert_eq!(ParamType::from_name("Dataset"), None);
    }

    #[test]
    fn checks_values() {
        assert!(ParamType::Integer.check(" 42 ").is_ok());
        assert_eq!(
            ParamType::Integer.check("4.2").unwrap_err().to_string(),
            "expected an Integer, found '4.2'"
        );
        assert!(ParamType::Boolean.check("True").is_ok());
        assert!(ParamType::Boolean.check("maybe").is_err());
        assert!(ParamType::JsonObject.check(r#"{"a": 1}"#).is_ok());
        assert!(ParamType::JsonObject.check("[1]").is_err());
        assert!(ParamType::JsonArray.check("[1]").is_ok());
    }

    #[test]
    fn compatibility() {
        let t = |n: &str| Some(TypeSpec::named(n));
        assert!(compatible(None, t("Dataset").as_ref()));
        assert!(compatible(t("int").as_ref(), t("Integer").as_ref()));
        assert!(!compatible(t("Integer").as_ref(), t("Float").as_ref()));
        assert!(compatible(t("Model").as_ref(), t("Artifact").as_ref()));
        assert!(compatible(t("dataset").as_ref(), t("Dataset").as_ref()));
        assert!(!compatible(t("Model").as_ref(), t("Dataset").as_ref()));
        assert!(!compatible(t("String").as_ref(), t("Dataset").as_ref()));
    }

    #[test]
    fn constants_render_like_python() {
        let v = |s: &str| serde_yaml_ng::from_str::<serde_yaml_ng::Value>(s).unwrap();
        assert_eq!(render_constant(&v("true")).unwrap(), "True");
        assert_eq!(render_constant(&v("0.25")).unwrap(), "0.25");
        assert_eq!(render_constant(&v("{a: 1}")).unwrap(), r#"{"a":1}"#);
        assert_eq!(render_constant(&v("~")), None);
    }
}
