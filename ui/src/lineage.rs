//! An artifact's lineage: from its digest, the tasks that produced it, every task that
//! read it, the runs that output it, and the model versions made from it.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::response::Html;
use maud::html;
use sluice_runtime::store::{ArtifactUse, Direction};

use crate::layout::{self, Nav};
use crate::{PageError, Ui, blocking};

pub(crate) async fn page(
    State(ui): State<Arc<Ui>>,
    Path(digest): Path<String>,
) -> Result<Html<String>, PageError> {
    let (uses, stored, models) = blocking({
        let ui = ui.clone();
        let digest = digest.clone();
        move || {
            let uses = ui.store.uses_of(&digest)?;
            let stored = ui.store.contains(&digest);
            let mut models = Vec::new();
            for name in ui.models.names()? {
                for v in ui.models.versions(&name)? {
                    if v.meta.model_digest == digest {
                        models.push((name.clone(), v.meta.version));
                    }
                }
            }
            Ok((uses, stored, models))
        }
    })
    .await?;
    let (made, read): (Vec<&ArtifactUse>, Vec<&ArtifactUse>) =
        uses.iter().partition(|u| u.direction == Direction::Output);
    let list = |uses: &[&ArtifactUse]| {
        html! {
            @if uses.is_empty() {
                p.empty { "None." }
            } @else {
                table {
                    thead { tr {
                        th scope="col" { "Run" } th scope="col" { "Pipeline" } th scope="col" { "Task" }
                        th scope="col" { "As" } th scope="col" { "Started (UTC)" }
                    } }
                    tbody {
                        @for u in uses {
                            tr {
                                td { a href=(layout::run_href(&u.run)) { code { (u.run) } } }
                                td { (u.pipeline) }
                                td { a href=(layout::task_href(&u.run, &u.task)) { (u.task) } }
                                td { (u.name) }
                                td { (layout::time(u.started_at)) }
                            }
                        }
                    }
                }
            }
        }
    };
    let body = html! {
        h1 { "Lineage" }
        p { code.wrap { (digest) } }
        p {
            @if stored {
                "In the store."
            } @else {
                "Not in the store (collected, or never stored)."
            }
        }
        section { h2 { "Produced by" } (list(&made)) }
        section { h2 { "Read by" } (list(&read)) }
        @if !models.is_empty() {
            section {
                h2 { "Published as" }
                ul { @for (name, v) in &models { li { a href="/ui/models" { (name) } " version " (v) } } }
            }
        }
    };
    Ok(Html(layout::page("Lineage", Nav::None, body).into_string()))
}
