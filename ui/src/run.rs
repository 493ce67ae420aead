//! A run's page: what it ran with, how it ended, its graph coloured by state, its tasks,
//! and their timings as a Gantt chart; and the server-sent events that update the
//! states while it runs.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::Html;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures::{Stream, StreamExt};
use maud::{Markup, html};
use serde::Deserialize;
use sluice_runtime::store::{DeployState, RunRecord, RunState, TaskRecord};

use crate::graph::{self, NodeState};
use crate::layout::{self, Nav};
use crate::{PageError, Ui, blocking, charts};

/// Task rows on one page of a run's task table.
const TASKS_PER_PAGE: usize = 500;

/// How often a running run's states are read again for its page.
const POLL: Duration = Duration::from_millis(300);

#[derive(Debug, Default, Deserialize)]
pub(crate) struct RunQuery {
    /// The page of the task table, from 1.
    #[serde(default)]
    page: Option<usize>,
}

/// The run `id` names (or a unique prefix of it names), as recorded. A run whose process
/// is gone is ended first, as `interrupted`, so that no task of it shows as running.
pub(crate) fn read_run(ui: &Ui, id: &str) -> Result<RunRecord, PageError> {
    let id = ui.store.resolve_run(id)?;
    let run = ui.store.run(&id)?;
    let unsettled =
        run.state == RunState::Interrupted && run.tasks.iter().any(|t| !t.state.is_final());
    if unsettled {
        ui.store.end_interrupted_runs()?;
        return Ok(ui.store.run(&id)?);
    }
    Ok(run)
}

pub(crate) async fn page(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
    query: Result<Query<RunQuery>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Query(query) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    let (run, graph_svg, gantt) = blocking({
        let ui = ui.clone();
        move || {
            let run = read_run(&ui, &id)?;
            let graph = graph::recorded(&ui.store, &run.id)?;
            let svg = graph.map(|graph| {
                let states = graph::node_states(
                    &graph,
                    run.tasks.iter().map(|t| (t.name.as_str(), t.state)),
                    run.state != RunState::Running,
                );
                let first =
                    graph::first_instances(&graph, run.tasks.iter().map(|t| t.name.as_str()));
                graph::svg(&graph, &states, &first, &run.id, ui.dot.as_deref())
            });
            // Charts are drawn off the async threads.
            let gantt = charts::gantt(&run);
            Ok((run, svg, gantt))
        }
    })
    .await?;
    let pages = run.tasks.len().div_ceil(TASKS_PER_PAGE).max(1);
    let page_no = query.page.unwrap_or(1).clamp(1, pages);
    let shown = run
        .tasks
        .iter()
        .skip((page_no - 1) * TASKS_PER_PAGE)
        .take(TASKS_PER_PAGE);
    let live = run.state == RunState::Running;
    let body = html! {
        div data-events=[live.then(|| format!("{}/events", layout::run_href(&run.id)))] {
            h1 { "Run " code { (run.id) } }
            dl.facts {
                dt { "Pipeline" } dd { (run.name) }
                dt { "State" } dd id="run-state" { (layout::state(run.state.as_str())) }
                dt { "Started (UTC)" } dd { (layout::time(run.started_at)) }
                dt { "Duration" } dd { (layout::duration(layout::span(run.started_at, run.ended_at))) @if live { " so far" } }
                dt { "Ran on" } dd { (crate::runs::backend(&run.flags)) }
                dt { "Source" } dd { code { (run.source) } }
                @if !run.flags.is_empty() {
                    dt { "Flags" } dd { code { (run.flags.join(" ")) } }
                }
            }
            @if let Some(error) = &run.error {
                p.error role="alert" { (error) }
            }
            (deploy(&run))
            section {
                h2 { "Parameters" }
                @if run.params.is_empty() {
                    p.empty { "None." }
                } @else {
                    table.kv {
                        thead { tr { th scope="col" { "Name" } th scope="col" { "Value" } } }
                        tbody { @for (k, v) in &run.params { tr { td { (k) } td { (param_value(v)) } } } }
                    }
                }
            }
            @if !run.outputs.is_empty() {
                section {
                    h2 { "Outputs" }
                    (crate::task::io_table(&run.outputs, None))
                }
            }
            section {
                h2 { "Graph" }
                @match &graph_svg {
                    Some(svg) => (svg),
                    None => p.note { "This run was recorded without its graph (by an older Sluice)." },
                }
                (legend())
            }
            section {
                h2 { "Tasks" }
                table.tasks {
                    thead { tr {
                        th scope="col" { "Task" } th scope="col" { "State" } th scope="col" { "Attempts" }
                        th scope="col" { "Ran as" } th scope="col" { "Duration" } th scope="col" { "Note" }
                    } }
                    tbody { @for task in shown { (task_row(&run.id, task)) } }
                }
                @if pages > 1 {
                    nav.pages aria-label="Task pages" {
                        @for p in 1..=pages {
                            @if p == page_no { span aria-current="page" { (p) } }
                            @else { a href={ (layout::run_href(&run.id)) "?page=" (p) } { (p) } }
                            " "
                        }
                    }
                }
            }
            section {
                h2 { "Timings" }
                (gantt)
            }
        }
    };
    Ok(Html(
        layout::page(&format!("Run {}", run.id), Nav::Runs, body).into_string(),
    ))
}

/// A parameter's value; an artifact parameter's (its digest) as a link to its lineage.
pub(crate) fn param_value(value: &str) -> Markup {
    if value.starts_with("sha256:") || value.starts_with("sha256-tree:") {
        layout::digest(value)
    } else {
        html! { code { (value) } }
    }
}

fn legend() -> Markup {
    html! {
        p.legend {
            @for s in ["pending", "running", "succeeded", "failed", "skipped", "cancelled"] {
                span class={ "swatch node-state-" (s) } { (s) } " "
            }
        }
    }
}

fn deploy(run: &RunRecord) -> Markup {
    let Some(d) = &run.deploy else {
        return html! {};
    };
    let state = match d.state {
        DeployState::Deployed => "deployed",
        DeployState::Skipped => "skipped",
        DeployState::Failed => "failed",
    };
    html! {
        section {
            h2 { "Deploy" }
            p {
                "Model " a href="/ui/models" { (d.model) } ": " (layout::state(state))
                @if let Some(v) = d.version { " version " (v) }
                " — " (d.message)
            }
        }
    }
}

fn task_row(run: &str, t: &TaskRecord) -> Markup {
    let duration = t
        .started_at
        .map(|s| layout::duration(layout::span(s, t.ended_at)))
        .unwrap_or_default();
    html! {
        tr data-task=(t.name) {
            td { a href=(layout::task_href(run, &t.name)) { (t.name) } }
            td.task-state { (layout::state(t.state.as_str())) }
            td { (t.attempts) }
            td { (t.implementation.as_deref().unwrap_or("")) }
            td { (duration) }
            td {
                @if let Some(from) = &t.cached_from {
                    "from the cache: " (cached_link(from))
                } @else if let Some(e) = &t.error {
                    span.error { (crate::runs::short(e, 160)) }
                }
            }
        }
    }
}

/// `run/task` as a link to that task.
pub(crate) fn cached_link(from: &str) -> Markup {
    match from.split_once('/') {
        Some((run, task)) => html! { a href=(layout::task_href(run, task)) { (from) } },
        None => html! { (from) },
    }
}

/// `GET /ui/runs/{run}/events`: while the run goes, an event `task` for each task whose
/// state changed (`{"task": name, "state": s}`), `node` for each graph node whose state
/// changed (`{"node": i, "state": s}`), and once it has ended, `end` with its state,
/// after which the stream closes.
pub(crate) async fn events(
    State(ui): State<Arc<Ui>>,
    Path(id): Path<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let (id, graph) = blocking({
        let ui = ui.clone();
        move || {
            let id = ui.store.resolve_run(&id)?;
            let graph = graph::recorded(&ui.store, &id)?;
            Ok((id, graph))
        }
    })
    .await?;
    struct Follow {
        ui: Arc<Ui>,
        id: String,
        graph: Option<sluice_runtime::plan::Graph>,
        tasks: HashMap<String, String>,
        nodes: Vec<NodeState>,
        first: bool,
        ended: bool,
    }
    let follow = Follow {
        ui,
        id,
        graph,
        tasks: HashMap::new(),
        nodes: Vec::new(),
        first: true,
        ended: false,
    };
    let stream =
        futures::stream::unfold(follow, |mut f| async move {
            if f.ended {
                return None;
            }
            if !f.first {
                tokio::time::sleep(POLL).await;
            }
            f.first = false;
            let read = {
                let ui = f.ui.clone();
                let id = f.id.clone();
                tokio::task::spawn_blocking(move || {
                    let (state, tasks) = ui.store.task_states(&id)?;
                    // A run whose process is gone is ended, its tasks with it.
                    if state == RunState::Interrupted && tasks.iter().any(|(_, s)| !s.is_final()) {
                        ui.store.end_interrupted_runs()?;
                        return ui.store.task_states(&id);
                    }
                    Ok((state, tasks))
                })
                .await
            };
            let (run_state, tasks) = match read {
                Ok(Ok(states)) => states,
                // The run is gone (collected) or the database cannot be read: end the
                // stream; the page says what it last knew.
                _ => {
                    f.ended = true;
                    return Some((vec![Event::default().event("end").data("{}")], f));
                }
            };
            let mut out = Vec::new();
            for (name, state) in &tasks {
                let state = state.as_str();
                if f.tasks.get(name).map(String::as_str) != Some(state) {
                    f.tasks.insert(name.clone(), state.to_owned());
                    out.push(
                        Event::default()
                            .event("task")
                            .data(serde_json::json!({ "task": name, "state": state }).to_string()),
                    );
                }
            }
            if let Some(graph) = &f.graph {
                let nodes = graph::node_states(
                    graph,
                    tasks.iter().map(|(n, s)| (n.as_str(), *s)),
                    run_state != RunState::Running,
                );
                for (i, s) in nodes.iter().enumerate() {
                    if f.nodes.get(i) != Some(s) {
                        out.push(Event::default().event("node").data(
                            serde_json::json!({ "node": i, "state": s.as_str() }).to_string(),
                        ));
                    }
                }
                f.nodes = nodes;
            }
            if run_state != RunState::Running {
                f.ended = true;
                out.push(
                    Event::default()
                        .event("end")
                        .data(serde_json::json!({ "state": run_state.as_str() }).to_string()),
                );
            }
            Some((out, f))
        })
        .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}
