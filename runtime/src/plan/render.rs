//! Renders a plan as text (stages, bindings), Graphviz DOT, or JSON. Produces strings
//! only; printing them is the caller's business.

use std::fmt::Write as _;

use serde::Serialize;

use super::{Group, Node, ParamValue, Plan, Source, Trigger, ValueOrigin};

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

/// How a task may run: `wasm`, `container`, both, or (a KFP importer, which has neither)
/// `importer`.
pub(super) fn implementations(task: &super::PlannedTask) -> Vec<&'static str> {
    let imp = &task.component.spec.implementation;
    let mut kinds = Vec::new();
    if imp.wasm.is_some() {
        kinds.push("wasm");
    }
    if imp.container.is_some() {
        kinds.push("container");
    }
    if kinds.is_empty() {
        kinds.push("importer");
    }
    kinds
}

fn describe_source(plan: &Plan, source: &Source) -> String {
    match source {
        Source::Constant(v) => format!("{v:?}"),
        Source::Default(v) => format!("{v:?} (default)"),
        Source::Param { name, .. } => format!("param {}", esc(name)),
        Source::Output { task, output } => {
            format!("{}.{}", esc(&plan.tasks[*task].name), esc(output))
        }
        Source::Item { group } => format!("item of {}", esc(&plan.groups[*group].name)),
        Source::Collected { group, of } => format!(
            "[{} for each item of {}]",
            describe_source(plan, of),
            esc(&plan.groups[*group].name)
        ),
        Source::OneOf(list) => {
            let each: Vec<String> = list.iter().map(|s| describe_source(plan, s)).collect();
            format!("first of ({})", each.join(", "))
        }
        Source::Select { of, selector } => {
            format!(
                "{} selected by `{}`",
                describe_source(plan, of),
                esc(selector)
            )
        }
        Source::FinalStatus(node) => format!("final status of {}", esc(node_name(plan, *node))),
        Source::RunText(text) => format!("{text:?} (filled in at run time)"),
    }
}

/// Text as one line of a plan: control characters (a newline in a task name) escaped, so
/// no name can make lines of its own.
pub(crate) fn esc(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .map(|c| {
                if c.is_control() {
                    c.escape_default().to_string()
                } else {
                    c.to_string()
                }
            })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

fn node_name(plan: &Plan, node: Node) -> &str {
    match node {
        Node::Task(i) => &plan.tasks[i].name,
        Node::Group(g) => &plan.groups[g].name,
    }
}

/// What a group decides, in a phrase: `if ...`, `for each item of ...`, both; for a
/// group that decides nothing itself, what it holds: the body of an exit handler (a task
/// that runs however it ends waits for it), a choice of branches (only groups with
/// conditions in it: KFP's `dsl.If`/`Elif`/`Else`), or a nested pipeline.
pub(super) fn describe_group(plan: &Plan, g: usize) -> String {
    let group = &plan.groups[g];
    let mut parts = Vec::new();
    if let Some(condition) = &group.condition {
        parts.push(format!("if `{}`", esc(condition)));
    }
    if let Some(it) = &group.iteration {
        let items = match &it.items {
            // A list written in the pipeline, as written.
            Source::Constant(list) => list.clone(),
            other => describe_source(plan, other),
        };
        parts.push(format!(
            "for each item of {items}{}",
            it.parallelism
                .map(|n| format!(", at most {n} at once"))
                .unwrap_or_default()
        ));
    }
    if parts.is_empty() {
        let guarded = plan
            .tasks
            .iter()
            .any(|t| t.trigger == Trigger::AllEnded && t.after_groups.contains(&g));
        let members: Vec<&Group> = plan.groups.iter().filter(|m| m.group == Some(g)).collect();
        let branches = !members.is_empty()
            && members.iter().all(|m| m.condition.is_some())
            && !plan.tasks.iter().any(|t| t.group == Some(g));
        parts.push(
            if guarded {
                "exit handler's body: its handler runs however it ends"
            } else if branches {
                "branches: each runs if its condition holds"
            } else {
                "nested pipeline"
            }
            .to_owned(),
        );
    }
    parts.join(", ")
}

/// Task indices a source reads outputs of.
pub(super) fn source_tasks(source: &Source) -> Vec<usize> {
    let mut tasks = Vec::new();
    source.clone().tasks_mut(&mut |t| tasks.push(*t));
    tasks
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
                None if p.spec.optional => ("(unset)".to_owned(), "optional"),
                None => ("(required)".to_owned(), "required"),
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
                esc(&task.name),
                esc(&task.component.name()),
                implementations(task).join(", ")
            );
            input_lines(plan, &task.inputs, &mut out);
            let data_deps: Vec<usize> = task.inputs.values().flat_map(source_tasks).collect();
            let after: Vec<std::borrow::Cow<'_, str>> = task
                .upstream
                .iter()
                .filter(|u| !data_deps.contains(u))
                .map(|&u| esc(&plan.tasks[u].name))
                .chain(task.after_groups.iter().map(|&g| esc(&plan.groups[g].name)))
                .collect();
            placement(plan, &after, task.trigger, task.group, &mut out);
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
    if !plan.groups.is_empty() {
        let _ = writeln!(out, "groups");
    }
    for (g, group) in plan.groups.iter().enumerate() {
        let _ = writeln!(out, "  {}  {}", esc(&group.name), describe_group(plan, g));
        input_lines(plan, &group.inputs, &mut out);
        let after: Vec<std::borrow::Cow<'_, str>> = group
            .upstream
            .iter()
            .map(|&n| esc(node_name(plan, n)))
            .collect();
        placement(plan, &after, group.trigger, group.group, &mut out);
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

/// A node's inputs, a line each: `name <- where it comes from`, names aligned.
fn input_lines(plan: &Plan, inputs: &indexmap::IndexMap<String, Source>, out: &mut String) {
    let width = inputs.keys().map(String::len).max().unwrap_or(0);
    for (input, source) in inputs {
        let _ = writeln!(
            out,
            "      {:<width$} <- {}",
            esc(input),
            describe_source(plan, source)
        );
    }
}

/// A node's lines about where it sits: what it waits for, whether it runs however that
/// ended, and the group it is in.
fn placement(
    plan: &Plan,
    after: &[std::borrow::Cow<'_, str>],
    trigger: Trigger,
    group: Option<usize>,
    out: &mut String,
) {
    if !after.is_empty() {
        let _ = writeln!(out, "      after {}", after.join(", "));
    }
    if trigger == Trigger::AllEnded {
        let _ = writeln!(out, "      runs once its upstream ended, however it ended");
    }
    if let Some(g) = group {
        let _ = writeln!(out, "      in {}", esc(&plan.groups[g].name));
    }
}

fn dot(plan: &Plan) -> String {
    super::Graph::of(plan, &[]).dot(&plan.name, &|_| String::new())
}

#[derive(Serialize)]
struct JsonPlan<'a> {
    name: &'a str,
    description: Option<&'a str>,
    source: String,
    source_digest: &'a str,
    params: Vec<JsonParam<'a>>,
    tasks: Vec<JsonTask<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    groups: Vec<JsonGroup<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deploy: Option<JsonDeploy<'a>>,
}

#[derive(Serialize)]
struct JsonGroup<'a> {
    name: &'a str,
    group: Option<&'a str>,
    upstream: Vec<&'a str>,
    trigger: &'static str,
    condition: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iteration: Option<JsonIteration<'a>>,
    inputs: Vec<JsonInput<'a>>,
}

#[derive(Serialize)]
struct JsonIteration<'a> {
    items: JsonSource<'a>,
    parallelism: Option<usize>,
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
    #[serde(skip_serializing_if = "Option::is_none")]
    group: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    after_groups: Vec<&'a str>,
    trigger: &'static str,
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
    Constant {
        value: &'a str,
    },
    Default {
        value: &'a str,
    },
    Param {
        param: &'a str,
        value: String,
    },
    Output {
        task: &'a str,
        output: &'a str,
    },
    Item {
        group: &'a str,
    },
    Collected {
        group: &'a str,
        of: Box<JsonSource<'a>>,
    },
    OneOf {
        sources: Vec<JsonSource<'a>>,
    },
    Select {
        of: Box<JsonSource<'a>>,
        selector: &'a str,
    },
    FinalStatus {
        node: &'a str,
    },
    RunText {
        text: &'a str,
    },
}

fn json_source<'a>(plan: &'a Plan, source: &'a Source) -> JsonSource<'a> {
    match source {
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
        Source::Item { group } => JsonSource::Item {
            group: &plan.groups[*group].name,
        },
        Source::Collected { group, of } => JsonSource::Collected {
            group: &plan.groups[*group].name,
            of: Box::new(json_source(plan, of)),
        },
        Source::OneOf(list) => JsonSource::OneOf {
            sources: list.iter().map(|s| json_source(plan, s)).collect(),
        },
        Source::Select { of, selector } => JsonSource::Select {
            of: Box::new(json_source(plan, of)),
            selector,
        },
        Source::FinalStatus(node) => JsonSource::FinalStatus {
            node: node_name(plan, *node),
        },
        Source::RunText(text) => JsonSource::RunText { text },
    }
}

fn trigger_name(trigger: Trigger) -> &'static str {
    match trigger {
        Trigger::AllSucceeded => "all_succeeded",
        Trigger::AllEnded => "all_ended",
    }
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
                        source: json_source(plan, s),
                    })
                    .collect(),
                retries: t.retry.limit,
                timeout_ms: t.timeout.map(|d| d.as_millis()),
                resources: &t.resources,
                group: t.group.map(|g| plan.groups[g].name.as_str()),
                after_groups: t
                    .after_groups
                    .iter()
                    .map(|&g| plan.groups[g].name.as_str())
                    .collect(),
                trigger: trigger_name(t.trigger),
            })
            .collect(),
        groups: plan
            .groups
            .iter()
            .map(|g| JsonGroup {
                name: &g.name,
                group: g.group.map(|p| plan.groups[p].name.as_str()),
                upstream: g.upstream.iter().map(|&n| node_name(plan, n)).collect(),
                trigger: trigger_name(g.trigger),
                condition: g.condition.as_deref(),
                iteration: g.iteration.as_ref().map(|it| JsonIteration {
                    items: json_source(plan, &it.items),
                    parallelism: it.parallelism,
                }),
                inputs: g
                    .inputs
                    .iter()
                    .map(|(name, s)| JsonInput {
                        name,
                        source: json_source(plan, s),
                    })
                    .collect(),
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
