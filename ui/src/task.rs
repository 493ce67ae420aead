//! A task's page: its component and why its implementation ran, its attempts, inputs
//! and outputs with digests, sizes, previews and downloads, its metrics and its captured
//! logs (followed live while it runs); and artifact downloads.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Response};
use futures::{Stream, StreamExt};
use maud::{Markup, html};
use serde::Deserialize;
use sluice_runtime::store::{IoRecord, LogRecord, TaskRecord};

use crate::layout::{self, Nav};
use crate::preview::{self, Kind};
use crate::{PageError, Ui, blocking};

/// How often a running task's live log is read again.
const POLL: Duration = Duration::from_millis(250);

pub(crate) async fn page(
    State(ui): State<Arc<Ui>>,
    Path((run_id, name)): Path<(String, String)>,
) -> Result<Html<String>, PageError> {
    let (run_name, task, logs, previews) = blocking({
        let ui = ui.clone();
        move || {
            let run = crate::run::read_run(&ui, &run_id)?;
            let task = run
                .tasks
                .into_iter()
                .find(|t| t.name == name)
                .ok_or_else(|| {
                    PageError::not_found(format!("run {} has no task '{name}'", run.id))
                })?;
            let logs = ui.store.logs(&run.id, &task.name)?;
            let previews: Vec<(String, Markup)> = task
                .inputs
                .iter()
                .chain(&task.outputs)
                .filter(|io| io.value.is_none())
                .map(|io| (io.digest.clone(), preview::render(&ui.store, io)))
                .collect();
            Ok(((run.id, run.name), task, logs, previews))
        }
    })
    .await?;
    let (run_id, pipeline) = run_name;
    let running = !task.state.is_final();
    let body = html! {
        div data-log=[running.then(|| format!("{}/log", layout::task_href(&run_id, &task.name)))] {
            p.crumbs {
                a href=(layout::run_href(&run_id)) { "Run " code { (run_id) } } " (" (pipeline) ") › task"
            }
            h1 { (task.name) " " span id="task-state" { (layout::state(task.state.as_str())) } }
            (facts(&task))
            @if let Some(e) = &task.error {
                p.error role="alert" { (e) }
            }
            section {
                h2 { "Attempts" }
                (attempts(&task))
            }
            section {
                h2 { "Inputs" }
                (io_table(&task.inputs, Some(&previews)))
            }
            section {
                h2 { "Outputs" }
                @if running && task.outputs.is_empty() {
                    p.empty { "None yet: outputs are recorded when the task ends." }
                } @else {
                    (io_table(&task.outputs, Some(&previews)))
                }
            }
            @if !task.metrics.is_empty() {
                section {
                    h2 { "Metrics" }
                    table.kv {
                        thead { tr { th scope="col" { "Metric" } th scope="col" { "Value" } } }
                        tbody { @for (k, v) in &task.metrics { tr { td { (k) } td.num { (v) } } } }
                    }
                }
            }
            section {
                h2 { "Logs" }
                (log_view(&logs, running))
            }
        }
    };
    Ok(Html(
        layout::page(&format!("{} · run {run_id}", task.name), Nav::Runs, body).into_string(),
    ))
}

fn facts(t: &TaskRecord) -> Markup {
    html! {
        dl.facts {
            dt { "Component" } dd { (t.component) }
            dt { "Component file" } dd { code { (t.component_file) } " " (layout::digest(&t.component_digest)) }
            @if let Some(imp) = &t.implementation {
                dt { "Ran as" } dd { (imp) }
            }
            @if let Some(why) = &t.implementation_reason {
                dt { "Why" } dd { (why) }
            }
            @if let Some(d) = &t.executable_digest {
                dt { "Executable" } dd { (layout::digest(d)) }
            }
            @if let Some(from) = &t.cached_from {
                dt { "Cache hit" } dd { "outputs taken from " (crate::run::cached_link(from)) }
            }
            @if let Some(s) = t.started_at {
                dt { "Started (UTC)" } dd { (layout::time(s)) }
                dt { "Duration" } dd { (layout::duration(layout::span(s, t.ended_at))) }
            }
        }
    }
}

fn attempts(t: &TaskRecord) -> Markup {
    if t.attempt_history.is_empty() {
        return html! { p.empty { "No attempt ran." } };
    }
    html! {
        table {
            thead { tr {
                th scope="col" { "Attempt" } th scope="col" { "State" } th scope="col" { "Started (UTC)" }
                th scope="col" { "Duration" } th scope="col" { "Ran on" } th scope="col" { "Error" }
            } }
            tbody {
                @for a in &t.attempt_history {
                    tr {
                        td { (a.attempt) }
                        td { (layout::state(a.state.as_str())) }
                        td { (layout::time(a.started_at)) }
                        td { (layout::duration(layout::span(a.started_at, a.ended_at))) }
                        td { (a.ran_on.as_deref().unwrap_or("here")) }
                        td { @if let Some(e) = &a.error { span.error { (e) } } }
                    }
                }
            }
        }
    }
}

/// Inputs or outputs as a table: name, type, value or artifact (digest, size, download),
/// and, when `previews` has one for its digest, a preview under the row.
pub(crate) fn io_table(ios: &[IoRecord], previews: Option<&[(String, Markup)]>) -> Markup {
    if ios.is_empty() {
        return html! { p.empty { "None." } };
    }
    html! {
        table.io {
            thead { tr {
                th scope="col" { "Name" } th scope="col" { "Type" } th scope="col" { "Value or artifact" }
                th scope="col" { "Size" } th scope="col" { "Digest" }
            } }
            tbody {
                @for io in ios {
                    tr {
                        td { (io.name) }
                        td { (io.type_.as_deref().unwrap_or("")) }
                        td {
                            @if let Some(v) = &io.value {
                                code.value { (crate::runs::short(v, 400)) }
                            } @else if io.digest.starts_with("sha256-tree:") {
                                "a folder (its files below)"
                            } @else if io.digest.starts_with("sha256-table:") {
                                "a table passed in memory"
                            } @else {
                                a href=(download_href(&io.digest, &io.name)) download { "Download" }
                            }
                        }
                        td.num { (layout::size(io.size)) }
                        td { (layout::digest(&io.digest)) }
                    }
                    @if io.value.is_none() {
                        @if let Some(p) = previews.and_then(|ps| ps.iter().find(|(d, _)| *d == io.digest)) {
                            tr.preview { td colspan="5" {
                                details open {
                                    summary { "Preview of " (io.name) }
                                    (p.1)
                                }
                            } }
                        }
                    }
                }
            }
        }
    }
}

/// The address that downloads an artifact under a name.
pub(crate) fn download_href(digest: &str, name: &str) -> String {
    format!(
        "/ui/artifacts/{}?name={}",
        layout::segment(digest),
        layout::query_value(name)
    )
}

fn log_view(logs: &[LogRecord], running: bool) -> Markup {
    html! {
        @if logs.is_empty() && !running {
            p.empty { "The task wrote nothing." }
        }
        @for log in logs {
            h3 { "Attempt " (log.attempt) ", " (log.stream) }
            @if log.omitted > 0 {
                p.note { (layout::size(log.omitted)) " from the middle were not kept." }
            }
            pre.log tabindex="0" { (log.content) }
        }
        @if running {
            h3 { "Live output" }
            pre.log id="live-log" tabindex="0" aria-live="polite" {}
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct Download {
    #[serde(default)]
    name: String,
    /// Show a raster image in the page instead of downloading it.
    #[serde(default)]
    inline: Option<String>,
}

/// `GET /ui/artifacts/{digest}?name=N`: the artifact's bytes, checked against their
/// digest before the first is sent and streamed from its file (a large artifact costs
/// no memory), as an attachment named `N` (text as `text/plain`, everything else as
/// `application/octet-stream`); with `inline=1`, a PNG, JPEG, GIF or WebP image as
/// itself. Never as HTML, SVG or anything else a browser would run; sandboxed besides.
pub(crate) async fn download(
    State(ui): State<Arc<Ui>>,
    Path(digest): Path<String>,
    query: Result<Query<Download>, QueryRejection>,
) -> Result<Response, PageError> {
    let Query(q) = query.map_err(|e| PageError::bad_request(e.body_text()))?;
    let (path, head) = blocking(move || {
        if digest.starts_with("sha256-tree:") {
            return Err(PageError::bad_request(
                "this artifact is a folder: its task's page lists its files",
            ));
        }
        ui.store.verify(&digest)?;
        let path = ui.store.artifact_path(&digest)?;
        let head = preview::read_head(&path, 8 * 1024)
            .map_err(|e| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
        Ok((path, head))
    })
    .await?;
    let kind = preview::sniff(&head);
    let inline_image = q.inline.is_some() && matches!(kind, Kind::Image(_));
    let content_type = match kind {
        Kind::Image(mime) if inline_image => mime,
        Kind::Text | Kind::Csv | Kind::Json => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    };
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| PageError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let length = file.metadata().await.map(|m| m.len()).ok();
    let name = attachment_name(&q.name);
    let disposition = if inline_image {
        format!("inline; filename=\"{name}\"")
    } else {
        format!("attachment; filename=\"{name}\"")
    };
    let mut response =
        axum::body::Body::from_stream(tokio_util::io::ReaderStream::new(file)).into_response();
    let h = response.headers_mut();
    if let Some(length) = length {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_DISPOSITION,
        HeaderValue::from_str(&disposition).expect("an ASCII name without quotes"),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    Ok(response)
}

/// A file name safe in a `Content-Disposition` header: ASCII letters, digits and
/// `-_.`, the rest as `_`; `artifact` when nothing is left.
fn attachment_name(name: &str) -> String {
    let safe: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    let safe = safe.trim_start_matches('.');
    if safe.is_empty() {
        "artifact".to_owned()
    } else {
        safe.chars().take(120).collect()
    }
}

/// `GET /ui/runs/{run}/tasks/{task}/log`: while the task runs, event `line` for each line
/// it writes (`{"stream": "stdout"|"stderr", "line": text}`), and `end` once it has ended.
pub(crate) async fn log_events(
    State(ui): State<Arc<Ui>>,
    Path((run, task)): Path<(String, String)>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, PageError> {
    let run = blocking({
        let ui = ui.clone();
        let run = run.clone();
        move || Ok(ui.store.resolve_run(&run)?)
    })
    .await?;
    struct Follow {
        ui: Arc<Ui>,
        run: String,
        task: String,
        offset: u64,
        ended: bool,
    }
    let follow = Follow {
        ui,
        run,
        task,
        offset: 0,
        ended: false,
    };
    let stream = futures::stream::unfold(follow, |mut f| async move {
        if f.ended {
            return None;
        }
        let read = {
            let ui = f.ui.clone();
            let (run, task, offset) = (f.run.clone(), f.task.clone(), f.offset);
            tokio::task::spawn_blocking(move || {
                let lines = ui.store.live_log(&run, &task, offset);
                let state = ui.store.task_state(&run, &task);
                (lines, state)
            })
            .await
        };
        let mut out = Vec::new();
        let (lines, state) = match read {
            Ok(read) => read,
            Err(_) => {
                f.ended = true;
                return Some((vec![Event::default().event("end").data("{}")], f));
            }
        };
        if let Ok((lines, next)) = lines {
            f.offset = next;
            for (stream, line) in lines {
                out.push(
                    Event::default()
                        .event("line")
                        .data(serde_json::json!({ "stream": stream, "line": line }).to_string()),
                );
            }
        }
        match state {
            Ok(Some(s)) if !s.is_final() => {}
            _ => {
                f.ended = true;
                out.push(Event::default().event("end").data("{}"));
            }
        }
        if !f.ended && out.is_empty() {
            tokio::time::sleep(POLL).await;
        }
        Some((out, f))
    })
    .flat_map(|events| futures::stream::iter(events.into_iter().map(Ok)));
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_cannot_break_the_header() {
        assert_eq!(attachment_name("model.bin"), "model.bin");
        assert_eq!(attachment_name("a\"b\r\nc"), "a_b__c");
        assert_eq!(attachment_name("../../etc/passwd"), "_.._etc_passwd");
        assert_eq!(attachment_name(""), "artifact");
        assert_eq!(attachment_name("données"), "donn_es");
    }
}
