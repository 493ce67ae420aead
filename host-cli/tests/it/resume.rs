//! `sluice runs resume` and `--from`: a new run that reuses what succeeded before.

use serde_json::Value;

use crate::support::Home;

/// make (wasm) -> gate (a host process that succeeds once a flag file exists) -> last (wasm).
fn write_pipeline(home: &Home, flag: &std::path::Path) -> std::path::PathBuf {
    let dir = home.dir.path();
    let probe = sluice_test_artifacts::PROBE;
    std::fs::write(
        dir.join("make.yaml"),
        format!(
            "name: make\noutputs:\n- {{name: out}}\nimplementation:\n  wasm:\n    component: {probe}\n    args: [write, {{outputPath: out}}, made]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("gate.yaml"),
        format!(
            "name: gate\ninputs:\n- {{name: in}}\noutputs:\n- {{name: out}}\nimplementation:\n  container:\n    image: sluice-samples/none\n    command: [sh, -c, 'test -e \"$0\" && cp \"$1\" \"$2\"', {}, {{inputPath: in}}, {{outputPath: out}}]\n",
            flag.display()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("last.yaml"),
        format!(
            "name: last\ninputs:\n- {{name: in}}\noutputs:\n- {{name: out}}\nimplementation:\n  wasm:\n    component: {probe}\n    args: [copy, {{inputPath: in}}, {{outputPath: out}}]\n"
        ),
    )
    .unwrap();
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        "name: gated\ntasks:\n  make: {component: make.yaml}\n  gate: {component: gate.yaml, inputs: {in: {from: make.out}}}\n  last: {component: last.yaml, inputs: {in: {from: gate.out}}}\n",
    )
    .unwrap();
    pipeline
}

fn record(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not a run record ({e}):\n{stdout}"))
}

fn task<'a>(run: &'a Value, name: &str) -> &'a Value {
    run["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no task {name} in {run}"))
}

#[test]
fn resume_runs_only_what_did_not_succeed_and_from_reruns_a_task_and_its_downstream() {
    let home = Home::new();
    let flag = home.dir.path().join("flag");
    let pipeline = write_pipeline(&home, &flag);
    let pipeline = pipeline.to_str().unwrap();
    let first = record(
        &home
            .expect(&["run", pipeline, "--json", "--runner", "process"], 1)
            .stdout,
    );
    let first_id = first["id"].as_str().unwrap();
    assert_eq!(task(&first, "make")["state"], "succeeded");
    assert_eq!(task(&first, "gate")["state"], "failed");
    assert_eq!(task(&first, "last")["state"], "skipped");

    // What made the task fail is fixed; resuming runs gate and last, and reuses make.
    std::fs::write(&flag, "").unwrap();
    let resumed = record(
        &home
            .expect(
                &["runs", "resume", first_id, "--json", "--runner", "process"],
                0,
            )
            .stdout,
    );
    let resumed_id = resumed["id"].as_str().unwrap();
    assert_ne!(resumed_id, first_id);
    let make = task(&resumed, "make");
    assert_eq!(make["state"], "succeeded");
    assert_eq!(make["implementation"], "cache");
    assert_eq!(make["cached_from"], format!("{first_id}/make"));
    assert_eq!(make["attempts"], 0);
    assert_eq!(
        make["outputs"][0]["digest"],
        task(&first, "make")["outputs"][0]["digest"]
    );
    for name in ["gate", "last"] {
        let t = task(&resumed, name);
        assert_eq!(t["state"], "succeeded", "{t}");
        assert_eq!(t["attempts"], 1, "{t}");
        assert!(t["cached_from"].is_null(), "{t}");
    }
    // The chain copied make's bytes through: the last output is make's.
    assert_eq!(
        task(&resumed, "last")["outputs"][0]["digest"],
        make["outputs"][0]["digest"]
    );

    // --from gate: gate and what follows run again; make is reused.
    let again = record(
        &home
            .expect(
                &[
                    "runs", "rerun", resumed_id, "--from", "gate", "--json", "--runner", "process",
                ],
                0,
            )
            .stdout,
    );
    assert_eq!(task(&again, "make")["implementation"], "cache");
    assert_eq!(
        task(&again, "make")["cached_from"],
        format!("{resumed_id}/make")
    );
    for name in ["gate", "last"] {
        assert_eq!(task(&again, name)["attempts"], 1, "{name}");
        assert!(task(&again, name)["cached_from"].is_null(), "{name}");
    }

    // A task the run does not have, and a pipeline changed since the run: one line each.
    let unknown = home.expect(&["runs", "rerun", resumed_id, "--from", "nope"], 2);
    assert!(
        unknown.stderr.starts_with(&format!(
            "error: --from: run {resumed_id} has no task 'nope' (its tasks: "
        )),
        "{}",
        unknown.stderr
    );
    std::fs::write(
        pipeline,
        std::fs::read_to_string(pipeline)
            .unwrap()
            .replace("gated", "gated2"),
    )
    .unwrap();
    let changed = home.expect(&["runs", "resume", first_id], 2);
    assert!(
        changed
            .stderr
            .contains(&format!("changed since run {first_id}")),
        "{}",
        changed.stderr
    );
    assert_eq!(changed.stderr.lines().count(), 1, "{}", changed.stderr);
}
