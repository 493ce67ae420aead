//! Sluice's web UI: the home's runs, their task graphs, tasks with their inputs, outputs,
//! logs and metrics, comparisons of runs, artifact lineage and the model repository, as
//! server-rendered HTML under `/ui/`.
//!
//! Pages are HTML from `maud` (which escapes everything spliced into them), one
//! stylesheet and one small script served from the binary; nothing is fetched from
//! elsewhere, and every page works without JavaScript except for live updates, which
//! come as server-sent events. Reading needs nothing; every change (a rollback, a label)
//! is a `POST` that must carry the home's admin token (`<home>/serve/admin-token`, the
//! one `sluice serve`'s admin API wants) and come from a page of the UI itself (its
//! `Origin` names this server). Artifacts are served as downloads or as plain text, never
//! as HTML the browser would run.

mod assets;
mod charts;
mod compare;
mod graph;
mod layout;
mod lineage;
mod models;
mod preview;
mod run;
mod runs;
mod task;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use sluice_runtime::models::{ModelError, Repository};
use sluice_runtime::serve::ServeError;
use sluice_runtime::store::{Store, StoreError};

/// What the UI serves from.
#[derive(Clone, Debug)]
pub struct UiConfig {
    /// The Sluice home whose runs and models are shown.
    pub home: PathBuf,
    /// Graphviz's `dot`, which lays run graphs out; `None` draws them by stage instead.
    pub dot: Option<PathBuf>,
    /// Answer requests whatever host they name. Off (the default), only requests for
    /// `localhost` or a loopback address are answered: a page of another site whose
    /// name is made to point at 127.0.0.1 (DNS rebinding) gets 421, not the home's runs.
    /// Turn it on when the UI listens on an address other machines reach.
    pub any_host: bool,
}

impl UiConfig {
    /// The home's UI, with `dot` from `PATH` when it is installed.
    pub fn new(home: &Path) -> UiConfig {
        UiConfig {
            home: home.to_owned(),
            dot: find_dot(),
            any_host: false,
        }
    }
}

/// Graphviz's `dot` on `PATH`, if any.
pub fn find_dot() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("dot"))
            .find(|p| p.is_file())
    })
}

/// The UI cannot start: the home's store or its admin token cannot be had.
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Token(#[from] ServeError),
}

/// Shared by every handler.
pub(crate) struct Ui {
    store: Store,
    models: Repository,
    home: PathBuf,
    dot: Option<PathBuf>,
}

impl Ui {
    /// The admin token a change must carry: the home's, read when it is asked for, so
    /// that the UI and a server started after it agree.
    fn admin_token(&self) -> Result<String, ServeError> {
        sluice_runtime::serve::home_admin_token(&self.home)
    }
}

/// The UI's routes, all under `/ui/`, for `sluice ui` or to merge into `sluice serve`'s
/// router. Opens the home's store (creating it when missing) and makes sure the home has
/// an admin token.
///
/// # Errors
/// [`UiError::Store`] when the home cannot be opened; [`UiError::Token`] when its admin
/// token can neither be read nor written.
pub fn router(config: UiConfig) -> Result<Router, UiError> {
    let store = Store::open(&config.home)?;
    let home = store.home().to_owned();
    sluice_runtime::serve::home_admin_token(&home)?;
    let ui = Arc::new(Ui {
        models: Repository::open(&home),
        store,
        home,
        dot: config.dot,
    });
    let routes = Router::new()
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(runs::page))
        .route("/ui/runs/{run}", get(run::page))
        .route("/ui/runs/{run}/events", get(run::events))
        .route("/ui/runs/{run}/tasks/{task}", get(task::page))
        .route("/ui/runs/{run}/tasks/{task}/log", get(task::log_events))
        .route("/ui/artifacts/{digest}", get(task::download))
        .route("/ui/lineage/{digest}", get(lineage::page))
        .route("/ui/compare", get(compare::page))
        .route("/ui/models", get(models::page))
        .route("/ui/models/{name}/rollback", post(models::rollback))
        .route("/ui/models/{name}/label", post(models::label))
        .route("/ui/static/{file}", get(assets::serve))
        .with_state(ui)
        .layer(middleware::from_fn(headers))
        .layer(middleware::from_fn_with_state(config.any_host, known_host));
    Ok(routes)
}

/// A page for a path under `/ui/` that names nothing: 404, saying so.
pub async fn not_found(uri: axum::http::Uri) -> Response {
    PageError::not_found(format!("no page at {}", uri.path())).into_response()
}

/// Refuses (421) a request whose `Host` is neither `localhost` nor a loopback address,
/// unless any host is allowed.
async fn known_host(
    axum::extract::State(any_host): axum::extract::State<bool>,
    request: Request,
    next: Next,
) -> Response {
    if any_host
        || request
            .headers()
            .get(header::HOST)
            .is_some_and(is_loopback_host)
    {
        return next.run(request).await;
    }
    PageError::new(
        StatusCode::MISDIRECTED_REQUEST,
        "this UI answers only requests for localhost or a loopback address \
         (start it with --bind on another address to reach it by another name)",
    )
    .into_response()
}

/// Whether a `Host` header names `localhost` or a loopback address (with any port).
fn is_loopback_host(host: &HeaderValue) -> bool {
    let Ok(host) = host.to_str() else {
        return false;
    };
    let name = match host.strip_prefix('[') {
        // [::1]:8580
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Headers every answer of the UI carries: a content security policy that allows only
/// the UI's own stylesheet, script and server-sent events (nothing inline, nothing from
/// elsewhere, no framing), no MIME sniffing, and no referrer outside the UI.
async fn headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    // A handler's own, stricter policy (a download's sandbox) stays.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self' data:; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// An answer that is not the page asked for: its status and one line saying why, shown
/// as a page.
#[derive(Debug)]
pub(crate) struct PageError {
    status: StatusCode,
    message: String,
}

impl PageError {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError {
            status,
            message: message.into(),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::NOT_FOUND, message)
    }

    pub(crate) fn bad_request(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::BAD_REQUEST, message)
    }

    pub(crate) fn forbidden(message: impl Into<String>) -> PageError {
        PageError::new(StatusCode::FORBIDDEN, message)
    }
}

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> PageError {
        let status = match e {
            StoreError::UnknownRun(_)
            | StoreError::UnknownTask { .. }
            | StoreError::AmbiguousRun { .. }
            | StoreError::MissingArtifact(_) => StatusCode::NOT_FOUND,
            StoreError::BadDigest(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PageError::new(status, e.to_string())
    }
}

impl From<ModelError> for PageError {
    fn from(e: ModelError) -> PageError {
        let status = match e {
            ModelError::UnknownModel(_)
            | ModelError::UnknownVersion { .. }
            | ModelError::UnknownLabel { .. } => StatusCode::NOT_FOUND,
            ModelError::NothingToRollBackTo(_) => StatusCode::CONFLICT,
            ModelError::Invalid(_) => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        PageError::new(status, e.to_string())
    }
}

impl From<ServeError> for PageError {
    fn from(e: ServeError) -> PageError {
        match e {
            // The server refused the change as the repository would have (no such
            // model or version, nothing to roll back to): its status and its words.
            ServeError::Refused {
                status, message, ..
            } if status.is_client_error() => PageError::new(status, message),
            e => PageError::new(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = self.status.canonical_reason().unwrap_or("error").to_owned();
        let body = layout::page(
            &title,
            layout::Nav::None,
            maud::html! {
                h1 { (title) }
                p.error role="alert" { (self.message) }
                p { a href="/ui/" { "Back to the runs" } }
            },
        );
        (self.status, Html(body.into_string())).into_response()
    }
}

/// Runs a blocking read of the store (SQLite, files) off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, PageError> + Send + 'static,
) -> Result<T, PageError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(PageError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            e.to_string(),
        ))
    })
}

/// Refuses a change that does not come from a page of this server: its `Origin` (or,
/// from a browser that sends none, its `Referer`) must name the host it was sent to.
/// Forms post across sites without asking; this is what stops another site's page from
/// posting to the UI in its user's browser.
pub(crate) fn same_origin(headers: &HeaderMap) -> Result<(), PageError> {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| PageError::bad_request("the request names no Host"))?;
    // Behind a TLS proxy the page's origin is https.
    let expected = [format!("http://{host}"), format!("https://{host}")];
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    let referer = headers.get(header::REFERER).and_then(|v| v.to_str().ok());
    let ok = match (origin, referer) {
        (Some(origin), _) => expected.iter().any(|e| origin == e),
        (None, Some(referer)) => expected.iter().any(|e| {
            referer
                .strip_prefix(e.as_str())
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }),
        (None, None) => false,
    };
    if ok {
        Ok(())
    } else {
        Err(PageError::forbidden(format!(
            "changes are taken only from the UI's own pages ({}); this request came from {}",
            expected[0],
            origin.or(referer).unwrap_or("no page")
        )))
    }
}

/// Checks a presented admin token against the home's, in time independent of where
/// they differ.
pub(crate) fn check_token(ui: &Ui, presented: &str) -> Result<(), PageError> {
    let token = ui.admin_token()?;
    let presented = presented.trim();
    if presented.is_empty() {
        return Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            "this change needs the admin token (in <home>/serve/admin-token)",
        ));
    }
    if sluice_runtime::serve::constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(PageError::new(
            StatusCode::UNAUTHORIZED,
            "the admin token is wrong",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_are_known() {
        let known = |h: &'static str| is_loopback_host(&HeaderValue::from_static(h));
        for good in [
            "127.0.0.1:8580",
            "localhost:8580",
            "LOCALHOST",
            "[::1]:8580",
            "127.1.2.3",
        ] {
            assert!(known(good), "{good}");
        }
        for bad in [
            "attacker.example:8580",
            "10.0.0.1:8580",
            "localhost.attacker.example",
            "[::2]:1",
            "",
        ] {
            assert!(!known(bad), "{bad}");
        }
    }
}
