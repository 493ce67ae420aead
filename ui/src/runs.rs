//! The runs list: newest first, filtered by pipeline, state and start date, a page at a
//! time. Pages continue after the last run shown (by start time and id, through the
//! runs' start-time index), so the thousandth page costs what the first does.

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::response::Html;
use jiff::Timestamp;
use maud::{Markup, html};
use serde::Deserialize;
use sluice_runtime::store::{RunQuery, RunRecord, RunState};

use crate::layout::{self, Nav};
use crate::{PageError, Ui, blocking};

/// Runs on one page unless the address asks for another number (at most 500).
const PAGE: usize = 50;

const STATES: [RunState; 5] = [
    RunState::Running,
    RunState::Succeeded,
    RunState::Failed,
    RunState::Cancelled,
    RunState::Interrupted,
];

/// The list's query string; every field optional, empty fields as absent.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Filter {
    #[serde(default)]
    pipeline: String,
    #[serde(default)]
    state: String,
    /// `YYYY-MM-DD`, UTC: runs started on or after that day.
    #[serde(default)]
    since: String,
    /// `YYYY-MM-DD`, UTC: runs started on or before that day.
    #[serde(default)]
    until: String,
    /// Continue after this run.
    #[serde(default)]
    after: String,
    #[serde(default)]
    limit: Option<usize>,
}

impl Filter {
    fn query(&self) -> Result<RunQuery, PageError> {
        let day = |field: &str, text: &str, end: bool| -> Result<Option<Timestamp>, PageError> {
            if text.is_empty() {
                return Ok(None);
            }
            let date: jiff::civil::Date = text.parse().map_err(|_| {
                PageError::bad_request(format!(
                    "{field}: expected a date as YYYY-MM-DD, got '{text}'"
                ))
            })?;
            let date = if end {
                date.tomorrow()
                    .map_err(|e| PageError::bad_request(format!("{field}: {e}")))?
            } else {
                date
            };
            let t: Timestamp = format!("{date}T00:00:00Z")
                .parse()
                .map_err(|e| PageError::bad_request(format!("{field}: {e}")))?;
            Ok(Some(t))
        };
        let state = match self.state.as_str() {
            "" => None,
            text => Some(
                STATES
                    .into_iter()
                    .find(|s| s.as_str() == text)
                    .ok_or_else(|| {
                        PageError::bad_request(format!(
                            "state: expected one of running, succeeded, failed, cancelled, interrupted; got '{text}'"
                        ))
                    })?,
            ),
        };
        Ok(RunQuery {
            pipeline: (!self.pipeline.is_empty()).then(|| self.pipeline.clone()),
            state,
            since: day("since", &self.since, false)?,
            until: day("until", &self.until, true)?,
            after: (!self.after.is_empty()).then(|| self.after.clone()),
            limit: self.limit.unwrap_or(PAGE).clamp(1, 500),
        })
    }

    /// This filter's query string with `after` set to `run`.
    fn next_page(&self, run: &str, limit: usize) -> String {
        let mut parts = Vec::new();
        for (key, value) in [
            ("pipeline", &self.pipeline),
            ("state", &self.state),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if !value.is_empty() {
                parts.push(format!("{key}={}", layout::query_value(value)));
            }
        }
        if limit != PAGE {
            parts.push(format!("limit={limit}"));
        }
        parts.push(format!("after={}", layout::query_value(run)));
        format!("/ui/?{}", parts.join("&"))
    }
}

pub(crate) async fn page(
    State(ui): State<Arc<Ui>>,
    filter: Result<Query<Filter>, QueryRejection>,
) -> Result<Html<String>, PageError> {
    let Query(filter) = filter.map_err(|e| PageError::bad_request(e.body_text()))?;
    let query = filter.query()?;
    let (runs, pipelines, more) = blocking({
        let ui = ui.clone();
        let query = query.clone();
        move || {
            let mut page = query.clone();
            if let Some(after) = &query.after {
                // A page after a run that is not there would be silently empty.
                page.after = Some(ui.store.resolve_run(after).map_err(|_| {
                    PageError::bad_request(format!("after: no run '{after}' to continue after"))
                })?);
            }
            page.limit += 1;
            let mut runs = ui.store.query_runs(&page)?;
            let more = runs.len() > query.limit;
            runs.truncate(query.limit);
            Ok((runs, ui.store.pipelines()?, more))
        }
    })
    .await?;
    let body = html! {
        h1 { "Runs" }
        form.filters method="get" action="/ui/" {
            label { "Pipeline "
                select name="pipeline" {
                    option value="" { "any" }
                    @for (name, count) in &pipelines {
                        option value=(name) selected[*name == filter.pipeline] {
                            (name) " (" (count) ")"
                        }
                    }
                }
            }
            label { "State "
                select name="state" {
                    option value="" { "any" }
                    @for s in STATES {
                        option value=(s.as_str()) selected[s.as_str() == filter.state] { (s.as_str()) }
                    }
                }
            }
            label { "Started from " input type="date" name="since" value=(filter.since); }
            label { "to " input type="date" name="until" value=(filter.until); }
            button type="submit" { "Filter" }
            @if query.pipeline.is_some() || query.state.is_some() || query.since.is_some() || query.until.is_some() {
                " " a href="/ui/" { "Clear" }
            }
        }
        @if runs.is_empty() {
            p.empty { "No runs match. `sluice run PIPELINE` records one." }
        } @else {
            form method="get" action="/ui/compare" {
                table.runs {
                    caption.visually-hidden { "Runs, newest first" }
                    thead { tr {
                        th scope="col" { span.visually-hidden { "Compare" } }
                        th scope="col" { "Run" }
                        th scope="col" { "Pipeline" }
                        th scope="col" { "State" }
                        th scope="col" { "Started (UTC)" }
                        th scope="col" { "Duration" }
                        th scope="col" { "Ran on" }
                        th scope="col" { "Parameters" }
                    } }
                    tbody {
                        @for run in &runs { (row(run)) }
                    }
                }
                p.actions {
                    button type="submit" { "Compare selected runs" }
                    @if more {
                        @if let Some(last) = runs.last() {
                            " " a rel="next" href=(filter.next_page(&last.id, query.limit)) { "Older runs →" }
                        }
                    }
                    @if query.after.is_some() {
                        " " a href="/ui/" { "Newest runs" }
                    }
                }
            }
        }
    };
    Ok(Html(layout::page("Runs", Nav::Runs, body).into_string()))
}

fn row(run: &RunRecord) -> Markup {
    let params: Vec<String> = run
        .params
        .iter()
        .map(|(k, v)| format!("{k}={}", short(v, 40)))
        .collect();
    html! {
        tr data-run=(run.id) {
            td { input type="checkbox" name="run" value=(run.id) aria-label={ "Compare run " (run.id) }; }
            td { a href=(layout::run_href(&run.id)) { code { (run.id) } } }
            td { (run.name) }
            td { (layout::state(run.state.as_str())) }
            td { (layout::time(run.started_at)) }
            td { (layout::duration(layout::span(run.started_at, run.ended_at))) }
            td { (backend(&run.flags)) }
            td.params title=(params.join("\n")) { (short(&params.join(", "), 80)) }
        }
    }
}

/// Where a run's tasks ran, from the flags it was started with.
pub(crate) fn backend(flags: &[String]) -> String {
    let value = |flag: &str| {
        flags
            .iter()
            .position(|f| f == flag)
            .and_then(|i| flags.get(i + 1))
            .map(String::as_str)
    };
    match (value("--backend"), value("--runner")) {
        (Some(backend), _) if backend != "local" => backend.to_owned(),
        (_, Some(runner)) => format!("local ({runner} runner)"),
        _ => "local".to_owned(),
    }
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub(crate) fn short(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}
