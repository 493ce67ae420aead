//! A plan's shape as drawings need it, kept with each run: tasks and control nodes, the
//! group each sits in, the fused chains, and the edges between them. `sluice plan
//! --format dot` and the UI's run graph are both written from it by [`Graph::dot`].

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::render::{describe_group, esc, implementations, source_tasks};
use super::{Node, Plan, Source};

/// Nodes and edges of a plan. Tasks come first, in plan order, then groups, in plan
/// order; edges point from what runs first to what waits for it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Graph {
    pub nodes: Vec<GraphNode>,
    pub edges: Vec<GraphEdge>,
    /// Fused chains, each its task nodes in order (see `schedule::fuse`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub chains: Vec<Vec<usize>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GraphNodeKind {
    /// An executor task.
    Task,
    /// A control node: a condition, a loop, an exit handler's body, a nested pipeline.
    Group,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// The task's or group's name in the plan (a task's record has it, or, inside
    /// loops, `NAME.i.j`).
    pub name: String,
    pub kind: GraphNodeKind,
    /// Its second line: a task's component and implementations, what a group decides.
    pub label: String,
    /// The node of the group it sits in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<usize>,
    /// Whether a loop encloses it (a task then runs once per item, as `NAME.i...`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub in_loop: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphEdge {
    pub from: usize,
    pub to: usize,
    /// `output -> input` for a value passed; empty for an edge that only orders.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub label: String,
    /// Only orders (drawn dashed): no value passes.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub after: bool,
}

impl Graph {
    /// The graph of `plan`, with its fused `chains` (task indices, as
    /// `Fusion::chains` has them).
    pub fn of(plan: &Plan, chains: &[Vec<usize>]) -> Graph {
        let tasks = plan.tasks.len();
        let group_node = |g: usize| tasks + g;
        let mut nodes = Vec::with_capacity(tasks + plan.groups.len());
        for task in &plan.tasks {
            nodes.push(GraphNode {
                name: task.name.clone(),
                kind: GraphNodeKind::Task,
                label: format!(
                    "{} ({})",
                    task.component.name(),
                    implementations(task).join(", ")
                ),
                group: task.group.map(group_node),
                in_loop: plan.in_loop(task.group),
            });
        }
        for (g, group) in plan.groups.iter().enumerate() {
            nodes.push(GraphNode {
                name: group.name.clone(),
                kind: GraphNodeKind::Group,
                label: describe_group(plan, g),
                group: group.group.map(group_node),
                in_loop: plan.in_loop(group.group),
            });
        }
        let mut edges = Vec::new();
        for (i, task) in plan.tasks.iter().enumerate() {
            let mut data_deps = Vec::new();
            for (input, source) in &task.inputs {
                for from in source_tasks(source) {
                    data_deps.push(from);
                    let output = match source {
                        Source::Output { output, .. } => output.as_str(),
                        other => other.kind(),
                    };
                    edges.push(GraphEdge {
                        from,
                        to: i,
                        label: format!("{output} -> {input}"),
                        after: false,
                    });
                }
            }
            for &u in task.upstream.iter().filter(|u| !data_deps.contains(u)) {
                edges.push(GraphEdge {
                    from: u,
                    to: i,
                    label: String::new(),
                    after: true,
                });
            }
            for &g in &task.after_groups {
                edges.push(GraphEdge {
                    from: group_node(g),
                    to: i,
                    label: String::new(),
                    after: true,
                });
            }
        }
        for (g, group) in plan.groups.iter().enumerate() {
            for node in &group.upstream {
                let from = match node {
                    Node::Task(t) => *t,
                    Node::Group(h) => group_node(*h),
                };
                edges.push(GraphEdge {
                    from,
                    to: group_node(g),
                    label: String::new(),
                    after: true,
                });
            }
        }
        Graph {
            nodes,
            edges,
            chains: chains.to_vec(),
        }
    }

    /// The DOT id of node `i`: `t<i>` for a task, `g<j>` for the `j`th group.
    fn id(&self, i: usize) -> String {
        match self.nodes[i].kind {
            GraphNodeKind::Task => format!("t{i}"),
            GraphNodeKind::Group => {
                let first_group = self
                    .nodes
                    .iter()
                    .position(|n| n.kind == GraphNodeKind::Group)
                    .unwrap_or(i);
                format!("g{}", i - first_group)
            }
        }
    }

    /// Graphviz DOT, left to right: each group a dashed cluster holding a diamond that
    /// says what it decides and its members; each fused chain a bold cluster; values
    /// passed as labelled edges, ordering alone dashed. `attributes(i)` adds attributes
    /// to node `i` (`id="n1", class="x"`), or nothing when it returns an empty string.
    pub fn dot(&self, name: &str, attributes: &dyn Fn(usize) -> String) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(name));
        let _ = writeln!(out, "  rankdir=LR;");
        let _ = writeln!(out, "  node [shape=box, style=rounded];");
        self.members(None, 1, attributes, &mut out);
        for e in &self.edges {
            let (from, to) = (self.id(e.from), self.id(e.to));
            if e.after {
                let _ = writeln!(out, "  {from} -> {to} [style=dashed, label=\"after\"];");
            } else {
                let _ = writeln!(
                    out,
                    "  {from} -> {to} [label=\"{}\"];",
                    dot_escape(&e.label)
                );
            }
        }
        out.push_str("}\n");
        out
    }

    /// The nodes directly in `group` (`None`: the pipeline's own DAG); a fused chain's
    /// tasks (which are never in a group) in a cluster of their own.
    fn members(
        &self,
        group: Option<usize>,
        depth: usize,
        attributes: &dyn Fn(usize) -> String,
        out: &mut String,
    ) {
        let indent = "  ".repeat(depth);
        let node_line = |i: usize, out: &mut String, indent: &str| {
            let node = &self.nodes[i];
            let extra = attributes(i);
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(", {extra}")
            };
            let _ = writeln!(
                out,
                "{indent}{} [label=\"{}\\n{}\"{extra}];",
                self.id(i),
                dot_escape(&node.name),
                dot_escape(&node.label)
            );
        };
        let chained = |i: usize| self.chains.iter().any(|c| c.contains(&i));
        for (i, node) in self.nodes.iter().enumerate() {
            if node.kind == GraphNodeKind::Task && node.group == group && !chained(i) {
                node_line(i, out, &indent);
            }
        }
        if group.is_none() {
            for (c, chain) in self.chains.iter().enumerate() {
                let _ = writeln!(out, "{indent}subgraph cluster_chain{c} {{");
                let _ = writeln!(out, "{indent}  label=\"fused chain {}\";", c + 1);
                let _ = writeln!(out, "{indent}  style=bold;");
                for &i in chain {
                    node_line(i, out, &format!("{indent}  "));
                }
                let _ = writeln!(out, "{indent}}}");
            }
        }
        for (g, node) in self.nodes.iter().enumerate() {
            if node.kind != GraphNodeKind::Group || node.group != group {
                continue;
            }
            let id = self.id(g);
            let extra = attributes(g);
            let extra = if extra.is_empty() {
                String::new()
            } else {
                format!(", {extra}")
            };
            let _ = writeln!(out, "{indent}subgraph cluster_{id} {{");
            let _ = writeln!(out, "{indent}  label=\"{}\";", dot_escape(&node.name));
            let _ = writeln!(out, "{indent}  style=dashed;");
            let _ = writeln!(
                out,
                "{indent}  {id} [shape=diamond, style=solid, label=\"{}\"{extra}];",
                dot_escape(&node.label)
            );
            self.members(Some(g), depth + 1, attributes, out);
            let _ = writeln!(out, "{indent}}}");
        }
    }
}

/// Text inside a DOT string: backslashes, quotes and newlines escaped, so no name can
/// end the string or use Graphviz's own escapes (`\N`, `\l`).
pub(crate) fn dot_escape(s: &str) -> String {
    esc(s)
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
