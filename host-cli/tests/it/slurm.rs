//! `--backend slurm` on a real multi-node Slurm cluster (`scripts/slurm.sh`, which
//! `scripts/test.sh` starts and names in `SLUICE_TEST_SLURM_CONF`): the same outputs as a
//! local run, jobs on more than one node, the task's resources in its job, a failure's
//! downstream skipped as locally, and a cancelled run leaving no job behind. The home is
//! a temporary folder, which the nodes share as cluster nodes share a home over NFS.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Child;
use std::process::Command;
use std::time::{Duration, Instant};

use sluice_runtime::store::{RunRecord, RunState, TaskState};

use crate::support::{Home, outputs, root, trained_model};

const PIPELINE: &str = "examples/breast-cancer/pipeline.yaml";

/// The test cluster's `slurm.conf`; a missing cluster fails the test, never skips it.
fn slurm_conf() -> String {
    std::env::var("SLUICE_TEST_SLURM_CONF").expect(
        "SLUICE_TEST_SLURM_CONF names the test Slurm cluster's slurm.conf; scripts/test.sh \
         starts the cluster (scripts/slurm.sh start)",
    )
}

/// The cluster's two nodes are shared by every test here, and one test kills a node:
/// the tests take turns.
fn turn() -> std::sync::MutexGuard<'static, ()> {
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
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
/// keeps ended jobs for the cluster's `MinJobAge`, 10 minutes), an array's tasks one by
/// one.
fn jobs_under(home: &Path) -> Vec<Job> {
    let home = home.display().to_string();
    slurm(
        "squeue",
        &[
            "--noheader",
            "--array",
            "--states=all",
            "--format=%i|%j|%T|%N|%Z",
        ],
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

#[test]
fn the_example_trains_on_slurm_the_model_a_local_run_trains() {
    let _turn = turn();
    // Unfused, as on Slurm: a fused chain records the tables it hands on in memory by
    // their table digests (`sha256-table:`) instead of their files'.
    let local = Home::new();
    let ran = local.expect(&["run", PIPELINE, "--json", "--no-fuse"], 0);
    let local_run = ran.record();

    let home = Home::new();
    let ran = expect_slurm(&home, &["run", PIPELINE, "--json"], 0);
    let run = ran.record();
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

    // The record names each task's job and node; `runs show` and `sluice logs` show them.
    for task in &run.tasks {
        let ran_on = task.attempt_history.last().and_then(|a| a.ran_on.clone());
        let ran_on = ran_on.unwrap_or_default();
        assert!(
            ran_on.starts_with("Slurm job ") && ran_on.contains(" on node"),
            "{}: {ran_on}",
            task.name
        );
    }
    let shown = home.expect(&["runs", "show", &run.id], 0);
    assert!(shown.stdout.contains("; Slurm job "), "{}", shown.stdout);
    let logs = home.expect(&["logs", &run.id, "train"], 0);
    assert!(
        logs.stdout.contains("submitted as Slurm job") && logs.stdout.contains(" runs on node"),
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
    let _turn = turn();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  sized:\n    component: probe.yaml\n    inputs: {a: noop}\n    timeout: 5m\n    resources: {memory: 100Mi, cpu: 2}\n",
    );
    let ran = expect_slurm(&home, &["run", pipeline.to_str().unwrap(), "--json"], 0);
    let run = ran.record();
    let jobs = jobs_under(home.dir.path());
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].name, format!("sluice/{}/sized", run.id));
    let shown = slurm("scontrol", &["show", "job", &jobs[0].id]);
    // 100 MiB for the task and 256 MiB for the sluice process hosting its sandbox; the
    // time limit is the timeout and a minute.
    for field in ["NumCPUs=2", "MinMemoryNode=356M", "TimeLimit=00:06:00"] {
        assert!(shown.contains(field), "{field} in\n{shown}");
    }
    // What ran on Slurm is what would run here: a local run takes it from the task cache.
    let ran = home.expect(&["run", pipeline.to_str().unwrap(), "--json"], 0);
    let local = ran.record();
    assert_eq!(
        local.tasks[0].cached_from.as_deref(),
        Some(format!("{}/sized", run.id).as_str())
    );
}

#[test]
fn a_failure_skips_its_downstream_on_slurm_as_it_does_locally() {
    let _turn = turn();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  bad:\n    component: probe.yaml\n    inputs: {a: fail, b: '3'}\n  after-bad:\n    component: probe.yaml\n    inputs: {a: noop}\n    after: [bad]\n",
    );
    let pipeline = pipeline.to_str().unwrap();
    let local = home.expect(&["run", pipeline, "--json"], 1);
    let local = local.record();
    let ran = expect_slurm(&home, &["run", pipeline, "--json"], 1);
    let run = ran.record();
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
    let _turn = turn();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  sleepy:\n    component: probe.yaml\n    inputs: {a: sleep, b: '600000'}\n",
    );
    let child = start_driver(&home, &pipeline, &[]);
    wait_for_job(&home, |j| j.state == "RUNNING");
    let (code, stderr) = interrupt(child);
    assert_eq!(code, 130, "{stderr}");
    let jobs = jobs_under(home.dir.path());
    assert_none_active(&jobs);
    assert!(jobs.iter().any(|j| j.state == "CANCELLED"), "{jobs:?}");
}

#[test]
fn the_container_variant_trains_in_docker_on_a_node_and_a_bundle_runs_as_it_does() {
    let _turn = turn();
    const CONTAINER: &str = "examples/breast-cancer/pipeline-container.yaml";
    let local = Home::new();
    let ran = local.expect(&["run", CONTAINER, "--json", "--no-fuse"], 0);
    let local_run = ran.record();

    let home = Home::new();
    let ran = expect_slurm(&home, &["run", CONTAINER, "--json"], 0);
    let run = ran.record();
    assert_eq!(outputs(&run), outputs(&local_run));
    let train = run.tasks.iter().find(|t| t.name == "train").unwrap();
    let implementation = train.implementation.as_deref().unwrap_or_default();
    assert!(implementation.starts_with("container "), "{implementation}");
    let ran_on = train.attempt_history[0]
        .ran_on
        .as_deref()
        .unwrap_or_default();
    assert!(ran_on.starts_with("Slurm job "), "{ran_on}");
    assert!(
        crate::support::containers_of(&run.id).is_empty(),
        "no container outlives its job"
    );

    // The example as one archive, unpacked into the (shared) home and run on Slurm.
    let bundle = home.dir.path().join("example.tar");
    home.expect(&["bundle", PIPELINE, "-o", bundle.to_str().unwrap()], 0);
    let ran = expect_slurm(
        &home,
        &["run", bundle.to_str().unwrap(), "--json", "--no-cache"],
        0,
    );
    let bundled = ran.record();
    assert_eq!(trained_model(&bundled), trained_model(&local_run));
    let jobs = jobs_under(home.dir.path());
    assert!(
        jobs.iter()
            .filter(|j| j.name.starts_with(&format!("sluice/{}/", bundled.id)))
            .count()
            == bundled.tasks.len(),
        "{jobs:?}"
    );
}

/// A pipeline compiled by the KFP SDK, with a loop and conditions, runs on Slurm (its
/// lightweight Python steps as host processes on the nodes) to the outputs it has
/// locally.
#[test]
fn a_compiled_kfp_pipeline_with_loops_and_conditions_runs_on_slurm_as_locally() {
    let _turn = turn();
    let path = crate::kfp::kfp_path();
    let conf = slurm_conf();
    for name in ["loops", "conditions"] {
        let pipeline = crate::kfp::compiled(name);
        let pipeline = pipeline.to_str().unwrap();
        let args = ["run", pipeline, "--json", "--runner", "process"];
        let local = Home::new();
        let ran = local.sluice_with(&args, &[("PATH", &path)]);
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let local_run = ran.record();

        let home = Home::new();
        let ran = home.sluice_with(&on_slurm(&args), &[("PATH", &path), ("SLURM_CONF", &conf)]);
        assert_eq!(ran.code, 0, "{name}: {}", ran.stderr);
        let run = ran.record();
        let states = |r: &RunRecord| -> BTreeMap<String, TaskState> {
            r.tasks.iter().map(|t| (t.name.clone(), t.state)).collect()
        };
        assert_eq!(states(&run), states(&local_run), "{name}");
        assert_eq!(outputs(&run), outputs(&local_run), "{name}");
        let ran_tasks = run
            .tasks
            .iter()
            .filter(|t| t.state == TaskState::Succeeded)
            .count();
        let jobs = jobs_under(home.dir.path());
        assert_eq!(
            jobs.len(),
            ran_tasks,
            "{name}: one job per task that ran: {jobs:?}"
        );
        if name == "loops" {
            // The iterations of a loop started together are the tasks of one job array.
            let arrays: BTreeSet<String> = run
                .tasks
                .iter()
                .filter(|t| t.name.starts_with("double."))
                .map(|t| {
                    let ran_on = t.attempt_history.last().and_then(|a| a.ran_on.clone());
                    let ran_on = ran_on.unwrap_or_default();
                    let id = ran_on
                        .strip_prefix("Slurm job ")
                        .and_then(|rest| rest.split(' ').next())
                        .unwrap_or_default();
                    let (array, index) = id
                        .split_once('_')
                        .unwrap_or_else(|| panic!("{} ran as array task: {ran_on}", t.name));
                    assert!(index.parse::<u32>().is_ok(), "{ran_on}");
                    array.to_owned()
                })
                .collect();
            assert_eq!(
                arrays.len(),
                1,
                "one array for double's 3 iterations: {arrays:?}"
            );
            let array = arrays.first().map(String::as_str).unwrap_or_default();
            let named: Vec<&Job> = jobs
                .iter()
                .filter(|j| j.id.starts_with(&format!("{array}_")))
                .collect();
            assert_eq!(named.len(), 3, "{jobs:?}");
            assert!(
                named
                    .iter()
                    .all(|j| j.name.starts_with(&format!("sluice/{}/double.*#", run.id))),
                "{jobs:?}"
            );
        }
    }
}

/// The iterations of a loop run as the tasks of one job array, each cancelled as a job
/// of its own: SIGHUP and Ctrl-C cancel every one, queued or running, and those a
/// killed driver left running are cancelled by `sluice runs resume`, which names them,
/// even when it moves the run to this machine.
#[test]
fn a_loops_array_tasks_are_cancelled_by_signals_and_by_resume_after_a_killed_driver() {
    let _turn = turn();
    let pipeline = crate::kfp::compiled("slow_loop");
    let napping = |home: &Home| {
        wait_for_jobs(home, 3, |j| {
            j.name.contains("/nap.*#") && j.id.contains('_') && j.state == "RUNNING"
        })
    };

    // Held in the queue, then SIGHUP (the terminal closed): each array task is cancelled
    // on its own, which leaves Slurm no record of it, and its log says so.
    let home = Home::new();
    let child = start_driver(
        &home,
        &pipeline,
        &["--runner", "process", "--slurm-arg=--hold"],
    );
    let held = wait_for_jobs(&home, 3, |j| j.id.contains('_') && j.state == "PENDING");
    let run = run_of(&held[0]);
    let hangup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hangup.success());
    let (code, stderr) = finish(child);
    assert_eq!(code, 130, "{stderr}");
    assert!(stderr.contains("cancelling (SIGHUP)"), "{stderr}");
    assert_none_active(&jobs_under(home.dir.path()));
    let logs = home.expect(&["logs", &run, "nap.1"], 0);
    let array = held[0].id.split('_').next().unwrap_or_default();
    assert!(
        logs.stdout.contains(&format!("Slurm job {array}_"))
            && logs.stdout.contains("was cancelled before it ran"),
        "{}",
        logs.stdout
    );

    let home = Home::new();
    let child = start_driver(&home, &pipeline, &["--runner", "process"]);
    let array = napping(&home);
    let (code, stderr) = interrupt(child);
    assert_eq!(code, 130, "{stderr}");
    let jobs = jobs_under(home.dir.path());
    for task in &array {
        assert!(
            jobs.iter()
                .any(|j| j.id == task.id && j.state == "CANCELLED"),
            "{} was cancelled: {jobs:?}",
            task.id
        );
    }

    let home = Home::new();
    let mut child = start_driver(&home, &pipeline, &["--runner", "process"]);
    let array = napping(&home);
    child.kill().unwrap();
    let _ = finish(child);
    let run = run_of(&array[0]);
    // Moved to this machine, the resumed run still cancels the jobs left on Slurm.
    let resume = start_sluice(
        &home,
        &[
            "runs",
            "resume",
            &run,
            "--backend",
            "local",
            "--runner",
            "process",
        ],
    );
    let started = Instant::now();
    // Cancelled jobs stay COMPLETING while their nodes stop them: wait that out too.
    while jobs_under(home.dir.path()).iter().any(is_active) {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the jobs the killed driver left still run: {:?}",
            jobs_under(home.dir.path())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let (code, stderr) = interrupt(resume);
    assert_eq!(code, 130, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "cancelled 3 Slurm job(s) run {run} left queued or running: "
        )) && array.iter().all(|j| stderr.contains(&j.id)),
        "{array:?}: {stderr}"
    );
    let jobs = jobs_under(home.dir.path());
    assert_none_active(&jobs);
}

/// The run a job of `sluice/<run>/<task>` belongs to.
fn run_of(job: &Job) -> String {
    let rest = job.name.strip_prefix("sluice/").unwrap_or_default();
    rest.split('/').next().unwrap_or_default().to_owned()
}

/// Starts `sluice run PIPELINE --backend slurm [EXTRA...]`, its standard error piped.
fn start_driver(home: &Home, pipeline: &Path, extra: &[&str]) -> Child {
    let mut args = vec!["run", pipeline.to_str().unwrap()];
    args.extend_from_slice(extra);
    start_sluice(home, &on_slurm(&args))
}

/// Starts `sluice ARGS...` on the test cluster, its standard error piped.
fn start_sluice(home: &Home, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .current_dir(root())
        .env("SLUICE_HOME", home.dir.path().join("home"))
        .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
        .env("SLURM_CONF", slurm_conf())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits, a minute at most, for a job of the home that `found` accepts.
fn wait_for_job(home: &Home, found: impl Fn(&Job) -> bool) -> Job {
    wait_for_jobs(home, 1, found).remove(0)
}

/// Waits, a minute at most, for `n` jobs of the home that `found` accepts.
fn wait_for_jobs(home: &Home, n: usize, found: impl Fn(&Job) -> bool) -> Vec<Job> {
    let started = Instant::now();
    loop {
        let jobs: Vec<Job> = jobs_under(home.dir.path())
            .into_iter()
            .filter(&found)
            .collect();
        if jobs.len() >= n {
            return jobs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not {n} such jobs: {:?}",
            jobs_under(home.dir.path())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends a driver SIGINT (Ctrl-C); its exit code and standard error.
fn interrupt(child: Child) -> (i32, String) {
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    finish(child)
}

/// No job is queued or running.
fn assert_none_active(jobs: &[Job]) {
    assert!(!jobs.iter().any(is_active), "{jobs:?}");
}

/// Whether a job is queued, running, or still being stopped by its node.
fn is_active(job: &Job) -> bool {
    matches!(
        job.state.as_str(),
        "PENDING" | "RUNNING" | "CONFIGURING" | "COMPLETING"
    )
}

fn finish(mut child: Child) -> (i32, String) {
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    (status.code().unwrap_or(-1), stderr)
}

fn slurm_script(args: &[&str]) {
    let out = Command::new(root().join("scripts/slurm.sh"))
        .args(args)
        .env(
            "SLUICE_SLURM_DIR",
            Path::new(&slurm_conf()).parent().unwrap(),
        )
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "scripts/slurm.sh {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A node that dies under a running task (every process of it killed, `slurmd` first)
/// costs the task its job, not an attempt: the job ends `NODE_FAIL`, the attempt is
/// submitted again and succeeds on the other node, its timeout counted again from the
/// new job's start (Slurm takes about 30 s to declare the node failed; the task sleeps
/// 20 s of its 40 s).
#[test]
fn a_task_whose_node_dies_runs_again_on_another_node() {
    let _turn = turn();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  slow:\n    component: probe.yaml\n    inputs: {a: sleep, b: '20000'}\n    timeout: 40s\n",
    );
    let child = start_driver(&home, &pipeline, &[]);
    let job = wait_for_job(&home, |j| j.state == "RUNNING");
    let node = job.node.strip_prefix("node").unwrap().to_owned();
    slurm_script(&["kill-node", &node]);
    let (code, stderr) = finish(child);
    slurm_script(&["start-node", &node]);
    assert_eq!(code, 0, "{stderr}");

    let jobs = jobs_under(home.dir.path());
    let states: Vec<(&str, &str)> = jobs
        .iter()
        .map(|j| (j.state.as_str(), j.node.as_str()))
        .collect();
    assert_eq!(states.len(), 2, "{jobs:?}");
    assert!(
        states.contains(&("NODE_FAIL", job.node.as_str())),
        "{jobs:?}"
    );
    assert!(
        states
            .iter()
            .any(|(state, n)| *state == "COMPLETED" && *n != job.node),
        "{jobs:?}"
    );
    let list = home.expect(&["runs", "list", "--json"], 0);
    let runs: Vec<RunRecord> = serde_json::from_str(&list.stdout).unwrap();
    let shown = home.expect(&["runs", "show", &runs[0].id, "--json"], 0);
    let run = shown.record();
    assert_eq!(run.tasks[0].state, TaskState::Succeeded);
    assert_eq!(run.tasks[0].attempts, 1, "a node failure is not the task's");
}

/// A driver killed outright leaves a record `sluice runs resume` picks up: the task that
/// succeeded is reused, not submitted again, and the job it left running is cancelled.
#[test]
fn resuming_after_the_driver_is_killed_submits_only_what_did_not_succeed() {
    let _turn = turn();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  first:\n    component: probe.yaml\n    inputs: {a: noop}\n  second:\n    component: probe.yaml\n    inputs: {a: sleep, b: '8000'}\n    after: [first]\n",
    );
    let mut child = start_driver(&home, &pipeline, &[]);
    let second = wait_for_job(&home, |j| {
        j.name.ends_with("/second") && j.state == "RUNNING"
    });
    child.kill().unwrap();
    let _ = finish(child);
    let run = second
        .name
        .strip_prefix("sluice/")
        .and_then(|n| n.strip_suffix("/second"))
        .unwrap()
        .to_owned();

    let ran = expect_slurm(&home, &["runs", "resume", &run, "--json"], 0);
    // The job the killed driver left running is cancelled, not left to run twice.
    assert!(
        ran.stderr.contains(&format!(
            "cancelled 1 Slurm job(s) run {run} left queued or running: {}",
            second.id
        )),
        "{}",
        ran.stderr
    );
    let left = jobs_under(home.dir.path());
    assert!(
        left.iter()
            .any(|j| j.id == second.id && j.state == "CANCELLED"),
        "{left:?}"
    );
    let resumed = ran.record();
    assert_ne!(resumed.id, run);
    assert!(
        resumed
            .tasks
            .iter()
            .all(|t| t.state == TaskState::Succeeded)
    );
    let first = resumed.tasks.iter().find(|t| t.name == "first").unwrap();
    assert!(first.cached_from.is_some(), "{first:?}");
    let names: Vec<String> = jobs_under(home.dir.path())
        .into_iter()
        .filter(|j| j.name.starts_with(&format!("sluice/{}/", resumed.id)))
        .map(|j| j.name)
        .collect();
    assert_eq!(names, [format!("sluice/{}/second", resumed.id)]);
}

/// A pipeline's `backend.slurm` settings reach `sbatch`; the command line's flags win.
#[test]
fn a_pipelines_slurm_settings_reach_its_jobs_and_flags_win() {
    let _turn = turn();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  one:\n    component: probe.yaml\n    inputs: {a: noop}\n",
    );
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &pipeline,
        format!("{text}backend:\n  slurm:\n    partition: main\n    args: [--comment=from-the-pipeline]\n"),
    )
    .unwrap();
    let pipeline = pipeline.to_str().unwrap();
    let comment = |run: &str| {
        let job = jobs_under(home.dir.path())
            .into_iter()
            .find(|j| j.name == format!("sluice/{run}/one"))
            .unwrap();
        let shown = slurm("scontrol", &["show", "job", &job.id]);
        assert!(shown.contains("Partition=main"), "{shown}");
        shown
            .split_whitespace()
            .find_map(|f| f.strip_prefix("Comment="))
            .unwrap_or_default()
            .to_owned()
    };
    let ran = expect_slurm(&home, &["run", pipeline, "--json", "--no-cache"], 0);
    let run = ran.record();
    assert_eq!(comment(&run.id), "from-the-pipeline");
    let ran = expect_slurm(
        &home,
        &[
            "run",
            pipeline,
            "--json",
            "--no-cache",
            "--slurm-arg=--comment=from-a-flag",
        ],
        0,
    );
    let run = ran.record();
    assert_eq!(comment(&run.id), "from-a-flag");

    // Arguments sbatch would take for its script are refused before anything runs.
    let bad = home.dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        format!("{text}backend:\n  slurm:\n    args: [extra]\n"),
    )
    .unwrap();
    let ran = home.expect(&["validate", bad.to_str().unwrap()], 2);
    assert!(
        ran.stderr.contains("backend.slurm") && ran.stderr.contains("'extra'"),
        "{}",
        ran.stderr
    );

    // A partition the cluster lacks fails the task in one line, saying what sbatch said.
    let ran = expect_slurm(
        &home,
        &[
            "run",
            pipeline,
            "--json",
            "--no-cache",
            "--slurm-partition",
            "nope",
        ],
        1,
    );
    let run = ran.record();
    let error = run.tasks[0].error.clone().unwrap_or_default();
    assert!(
        error.starts_with("sbatch failed") && error.contains("invalid partition"),
        "{error}"
    );
}

/// A task's timeout counts from when its job runs, not from its submission: a job held in
/// the queue for longer than the timeout still runs to its end once released. Why it
/// waited is in its log.
#[test]
fn a_timeout_counts_from_when_the_job_runs_not_while_it_is_queued() {
    let _turn = turn();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  held:\n    component: probe.yaml\n    inputs: {a: sleep, b: '1000'}\n    timeout: 3s\n",
    );
    let child = start_driver(&home, &pipeline, &["--slurm-arg=--hold"]);
    let job = wait_for_job(&home, |j| j.state == "PENDING");
    std::thread::sleep(Duration::from_secs(5));
    slurm("scontrol", &["release", &job.id]);
    let (code, stderr) = finish(child);
    assert_eq!(code, 0, "{stderr}");
    let run = job.name.split('/').nth(1).unwrap().to_owned();
    let logs = home.expect(&["logs", &run, "held"], 0);
    assert!(
        logs.stdout
            .contains(&format!("Slurm job {} is pending: JobHeldUser", job.id)),
        "{}",
        logs.stdout
    );
}

/// A job that can never start (its time limit over its partition's) fails its task at
/// once, saying why, instead of waiting forever.
#[test]
fn a_job_slurm_will_never_start_fails_its_task_saying_why() {
    let _turn = turn();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  long:\n    component: probe.yaml\n    inputs: {a: noop}\n    timeout: 10m\n",
    );
    slurm(
        "scontrol",
        &[
            "create",
            "PartitionName=short",
            "Nodes=ALL",
            "MaxTime=1",
            "State=UP",
        ],
    );
    let ran = home.sluice_with(
        &on_slurm(&[
            "run",
            pipeline.to_str().unwrap(),
            "--json",
            "--slurm-partition",
            "short",
        ]),
        &[("SLURM_CONF", &slurm_conf())],
    );
    slurm("scontrol", &["delete", "PartitionName=short"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let run = ran.record();
    let error = run.tasks[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("Slurm will not start job") && error.contains("PartitionTimeLimit"),
        "{error}"
    );
    let jobs = jobs_under(home.dir.path());
    assert!(jobs.iter().all(|j| j.state == "CANCELLED"), "{jobs:?}");

    // More CPUs than any node has: Slurm says only PartitionConfig, for good.
    let pipeline = probe_pipeline(
        &home,
        "  wide:\n    component: probe.yaml\n    inputs: {a: noop}\n    resources: {cpu: 64}\n",
    );
    let ran = expect_slurm(&home, &["run", pipeline.to_str().unwrap(), "--json"], 1);
    let run = ran.record();
    let error = run.tasks[0].error.clone().unwrap_or_default();
    assert!(
        error.contains("Slurm will not start job") && error.contains("PartitionConfig"),
        "{error}"
    );
    assert_eq!(run.tasks[0].attempts, 1);
}

/// Relative homes and cache folders, and `%` or `\` in the home's path (which Slurm would
/// read in a pattern), reach the nodes as the same absolute paths.
#[test]
fn relative_homes_and_percent_signs_reach_the_jobs_intact() {
    let _turn = turn();
    let scratch = tempfile::tempdir().unwrap();
    let cwd = scratch.path().join("work%j%x");
    std::fs::create_dir_all(&cwd).unwrap();
    let home = Home::new();
    let pipeline = probe_pipeline(
        &home,
        "  one:\n    component: probe.yaml\n    inputs: {a: noop}\n",
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["--home", "h%j\\ome", "--cache-dir", "relcache"])
        .args(on_slurm(&[
            "run",
            pipeline.to_str().unwrap(),
            "--keep-work",
        ]))
        .current_dir(&cwd)
        .env("SLURM_CONF", slurm_conf())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One compile cache, where it was asked for, not one per task folder.
    assert!(cwd.join("relcache/wasm").is_dir());
    let stray: Vec<_> = walk(&cwd.join("h%j\\ome/runs"))
        .into_iter()
        .filter(|p| p.ends_with("relcache"))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut all = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            all.extend(walk(&path));
        }
        all.push(path);
    }
    all
}

/// What a job runs is what the driver prepared and recorded: a `.wasm` replaced while the
/// run goes on is refused, not run under the recorded digest.
#[test]
fn a_component_replaced_during_the_run_is_refused_not_run() {
    let _turn = turn();
    let home = Home::new();
    let dir = home.dir.path();
    let wasm = dir.join("x.wasm");
    std::fs::copy(sluice_test_artifacts::PROBE, &wasm).unwrap();
    std::fs::write(
        dir.join("x.yaml"),
        "name: x\nimplementation:\n  wasm: {component: x.wasm, args: [echo, from-x]}\n",
    )
    .unwrap();
    let pipeline = probe_pipeline(
        &home,
        "  first:\n    component: probe.yaml\n    inputs: {a: sleep, b: '3000'}\n  second:\n    component: x.yaml\n    after: [first]\n",
    );
    let child = start_driver(&home, &pipeline, &[]);
    wait_for_job(&home, |j| {
        j.name.ends_with("/first") && j.state == "RUNNING"
    });
    std::fs::copy(sluice_test_artifacts::VALIDATE, &wasm).unwrap();
    let (code, stderr) = finish(child);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("the component's .wasm changed since the run prepared it"),
        "{stderr}"
    );
}

/// The task's own output survives its attempt being stopped (a timeout); a refusal by
/// `sbatch` is not retried; a run moved off Slurm leaves its Slurm settings behind.
#[test]
fn stopped_attempts_keep_their_output_refusals_are_not_retried_and_runs_move_off_slurm() {
    let _turn = turn();
    let home = Home::new();
    let dir = home.dir.path();
    std::fs::write(
        dir.join("talk.yaml"),
        "name: talk\nimplementation:\n  container:\n    image: none\n    command: [sh, -c, 'echo before-the-sleep; sleep 120']\n",
    )
    .unwrap();
    let pipeline = dir.join("talk-pipeline.yaml");
    std::fs::write(
        &pipeline,
        "name: talk\ntasks:\n  talk:\n    component: talk.yaml\n    timeout: 4s\n",
    )
    .unwrap();
    let ran = expect_slurm(
        &home,
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--runner",
            "process",
            "--json",
        ],
        1,
    );
    let run = ran.record();
    assert!(
        run.tasks[0]
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("timed out after 4s"),
        "{:?}",
        run.tasks[0].error
    );
    let logs = home.expect(&["logs", &run.id, "talk"], 0);
    assert!(logs.stdout.contains("before-the-sleep"), "{}", logs.stdout);

    let retried = probe_pipeline(
        &home,
        "  one:\n    component: probe.yaml\n    inputs: {a: noop}\n    retries: {limit: 2, backoff: 1s}\n",
    );
    let ran = expect_slurm(
        &home,
        &[
            "run",
            retried.to_str().unwrap(),
            "--json",
            "--slurm-partition",
            "nope",
        ],
        1,
    );
    let run = ran.record();
    assert_eq!(run.tasks[0].attempts, 1, "{:?}", run.tasks[0].error);

    // The same run, moved here: its recorded partition does not follow it.
    let ran = home.expect(
        &["runs", "rerun", &run.id, "--backend", "local", "--json"],
        0,
    );
    let rerun = ran.record();
    assert!(
        !rerun.flags.iter().any(|f| f.contains("slurm")),
        "{:?}",
        rerun.flags
    );
    assert!(
        jobs_under(home.dir.path())
            .iter()
            .all(|j| !j.name.contains(&rerun.id))
    );
}
