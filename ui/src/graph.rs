//! A run's graph as SVG: the plan's tasks and control nodes (conditions, loops) recorded
//! with the run, each node coloured by the state of its task instances. Laid out by
//! Graphviz's `dot` when it is installed; otherwise drawn in columns by stage (the
//! longest path from a node without upstream), which shows the same nodes and edges
//! less compactly.
//!
//! Node `i` is `<g id="node-i" class="node node-state-STATE">` in both drawings, which
//! is what the run page's script changes as states arrive.

use std::collections::HashMap;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use maud::{Markup, PreEscaped, html};
use sluice_runtime::plan::{Graph, GraphNodeKind};
use sluice_runtime::store::TaskState;

use crate::layout;

/// Graphs with more nodes than this are listed, not drawn: a drawing of thousands of
/// boxes tells nothing a table does not, and `dot` would take seconds over it.
pub(crate) const MAX_DRAWN: usize = 400;

/// Longest `dot` may take over one graph before the stage drawing is used instead.
const DOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The graph `run` was recorded with; `None` for a run recorded without one (by an older
/// Sluice) or whose graph does not read.
pub(crate) fn recorded(
    store: &sluice_runtime::store::Store,
    run: &str,
) -> Result<Option<Graph>, sluice_runtime::store::StoreError> {
    Ok(store
        .run_graph(run)?
        .and_then(|json| serde_json::from_str(&json).ok()))
}

/// The state shown for a node: a task node's from its instances (a task in a loop has
/// one per iteration), a control node's from the task nodes inside it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum NodeState {
    Waiting,
    Running,
    Succeeded,
    Failed,
    Skipped,
    Cancelled,
}

impl NodeState {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            NodeState::Waiting => "pending",
            NodeState::Running => "running",
            NodeState::Succeeded => "succeeded",
            NodeState::Failed => "failed",
            NodeState::Skipped => "skipped",
            NodeState::Cancelled => "cancelled",
        }
    }

    /// One state for several instances: running while any runs, failed when any failed,
    /// succeeded when all succeeded, skipped when all were skipped.
    fn of<'a>(states: impl IntoIterator<Item = &'a TaskState>) -> NodeState {
        let (mut any, mut running, mut failed, mut cancelled, mut pending) =
            (false, false, false, false, false);
        let mut all_skipped = true;
        for s in states {
            any = true;
            match s {
                TaskState::Running => running = true,
                TaskState::Failed => failed = true,
                TaskState::Cancelled => cancelled = true,
                TaskState::Pending => pending = true,
                _ => {}
            }
            all_skipped &= *s == TaskState::Skipped;
        }
        if running {
            NodeState::Running
        } else if failed {
            NodeState::Failed
        } else if cancelled {
            NodeState::Cancelled
        } else if !any || pending {
            NodeState::Waiting
        } else if all_skipped {
            NodeState::Skipped
        } else {
            // All succeeded, or some succeeded and the others were skipped: a loop whose
            // iterations took different branches.
            NodeState::Succeeded
        }
    }
}

/// Which graph node each recorded task belongs to: its own name, or a loop instance's
/// (`train.0`, `train.1.2`: the task's name and one index per enclosing loop).
pub(crate) fn node_of(graph: &Graph) -> impl Fn(&str) -> Option<usize> + '_ {
    let by_name: HashMap<&str, usize> = graph
        .nodes
        .iter()
        .enumerate()
        .filter(|(_, n)| n.kind == GraphNodeKind::Task)
        .map(|(i, n)| (n.name.as_str(), i))
        .collect();
    move |task: &str| {
        let mut name = task;
        loop {
            if let Some(&i) = by_name.get(name) {
                return Some(i);
            }
            let (head, index) = name.rsplit_once('.')?;
            if index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            name = head;
        }
    }
}

/// Each node's state, from the states of the run's recorded tasks; once the run has
/// `ended`, a node none of whose instances ran (a loop over no items, a branch not
/// taken) is `skipped`.
pub(crate) fn node_states<'a>(
    graph: &Graph,
    tasks: impl IntoIterator<Item = (&'a str, TaskState)>,
    ended: bool,
) -> Vec<NodeState> {
    let node_of = node_of(graph);
    let mut per_node: Vec<Vec<TaskState>> = vec![Vec::new(); graph.nodes.len()];
    for (name, state) in tasks {
        if let Some(i) = node_of(name) {
            per_node[i].push(state);
            // Every enclosing group sees its members' states.
            let mut group = graph.nodes[i].group;
            while let Some(g) = group {
                per_node[g].push(state);
                group = graph.nodes[g].group;
            }
        }
    }
    per_node
        .iter()
        .map(|states| match NodeState::of(states) {
            NodeState::Waiting if ended && states.is_empty() => NodeState::Skipped,
            state => state,
        })
        .collect()
}

/// For each node, the first recorded task that is one of its instances (`train`, or
/// inside loops `train.0.0`): where its link goes. `None` for groups and for tasks with
/// no instance recorded.
pub(crate) fn first_instances<'a>(
    graph: &Graph,
    tasks: impl IntoIterator<Item = &'a str>,
) -> Vec<Option<String>> {
    let node_of = node_of(graph);
    let mut first = vec![None; graph.nodes.len()];
    for name in tasks {
        if let Some(i) = node_of(name)
            && first[i].is_none()
        {
            first[i] = Some(name.to_owned());
        }
    }
    first
}

/// The graph drawn, with links from task nodes to their pages (a task in a loop links to
/// its first instance's).
pub(crate) fn svg(
    graph: &Graph,
    states: &[NodeState],
    first: &[Option<String>],
    run: &str,
    dot: Option<&Path>,
) -> Markup {
    if graph.nodes.len() > MAX_DRAWN {
        return html! {
            p.note { (graph.nodes.len()) " nodes: too many to draw; the table below lists every task." }
        };
    }
    if let Some(dot) = dot {
        match with_dot(graph, states, first, run, dot) {
            Ok(svg) => return html! { div.graph { (PreEscaped(svg)) } },
            Err(why) => {
                return html! {
                    p.note { "Graphviz could not lay this graph out (" (why) "); drawn by stage instead." }
                    div.graph { (by_stage(graph, states, first, run)) }
                };
            }
        }
    }
    html! { div.graph { (by_stage(graph, states, first, run)) } }
}

/// Where node `i` links: its first instance's task page.
fn node_href(first: &[Option<String>], i: usize, run: &str) -> Option<String> {
    first[i].as_deref().map(|task| layout::task_href(run, task))
}

fn with_dot(
    graph: &Graph,
    states: &[NodeState],
    first: &[Option<String>],
    run: &str,
    dot: &Path,
) -> Result<String, String> {
    let text = graph.dot(run, &|i| {
        let mut attrs = format!(
            "id=\"node-{i}\", class=\"node-state-{}\", style=\"{}\", fillcolor=\"white\"",
            states[i].as_str(),
            match graph.nodes[i].kind {
                GraphNodeKind::Task => "rounded,filled",
                _ => "filled",
            }
        );
        if let Some(href) = node_href(first, i, run) {
            attrs.push_str(&format!(", URL=\"{href}\", target=\"_top\""));
        }
        attrs
    });
    let mut child = Command::new(dot)
        .arg("-Tsvg")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", dot.display()))?;
    let mut stdin = child.stdin.take().expect("piped");
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if started.elapsed() > DOT_TIMEOUT => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("it took more than {} s", DOT_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(e.to_string()),
        }
    }
    let _ = writer.join();
    let output = child.wait_with_output().map_err(|e| e.to_string())?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(stderr.lines().next().unwrap_or("it failed").to_owned());
    }
    let svg = String::from_utf8(output.stdout).map_err(|_| "its output is not UTF-8".to_owned())?;
    // Inline SVG needs neither the XML prolog nor the doctype `dot` writes first.
    let start = svg
        .find("<svg")
        .ok_or_else(|| "its output holds no <svg>".to_owned())?;
    Ok(svg[start..].to_owned())
}

/// The graph in columns by stage, drawn here: each node a box (a control node a
/// diamond-cornered box), each edge a line, dashed when it only orders.
fn by_stage(graph: &Graph, states: &[NodeState], first: &[Option<String>], run: &str) -> Markup {
    const W: f64 = 190.0;
    const H: f64 = 56.0;
    const GAP_X: f64 = 60.0;
    const GAP_Y: f64 = 18.0;
    let n = graph.nodes.len();
    let mut stage = vec![0usize; n];
    // Edges go from earlier to later stages; the longest path gives each node's column.
    // Plans are acyclic; at most n rounds settle it.
    // A group's members come after its diamond, as they run after it decides.
    let inside = graph
        .nodes
        .iter()
        .enumerate()
        .filter_map(|(i, node)| Some((node.group?, i)));
    let order: Vec<(usize, usize)> = graph
        .edges
        .iter()
        .map(|e| (e.from, e.to))
        .chain(inside)
        .collect();
    for _ in 0..n {
        let mut changed = false;
        for &(from, to) in &order {
            if stage[to] < stage[from] + 1 {
                stage[to] = stage[from] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let mut row = vec![0usize; n];
    let mut rows_in: HashMap<usize, usize> = HashMap::new();
    for i in 0..n {
        let r = rows_in.entry(stage[i]).or_default();
        row[i] = *r;
        *r += 1;
    }
    let columns = stage.iter().max().map_or(0, |m| m + 1);
    let rows = rows_in.values().max().copied().unwrap_or(0);
    let width = columns as f64 * (W + GAP_X) + 20.0;
    let height = rows as f64 * (H + GAP_Y) + 20.0;
    let at = |i: usize| {
        (
            10.0 + stage[i] as f64 * (W + GAP_X),
            10.0 + row[i] as f64 * (H + GAP_Y),
        )
    };
    html! {
        svg xmlns="http://www.w3.org/2000/svg" width=(width) height=(height)
            viewBox={ "0 0 " (width) " " (height) } role="img"
            aria-label="The run's tasks and how they depend on each other" {
            @for e in &graph.edges {
                @let (x1, y1) = at(e.from);
                @let (x2, y2) = at(e.to);
                line.edge x1=(x1 + W) y1=(y1 + H / 2.0) x2=(x2) y2=(y2 + H / 2.0)
                    stroke="#555" stroke-dasharray=[e.after.then_some("4 3")] {}
            }
            @for (i, node) in graph.nodes.iter().enumerate() {
                @let (x, y) = at(i);
                g id={ "node-" (i) } class={ "node node-state-" (states[i].as_str()) } {
                    title { (node.name) }
                    @if let Some(href) = node_href(first, i, run) {
                        a href=(href) {
                            rect x=(x) y=(y) width=(W) height=(H) rx="8" fill="white" stroke="#333" {}
                            text x=(x + 8.0) y=(y + 22.0) { (crate::runs::short(&node.name, 24)) }
                            text.sub x=(x + 8.0) y=(y + 42.0) { (crate::runs::short(&node.label, 28)) }
                        }
                    } @else {
                        rect x=(x) y=(y) width=(W) height=(H) fill="white" stroke="#333" stroke-dasharray="6 3" {}
                        text x=(x + 8.0) y=(y + 22.0) { (crate::runs::short(&node.name, 24)) }
                        text.sub x=(x + 8.0) y=(y + 42.0) { (crate::runs::short(&node.label, 28)) }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_runtime::plan::{GraphEdge, GraphNode};

    /// `make`, then a loop `outer` holding a loop `inner` holding the task `pair`.
    fn nested() -> Graph {
        let node = |name: &str, kind, group| GraphNode {
            name: name.into(),
            kind,
            label: String::new(),
            group,
            in_loop: false,
        };
        Graph {
            nodes: vec![
                node("make", GraphNodeKind::Task, None),
                node("pair", GraphNodeKind::Task, Some(3)),
                node("outer", GraphNodeKind::Group, None),
                node("inner", GraphNodeKind::Group, Some(2)),
            ],
            edges: vec![GraphEdge {
                from: 0,
                to: 2,
                label: String::new(),
                after: true,
            }],
            chains: Vec::new(),
        }
    }

    #[test]
    fn nodes_link_to_their_first_instance_and_a_loop_that_never_ran_is_skipped() {
        let graph = nested();
        let tasks = [
            ("make", TaskState::Succeeded),
            ("pair.0.0", TaskState::Succeeded),
            ("pair.0.1", TaskState::Running),
        ];
        let first = first_instances(&graph, tasks.iter().map(|(n, _)| *n));
        assert_eq!(
            first,
            [
                Some("make".to_owned()),
                Some("pair.0.0".to_owned()),
                None,
                None
            ]
        );
        let states = node_states(&graph, tasks.iter().map(|(n, s)| (*n, *s)), false);
        assert_eq!(
            states,
            [
                NodeState::Succeeded,
                NodeState::Running,
                NodeState::Running,
                NodeState::Running
            ]
        );
        // A loop over no items: nothing of it ran.
        let ended = [("make", TaskState::Succeeded)];
        let states = node_states(&graph, ended.iter().map(|(n, s)| (*n, *s)), true);
        assert_eq!(states[1], NodeState::Skipped);
        assert_eq!(first_instances(&graph, ["make"])[1], None);
        let drawn =
            by_stage(&graph, &states, &first_instances(&graph, ["make"]), "r").into_string();
        assert!(
            !drawn.contains("pair.0\""),
            "no link to an instance that is not there"
        );
    }

    #[test]
    fn a_node_is_running_while_any_instance_runs_and_failed_when_one_failed() {
        use TaskState::*;
        assert_eq!(NodeState::of(&[Succeeded, Running]), NodeState::Running);
        assert_eq!(NodeState::of(&[Succeeded, Failed]), NodeState::Failed);
        assert_eq!(NodeState::of(&[Succeeded, Succeeded]), NodeState::Succeeded);
        assert_eq!(NodeState::of(&[Skipped, Skipped]), NodeState::Skipped);
        assert_eq!(NodeState::of(&[Succeeded, Skipped]), NodeState::Succeeded);
        assert_eq!(NodeState::of(&[Pending]), NodeState::Waiting);
        assert_eq!(NodeState::of(&[]), NodeState::Waiting);
        assert_eq!(NodeState::of(&[Succeeded, Pending]), NodeState::Waiting);
        assert_eq!(NodeState::of(&[Failed, Pending]), NodeState::Failed);
    }
}
