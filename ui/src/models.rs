//! The model repository: each model's versions, the run that produced each, labels, the
//! canary's share, and what a server running for the home serves; rollback and labels as
//! forms that need the admin token. A change goes to the running server, which applies
//! it at once (as `sluice models rollback` does), or to the repository when none runs.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, Redirect};
use maud::{Markup, html};
use serde::Deserialize;
use sluice_runtime::models::{ModelError, ModelState, Version};
use sluice_runtime::serve::{ServeError, ServedModel, admin_request, find_server, served};

use crate::layout::{self, Nav};
use crate::{PageError, Ui, blocking, check_token, same_origin};

struct Model {
    name: String,
    versions: Vec<Version>,
    state: ModelState,
    default: u64,
}

pub(crate) async fn page(State(ui): State<Arc<Ui>>) -> Result<Html<String>, PageError> {
    let (models, server) = blocking({
        let ui = ui.clone();
        move || {
            let mut models = Vec::new();
            for name in ui.models.names()? {
                models.push(Model {
                    versions: ui.models.versions(&name)?,
                    state: ui.models.state(&name)?,
                    default: ui.models.default_version(&name)?,
                    name,
                });
            }
            Ok((models, find_server(&ui.home)))
        }
    })
    .await?;
    // What the server serves, asked of it; a server that does not answer says so.
    let mut serving: BTreeMap<String, Result<ServedModel, String>> = BTreeMap::new();
    if let Some((url, _)) = &server {
        for m in &models {
            let answer = served(url, &m.name).await.map_err(|e| e.to_string());
            serving.insert(m.name.clone(), answer);
        }
    }
    let body = html! {
        h1 { "Models" }
        p {
            @match &server {
                Some((url, _)) => { "Served by the server at " code { (url) } "." }
                None => { "No server runs for this home; " code { "sluice serve" } " serves these models." }
            }
        }
        @if models.is_empty() {
            p.empty { "No models yet; a pipeline with a deploy section publishes one." }
        }
        @for m in &models {
            (model(m, serving.get(&m.name)))
        }
    };
    Ok(Html(
        layout::page("Models", Nav::Models, body).into_string(),
    ))
}

fn model(m: &Model, served: Option<&Result<ServedModel, String>>) -> Markup {
    let id = format!("model-{}", layout::segment(&m.name));
    html! {
        section.model id=(id) data-model=(m.name) {
            h2 { (m.name) }
            dl.facts {
                dt { "Default version" } dd.default-version { (m.default) }
                dt { "Labels" }
                dd {
                    @if m.state.labels.is_empty() { "none" }
                    @for (label, v) in &m.state.labels { span.badge { (label) " → " (v) } " " }
                }
                @if m.state.canary_share > 0.0 {
                    dt { "Canary share" } dd { (format!("{:.0} %", m.state.canary_share * 100.0)) }
                }
                @if let Some(served) = served {
                    dt { "Served" }
                    dd.served {
                        @match served {
                            Ok(s) if s.versions.is_empty() => "nothing",
                            Ok(s) => {
                                @if let Some(v) = s.default {
                                    "version " span.served-default { (v) } " to requests naming none; "
                                }
                                @for (v, state) in &s.versions { span.badge data-version=(v) { "version " (v) ": " (state) } " " }
                            }
                            Err(e) => span.error { "the server did not answer: " (e) },
                        }
                    }
                }
            }
            table {
                thead { tr {
                    th scope="col" { "Version" } th scope="col" { "Created (UTC)" } th scope="col" { "Run" }
                    th scope="col" { "Model artifact" } th scope="col" { "Metrics" }
                } }
                tbody {
                    @for v in m.versions.iter().rev() {
                        tr class=[(v.meta.version == m.default).then_some("default")] {
                            td { (v.meta.version) @if v.meta.version == m.default { " (default)" } }
                            td { (layout::time(v.meta.created_at)) }
                            td { @if let Some(run) = &v.meta.run { a href=(layout::run_href(run)) { code { (run) } } } }
                            td { (layout::digest(&v.meta.model_digest)) }
                            td {
                                @for (task, metrics) in &v.meta.metrics {
                                    @for (k, value) in metrics { span.metric { (task) "." (k) " = " (format!("{value:.4}")) } " " }
                                }
                            }
                        }
                    }
                }
            }
            div.forms {
                form method="post" action={ "/ui/models/" (layout::segment(&m.name)) "/rollback" } {
                    fieldset {
                        legend { "Roll back" }
                        label { "To version "
                            select name="to" {
                                option value="" { "the one before the default" }
                                @for v in m.versions.iter().rev() {
                                    @if v.meta.version != m.default {
                                        option value=(v.meta.version) { (v.meta.version) }
                                    }
                                }
                            }
                        }
                        label { "Admin token " input type="password" name="token" autocomplete="off" required; }
                        button type="submit" { "Roll back" }
                    }
                }
                form method="post" action={ "/ui/models/" (layout::segment(&m.name)) "/label" } {
                    fieldset {
                        legend { "Label a version" }
                        label { "Label " input type="text" name="label" required placeholder="stable"; }
                        label { "Version "
                            select name="version" {
                                option value="" { "remove the label" }
                                @for v in m.versions.iter().rev() { option value=(v.meta.version) { (v.meta.version) } }
                            }
                        }
                        label { "Canary share (0 to 1) " input type="number" name="share" min="0" max="1" step="0.01"; }
                        label { "Admin token " input type="password" name="token" autocomplete="off" required; }
                        button type="submit" { "Set label" }
                    }
                }
            }
        }
    }
}

/// Refuses (404) a change to a model the repository does not have.
async fn known_model(ui: &Arc<Ui>, name: &str) -> Result<(), PageError> {
    let ui = ui.clone();
    let name = name.to_owned();
    blocking(move || {
        if ui.models.names()?.contains(&name) {
            Ok(())
        } else {
            Err(ModelError::UnknownModel(name).into())
        }
    })
    .await
}

#[derive(Debug, Deserialize)]
pub(crate) struct RollbackForm {
    #[serde(default)]
    to: String,
    #[serde(default)]
    token: String,
}

fn version_field(field: &str, text: &str) -> Result<Option<u64>, PageError> {
    match text.trim() {
        "" => Ok(None),
        t => t.parse().map(Some).map_err(|_| {
            PageError::bad_request(format!("{field}: expected a version number, got '{t}'"))
        }),
    }
}

/// `POST /ui/models/{name}/rollback` (form: `to`, `token`).
pub(crate) async fn rollback(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: Result<Form<RollbackForm>, FormRejection>,
) -> Result<Redirect, PageError> {
    same_origin(&headers)?;
    let Form(form) = form.map_err(|e| PageError::bad_request(e.body_text()))?;
    check_token(&ui, &form.token)?;
    known_model(&ui, &name).await?;
    let to = version_field("to", &form.to)?;
    if let Some((url, token)) = find_server(&ui.home) {
        let body = serde_json::json!({ "to": to });
        match admin_request(&url, &token, &name, "rollback", body).await {
            Ok(_) => return Ok(Redirect::to("/ui/models")),
            // A server that does not answer is rolled back in the repository, as with
            // no server at all.
            Err(ServeError::Unreachable { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    blocking(move || {
        ui.models.rollback(&name, to)?;
        Ok(())
    })
    .await?;
    Ok(Redirect::to("/ui/models"))
}

#[derive(Debug, Deserialize)]
pub(crate) struct LabelForm {
    label: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    share: String,
    #[serde(default)]
    token: String,
}

/// `POST /ui/models/{name}/label` (form: `label`, `version` (empty: remove), `share`,
/// `token`).
pub(crate) async fn label(
    State(ui): State<Arc<Ui>>,
    Path(name): Path<String>,
    headers: HeaderMap,
    form: Result<Form<LabelForm>, FormRejection>,
) -> Result<Redirect, PageError> {
    same_origin(&headers)?;
    let Form(form) = form.map_err(|e| PageError::bad_request(e.body_text()))?;
    check_token(&ui, &form.token)?;
    known_model(&ui, &name).await?;
    let version = version_field("version", &form.version)?;
    let share = match form.share.trim() {
        "" => None,
        t => Some(t.parse::<f64>().map_err(|_| {
            PageError::bad_request(format!("share: expected a number from 0 to 1, got '{t}'"))
        })?),
    };
    let label = form.label.trim().to_owned();
    {
        let ui = ui.clone();
        let name = name.clone();
        blocking(move || {
            ui.models.set_label(&name, &label, version, share)?;
            Ok(())
        })
        .await?;
    }
    if let Some((url, token)) = find_server(&ui.home) {
        match admin_request(&url, &token, &name, "deploy", serde_json::json!({})).await {
            Ok(_) | Err(ServeError::Unreachable { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Redirect::to("/ui/models"))
}
