//! `--backend slurm` on a real multi-node Slurm cluster (`scripts/slurm.sh`, which
//! `scripts/test.sh` starts and names in `SLUICE_TEST_SLURM_CONF`): the same outputs as a
//! local run, jobs on more than one node, the task's resources in its job, a failure's
//! downstream skipped as locally, and a cancelled run leaving no job behind. The home is
//! a temporary folder, which the nodes share as cluster nodes share a home over NFS.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_runtime::store::{RunRecord, RunState, TaskState};

use crate::support::{Home, root};

const PIPELINE: &str = "examples/breast-cancer/pipeline.yaml";

/// The test cluster's `slurm.conf`; a missing cluster fails the test, never skips it.
fn slurm_conf() -> String {
    std::env::var("SLUICE_TEST_SLURM_CONF").expect(
        "SLUICE_TEST_SLURM_CONF names the test Slurm cluster's slurm.conf; scripts/test.sh \
         starts the cluster (scripts/slurm.sh start)",
    )
}

/// Runs a Slurm command against the test cluster; its standard output.
fn slurm(program: &str, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap_or_else(|e| panic!("{program} runs: {e}"));
    assert!(
        out.status.success(),
        "{program} {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[derive(Debug)]
struct Job {
    id: String,
    /// `sluice/<run>/<task>`.
    name: String,
    state: String,
    node: String,
}

/// The cluster's jobs whose working folder is under `home`, as `squeue` lists them (it
/// keeps ended jobs for the cluster's `MinJobAge`, 10 minutes).
fn jobs_under(home: &Path) -> Vec<Job> {
    let home = home.display().to_string();
    slurm(
        "squeue",
        &["--noheader", "--states=all", "--format=%i|%j|%T|%N|%Z"],
    )
    .lines()
    .filter_map(|line| {
        let f: Vec<&str> = line.split('|').collect();
        (f.len() == 5 && f[4].starts_with(&home)).then(|| Job {
            id: f[0].trim().to_owned(),
            name: f[1].trim().to_owned(),
            state: f[2].trim().to_owned(),
            node: f[3].trim().to_owned(),
        })
    })
    .collect()
}

fn on_slurm<'a>(args: &[&'a str]) -> Vec<&'a str> {
    let mut all = args.to_vec();
    all.extend(["--backend", "slurm"]);
    all
}

fn expect_slurm(home: &Home, args: &[&str], code: i32) -> crate::support::Ran {
    let conf = slurm_conf();
    let ran = home.sluice_with(&on_slurm(args), &[("SLURM_CONF", &conf)]);
    assert_eq!(
        ran.code,
        code,
        "sluice {} --backend slurm\n--- stdout\n{}\n--- stderr\n{}",
        args.join(" "),
        ran.stdout,
        ran.stderr
    );
    ran
}

fn outputs(run: &RunRecord) -> BTreeMap<(String, String), String> {
    run.tasks
        .iter()
        .flat_map(|t| {
            t.outputs
                .iter()
                .map(|o| ((t.name.clone(), o.name.clone()), o.digest.clone()))
        })
        .collect()
}

#[test]
fn the_example_trains_on_slurm_the_model_a_local_run_trains() {
    // Unfused, as on Slurm: a fused chain records the tables it hands on in memory by
    // their table digests (`sha256-table:`) instead of their files'.
    let local = Home::new();
    let ran = local.expect(&["run", PIPELINE, "--json", "--no-fuse"], 0);
    let local_run: RunRecord = serde_json::from_str(&ran.stdout).unwrap();

    let home = Home::new();
    let ran = expect_slurm(&home, &["run", PIPELINE, "--json"], 0);
    let run: RunRecord = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(run.state, RunState::Succeeded);
    assert_eq!(outputs(&run), outputs(&local_run));
    assert!(run.deploy.is_some(), "the model deploys after a Slurm run");

    let jobs = jobs_under(home.dir.path());
    let tasks: BTreeSet<&str> = jobs
        .iter()
        .filter_map(|j| j.name.strip_prefix(&format!("sluice/{}/", run.id)))
        .collect();
    let ran_tasks: BTreeSet<&str> = run.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(tasks, ran_tasks, "one job per task: {jobs:?}");
    assert!(jobs.iter().all(|j| j.state == "COMPLETED"), "{jobs:?}");
    let nodes: BTreeSet<&str> = jobs.iter().map(|j| j.node.as_str()).collect();
    assert!(nodes.len() >= 2, "the jobs ran on {nodes:?}: {jobs:?}");

    // The record names each task's job and node; `sluice logs` shows them.
    let logs = home.expect(&["logs", &run.id, "train"], 0);
    assert!(
        logs.stdout.contains("submitted as Slurm job") && logs.stdout.contains(" ran on node"),
        "{}",
        logs.stdout
    );
}

/// Writes a pipeline of probe tasks: `tasks` is YAML for its `tasks:` mapping, where
/// each task gives the probe its command (`a`) and that command's argument (`b`).
fn probe_pipeline(home: &Home, tasks: &str) -> std::path::PathBuf {
    let dir = home.dir.path();
    std::fs::write(
        dir.join("probe.yaml"),
        format!(
            "name: probe
inputs: [{{name: a}}, {{name: b, optional: true}}]
implementation:
  wasm:
    component: {}
    args: [{{inputValue: a}}, {{if: {{cond: {{isPresent: b}}, then: [{{inputValue: b}}]}}}}]
",
            sluice_test_artifacts::PROBE
        ),
    )
    .unwrap();
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(&pipeline, format!("name: probes\ntasks:\n{tasks}")).unwrap();
    pipeline
}

#[test]
fn a_tasks_resources_and_timeout_are_its_jobs() {
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  sized:\n    component: probe.yaml\n    inputs: {a: noop}\n    timeout: 5m\n    resources: {memory: 100Mi, cpu: 2}\n",
    );
    let ran = expect_slurm(&home, &["run", pipeline.to_str().unwrap(), "--json"], 0);
    let run: RunRecord = serde_json::from_str(&ran.stdout).unwrap();
    let jobs = jobs_under(home.dir.path());
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].name, format!("sluice/{}/sized", run.id));
    let shown = slurm("scontrol", &["show", "job", &jobs[0].id]);
    // 100 MiB for the task and 256 MiB for the sluice process hosting its sandbox; the
    // time limit is the timeout and a minute.
    for field in ["NumCPUs=2", "MinMemoryNode=356M", "TimeLimit=00:06:00"] {
        assert!(shown.contains(field), "{field} in\n{shown}");
    }
}

#[test]
fn a_failure_skips_its_downstream_on_slurm_as_it_does_locally() {
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  bad:\n    component: probe.yaml\n    inputs: {a: fail, b: '3'}\n  after-bad:\n    component: probe.yaml\n    inputs: {a: noop}\n    after: [bad]\n",
    );
    let pipeline = pipeline.to_str().unwrap();
    let local = home.expect(&["run", pipeline, "--json"], 1);
    let local: RunRecord = serde_json::from_str(&local.stdout).unwrap();
    let ran = expect_slurm(&home, &["run", pipeline, "--json"], 1);
    let run: RunRecord = serde_json::from_str(&ran.stdout).unwrap();
    let states = |r: &RunRecord| -> BTreeMap<String, TaskState> {
        r.tasks.iter().map(|t| (t.name.clone(), t.state)).collect()
    };
    assert_eq!(states(&run), states(&local));
    assert_eq!(states(&run)["after-bad"], TaskState::Skipped);
    let bad = |r: &RunRecord| {
        r.tasks
            .iter()
            .find(|t| t.name == "bad")
            .unwrap()
            .error
            .clone()
    };
    assert_eq!(bad(&run), bad(&local));
}

#[test]
fn a_cancelled_run_leaves_no_job_queued_or_running() {
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  sleepy:\n    component: probe.yaml\n    inputs: {a: sleep, b: '600000'}\n",
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(on_slurm(&["run", pipeline.to_str().unwrap()]))
        .current_dir(root())
        .env("SLUICE_HOME", home.dir.path().join("home"))
        .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
        .env("SLURM_CONF", slurm_conf())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let jobs = jobs_under(home.dir.path());
        if jobs.iter().any(|j| j.state == "RUNNING") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the job did not start: {jobs:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    let jobs = jobs_under(home.dir.path());
    assert!(
        jobs.iter().all(|j| !matches!(
            j.state.as_str(),
            "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING"
        )),
        "{jobs:?}"
    );
    assert!(jobs.iter().any(|j| j.state == "CANCELLED"), "{jobs:?}");
}
