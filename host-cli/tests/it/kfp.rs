//! Pipelines written with the KFP SDK (`tests/kfp/pipelines/*.py`), compiled by the real
//! KFP compiler, run unchanged by `sluice run`. Lightweight Python steps run under
//! `--runner process` on the test virtualenv's Python (which has kfp); container
//! components run in Docker from the locally built probe image.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{Value, json};

use crate::support::{Home, Ran, root};

pub(crate) fn python() -> PathBuf {
    PathBuf::from(std::env::var("SLUICE_TEST_KFP_PYTHON").expect(
        "SLUICE_TEST_KFP_PYTHON names a Python with the KFP SDK (tests/kfp/requirements.txt); scripts/test.sh sets one up",
    ))
}

/// The compiled IR of `tests/kfp/pipelines/<name>.py`, compiled once per test run.
pub(crate) fn compiled(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("kfp-compiled");
        let _ = std::fs::remove_dir_all(&dir);
        let out = std::process::Command::new(python())
            .arg(root().join("tests/kfp/compile.py"))
            .arg(&dir)
            .output()
            .expect("the KFP compiler runs");
        assert!(
            out.status.success(),
            "compiling the KFP test pipelines failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    });
    let path = dir.join(format!("{name}.yaml"));
    assert!(path.is_file(), "{} was not compiled", path.display());
    path
}

/// The name of every KFP test pipeline (`tests/kfp/pipelines/<name>.py`), sorted.
pub(crate) fn test_pipelines() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("tests/kfp/pipelines"))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            (path.extension()? == "py").then(|| path.file_stem()?.to_str().map(str::to_owned))?
        })
        .collect();
    names.sort();
    names
}

/// `PATH` with the KFP virtualenv first, so lightweight steps find its `python3`.
pub(crate) fn kfp_path() -> String {
    let bin = python().parent().unwrap().to_owned();
    format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

struct KfpRun {
    ran: Ran,
    record: Value,
}

impl KfpRun {
    fn task(&self, name: &str) -> &Value {
        self.record["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no task '{name}' in the record:\n{}", self.tasks()))
    }

    fn state(&self, task: &str) -> &str {
        self.task(task)["state"].as_str().unwrap()
    }

    /// The recorded text of a parameter output.
    fn output(&self, task: &str, output: &str) -> String {
        let t = self.task(task);
        let o = t["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == output)
            .unwrap_or_else(|| panic!("task '{task}' has no output '{output}': {t}"));
        o["value"].as_str().unwrap_or_default().to_owned()
    }

    fn output_record(&self, task: &str, output: &str) -> &Value {
        self.task(task)["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|o| o["name"] == output)
            .unwrap_or_else(|| panic!("task '{task}' has no output '{output}'"))
    }

    fn names(&self) -> Vec<String> {
        self.record["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect()
    }

    fn tasks(&self) -> String {
        self.record["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                format!(
                    "{} {} {}",
                    t["name"].as_str().unwrap_or(""),
                    t["state"].as_str().unwrap_or(""),
                    t["error"].as_str().unwrap_or("")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// Runs a compiled pipeline with `--json` and expects `code`.
fn run(home: &Home, pipeline: &Path, args: &[&str], code: i32) -> KfpRun {
    let mut all = vec!["run", pipeline.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    let path = kfp_path();
    let ran = home.sluice_with(&all, &[("PATH", &path)]);
    assert_eq!(
        ran.code,
        code,
        "sluice {}\n--- stdout\n{}\n--- stderr\n{}",
        all.join(" "),
        ran.stdout,
        ran.stderr
    );
    let record: Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("not a run record ({e}):\n{}", ran.stdout));
    KfpRun { ran, record }
}

fn lightweight(home: &Home, name: &str, args: &[&str], code: i32) -> KfpRun {
    let mut all = vec!["--runner", "process"];
    all.extend_from_slice(args);
    run(home, &compiled(name), &all, code)
}

#[test]
fn parameters_outputs_artifacts_and_placeholders() {
    let home = Home::new();
    let r = lightweight(&home, "params_outputs", &[], 0);
    // Without --json, a KFP run's first line counts the tasks its plan has, and its last
    // one counts those that ran.
    let path = kfp_path();
    let plain = home.sluice_with(
        &[
            "run",
            compiled("params_outputs").to_str().unwrap(),
            "--runner",
            "process",
        ],
        &[("PATH", &path)],
    );
    assert_eq!(plain.code, 0, "{}", plain.stderr);
    // Plain lines start with the time since the run began: `[   0.56s] `.
    let lines: Vec<&str> = plain
        .stderr
        .lines()
        .map(|l| l.split_once("] ").map_or(l, |(_, rest)| rest))
        .collect();
    let first = lines.iter().find(|l| l.starts_with("run "));
    assert!(
        first.is_some_and(|l| l.ends_with(&format!(", {} tasks", r.names().len()))),
        "{}",
        plain.stderr
    );
    let count = format!(" succeeded: {} tasks", r.names().len());
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("run ") && l.ends_with(&count)),
        "{count}\n{}",
        plain.stderr
    );
    assert_eq!(r.output("add", "Output"), "3.5");
    assert_eq!(r.output("split-name", "first"), "ada");
    assert_eq!(r.output("split-name", "parts"), "2");
    assert_eq!(r.output("shout", "loud"), "ADA-LOVELACE!");
    assert_eq!(
        r.output_record("make-data", "rows")["metadata"],
        serde_json::json!({"rows": 3, "source": "letters"})
    );
    assert_eq!(
        r.output("describe", "Output"),
        "3 lines: a,b,c; rows=3; source=letters"
    );
    assert_eq!(r.output("greet", "Output"), "3.5-x");
    assert_eq!(
        r.output("identify", "Output"),
        "job=params-outputs task=identify"
    );
    assert_eq!(
        r.output("settings", "summary"),
        "flag=True retries=4 values=[1, 2] count=2"
    );
    assert_eq!(
        r.output("settings", "config"),
        r#"{"count":2,"retries":4,"total":6}"#
    );
    assert_eq!(r.output("settings", "negated"), "false");
    assert_eq!(r.task("score")["metrics"]["accuracy"], 0.9);

    let r = lightweight(
        &home,
        "params_outputs",
        &[
            "-p",
            "a=2.25",
            "-p",
            "who=grace-brewster-hopper",
            "-p",
            "flag=false",
            "-p",
            "values=[5]",
            "-p",
            "count=3",
            "-p",
            r#"options={"retries": 1}"#,
        ],
        0,
    );
    assert_eq!(r.output("add", "Output"), "4.25");
    assert_eq!(r.output("split-name", "parts"), "3");
    assert_eq!(r.output("greet", "Output"), "4.25-x");
    assert_eq!(
        r.output("settings", "summary"),
        "flag=False retries=1 values=[5] count=3"
    );
    assert_eq!(r.output("settings", "negated"), "true");
}

#[test]
fn conditions_choose_branches_as_kfp_does() {
    let home = Home::new();
    // Parameters; tasks that ran, with their outputs; tasks a condition kept from running.
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: &[Case<'_>] = &[
        (
            &[],
            &[
                ("flip", "heads"),
                ("heads", "H"),
                ("heads-big", "big"),
                ("many", "many"),
                ("cheap", "cheap"),
                ("join", "got H"),
            ],
            &["tails", "other"],
        ),
        (
            &["-p", "word=tails", "-p", "n=1", "-p", "rate=0.75"],
            &[("flip", "tails"), ("tails", "T"), ("join", "got T")],
            &["heads", "heads-big", "other", "many", "cheap"],
        ),
        (
            &["-p", "word=edge", "-p", "n=5"],
            &[
                ("other", "E"),
                ("many", "many"),
                ("cheap", "cheap"),
                ("join", "got E"),
            ],
            &["heads", "heads-big", "tails"],
        ),
        (
            &["-p", "n=2", "-p", "rate=0.5"],
            &[("heads", "H"), ("join", "got H")],
            &["heads-big", "tails", "other", "many", "cheap"],
        ),
    ];
    for (args, ran, skipped) in cases {
        let r = lightweight(&home, "conditions", args, 0);
        for (task, value) in *ran {
            assert_eq!(r.state(task), "succeeded", "{args:?}: {task}");
            assert_eq!(r.output(task, "Output"), *value, "{args:?}: {task}");
        }
        for task in *skipped {
            assert_eq!(r.state(task), "skipped", "{args:?}: {task}");
            let why = r.task(task)["error"].as_str().unwrap();
            assert!(
                why.contains("condition") && why.contains("is false"),
                "{why}"
            );
        }
    }
}

#[test]
fn loops_fan_out_and_collect() {
    let home = Home::new();
    // Room for every task at once, so only the loop's own limit holds square back.
    let r = lightweight(&home, "loops", &["--parallelism", "8"], 0);
    for (task, value) in [
        ("double.0", "2"),
        ("double.1", "4"),
        ("double.2", "6"),
        ("sum-values", "12"),
        ("add-quarter.0", "2.75"),
        ("add-quarter.1", "4.75"),
        ("upper.0", "X"),
        ("upper.1", "Y"),
        ("make-list", "[0,1,2,3]"),
        ("sum-files", "14"),
        ("pair.0.0", "1-10"),
        ("pair.0.1", "1-20"),
        ("pair.1.0", "2-10"),
        ("pair.1.1", "2-20"),
        // A number reaching a STRING input is its text, as the pipeline wrote it.
        ("describe.0", "a:7"),
        ("describe.1", "b:2.5"),
    ] {
        assert_eq!(r.output(task, "Output"), value, "{task}");
    }
    let files: Vec<&Value> = (0..4)
        .map(|i| &r.output_record(&format!("square.{i}"), "out")["digest"])
        .collect();
    assert_eq!(files.len(), 4);
    // The collected list reached sum-files as four artifacts, in order.
    let inputs: Vec<&str> = r.task("sum-files")["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(inputs, ["files[0]", "files[1]", "files[2]", "files[3]"]);
    for (i, digest) in files.iter().enumerate() {
        let input = &r.task("sum-files")["inputs"][i];
        assert_eq!(&input["digest"], *digest);
    }

    // parallelism=2: at no time were more than two squares running.
    let at = |v: &Value| v.as_str().unwrap().parse::<jiff::Timestamp>().unwrap();
    let spans: Vec<(jiff::Timestamp, jiff::Timestamp)> = (0..4)
        .map(|i| {
            let t = r.task(&format!("square.{i}"));
            (at(&t["started_at"]), at(&t["ended_at"]))
        })
        .collect();
    for (start, _) in &spans {
        let running = spans
            .iter()
            .filter(|(s, e)| s <= start && start < e)
            .count();
        assert!(running <= 2, "{running} squares ran at once: {spans:?}");
    }

    let r = lightweight(&home, "loops", &["-p", r#"names=["a", "b", "c"]"#], 0);
    assert_eq!(r.output("upper.2", "Output"), "C");
    let r = lightweight(&home, "loops", &["-p", "names=[]"], 0);
    assert!(
        !r.names().iter().any(|n| n.starts_with("upper")),
        "{}",
        r.tasks()
    );
}

#[test]
fn loops_over_artifacts() {
    let home = Home::new();
    let r = lightweight(&home, "artifact_loop", &[], 0);
    for i in 0..3 {
        let made = &r.output_record(&format!("make.{i}"), "out")["digest"];
        let read = &r.task(&format!("read.{i}"))["inputs"][0];
        assert_eq!(&read["digest"], made, "read.{i} reads make.{i}'s dataset");
        assert_eq!(
            r.output(&format!("read.{i}"), "Output"),
            (i + 1).to_string()
        );
    }
}

#[test]
fn exit_handlers_and_final_status() {
    let home = Home::new();
    let r = lightweight(&home, "exit_handler", &[], 0);
    assert_eq!(r.output("then-work", "Output"), "done!");
    assert_eq!(r.output("cleanup", "Output"), "cleaned done");
    assert_eq!(r.output("report", "state"), "COMPLETE");
    assert_eq!(r.output("report", "has_error"), "false");

    let r = lightweight(&home, "exit_handler", &["-p", "fail=true"], 1);
    assert_eq!(r.record["state"], "failed");
    assert_eq!(r.state("work"), "failed");
    assert!(
        r.task("work")["error"]
            .as_str()
            .unwrap()
            .contains("asked to fail")
    );
    assert_eq!(r.state("then-work"), "skipped");
    assert_eq!(r.output("cleanup", "Output"), "cleaned nothing");
    assert_eq!(r.output("report", "state"), "FAILED");
    assert_eq!(r.output("report", "has_error"), "true");
}

#[test]
fn retries_follow_the_retry_policy() {
    let home = Home::new();
    let counter = tempfile::tempdir().unwrap();
    let dir = format!("counter_dir={}", counter.path().display());
    let r = lightweight(&home, "retries", &["-p", &dir], 0);
    assert_eq!(r.task("flaky")["attempts"], 3);
    assert_eq!(r.output("flaky", "Output"), "3");
    let mut files: Vec<String> = std::fs::read_dir(counter.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    files.sort();
    assert_eq!(files, ["attempt-1", "attempt-2", "attempt-3"]);
    assert_eq!(r.state("always-fails"), "skipped");

    let empty = tempfile::tempdir().unwrap();
    let dir = format!("counter_dir={}", empty.path().display());
    let r = lightweight(&home, "retries", &["-p", &dir, "-p", "always=true"], 1);
    assert_eq!(r.state("always-fails"), "failed");
    assert_eq!(r.task("always-fails")["attempts"], 2);
    assert!(
        r.task("always-fails")["error"]
            .as_str()
            .unwrap()
            .contains("always fails")
    );
    assert_eq!(r.state("flaky"), "skipped");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn the_cache_reuses_outputs_where_caching_is_on() {
    let home = Home::new();
    let logs = tempfile::tempdir().unwrap();
    let dir = format!("log_dir={}", logs.path().display());
    let lines = || {
        std::fs::read_to_string(logs.path().join("touch.log"))
            .unwrap()
            .lines()
            .count()
    };
    let first = lightweight(&home, "caching", &["-p", &dir], 0);
    assert_eq!(lines(), 2);
    assert!(first.task("touch")["cached_from"].is_null());

    let second = lightweight(&home, "caching", &["-p", &dir], 0);
    assert_eq!(lines(), 3, "only touch-2, whose caching is off, ran again");
    // Both tasks of the first run ran the same component on the same inputs: either
    // one's outputs serve.
    let from = second.task("touch")["cached_from"].as_str().unwrap();
    let first_id = first.record["id"].as_str().unwrap();
    assert!(from.starts_with(&format!("{first_id}/touch")), "{from}");
    assert_eq!(second.output("touch", "Output"), "same");
    assert_eq!(second.task("touch")["attempts"], 0);

    lightweight(&home, "caching", &["-p", &dir, "--no-cache"], 0);
    assert_eq!(lines(), 5);
}

#[test]
fn container_components_run_in_docker() {
    let home = Home::new();
    let source = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(source.path(), "payload").unwrap();
    let param = format!("source={}", source.path().display());
    let r = run(&home, &compiled("containers"), &["-p", &param], 0);
    assert_eq!(r.output("message", "out"), "msg=hello!");
    assert_eq!(r.output("read-back", "text"), "payload");
    assert_eq!(r.output("optional", "out"), "with:yes");
    assert_eq!(r.output("optional-2", "out"), "without");
    let copied = &r.output_record("copy", "dst")["digest"];
    let imported = &r.output_record("importer", "artifact")["digest"];
    assert_eq!(copied, imported);
    for task in ["message", "copy", "read-back"] {
        let ran_as = r.task(task)["implementation"].as_str().unwrap();
        assert!(
            ran_as.starts_with("container sluice-samples/probe"),
            "{ran_as}"
        );
    }
    let id = r.record["id"].as_str().unwrap();
    assert!(crate::support::containers_of(id).is_empty());
    // set_env_variable reached the container.
    let logs = home.expect(&["logs", id, "show-env"], 0);
    assert!(
        logs.stdout.contains("hi from the pipeline"),
        "{}",
        logs.stdout
    );
}

#[test]
fn pipeline_artifact_inputs_are_imported() {
    let home = Home::new();
    let data = home.dir.path().join("letters.txt");
    std::fs::write(&data, "a\nb\nc\n").unwrap();
    let param = format!("data={}", data.display());
    let r = lightweight(&home, "artifact_input", &["-p", &param], 0);
    assert_eq!(r.output("count-lines", "Output"), "3");
    let ran = home.expect(&["run", compiled("artifact_input").to_str().unwrap()], 2);
    assert!(
        ran.stderr
            .contains("root.inputDefinitions.artifacts.data: required (system.Dataset); pass --param data=PATH"),
        "{}",
        ran.stderr
    );
}

/// What Docker was asked for: the image id, the memory limit and the CPU limit of the
/// (kept) container of a task.
fn container_config(run: &str, task: &str) -> String {
    let docker = |args: &[&str]| {
        let out = std::process::Command::new("docker")
            .args(args)
            .output()
            .expect("the docker command runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let id = docker(&[
        "ps",
        "-a",
        "-q",
        "--filter",
        &format!("label=sluice.run={run}"),
        "--filter",
        &format!("label=sluice.task={task}"),
    ]);
    assert!(!id.is_empty(), "no container kept for task '{task}'");
    docker(&[
        "inspect",
        "--format",
        "{{.Config.Image}} {{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}",
        &id,
    ])
}

#[test]
fn resources_and_image_maps_reach_docker() {
    let home = Home::new();
    let mapped = "sluice-samples/probe:kfp-mapped";
    let tag = std::process::Command::new("docker")
        .args(["tag", "sluice-samples/probe:0.1.0", mapped])
        .status()
        .unwrap();
    assert!(tag.success());
    let source = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(source.path(), "payload").unwrap();
    let param = format!("source={}", source.path().display());
    let map = format!("sluice-samples/probe:0.1.0={mapped}");
    let r = run(
        &home,
        &compiled("containers"),
        &["-p", &param, "--image-map", &map, "--keep-containers"],
        0,
    );
    let id = r.record["id"].as_str().unwrap().to_owned();
    // copy: .set_cpu_limit('1').set_memory_limit('256M'); message: no limits.
    let copy = container_config(&id, "copy");
    let message = container_config(&id, "message");
    // Limits a pipeline parameter and an upstream output decide, when the task runs.
    let by_param = container_config(&id, "message-2");
    let by_output = container_config(&id, "message-3");
    let kept = crate::support::containers_of(&id);
    let _ = std::process::Command::new("docker")
        .arg("rm")
        .arg("-f")
        .args(&kept)
        .output();
    let _ = std::process::Command::new("docker")
        .args(["rmi", mapped])
        .output();
    // Containers are created from the image's id.
    assert!(copy.ends_with(" 256000000 1000000000"), "{copy}");
    assert!(message.ends_with(" 0 0"), "{message}");
    assert!(by_param.ends_with(" 128000000 0"), "{by_param}");
    assert!(by_output.ends_with(" 96000000 0"), "{by_output}");
    assert!(
        r.task("copy")["implementation"]
            .as_str()
            .unwrap()
            .contains(mapped)
    );
}

#[test]
fn lightweight_components_run_in_docker_from_a_local_image() {
    // scripts/test.sh builds this image from the test virtualenv, FROM scratch.
    let image = "sluice-test/kfp-python:3.11";
    let map = format!("python:3.11={image}");
    let home = Home::new();
    let r = run(
        &home,
        &compiled("exit_handler"),
        &["--image-map", &map, "-p", "fail=true"],
        1,
    );
    assert_eq!(r.state("work"), "failed");
    assert_eq!(r.output("cleanup", "Output"), "cleaned nothing");
    assert_eq!(r.output("report", "state"), "FAILED");
    for task in ["work", "cleanup", "report"] {
        let ran_as = r.task(task)["implementation"].as_str().unwrap();
        assert_eq!(ran_as, format!("container {image}"), "{task}");
    }
    assert!(crate::support::containers_of(r.record["id"].as_str().unwrap()).is_empty());
}

#[test]
fn every_task_ends_decided_after_a_failure_and_nested_defaults_apply() {
    let home = Home::new();
    // With --keep-going the nested pipeline's tasks run whenever zfail fails; without it
    // those not yet started when it fails would not start.
    let r = lightweight(&home, "failure_chain", &["--keep-going"], 1);
    let state = |task: &str| r.task(task)["state"].as_str().unwrap().to_owned();
    assert_eq!(state("zfail"), "failed");
    for task in ["middle", "after"] {
        assert_eq!(state(task), "skipped", "{task}");
        assert!(
            r.task(task)["error"]
                .as_str()
                .unwrap()
                .contains("upstream task"),
            "{task}: {}",
            r.task(task)
        );
    }
    // The exit handler ran and saw the failure.
    assert_eq!(state("report"), "succeeded");
    assert_eq!(r.output("report", "Output"), "FAILED");
    // The nested pipeline's parameters the parent left unset took its defaults.
    assert_eq!(r.output("count.0", "Output"), "n=3");
    assert_eq!(r.output("count.1", "Output"), "n=4");
}

#[test]
fn the_process_runner_expands_the_program_and_notes_what_it_cannot_apply() {
    let home = Home::new();
    let r = lightweight(&home, "process_runner", &[], 0);
    // A program an IfPresent placeholder names, chosen only once it is expanded.
    assert_eq!(r.output("pick", "out"), "chosen");
    assert_eq!(r.output("pick-2", "out"), "chosen");
    let notes: Vec<&str> = r
        .ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("note: accelerated: "))
        .collect();
    assert_eq!(notes.len(), 2, "{}", r.ran.stderr);
    assert!(
        notes.iter().any(|l| l.contains(
            "accelerator request (1 x nvidia.com/gpu) does not apply under --runner process"
        )),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|l| l.contains("memory limit of")
            && l.contains("does not apply under --runner process")),
        "{notes:?}"
    );
}

#[test]
fn pipelines_used_as_components() {
    let home = Home::new();
    let r = lightweight(&home, "nested", &["-p", "x=10"], 0);
    assert_eq!(r.output("double", "Output"), "20");
    assert_eq!(r.output("inc", "Output"), "21");
    assert_eq!(r.output("show", "Output"), "inner gave 21");
    // The pipeline's own output is on the run record.
    let outputs = r.record["outputs"]
        .as_array()
        .expect("the run records its outputs");
    assert_eq!(outputs.len(), 1, "{outputs:?}");
    assert_eq!(
        (
            outputs[0]["name"].as_str(),
            outputs[0]["value"].as_str(),
            outputs[0]["type"].as_str()
        ),
        (Some("Output"), Some("21"), Some("NUMBER_INTEGER"))
    );
    let id = r.record["id"].as_str().unwrap();
    let shown = home.expect(&["runs", "show", id], 0);
    assert!(
        shown.stdout.contains("outputs\n  Output = 21\n"),
        "{}",
        shown.stdout
    );
}

#[test]
fn kubernetes_settings_are_reported_not_applied() {
    let home = Home::new();
    let r = lightweight(&home, "kubernetes", &[], 0);
    assert_eq!(r.output("hello", "Output"), "hello");
    for setting in ["secretAsEnv", "pvcMount", "nodeSelector", "imagePullSecret"] {
        let lines: Vec<&str> = r
            .ran
            .stderr
            .lines()
            .filter(|l| l.starts_with("note: ") && l.contains(&format!("'{setting}'")))
            .collect();
        assert_eq!(lines.len(), 1, "{setting}:\n{}", r.ran.stderr);
        assert!(
            lines[0].contains("does not apply to a local run"),
            "{}",
            lines[0]
        );
    }
    assert!(
        r.ran.stderr.lines().any(|l| l.starts_with("note: ")
            && l.contains("cpu request 500m")
            && l.contains("locally only limits apply")),
        "{}",
        r.ran.stderr
    );
}

#[test]
fn steps_that_cannot_run_here_say_why() {
    let home = Home::new();
    let pipeline = compiled("exit_handler");
    let path = kfp_path();
    // In Docker, a lightweight step needs its Python image, which is not here, and its
    // registry cannot be reached from this machine: the environment's failure, with the
    // ways out.
    let ran = home.sluice_with(&["run", pipeline.to_str().unwrap()], &[("PATH", &path)]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    let line = ran
        .stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap();
    assert!(line.contains("python:3.11"), "{line}");
    assert!(line.contains("--runner process"), "{line}");
    assert!(line.contains("--image-map"), "{line}");

    // On the host, it needs a python3 that has kfp.
    let fake = tempfile::tempdir().unwrap();
    let python3 = fake.path().join("python3");
    std::fs::write(&python3, "#!/bin/sh\nexit 1\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&python3, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        fake.path().display(),
        std::env::var("PATH").unwrap()
    );
    let ran = home.sluice_with(
        &["run", pipeline.to_str().unwrap(), "--runner", "process"],
        &[("PATH", &path)],
    );
    // The host lacks what the step needs: the environment's failure.
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(ran.stderr.contains("cannot import it"), "{}", ran.stderr);
    assert!(ran.stderr.contains("kfp==2.17.3"), "{}", ran.stderr);
}

#[test]
fn bad_parameters_and_broken_files_get_one_line_each() {
    let home = Home::new();
    let pipeline = compiled("conditions");
    let p = pipeline.to_str().unwrap();
    let ran = home.expect(&["run", p, "-p", "n=three", "-p", "colour=red"], 2);
    let errors: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 2, "{}", ran.stderr);
    assert!(errors.iter().any(|l| l.ends_with(
        "root.inputDefinitions.parameters.n: expected a NUMBER_INTEGER value, found 'three'"
    )));
    assert!(
        errors
            .iter()
            .any(|l| l.contains("parameters.colour: no such pipeline parameter"))
    );

    let broken = home.dir.path().join("broken.yaml");
    let text = std::fs::read_to_string(&pipeline).unwrap();
    std::fs::write(
        &broken,
        text.replacen("producerTask: flip", "producerTask: flop", 1),
    )
    .unwrap();
    let ran = home.expect(&["run", broken.to_str().unwrap()], 2);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("no task 'flop' in the same DAG"),
        "{}",
        ran.stderr
    );
    let ran = home.expect(&["validate", broken.to_str().unwrap()], 2);
    assert!(ran.stderr.contains("no task 'flop'"), "{}", ran.stderr);

    let old = home.dir.path().join("old.yaml");
    std::fs::write(
        &old,
        text.replace("schemaVersion: 2.1.0", "schemaVersion: 2.0.0"),
    )
    .unwrap();
    let ran = home.expect(&["validate", old.to_str().unwrap()], 2);
    assert!(
        ran.stderr
            .contains("schemaVersion: '2.0.0' is not supported"),
        "{}",
        ran.stderr
    );
}

#[test]
fn validate_accepts_every_compiled_test_pipeline() {
    let home = Home::new();
    for name in &test_pipelines() {
        let ran = home.expect(&["validate", compiled(name).to_str().unwrap()], 0);
        assert!(ran.stdout.contains("ok (KFP pipeline"), "{}", ran.stdout);
    }
    let ran = home.expect(&["validate", compiled("retries").to_str().unwrap()], 0);
    assert!(
        ran.stdout.contains("a run needs --param counter_dir"),
        "{}",
        ran.stdout
    );
}

/// `sluice plan` shows a compiled pipeline lowered into the plan every format runs as:
/// executor tasks, and groups for its conditions, loops and nested pipelines, with every
/// value wired through them.
#[test]
fn plan_lowers_compiled_pipelines_and_rerun_repeats_one() {
    let home = Home::new();
    // Every test pipeline lowers, in every format.
    for name in &test_pipelines() {
        let path = compiled(name);
        let path = path.to_str().unwrap();
        for format in ["text", "dot", "json"] {
            let ran = home.sluice(&["plan", path, "--format", format]);
            assert_eq!(ran.code, 0, "{name} as {format}: {}", ran.stderr);
        }
    }
    let plan = |name: &str| -> Value {
        let ran = home.expect(
            &["plan", compiled(name).to_str().unwrap(), "--format", "json"],
            0,
        );
        serde_json::from_str(&ran.stdout).unwrap()
    };
    let find = |list: &Value, name: &str| -> Value {
        list.as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {list}"))
            .clone()
    };

    // A loop over a task's output, at most 2 at once, and its outputs collected.
    let loops = plan("loops");
    let looped = find(&loops["groups"], "for-loop-6");
    assert_eq!(
        looped["iteration"],
        json!({"items": {"from": "output", "task": "make-list", "output": "Output"}, "parallelism": 2})
    );
    assert_eq!(looped["upstream"], json!(["make-list"]));
    let square = find(&loops["tasks"], "square");
    assert_eq!(square["group"], "for-loop-6");
    assert_eq!(find(&square["inputs"], "x")["from"], "item", "{square}");
    let sum = find(&loops["tasks"], "sum-files");
    assert_eq!(sum["after_groups"], json!(["for-loop-6"]));
    assert_eq!(
        find(&sum["inputs"], "files"),
        json!({"name": "files", "from": "collected", "group": "for-loop-6",
               "of": {"from": "output", "task": "square", "output": "out"}})
    );
    // A loop nested in another, over a constant list.
    let inner = find(&loops["groups"], "for-loop-10");
    assert_eq!(inner["group"], "for-loop-8");

    // Conditions: branches, and the first branch that ran feeding the join.
    let conditions = plan("conditions");
    let heads = find(&conditions["groups"], "condition-3");
    assert_eq!(
        heads["condition"],
        "inputs.parameter_values['pipelinechannel--flip-Output'] == 'heads'"
    );
    assert_eq!(heads["group"], "condition-branches-1");
    let join = find(&conditions["tasks"], "join");
    assert_eq!(find(&join["inputs"], "value")["from"], "one_of");

    // The exit handler's task runs however the body ended, and reads how it ended.
    let exit = plan("exit_handler");
    let report = find(&exit["tasks"], "report");
    assert_eq!(report["trigger"], "all_ended");
    assert_eq!(
        find(&report["inputs"], "status"),
        json!({"name": "status", "from": "final_status", "node": "exit-handler-1"})
    );

    // The text form says the same, in words.
    let text = home
        .expect(&["plan", compiled("loops").to_str().unwrap()], 0)
        .stdout;
    assert!(
        text.contains("names = [\"x\",\"y\"]  [JsonArray, default]"),
        "{text}"
    );
    assert!(
        text.contains("for-loop-6  for each item of make-list.Output, at most 2 at once"),
        "{text}"
    );
    assert!(
        text.contains("files <- [square.out for each item of for-loop-6]"),
        "{text}"
    );
    // Groups that decide nothing themselves say what they hold; an importer says it is one.
    let text = |name: &str| {
        home.expect(&["plan", compiled(name).to_str().unwrap()], 0)
            .stdout
    };
    let conditions = text("conditions");
    assert!(
        conditions.contains("condition-branches-1  branches: each runs if its condition holds"),
        "{conditions}"
    );
    let exit = text("exit_handler");
    assert!(
        exit.contains("exit-handler-1  exit handler's body: its handler runs however it ends"),
        "{exit}"
    );
    let nested = text("nested");
    assert!(nested.contains("nested pipeline"), "{nested}");
    let containers = text("containers");
    assert!(
        containers.contains("  importer  importer [importer]"),
        "{containers}"
    );
    let dot = home
        .expect(
            &[
                "plan",
                compiled("loops").to_str().unwrap(),
                "--format",
                "dot",
            ],
            0,
        )
        .stdout;
    assert!(dot.contains("subgraph cluster_g"), "{dot}");

    let first = lightweight(&home, "exit_handler", &["-p", "fail=true"], 1);
    let id = first.record["id"].as_str().unwrap();
    let path = kfp_path();
    let ran = home.sluice_with(
        &["runs", "rerun", id, "--json", "--runner", "process"],
        &[("PATH", &path)],
    );
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let again: Value = serde_json::from_str(&ran.stdout).unwrap();
    assert_eq!(again["params"]["fail"], "true");
    assert_ne!(again["id"], first.record["id"]);
}

#[test]
fn v1_graph_components_run_on_their_own() {
    let home = Home::new();
    let out = home.dir.path().join("out");
    let ran = home.expect(
        &[
            "component",
            "run",
            "tests/kfp/components/graph.yaml",
            "-i",
            "text=hello graph",
            "-o",
            out.to_str().unwrap(),
        ],
        0,
    );
    assert!(ran.stdout.contains("wrote"), "{}", ran.stdout);
    assert_eq!(
        std::fs::read_to_string(out.join("result")).unwrap(),
        "hello graph"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("label")).unwrap(),
        "copied"
    );
}

#[test]
fn v1_file_outputs_are_copied_out_of_the_container() {
    let home = Home::new();
    let out = home.dir.path().join("out");
    home.expect(
        &[
            "component",
            "run",
            "tests/kfp/components/file-outputs.yaml",
            "-i",
            "text=from inside",
            "-o",
            out.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(
        std::fs::read_to_string(out.join("result")).unwrap(),
        "from inside"
    );
}

#[test]
fn v1_components_load_as_kfp_1_8_published_them() {
    let home = Home::new();
    // JSON-typed inputs defaulting to '' (and a JsonArray to '{}'): loaded, and the
    // program gets the text as it is.
    let out = home.dir.path().join("defaults");
    home.expect(&["validate", "tests/kfp/components/json-defaults.yaml"], 0);
    home.expect(
        &[
            "component",
            "run",
            "tests/kfp/components/json-defaults.yaml",
            "-o",
            out.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(
        std::fs::read_to_string(out.join("seen")).unwrap(),
        "columns= options= rows={} settings="
    );
    // outputMetadata: where the step writes its executor output, read back.
    let out = home.dir.path().join("metadata");
    home.expect(
        &[
            "component",
            "run",
            "tests/kfp/components/output-metadata.yaml",
            "-o",
            out.to_str().unwrap(),
        ],
        0,
    );
    assert_eq!(std::fs::read_to_string(out.join("count")).unwrap(), "12");
    // A duplicate key is still no component.
    let dup = home.dir.path().join("dup.yaml");
    std::fs::write(
        &dup,
        "name: d\nname: e\nimplementation: {container: {image: x, command: [x]}}\n",
    )
    .unwrap();
    let ran = home.expect(&["validate", dup.to_str().unwrap()], 2);
    assert!(ran.stderr.contains("duplicate"), "{}", ran.stderr);
}

#[test]
fn v1_components_get_the_executor_input() {
    let home = Home::new();
    let data = home.dir.path().join("data.txt");
    std::fs::write(&data, "rows").unwrap();
    let out = home.dir.path().join("out");
    home.expect(
        &[
            "component",
            "run",
            "tests/kfp/components/executor-input.yaml",
            "-i",
            "n=3",
            "-i",
            r#"tags=["a", "b"]"#,
            "-i",
            &format!("data={}", data.display()),
            "-o",
            out.to_str().unwrap(),
        ],
        0,
    );
    let seen: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("seen")).unwrap()).unwrap();
    let values = &seen["inputs"]["parameterValues"];
    assert_eq!(values["n"], 3);
    assert_eq!(values["ratio"], 0.5);
    assert_eq!(values["tags"], serde_json::json!(["a", "b"]));
    let data = &seen["inputs"]["artifacts"]["data"]["artifacts"][0];
    assert_eq!(data["uri"], "/tmp/inputs/data/data");
    assert_eq!(data["type"]["schemaTitle"], "system.Dataset");
    assert_eq!(
        seen["outputs"]["parameters"]["seen"]["outputFile"],
        "/tmp/outputs/seen/data"
    );
}

/// The `uri` a step is given for an artifact, of its own output or of an input, names
/// the artifact for the rest of the run and after: an importer of it, once the step has
/// ended, reads the same bytes, under the process runner and in Docker, and again in a
/// later run that reuses the steps from the cache.
#[test]
fn artifact_uris_stay_valid_after_their_task() {
    let image = "sluice-test/kfp-python:3.11";
    let map = format!("python:3.11={image}");
    for runner in [vec!["--runner", "process"], vec!["--image-map", &map]] {
        let home = Home::new();
        let first = run(&home, &compiled("uris"), &runner, 0);
        let again = run(&home, &compiled("uris"), &runner, 0);
        for r in [&first, &again] {
            assert_eq!(r.output("read-made", "Output"), "made", "{runner:?}");
            assert_eq!(r.output("read-given", "Output"), "made", "{runner:?}");
        }
        let uri = first.output("make", "Output");
        assert!(
            uri.contains("/runs/") && uri.ends_with("/data") && uri.starts_with('/'),
            "{uri}"
        );
        // The second run's steps came from the cache; what they told stays the first's.
        assert_eq!(again.output("make", "Output"), uri);
        assert_eq!(
            first.output_record("make", "data")["digest"],
            again.output_record("import-made", "artifact")["digest"]
        );
    }
}

/// `sluice runs resume` of a compiled pipeline runs only what did not succeed: every task
/// whose component, executable and inputs match one that succeeded in the run is taken
/// from it, caching or not; `--from` is refused, saying what to use.
#[test]
fn a_compiled_pipeline_resumes_running_only_what_did_not_succeed() {
    let home = Home::new();
    let flag = home.dir.path().join("flag");
    let flag_param = format!("flag={}", flag.display());
    let first = lightweight(&home, "resume", &["-p", &flag_param], 1);
    let first_id = first.record["id"].as_str().unwrap().to_owned();
    for task in ["square.0", "square.1", "square.2", "total"] {
        assert_eq!(first.state(task), "succeeded", "{task}");
    }
    assert_eq!(first.state("gate"), "failed");
    assert_eq!(first.state("last"), "skipped");

    std::fs::write(&flag, "").unwrap();
    let path = kfp_path();
    let ran = home.sluice_with(&["runs", "resume", &first_id, "--json"], &[("PATH", &path)]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let resumed = KfpRun {
        record: serde_json::from_str(&ran.stdout).unwrap(),
        ran,
    };
    // The flags the run had: its steps ran as processes again.
    assert_eq!(resumed.record["flags"], json!(["--runner", "process"]));
    for task in ["square.0", "square.1", "square.2", "total"] {
        let t = resumed.task(task);
        assert_eq!(t["state"], "succeeded", "{t}");
        assert_eq!(t["cached_from"], format!("{first_id}/{task}"), "{t}");
        assert_eq!(t["attempts"], 0, "{t}");
    }
    for task in ["gate", "last"] {
        let t = resumed.task(task);
        assert_eq!(t["attempts"], 1, "{t}");
        assert!(t["cached_from"].is_null(), "{t}");
    }
    assert_eq!(resumed.output("last", "Output"), "15");

    let from = home.expect(&["runs", "rerun", &first_id, "--from", "gate"], 2);
    assert!(
        from.stderr.contains("--from is for Sluice pipelines"),
        "{}",
        from.stderr
    );
}

/// On a terminal, a compiled pipeline's run shows a live line per task: those the
/// lowered plan knows at once, each loop iteration's as it becomes known.
#[test]
fn a_compiled_pipeline_shows_live_progress_on_a_terminal() {
    let home = Home::new();
    let flag = home.dir.path().join("flag");
    std::fs::write(&flag, "").unwrap();
    let command = format!(
        "{} run {} --runner process -p flag={}",
        env!("CARGO_BIN_EXE_sluice"),
        compiled("resume").display(),
        flag.display()
    );
    // `script` (util-linux) runs the command on a pseudo-terminal and copies its output.
    let out = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("SLUICE_HOME", home.dir.path().join("home"))
        .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
        .env("PATH", kfp_path())
        .output()
        .expect("script (util-linux) runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    for task in ["square.0", "square.1", "square.2", "total", "gate", "last"] {
        assert!(text.contains(task), "{task}: {text}");
    }
    assert!(text.contains("✔ succeeded"), "{text}");
    // Not the plain lines a run off a terminal prints.
    assert!(
        !text.contains("and those its loops add as they run"),
        "{text}"
    );
}
