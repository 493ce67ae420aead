//! Sluice's pipeline file: parameters with types and defaults, and tasks that name
//! component files and wire their inputs to constants, parameters or other tasks'
//! outputs. Owns the structures and their YAML form (documented in
//! `docs/pipeline-format.md`); the graph built from them lives in `plan`.

use std::fmt;
use std::time::Duration;

use indexmap::IndexMap;
use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::resources::{HumanDuration, ResourceSpec};
use super::types::{TypeSpec, render_constant};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSpec {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, deserialize_with = "unique_map")]
    pub params: IndexMap<String, ParamSpec>,
    #[serde(deserialize_with = "unique_map")]
    pub tasks: IndexMap<String, TaskSpec>,
    /// What to serve when every task succeeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<DeploySpec>,
    /// Settings of the backends the pipeline may run on; they apply when it runs there.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backend: Option<BackendSpec>,
}

/// A pipeline's `backend:` section.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, expecting = "a mapping with `slurm`")]
pub struct BackendSpec {
    /// Used by `--backend slurm`; its command-line flags win field by field.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm: Option<SlurmSpec>,
}

/// How a pipeline's jobs are submitted on Slurm: `sbatch`'s `--partition` and
/// `--account`, and more `sbatch` arguments given to every job as they are.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping of partition, account and args (a list of sbatch arguments)"
)]
pub struct SlurmSpec {
    #[serde(
        default,
        deserialize_with = "slurm_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub partition: Option<String>,
    #[serde(
        default,
        deserialize_with = "slurm_name",
        skip_serializing_if = "Option::is_none"
    )]
    pub account: Option<String>,
    /// Each an option (`--qos=high`): anything else `sbatch` would take for its script.
    #[serde(
        default,
        deserialize_with = "sbatch_options",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub args: Vec<String>,
}

/// Checks a Slurm partition or account name: not empty, no spaces. The error says what
/// was expected and found.
pub fn check_slurm_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(format!(
            "expected a Slurm partition or account name, found '{name}'"
        ));
    }
    Ok(())
}

/// Checks an `sbatch` option (`--qos=high`): anything not starting with `-` `sbatch`
/// would take for its script, and the options the Slurm backend sets itself or that
/// break how it follows its jobs ([`SBATCH_OWNED`], long or short, in full or as an
/// abbreviation `sbatch` accepts) are refused, saying why.
pub fn check_sbatch_option(arg: &str) -> Result<(), String> {
    if !arg.starts_with('-') {
        return Err(format!(
            "expected an sbatch option such as --qos=high, found '{arg}' (sbatch would take it for its script)"
        ));
    }
    let owned = match arg.strip_prefix("--") {
        Some(long) => {
            let name = long.split('=').next().unwrap_or(long);
            SBATCH_OWNED
                .iter()
                .find(|(full, _, _)| *full == name || (name.len() >= 3 && full.starts_with(name)))
        }
        None => {
            let short = arg[1..].chars().next();
            SBATCH_OWNED
                .iter()
                .find(|(_, letter, _)| letter.is_some() && *letter == short)
        }
    };
    match owned {
        Some((full, _, why)) => Err(format!("'{arg}' is not allowed: --{full} {why}")),
        None => Ok(()),
    }
}

/// `sbatch` options the Slurm backend keeps to itself: long name, short letter, why.
pub const SBATCH_OWNED: &[(&str, Option<char>, &str)] = &[
    (
        "array",
        Some('a'),
        "is Sluice's: it submits a loop's iterations as job arrays itself, and follows each array task as one attempt",
    ),
    (
        "job-name",
        Some('J'),
        "is Sluice's: jobs are named sluice/<run>/<task> so that they can be found and cancelled",
    ),
    (
        "chdir",
        Some('D'),
        "is Sluice's: a job starts in its attempt's task folder",
    ),
    (
        "output",
        Some('o'),
        "is Sluice's: a job's output goes to slurm-<job id>.out in its task folder",
    ),
    (
        "wrap",
        None,
        "would replace the batch script that runs the attempt",
    ),
    (
        "requeue",
        None,
        "would run an attempt twice: Sluice submits again itself after a node failure",
    ),
    (
        "wait",
        Some('W'),
        "would hold each submission until its job ends",
    ),
    ("test-only", None, "submits no job"),
];

fn slurm_name<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let name = String::deserialize(d)?;
    check_slurm_name(&name).map_err(de::Error::custom)?;
    Ok(Some(name))
}

fn sbatch_options<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let args = Vec::<String>::deserialize(d)?;
    for arg in &args {
        check_sbatch_option(arg).map_err(de::Error::custom)?;
    }
    Ok(args)
}

/// The pipeline's last act: publish a task's output as a new version of a served model,
/// when every task succeeded and the gate holds.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DeploySpec {
    /// The served model's name (`/v1/models/<model>`, `/v2/models/<model>`).
    pub model: String,
    /// The model artifact: a task's output, `task.output`.
    pub artifact: String,
    /// The predictor component (`.wasm`) that loads the artifact, relative to this file.
    pub predictor: String,
    /// A CEL expression over the run's metrics that must hold, e.g. `accuracy >= 0.93`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// Labels to point at the new version (besides making it the default).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
}

/// A pipeline parameter. Parameter types (`String`, `Integer`, ...) carry values;
/// any other type (`Dataset`, `CSV`, ...) is an artifact given as a file path, resolved
/// against the pipeline file's folder for defaults and the working directory otherwise.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ParamSpec {
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<TypeSpec>,
    #[serde(
        default,
        deserialize_with = "constant",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub optional: bool,
}

impl ParamSpec {
    pub fn is_artifact(&self) -> bool {
        self.type_.as_ref().is_some_and(TypeSpec::is_artifact)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Path of a `component.yaml`, relative to the pipeline file.
    pub component: String,
    #[serde(default, deserialize_with = "unique_map")]
    pub inputs: IndexMap<String, Binding>,
    /// Tasks that must succeed before this one starts, beyond those it takes inputs from.
    #[serde(default)]
    pub after: Vec<String>,
    #[serde(default)]
    pub retries: RetrySpec,
    /// Wall-clock limit of one attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<HumanDuration>,
    #[serde(default)]
    pub resources: ResourceSpec,
    /// Which implementation to run when the component has both (default: wasm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefer: Option<Prefer>,
    /// Outputs to store even when the task runs inside a fused chain, which otherwise
    /// hands them to the next task in memory only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keep: Vec<String>,
    /// Take the outputs of an earlier run of exactly this task (same component,
    /// executable and inputs) instead of running it; `false` always runs it.
    #[serde(default = "yes", skip_serializing_if = "is_yes")]
    pub cache: bool,
    /// Take cached outputs only of a task that ended at most this long ago (`7d`, `12h`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cache_staleness: Option<HumanDuration>,
}

fn yes() -> bool {
    true
}

fn is_yes(b: &bool) -> bool {
    *b
}

/// A choice between a component's implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Prefer {
    Wasm,
    Container,
}

impl std::str::FromStr for Prefer {
    type Err = String;
    fn from_str(s: &str) -> Result<Prefer, String> {
        match s {
            "wasm" => Ok(Prefer::Wasm),
            "container" => Ok(Prefer::Container),
            other => Err(format!("expected wasm or container, found '{other}'")),
        }
    }
}

impl fmt::Display for Prefer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Prefer::Wasm => "wasm",
            Prefer::Container => "container",
        })
    }
}

/// Where an input's value comes from.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Binding {
    /// A constant, as KFP renders it (`value: ...` or a bare scalar).
    Value(String),
    /// A pipeline parameter (`param: name`).
    Param(String),
    /// Another task's output (`from: task.output`).
    Output { task: String, output: String },
}

impl fmt::Display for Binding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Binding::Value(v) => write!(f, "{v:?}"),
            Binding::Param(p) => write!(f, "param {p}"),
            Binding::Output { task, output } => write!(f, "{task}.{output}"),
        }
    }
}

impl<'de> Deserialize<'de> for Binding {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_yaml_ng::Value::deserialize(d)?;
        let serde_yaml_ng::Value::Mapping(map) = &value else {
            return render_constant(&value).map(Binding::Value).ok_or_else(|| {
                de::Error::custom(
                    "expected a constant, {param: name}, {from: task.output} or {value: ...}",
                )
            });
        };
        let mut entries = map.iter();
        let (Some((key, body)), None) = (entries.next(), entries.next()) else {
            return Err(de::Error::custom(
                "expected exactly one of `from`, `param` or `value`",
            ));
        };
        let text = |what: &str| {
            body.as_str()
                .map(str::to_owned)
                .ok_or_else(|| de::Error::custom(format!("`{what}` takes a name, found {body:?}")))
        };
        match key.as_str() {
            Some("param") => Ok(Binding::Param(text("param")?)),
            Some("from") => {
                let reference = text("from")?;
                match reference.split_once('.') {
                    Some((task, output)) if !task.is_empty() && !output.is_empty() => {
                        Ok(Binding::Output {
                            task: task.to_owned(),
                            output: output.to_owned(),
                        })
                    }
                    _ => Err(de::Error::custom(format!(
                        "`from` takes task.output, found '{reference}'"
                    ))),
                }
            }
            Some("value") => render_constant(body)
                .map(Binding::Value)
                .ok_or_else(|| de::Error::custom("`value` must not be null")),
            _ => Err(de::Error::custom(format!(
                "expected `from`, `param` or `value`, found {key:?}"
            ))),
        }
    }
}

/// Retry policy: `retries: 2`, or
/// `retries: {limit: 2, backoff: 1s, factor: 2, max_backoff: 1m}`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct RetrySpec {
    /// Attempts after the first.
    pub limit: u32,
    /// Delay before the first retry.
    pub backoff: HumanDuration,
    /// Each further delay is the previous one times this.
    pub factor: f64,
    pub max_backoff: HumanDuration,
}

impl Default for RetrySpec {
    fn default() -> Self {
        RetrySpec {
            limit: 0,
            backoff: HumanDuration(Duration::from_secs(1)),
            factor: 2.0,
            max_backoff: HumanDuration(Duration::from_secs(60)),
        }
    }
}

impl RetrySpec {
    /// The delay before retry number `retry` (1 for the first retry): `backoff` times
    /// `factor` to the power `retry - 1`, at most `max_backoff`. Never panics: a product
    /// that overflows (or is not a number) is `max_backoff`.
    pub fn delay(&self, retry: u32) -> Duration {
        let scale = self
            .factor
            .powi(i32::try_from(retry.saturating_sub(1)).unwrap_or(i32::MAX));
        let secs = self.backoff.0.as_secs_f64() * scale;
        let max = self.max_backoff.0;
        if secs.is_nan() {
            return max;
        }
        Duration::try_from_secs_f64(secs.max(0.0)).map_or(max, |d| d.min(max))
    }
}

impl<'de> Deserialize<'de> for RetrySpec {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            limit: u32,
            #[serde(default)]
            backoff: Option<HumanDuration>,
            #[serde(default)]
            factor: Option<f64>,
            #[serde(default)]
            max_backoff: Option<HumanDuration>,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Form {
            Count(u32),
            Full(Full),
        }
        let defaults = RetrySpec::default();
        // A list would pass for the struct's fields in order: only a count or a mapping.
        let value = serde_yaml_ng::Value::deserialize(d)?;
        if !matches!(
            value,
            serde_yaml_ng::Value::Number(_) | serde_yaml_ng::Value::Mapping(_)
        ) {
            return Err(de::Error::custom(
                "retries: expected a count or {limit, backoff, factor, max_backoff} with a whole-number limit",
            ));
        }
        let spec = match Form::deserialize(value).map_err(|_| {
            de::Error::custom(
                "retries: expected a count or {limit, backoff, factor, max_backoff} with a whole-number limit",
            )
        })? {
            Form::Count(limit) => RetrySpec { limit, ..defaults },
            Form::Full(f) => RetrySpec {
                limit: f.limit,
                backoff: f.backoff.unwrap_or(defaults.backoff),
                factor: f.factor.unwrap_or(defaults.factor),
                max_backoff: f.max_backoff.unwrap_or(defaults.max_backoff),
            },
        };
        if !(spec.factor.is_finite() && spec.factor >= 1.0) {
            return Err(de::Error::custom("retries: factor must be at least 1"));
        }
        Ok(spec)
    }
}

fn constant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = serde_yaml_ng::Value::deserialize(d)?;
    Ok(render_constant(&value))
}

/// Deserialises a mapping, refusing duplicate keys (YAML parsers keep the last one silently).
fn unique_map<'de, D, V>(d: D) -> Result<IndexMap<String, V>, D::Error>
where
    D: Deserializer<'de>,
    V: Deserialize<'de>,
{
    struct UniqueMap<V>(std::marker::PhantomData<V>);
    impl<'de, V: Deserialize<'de>> Visitor<'de> for UniqueMap<V> {
        type Value = IndexMap<String, V>;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a mapping")
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(IndexMap::new())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = IndexMap::new();
            while let Some(key) = map.next_key::<String>()? {
                if out.contains_key(&key) {
                    return Err(de::Error::custom(format!("duplicate name '{key}'")));
                }
                let value = map.next_value()?;
                out.insert(key, value);
            }
            Ok(out)
        }
    }
    d.deserialize_any(UniqueMap(std::marker::PhantomData))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sbatch_options_sluice_sets_itself_are_refused_in_every_spelling() {
        for ok in [
            "--qos=high",
            "--hold",
            "-p",
            "--time=10",
            "--exclusive",
            "-A",
            "--arrayx=1",
        ] {
            assert_eq!(check_sbatch_option(ok), Ok(()), "{ok}");
        }
        for owned in [
            "--array=0-2",
            "--array",
            "--arr=0-2",
            "-a0-2",
            "-a",
            "--job-name=x",
            "-Jx",
            "--chdir=/tmp",
            "-D/tmp",
            "--output=o.txt",
            "-o",
            "--wrap=true",
            "--requeue",
            "--wait",
            "-W",
            "--test-only",
        ] {
            let e = check_sbatch_option(owned).expect_err(owned);
            assert!(
                e.starts_with(&format!("'{owned}' is not allowed: --")),
                "{e}"
            );
        }
        let e = check_sbatch_option("--array=0-2").unwrap_err();
        assert!(e.contains("job arrays itself"), "{e}");
    }

    #[test]
    fn bindings() {
        let inputs: IndexMap<String, Binding> = serde_yaml_ng::from_str(
            "{a: 3, b: {param: seed}, c: {from: split.train}, d: {value: [1, 2]}, e: 'x.y'}",
        )
        .unwrap();
        assert_eq!(inputs["a"], Binding::Value("3".into()));
        assert_eq!(inputs["b"], Binding::Param("seed".into()));
        assert_eq!(
            inputs["c"],
            Binding::Output {
                task: "split".into(),
                output: "train".into()
            }
        );
        assert_eq!(inputs["d"], Binding::Value("[1,2]".into()));
        assert_eq!(inputs["e"], Binding::Value("x.y".into()));
    }

    #[test]
    fn output_names_may_contain_dots_and_spaces() {
        let b: Binding = serde_yaml_ng::from_str("{from: eval.MLPipeline Metrics.v2}").unwrap();
        assert_eq!(
            b,
            Binding::Output {
                task: "eval".into(),
                output: "MLPipeline Metrics.v2".into()
            }
        );
    }

    #[test]
    fn retry_forms() {
        let r: RetrySpec = serde_yaml_ng::from_str("3").unwrap();
        assert_eq!(r.limit, 3);
        let r: RetrySpec =
            serde_yaml_ng::from_str("{limit: 4, backoff: 100ms, factor: 3, max_backoff: 500ms}")
                .unwrap();
        assert_eq!(r.delay(1), Duration::from_millis(100));
        assert_eq!(r.delay(2), Duration::from_millis(300));
        assert_eq!(r.delay(3), Duration::from_millis(500));
        assert!(serde_yaml_ng::from_str::<RetrySpec>("{limit: 1, factor: 0.5}").is_err());
        assert!(serde_yaml_ng::from_str::<RetrySpec>("-1").is_err());
        // A list is not the struct's fields in order.
        assert!(serde_yaml_ng::from_str::<RetrySpec>("[1]").is_err());
        assert!(serde_yaml_ng::from_str::<RetrySpec>("[1, 2s, 2, 10s]").is_err());
    }

    #[test]
    fn retry_delays_never_panic() {
        let huge = RetrySpec {
            limit: u32::MAX,
            backoff: HumanDuration(Duration::MAX),
            factor: f64::MAX,
            max_backoff: HumanDuration(Duration::from_secs(60)),
        };
        assert_eq!(huge.delay(u32::MAX), Duration::from_secs(60));
        assert_eq!(huge.delay(1), Duration::from_secs(60));
        let shrinking = RetrySpec {
            factor: -2.0,
            backoff: HumanDuration(Duration::from_secs(1)),
            ..huge
        };
        assert_eq!(shrinking.delay(2), Duration::ZERO);
        let nan = RetrySpec {
            factor: f64::NAN,
            ..shrinking
        };
        assert_eq!(nan.delay(2), Duration::from_secs(60));
    }

    #[test]
    fn duplicate_task_names_are_rejected() {
        let err = serde_yaml_ng::from_str::<PipelineSpec>(
            "name: p\ntasks:\n  a: {component: x.yaml}\n  a: {component: y.yaml}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("duplicate name 'a'"), "{err}");
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_yaml_ng::from_str::<PipelineSpec>(
            "name: p\ntasks:\n  a: {component: x.yaml, retry: 2}\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `retry`"), "{err}");
    }
}
