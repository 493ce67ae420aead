//! KFP v1's command-line placeholder language (`inputValue`, `inputPath`, `outputPath`,
//! `inputUri`, `outputUri`, `concat`, `if`/`cond`/`then`/`else`, `isPresent`,
//! `executorInput`): how it is
//! read from YAML and how it expands into an argument vector. Expansion follows KFP's
//! `_resolve_command_line_and_paths`: an absent optional input drops its placeholder, a
//! `concat` skips absent parts, an `if` splices its chosen list into the surrounding one,
//! and a condition is read with Python's `strtobool`. Executors supply the paths.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::types::parse_bool;

/// One element of `command` or `args`. Serializes as `component.yaml` writes it (a
/// string, or a one-key mapping such as `{inputValue: name}`), so what is written reads back
/// as the same `Arg`.
#[derive(Clone, Debug, PartialEq)]
pub enum Arg {
    Literal(String),
    InputValue(String),
    InputPath(String),
    InputUri(String),
    OutputPath(String),
    OutputUri(String),
    Concat(Vec<Arg>),
    If {
        cond: Box<Arg>,
        then: Vec<Arg>,
        otherwise: Vec<Arg>,
    },
    IsPresent(String),
    /// The KFP v2 `ExecutorInput` JSON of the task.
    ExecutorInput,
    /// KFP 1.8's `outputMetadata`: the path of the file a step writes its executor output
    /// to (artifact metadata, parameter values), read back after it.
    OutputMetadata,
}

/// Which side of a component a placeholder names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Port {
    Input,
    Output,
}

impl Arg {
    /// Calls `f` for every input or output this argument names, recursively.
    pub fn visit_references<'a>(&'a self, f: &mut impl FnMut(Port, &'a str, &'static str)) {
        match self {
            Arg::Literal(_) | Arg::ExecutorInput | Arg::OutputMetadata => {}
            Arg::InputValue(n) => f(Port::Input, n, "inputValue"),
            Arg::InputPath(n) => f(Port::Input, n, "inputPath"),
            Arg::InputUri(n) => f(Port::Input, n, "inputUri"),
            Arg::IsPresent(n) => f(Port::Input, n, "isPresent"),
            Arg::OutputPath(n) => f(Port::Output, n, "outputPath"),
            Arg::OutputUri(n) => f(Port::Output, n, "outputUri"),
            Arg::Concat(items) => items.iter().for_each(|a| a.visit_references(f)),
            Arg::If {
                cond,
                then,
                otherwise,
            } => {
                cond.visit_references(f);
                then.iter().for_each(|a| a.visit_references(f));
                otherwise.iter().for_each(|a| a.visit_references(f));
            }
        }
    }
}

/// What expansion needs to know about one task: the values of its present inputs and
/// where its inputs and outputs live as the program sees them.
pub trait Bindings {
    /// The value of a present input (for an artifact, its content), or `None` if the input
    /// was not given.
    fn value(&self, input: &str) -> Option<Cow<'_, str>>;
    fn is_present(&self, input: &str) -> bool;
    fn input_path(&self, input: &str) -> String;
    fn output_path(&self, output: &str) -> String;
    /// The task's KFP `ExecutorInput` as JSON text.
    fn executor_input(&self) -> String;
    /// Where the task's executor output file is, as the program sees it.
    fn executor_output(&self) -> String;
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("the condition of an `if` placeholder must be a boolean, found '{0}'")]
    NotABoolean(String),
    #[error("an `isPresent` placeholder may only be used as the condition of an `if`")]
    BareIsPresent,
}

/// Expands a `command` or `args` list into argument strings.
pub fn expand(args: &[Arg], bindings: &dyn Bindings) -> Result<Vec<String>, ExpandError> {
    let mut out = Vec::with_capacity(args.len());
    expand_list(args, bindings, &mut out)?;
    Ok(out)
}

fn expand_list(
    args: &[Arg],
    bindings: &dyn Bindings,
    out: &mut Vec<String>,
) -> Result<(), ExpandError> {
    for arg in args {
        match expand_one(arg, bindings)? {
            Expanded::Absent => {}
            Expanded::One(s) => out.push(s),
            Expanded::Many(list) => out.extend(list),
        }
    }
    Ok(())
}

enum Expanded {
    Absent,
    One(String),
    Many(Vec<String>),
}

fn expand_one(arg: &Arg, bindings: &dyn Bindings) -> Result<Expanded, ExpandError> {
    Ok(match arg {
        Arg::Literal(s) => Expanded::One(s.clone()),
        Arg::InputValue(name) => match bindings.value(name) {
            Some(v) => Expanded::One(v.into_owned()),
            None => Expanded::Absent,
        },
        Arg::InputPath(name) | Arg::InputUri(name) => {
            if bindings.is_present(name) {
                Expanded::One(bindings.input_path(name))
            } else {
                Expanded::Absent
            }
        }
        Arg::OutputPath(name) | Arg::OutputUri(name) => Expanded::One(bindings.output_path(name)),
        Arg::Concat(items) => {
            let mut parts = Vec::new();
            expand_list(items, bindings, &mut parts)?;
            Expanded::One(parts.concat())
        }
        Arg::If {
            cond,
            then,
            otherwise,
        } => {
            let chosen = if condition(cond, bindings)? {
                then
            } else {
                otherwise
            };
            let mut list = Vec::new();
            expand_list(chosen, bindings, &mut list)?;
            Expanded::Many(list)
        }
        Arg::IsPresent(_) => return Err(ExpandError::BareIsPresent),
        Arg::ExecutorInput => Expanded::One(bindings.executor_input()),
        Arg::OutputMetadata => Expanded::One(bindings.executor_output()),
    })
}

fn condition(cond: &Arg, bindings: &dyn Bindings) -> Result<bool, ExpandError> {
    let text = match cond {
        Arg::IsPresent(name) => return Ok(bindings.is_present(name)),
        other => match expand_one(other, bindings)? {
            Expanded::Absent => return Ok(false),
            Expanded::One(s) => s,
            Expanded::Many(list) if list.is_empty() => return Ok(false),
            Expanded::Many(list) => list.concat(),
        },
    };
    parse_bool(&text).ok_or(ExpandError::NotABoolean(text))
}

impl<'de> Deserialize<'de> for Arg {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ArgVisitor)
    }
}

const PLACEHOLDERS: &[&str] = &[
    "inputValue",
    "inputPath",
    "inputUri",
    "outputPath",
    "outputUri",
    "concat",
    "if",
    "isPresent",
    "executorInput",
    "outputMetadata",
];

impl Serialize for Arg {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        #[derive(Serialize)]
        struct IfBody<'a> {
            cond: &'a Arg,
            then: &'a [Arg],
            #[serde(rename = "else")]
            otherwise: &'a [Arg],
        }
        let mut map = match self {
            Arg::Literal(text) => return s.serialize_str(text),
            _ => s.serialize_map(Some(1))?,
        };
        match self {
            Arg::Literal(_) => unreachable!("written above"),
            Arg::InputValue(n) => map.serialize_entry("inputValue", n)?,
            Arg::InputPath(n) => map.serialize_entry("inputPath", n)?,
            Arg::InputUri(n) => map.serialize_entry("inputUri", n)?,
            Arg::OutputPath(n) => map.serialize_entry("outputPath", n)?,
            Arg::OutputUri(n) => map.serialize_entry("outputUri", n)?,
            Arg::IsPresent(n) => map.serialize_entry("isPresent", n)?,
            Arg::Concat(items) => map.serialize_entry("concat", items)?,
            Arg::If {
                cond,
                then,
                otherwise,
            } => map.serialize_entry(
                "if",
                &IfBody {
                    cond,
                    then,
                    otherwise,
                },
            )?,
            Arg::ExecutorInput => map.serialize_entry("executorInput", &())?,
            Arg::OutputMetadata => map.serialize_entry("outputMetadata", &())?,
        }
        map.end()
    }
}

struct ArgVisitor;

impl<'de> Visitor<'de> for ArgVisitor {
    type Value = Arg;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string or a placeholder such as {inputValue: name}")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Arg, E> {
        Ok(Arg::Literal(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Arg, E> {
        Ok(Arg::Literal(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Arg, E> {
        Ok(Arg::Literal(v.to_string()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Arg, E> {
        Ok(Arg::Literal(v.to_string()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Arg, E> {
        Ok(Arg::Literal(v.to_string()))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Arg, E> {
        Ok(Arg::Literal(if v { "True" } else { "False" }.to_owned()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Arg, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::custom("empty mapping is not a placeholder"));
        };
        let arg = match key.as_str() {
            "inputValue" => Arg::InputValue(map.next_value()?),
            "inputPath" => Arg::InputPath(map.next_value()?),
            "inputUri" => Arg::InputUri(map.next_value()?),
            "outputPath" => Arg::OutputPath(map.next_value()?),
            "outputUri" => Arg::OutputUri(map.next_value()?),
            "isPresent" => Arg::IsPresent(map.next_value()?),
            "executorInput" => {
                // Written `{executorInput: null}` or `{executorInput: {}}`.
                let _: de::IgnoredAny = map.next_value()?;
                Arg::ExecutorInput
            }
            "outputMetadata" => {
                // Written `{outputMetadata: null}` or `{outputMetadata: {}}` (KFP 1.8).
                let _: de::IgnoredAny = map.next_value()?;
                Arg::OutputMetadata
            }
            "concat" => Arg::Concat(map.next_value()?),
            "if" => {
                let body: IfBody = map.next_value()?;
                Arg::If {
                    cond: Box::new(body.cond),
                    then: body.then.0,
                    otherwise: body.otherwise.map(|l| l.0).unwrap_or_default(),
                }
            }
            other => return Err(de::Error::unknown_variant(other, PLACEHOLDERS)),
        };
        if let Some(extra) = map.next_key::<String>()? {
            return Err(de::Error::custom(format!(
                "a placeholder has exactly one key, found '{key}' and '{extra}'"
            )));
        }
        Ok(arg)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IfBody {
    cond: Arg,
    then: OneOrMany,
    #[serde(rename = "else", default)]
    otherwise: Option<OneOrMany>,
}

/// KFP accepts a single placeholder where a list is expected in `then`/`else`.
struct OneOrMany(Vec<Arg>);

impl<'de> Deserialize<'de> for OneOrMany {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = OneOrMany;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of arguments or a single argument")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element()? {
                    items.push(item);
                }
                Ok(OneOrMany(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<OneOrMany, A::Error> {
                ArgVisitor.visit_map(map).map(|a| OneOrMany(vec![a]))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<OneOrMany, E> {
                Ok(OneOrMany(vec![Arg::Literal(v.to_owned())]))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<OneOrMany, E> {
                ArgVisitor.visit_i64(v).map(|a| OneOrMany(vec![a]))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<OneOrMany, E> {
                ArgVisitor.visit_u64(v).map(|a| OneOrMany(vec![a]))
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<OneOrMany, E> {
                ArgVisitor.visit_f64(v).map(|a| OneOrMany(vec![a]))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<OneOrMany, E> {
                ArgVisitor.visit_bool(v).map(|a| OneOrMany(vec![a]))
            }
        }
        deserializer.deserialize_any(V)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    struct Fake(BTreeMap<&'static str, &'static str>);

    impl Bindings for Fake {
        fn value(&self, input: &str) -> Option<Cow<'_, str>> {
            self.0.get(input).map(|v| Cow::Borrowed(*v))
        }
        fn is_present(&self, input: &str) -> bool {
            self.0.contains_key(input)
        }
        fn input_path(&self, input: &str) -> String {
            format!("/inputs/{input}/data")
        }
        fn output_path(&self, output: &str) -> String {
            format!("/outputs/{output}/data")
        }
        fn executor_input(&self) -> String {
            "{}".into()
        }
        fn executor_output(&self) -> String {
            "/tmp/outputs/.kfp/executor_output.json".into()
        }
    }

    fn args(yaml: &str) -> Vec<Arg> {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn run(yaml: &str, values: &[(&'static str, &'static str)]) -> Vec<String> {
        expand(&args(yaml), &Fake(values.iter().copied().collect())).unwrap()
    }

    #[test]
    fn plain_placeholders() {
        let got = run(
            "[--lr, {inputValue: lr}, --data, {inputPath: data}, --out, {outputPath: model}, 3, true]",
            &[("lr", "0.1"), ("data", "x")],
        );
        assert_eq!(
            got,
            [
                "--lr",
                "0.1",
                "--data",
                "/inputs/data/data",
                "--out",
                "/outputs/model/data",
                "3",
                "True"
            ]
        );
    }

    #[test]
    fn absent_optional_input_drops_its_placeholder() {
        assert_eq!(
            run("[--lr, {inputValue: lr}, {inputPath: data}]", &[]),
            ["--lr"]
        );
    }

    #[test]
    fn concat_skips_absent_parts() {
        assert_eq!(
            run(
                "[{concat: [--x=, {inputValue: x}, {inputValue: y}]}]",
                &[("x", "1")]
            ),
            ["--x=1"]
        );
    }

    #[test]
    fn if_splices_the_chosen_list() {
        let yaml =
            "[a, {if: {cond: {isPresent: s}, then: [--s, {inputPath: s}], else: [--no-s]}}, z]";
        assert_eq!(
            run(yaml, &[("s", "v")]),
            ["a", "--s", "/inputs/s/data", "z"]
        );
        assert_eq!(run(yaml, &[]), ["a", "--no-s", "z"]);
    }

    #[test]
    fn if_without_else_and_single_then() {
        let yaml = "[{if: {cond: {inputValue: flag}, then: --verbose}}]";
        assert_eq!(run(yaml, &[("flag", "True")]), ["--verbose"]);
        assert!(run(yaml, &[("flag", "false")]).is_empty());
        assert!(run(yaml, &[]).is_empty());
    }

    #[test]
    fn literal_conditions() {
        assert_eq!(
            run("[{if: {cond: true, then: [a], else: [b]}}]", &[]),
            ["a"]
        );
        assert_eq!(
            run("[{if: {cond: 'False', then: [a], else: [b]}}]", &[]),
            ["b"]
        );
    }

    #[test]
    fn a_condition_that_is_not_boolean_is_an_error() {
        let err = expand(
            &args("[{if: {cond: {inputValue: x}, then: [a]}}]"),
            &Fake([("x", "maybe")].into_iter().collect()),
        )
        .unwrap_err();
        assert_eq!(err, ExpandError::NotABoolean("maybe".into()));
    }

    #[test]
    fn unknown_placeholders_are_rejected_with_their_position() {
        let err = serde_yaml_ng::from_str::<Vec<Arg>>("- a\n- {inputPaths: x}\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("unknown variant `inputPaths`"), "{msg}");
        assert!(msg.contains("line 2"), "{msg}");
    }

    #[test]
    fn references_are_visited() {
        let mut seen = Vec::new();
        for a in args(
            "[{concat: [{inputValue: a}]}, {if: {cond: {isPresent: b}, then: [{outputPath: c}]}}]",
        ) {
            a.visit_references(&mut |port, name, _| seen.push((port, name.to_owned())));
        }
        assert_eq!(
            seen,
            [
                (Port::Input, "a".to_owned()),
                (Port::Input, "b".to_owned()),
                (Port::Output, "c".to_owned())
            ]
        );
    }
}
