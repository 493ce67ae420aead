//! Sluice benchmarks, run by hand (`cargo run --release -p sluice-bench`), printing figures
//! and ratios against baselines measured in the same run:
//!
//! 1. per-task overhead of a no-op wasm step with a warm compile cache, over a 10,000-task
//!    chain and a 10,000-task fan-out, as the median microseconds per task (and the run's
//!    wall time per task); baselines, each the median of 1,000: the wasm executor alone
//!    (no scheduler, no store) and a native process spawn;
//! 2. a no-op step as a Docker container against the same step as wasm, in the same
//!    chain, in the same run (`containers`);
//! 3. the normalization step on a generated 1,000,000-row CSV: wasm (through the executor)
//!    against the same source built natively; the ratio is native time / wasm time;
//! 4. the example pipeline with its wasm steps in a local OCI registry: the first run
//!    (pull, verify, compile, run) against a second run from the caches (tags resolved
//!    against the registry) and an offline one (`registry`; starts the local registries
//!    with `scripts/registries.sh`).
//!
//! 5. a five-step preprocessing chain of transform components (validate, split,
//!    normalize twice, validate again) over a generated 1,000,000-row table, run by the
//!    scheduler as one fused chain against the same pipeline with `--no-fuse` (every step
//!    a command reading and writing CSV files), in the same run; the ratio is unfused time
//!    / fused time (`fused`).
//!
//! 6. the `sluice` command end to end on no-op chains and fan-outs of 100, 1,000 and
//!    10,000 wasm tasks (wall time, per task, peak resident memory, and `runs show` of the
//!    run), against Dask's threaded scheduler on the same graph shapes of no-op Python
//!    calls, in the same run (`scale`; `bench/scale/run.sh` builds what it needs and makes
//!    Dask's virtualenv). Its home is under the target folder, on disk, not on tmpfs.
//!
//! 7. the same no-op graphs on a Slurm cluster (`--backend slurm`): per-task overhead on a
//!    chain against the same chain run locally and against bare `sbatch` jobs of `true`
//!    waited for by polling `squeue` every 10 ms (Slurm's own latency), and a 200-task
//!    fan-out spread over the nodes (`slurm`; `bench/slurm/run.sh` starts the test cluster
//!    and builds what it needs).
//!
//! 8. the web UI's runs list over a home of 10,000 recorded runs: the first page, a page
//!    5,000 runs deep, a pipeline filter and a state filter that matches one run in a
//!    hundred, each the median of 50 requests through the UI's router (no network),
//!    against reading the newest 50 runs from the store directly (`sluice runs list`'s
//!    query), in the same run (`ui`).
//!
//! Give section names (`overhead`, `containers`, `normalize`, `registry`, `fused`,
//! `scale`, `slurm`, `ui`) to run only those; all but `scale` and `slurm` run without one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use sluice_runtime::events::{Event, Observer, Quiet, TaskSink};
use sluice_runtime::exec::runners::{Policy, Runners};
use sluice_runtime::exec::wasm::{WasmConfig, WasmExecutor};
use sluice_runtime::exec::{Executor, InputArg, Invocation, Target};
use sluice_runtime::plan::Plan;
use sluice_runtime::schedule::{Caching, Options, Scheduler};
use sluice_runtime::session::{Backend, Finished, Pipeline, RunOptions, Session};
use sluice_runtime::spec::Prefer;
use sluice_runtime::spec::{ByteSize, Component, PipelineFile, ResourceSpec};
use sluice_runtime::store::{RunKind, RunState, Store};
use tokio_util::sync::CancellationToken;

/// Tasks in each graph of the overhead section.
const TASKS: usize = 10_000;
/// Calls a baseline's median is taken over.
const SAMPLES: usize = 1000;
const ROWS: usize = 1_000_000;

/// The task cache off: every task of the benchmarks' graphs is the same no-op, which the
/// cache would otherwise take from the first one's outputs.
const NO_CACHE: Caching = Caching {
    enabled: false,
    max_staleness: None,
};

fn main() -> Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let scratch = tempfile::tempdir()?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores; {ROWS} rows for normalization\n");
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |section: &str| {
        (only.is_empty() && section != "scale" && section != "slurm")
            || only.iter().any(|o| o == section)
    };
    if wanted("overhead") {
        runtime.block_on(overhead(scratch.path(), cores))?;
    }
    if wanted("containers") {
        runtime.block_on(containers(scratch.path()))?;
    }
    if wanted("normalize") {
        runtime.block_on(normalize(scratch.path()))?;
    }
    if wanted("registry") {
        runtime.block_on(registry(scratch.path()))?;
    }
    if wanted("fused") {
        runtime.block_on(fused(scratch.path()))?;
    }
    if wanted("scale") {
        scale(cores)?;
    }
    if wanted("slurm") {
        runtime.block_on(slurm(scratch.path(), cores))?;
    }
    if wanted("ui") {
        runtime.block_on(ui(scratch.path()))?;
    }
    Ok(())
}

/// Runs in the home the UI benchmark lists.
const UI_RUNS: usize = 10_000;
/// Requests each of its figures is the median of.
const UI_SAMPLES: usize = 50;

/// The runs list of the web UI over 10,000 runs, against the store's own listing.
async fn ui(scratch: &Path) -> Result<()> {
    use sluice_runtime::store::{NewRun, NewTask};
    use tower::ServiceExt;

    let home = scratch.join("ui-home");
    let store = Store::open(&home)?;
    let started = Instant::now();
    let mut middle = String::new();
    for i in 0..UI_RUNS {
        let name = if i % 10 == 0 { "train" } else { "preprocess" };
        let id = store.begin_run(
            &NewRun {
                kind: RunKind::Pipeline,
                name,
                source: Path::new("pipeline.yaml"),
                source_digest: "sha256:00",
                params: BTreeMap::from([("seed".to_owned(), i.to_string())]),
                flags: Vec::new(),
                graph: None,
            },
            &[NewTask {
                name: "step",
                component: "noop".into(),
                component_file: Path::new("noop.yaml"),
                component_digest: "sha256:11",
            }],
        )?;
        let state = if i % 100 == 7 {
            RunState::Failed
        } else {
            RunState::Succeeded
        };
        store.finish_run(&id, state, None)?;
        if i == UI_RUNS / 2 {
            middle = id;
        }
    }
    println!(
        "web UI runs list over {UI_RUNS} runs (recorded in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    let app = sluice_ui::router(sluice_ui::UiConfig {
        home: home.clone(),
        dot: None,
        any_host: false,
    })?;
    let median_of = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let page = |uri: String| {
        let app = app.clone();
        async move {
            let mut times = Vec::with_capacity(UI_SAMPLES);
            let mut bytes = 0;
            for _ in 0..UI_SAMPLES {
                let request = axum::http::Request::get(&uri)
                    .header("host", "127.0.0.1")
                    .body(axum::body::Body::empty())?;
                let t = Instant::now();
                let response = app.clone().oneshot(request).await?;
                if !response.status().is_success() {
                    bail!("{uri}: {}", response.status());
                }
                let body = axum::body::to_bytes(response.into_body(), usize::MAX).await?;
                times.push(t.elapsed());
                bytes = body.len();
            }
            anyhow::Ok((median_of(times), bytes))
        }
    };
    let first = page("/ui/".to_owned()).await?;
    let deep = page(format!("/ui/?after={middle}")).await?;
    let pipeline = page("/ui/?pipeline=train".to_owned()).await?;
    let failed = page("/ui/?state=failed".to_owned()).await?;
    let mut direct = Vec::with_capacity(UI_SAMPLES);
    for _ in 0..UI_SAMPLES {
        let t = Instant::now();
        store.list_runs(50)?;
        direct.push(t.elapsed());
    }
    let direct = median_of(direct);
    println!(
        "  {:<48} {:>10} {:>10} {:>8}",
        "", "median ms", "page KiB", "ratio"
    );
    for (label, (time, bytes)) in [
        ("first page (50 runs)", first),
        ("a page 5,000 runs deep", deep),
        ("pipeline filter (1 run in 10)", pipeline),
        ("state filter (1 run in 100)", failed),
    ] {
        println!(
            "  {:<48} {:>10.2} {:>10.1} {:>7.1}x",
            label,
            time.as_secs_f64() * 1e3,
            bytes as f64 / 1024.0,
            time.as_secs_f64() / direct.as_secs_f64()
        );
    }
    println!(
        "  {:<48} {:>10.2}",
        "baseline: the store's newest 50 runs",
        direct.as_secs_f64() * 1e3
    );
    println!();
    Ok(())
}

/// The example pipeline from a local registry: a cold first run, a warm second one, and
/// one offline.
async fn registry(scratch: &Path) -> Result<()> {
    use sluice_runtime::oci::{OciRef, Registries, RegistryOptions};
    let root = Path::new(sluice_test_artifacts::ROOT);
    let started = Command::new(root.join("scripts/registries.sh"))
        .arg("start")
        .output()
        .context("cannot run scripts/registries.sh")?;
    if !started.status.success() {
        bail!(
            "the local registries did not start: {}",
            String::from_utf8_lossy(&started.stderr)
        );
    }
    let host = String::from_utf8_lossy(&started.stdout)
        .lines()
        .find_map(|l| {
            l.strip_prefix("export SLUICE_TEST_REGISTRY=")
                .map(str::to_owned)
        })
        .context("scripts/registries.sh named no registry")?;
    let dir = scratch.join("registry");
    std::fs::create_dir_all(&dir)?;
    let options = |offline| RegistryOptions {
        insecure: vec![host.clone()],
        offline,
        ..RegistryOptions::default()
    };
    let pusher = Registries::new(&dir.join("push-cache"), options(false));
    let prefix = format!("bench-{}", std::process::id());
    let example = root.join("examples/breast-cancer");
    let mut pipeline = std::fs::read_to_string(example.join("pipeline.yaml"))?
        .replace(
            "default: data/",
            &format!("default: {}/data/", example.display()),
        )
        .replace("../../", &format!("{}/", root.display()));
    let mut bytes = 0;
    for name in [
        "validate",
        "split",
        "normalize",
        "train",
        "evaluate",
        "package",
    ] {
        let wasm = std::fs::read(root.join(format!(
            "sample-components/target/wasm32-wasip2/release/{name}.wasm"
        )))?;
        bytes += wasm.len();
        let reference = format!("oci://{host}/{prefix}/{name}:0.1.0");
        pusher
            .push(
                &wasm,
                &format!("{name}.wasm"),
                &OciRef::parse(&reference).map_err(anyhow::Error::msg)?,
                None,
            )
            .await
            .map_err(anyhow::Error::msg)?;
        let yaml =
            std::fs::read_to_string(root.join(format!("sample-components/{name}/component.yaml")))?
                .replace(
                    &format!("component: ../target/wasm32-wasip2/release/{name}.wasm"),
                    &format!("component: {reference}"),
                );
        let copy = dir.join(format!("{name}.yaml"));
        std::fs::write(&copy, yaml)?;
        pipeline = pipeline.replace(
            &format!("{}/sample-components/{name}/component.yaml", root.display()),
            copy.to_str().context("a UTF-8 path")?,
        );
    }
    let path = dir.join("pipeline.yaml");
    std::fs::write(&path, pipeline)?;

    let cache = dir.join("cache");
    let mut times = Vec::new();
    for (label, offline) in [
        ("first run: pull, verify, compile, run", false),
        ("second run: from the caches", false),
        ("offline run: from the caches", true),
    ] {
        let started = Instant::now();
        let plan = Arc::new(
            Plan::build(&PipelineFile::load(&path)?, &[]).map_err(|e| anyhow::anyhow!("{e:?}"))?,
        );
        // What `Session::run` does, step by step: the pull is timed on its own.
        let registries = Registries::new(&cache, options(offline));
        let references = plan
            .tasks
            .iter()
            .filter_map(|t| t.component.wasm_reference());
        let mut config = WasmConfig::new(cache.clone());
        config.pulled =
            sluice_runtime::oci::pull_for_run(&registries, references, &Default::default())
                .await
                .map_err(anyhow::Error::msg)?;
        let pulled = started.elapsed();
        let scheduler = Scheduler {
            store: Arc::new(Store::open(&dir.join(format!("home-{}", times.len())))?),
            executor: Arc::new(Runners::new(
                Arc::new(WasmExecutor::new(config)?),
                Policy::default(),
            )),
            observer: Arc::new(Quiet),
            options: Options {
                caching: NO_CACHE,
                ..Options::default()
            },
            cancel: CancellationToken::new(),
        };
        let outcome = scheduler.run(plan, RunKind::Pipeline).await?;
        if outcome.state != RunState::Succeeded {
            bail!(
                "the registry-backed run did not succeed (run {})",
                outcome.run_id
            );
        }
        times.push((label, pulled, started.elapsed()));
    }
    println!(
        "the example pipeline, its 6 wasm components ({} KiB) in a local registry over loopback",
        bytes / 1024
    );
    for (label, pulled, total) in &times {
        println!(
            "  {label:<40} {:>8.1} ms  (of which resolving/pulling {:.1} ms)",
            total.as_secs_f64() * 1e3,
            pulled.as_secs_f64() * 1e3
        );
    }
    println!(
        "  first / second: {:.1}x; first / offline: {:.1}x\n",
        times[0].2.as_secs_f64() / times[1].2.as_secs_f64(),
        times[0].2.as_secs_f64() / times[2].2.as_secs_f64()
    );
    Ok(())
}

/// Records each task's own duration from its events.
#[derive(Default)]
struct Durations(Mutex<Vec<Duration>>);

impl Observer for Durations {
    fn event(&self, e: &Event) {
        if let Event::TaskFinished {
            duration: Some(d), ..
        } = e
        {
            self.0.lock().unwrap().push(*d);
        }
    }
}

/// What `prepare` needs to know of a component run alone.
fn target(component: &Component) -> Target<'_> {
    static NO_RESOURCES: std::sync::OnceLock<ResourceSpec> = std::sync::OnceLock::new();
    Target {
        task: "bench",
        component,
        resources: NO_RESOURCES.get_or_init(ResourceSpec::default),
        prefer: None,
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn write_graph(dir: &Path, chain: bool) -> Result<PathBuf> {
    write_graph_of(dir, chain, TASKS)
}

/// A pipeline of `tasks` no-op wasm tasks, as a chain or a fan-out, with its component file.
fn write_graph_of(dir: &Path, chain: bool, tasks: usize) -> Result<PathBuf> {
    let component = dir.join("noop.yaml");
    std::fs::write(
        &component,
        format!(
            "name: noop\nimplementation:\n  wasm:\n    component: {}\n    args: [noop]\n",
            sluice_test_artifacts::PROBE
        ),
    )?;
    let mut yaml = String::from("name: overhead\ntasks:\n");
    for i in 0..tasks {
        if chain && i > 0 {
            yaml.push_str(&format!(
                "  t{i}: {{component: noop.yaml, after: [t{}]}}\n",
                i - 1
            ));
        } else {
            yaml.push_str(&format!("  t{i}: {{component: noop.yaml}}\n"));
        }
    }
    let shape = if chain { "chain" } else { "fanout" };
    let path = dir.join(format!("{shape}-{tasks}.yaml"));
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// Runs a pipeline file through a session, without the task cache (the benchmarks measure
/// tasks that run, not outputs of earlier rounds): how it ended, each task's own duration,
/// and the wall time of the run itself (the session's run call, not opening the home or
/// planning).
async fn run_timed(
    home: &Path,
    cache: &Path,
    pipeline: &Path,
    parallelism: usize,
    policy: Policy,
) -> Result<(Finished, Vec<Duration>, Duration)> {
    run_timed_on(home, cache, pipeline, parallelism, policy, Backend::Local).await
}

/// [`run_timed`], with its attempts run where `backend` says.
async fn run_timed_on(
    home: &Path,
    cache: &Path,
    pipeline: &Path,
    parallelism: usize,
    policy: Policy,
    backend: Backend,
) -> Result<(Finished, Vec<Duration>, Duration)> {
    let session = Session::open(home)?.with_cache_dir(cache.to_owned());
    let plan =
        Plan::build(&PipelineFile::load(pipeline)?, &[]).map_err(|e| anyhow::anyhow!("{e:?}"))?;
    let durations = Arc::new(Durations::default());
    let options = RunOptions {
        schedule: Options {
            parallelism,
            caching: NO_CACHE,
            ..Options::default()
        },
        policy,
        observer: durations.clone(),
        backend,
        ..RunOptions::default()
    };
    let kind = RunKind::Pipeline;
    let start = Instant::now();
    let finished = session.run(Pipeline::Plan { plan, kind }, options).await?;
    let wall = start.elapsed();
    let durations = std::mem::take(&mut *durations.0.lock().unwrap());
    Ok((finished, durations, wall))
}

async fn run_graph(
    home: &Path,
    cache: &Path,
    pipeline: &Path,
    parallelism: usize,
) -> Result<(Duration, Duration)> {
    let (finished, durations, wall) =
        run_timed(home, cache, pipeline, parallelism, Policy::default()).await?;
    if finished.state != RunState::Succeeded {
        bail!("the benchmark run {} did not succeed", finished.run_id);
    }
    if finished.compiled.misses != 0 {
        bail!("the compile cache was cold");
    }
    Ok((median(durations), wall / TASKS as u32))
}

/// The wasm executor alone: the same no-op invocation, no scheduler, no records.
async fn executor_alone(home: &Path, cache: &Path, dir: &Path) -> Result<Duration> {
    let store = Store::open(home)?;
    let executor = WasmExecutor::new(WasmConfig::new(cache.to_owned()))?;
    let component = Arc::new(Component::load(&dir.join("noop.yaml"))?);
    let prepared = executor.prepare(target(&component)).await?;
    let mut times = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let task_dir = store.task_dir("bench", "noop", i as u32 + 1, false, &[], false)?;
        let inv = Invocation {
            run_id: "bench".into(),
            task: "noop".into(),
            attempt: i as u32 + 1,
            component: component.clone(),
            inputs: BTreeMap::<String, InputArg>::new(),
            dir: task_dir.clone(),
            resources: ResourceSpec::default(),
            timeout: None,
            started: Arc::new(tokio::sync::Notify::new()),
            prepared: prepared.clone(),
            cancel: CancellationToken::new(),
            sink: TaskSink::new("noop", Arc::new(Quiet)),
            kfp: None,
            transform: None,
        };
        let start = Instant::now();
        let report = executor.execute(inv).await;
        times.push(start.elapsed());
        if let Err(f) = report.result {
            bail!("noop failed: {}", f.message);
        }
        store.remove_task_dir(&task_dir)?;
    }
    Ok(median(times))
}

fn process_spawn() -> Result<Duration> {
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let start = Instant::now();
        let status = Command::new("true").status()?;
        times.push(start.elapsed());
        if !status.success() {
            bail!("`true` failed");
        }
    }
    Ok(median(times))
}

async fn overhead(scratch: &Path, cores: usize) -> Result<()> {
    let dir = scratch.join("overhead");
    std::fs::create_dir_all(&dir)?;
    let cache = scratch.join("cache");
    let chain = write_graph(&dir, true)?;
    let fanout = write_graph(&dir, false)?;

    // Warm the compile cache, as every run after a component's first one is.
    {
        let executor = WasmExecutor::new(WasmConfig::new(cache.clone()))?;
        executor
            .prepare(target(&Component::load(&dir.join("noop.yaml"))?))
            .await?;
    }
    let (chain_task, chain_wall) =
        run_graph(&scratch.join("home-chain"), &cache, &chain, cores).await?;
    let (fan_task, fan_wall) =
        run_graph(&scratch.join("home-fanout"), &cache, &fanout, cores).await?;
    let alone = executor_alone(&scratch.join("home-alone"), &cache, &dir).await?;
    let spawn = process_spawn()?;

    println!("per-task overhead, no-op wasm step, warm compile cache (target: <= 100 us median)");
    println!("  {:<44} {:>10} {:>14}", "", "median us", "wall us/task");
    println!(
        "  {:<44} {:>10.0} {:>14.0}",
        format!("chain of {TASKS}"),
        micros(chain_task),
        micros(chain_wall)
    );
    println!(
        "  {:<44} {:>10.0} {:>14.0}",
        format!("fan-out of {TASKS}, parallelism {cores}"),
        micros(fan_task),
        micros(fan_wall)
    );
    println!(
        "  {:<44} {:>10.0}",
        "baseline: wasm executor alone (no scheduler)",
        micros(alone)
    );
    println!(
        "  {:<44} {:>10.0}",
        "baseline: spawn and wait for `true`",
        micros(spawn)
    );
    println!(
        "  chain task / executor alone: {:.2}x; chain task / process spawn: {:.2}x\n",
        chain_task.as_secs_f64() / alone.as_secs_f64(),
        chain_task.as_secs_f64() / spawn.as_secs_f64()
    );
    Ok(())
}

/// Tasks in the chain that runs once as containers and once as wasm.
const CHAIN: usize = 30;

/// The same no-op chain with every task as a container, then as wasm, in one run of
/// the benchmark: per-task overhead of each and their ratio.
async fn containers(scratch: &Path) -> Result<()> {
    let dir = scratch.join("containers");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(
        dir.join("noop.yaml"),
        format!(
            "name: noop\nimplementation:\n  wasm:\n    component: {}\n    args: [noop]\n  container:\n    image: sluice-samples/probe:0.1.0\n    command: [probe, noop]\n",
            sluice_test_artifacts::PROBE
        ),
    )?;
    let mut yaml = String::from("name: chain\ntasks:\n");
    for i in 0..CHAIN {
        let after = if i == 0 {
            String::new()
        } else {
            format!(", after: [t{}]", i - 1)
        };
        yaml.push_str(&format!("  t{i}: {{component: noop.yaml{after}}}\n"));
    }
    let pipeline = dir.join("chain.yaml");
    std::fs::write(&pipeline, yaml)?;
    let cache = scratch.join("cache");
    let mut per_task = Vec::new();
    for prefer in [Prefer::Container, Prefer::Wasm] {
        let policy = Policy {
            prefer: Some(prefer),
            ..Policy::default()
        };
        let home = scratch.join(format!("home-{prefer}"));
        let (finished, durations, _) = run_timed(&home, &cache, &pipeline, 1, policy).await?;
        if finished.state != RunState::Succeeded {
            bail!(
                "the {prefer} chain did not succeed (run {})",
                finished.run_id
            );
        }
        per_task.push(median(durations));
    }
    println!(
        "no-op step, chain of {CHAIN}, as a container vs as wasm (target: wasm at least 100x cheaper)"
    );
    println!(
        "  container (Docker, sluice-samples/probe)  {:>10.0} us per task",
        micros(per_task[0])
    );
    println!(
        "  wasm                                      {:>10.0} us per task",
        micros(per_task[1])
    );
    println!(
        "  container / wasm: {:.0}x\n",
        per_task[0].as_secs_f64() / per_task[1].as_secs_f64()
    );
    Ok(())
}

/// A CSV with 30 float columns and a label, from a fixed-seed generator.
fn generate_csv(path: &Path) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let header: Vec<String> = (0..30).map(|i| format!("f{i}")).collect();
    writeln!(out, "{},label", header.join(","))?;
    let mut next = split_mix64();
    for _ in 0..ROWS {
        for c in 0..30 {
            let x = (next() >> 11) as f64 / (1u64 << 53) as f64;
            write!(out, "{:.4},", x * (c as f64 + 1.0) * 10.0)?;
        }
        writeln!(out, "{}", if next() & 1 == 0 { "M" } else { "B" })?;
    }
    out.flush()?;
    Ok(())
}

/// A fixed stream of pseudo-random numbers (SplitMix64), so generated tables are the same
/// in every run.
fn split_mix64() -> impl FnMut() -> u64 {
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

fn build_native_normalize() -> Result<PathBuf> {
    let root = Path::new(sluice_test_artifacts::ROOT);
    let components = root.join("sample-components");
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "normalize",
            "--manifest-path",
        ])
        .arg(components.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(components.join("target"))
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("RUSTFLAGS")
        .status()
        .context("cannot run cargo")?;
    if !status.success() {
        bail!("building the native normalize failed");
    }
    Ok(components.join("target/release/normalize"))
}

async fn normalize(scratch: &Path) -> Result<()> {
    let csv = scratch.join("big.csv");
    generate_csv(&csv)?;
    let size = std::fs::metadata(&csv)?.len();
    let native = build_native_normalize()?;

    // Native: the same source, built for this machine, best of three.
    let out = scratch.join("native-out");
    std::fs::create_dir_all(&out)?;
    let mut native_times = Vec::new();
    for _ in 0..3 {
        let start = Instant::now();
        let status = Command::new(&native)
            .arg("--data")
            .arg(&csv)
            .args(["--exclude", "label", "--output"])
            .arg(out.join("normalized.csv"))
            .arg("--fitted-stats")
            .arg(out.join("stats.json"))
            .status()?;
        native_times.push(start.elapsed());
        if !status.success() {
            bail!("native normalize failed");
        }
    }
    let native_best = *native_times.iter().min().unwrap();

    // Wasm: the executor runs the component on the same file (staged by hard link).
    let store = Store::open(&scratch.join("home-normalize"))?;
    let executor = WasmExecutor::new(WasmConfig::new(scratch.join("cache")))?;
    let component = Arc::new(Component::load(
        &Path::new(sluice_test_artifacts::ROOT).join("sample-components/normalize/component.yaml"),
    )?);
    let prepared = executor.prepare(target(&component)).await?;
    let data = store.import(&csv)?;
    let exclude = store.put_bytes(b"label")?;
    let method = store.put_bytes(b"zscore")?;
    let mut wasm_times = Vec::new();
    for attempt in 1..=3u32 {
        let dir = store.task_dir(
            "bench",
            "normalize",
            attempt,
            true,
            &["normalized", "fitted_stats"],
            false,
        )?;
        let mut inputs = BTreeMap::new();
        for (name, r, value) in [
            ("data", &data, None),
            ("exclude", &exclude, Some("label")),
            ("method", &method, Some("zscore")),
        ] {
            store.stage_input(&dir, name, &r.digest)?;
            inputs.insert(
                name.to_owned(),
                InputArg {
                    digest: r.digest.clone(),
                    size: r.size,
                    value: value.map(str::to_owned),
                    type_: None,
                    table: None,
                },
            );
        }
        let inv = Invocation {
            run_id: "bench".into(),
            task: "normalize".into(),
            attempt,
            component: component.clone(),
            inputs,
            dir: dir.clone(),
            resources: ResourceSpec {
                memory: Some(ByteSize(3 << 30)),
                ..Default::default()
            },
            timeout: None,
            started: Arc::new(tokio::sync::Notify::new()),
            prepared: prepared.clone(),
            cancel: CancellationToken::new(),
            sink: TaskSink::new("normalize", Arc::new(Quiet)),
            kfp: None,
            transform: None,
        };
        let start = Instant::now();
        let report = executor.execute(inv).await;
        wasm_times.push(start.elapsed());
        if let Err(f) = report.result {
            bail!("wasm normalize failed: {}", f.message);
        }
        let wasm_out = std::fs::read(dir.output_file("normalized"))?;
        let native_out = std::fs::read(out.join("normalized.csv"))?;
        if wasm_out != native_out {
            bail!("wasm and native normalize disagree");
        }
        store.remove_task_dir(&dir)?;
    }
    let wasm_best = *wasm_times.iter().min().unwrap();

    let mb = size as f64 / 1e6;
    println!(
        "normalization of {ROWS} rows x 31 columns ({mb:.0} MB), best of 3 (target: wasm >= 0.5x native)"
    );
    println!(
        "  native   {:>8.3} s  {:>7.1} MB/s",
        native_best.as_secs_f64(),
        mb / native_best.as_secs_f64()
    );
    println!(
        "  wasm     {:>8.3} s  {:>7.1} MB/s",
        wasm_best.as_secs_f64(),
        mb / wasm_best.as_secs_f64()
    );
    println!(
        "  wasm throughput / native throughput: {:.2}x (outputs byte-identical)",
        native_best.as_secs_f64() / wasm_best.as_secs_f64()
    );
    Ok(())
}

/// Columns of the fused-chain table besides its label.
const FEATURES: usize = 10;

/// A table whose numbers are written in their shortest round-trip form (as pandas, numpy
/// and Sluice's steps write them), so a host reads them as numbers.
fn generate_table(path: &Path) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let header: Vec<String> = (0..FEATURES).map(|i| format!("f{i}")).collect();
    writeln!(out, "{},label", header.join(","))?;
    let mut next = split_mix64();
    for _ in 0..ROWS {
        for c in 0..FEATURES {
            // Four decimals, at least 1: Rust's `{:?}` is then the shortest form.
            let x = 1.0 + ((next() >> 11) % 100_000) as f64 / 10_000.0 * (c as f64 + 1.0);
            write!(out, "{x:?},")?;
        }
        writeln!(out, "{}", if next() & 1 == 0 { "M" } else { "B" })?;
    }
    out.flush()?;
    Ok(())
}

fn write_chain(dir: &Path, data: &Path) -> Result<PathBuf> {
    let components = Path::new(sluice_test_artifacts::ROOT).join("sample-components");
    let schema = |name: &str, bounds: &str| -> Result<PathBuf> {
        let mut columns: Vec<String> = (0..FEATURES)
            .map(|i| format!(r#"{{"name": "f{i}", "type": "number"{bounds}}}"#))
            .collect();
        columns.push(r#"{"name": "label", "type": "category", "allowed": ["M", "B"]}"#.into());
        let path = dir.join(name);
        std::fs::write(&path, format!(r#"{{"columns": [{}]}}"#, columns.join(", ")))?;
        Ok(path)
    };
    let raw = schema("raw.json", r#", "min": 1"#)?;
    let scaled = schema("scaled.json", r#", "min": 0, "max": 1"#)?;
    let c = |name: &str| {
        components
            .join(name)
            .join("component.yaml")
            .display()
            .to_string()
    };
    let yaml = format!(
        "name: fused-chain
params:
  data: {{type: Dataset, default: {data}}}
  raw: {{type: Artifact, default: {raw}}}
  scaled: {{type: Artifact, default: {scaled}}}
tasks:
  check-raw:
    component: {validate}
    inputs: {{data: {{param: data}}, schema: {{param: raw}}}}
  split:
    component: {split}
    inputs: {{data: {{from: check-raw.validated}}, test_fraction: 0.1, seed: 7, stratify: label}}
  standardize:
    component: {normalize}
    inputs: {{data: {{from: split.train}}, exclude: label}}
  rescale:
    component: {normalize}
    inputs: {{data: {{from: standardize.normalized}}, exclude: label, method: minmax}}
  check-scaled:
    component: {validate}
    inputs: {{data: {{from: rescale.normalized}}, schema: {{param: scaled}}}}
",
        data = data.display(),
        raw = raw.display(),
        scaled = scaled.display(),
        validate = c("validate"),
        split = c("split"),
        normalize = c("normalize"),
    );
    let path = dir.join("chain.yaml");
    std::fs::write(&path, yaml)?;
    Ok(path)
}

/// One run of the chain; returns its wall time and the final table's digest.
async fn run_chain(
    home: &Path,
    cache: &Path,
    pipeline: &Path,
    fuse: bool,
) -> Result<(Duration, String)> {
    let store = Arc::new(Store::open(home)?);
    let executor = Arc::new(WasmExecutor::new(WasmConfig::new(cache.to_owned()))?);
    let plan = Arc::new(
        Plan::build(&PipelineFile::load(pipeline)?, &[]).map_err(|e| anyhow::anyhow!("{e:?}"))?,
    );
    let scheduler = Scheduler {
        store: store.clone(),
        executor,
        observer: Arc::new(Quiet),
        options: Options {
            parallelism: 2,
            keep_going: false,
            keep_work: false,
            fuse,
            default_timeout: None,
            reuse: Default::default(),
            flags: Vec::new(),
            // The benchmarks measure tasks that run: no outputs from earlier rounds.
            caching: NO_CACHE,
            resumes: None,
        },
        cancel: CancellationToken::new(),
    };
    let start = Instant::now();
    let outcome = scheduler.run(plan, RunKind::Pipeline).await?;
    let wall = start.elapsed();
    let record = store.run(&outcome.run_id)?;
    if outcome.state != RunState::Succeeded {
        let errors: Vec<String> = record
            .tasks
            .iter()
            .filter_map(|t| Some(format!("{}: {}", t.name, t.error.as_deref()?)))
            .collect();
        bail!("the chain did not succeed: {}", errors.join("; "));
    }
    let last = record
        .tasks
        .iter()
        .find(|t| t.name == "check-scaled")
        .and_then(|t| t.outputs.iter().find(|o| o.name == "validated"))
        .context("the chain's last output is not recorded")?;
    Ok((wall, last.digest.clone()))
}

async fn fused(scratch: &Path) -> Result<()> {
    let dir = scratch.join("fused");
    std::fs::create_dir_all(&dir)?;
    let data = dir.join("table.csv");
    generate_table(&data)?;
    let size = std::fs::metadata(&data)?.len();
    let pipeline = write_chain(&dir, &data)?;
    let cache = scratch.join("cache");
    // Warm the compile cache, then alternate, best of three each.
    run_chain(&dir.join("home-warm"), &cache, &pipeline, true).await?;
    let (mut fused_times, mut file_times) = (Vec::new(), Vec::new());
    let mut digests = std::collections::BTreeSet::new();
    for round in 0..3 {
        for fuse in [true, false] {
            let home = dir.join(format!("home-{round}-{fuse}"));
            let (time, digest) = run_chain(&home, &cache, &pipeline, fuse).await?;
            digests.insert(digest);
            if fuse {
                fused_times.push(time);
            } else {
                file_times.push(time);
            }
            std::fs::remove_dir_all(&home)?;
        }
    }
    if digests.len() != 1 {
        bail!("fused and unfused runs wrote different final tables: {digests:?}");
    }
    let fused_best = *fused_times.iter().min().unwrap();
    let files_best = *file_times.iter().min().unwrap();
    println!(
        "five-step transform chain over {ROWS} rows x {} columns ({:.0} MB CSV), best of 3 (target: fused >= 3x)",
        FEATURES + 1,
        size as f64 / 1e6
    );
    println!(
        "  through files (--no-fuse) {:>8.3} s",
        files_best.as_secs_f64()
    );
    println!(
        "  fused chain               {:>8.3} s",
        fused_best.as_secs_f64()
    );
    println!(
        "  unfused time / fused time: {:.2}x (final outputs byte-identical)",
        files_best.as_secs_f64() / fused_best.as_secs_f64()
    );
    Ok(())
}

/// Graph sizes of the `scale` section.
const SCALE: [usize; 3] = [100, 1_000, 10_000];

/// One end-to-end figure: wall time, peak resident memory, and `runs show` of the run.
struct EndToEnd {
    wall: Duration,
    peak_rss_kib: u64,
    show: Duration,
}

/// Runs `sluice --home <home> <args>` under `/usr/bin/time` and returns its wall time and
/// peak resident memory (KiB).
fn timed_sluice(sluice: &Path, home: &Path, args: &[&str]) -> Result<(Duration, u64)> {
    let rss = home.with_extension("rss");
    let start = Instant::now();
    let status = Command::new("/usr/bin/time")
        .arg("-f")
        .arg("%M")
        .arg("-o")
        .arg(&rss)
        .arg(sluice)
        .arg("--home")
        .arg(home)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .context("cannot run /usr/bin/time (Debian's `time`; bench/scale/run.sh installs it)")?;
    let wall = start.elapsed();
    if !status.success() {
        bail!("sluice {} failed ({status})", args.join(" "));
    }
    let text = std::fs::read_to_string(&rss)?;
    let kib = text
        .lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("no peak memory in {}: {text:?}", rss.display()))?;
    Ok((wall, kib))
}

fn sluice_end_to_end(sluice: &Path, scratch: &Path, pipeline: &Path) -> Result<EndToEnd> {
    let name = pipeline.file_stem().unwrap().to_string_lossy().into_owned();
    let home = scratch.join(format!("home-{name}"));
    let cache = scratch.join("cache");
    let cache = cache.to_str().unwrap();
    let pipeline = pipeline.to_str().unwrap();
    let (wall, peak_rss_kib) = timed_sluice(
        sluice,
        &home,
        &["--cache-dir", cache, "run", pipeline, "--no-cache"],
    )?;
    let store = Store::open(&home)?;
    let run = store.list_runs(1)?.remove(0);
    if run.state != RunState::Succeeded {
        bail!("the benchmark run {} did not succeed", run.id);
    }
    let (show, _) = timed_sluice(sluice, &home, &["runs", "show", &run.id])?;
    Ok(EndToEnd {
        wall,
        peak_rss_kib,
        show,
    })
}

fn dask_seconds(python: &Path, chain: bool, tasks: usize, workers: usize) -> Result<Duration> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scale/dask_graph.py");
    let out = Command::new(python)
        .arg(script)
        .arg(if chain { "chain" } else { "fanout" })
        .arg(tasks.to_string())
        .arg(workers.to_string())
        .output()
        .with_context(|| format!("cannot run {}", python.display()))?;
    if !out.status.success() {
        bail!("dask_graph.py: {}", String::from_utf8_lossy(&out.stderr));
    }
    let seconds: f64 = String::from_utf8_lossy(&out.stdout).trim().parse()?;
    Ok(Duration::from_secs_f64(seconds))
}

/// `sluice run` end to end against Dask's threaded scheduler, 100 to 10,000 tasks.
fn scale(cores: usize) -> Result<()> {
    let sluice = PathBuf::from(
        std::env::var_os("SLUICE_BIN")
            .context("set SLUICE_BIN to a release `sluice` (bench/scale/run.sh does)")?,
    );
    let python =
        PathBuf::from(std::env::var_os("SLUICE_BENCH_DASK_PYTHON").context(
            "set SLUICE_BENCH_DASK_PYTHON to a Python with dask (bench/scale/run.sh does)",
        )?);
    // On disk, as users' homes are: the target folder, not /tmp (which may be tmpfs).
    let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-scale");
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(|t| PathBuf::from(t).join("bench-scale"))
        .unwrap_or(base);
    std::fs::create_dir_all(&base)?;
    let scratch = tempfile::tempdir_in(&base)?;
    let scratch = scratch.path();
    // A warm compile cache, as every run after a component's first one has.
    let warm = write_graph_of(scratch, true, 1)?;
    sluice_end_to_end(&sluice, scratch, &warm)?;

    println!(
        "scale: `sluice run` end to end (process start to exit) against Dask's threaded \
         scheduler, no-op tasks, {cores} workers"
    );
    println!(
        "  {:<18} {:>10} {:>10} {:>9} {:>11} {:>10} {:>10} {:>8}",
        "graph", "sluice s", "us/task", "peak MB", "runs show", "dask s", "us/task", "ratio"
    );
    for chain in [true, false] {
        for tasks in SCALE {
            let pipeline = write_graph_of(scratch, chain, tasks)?;
            let s = sluice_end_to_end(&sluice, scratch, &pipeline)?;
            let d = dask_seconds(&python, chain, tasks, cores)?;
            let shape = if chain { "chain" } else { "fan-out" };
            println!(
                "  {:<18} {:>10.3} {:>10.0} {:>9.0} {:>8.0} ms {:>10.3} {:>10.1} {:>7.1}x",
                format!("{shape} of {tasks}"),
                s.wall.as_secs_f64(),
                micros(s.wall) / tasks as f64,
                s.peak_rss_kib as f64 / 1024.0,
                s.show.as_secs_f64() * 1e3,
                d.as_secs_f64(),
                micros(d) / tasks as f64,
                s.wall.as_secs_f64() / d.as_secs_f64(),
            );
        }
    }
    println!(
        "  (ratio: sluice time / dask time; targets: <= 2 s and <= 300 MB at 10,000 tasks, runs show < 100 ms)\n"
    );
    Ok(())
}

/// Tasks of the chain the `slurm` section runs locally and on Slurm.
const SLURM_CHAIN: usize = 20;
/// Tasks of the fan-out the `slurm` section spreads over the nodes.
const SLURM_FANOUT: usize = 200;

/// Runs `program args` with the cluster the environment's `SLURM_CONF` names; its output.
fn slurm_command(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    if !out.status.success() {
        bail!("{program}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Slurm's own round trip for a no-op job: `sbatch --wrap true`, then `squeue` every
/// 10 ms until the job has ended; the median of `jobs` jobs, one after the other.
fn bare_slurm_job(dir: &Path, jobs: usize) -> Result<Duration> {
    let mut times = Vec::with_capacity(jobs);
    for _ in 0..jobs {
        let start = Instant::now();
        let out = slurm_command(
            "sbatch",
            &[
                "--parsable",
                "--job-name=bench/bare",
                &format!("--output={}/bare-%j.out", dir.display()),
                &format!("--chdir={}", dir.display()),
                "--wrap=true",
            ],
        )?;
        let id = out.trim().split(';').next().unwrap_or("").to_owned();
        loop {
            let state = slurm_command(
                "squeue",
                &[
                    "--noheader",
                    "--states=all",
                    &format!("--jobs={id}"),
                    "--format=%T",
                ],
            )?;
            match state.trim() {
                "COMPLETED" => break,
                "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING" => {}
                other => bail!("the bare job {id} ended {other}"),
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        times.push(start.elapsed());
    }
    Ok(median(times))
}

/// The nodes a home's jobs ran on, with how many each ran, from `squeue`.
fn jobs_per_node(home: &Path) -> Result<BTreeMap<String, usize>> {
    let home = home.display().to_string();
    let mut nodes = BTreeMap::new();
    for line in slurm_command(
        "squeue",
        &["--noheader", "--array", "--states=all", "--format=%N|%Z"],
    )?
    .lines()
    {
        if let Some((node, dir)) = line.split_once('|')
            && dir.starts_with(&home)
        {
            *nodes.entry(node.trim().to_owned()).or_insert(0) += 1;
        }
    }
    Ok(nodes)
}

/// No-op graphs on a Slurm cluster against the same graph run locally and against Slurm's
/// own latency for a no-op job.
async fn slurm(scratch: &Path, cores: usize) -> Result<()> {
    use sluice_runtime::slurm::SlurmConfig;
    let sluice = PathBuf::from(
        std::env::var_os("SLUICE_BIN")
            .context("set SLUICE_BIN to a release `sluice` (bench/slurm/run.sh does)")?,
    );
    if std::env::var_os("SLURM_CONF").is_none() {
        bail!(
            "set SLURM_CONF to the cluster's slurm.conf (bench/slurm/run.sh starts a test cluster)"
        );
    }
    let dir = scratch.join("slurm");
    std::fs::create_dir_all(&dir)?;
    let cache = scratch.join("slurm-cache");
    let chain = write_graph_of(&dir, true, SLURM_CHAIN)?;
    let fanout = write_graph_of(&dir, false, SLURM_FANOUT)?;
    {
        let executor = WasmExecutor::new(WasmConfig::new(cache.clone()))?;
        executor
            .prepare(target(&Component::load(&dir.join("noop.yaml"))?))
            .await?;
    }
    let config = SlurmConfig::new(sluice);
    let (poll, poll_max) = (config.poll, config.poll_max);
    // One run, the wall time of the session's run call; it must succeed.
    let run = async |home: PathBuf, pipeline: PathBuf, parallelism: usize, backend: Backend| {
        let (finished, _, wall) = run_timed_on(
            &home,
            &cache,
            &pipeline,
            parallelism,
            Policy::default(),
            backend,
        )
        .await?;
        if finished.state != RunState::Succeeded {
            bail!("the benchmark run {} did not succeed", finished.run_id);
        }
        anyhow::Ok(wall)
    };
    let local = run(
        scratch.join("slurm-home-local"),
        chain.clone(),
        cores,
        Backend::Local,
    )
    .await?;
    let slurm_chain = Backend::Slurm(config.clone());
    let on_slurm = run(scratch.join("slurm-home-chain"), chain, cores, slurm_chain).await?;
    let bare = bare_slurm_job(&dir, SLURM_CHAIN)?;
    let fan_home = scratch.join("slurm-home-fanout");
    let fan = run(
        fan_home.clone(),
        fanout,
        SLURM_FANOUT,
        Backend::Slurm(config.clone()),
    )
    .await?;
    let nodes = jobs_per_node(&fan_home)?;

    println!(
        "slurm: no-op wasm tasks as Slurm jobs (state queried every {} ms at first, doubling to {} ms while nothing ends)",
        poll.as_millis(),
        poll_max.as_millis()
    );
    println!("  {:<52} {:>12}", "", "ms per task");
    let per = |d: Duration, n: usize| d.as_secs_f64() * 1e3 / n as f64;
    println!(
        "  {:<52} {:>12.2}",
        format!("chain of {SLURM_CHAIN}, locally"),
        per(local, SLURM_CHAIN)
    );
    println!(
        "  {:<52} {:>12.1}",
        format!("chain of {SLURM_CHAIN}, on Slurm"),
        per(on_slurm, SLURM_CHAIN)
    );
    println!(
        "  {:<52} {:>12.1}",
        "baseline: bare `sbatch --wrap true`, squeue every 10 ms",
        micros(bare) / 1e3
    );
    println!(
        "  chain on Slurm / local: {:.0}x; chain on Slurm / bare Slurm job: {:.2}x",
        on_slurm.as_secs_f64() / local.as_secs_f64(),
        per(on_slurm, SLURM_CHAIN) / (micros(bare) / 1e3)
    );
    println!(
        "  fan-out of {SLURM_FANOUT}, all submitted at once: {:.2} s ({:.1} ms per task); jobs per node: {}\n",
        fan.as_secs_f64(),
        per(fan, SLURM_FANOUT),
        nodes
            .iter()
            .map(|(n, c)| format!("{n} {c}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}
