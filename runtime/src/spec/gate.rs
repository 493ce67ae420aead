//! Deploy gates: CEL expressions over a run's metrics, such as `accuracy >= 0.93` or
//! `metrics["evaluate.roc-auc"] > 0.95 && f1 > 0.9`. Every metric is in the map `metrics`
//! as `"<task>.<metric>"`, and as `"<metric>"` when one task alone reports it; such a
//! metric whose name is a CEL identifier is also a variable of its own. Pure: no IO.

use std::collections::{BTreeMap, HashMap};

use cel::{Context, Program, Value};

/// A compiled gate.
pub struct Gate {
    source: String,
    program: Program,
}

impl std::fmt::Debug for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Gate").field(&self.source).finish()
    }
}

/// A gate that does not compile, names a metric ambiguously, or did not give a boolean.
/// CEL's own messages are kept, on one line.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GateError {
    #[error("not a valid CEL expression: {0}")]
    Syntax(String),
    #[error(
        "metric '{metric}' is reported by tasks {}; name one, e.g. metrics[\"{}.{metric}\"]",
        tasks.join(" and "),
        tasks[0]
    )]
    Ambiguous { metric: String, tasks: Vec<String> },
    #[error("the gate must be true or false, not {0}")]
    NotABoolean(String),
    #[error("the gate cannot be evaluated: {0}")]
    Evaluation(String),
}

/// Whether the gate held, and the metrics it named, for the run's record.
#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub holds: bool,
    /// `name = value` for each metric the expression mentions.
    pub evidence: Vec<String>,
}

impl Gate {
    /// Compiles a gate: a CEL expression over `metrics` (see [`Gate::check`]).
    pub fn compile(source: &str) -> Result<Gate, GateError> {
        let program =
            Program::compile(source).map_err(|e| GateError::Syntax(one_line(&e.to_string())))?;
        Ok(Gate {
            source: source.to_owned(),
            program,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Evaluates the gate over metrics by task: `metrics["task.name"]` for every metric,
    /// and `name` alone (or `metrics["name"]`) for a metric only one task reports.
    pub fn check(
        &self,
        metrics: &BTreeMap<String, BTreeMap<String, f64>>,
    ) -> Result<Verdict, GateError> {
        let mut by_name: HashMap<&str, Vec<(&str, f64)>> = HashMap::new();
        let mut map: HashMap<String, Value> = HashMap::new();
        for (task, values) in metrics {
            for (name, value) in values {
                map.insert(format!("{task}.{name}"), Value::Float(*value));
                by_name.entry(name).or_default().push((task, *value));
            }
        }
        let mut context = Context::default();
        let mut ambiguous = Vec::new();
        for (name, reports) in &by_name {
            match reports.as_slice() {
                [(_, value)] => {
                    map.insert((*name).to_owned(), Value::Float(*value));
                    if is_identifier(name) {
                        context.add_variable_from_value(*name, Value::Float(*value));
                    }
                }
                many => ambiguous.push((*name, many.iter().map(|(t, _)| *t).collect::<Vec<_>>())),
            }
        }
        let mentioned = |name: &str| words(&self.source).any(|w| w == name);
        for (name, tasks) in &ambiguous {
            if mentioned(name) {
                return Err(GateError::Ambiguous {
                    metric: (*name).to_owned(),
                    tasks: tasks.iter().map(|t| (*t).to_owned()).collect(),
                });
            }
        }
        let evidence: Vec<String> = {
            let mut e: Vec<String> = map
                .iter()
                .filter(|(key, _)| self.source.contains(key.as_str()))
                .filter(|(key, _)| key.contains('.') || mentioned(key))
                .map(|(key, value)| match value {
                    Value::Float(v) => format!("{key} = {v}"),
                    _ => key.clone(),
                })
                .collect();
            e.sort();
            e
        };
        context.add_variable_from_value("metrics", Value::from(map));
        match self.program.execute(&context) {
            Ok(Value::Bool(holds)) => Ok(Verdict { holds, evidence }),
            Ok(other) => Err(GateError::NotABoolean(format!("{other:?}"))),
            Err(e) => Err(GateError::Evaluation(one_line(&e.to_string()))),
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn is_identifier(name: &str) -> bool {
    const RESERVED: &[&str] = &[
        "true",
        "false",
        "null",
        "in",
        "as",
        "break",
        "const",
        "continue",
        "else",
        "for",
        "function",
        "if",
        "import",
        "let",
        "loop",
        "package",
        "namespace",
        "return",
        "var",
        "void",
        "while",
        "metrics",
    ];
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !RESERVED.contains(&name)
}

/// The bare words of an expression, string literals left out.
fn words(source: &str) -> impl Iterator<Item = String> {
    let mut bare = String::with_capacity(source.len());
    let mut quote = None;
    for c in source.chars() {
        match (quote, c) {
            (None, '\'' | '"') => quote = Some(c),
            (Some(q), c) if c == q => quote = None,
            (None, c) => bare.push(c),
            _ => {}
        }
        if quote.is_some() {
            bare.push(' ');
        }
    }
    bare.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| !w.is_empty())
        .map(str::to_owned)
        .collect::<Vec<_>>()
        .into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics() -> BTreeMap<String, BTreeMap<String, f64>> {
        BTreeMap::from([
            (
                "evaluate".to_owned(),
                BTreeMap::from([
                    ("accuracy".to_owned(), 0.986),
                    ("roc-auc".to_owned(), 0.99),
                    ("loss".to_owned(), 0.1),
                ]),
            ),
            (
                "train".to_owned(),
                BTreeMap::from([("loss".to_owned(), 0.06)]),
            ),
        ])
    }

    #[test]
    fn bare_names_and_the_metrics_map() {
        let m = metrics();
        let check = |src: &str| Gate::compile(src).unwrap().check(&m).unwrap().holds;
        assert!(check("accuracy >= 0.93"));
        assert!(!check("accuracy >= 0.99"));
        assert!(check("metrics['roc-auc'] > 0.95 && accuracy > 0.9"));
        assert!(check("metrics['evaluate.loss'] > metrics['train.loss']"));
        let v = Gate::compile("accuracy >= 0.99")
            .unwrap()
            .check(&m)
            .unwrap();
        assert_eq!(v.evidence, ["accuracy = 0.986"]);
    }

    #[test]
    fn mistakes_are_explained() {
        let m = metrics();
        assert!(
            Gate::compile("accuracy >=")
                .unwrap_err()
                .to_string()
                .starts_with("not a valid CEL expression")
        );
        let err = Gate::compile("loss < 0.2")
            .unwrap()
            .check(&m)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "metric 'loss' is reported by tasks evaluate and train; name one, e.g. metrics[\"evaluate.loss\"]"
        );
        let err = Gate::compile("acuracy > 0.9")
            .unwrap()
            .check(&m)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("the gate cannot be evaluated:"), "{err}");
        assert!(err.contains("acuracy"), "{err}");
        let err = Gate::compile("accuracy + 1.0")
            .unwrap()
            .check(&m)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("the gate must be true or false"), "{err}");
    }
}
