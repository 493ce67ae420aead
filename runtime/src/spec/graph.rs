//! KFP v1 `graph` implementations: a component made of other components' tasks, each
//! argument a constant, one of the graph's inputs (`graphInput`) or another task's
//! output (`taskOutput`), and the graph's outputs taken from its tasks (`outputValues`).
//! The structure and its checks live here; loading the task components (inline `spec`,
//! or a local `url`) is [`load_tasks`].

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};

use super::component::{Component, ComponentSpec};
use super::{SpecError, sha256_hex};

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphSpec {
    pub tasks: IndexMap<String, GraphTask>,
    #[serde(default, skip_serializing_if = "IndexMap::is_empty")]
    pub output_values: IndexMap<String, GraphArgument>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphTask {
    pub component_ref: ComponentRef,
    #[serde(default)]
    pub arguments: IndexMap<String, GraphArgument>,
    /// A condition on arguments; Sluice runs graphs without conditional tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_enabled: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execution_options: Option<ExecutionOptions>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_strategy: Option<RetryStrategy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub caching_strategy: Option<serde_json::Value>,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryStrategy {
    #[serde(default)]
    pub max_retries: u32,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct ComponentRef {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<Box<ComponentSpec>>,
}

/// One argument of a graph task.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum GraphArgument {
    Constant(String),
    GraphInput {
        input_name: String,
    },
    TaskOutput {
        task_id: String,
        output_name: String,
    },
}

impl<'de> Deserialize<'de> for GraphArgument {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct GraphInput {
            input_name: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct TaskOutput {
            task_id: String,
            output_name: String,
        }
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase", deny_unknown_fields)]
        enum Reference {
            GraphInput(GraphInput),
            TaskOutput(TaskOutput),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wrapped {
            constant: serde_yaml_ng::Value,
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Reference(Reference),
            // `{constant: ...}`, as some graph writers spell a constant.
            Wrapped(Wrapped),
            Constant(serde_yaml_ng::Value),
        }
        match Raw::deserialize(d)? {
            Raw::Reference(Reference::GraphInput(g)) => Ok(GraphArgument::GraphInput {
                input_name: g.input_name,
            }),
            Raw::Reference(Reference::TaskOutput(t)) => Ok(GraphArgument::TaskOutput {
                task_id: t.task_id,
                output_name: t.output_name,
            }),
            Raw::Wrapped(Wrapped { constant: v }) | Raw::Constant(v) => {
                super::types::render_constant(&v)
                .map(GraphArgument::Constant)
                    .ok_or_else(|| {
                        serde::de::Error::custom(
                            "expected a constant, {graphInput: {inputName}} or {taskOutput: {taskId, outputName}}",
                        )
                    })
            }
        }
    }
}

impl GraphSpec {
    /// Checks the references: declared graph inputs and outputs, existing tasks, no
    /// cycle. Errors are `(field, message)` under `implementation.graph`.
    pub(crate) fn check(&self, spec: &ComponentSpec) -> Result<(), (String, String)> {
        let at = "implementation.graph";
        if self.tasks.is_empty() {
            return Err((
                format!("{at}.tasks"),
                "a graph has at least one task".into(),
            ));
        }
        let check_arg = |field: String, arg: &GraphArgument| -> Result<(), (String, String)> {
            match arg {
                GraphArgument::Constant(_) => Ok(()),
                GraphArgument::GraphInput { input_name } => {
                    if spec.inputs.iter().any(|i| &i.name == input_name) {
                        Ok(())
                    } else {
                        Err((
                            field,
                            format!("graphInput '{input_name}' is not a declared input"),
                        ))
                    }
                }
                GraphArgument::TaskOutput { task_id, .. } => {
                    if self.tasks.contains_key(task_id) {
                        Ok(())
                    } else {
                        Err((field, format!("taskOutput names no task '{task_id}'")))
                    }
                }
            }
        };
        for (id, task) in &self.tasks {
            let r = &task.component_ref;
            if r.spec.is_none() && r.url.is_none() && r.name.is_none() && r.digest.is_none() {
                return Err((
                    format!("{at}.tasks.{id}.componentRef"),
                    "expected one of spec, url, name or digest".into(),
                ));
            }
            if let Some(inner) = &r.spec {
                inner
                    .check()
                    .map_err(|(f, m)| (format!("{at}.tasks.{id}.componentRef.spec.{f}"), m))?;
            }
            for (name, arg) in &task.arguments {
                check_arg(format!("{at}.tasks.{id}.arguments.{name}"), arg)?;
            }
        }
        for (name, arg) in &self.output_values {
            if !spec.outputs.iter().any(|o| &o.name == name) {
                return Err((
                    format!("{at}.outputValues.{name}"),
                    format!("'{name}' is not a declared output"),
                ));
            }
            check_arg(format!("{at}.outputValues.{name}"), arg)?;
        }
        if let Some(cycle) = self.cycle() {
            return Err((
                format!("{at}.tasks"),
                format!("tasks form a cycle: {}", cycle.join(" -> ")),
            ));
        }
        Ok(())
    }

    /// The tasks a task takes outputs from.
    pub fn upstream<'a>(&'a self, task: &'a GraphTask) -> BTreeSet<&'a str> {
        task.arguments
            .values()
            .filter_map(|a| match a {
                GraphArgument::TaskOutput { task_id, .. } => Some(task_id.as_str()),
                _ => None,
            })
            .filter(|t| self.tasks.contains_key(*t))
            .collect()
    }

    fn cycle(&self) -> Option<Vec<String>> {
        let mut state: BTreeMap<&str, bool> = BTreeMap::new(); // false: open, true: done
        fn visit<'a>(
            g: &'a GraphSpec,
            id: &'a str,
            state: &mut BTreeMap<&'a str, bool>,
            stack: &mut Vec<&'a str>,
        ) -> Option<Vec<String>> {
            match state.get(id) {
                Some(true) => return None,
                Some(false) => {
                    let from = stack.iter().position(|s| *s == id).unwrap_or(0);
                    let mut c: Vec<String> = stack[from..].iter().map(|s| s.to_string()).collect();
                    c.push(id.to_owned());
                    return Some(c);
                }
                None => {}
            }
            state.insert(id, false);
            stack.push(id);
            for up in g.upstream(&g.tasks[id]) {
                if let Some(c) = visit(g, up, state, stack) {
                    return Some(c);
                }
            }
            stack.pop();
            state.insert(id, true);
            None
        }
        for id in self.tasks.keys() {
            if let Some(c) = visit(self, id, &mut state, &mut Vec::new()) {
                return Some(c);
            }
        }
        None
    }
}

/// Loads the component of every task of a graph component: an inline `spec`, or a
/// `url` naming a local file (relative to the graph's file, or `file://`).
pub fn load_tasks(graph_file: &Component) -> Result<IndexMap<String, Arc<Component>>, SpecError> {
    let graph = graph_file
        .graph()
        .ok_or_else(|| invalid(&graph_file.path, "implementation", "not a graph component"))?;
    let base = graph_file.path.parent().unwrap_or(Path::new(""));
    let mut out = IndexMap::new();
    for (id, task) in &graph.tasks {
        let field = format!("implementation.graph.tasks.{id}.componentRef");
        let r = &task.component_ref;
        let component = if let Some(spec) = &r.spec {
            let text = serde_json::to_string(spec).expect("a component spec serialises");
            Component {
                spec: (**spec).clone(),
                path: graph_file.path.clone(),
                digest: sha256_hex(text.as_bytes()),
            }
        } else if let Some(url) = &r.url {
            let local = match url.split_once("://") {
                Some(("file", path)) => Path::new(path).to_owned(),
                Some((scheme, _)) => {
                    return Err(invalid(
                        &graph_file.path,
                        &field,
                        &format!(
                            "'{url}' is a {scheme} URL; Sluice loads task components from local files: download it and give its path"
                        ),
                    ));
                }
                None => super::join_clean(base, url),
            };
            Component::load(&local)?
        } else {
            return Err(invalid(
                &graph_file.path,
                &field,
                "a component named only by name or digest needs a component store; give `spec` or a local `url`",
            ));
        };
        out.insert(id.clone(), Arc::new(component));
    }
    Ok(out)
}

fn invalid(path: &Path, field: &str, message: &str) -> SpecError {
    SpecError::Invalid {
        path: path.to_owned(),
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// KFP's own graph component test (`kfp.components` structures): task ids with
    /// spaces, untyped inputs, numbers as constants.
    const KFP_GRAPH: &str = "\
inputs:
- {name: graph in 1}
- {name: graph in 2}
outputs:
- {name: graph out 1}
- {name: graph out 2}
implementation:
  graph:
    tasks:
      task 1:
        componentRef: {name: Comp 1}
        arguments:
            in1 1: 11
      task 2:
        componentRef: {name: Comp 2}
        arguments:
            in2 1: 21
            in2 2: {taskOutput: {taskId: task 1, outputName: out1 1}}
      task 3:
        componentRef: {name: Comp 3}
        arguments:
            in3 1: {taskOutput: {taskId: task 2, outputName: out2 1}}
            in3 2: {graphInput: {inputName: graph in 1}}
    outputValues:
      graph out 1: {taskOutput: {taskId: task 3, outputName: out3 1}}
      graph out 2: {taskOutput: {taskId: task 1, outputName: out1 2}}
";

    #[test]
    fn kfps_graph_components_parse() {
        let c = Component::parse(Path::new("g.yaml"), KFP_GRAPH).unwrap();
        let g = c.graph().unwrap();
        assert_eq!(
            g.tasks["task 1"].arguments["in1 1"],
            GraphArgument::Constant("11".into())
        );
        assert_eq!(
            g.upstream(&g.tasks["task 3"])
                .into_iter()
                .collect::<Vec<_>>(),
            ["task 2"]
        );
        let cyclic = KFP_GRAPH.replace(
            "in1 1: 11",
            "in1 1: {taskOutput: {taskId: task 3, outputName: x}}",
        );
        let err = Component::parse(Path::new("g.yaml"), &cyclic)
            .unwrap_err()
            .to_string();
        assert!(err.contains("tasks form a cycle"), "{err}");
        let wrapped = KFP_GRAPH.replace("in1 1: 11", "in1 1: {constant: '11'}");
        let c = Component::parse(Path::new("g.yaml"), &wrapped).unwrap();
        assert_eq!(
            c.graph().unwrap().tasks["task 1"].arguments["in1 1"],
            GraphArgument::Constant("11".into())
        );
    }
}
