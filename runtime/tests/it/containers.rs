//! Container steps against the real Docker Engine: mixed wasm/container pipelines passing
//! artifacts and parameters both ways, timeouts, OOM, exit codes, missing outputs and
//! images, GPU requests on a host without GPUs, the choice between implementations, the
//! process runner, and that no container outlives its task. The images come from
//! `scripts/build-images.sh`; a missing engine or image fails these tests.

use std::process::Command;

use sluice_runtime::exec::runners::{ContainerRunner, Policy};
use sluice_runtime::spec::Prefer;
use sluice_runtime::store::{RunRecord, RunState, TaskState};

use crate::support::{Env, task};

const IMAGE: &str = "sluice-samples/probe:0.1.0";

/// Fails with what to do when the engine or the probe image is missing.
fn require_image() {
    let out = Command::new("docker")
        .args(["image", "inspect", IMAGE])
        .output();
    match out {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!(
            "image {IMAGE} is missing ({}); build it with scripts/build-images.sh",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Err(e) => panic!("the docker command is not available: {e}"),
    }
}

/// Names of the containers Docker still has for a run.
fn leftovers(run: &RunRecord) -> Vec<String> {
    let out = Command::new("docker")
        .args(["ps", "-a", "--format", "{{.Names}}", "--filter"])
        .arg(format!("label=sluice.run={}", run.id))
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

fn env() -> Env {
    require_image();
    Env::with_policy(Policy::default())
}

/// A component running the probe image with `args` (a YAML list).
fn container(env: &Env, name: &str, args: &str, ports: &str) {
    env.component(
        name,
        "",
        &format!("{ports}\nimplementation:\n  container:\n    image: {IMAGE}\n    command: [probe]\n    args: {args}\n"),
    );
}

#[tokio::test]
async fn wasm_and_containers_pass_artifacts_and_parameters_both_ways() {
    let env = env();
    env.probe(
        "make",
        "[write, {outputPath: out}, hello]",
        "outputs:\n- {name: out, type: Dataset}",
    );
    container(
        &env,
        "relay",
        "[copy, {inputPath: in}, {outputPath: out}]",
        "inputs:\n- {name: in, type: Dataset}\noutputs:\n- {name: out, type: Dataset}",
    );
    env.probe(
        "show",
        "[read, {inputPath: in}]",
        "inputs:\n- {name: in, type: Dataset}",
    );
    container(
        &env,
        "count",
        "[write, {outputPath: n}, '42']",
        "outputs:\n- {name: n, type: Integer}",
    );
    env.component(
        "typed",
        sluice_test_artifacts::TYPED_PROBE,
        "inputs:\n- {name: mode, type: String}\n- {name: count, type: Integer}\noutputs:\n- {name: mode, type: String}\n- {name: count, type: Integer}\nimplementation:\n  wasm: {component: WASM}\n",
    );
    container(
        &env,
        "say",
        "[echo, {inputValue: n}, {inputValue: word}]",
        "inputs:\n- {name: n, type: Integer}\n- {name: word, type: String}",
    );
    let run = env
        .run(
            "name: mixed
tasks:
  make: {component: make.yaml}
  relay: {component: relay.yaml, inputs: {in: {from: make.out}}}
  show: {component: show.yaml, inputs: {in: {from: relay.out}}}
  count: {component: count.yaml}
  typed: {component: typed.yaml, inputs: {mode: echo, count: {from: count.n}}}
  say: {component: say.yaml, inputs: {n: {from: typed.count}, word: {from: typed.mode}}}
",
        )
        .await;
    for t in &run.tasks {
        assert_eq!(t.state, TaskState::Succeeded, "{}: {:?}", t.name, t.error);
    }
    assert_eq!(
        task(&run, "relay").implementation.as_deref(),
        Some("container sluice-samples/probe:0.1.0")
    );
    assert_eq!(
        task(&run, "relay").outputs[0].digest,
        task(&run, "make").outputs[0].digest
    );
    assert!(env.logs(&run, "show").contains("hello"));
    let count = task(&run, "typed")
        .outputs
        .iter()
        .find(|o| o.name == "count")
        .unwrap();
    assert_eq!(count.value.as_deref(), Some("42"));
    assert!(
        env.logs(&run, "say").contains("42 echo"),
        "{}",
        env.logs(&run, "say")
    );
    assert!(
        leftovers(&run).is_empty(),
        "containers left: {:?}",
        leftovers(&run)
    );
}

#[tokio::test]
async fn a_container_that_runs_too_long_is_killed_and_removed() {
    let env = env();
    container(&env, "spin", "[spin]", "");
    let run = env
        .run("name: p\ntasks:\n  s: {component: spin.yaml, timeout: 1s}\n")
        .await;
    let s = task(&run, "s");
    assert_eq!(s.error.as_deref(), Some("timed out after 1s"));
    let took = s.ended_at.unwrap().as_millisecond() - s.started_at.unwrap().as_millisecond();
    assert!(took < 5000, "killing took {took}ms");
    assert!(
        leftovers(&run).is_empty(),
        "containers left: {:?}",
        leftovers(&run)
    );
}

#[tokio::test]
async fn failures_end_the_task_with_one_line_and_keep_the_logs() {
    let env = env();
    container(&env, "hog", "[alloc, '512']", "");
    container(&env, "fail", "[fail, '7']", "");
    container(&env, "lazy", "[noop]", "outputs:\n- {name: out}");
    container(&env, "after", "[noop]", "");
    let run = env
        .run(
            "name: p
tasks:
  hog: {component: hog.yaml, resources: {memory: 64Mi}}
  fail: {component: fail.yaml}
  lazy: {component: lazy.yaml}
  after: {component: after.yaml, after: [fail]}
",
        )
        .await;
    assert_eq!(run.state, RunState::Failed);
    assert_eq!(
        task(&run, "hog").error.as_deref(),
        Some("killed for running out of memory (limit 64Mi)")
    );
    assert_eq!(
        task(&run, "fail").error.as_deref(),
        Some("exited with code 7 (stderr: failing with 7)")
    );
    assert!(env.logs(&run, "fail").contains("failing with 7"));
    assert_eq!(
        task(&run, "lazy").error.as_deref(),
        Some("output 'out' was not written")
    );
    assert_eq!(task(&run, "after").state, TaskState::Skipped);
    assert!(
        leftovers(&run).is_empty(),
        "containers left: {:?}",
        leftovers(&run)
    );
}

#[tokio::test]
async fn kfp_file_outputs_are_copied_out_of_the_container() {
    let env = env();
    env.component(
        "file",
        "",
        &format!("outputs:\n- {{name: out}}\nimplementation:\n  container:\n    image: {IMAGE}\n    command: [probe, write, /result.txt, from-the-image]\n    fileOutputs: {{out: /result.txt}}\n"),
    );
    let run = env
        .run("name: p\ntasks:\n  f: {component: file.yaml}\n")
        .await;
    let f = task(&run, "f");
    assert_eq!(f.state, TaskState::Succeeded, "{:?}", f.error);
    assert_eq!(
        env.store.read(&f.outputs[0].digest).unwrap(),
        b"from-the-image"
    );
}

#[tokio::test]
async fn a_missing_image_is_refused_before_the_run() {
    let env = env();
    env.component(
        "ghost",
        "",
        "implementation:\n  container: {image: 'sluice-samples/ghost:0.0.0'}\n",
    );
    let why = env
        .refused("name: p\ntasks:\n  g: {component: ghost.yaml}\n")
        .await;
    // Where the registry answers, it refuses the image; where it cannot be reached (this
    // machine reaches no image registry), that is said instead: the environment's failure.
    assert!(
        why.starts_with("task 'g': image 'sluice-samples/ghost:0.0.0' is not present in the Docker Engine and cannot be pulled: ")
            || why.starts_with("task 'g': cannot reach the registry of image 'sluice-samples/ghost:0.0.0': "),
        "{why}"
    );
    let mut policy = Policy::default();
    policy.docker.pull = sluice_runtime::exec::docker::PullPolicy::Never;
    let never = Env::with_policy(policy);
    never.component(
        "ghost",
        "",
        "implementation:\n  container: {image: 'sluice-samples/ghost:0.0.0'}\n",
    );
    let why = never
        .refused("name: p\ntasks:\n  g: {component: ghost.yaml}\n")
        .await;
    assert_eq!(
        why,
        "task 'g': image 'sluice-samples/ghost:0.0.0' is not present in the Docker Engine, and the pull policy is never"
    );
}

#[tokio::test]
async fn a_gpu_request_fails_fast_on_a_host_without_gpus() {
    require_image();
    let mut policy = Policy::default();
    policy.docker.keep_containers = true;
    let env = Env::with_policy(policy);
    container(&env, "gpu", "[noop]", "");
    let run = env
        .run("name: p\ntasks:\n  g: {component: gpu.yaml, resources: {accelerator: {type: nvidia.com/gpu, count: 2}, cpu: 500m, memory: 128Mi}}\n")
        .await;
    let error = task(&run, "g").error.clone().unwrap();
    assert!(
        error.starts_with("the task requests 2 nvidia.com/gpu, but the Docker Engine at ")
            && error
                .ends_with("has no GPU runtime (the NVIDIA Container Toolkit is not installed)"),
        "{error}"
    );
    assert_eq!(
        task(&run, "g").implementation_reason.as_deref(),
        Some("the task requests 2 nvidia.com/gpu")
    );
    // The kept container carries the device request; it never started.
    let kept = leftovers(&run);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let inspect = Command::new("docker")
        .args([
            "inspect",
            "--format",
            "{{json .HostConfig.DeviceRequests}} cpu={{.HostConfig.NanoCpus}} memory={{.HostConfig.Memory}} swap={{.HostConfig.MemorySwap}} {{.State.Status}}",
            &kept[0],
        ])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&inspect.stdout).into_owned();
    Command::new("docker")
        .args(["rm", "-f", &kept[0]])
        .output()
        .unwrap();
    let (requests, rest) = shown.split_once(' ').unwrap();
    let requests: serde_json::Value = serde_json::from_str(requests).unwrap();
    assert_eq!(requests[0]["Driver"], "nvidia", "{shown}");
    assert_eq!(requests[0]["Count"], 2, "{shown}");
    assert_eq!(
        requests[0]["Capabilities"],
        serde_json::json!([["gpu"]]),
        "{shown}"
    );
    let shown = rest;
    assert!(
        shown.contains("cpu=500000000 memory=134217728 swap=134217728"),
        "{shown}"
    );
    assert!(shown.trim_end().ends_with("created"), "{shown}");
}

/// A component with both implementations; `wasm` names the wasm file.
fn both(env: &Env, name: &str, wasm: &str) {
    env.component(
        name,
        wasm,
        &format!("implementation:\n  wasm: {{component: WASM, args: [echo, ran]}}\n  container:\n    image: {IMAGE}\n    command: [probe, echo, ran]\n"),
    );
}

fn ran(run: &RunRecord, name: &str) -> (String, String) {
    let t = task(run, name);
    assert_eq!(t.state, TaskState::Succeeded, "{name}: {:?}", t.error);
    (
        t.implementation.clone().unwrap(),
        t.implementation_reason.clone().unwrap(),
    )
}

#[tokio::test]
async fn the_record_says_which_implementation_ran_and_why() {
    let env = env();
    both(&env, "both", sluice_test_artifacts::PROBE);
    both(&env, "broken", "/nonexistent/probe.wasm");
    let run = env
        .run(
            "name: p
tasks:
  default: {component: both.yaml}
  big: {component: both.yaml, resources: {memory: 8Gi}}
  prefers: {component: both.yaml, prefer: container}
  broken: {component: broken.yaml}
",
        )
        .await;
    assert_eq!(
        ran(&run, "default"),
        ("wasm command".into(), "wasm runs by default".into())
    );
    assert_eq!(
        ran(&run, "big"),
        (
            format!("container {IMAGE}"),
            "the task asks for 8Gi of memory, more than a wasm step can have (4Gi)".into()
        )
    );
    assert_eq!(
        ran(&run, "prefers"),
        (
            format!("container {IMAGE}"),
            "the pipeline prefers container for this task".into()
        )
    );
    let (imp, why) = ran(&run, "broken");
    assert_eq!(imp, format!("container {IMAGE}"));
    assert!(
        why.starts_with("the wasm implementation cannot be loaded: cannot read wasm component /nonexistent/probe.wasm"),
        "{why}"
    );

    let policy = Policy {
        prefer: Some(Prefer::Container),
        prefer_tasks: [("wasm".to_owned(), Prefer::Wasm)].into(),
        ..Policy::default()
    };
    let env = Env::with_policy(policy);
    both(&env, "both", sluice_test_artifacts::PROBE);
    let run = env
        .run("name: p\ntasks:\n  wasm: {component: both.yaml}\n  other: {component: both.yaml}\n")
        .await;
    assert_eq!(
        ran(&run, "wasm"),
        ("wasm command".into(), "--prefer wasm=wasm".into())
    );
    assert_eq!(
        ran(&run, "other"),
        (format!("container {IMAGE}"), "--prefer container".into())
    );
}

#[tokio::test]
async fn the_process_runner_runs_the_command_on_the_host() {
    let env = Env::with_policy(Policy {
        runner: ContainerRunner::Process,
        ..Policy::default()
    });
    let probe = sluice_test_artifacts::PROBE_NATIVE;
    env.component(
        "host",
        "",
        &format!("inputs:\n- {{name: in}}\noutputs:\n- {{name: out}}\nimplementation:\n  container:\n    image: {IMAGE}\n    command: [{probe}, copy, {{inputPath: in}}, {{outputPath: out}}]\n"),
    );
    env.component("slow", "", &format!("implementation:\n  container:\n    image: {IMAGE}\n    command: [{probe}, sleep, '60000']\n"));
    let run = env
        .run("name: p\ntasks:\n  h: {component: host.yaml, inputs: {in: text}}\n  s: {component: slow.yaml, timeout: 300ms}\n")
        .await;
    let (imp, _) = ran(&run, "h");
    assert_eq!(imp, format!("process {probe}"));
    assert_eq!(
        env.store.read(&task(&run, "h").outputs[0].digest).unwrap(),
        b"text"
    );
    assert_eq!(
        task(&run, "s").error.as_deref(),
        Some("timed out after 300ms")
    );
}
