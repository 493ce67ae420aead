//! `sluice plan` of a compiled KFP pipeline: its parameters with the values a run would
//! take, and its DAGs as an indented outline of tasks, with what decides whether and how
//! often each runs. The loop counts and branches themselves are known only at run time.

use std::fmt::Write;

use super::ir::{ComponentSpec, IrFile, TaskSpec};
use super::values;

/// The outline of a pipeline, with the parameter values a run would take.
pub fn outline(file: &IrFile, params: &super::Params) -> String {
    let mut out = String::new();
    let spec = &file.spec;
    let _ = writeln!(
        out,
        "KFP pipeline '{}' ({})",
        file.name(),
        spec.sdk_version.as_deref().unwrap_or("unknown SDK")
    );
    let root = &spec.root.input_definitions;
    if !root.parameters.is_empty() || !root.artifacts.is_empty() {
        let _ = writeln!(out, "parameters:");
        for (name, p) in &root.parameters {
            let value = match params.values.get(name) {
                Some(v) => values::render(v),
                None if p.is_optional => "(unset)".into(),
                None => "(required)".into(),
            };
            let _ = writeln!(out, "  {name}: {} = {value}", p.parameter_type.as_str());
        }
        for (name, a) in &root.artifacts {
            let value = match params.artifacts.get(name) {
                Some(path) => path.display().to_string(),
                None => "(required)".into(),
            };
            let _ = writeln!(out, "  {name}: {} = {value}", a.artifact_type.title());
        }
    }
    let _ = writeln!(out, "tasks:");
    dag(file, &spec.root, 1, &mut out);
    out
}

fn dag(file: &IrFile, component: &ComponentSpec, depth: usize, out: &mut String) {
    let Some(spec) = &component.dag else { return };
    for (key, task) in &spec.tasks {
        let _ = writeln!(out, "{}{}", "  ".repeat(depth), line(file, key, task));
        if let Some(child) = file.component(&task.component_ref.name)
            && child.dag.is_some()
        {
            dag(file, child, depth + 1, out);
        }
    }
}

fn line(file: &IrFile, key: &str, task: &TaskSpec) -> String {
    let name = match task.task_info.name.as_str() {
        "" => key,
        n => n,
    };
    let mut parts: Vec<String> = Vec::new();
    let child = file.component(&task.component_ref.name);
    match child.and_then(|c| c.executor_label.as_ref()) {
        Some(label) => {
            let executor = &file.spec.deployment_spec.executors[label];
            if let Some(c) = &executor.container {
                parts.push(format!("container {}", c.image));
            } else if executor.importer.is_some() {
                parts.push("importer".into());
            }
        }
        None => parts.push("group".into()),
    }
    if let Some(it) = &task.parameter_iterator {
        let items = match (&it.items.raw, &it.items.input_parameter) {
            (Some(raw), _) => raw.clone(),
            (None, Some(p)) => format!("'{p}'"),
            (None, None) => "?".into(),
        };
        parts.push(format!("for each item of {items}"));
    }
    if let Some(it) = &task.artifact_iterator {
        parts.push(format!(
            "for each artifact of '{}'",
            it.items.input_artifact
        ));
    }
    if task.iterator_policy.parallelism_limit > 0 {
        parts.push(format!(
            "at most {} at once",
            task.iterator_policy.parallelism_limit
        ));
    }
    if let Some(c) = task
        .trigger_policy
        .condition
        .as_deref()
        .filter(|c| !c.is_empty())
    {
        parts.push(format!("if {c}"));
    }
    let upstream: Vec<&str> = super::ir::upstream(task).into_iter().collect();
    if !upstream.is_empty() {
        parts.push(format!("after {}", upstream.join(", ")));
    }
    if task.trigger_policy.runs_after_any_end() {
        parts.push("runs however they end".into());
    }
    if let Some(r) = &task.retry_policy
        && r.max_retry_count > 0
    {
        parts.push(format!("retries {}", r.max_retry_count));
    }
    if task.caching_options.enable_cache {
        parts.push("cached".into());
    }
    format!("{name}: {}", parts.join("; "))
}
