//! Scheduler behaviour against a scripted executor: concurrency, failure propagation,
//! retries, timeouts, cancellation, data passing, and the groups of a lowered plan
//! (loops, conditions, tasks that run whatever became of their upstream).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::future::BoxFuture;
use indexmap::IndexMap;

use super::*;
use crate::events::Quiet;
use crate::exec::{Completion, Failure, PrepareError, Report, Target};
use crate::plan::{Group, Iteration, Node, Source, Trigger};
use crate::spec::PipelineFile;

#[derive(Clone, Debug)]
enum Step {
    /// Sleep, then write `out` with the task name (and any input's content appended).
    Succeed(u64),
    Fail,
    Invalid,
    /// Wait until cancelled.
    Hang,
    /// Succeed without writing the declared output.
    Forget,
}

#[derive(Default)]
struct Script {
    steps: Mutex<HashMap<String, Vec<Step>>>,
    spans: Mutex<Vec<(String, Instant, Instant)>>,
    attempts: Mutex<HashMap<String, u32>>,
}

impl Script {
    fn new(steps: &[(&str, &[Step])]) -> Arc<Script> {
        Arc::new(Script {
            steps: Mutex::new(
                steps
                    .iter()
                    .map(|(t, s)| (t.to_string(), s.to_vec()))
                    .collect(),
            ),
            ..Default::default()
        })
    }

    fn span(&self, task: &str) -> (Instant, Instant) {
        let spans = self.spans.lock().unwrap();
        let s = spans.iter().find(|(t, ..)| t == task).expect("task ran");
        (s.1, s.2)
    }
}

struct Fake(Arc<Script>);

impl Executor for Fake {
    fn prepare<'a>(&'a self, _: Target<'a>) -> BoxFuture<'a, Result<Prepared, PrepareError>> {
        Box::pin(async {
            Ok(Prepared {
                kind: crate::exec::Kind::Wasm,
                implementation: "fake".into(),
                reason: "scripted".into(),
                executable_digest: None,
                transform: None,
            })
        })
    }

    fn execute(&self, inv: Invocation) -> BoxFuture<'_, Report> {
        Box::pin(async move {
            let n = {
                let mut a = self.0.attempts.lock().unwrap();
                let n = a.entry(inv.task.clone()).or_default();
                *n += 1;
                *n
            };
            let step = {
                let steps = self.0.steps.lock().unwrap();
                let list = steps.get(&inv.task).cloned().unwrap_or_default();
                list.get(n as usize - 1)
                    .or(list.last())
                    .cloned()
                    .unwrap_or(Step::Succeed(0))
            };
            let start = Instant::now();
            let result = match step {
                Step::Succeed(ms) => {
                    tokio::time::sleep(Duration::from_millis(ms)).await;
                    let mut content = inv.task.clone();
                    if inv.inputs.contains_key("in") {
                        content.push('<');
                        content
                            .push_str(&std::fs::read_to_string(inv.dir.input_file("in")).unwrap());
                    }
                    std::fs::write(inv.dir.output_file("out"), content).unwrap();
                    Ok(Completion {
                        metrics: [("n".to_owned(), n as f64)].into(),
                        ..Default::default()
                    })
                }
                Step::Forget => Ok(Completion::default()),
                Step::Fail => Err(Failure::failed(format!("attempt {n} failed"))),
                Step::Invalid => Err(Failure {
                    kind: FailureKind::InvalidInput,
                    message: "bad input".into(),
                }),
                Step::Hang => {
                    inv.cancel.cancelled().await;
                    Err(Failure::interrupted("interrupted"))
                }
            };
            self.0
                .spans
                .lock()
                .unwrap()
                .push((inv.task.clone(), start, Instant::now()));
            Report {
                ran_on: None,
                result,
                logs: Vec::new(),
            }
        })
    }
}

const COMPONENT: &str = r#"
name: fake
inputs:
- {name: in, optional: true}
outputs:
- {name: out}
implementation:
  wasm: {component: fake.wasm}
"#;

struct Harness {
    _dir: tempfile::TempDir,
    store: Arc<Store>,
    plan: Arc<Plan>,
}

fn harness(tasks: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("c.yaml"), COMPONENT).unwrap();
    let path = dir.path().join("p.yaml");
    std::fs::write(&path, format!("name: p\ntasks:\n{tasks}")).unwrap();
    let file = PipelineFile::load(&path).unwrap();
    let plan = Arc::new(Plan::build(&file, &[]).unwrap());
    let store = Arc::new(Store::open(&dir.path().join("home")).unwrap());
    Harness {
        _dir: dir,
        store,
        plan,
    }
}

impl Harness {
    async fn run(&self, script: &Arc<Script>, options: Options) -> crate::store::RunRecord {
        self.run_with(script, options, CancellationToken::new())
            .await
    }

    async fn run_with(
        &self,
        script: &Arc<Script>,
        options: Options,
        cancel: CancellationToken,
    ) -> crate::store::RunRecord {
        let scheduler = Scheduler {
            store: self.store.clone(),
            executor: Arc::new(Fake(script.clone())),
            observer: Arc::new(Quiet),
            options,
            cancel,
        };
        let outcome = scheduler
            .run(self.plan.clone(), RunKind::Pipeline)
            .await
            .unwrap();
        let record = self.store.run(&outcome.run_id).unwrap();
        assert_eq!(record.state, outcome.state);
        record
    }
}

/// Options for these tests: their tasks are often alike (the same component, the same
/// inputs), which the task cache would take from one another; the cache has its own test.
fn opts(parallelism: usize) -> Options {
    Options {
        parallelism,
        caching: Caching {
            enabled: false,
            max_staleness: None,
        },
        ..Options::default()
    }
}

fn task<'r>(r: &'r crate::store::RunRecord, name: &str) -> &'r crate::store::TaskRecord {
    r.tasks.iter().find(|t| t.name == name).unwrap()
}

const DIAMOND: &str = "  a: {component: c.yaml}
  b: {component: c.yaml, inputs: {in: {from: a.out}}}
  c: {component: c.yaml, inputs: {in: {from: a.out}}}
  d: {component: c.yaml, inputs: {in: {from: b.out}}, after: [c]}
";

#[tokio::test]
async fn independent_branches_overlap_and_data_flows() {
    let h = harness(DIAMOND);
    let script = Script::new(&[("b", &[Step::Succeed(300)]), ("c", &[Step::Succeed(300)])]);
    let r = h.run(&script, opts(2)).await;
    assert_eq!(r.state, RunState::Succeeded);
    let (b0, b1) = script.span("b");
    let (c0, c1) = script.span("c");
    assert!(b0 < c1 && c0 < b1, "b and c ran one after the other");
    let (d0, _) = script.span("d");
    assert!(d0 >= b1 && d0 >= c1, "d started before its upstream ended");
    let out = &task(&r, "d").outputs[0];
    assert_eq!(h.store.read(&out.digest).unwrap(), b"d<b<a");
    assert_eq!(
        task(&r, "d").inputs[0].digest,
        task(&r, "b").outputs[0].digest
    );
    assert_eq!(task(&r, "a").metrics["n"], 1.0);
    assert!(
        !h.store.home().join("runs").join(&r.id).exists(),
        "successful attempts' folders outlived the run"
    );
}

#[tokio::test]
async fn parallelism_one_runs_one_at_a_time() {
    let h = harness(DIAMOND);
    let script = Script::new(&[("b", &[Step::Succeed(100)]), ("c", &[Step::Succeed(100)])]);
    h.run(&script, opts(1)).await;
    let (b0, b1) = script.span("b");
    let (c0, c1) = script.span("c");
    assert!(b1 <= c0 || c1 <= b0, "b and c overlapped");
}

const BRANCHES: &str = "  a: {component: c.yaml}
  b: {component: c.yaml, inputs: {in: {from: a.out}}}
  c: {component: c.yaml, inputs: {in: {from: b.out}}}
  x: {component: c.yaml}
";

#[tokio::test]
async fn a_failure_skips_downstream_and_stops_new_work() {
    let h = harness(BRANCHES);
    let script = Script::new(&[("a", &[Step::Fail])]);
    let r = h.run(&script, opts(1)).await;
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(task(&r, "a").state, TaskState::Failed);
    assert_eq!(task(&r, "a").error.as_deref(), Some("attempt 1 failed"));
    assert_eq!(task(&r, "b").state, TaskState::Skipped);
    assert_eq!(
        task(&r, "c").error.as_deref(),
        Some("skipped: upstream task 'a' failed")
    );
    assert_eq!(task(&r, "c").state, TaskState::Skipped);
    assert_eq!(
        task(&r, "x").state,
        TaskState::Skipped,
        "x started after a failed"
    );
    assert!(
        task(&r, "x")
            .error
            .as_deref()
            .unwrap()
            .contains("the run stopped after 'a' failed")
    );
    assert_eq!(task(&r, "x").attempts, 0);
    let kept = h.store.home().join("runs").join(&r.id).join("a").join("1");
    assert!(
        kept.join("outputs").is_dir(),
        "a failed attempt's folder is kept for debugging"
    );
}

#[tokio::test]
async fn keep_going_runs_independent_tasks() {
    let h = harness(BRANCHES);
    let script = Script::new(&[("a", &[Step::Fail])]);
    let r = h
        .run(
            &script,
            Options {
                keep_going: true,
                ..opts(1)
            },
        )
        .await;
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(task(&r, "b").state, TaskState::Skipped);
    assert_eq!(
        task(&r, "b").error.as_deref(),
        Some("skipped: upstream task 'a' failed")
    );
    assert_eq!(task(&r, "x").state, TaskState::Succeeded);
}

#[tokio::test]
async fn retries_are_counted_and_recorded() {
    let h = harness("  a: {component: c.yaml, retries: {limit: 2, backoff: 10ms}}\n");
    let script = Script::new(&[("a", &[Step::Fail, Step::Fail, Step::Succeed(0)])]);
    let r = h.run(&script, opts(1)).await;
    let a = task(&r, "a");
    assert_eq!(a.state, TaskState::Succeeded);
    assert_eq!(a.attempts, 3);
    let states: Vec<TaskState> = a.attempt_history.iter().map(|x| x.state).collect();
    assert_eq!(
        states,
        [TaskState::Failed, TaskState::Failed, TaskState::Succeeded]
    );
    assert_eq!(
        a.attempt_history[1].error.as_deref(),
        Some("attempt 2 failed")
    );

    let h = harness("  a: {component: c.yaml, retries: {limit: 1, backoff: 10ms}}\n");
    let script = Script::new(&[("a", &[Step::Fail])]);
    let r = h.run(&script, opts(1)).await;
    assert_eq!(task(&r, "a").attempts, 2);
    assert_eq!(
        task(&r, "a").error.as_deref(),
        Some("attempt 2 failed (after 2 attempts)")
    );
}

#[tokio::test]
async fn invalid_input_is_not_retried() {
    let h = harness("  a: {component: c.yaml, retries: {limit: 3, backoff: 10ms}}\n");
    let script = Script::new(&[("a", &[Step::Invalid])]);
    let r = h.run(&script, opts(1)).await;
    assert_eq!(task(&r, "a").attempts, 1);
    assert_eq!(task(&r, "a").error.as_deref(), Some("bad input"));
}

#[tokio::test]
async fn a_timeout_interrupts_the_attempt_and_may_be_retried() {
    let h =
        harness("  a: {component: c.yaml, timeout: 100ms, retries: {limit: 1, backoff: 10ms}}\n");
    let script = Script::new(&[("a", &[Step::Hang, Step::Succeed(0)])]);
    let r = h.run(&script, opts(1)).await;
    let a = task(&r, "a");
    assert_eq!(a.state, TaskState::Succeeded);
    assert_eq!(
        a.attempt_history[0].error.as_deref(),
        Some("timed out after 100ms")
    );

    let h = harness("  a: {component: c.yaml, timeout: 100ms}\n");
    let script = Script::new(&[("a", &[Step::Hang])]);
    let r = h.run(&script, opts(1)).await;
    assert_eq!(task(&r, "a").state, TaskState::Failed);
    assert_eq!(
        task(&r, "a").error.as_deref(),
        Some("timed out after 100ms")
    );
}

#[tokio::test]
async fn a_missing_output_fails_the_task() {
    let h = harness("  a: {component: c.yaml}\n");
    let script = Script::new(&[("a", &[Step::Forget])]);
    let r = h.run(&script, opts(1)).await;
    assert_eq!(
        task(&r, "a").error.as_deref(),
        Some("output 'out' was not written")
    );
}

#[tokio::test]
async fn cancelling_stops_running_work_and_records_the_run_as_cancelled() {
    let h = harness(BRANCHES);
    let script = Script::new(&[("a", &[Step::Hang])]);
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(100)).await;
        trigger.cancel();
    });
    let r = h.run_with(&script, opts(2), cancel).await;
    assert_eq!(r.state, RunState::Cancelled);
    assert_eq!(task(&r, "a").state, TaskState::Cancelled);
    assert_eq!(task(&r, "b").state, TaskState::Cancelled);
    assert_eq!(
        task(&r, "x").state,
        TaskState::Succeeded,
        "x ran beside a before the cancel"
    );
}

/// The task cache: a task whose component, executable and inputs match an earlier
/// succeeded task's takes its outputs instead of running, unless the run or the task
/// says no, the outputs are older than the staleness bound, or their bytes changed.
#[tokio::test]
async fn the_task_cache_takes_identical_earlier_tasks_outputs() {
    use std::os::unix::fs::PermissionsExt;

    let h = harness(
        "  a: {component: c.yaml}
  b: {component: c.yaml, inputs: {in: {from: a.out}}}
  c: {component: c.yaml, inputs: {in: x}, cache: false}
",
    );
    let script = Script::new(&[]);
    let cached = Options {
        caching: Caching::default(),
        ..opts(2)
    };
    let attempts = |script: &Script, task: &str| script.attempts.lock().unwrap()[task];

    let first = h.run(&script, cached.clone()).await;
    assert_eq!(first.state, RunState::Succeeded);
    let second = h.run(&script, cached.clone()).await;
    assert_eq!(second.state, RunState::Succeeded);
    for name in ["a", "b"] {
        let t = task(&second, name);
        assert_eq!(t.implementation.as_deref(), Some("cache"), "{name}");
        assert_eq!(
            t.cached_from.as_deref(),
            Some(format!("{}/{name}", first.id).as_str())
        );
        assert_eq!(t.outputs, task(&first, name).outputs);
        assert_eq!(attempts(&script, name), 1, "{name}");
    }
    // `cache: false` on the task runs it every time.
    assert_eq!(attempts(&script, "c"), 2);
    assert!(task(&second, "c").cached_from.is_none());

    // The run says no (`--no-cache`): everything runs.
    let third = h.run(&script, opts(2)).await;
    assert!(third.tasks.iter().all(|t| t.cached_from.is_none()));
    assert_eq!(attempts(&script, "a"), 2);

    // Outputs older than the staleness bound are not taken.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let fresh_only = Options {
        caching: Caching {
            enabled: true,
            max_staleness: Some(Duration::from_millis(10)),
        },
        ..opts(2)
    };
    let fourth = h.run(&script, fresh_only).await;
    assert!(fourth.tasks.iter().all(|t| t.cached_from.is_none()));
    assert_eq!(attempts(&script, "a"), 3);

    // An output whose stored bytes changed is never taken: the task runs again.
    let digest = &task(&fourth, "a").outputs[0].digest;
    let path = h.store.artifact_path(digest).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&path, "changed").unwrap();
    let fifth = h.run(&script, cached).await;
    assert!(task(&fifth, "a").cached_from.is_none());
    assert_eq!(attempts(&script, "a"), 4);
    assert_eq!(fifth.state, RunState::Succeeded);
}

/// A Sluice plan's tasks put into groups by hand (`edit`), as a KFP plan has them.
fn grouped(tasks: &str, edit: impl FnOnce(&mut Plan)) -> Harness {
    let mut h = harness(tasks);
    let mut plan = (*h.plan).clone();
    edit(&mut plan);
    h.plan = Arc::new(plan);
    h
}

fn index(plan: &Plan, name: &str) -> usize {
    plan.tasks.iter().position(|t| t.name == name).unwrap()
}

fn group(name: &str) -> Group {
    Group {
        name: name.into(),
        group: None,
        upstream: Vec::new(),
        trigger: Trigger::AllSucceeded,
        inputs: IndexMap::new(),
        condition: None,
        iteration: None,
    }
}

/// A loop over the JSON list `items`, at most `parallelism` iterations at once.
fn looping(items: &str, parallelism: Option<usize>) -> Group {
    Group {
        iteration: Some(Iteration {
            items: Source::Constant(items.into()),
            parallelism,
        }),
        ..group("loop")
    }
}

const GROUPED: &str = "  a: {component: c.yaml}
  b: {component: c.yaml}
  c: {component: c.yaml}
  d: {component: c.yaml, inputs: {in: {from: a.out}}}
  e: {component: c.yaml}
";

#[tokio::test]
async fn a_loop_runs_its_body_once_per_item_and_a_false_condition_runs_nothing() {
    let h = grouped(GROUPED, |plan| {
        let (b, c, d, e) = (
            index(plan, "b"),
            index(plan, "c"),
            index(plan, "d"),
            index(plan, "e"),
        );
        let a = index(plan, "a");
        plan.groups = vec![
            looping(r#"["x", "y", "z"]"#, Some(1)),
            Group {
                inputs: [("v".to_owned(), Source::Constant("yes".into()))].into(),
                condition: Some("inputs.parameter_values['v'] == 'no'".into()),
                ..group("no")
            },
            Group {
                inputs: [("v".to_owned(), Source::Constant("yes".into()))].into(),
                condition: Some("inputs.parameter_values['v'] == 'yes'".into()),
                upstream: vec![Node::Task(a)],
                ..group("yes")
            },
        ];
        plan.tasks[b].group = Some(0);
        plan.tasks[b]
            .inputs
            .insert("in".into(), Source::Item { group: 0 });
        plan.tasks[c].group = Some(1);
        // A task in a branch reads an output of the pipeline's own DAG, and one after
        // the branch reads the branch's task.
        plan.tasks[e].group = Some(2);
        plan.tasks[e].inputs.insert(
            "in".into(),
            Source::Output {
                task: a,
                output: "out".into(),
            },
        );
        plan.tasks[d].after_groups = vec![0, 1, 2];
        plan.tasks[d].inputs.insert(
            "in".into(),
            Source::Output {
                task: e,
                output: "out".into(),
            },
        );
    });
    let script = Script::new(&[("b.0", &[Step::Succeed(50)]), ("b.1", &[Step::Succeed(50)])]);
    let r = h.run(&script, opts(4)).await;
    assert_eq!(r.state, RunState::Succeeded);
    for (i, item) in ["x", "y", "z"].iter().enumerate() {
        let t = task(&r, &format!("b.{i}"));
        assert_eq!(t.state, TaskState::Succeeded);
        let out = h.store.read(&t.outputs[0].digest).unwrap();
        assert_eq!(out, format!("b.{i}<{item}").as_bytes());
    }
    // A parallelism of 1 runs the iterations one after the other.
    let (_, end0) = script.span("b.0");
    let (start1, end1) = script.span("b.1");
    let (start2, end2) = script.span("b.2");
    assert!(end0 <= start1 && end1 <= start2, "iterations overlapped");
    let c = task(&r, "c");
    assert_eq!(c.state, TaskState::Skipped);
    assert_eq!(
        c.error.as_deref(),
        Some("not run: condition `inputs.parameter_values['v'] == 'no'` is false")
    );
    assert!(script.spans.lock().unwrap().iter().all(|(t, ..)| t != "c"));
    let d = task(&r, "d");
    assert_eq!(h.store.read(&d.outputs[0].digest).unwrap(), b"d<e<a");
    assert!(
        script.span("d").0 >= end2,
        "d started before the loop ended"
    );
}

#[tokio::test]
async fn a_failed_iteration_fails_its_loop_and_a_task_after_it_sees_how_it_ended() {
    let h = grouped(GROUPED, |plan| {
        let (b, c, d) = (index(plan, "b"), index(plan, "c"), index(plan, "d"));
        plan.groups = vec![looping("[1, 2]", None)];
        plan.tasks[b].group = Some(0);
        plan.tasks[c].after_groups = vec![0];
        plan.tasks[d].after_groups = vec![0];
        plan.tasks[d].trigger = Trigger::AllEnded;
        plan.tasks[d]
            .inputs
            .insert("in".into(), Source::FinalStatus(Node::Group(0)));
    });
    let script = Script::new(&[("b.1", &[Step::Fail])]);
    let r = h.run(&script, opts(4)).await;
    assert_eq!(r.state, RunState::Failed);
    assert_eq!(task(&r, "b.0").state, TaskState::Succeeded);
    assert_eq!(task(&r, "b.1").state, TaskState::Failed);
    let c = task(&r, "c");
    assert_eq!(c.state, TaskState::Skipped);
    assert_eq!(
        c.error.as_deref(),
        Some("skipped: upstream task 'loop' failed")
    );
    // Run whatever became of the loop, and told.
    let d = task(&r, "d");
    assert_eq!(d.state, TaskState::Succeeded);
    let out = String::from_utf8(h.store.read(&d.outputs[0].digest).unwrap()).unwrap();
    let status: serde_json::Value = serde_json::from_str(out.strip_prefix("d<").unwrap()).unwrap();
    assert_eq!(status["state"], "FAILED");
    assert_eq!(status["pipelineTaskName"], "loop");
    assert_eq!(status["error"]["message"], "task 'b.1': attempt 1 failed");
}

#[tokio::test]
async fn a_loop_without_a_list_fails_and_records_its_tasks_once() {
    let h = grouped(GROUPED, |plan| {
        let b = index(plan, "b");
        plan.groups = vec![looping("{\"not\": \"a list\"}", None)];
        plan.tasks[b].group = Some(0);
    });
    let script = Script::new(&[]);
    let r = h.run(&script, opts(4)).await;
    assert_eq!(r.state, RunState::Failed);
    let b = task(&r, "b");
    assert_eq!(b.state, TaskState::Skipped);
    assert_eq!(
        b.error.as_deref(),
        Some(
            r#"not run: loop 'loop' cannot start: the loop's items are not a list: {"not": "a list"}"#
        )
    );
}

/// Tasks alike in component and inputs are still different tasks: a task whose caching is
/// off is no source for another's cache, and a resumed run gives each task its own
/// earlier outputs, never a look-alike's.
#[tokio::test]
async fn look_alike_tasks_keep_their_own_outputs_through_the_cache_and_resume() {
    let h = harness(
        "  a: {component: c.yaml, cache: false}
  b: {component: c.yaml, after: [a]}
  c: {component: c.yaml, inputs: {in: x}, after: [b]}
",
    );
    let cached = Options {
        caching: Caching::default(),
        ..opts(1)
    };
    let script = Script::new(&[("c", &[Step::Invalid, Step::Succeed(0)])]);
    let first = h.run(&script, cached.clone()).await;
    assert_eq!(first.state, RunState::Failed);
    // `b` ran: `a`'s outputs are not in the cache, though `b` has `a`'s key.
    let b = task(&first, "b");
    assert!(b.cached_from.is_none(), "{b:?}");
    assert_eq!(h.store.read(&b.outputs[0].digest).unwrap(), b"b");

    let resumed = h
        .run(
            &script,
            Options {
                resumes: Some(first.id.clone()),
                ..cached
            },
        )
        .await;
    assert_eq!(resumed.state, RunState::Succeeded);
    for name in ["a", "b"] {
        let t = task(&resumed, name);
        assert_eq!(
            t.cached_from.as_deref(),
            Some(format!("{}/{name}", first.id).as_str()),
            "{name}"
        );
        assert_eq!(h.store.read(&t.outputs[0].digest).unwrap(), name.as_bytes());
    }
    assert_eq!(task(&resumed, "c").state, TaskState::Succeeded);
}

/// A run placeholder names the task as the pipeline does: a loop's iterations all have
/// their task's name, as KFP's backend gives it.
#[tokio::test]
async fn a_task_in_a_loop_is_named_by_its_task_in_run_placeholders() {
    let h = grouped(GROUPED, |plan| {
        let b = index(plan, "b");
        plan.groups = vec![looping("[1, 2]", None)];
        plan.tasks[b].group = Some(0);
        plan.tasks[b].inputs.insert(
            "in".into(),
            Source::RunText("{{$.pipeline_task_name}}".into()),
        );
    });
    let r = h.run(&Script::new(&[]), opts(4)).await;
    assert_eq!(r.state, RunState::Succeeded);
    for i in 0..2 {
        let t = task(&r, &format!("b.{i}"));
        let out = h.store.read(&t.outputs[0].digest).unwrap();
        assert_eq!(out, format!("b.{i}<b").as_bytes());
    }
}

/// `{{$.pipeline_root}}` is the pipeline root the pipeline was compiled with, or else the
/// folder the run publishes its artifacts in; never empty (a path built on it would
/// start at `/`).
#[tokio::test]
async fn the_pipeline_root_is_the_compiled_one_or_the_runs_artifacts() {
    for compiled in [None, Some("minio://mlpipeline/v2/artifacts")] {
        let h = grouped(GROUPED, |plan| {
            let b = index(plan, "b");
            plan.pipeline_root = compiled.map(str::to_owned);
            plan.tasks[b]
                .inputs
                .insert("in".into(), Source::RunText("{{$.pipeline_root}}".into()));
        });
        let r = h.run(&Script::new(&[]), opts(4)).await;
        assert_eq!(r.state, RunState::Succeeded);
        let out = h.store.read(&task(&r, "b").outputs[0].digest).unwrap();
        let root = compiled.map_or_else(
            || h.store.run_artifacts(&r.id).display().to_string(),
            str::to_owned,
        );
        assert_eq!(String::from_utf8(out).unwrap(), format!("b<{root}"));
    }
}

/// A task taken from the cache names the task that made the outputs, even when the
/// newest task with its key had itself taken them from the cache.
#[tokio::test]
async fn the_cache_names_the_task_that_made_the_outputs() {
    let h = harness("  a: {component: c.yaml}\n");
    let script = Script::new(&[]);
    let cached = Options {
        caching: Caching::default(),
        ..opts(1)
    };
    let first = h.run(&script, cached.clone()).await;
    let second = h.run(&script, cached.clone()).await;
    let third = h.run(&script, cached).await;
    let origin = format!("{}/a", first.id);
    assert_eq!(
        task(&second, "a").cached_from.as_deref(),
        Some(origin.as_str())
    );
    assert_eq!(
        task(&third, "a").cached_from.as_deref(),
        Some(origin.as_str())
    );
}
