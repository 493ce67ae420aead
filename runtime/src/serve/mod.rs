//! `sluice serve`: the models of a Sluice home over REST, in both protocols clients
//! already speak — TF Serving's REST API (`/v1/models/...`, [`tfs`]) and the Open
//! Inference Protocol v2 of KServe and Triton (`/v2/...`, [`oip`]) — plus Prometheus
//! metrics and a small admin API that deploys, rolls back and unloads without a restart.
//!
//! Requests are routed by the [`registry`] to a version's pool of predictor instances
//! ([`predictor`], the only module that touches wasmtime). [`tensor`] holds typed
//! tensors and their checks, `json` reads and writes the protocols' JSON straight from
//! and into them, `body` reads request bodies under the limits, and [`conn`] keeps each
//! connection's timeouts and drains them on shutdown. A running server leaves
//! `serve/server.json` in its home so `sluice run` and `sluice models` there can tell it
//! about new versions.

mod body;
pub mod conn;
mod json;
pub mod metrics;
mod oip;
pub mod predictor;
pub mod registry;
pub mod tensor;
mod tfs;

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::models::{Repository, Signature};

use self::body::{Body, BodyLimits, Budget};
use self::conn::{ConnLimits, Drained};
use self::metrics::Metrics;
use self::predictor::{PoolConfig, PredictorEngine, PredictorError};
use self::registry::{Registry, ReloadError, RouteError, Selector, Served};
use self::tensor::Tensor;

/// How `sluice serve` runs.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub bind: SocketAddr,
    /// The bearer token the admin API wants; when `None`, one is made and written to
    /// `<home>/serve/admin-token` (readable by its owner only).
    pub admin_token: Option<String>,
    /// Largest request body, in bytes, as sent and once decoded.
    pub body_limit: usize,
    /// Bytes requests may hold at once, over all requests: their bodies as they arrive
    /// and are decoded, and twice the tensors read from them (the server's copy and the
    /// predictor's). A request beyond it waits (within `body_timeout`) for others to
    /// finish, then gets 503; one larger than the whole budget runs alone.
    pub body_budget: usize,
    /// Longest a request's body may take to arrive, and an answer to be taken by its
    /// client (408, or the connection closed, after it).
    pub body_timeout: Duration,
    /// Longest from a request's first byte until its headers are complete.
    pub header_timeout: Duration,
    /// Longest a connection may stay open between requests.
    pub keep_alive_timeout: Duration,
    /// On shutdown, longest to wait for requests in flight before exiting anyway.
    pub drain_timeout: Duration,
    pub pool: PoolConfig,
    /// An idle instance is dropped after this long unused.
    pub idle_timeout: Duration,
    /// A model version nobody asked for in this long scales to zero; `None`: never.
    pub scale_to_zero: Option<Duration>,
    /// Serve only these models (all of the repository when `None`).
    pub models: Option<Vec<String>>,
}

impl Default for ServeConfig {
    fn default() -> Self {
        ServeConfig {
            bind: SocketAddr::from(([127, 0, 0, 1], 8501)),
            admin_token: None,
            body_limit: 16 << 20,
            body_budget: 128 << 20,
            body_timeout: Duration::from_secs(10),
            header_timeout: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(10),
            pool: PoolConfig::default(),
            idle_timeout: Duration::from_secs(60),
            scale_to_zero: Some(Duration::from_secs(15 * 60)),
            models: None,
        }
    }
}

/// What a running server tells other Sluice commands of the same home.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ServerInfo {
    pub url: String,
    pub pid: u32,
    /// The server process's start tick ([`crate::process_start_ticks`]), so that another
    /// process with its id is not taken for it; absent in files of older servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid_start_ticks: Option<u64>,
}

const SERVER_FILE: &str = "serve/server.json";
const TOKEN_FILE: &str = "serve/admin-token";

/// Shared by every handler.
pub(crate) struct AppState {
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    admin_token: String,
    bodies: BodyLimits,
}

/// A server that has bound its address and loaded its models, ready to [`Server::run`].
pub struct Server {
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    config: ServeConfig,
    info_file: PathBuf,
}

/// A server that cannot start, or an admin request a running server did not carry out.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Engine(#[from] predictor::LoadError),
    /// The repository cannot be read, or a model asked for is not in it.
    #[error("{0}")]
    Models(String),
    #[error("the admin token must be at least 16 characters")]
    ShortToken,
    #[error("cannot listen on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The server a home names does not answer: the environment's to fix.
    #[error("cannot reach the server at {url}")]
    Unreachable {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("the server at {url} answered {status} with no JSON")]
    NoJson {
        url: String,
        status: StatusCode,
        #[source]
        source: reqwest::Error,
    },
    #[error("the server at {url} answered {status}: {message}")]
    Refused {
        url: String,
        status: StatusCode,
        message: String,
    },
}

impl Server {
    /// Loads (and warms) the default version of every model, then binds.
    pub async fn start(
        home: &Path,
        cache_dir: &Path,
        config: ServeConfig,
    ) -> Result<Server, ServeError> {
        let engine = PredictorEngine::new(cache_dir, config.pool.clone())?;
        let metrics = Arc::new(Metrics::new());
        let registry = Arc::new(Registry::new(
            Repository::open(home),
            Arc::new(engine),
            metrics.clone(),
            config.models.clone(),
        ));
        registry.load_all().await?;
        let admin_token = match &config.admin_token {
            Some(token) if token.len() >= 16 => token.clone(),
            Some(_) => return Err(ServeError::ShortToken),
            None => home_admin_token(home)?,
        };
        let listen = |source| ServeError::Listen {
            addr: config.bind,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;
        let info_file = home.join(SERVER_FILE);
        let info = ServerInfo {
            url: format!("http://{}", connectable(addr)),
            pid: std::process::id(),
            pid_start_ticks: crate::process_start_ticks(std::process::id()),
        };
        let text = serde_json::to_vec_pretty(&info).expect("plain data");
        write_atomically(&info_file, &text)?;
        Ok(Server {
            listener,
            state: Arc::new(AppState {
                registry,
                metrics,
                admin_token,
                bodies: BodyLimits::new(
                    config.body_limit,
                    config.body_timeout,
                    config.body_budget.max(config.body_limit),
                ),
            }),
            config,
            info_file,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.state.registry
    }

    pub fn admin_token(&self) -> &str {
        &self.state.admin_token
    }

    /// Serves until `shutdown` completes, then stops accepting, lets the requests in
    /// flight finish for up to the drain timeout, and removes `serve/server.json`.
    /// Says whether every connection finished before the drain deadline.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> Drained {
        self.run_with(Router::new(), shutdown).await
    }

    /// [`Server::run`], also answering `pages`' routes (the web UI's, under `/ui/`),
    /// which must not overlap the serving API's.
    pub async fn run_with(
        self,
        pages: Router,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Drained {
        let app = router(self.state.clone()).merge(pages);
        let registry = self.state.registry.clone();
        let idle = self.config.idle_timeout;
        let zero = self.config.scale_to_zero;
        let shrinker = tokio::spawn(async move {
            let period = idle
                .min(zero.unwrap_or(idle))
                .clamp(Duration::from_millis(100), Duration::from_secs(5));
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                registry.shrink(idle, zero).await;
            }
        });
        let limits = ConnLimits {
            header: self.config.header_timeout,
            keep_alive: self.config.keep_alive_timeout,
            write: self.config.body_timeout,
        };
        let drained = conn::serve(
            self.listener,
            app,
            limits,
            shutdown,
            self.config.drain_timeout,
        )
        .await;
        shrinker.abort();
        // Another server may have taken over the file; remove only our own.
        if read_info(&self.info_file).is_some_and(|i| i.pid == std::process::id()) {
            let _ = std::fs::remove_file(&self.info_file);
        }
        drained
    }
}

/// The address clients should dial: a wildcard bind is reachable on loopback.
fn connectable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        let loopback: std::net::IpAddr = if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        };
        SocketAddr::new(loopback, addr.port())
    } else {
        addr
    }
}

/// The home's admin token (`<home>/serve/admin-token`), which the admin API and the web
/// UI's changes want: the one there, or a new one written there (readable by its owner
/// only) when there is none.
///
/// # Errors
/// [`ServeError::Write`] when a new token cannot be written.
pub fn home_admin_token(home: &Path) -> Result<String, ServeError> {
    let path = home.join(TOKEN_FILE);
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let existing = existing.trim();
        if existing.len() >= 16 {
            return Ok(existing.to_owned());
        }
    }
    let token = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    write_atomically(&path, token.as_bytes())?;
    Ok(token)
}

/// Writes a file by rename, readable by its owner only.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ServeError> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().expect("server files live in a folder");
    std::fs::create_dir_all(dir).map_err(|source| ServeError::Write {
        path: dir.to_owned(),
        source,
    })?;
    let write = || -> std::io::Result<()> {
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
        tmp.write_all(bytes)?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    };
    write().map_err(|source| ServeError::Write {
        path: path.to_owned(),
        source,
    })
}

fn read_info(path: &Path) -> Option<ServerInfo> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// Where to reach the server of a home, and its admin token: `SLUICE_SERVER_URL` and
/// `SLUICE_ADMIN_TOKEN` when set, else the files a running server left in the home.
/// `None` when no server runs there.
pub fn find_server(home: &Path) -> Option<(String, String)> {
    let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let url = match env("SLUICE_SERVER_URL") {
        Some(url) => url,
        None => {
            let info = read_info(&home.join(SERVER_FILE))?;
            if !crate::process_alive(info.pid, None, info.pid_start_ticks) {
                return None;
            }
            info.url
        }
    };
    let token = env("SLUICE_ADMIN_TOKEN").or_else(|| {
        std::fs::read_to_string(home.join(TOKEN_FILE))
            .ok()
            .map(|t| t.trim().to_owned())
    })?;
    Some((url, token))
}

/// An admin request to a running server: `deploy`, `rollback` or `unload` of a model.
/// Returns the server's JSON answer.
pub async fn admin_request(
    url: &str,
    token: &str,
    model: &str,
    action: &str,
    body: Value,
) -> Result<Value, ServeError> {
    let endpoint = format!(
        "{}/admin/models/{model}/{action}",
        url.trim_end_matches('/')
    );
    let unreachable = |source| ServeError::Unreachable {
        url: url.to_owned(),
        source,
    };
    let client = client_of(url, Duration::from_secs(120))?;
    let response = client
        .post(&endpoint)
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    let answer: Value = response.json().await.map_err(|source| ServeError::NoJson {
        url: url.to_owned(),
        status,
        source,
    })?;
    if status.is_success() {
        Ok(answer)
    } else {
        Err(ServeError::Refused {
            url: url.to_owned(),
            status,
            message: answer["error"].as_str().unwrap_or("no message").to_owned(),
        })
    }
}

/// What a running server serves of a model: the version a request naming no version
/// gets (one draw, when a canary takes a share), and every version it holds with its state (TF Serving's: `AVAILABLE`,
/// `LOADING`, `UNAVAILABLE`, ...).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServedModel {
    pub default: Option<u64>,
    pub versions: Vec<(u64, String)>,
}

/// What the running server at `url` serves of `model`, from TF Serving's model status
/// and metadata APIs (`GET /v1/models/{model}` and `.../metadata`); nothing when it does
/// not serve the model.
///
/// # Errors
/// [`ServeError::Unreachable`] when the server does not answer; [`ServeError::Refused`]
/// for an answer other than 200 or 404.
pub async fn served(url: &str, model: &str) -> Result<ServedModel, ServeError> {
    let versions = served_versions(url, model).await?;
    if versions.is_empty() {
        return Ok(ServedModel::default());
    }
    let metadata = tfs_get(url, &format!("v1/models/{model}/metadata")).await?;
    let default = metadata
        .as_ref()
        .and_then(|m| m["model_spec"]["version"].as_str()?.parse().ok());
    Ok(ServedModel { default, versions })
}

/// An HTTP client for the running server at `url`, each request bounded by `timeout`.
fn client_of(url: &str, timeout: Duration) -> Result<reqwest::Client, ServeError> {
    crate::init_tls();
    reqwest::Client::builder()
        .timeout(timeout)
        .build()
        .map_err(|source| ServeError::Unreachable {
            url: url.to_owned(),
            source,
        })
}

/// `GET url/path` of a running server: its JSON answer, `None` for 404.
async fn tfs_get(url: &str, path: &str) -> Result<Option<Value>, ServeError> {
    let unreachable = |source| ServeError::Unreachable {
        url: url.to_owned(),
        source,
    };
    let client = client_of(url, Duration::from_secs(5))?;
    let response = client
        .get(format!("{}/{path}", url.trim_end_matches('/')))
        .send()
        .await
        .map_err(unreachable)?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let answer: Value = response.json().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(ServeError::Refused {
            url: url.to_owned(),
            status,
            message: answer["error"].as_str().unwrap_or("no message").to_owned(),
        });
    }
    Ok(Some(answer))
}

/// The versions the server at `url` holds of `model`, with their states.
async fn served_versions(url: &str, model: &str) -> Result<Vec<(u64, String)>, ServeError> {
    let Some(answer) = tfs_get(url, &format!("v1/models/{model}")).await? else {
        return Ok(Vec::new());
    };
    Ok(answer["model_version_status"]
        .as_array()
        .map(|versions| {
            versions
                .iter()
                .filter_map(|v| {
                    Some((
                        v["version"].as_str()?.parse().ok()?,
                        v["state"].as_str().unwrap_or("").to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default())
}

fn router(state: Arc<AppState>) -> Router {
    Router::new()
        // KServe's v1 protocol asks the root whether the server is alive.
        .route("/", get(alive))
        .route("/v1/models/{*rest}", get(tfs::get).post(tfs::post))
        .route("/v2", get(oip::server_metadata))
        .route("/v2/health/live", get(oip::live))
        .route("/v2/health/ready", get(oip::ready))
        .route("/v2/models/{name}", get(oip::model_metadata))
        .route("/v2/models/{name}/ready", get(oip::model_ready))
        .route("/v2/models/{name}/infer", post(oip::infer))
        .route(
            "/v2/models/{name}/versions/{version}",
            get(oip::version_metadata),
        )
        .route(
            "/v2/models/{name}/versions/{version}/ready",
            get(oip::version_ready),
        )
        .route(
            "/v2/models/{name}/versions/{version}/infer",
            post(oip::version_infer),
        )
        .route("/metrics", get(metrics_text))
        .route("/admin/models/{name}/{action}", post(admin))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn alive() -> axum::Json<Value> {
    axum::Json(json!({ "status": "alive" }))
}

/// An error answer: `{"error": "..."}` with its status.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    message: String,
    /// Close the connection after answering (its request body was not read whole).
    close: bool,
    /// A header the status calls for: `Allow` with 405, `WWW-Authenticate` with 401.
    header: Option<(header::HeaderName, &'static str)>,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            message: message.into(),
            close: false,
            header: None,
        }
    }
    /// 405 with the `Allow` header RFC 9110 requires (section 15.5.6).
    fn not_allowed(message: impl Into<String>, allow: &'static str) -> ApiError {
        ApiError {
            header: Some((header::ALLOW, allow)),
            ..ApiError::new(StatusCode::METHOD_NOT_ALLOWED, message)
        }
    }
    /// 401 with the challenge RFC 9110 requires (section 15.5.2), for the bearer scheme
    /// (RFC 6750).
    fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError {
            header: Some((header::WWW_AUTHENTICATE, "Bearer realm=\"sluice admin\"")),
            ..ApiError::new(StatusCode::UNAUTHORIZED, message)
        }
    }
    fn closing(self) -> ApiError {
        ApiError {
            close: true,
            ..self
        }
    }
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, axum::Json(json!({ "error": self.message }))).into_response();
        if self.close {
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if let Some((name, value)) = self.header {
            response
                .headers_mut()
                .insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

impl From<RouteError> for ApiError {
    fn from(e: RouteError) -> ApiError {
        match e {
            RouteError::NotFound(m) => ApiError::not_found(m),
            RouteError::Unavailable(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

impl From<PredictorError> for ApiError {
    fn from(e: PredictorError) -> ApiError {
        match e {
            PredictorError::Invalid(m) => ApiError::bad_request(m),
            PredictorError::Failed(m) => ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, m),
            PredictorError::Busy(m) => ApiError::new(StatusCode::SERVICE_UNAVAILABLE, m),
        }
    }
}

/// Routes a request, loads the version if it has to, fits the inputs to its signature
/// (converting numbers that convert without loss), predicts, and checks what the
/// predictor gave. `parse` builds the inputs once the signature is known.
///
/// The request's `budget` grows by twice the tensors' memory (this copy, and the
/// predictor's) while they are in use, so the body budget bounds what requests hold.
async fn predict(
    state: &AppState,
    name: &str,
    selector: &Selector,
    budget: &mut Budget,
    parse: impl FnOnce(&Served) -> Result<Vec<Tensor>, ApiError>,
) -> Result<(Arc<Served>, Vec<Tensor>), (Option<u64>, ApiError)> {
    let served = state
        .registry
        .route(name, selector)
        .map_err(|e| (None, e.into()))?;
    let version = Some(served.meta.version);
    let inputs = parse(&served).map_err(|e| (version, e))?;
    let inputs = conform_inputs(&served.meta.signature, inputs).map_err(|e| (version, e))?;
    let memory: usize = inputs.iter().map(|t| t.data.memory()).sum();
    budget
        .hold(memory.saturating_mul(2), state.bodies.timeout)
        .await
        .map_err(|e| (version, e))?;
    let pool = state
        .registry
        .pool_of(name, &served)
        .await
        .map_err(|e| (version, e.into()))?;
    let outputs = pool
        .predict(inputs)
        .await
        .map_err(|e| (version, e.into()))?;
    check_outputs(name, &served, &outputs).map_err(|e| (version, e))?;
    Ok((served, outputs))
}

/// Every input the signature names, each fitted to its type and shape, and nothing else.
fn conform_inputs(signature: &Signature, inputs: Vec<Tensor>) -> Result<Vec<Tensor>, ApiError> {
    let mut fitted = Vec::with_capacity(inputs.len());
    for input in inputs {
        let spec = signature
            .inputs
            .iter()
            .find(|s| s.name == input.name)
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "the model has no input '{}'; it takes {}",
                    input.name,
                    names(signature.inputs.iter().map(|s| s.name.as_str()))
                ))
            })?;
        fitted.push(
            input
                .conform(spec)
                .map_err(|e| ApiError::bad_request(e.to_string()))?,
        );
    }
    for spec in &signature.inputs {
        if !fitted.iter().any(|i| i.name == spec.name) {
            return Err(ApiError::bad_request(format!(
                "input '{}' is missing",
                spec.name
            )));
        }
    }
    Ok(fitted)
}

/// What a predictor gave must be what its signature promised: every output once, of its
/// datatype, each holding exactly the elements its shape says. A predictor that breaks
/// this is a 500 naming the model, never an answer built on it.
fn check_outputs(name: &str, served: &Served, outputs: &[Tensor]) -> Result<(), ApiError> {
    let failed = |m: String| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "model '{name}' version {}: the predictor {m}",
                served.meta.version
            ),
        )
    };
    for (i, output) in outputs.iter().enumerate() {
        if outputs[..i].iter().any(|o| o.name == output.name) {
            return Err(failed(format!("gave output '{}' twice", output.name)));
        }
        output
            .check_count()
            .map_err(|e| failed(format!("gave output '{}' whose {e}", output.name)))?;
    }
    for spec in &served.meta.signature.outputs {
        let output = outputs
            .iter()
            .find(|o| o.name == spec.name)
            .ok_or_else(|| failed(format!("did not give output '{}'", spec.name)))?;
        if output.data.datatype().name() != spec.datatype {
            return Err(failed(format!(
                "gave output '{}' as {}, but its signature says {}",
                spec.name,
                output.data.datatype().name(),
                spec.datatype
            )));
        }
    }
    Ok(())
}

fn names<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let quoted: Vec<String> = names.map(|n| format!("'{n}'")).collect();
    quoted.join(", ")
}

/// Records one inference request in the metrics, under the model's and version's names
/// only when this server serves them: no request can make a new series.
fn observe(
    state: &AppState,
    model: &str,
    version: Option<u64>,
    protocol: &str,
    status: StatusCode,
    started: Instant,
) {
    let (model, version) = state.registry.metric_labels(model, version);
    state.metrics.request(
        &model,
        &version,
        protocol,
        status.as_u16(),
        started.elapsed(),
    );
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> Response {
    let text = state.metrics.render(&state.registry.pool_sizes());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    to: Option<u64>,
}

/// `POST /admin/models/{name}/{deploy|rollback|unload}` with `Authorization: Bearer`
/// (`reload` is another name for `deploy`).
async fn admin(
    State(state): State<Arc<AppState>>,
    UrlPath((name, action)): UrlPath<(String, String)>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Result<axum::Json<Value>, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    let Some(presented) = presented else {
        return Err(ApiError::unauthorized(
            "the admin API needs `Authorization: Bearer <token>` (the token is in <home>/serve/admin-token)",
        ));
    };
    if !constant_time_eq(presented.as_bytes(), state.admin_token.as_bytes()) {
        return Err(ApiError::unauthorized("the admin token is wrong"));
    }
    let bytes = body?;
    let registry = &state.registry;
    let refused = |e: ReloadError| match e {
        ReloadError::NotFound(m) => ApiError::not_found(m),
        ReloadError::Conflict(m) => ApiError::new(StatusCode::CONFLICT, m),
    };
    match action.as_str() {
        // Serve the repository's current state of the model: its default version (loaded
        // and warmed before it takes traffic), labels and canary share.
        "deploy" | "reload" => {
            let version = registry.reload(&name).await.map_err(refused)?;
            Ok(axum::Json(json!({ "model": name, "version": version })))
        }
        "rollback" => {
            let request: RollbackBody = if bytes.iter().all(u8::is_ascii_whitespace) {
                RollbackBody::default()
            } else {
                serde_json::from_slice(&bytes).map_err(|e| {
                    ApiError::bad_request(format!("expected {{\"to\": <version>}} or nothing: {e}"))
                })?
            };
            let (from, to) = registry
                .rollback(&name, request.to)
                .await
                .map_err(refused)?;
            Ok(axum::Json(
                json!({ "model": name, "from": from, "version": to }),
            ))
        }
        "unload" => {
            if registry.unload(&name) {
                Ok(axum::Json(json!({ "model": name, "unloaded": true })))
            } else {
                Err(ApiError::not_found(format!("model '{name}' is not served")))
            }
        }
        other => Err(ApiError::not_found(format!(
            "no admin action '{other}'; use deploy, rollback or unload"
        ))),
    }
}

/// The token of an `Authorization: Bearer <token>` header; the scheme's name is
/// case-insensitive (RFC 7235, section 2.1).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim_start().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `a` and `b` are equal, in a time that depends on their lengths only, not on
/// where they differ: for comparing secrets.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::not_found(format!("no such endpoint: {method} {}", uri.path()))
}

async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    let path = uri.path();
    let allow = if path.starts_with("/v1/models/") {
        "GET, HEAD, POST"
    } else if path.starts_with("/admin/") || path.ends_with("/infer") {
        "POST"
    } else {
        "GET, HEAD"
    };
    ApiError::not_allowed(format!("{path} does not take {method}"), allow)
}

/// Entry points for the fuzz targets: each protocol's request parsing, against a model
/// whose signature has a float row, an integer and a text input.
pub(crate) mod fuzz {
    use crate::models::{Signature, TensorSpec};

    fn signature() -> Signature {
        let spec = |name: &str, datatype: &str, shape: &[i64]| TensorSpec {
            name: name.into(),
            datatype: datatype.into(),
            shape: shape.to_vec(),
        };
        Signature {
            inputs: vec![
                spec("x", "FP32", &[-1, 3]),
                spec("ids", "INT64", &[-1]),
                spec("text", "BYTES", &[-1]),
            ],
            outputs: vec![spec("y", "FP64", &[-1])],
        }
    }

    pub fn oip(bytes: &[u8]) {
        super::oip::fuzz(bytes, &signature());
    }

    pub fn tfs(bytes: &[u8]) {
        super::tfs::fuzz(bytes, &signature());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server file whose process is gone counts for nothing, even when another process
    /// now has its id (here pid 1, started long before the recorded server).
    #[test]
    fn a_server_file_names_its_process_not_its_id() {
        if std::env::var_os("SLUICE_SERVER_URL").is_some() {
            return;
        }
        let home = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(home.path().join("serve")).unwrap();
        std::fs::write(home.path().join(TOKEN_FILE), "token").unwrap();
        let write = |pid: u32, ticks: Option<u64>| {
            let info = ServerInfo {
                url: "http://127.0.0.1:1".into(),
                pid,
                pid_start_ticks: ticks,
            };
            std::fs::write(
                home.path().join(SERVER_FILE),
                serde_json::to_vec(&info).unwrap(),
            )
            .unwrap();
        };
        let own = std::process::id();
        write(own, crate::process_start_ticks(own));
        assert!(find_server(home.path()).is_some());
        write(1, crate::process_start_ticks(own));
        assert!(find_server(home.path()).is_none());
    }
}
