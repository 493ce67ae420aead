//! Renders a plan as text (stages, bindings), Graphviz DOT, or JSON. Produces strings
//! only; printing them is the caller's business.

use std::fmt::Write as _;

use serde::Serialize;

use super::{ParamValue, Plan, Source, ValueOrigin};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Text,
    Dot,
    Json,
}

pub(super) fn render(plan: &Plan, format: Format) -> String {
    match format {
        Format::Text => text(plan),
        Format::Dot => dot(plan),
        Format::Json => {
            let mut s = serde_json::to_string_pretty(&json(plan)).expect("plan JSON serialises");
            s.push('\n');
            s
        }
    }
}

fn implementations(task: &super::PlannedTask) -> Vec<&'static str> {
    let imp = &task.component.spec.implementation;
    let mut kinds = Vec::new();
    if imp.wasm.is_some() {
        kinds.push("wasm");
    }
    if imp.container.is_some() {
        kinds.push("container");
    }
    kinds
}

fn describe_source(plan: &Plan, source: &Source) -> String {
    match source {
        Source::Constant(v) => format!("{v:?}"),
        Source::Default(v) => format!("{v:?} (default)"),
        Source::Param { name, .. } => format!("param {name}"),
        Source::Output { task, output } => format!("{}.{output}", plan.tasks[*task].name),
    }
}

fn describe_param(value: &ParamValue) -> String {
    match value {
        ParamValue::Value(v) => v.clone(),
        ParamValue::File(p) => p.display().to_string(),
    }
}

fn text(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pipeline {} ({})",
        plan.name,
        crate::count(plan.tasks.len(), "task")
    );
    if let Some(d) = &plan.description {
        let _ = writeln!(out, "  {}", d.trim());
    }
    if !plan.params.is_empty() {
        let _ = writeln!(out, "params");
        let width = plan.params.keys().map(String::len).max().unwrap_or(0);
        for (name, p) in &plan.params {
            let ty = p
                .spec
                .type_
                .as_ref()
                .map_or("String".to_owned(), |t| t.to_string());
            let (value, origin) = match &p.value {
                Some((v, ValueOrigin::Given)) => (describe_param(v), "given"),
                Some((v, ValueOrigin::Default)) => (describe_param(v), "default"),
                None => ("(unset)".to_owned(), "optional"),
            };
            let _ = writeln!(out, "  {name:<width$} = {value}  [{ty}, {origin}]");
        }
    }
    let stages = plan.stages();
    let last = stages.iter().copied().max().unwrap_or(0);
    for stage in 1..=last {
        let _ = writeln!(out, "stage {stage}");
        for (_, task) in plan
            .tasks
            .iter()
            .enumerate()
            .filter(|(i, _)| stages[*i] == stage)
        {
            let _ = writeln!(
                out,
                "  {}  {} [{}]",
                task.name,
                task.component.name(),
                implementations(task).join(", ")
            );
            let width = task.inputs.keys().map(String::len).max().unwrap_or(0);
            for (input, source) in &task.inputs {
                let _ = writeln!(
                    out,
                    "      {input:<width$} <- {}",
                    describe_source(plan, source)
                );
            }
            let data_deps: Vec<usize> = task
                .inputs
                .values()
                .filter_map(|s| match s {
                    Source::Output { task, .. } => Some(*task),
                    _ => None,
                })
                .collect();
            let after: Vec<&str> = task
                .upstream
                .iter()
                .filter(|u| !data_deps.contains(u))
                .map(|&u| plan.tasks[u].name.as_str())
                .collect();
            if !after.is_empty() {
                let _ = writeln!(out, "      after {}", after.join(", "));
            }
            let mut limits = Vec::new();
            if task.retry.limit > 0 {
                limits.push(format!("retries {}", task.retry.limit));
            }
            if let Some(t) = task.timeout {
                limits.push(format!("timeout {}", humantime::format_duration(t)));
            }
            if let Some(m) = task.resources.memory {
                limits.push(format!("memory {m}"));
            }
            if let Some(c) = task.resources.cpu_time {
                limits.push(format!("cpu time {c}"));
            }
            if let Some(a) = &task.resources.accelerator {
                limits.push(format!("{} x{}", a.kind, a.count));
            }
            if !limits.is_empty() {
                let _ = writeln!(out, "      ({})", limits.join(", "));
            }
        }
    }
    if let Some(d) = &plan.deploy {
        let _ = writeln!(
            out,
            "deploy model {} <- {}.{}, if every task succeeds{}",
            d.model,
            plan.tasks[d.task].name,
            d.output,
            d.gate
                .as_ref()
                .map(|g| format!(" and `{g}` holds"))
                .unwrap_or_default()
        );
        let _ = writeln!(out, "      predictor {}", d.predictor.display());
        if !d.labels.is_empty() {
            let _ = writeln!(out, "      labels {}", d.labels.join(", "));
        }
    }
    out
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn dot(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&plan.name));
    let _ = writeln!(out, "  rankdir=LR;");
    let _ = writeln!(out, "  node [shape=box, style=rounded];");
    for (i, task) in plan.tasks.iter().enumerate() {
        let _ = writeln!(
            out,
            "  t{i} [label=\"{}\\n{} ({})\"];",
            dot_escape(&task.name),
            dot_escape(&task.component.name()),
            implementations(task).join(", ")
        );
    }
    for (i, task) in plan.tasks.iter().enumerate() {
        let mut data_deps = Vec::new();
        for (input, source) in &task.inputs {
            if let Source::Output { task: from, output } = source {
                data_deps.push(*from);
                let _ = writeln!(
                    out,
                    "  t{from} -> t{i} [label=\"{} -> {}\"];",
                    dot_escape(output),
                    dot_escape(input)
                );
            }
        }
        for &u in task.upstream.iter().filter(|u| !data_deps.contains(u)) {
            let _ = writeln!(out, "  t{u} -> t{i} [style=dashed, label=\"after\"];");
        }
    }
    out.push_str("}\n");
    out
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    name: &'a str,
    description: Option<&'a str>,
    source: String,
    source_digest: &'a str,
    params: Vec<JsonParam<'a>>,
    tasks: Vec<JsonTask<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deploy: Option<JsonDeploy<'a>>,
}

#[derive(Serialize)]
struct JsonDeploy<'a> {
    model: &'a str,
    task: &'a str,
    output: &'a str,
    predictor: String,
    gate: Option<&'a str>,
    labels: &'a [String],
}

#[derive(Serialize)]
struct JsonParam<'a> {
    name: &'a str,
    #[serde(rename = "type")]
    type_: Option<String>,
    value: Option<String>,
    origin: Option<&'static str>,
    artifact: bool,
}

#[derive(Serialize)]
struct JsonTask<'a> {
    name: &'a str,
    stage: usize,
    component: String,
    component_file: String,
    implementations: Vec<&'static str>,
    upstream: Vec<&'a str>,
    inputs: Vec<JsonInput<'a>>,
    retries: u32,
    timeout_ms: Option<u128>,
    resources: &'a crate::spec::ResourceSpec,
}

#[derive(Serialize)]
struct JsonInput<'a> {
    name: &'a str,
    #[serde(flatten)]
    source: JsonSource<'a>,
}

#[derive(Serialize)]
#[serde(tag = "from", rename_all = "snake_case")]
enum JsonSource<'a> {
    Constant { value: &'a str },
    Default { value: &'a str },
    Param { param: &'a str, value: String },
    Output { task: &'a str, output: &'a str },
}

fn json(plan: &Plan) -> JsonPlan<'_> {
    let stages = plan.stages();
    JsonPlan {
        name: &plan.name,
        description: plan.description.as_deref(),
        source: plan.source.display().to_string(),
        source_digest: &plan.source_digest,
        params: plan
            .params
            .iter()
            .map(|(name, p)| JsonParam {
                name,
                type_: p.spec.type_.as_ref().map(|t| t.to_string()),
                value: p.value.as_ref().map(|(v, _)| describe_param(v)),
                origin: p.value.as_ref().map(|(_, o)| match o {
                    ValueOrigin::Given => "given",
                    ValueOrigin::Default => "default",
                }),
                artifact: p.spec.is_artifact(),
            })
            .collect(),
        tasks: plan
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| JsonTask {
                name: &t.name,
                stage: stages[i],
                component: t.component.name(),
                component_file: t.component.path.display().to_string(),
                implementations: implementations(t),
                upstream: t
                    .upstream
                    .iter()
                    .map(|&u| plan.tasks[u].name.as_str())
                    .collect(),
                inputs: t
                    .inputs
                    .iter()
                    .map(|(name, s)| JsonInput {
                        name,
                        source: match s {
                            Source::Constant(v) => JsonSource::Constant { value: v },
                            Source::Default(v) => JsonSource::Default { value: v },
                            Source::Param { name, value } => JsonSource::Param {
                                param: name,
                                value: describe_param(value),
                            },
                            Source::Output { task, output } => JsonSource::Output {
                                task: &plan.tasks[*task].name,
                                output,
                            },
                        },
                    })
                    .collect(),
                retries: t.retry.limit,
                timeout_ms: t.timeout.map(|d| d.as_millis()),
                resources: &t.resources,
            })
            .collect(),
        deploy: plan.deploy.as_ref().map(|d| JsonDeploy {
            model: &d.model,
            task: &plan.tasks[d.task].name,
            output: &d.output,
            predictor: d.predictor.display().to_string(),
            gate: d.gate.as_deref(),
            labels: &d.labels,
        }),
    }
}
