//! `sluice models`: the home's model repository — versions, labels, rollback. Changes are
//! passed on to a server running for the same home, which applies them at once.

use std::process::ExitCode;

use anyhow::{Context, Result};
use sluice_runtime::models::Repository;
use sluice_runtime::serve::{ServeError, admin_request, find_server};

use super::open_store;
use crate::Paths;

#[derive(clap::Subcommand)]
pub enum Command {
    /// List models: the version each serves by default, and their labels
    List {
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Show every version of a model: digests, signature, the run that produced it
    Show {
        name: String,
        /// Print JSON
        #[arg(long)]
        json: bool,
    },
    /// Serve an earlier version by default: the one before the current, or --to
    Rollback {
        name: String,
        /// The version to serve
        #[arg(long, value_name = "VERSION")]
        to: Option<u64>,
    },
    /// Point a label (stable, canary, ...) at a version, or remove it
    Label {
        name: String,
        label: String,
        /// The version the label names; omit with --remove
        #[arg(value_name = "VERSION", required_unless_present = "remove")]
        number: Option<u64>,
        /// Remove the label
        #[arg(long, conflicts_with = "number")]
        remove: bool,
        /// For `canary`: the share (0 to 1) of unpinned requests it takes
        #[arg(long, value_name = "SHARE")]
        share: Option<f64>,
    },
}

pub fn run(paths: &Paths, command: Command) -> Result<ExitCode> {
    let store = open_store(paths)?;
    let home = store.home().to_owned();
    let repo = Repository::open(&home);
    match command {
        Command::List { json } => {
            let mut rows = Vec::new();
            for name in repo.names()? {
                let versions = repo.versions(&name)?;
                let state = repo.state(&name)?;
                let default = repo.default_version(&name)?;
                rows.push((name, versions, state, default));
            }
            if json {
                let list: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|(name, versions, state, default)| {
                        serde_json::json!({
                            "name": name,
                            "default": default,
                            "versions": versions.iter().map(|v| v.meta.version).collect::<Vec<_>>(),
                            "labels": state.labels,
                            "canary_share": state.canary_share,
                        })
                    })
                    .collect();
                outln!("{}", serde_json::to_string_pretty(&list)?);
            } else if rows.is_empty() {
                outln!("no models yet; a pipeline with a deploy section publishes one");
            } else {
                crate::report::model_list(&rows);
            }
        }
        Command::Show { name, json } => {
            let versions = repo.versions(&name)?;
            let state = repo.state(&name)?;
            let default = repo.default_version(&name)?;
            if json {
                let metas: Vec<_> = versions.iter().map(|v| &v.meta).collect();
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "name": name,
                        "default": default,
                        "labels": state.labels,
                        "canary_share": state.canary_share,
                        "versions": metas,
                    }))?
                );
            } else {
                crate::report::model_details(&name, &versions, &state, default);
            }
        }
        Command::Rollback { name, to } => {
            // A running server rolls back itself, so that it serves the version the moment
            // the repository names it. One that does not answer is rolled back in the
            // repository, as with no server at all.
            if let Some((url, token)) = find_server(&home) {
                let body = serde_json::json!({ "to": to });
                match tokio_run(admin_request(&url, &token, &name, "rollback", body))? {
                    Ok(answer) => {
                        outln!(
                            "model '{name}' rolled back from version {} to {}; the server at {url} serves it",
                            answer["from"],
                            answer["version"]
                        );
                        return Ok(ExitCode::SUCCESS);
                    }
                    Err(e @ ServeError::Unreachable { .. }) => unanswered(&e),
                    Err(e) => return Err(e.into()),
                }
            }
            let (from, to) = repo.rollback(&name, to)?;
            outln!("model '{name}' rolled back from version {from} to {to}");
        }
        Command::Label {
            name,
            label,
            number,
            remove,
            share,
        } => {
            let version = if remove { None } else { number };
            repo.set_label(&name, &label, version, share)?;
            match version {
                Some(v) => outln!("model '{name}': label '{label}' names version {v}"),
                None => outln!("model '{name}': label '{label}' removed"),
            }
            tell_server(&home, &name)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Has a running server read the model's state again. The repository has changed
/// whatever happens; a server that does not answer is a warning, as after a deploy.
fn tell_server(home: &std::path::Path, name: &str) -> Result<()> {
    if let Some((url, token)) = find_server(home) {
        let told = tokio_run(admin_request(
            &url,
            &token,
            name,
            "deploy",
            serde_json::json!({}),
        ))?;
        match told {
            Ok(_) => outln!("the server at {url} applied it"),
            Err(e @ ServeError::Unreachable { .. }) => unanswered(&e),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Says that the server a home names did not answer, so the change is in the
/// repository only: a server reads it when it next loads the model.
fn unanswered(e: &ServeError) {
    errln!(
        "warning: {}; the change is made in the model repository, which a server reads when it next loads the model",
        sluice_runtime::error_chain(e)
    );
}

fn tokio_run<F: Future>(f: F) -> Result<F::Output> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    Ok(runtime.block_on(f))
}
