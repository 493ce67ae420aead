//! A scratch Sluice home, run through a `Session` as the `sluice` command runs pipelines,
//! a wasm executor for tests of the executor alone, and helpers to write component and
//! pipeline files around the sample components.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use sluice_runtime::events::{Event, Observer};
use sluice_runtime::exec::runners::Policy;
use sluice_runtime::exec::wasm::{CacheStats, WasmConfig, WasmExecutor};
use sluice_runtime::plan::Plan;
use sluice_runtime::schedule::Options;
use sluice_runtime::session::{Pipeline, RunOptions, Session};
use sluice_runtime::spec::PipelineFile;
use sluice_runtime::store::{RunKind, RunRecord, Store, TaskRecord};
use tokio_util::sync::CancellationToken;

/// Compiled components are shared by all tests, as a user's cache is shared by runs.
pub fn cache_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sluice-wasm-cache")
}

#[derive(Default)]
pub struct Recorder(pub Mutex<Vec<Event>>);

impl Observer for Recorder {
    fn event(&self, e: &Event) {
        self.0.lock().unwrap().push(e.clone());
    }
}

pub struct Env {
    pub dir: tempfile::TempDir,
    pub store: Arc<Store>,
    /// A wasm executor over the shared compile cache, for tests of the executor alone.
    pub executor: Arc<WasmExecutor>,
    /// Which implementation runs each task of a run.
    pub policy: Policy,
    pub events: Arc<Recorder>,
    /// What the last run compiled and took from the compile cache.
    pub compiled: Mutex<CacheStats>,
}

impl Env {
    pub fn new() -> Env {
        // As the `sluice` binary does on start.
        sluice_runtime::raise_open_files_limit();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open(&dir.path().join("home")).unwrap());
        let executor = Arc::new(WasmExecutor::new(WasmConfig::new(cache_dir())).unwrap());
        Env {
            dir,
            store,
            executor,
            policy: Policy::default(),
            events: Arc::new(Recorder::default()),
            compiled: Mutex::new(CacheStats::default()),
        }
    }

    /// An environment whose tasks run as the policy decides: wasm, Docker or processes.
    pub fn with_policy(policy: Policy) -> Env {
        Env {
            policy,
            ..Env::new()
        }
    }

    fn session(&self) -> Session {
        Session::from_store(self.store.clone()).with_cache_dir(cache_dir())
    }

    fn options(&self, schedule: Options, cancel: CancellationToken) -> RunOptions {
        RunOptions {
            schedule,
            policy: self.policy.clone(),
            observer: self.events.clone(),
            cancel,
            ..RunOptions::default()
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `<name>.yaml`, a component around `wasm` with the given YAML body
    /// (inputs, outputs, and the rest of `implementation.wasm`).
    pub fn component(&self, name: &str, wasm: &str, body: &str) -> PathBuf {
        let path = self.path(&format!("{name}.yaml"));
        let body = body.replace("WASM", wasm);
        std::fs::write(&path, format!("name: {name}\n{body}")).unwrap();
        path
    }

    /// A probe component whose argv is `args` (a YAML list).
    pub fn probe(&self, name: &str, args: &str, extra: &str) -> PathBuf {
        self.component(
            name,
            sluice_test_artifacts::PROBE,
            &format!("{extra}\nimplementation:\n  wasm:\n    component: WASM\n    args: {args}\n"),
        )
    }

    pub fn plan(&self, pipeline: &str) -> Plan {
        let path = self.path("pipeline.yaml");
        std::fs::write(&path, pipeline).unwrap();
        let file = PipelineFile::load(&path).unwrap();
        Plan::build(&file, &[]).unwrap_or_else(|e| panic!("{e:?}"))
    }

    pub async fn run(&self, pipeline: &str) -> RunRecord {
        self.run_with(
            pipeline,
            Options {
                parallelism: 2,
                keep_going: true,
                ..no_cache()
            },
            CancellationToken::new(),
        )
        .await
    }

    pub async fn run_with(
        &self,
        pipeline: &str,
        options: Options,
        cancel: CancellationToken,
    ) -> RunRecord {
        let plan = self.plan(pipeline);
        let kind = RunKind::Pipeline;
        let finished = self
            .session()
            .run(Pipeline::Plan { plan, kind }, self.options(options, cancel))
            .await
            .unwrap();
        *self.compiled.lock().unwrap() = finished.compiled;
        self.store.run(&finished.run_id).unwrap()
    }

    /// Like `run`, for a run that must not start; returns why.
    pub async fn refused(&self, pipeline: &str) -> String {
        let plan = self.plan(pipeline);
        let kind = RunKind::Pipeline;
        let options = self.options(no_cache(), CancellationToken::new());
        match self
            .session()
            .run(Pipeline::Plan { plan, kind }, options)
            .await
        {
            Ok(finished) => panic!("run {} started", finished.run_id),
            Err(e) => sluice_runtime::error_chain(&e),
        }
    }

    pub fn logs(&self, run: &RunRecord, task: &str) -> String {
        self.store
            .logs(&run.id, task)
            .unwrap()
            .into_iter()
            .map(|l| format!("[{}] {}", l.stream, l.content))
            .collect()
    }
}

/// A token cancelled `ms` milliseconds from now, as a user's Ctrl-C would be.
pub fn cancelled_after(ms: u64) -> CancellationToken {
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
        trigger.cancel();
    });
    cancel
}

pub fn task<'r>(run: &'r RunRecord, name: &str) -> &'r TaskRecord {
    run.tasks
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no task {name}"))
}

/// Options without the task cache: these tests run steps to see what they do, often the
/// same step more than once in one home, which the cache would not run again.
pub fn no_cache() -> Options {
    Options {
        caching: sluice_runtime::schedule::Caching {
            enabled: false,
            max_staleness: None,
        },
        ..Options::default()
    }
}
