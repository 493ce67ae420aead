//! Typed steps through the `sluice:pipeline` interface, the compile cache, and scheduling
//! with real wasm components.

use sluice_runtime::events::Event;
use sluice_runtime::exec::{Executor, Target};
use sluice_runtime::schedule::Options;
use sluice_runtime::spec::Component;
use sluice_runtime::store::{RunState, TaskState};

use crate::support::{Env, cancelled_after, task};

const TYPED: &str = "
inputs:
- {name: mode, type: String}
- {name: count, type: Integer, optional: true}
- {name: ratio, type: Float, optional: true}
- {name: flag, type: Boolean, optional: true}
- {name: config, type: JsonObject, optional: true}
- {name: data, type: Dataset, optional: true}
outputs:
- {name: mode, type: String}
- {name: count, type: Integer}
- {name: ratio, type: Float}
- {name: flag, type: Boolean}
- {name: config, type: JsonObject}
implementation:
  wasm: {component: WASM}
";

const TYPED_COPY: &str = "
inputs:
- {name: mode, type: String}
- {name: data, type: Dataset}
outputs:
- {name: copy, type: Dataset}
implementation:
  wasm: {component: WASM}
";

const TYPED_PLAIN: &str = "
inputs:
- {name: mode, type: String}
implementation:
  wasm: {component: WASM}
";

#[tokio::test]
async fn typed_parameters_go_in_and_come_back_typed() {
    let env = Env::new();
    env.component("typed", sluice_test_artifacts::TYPED_PROBE, TYPED);
    let run = env
        .run(
            "name: p\ntasks:\n  t:\n    component: typed.yaml\n    inputs: {mode: echo, count: 7, ratio: 0.5, flag: true, config: {value: {a: 1}}}\n",
        )
        .await;
    let t = task(&run, "t");
    assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.error);
    assert_eq!(t.implementation.as_deref(), Some("wasm step"));
    let value = |name: &str| {
        t.outputs
            .iter()
            .find(|o| o.name == name)
            .unwrap()
            .value
            .clone()
            .unwrap()
    };
    assert_eq!(value("mode"), "echo");
    assert_eq!(value("count"), "7");
    assert_eq!(value("ratio"), "0.5");
    assert_eq!(value("flag"), "True");
    assert_eq!(value("config"), r#"{"a":1}"#);
    assert_eq!(t.metrics["param_count"], 5.0);
}

#[tokio::test]
async fn typed_artifacts_are_paths_in_the_sandbox() {
    let env = Env::new();
    env.component("copy", sluice_test_artifacts::TYPED_PROBE, TYPED_COPY);
    let run = env
        .run("name: p\ntasks:\n  t: {component: copy.yaml, inputs: {mode: copy, data: \"a,b\\n1,2\\n\"}}\n")
        .await;
    let t = task(&run, "t");
    assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.error);
    assert_eq!(env.store.read(&t.outputs[0].digest).unwrap(), b"a,b\n1,2\n");
    let data = t.inputs.iter().find(|i| i.name == "data").unwrap();
    assert_eq!(t.outputs[0].digest, data.digest);
}

#[tokio::test]
async fn host_imports_report_logs_metrics_and_progress() {
    let env = Env::new();
    env.component("log", sluice_test_artifacts::TYPED_PROBE, TYPED_PLAIN);
    let run = env
        .run("name: p\ntasks:\n  t: {component: log.yaml, inputs: {mode: log}}\n")
        .await;
    let t = task(&run, "t");
    assert_eq!(t.state, TaskState::Succeeded, "{:?}", t.error);
    assert_eq!(t.metrics["answer"], 42.0);
    let logs = env.logs(&run, "t");
    assert!(logs.contains("[warn] typed-probe: warn line"), "{logs}");
    let events = env.events.0.lock().unwrap();
    let progress: Vec<(u64, u64)> = events
        .iter()
        .filter_map(|e| match e {
            Event::TaskProgress { done, total, .. } => Some((*done, *total)),
            _ => None,
        })
        .collect();
    assert_eq!(progress, [(1, 2), (2, 2)]);
    assert!(events.iter().any(
        |e| matches!(e, Event::TaskMetric { name, value, .. } if name == "answer" && *value == 42.0)
    ));
    assert!(events.iter().any(
        |e| matches!(e, Event::TaskLog { line, .. } if line == "[error] typed-probe: error line")
    ));
}

#[tokio::test]
async fn step_errors_become_task_errors() {
    let env = Env::new();
    env.component("plain", sluice_test_artifacts::TYPED_PROBE, TYPED_PLAIN);
    let run = env
        .run(
            "name: p
tasks:
  failing: {component: plain.yaml, inputs: {mode: fail}, retries: {limit: 2, backoff: 10ms}}
  invalid: {component: plain.yaml, inputs: {mode: invalid}, retries: {limit: 2, backoff: 10ms}}
  trapping: {component: plain.yaml, inputs: {mode: trap}}
",
        )
        .await;
    let failing = task(&run, "failing");
    assert_eq!(failing.attempts, 3, "a failed step is retried");
    assert_eq!(
        failing.error.as_deref(),
        Some("deliberate failure (after 3 attempts)")
    );
    let invalid = task(&run, "invalid");
    assert_eq!(invalid.attempts, 1, "invalid input is never retried");
    assert_eq!(
        invalid.error.as_deref(),
        Some("invalid input: deliberate invalid input")
    );
    let trap = task(&run, "trapping").error.clone().unwrap();
    assert!(trap.starts_with("trapped: "), "{trap}");
}

#[tokio::test]
async fn the_second_executor_never_compiles_and_a_run_loads_each_component_once() {
    let first = Env::new();
    first.probe("noop", "[noop]", "");
    let pipeline = "name: p\ntasks:\n  a: {component: noop.yaml}\n  b: {component: noop.yaml}\n  c: {component: noop.yaml, after: [a, b]}\n";
    first.run(pipeline).await;
    let stats = *first.compiled.lock().unwrap();
    assert_eq!(
        stats.hits + stats.misses,
        1,
        "three tasks of one component load it once: {stats:?}"
    );

    let second = Env::new();
    second.probe("noop", "[noop]", "");
    let run = second.run(pipeline).await;
    assert_eq!(run.state, RunState::Succeeded);
    let stats = *second.compiled.lock().unwrap();
    assert_eq!(
        (stats.hits, stats.misses),
        (1, 0),
        "the second executor compiled again"
    );
}

#[tokio::test]
async fn components_that_cannot_run_are_refused_before_the_run() {
    let env = Env::new();
    let core = env.path("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    for (wasm, expected) in [
        (
            core.to_str().unwrap(),
            "is not a valid component: expected a WebAssembly component",
        ),
        (
            "/nonexistent/x.wasm",
            "cannot read wasm component /nonexistent/x.wasm",
        ),
    ] {
        let path = env.component("bad", wasm, "implementation:\n  wasm: {component: WASM}\n");
        let component = Component::load(&path).unwrap();
        let resources = Default::default();
        let target = Target {
            task: "t",
            component: &component,
            resources: &resources,
            prefer: None,
        };
        let err = env.executor.prepare(target).await.unwrap_err().to_string();
        assert!(err.contains(expected), "{err}");
    }
}

#[tokio::test]
async fn independent_wasm_tasks_overlap() {
    let env = Env::new();
    env.probe("sleep", "[sleep, '400']", "");
    let run = env
        .run("name: p\ntasks:\n  a: {component: sleep.yaml}\n  b: {component: sleep.yaml}\n")
        .await;
    let (a, b) = (task(&run, "a"), task(&run, "b"));
    let ms = |t: Option<jiff::Timestamp>| t.unwrap().as_millisecond();
    assert!(
        ms(a.started_at) < ms(b.ended_at) && ms(b.started_at) < ms(a.ended_at),
        "a {:?}..{:?}, b {:?}..{:?}",
        a.started_at,
        a.ended_at,
        b.started_at,
        b.ended_at
    );
}

#[tokio::test]
async fn data_flows_between_wasm_tasks() {
    let env = Env::new();
    env.probe(
        "write",
        "[write, {outputPath: out}, hello]",
        "outputs:\n- {name: out}",
    );
    env.probe(
        "copy",
        "[copy, {inputPath: in}, {outputPath: out}]",
        "inputs:\n- {name: in}\noutputs:\n- {name: out}",
    );
    let run = env
        .run("name: p\ntasks:\n  w: {component: write.yaml}\n  c: {component: copy.yaml, inputs: {in: {from: w.out}}}\n")
        .await;
    assert_eq!(run.state, RunState::Succeeded);
    let out = &task(&run, "c").outputs[0];
    assert_eq!(env.store.read(&out.digest).unwrap(), b"hello");
    assert_eq!(out.digest, task(&run, "w").outputs[0].digest);
}

#[tokio::test]
async fn cancelling_interrupts_a_running_component() {
    let env = Env::new();
    env.probe("spin", "[spin]", "");
    env.probe("after", "[noop]", "");
    let cancel = cancelled_after(300);
    let started = std::time::Instant::now();
    let run = env
        .run_with(
            "name: p\ntasks:\n  s: {component: spin.yaml}\n  t: {component: after.yaml, after: [s]}\n",
            Options { parallelism: 2, ..crate::support::no_cache() },
            cancel,
        )
        .await;
    assert!(started.elapsed().as_secs() < 5);
    assert_eq!(run.state, RunState::Cancelled);
    assert_eq!(task(&run, "s").state, TaskState::Cancelled);
    assert_eq!(task(&run, "t").state, TaskState::Cancelled);
}

#[tokio::test]
async fn a_folder_output_flows_to_the_next_task() {
    let env = Env::new();
    env.probe(
        "save",
        "[tree, {outputPath: model}, weights, '0.5']",
        "outputs:\n- {name: model, type: Model}",
    );
    env.probe(
        "load",
        "[read, {concat: [{inputPath: model}, /weights]}]",
        "inputs:\n- {name: model, type: Model}",
    );
    let run = env
        .run("name: p\ntasks:\n  save: {component: save.yaml}\n  load: {component: load.yaml, inputs: {model: {from: save.model}}}\n")
        .await;
    assert_eq!(
        run.state,
        RunState::Succeeded,
        "{:?}",
        task(&run, "load").error
    );
    assert_eq!(task(&run, "save").outputs[0].size, 3);
    assert!(env.logs(&run, "load").contains("0.5"));
}
