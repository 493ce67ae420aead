//! What the server serves: for each model, its repository state (default version,
//! labels, canary share) and a pool per version in use. A request names a model and
//! maybe a version or label; the registry picks the version and hands out its pool,
//! loading it on first use (and again after it scaled to zero). A reload reads the
//! repository again and loads and warms the new default version before it takes traffic,
//! so a new version goes live without a failed request; the old one keeps serving
//! requests pinned to it.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::models::{ModelError, ModelState, Repository, VersionMeta};
use crate::spec::sha256_hex;

use super::metrics::Metrics;
use super::predictor::{Pool, PredictorEngine};

/// Which version a request asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    Default,
    Version(u64),
    Label(String),
}

/// Why a request cannot be routed.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("{0}")]
    NotFound(String),
    /// The version exists but cannot be served (its predictor fails to load, say).
    #[error("{0}")]
    Unavailable(String),
}

/// The label value metrics give requests for models this server does not serve, so
/// that no request can make a new series (a model name never starts with `_`).
pub const UNKNOWN_MODEL: &str = "_unknown";

/// Where a version is in its life on this server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadState {
    /// Not loaded here yet; loads on its first request.
    NotLoaded,
    Loading,
    Loaded,
    /// Unloaded after going unused (scale to zero); loads on its next request.
    Unloaded,
    /// Its last load failed, for this reason; the next request tries again.
    Failed(String),
}

impl LoadState {
    pub fn is_failed(&self) -> bool {
        matches!(self, LoadState::Failed(_))
    }

    /// TF Serving's `ModelVersionStatus`: the state (`START`, `LOADING`, `AVAILABLE`,
    /// `END`), and the status's `error_code` (a `google.rpc.Code` name) and message.
    pub fn tf_status(&self) -> (&'static str, &'static str, String) {
        match self {
            LoadState::NotLoaded => ("START", "OK", String::new()),
            LoadState::Loading => ("LOADING", "OK", String::new()),
            LoadState::Loaded => ("AVAILABLE", "OK", String::new()),
            LoadState::Unloaded => ("END", "OK", String::new()),
            LoadState::Failed(why) => ("END", "UNKNOWN", why.clone()),
        }
    }
}

/// Why a deploy, reload or rollback was not carried out.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// No such model (or version) to serve: the admin API answers 404.
    #[error("{0}")]
    NotFound(String),
    /// The change cannot be made (nothing to roll back to, a version that does not
    /// load): 409.
    #[error("{0}")]
    Conflict(String),
}

impl From<ModelError> for ReloadError {
    fn from(e: ModelError) -> ReloadError {
        match e {
            ModelError::UnknownModel(_) | ModelError::UnknownVersion { .. } => {
                ReloadError::NotFound(e.to_string())
            }
            other => ReloadError::Conflict(crate::error_chain(&other)),
        }
    }
}

/// A version the server knows of.
pub struct Served {
    pub meta: VersionMeta,
    /// `None` while scaled to zero (or before first use).
    pool: tokio::sync::Mutex<Option<Arc<Pool>>>,
    /// The pool, readable without waiting on a load in progress.
    ready: RwLock<Option<Arc<Pool>>>,
    state: RwLock<LoadState>,
}

impl Served {
    fn new(meta: VersionMeta) -> Served {
        Served {
            meta,
            pool: tokio::sync::Mutex::new(None),
            ready: RwLock::new(None),
            state: RwLock::new(LoadState::NotLoaded),
        }
    }

    pub fn pool(&self) -> Option<Arc<Pool>> {
        self.ready.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn load_state(&self) -> LoadState {
        self.state.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_state(&self, state: LoadState) {
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = state;
    }
}

struct Model {
    state: ModelState,
    /// Every version on disk, by number.
    versions: BTreeMap<u64, Arc<Served>>,
    /// The version unpinned requests get.
    default: u64,
}

pub struct Registry {
    repo: Repository,
    engine: Arc<PredictorEngine>,
    metrics: Arc<Metrics>,
    models: RwLock<BTreeMap<String, Arc<Model>>>,
    /// Only these models, when set.
    only: Option<Vec<String>>,
    counter: AtomicU64,
}

impl Registry {
    pub fn new(
        repo: Repository,
        engine: Arc<PredictorEngine>,
        metrics: Arc<Metrics>,
        only: Option<Vec<String>>,
    ) -> Registry {
        Registry {
            repo,
            engine,
            metrics,
            models: RwLock::new(BTreeMap::new()),
            only,
            counter: AtomicU64::new(0),
        }
    }

    pub fn repository(&self) -> &Repository {
        &self.repo
    }

    pub fn names(&self) -> Vec<String> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect()
    }

    fn model(&self, name: &str) -> Option<Arc<Model>> {
        self.models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(name)
            .cloned()
    }

    /// Reads every model of the repository and loads each default version.
    pub async fn load_all(&self) -> Result<(), super::ServeError> {
        use super::ServeError::Models;
        let names = self
            .repo
            .names()
            .map_err(|e| Models(crate::error_chain(&e)))?;
        for name in names {
            if self.only.as_ref().is_some_and(|o| !o.contains(&name)) {
                continue;
            }
            self.reload(&name)
                .await
                .map_err(|e| Models(e.to_string()))?;
        }
        if let Some(only) = &self.only {
            for name in only {
                if self.model(name).is_none() {
                    return Err(Models(format!(
                        "no model named '{name}' in {}",
                        self.repo.root().display()
                    )));
                }
            }
        }
        Ok(())
    }

    /// Applies the repository's state for one model: its versions, labels and default.
    /// The new default version is loaded and warmed before it takes traffic.
    pub async fn reload(&self, name: &str) -> Result<u64, ReloadError> {
        if self
            .only
            .as_ref()
            .is_some_and(|o| !o.iter().any(|n| n == name))
        {
            return Err(ReloadError::NotFound(format!(
                "this server serves only {}",
                super::names(self.only.iter().flatten().map(String::as_str))
            )));
        }
        if !self.repo.names()?.iter().any(|n| n == name) {
            return Err(ModelError::UnknownModel(name.to_owned()).into());
        }
        let state = self.repo.state(name)?;
        let on_disk = self.repo.versions(name)?;
        let default = self.repo.default_version(name)?;
        let previous = self.model(name);
        let versions: BTreeMap<u64, Arc<Served>> = on_disk
            .into_iter()
            .map(|v| {
                let number = v.meta.version;
                let known = previous
                    .as_ref()
                    .and_then(|m| m.versions.get(&number))
                    .cloned();
                let served = known.unwrap_or_else(|| Arc::new(Served::new(v.meta)));
                (number, served)
            })
            .collect();
        let target = versions.get(&default).cloned().ok_or_else(|| {
            ReloadError::NotFound(format!("model '{name}' has no version {default}"))
        })?;
        // Warm the version that is about to take traffic; on failure nothing changes.
        self.pool_of(name, &target)
            .await
            .map_err(|e| ReloadError::Conflict(e.to_string()))?;
        let model = Arc::new(Model {
            state,
            versions,
            default,
        });
        self.models
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(name.to_owned(), model);
        Ok(default)
    }

    /// Stops serving a model until it is reloaded.
    pub fn unload(&self, name: &str) -> bool {
        self.models
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(name)
            .is_some()
    }

    /// Makes an earlier version the default in the repository and serves it.
    pub async fn rollback(&self, name: &str, to: Option<u64>) -> Result<(u64, u64), ReloadError> {
        if self.model(name).is_none() {
            return Err(ModelError::UnknownModel(name.to_owned()).into());
        }
        let (from, to) = self.repo.rollback(name, to).map_err(|e| match e {
            // A version that does not exist to roll back to is a conflict with the
            // request's body, not a missing model.
            ModelError::UnknownVersion { .. } => ReloadError::Conflict(e.to_string()),
            other => other.into(),
        })?;
        self.reload(name).await?;
        Ok((from, to))
    }

    /// The versions of a model and which one serves by default.
    pub fn describe(&self, name: &str) -> Option<(Vec<Arc<Served>>, u64, ModelState)> {
        let model = self.model(name)?;
        Some((
            model.versions.values().cloned().collect(),
            model.default,
            model.state.clone(),
        ))
    }

    /// The version a request is for. A canary share counts this request.
    pub fn route(&self, name: &str, selector: &Selector) -> Result<Arc<Served>, RouteError> {
        self.pick(name, selector, true)
    }

    /// The version a request would be routed to, without taking a turn of the canary
    /// share (for status and readiness, which must not move traffic).
    pub fn peek_route(&self, name: &str, selector: &Selector) -> Result<Arc<Served>, RouteError> {
        self.pick(name, selector, false)
    }

    /// The labels a request's metrics get: the model and version when this server serves
    /// them, else [`UNKNOWN_MODEL`] and no version. Never a value a client made up.
    pub fn metric_labels(&self, name: &str, version: Option<u64>) -> (String, String) {
        match self.model(name) {
            Some(model) => (
                name.to_owned(),
                version
                    .filter(|v| model.versions.contains_key(v))
                    .map(|v| v.to_string())
                    .unwrap_or_default(),
            ),
            None => (UNKNOWN_MODEL.to_owned(), String::new()),
        }
    }

    fn pick(
        &self,
        name: &str,
        selector: &Selector,
        count: bool,
    ) -> Result<Arc<Served>, RouteError> {
        let model = self
            .model(name)
            .ok_or_else(|| RouteError::NotFound(format!("model '{name}' is not served")))?;
        let version = match selector {
            Selector::Version(v) => *v,
            Selector::Label(label) => *model.state.labels.get(label).ok_or_else(|| {
                RouteError::NotFound(format!("model '{name}' has no label '{label}'"))
            })?,
            Selector::Default => {
                let canary = model.state.labels.get("canary").copied();
                match canary {
                    Some(v) if count && model.state.canary_share > 0.0 && v != model.default => {
                        // Request n goes to the canary when n * share crosses an integer:
                        // evenly interleaved, and exactly the share over any run of
                        // requests whose length times the share is whole.
                        let share = model.state.canary_share;
                        let n = self.counter.fetch_add(1, Ordering::Relaxed) as f64;
                        if ((n + 1.0) * share).floor() > (n * share).floor() {
                            v
                        } else {
                            model.default
                        }
                    }
                    _ => model.default,
                }
            }
        };
        model
            .versions
            .get(&version)
            .cloned()
            .ok_or_else(|| RouteError::NotFound(format!("model '{name}' has no version {version}")))
    }

    /// The version's pool, loading it (from the repository) when it has none.
    pub async fn pool_of(&self, name: &str, served: &Served) -> Result<Arc<Pool>, RouteError> {
        if let Some(pool) = served.pool() {
            return Ok(pool);
        }
        let mut slot = served.pool.lock().await;
        if let Some(pool) = slot.as_ref() {
            return Ok(pool.clone());
        }
        let version = served.meta.version;
        let unavailable = |m: String| {
            RouteError::Unavailable(format!(
                "model '{name}' version {version} cannot be served: {m}"
            ))
        };
        served.set_state(LoadState::Loading);
        let loaded = async {
            let found = self
                .repo
                .version(name, version)
                .map_err(|e| crate::error_chain(&e))?;
            let engine = self.engine.clone();
            tokio::task::spawn_blocking(move || -> Result<Arc<Pool>, String> {
                let wasm = std::fs::read(found.predictor_path()).map_err(|e| e.to_string())?;
                let model = std::fs::read(found.model_path())
                    .map_err(|e| format!("cannot read {}: {e}", found.model_path().display()))?;
                let digest = sha256_hex(&wasm);
                engine
                    .load(&wasm, &digest, model)
                    .map_err(|e| e.to_string())
            })
            .await
            .map_err(|e| e.to_string())?
        };
        let started = Instant::now();
        let pool = match loaded.await {
            Ok(pool) => pool,
            Err(why) => {
                served.set_state(LoadState::Failed(why.clone()));
                return Err(unavailable(why));
            }
        };
        served.set_state(LoadState::Loaded);
        self.metrics.loaded(name, version, started.elapsed());
        *slot = Some(pool.clone());
        *served.ready.write().unwrap_or_else(|p| p.into_inner()) = Some(pool.clone());
        Ok(pool)
    }

    /// Gives idle instances back and empties pools of models nobody asked for in a while.
    pub async fn shrink(&self, idle: Duration, scale_to_zero: Option<Duration>) {
        let models: Vec<Arc<Model>> = self
            .models
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        for model in models {
            for served in model.versions.values() {
                let Some(pool) = served.pool() else { continue };
                let unused = scale_to_zero.is_some_and(|after| pool.idle_for() >= after);
                if unused && pool.size().busy == 0 {
                    let mut slot = served.pool.lock().await;
                    pool.shrink(idle, true);
                    *slot = None;
                    *served.ready.write().unwrap_or_else(|p| p.into_inner()) = None;
                    served.set_state(LoadState::Unloaded);
                } else {
                    pool.shrink(idle, false);
                }
            }
        }
    }

    /// Sizes of every loaded pool, by model and version, for metrics.
    pub fn pool_sizes(&self) -> Vec<(String, u64, usize, usize)> {
        let models = self.models.read().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        for (name, model) in models.iter() {
            for (version, served) in &model.versions {
                let (live, busy) = served.pool().map_or((0, 0), |p| {
                    let s = p.size();
                    (s.live, s.busy)
                });
                out.push((name.clone(), *version, live, busy));
            }
        }
        out
    }
}
