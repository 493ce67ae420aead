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
    // Run from the pipeline's folder, by a relative path; resumed from elsewhere.
    let first = record(
        &home
            .expect_in(
                home.dir.path(),
                &[
                    "run",
                    "pipeline.yaml",
                    "--json",
                    "--runner",
                    "process",
                    "--no-cache",
                ],
                1,
            )
            .stdout,
    );
    let first_id = first["id"].as_str().unwrap();
    assert_eq!(first["source"], pipeline);
    assert_eq!(
        first["flags"],
        serde_json::json!(["--no-cache", "--runner", "process"])
    );
    assert_eq!(task(&first, "make")["state"], "succeeded");
    assert_eq!(task(&first, "gate")["state"], "failed");
    assert_eq!(task(&first, "last")["state"], "skipped");

    // What made the task fail is fixed; resuming runs gate and last, and reuses make,
    // with the flags the run had (its container step as a process, not in Docker).
    std::fs::write(&flag, "").unwrap();
    let resumed = record(
        &home
            .expect(&["runs", "resume", first_id, "--json", "--keep-going"], 0)
            .stdout,
    );
    assert_eq!(
        resumed["flags"],
        serde_json::json!(["--keep-going", "--no-cache", "--runner", "process"])
    );
    assert!(
        task(&resumed, "gate")["implementation"]
            .as_str()
            .unwrap()
            .starts_with("process"),
        "{resumed}"
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
                &["runs", "rerun", resumed_id, "--from", "gate", "--json"],
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
    // A switch the run had is turned off by its negation, and the new run records that.
    let switched = record(
        &home
            .expect(
                &[
                    "runs",
                    "rerun",
                    resumed_id,
                    "--json",
                    "--no-keep-going",
                    "--cache",
                ],
                0,
            )
            .stdout,
    );
    assert_eq!(
        switched["flags"],
        serde_json::json!(["--runner", "process"]),
        "{switched}"
    );
    // With the cache on, the rerun takes every task from the cache.
    for name in ["make", "gate", "last"] {
        assert_eq!(task(&switched, name)["implementation"], "cache", "{name}");
    }

    // A component file changed since the run: its task runs again, and so does every
    // task after it, whose recorded inputs came from the old one.
    let again_id = again["id"].as_str().unwrap();
    let make_yaml = home.dir.path().join("make.yaml");
    let text = std::fs::read_to_string(&make_yaml).unwrap();
    std::fs::write(&make_yaml, format!("# changed\n{text}")).unwrap();
    let changed_component = record(
        &home
            .expect(&["runs", "resume", again_id, "--json"], 0)
            .stdout,
    );
    for name in ["make", "gate", "last"] {
        let t = task(&changed_component, name);
        assert_eq!(t["attempts"], 1, "{t}");
        assert!(t["cached_from"].is_null(), "{t}");
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

/// A run still going cannot be resumed: both would run its tasks at once.
#[test]
fn a_run_still_going_is_not_resumed() {
    let home = Home::new();
    let dir = home.dir.path();
    let probe = sluice_test_artifacts::PROBE;
    std::fs::write(
        dir.join("nap.yaml"),
        format!(
            "name: nap\nimplementation:\n  wasm:\n    component: {probe}\n    args: [sleep, '60']\n"
        ),
    )
    .unwrap();
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        "name: napping\ntasks:\n  a: {component: nap.yaml}\n",
    )
    .unwrap();
    let (mut child, _stderr, seen) = home.start_run(&pipeline, "a: started");
    assert!(seen.contains("a: started"), "{seen}");
    let list = record(&home.expect(&["runs", "list", "--json"], 0).stdout);
    let id = list[0]["id"].as_str().unwrap();
    let refused = home.expect(&["runs", "resume", id], 2);
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        refused.stderr,
        format!(
            "error: run {id} is still running; wait for it to end (or stop it) before resuming it\n"
        )
    );
}

/// A run killed with SIGKILL at any moment resumes: no task that succeeded before the
/// kill runs again, every task ends succeeded, and every artifact the record names
/// matches its digest.
#[test]
fn a_run_killed_at_any_moment_resumes_without_redoing_what_succeeded() {
    use std::process::{Command, Stdio};
    use std::time::Instant;

    const WRITERS: usize = 8;
    const KILLS: usize = 50;
    let home = Home::new();
    let dir = home.dir.path();
    let probe = sluice_test_artifacts::PROBE;
    std::fs::write(
        dir.join("write.yaml"),
        format!(
            "name: write\ninputs:\n- {{name: text, type: String}}\noutputs:\n- {{name: out}}\nimplementation:\n  wasm:\n    component: {probe}\n    args: [write, {{outputPath: out}}, {{inputValue: text}}]\n"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("nap.yaml"),
        format!(
            "name: nap\nimplementation:\n  wasm:\n    component: {probe}\n    args: [sleep, '15']\n"
        ),
    )
    .unwrap();
    // w0 -> n0 -> w1 -> n1 -> ...: writers with distinct outputs, naps between them.
    let mut yaml = String::from("name: killed\ntasks:\n");
    for i in 0..WRITERS {
        let after = if i == 0 {
            String::new()
        } else {
            format!(", after: [n{}]", i - 1)
        };
        yaml.push_str(&format!(
            "  w{i}: {{component: write.yaml, inputs: {{text: {{value: 'output {i}'}}}}{after}}}\n  n{i}: {{component: nap.yaml, after: [w{i}]}}\n"
        ));
    }
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(&pipeline, yaml).unwrap();
    let pipeline = pipeline.to_str().unwrap();
    let tasks = 2 * WRITERS;

    // A whole run, which also warms the compile cache: the kills fall within its length.
    let started = Instant::now();
    // Without the task cache, which would take every task from this run.
    home.expect(&["run", pipeline, "--json", "--no-cache"], 0);
    let whole = started.elapsed();

    let mut seen = std::collections::BTreeSet::new();
    let newest = |seen: &std::collections::BTreeSet<String>| -> Option<String> {
        let list = record(
            &home
                .expect(&["runs", "list", "--json", "-n", "1"], 0)
                .stdout,
        );
        let id = list[0]["id"].as_str()?.to_owned();
        (!seen.contains(&id)).then_some(id)
    };
    seen.insert(newest(&seen).unwrap());
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let (mut mid_run, mut before_start, mut none_done, mut all_done) = (0, 0, 0, 0);
    for round in 0..KILLS {
        // splitmix64: a moment in [0, 1.2 x the whole run).
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        let at = whole.mul_f64(1.2 * (z ^ (z >> 31)) as f64 / u64::MAX as f64);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .arg("--home")
            .arg(dir.join("home"))
            .args(["run", pipeline, "--json", "--no-cache"])
            .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(at);
        let _ = child.kill();
        child.wait().unwrap();

        let Some(killed) = newest(&seen) else {
            // Killed before the run was recorded: nothing to resume.
            before_start += 1;
            continue;
        };
        seen.insert(killed.clone());
        let before = record(&home.expect(&["runs", "show", &killed, "--json"], 0).stdout);
        let done: std::collections::BTreeSet<String> = before["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t["state"] == "succeeded")
            .map(|t| t["name"].as_str().unwrap().to_owned())
            .collect();
        match done.len() {
            0 => none_done += 1,
            n if n == tasks => all_done += 1,
            _ => mid_run += 1,
        }
        let resumed = record(
            &home
                .expect(&["runs", "resume", &killed, "--json"], 0)
                .stdout,
        );
        seen.insert(resumed["id"].as_str().unwrap().to_owned());
        assert_eq!(
            resumed["state"], "succeeded",
            "round {round} ({at:?}): {resumed}"
        );
        let store = sluice_runtime::store::Store::open(&dir.join("home")).unwrap();
        for t in resumed["tasks"].as_array().unwrap() {
            let name = t["name"].as_str().unwrap();
            assert_eq!(t["state"], "succeeded", "round {round}: {t}");
            if done.contains(name) {
                assert_eq!(
                    t["cached_from"],
                    format!("{killed}/{name}"),
                    "round {round}: {t}"
                );
                assert_eq!(t["attempts"], 0, "round {round}: {t}");
            } else {
                assert!(t["cached_from"].is_null(), "round {round}: {t}");
                assert_eq!(t["attempts"], 1, "round {round}: {t}");
            }
            for output in t["outputs"].as_array().unwrap() {
                let digest = output["digest"].as_str().unwrap();
                let bytes = store
                    .read(digest)
                    .unwrap_or_else(|e| panic!("round {round}: {name}: {e}"));
                let i = &name[1..];
                assert_eq!(bytes, format!("output {i}").as_bytes(), "round {round}");
            }
        }
    }
    eprintln!(
        "{KILLS} kills: {before_start} before the run was recorded, {none_done} before its \
         first task succeeded, {mid_run} mid-run, {all_done} after its last task succeeded \
         (a whole run took {whole:?})"
    );
    // The moments fell across the run, not only before or after it.
    assert!(
        mid_run >= KILLS / 5,
        "only {mid_run} of {KILLS} kills fell mid-run ({before_start} before it was recorded; a whole run took {whole:?})"
    );
}

/// Reuse takes only what is exactly what ran: a wasm component whose bytes changed runs
/// again, an output whose bytes no longer match its digest makes its task run again, and
/// an artifact parameter whose recorded bytes are gone is an error, never a path.
#[test]
fn resume_reuses_nothing_whose_bytes_changed() {
    use std::os::unix::fs::PermissionsExt;

    let home = Home::new();
    let dir = home.dir.path();
    let probe = dir.join("probe.wasm");
    std::fs::copy(sluice_test_artifacts::PROBE, &probe).unwrap();
    std::fs::write(
        dir.join("make.yaml"),
        "name: make\noutputs:\n- {name: out}\nimplementation:\n  wasm:\n    component: probe.wasm\n    args: [write, {outputPath: out}, made]\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("last.yaml"),
        "name: last\ninputs:\n- {name: in}\noutputs:\n- {name: out}\nimplementation:\n  wasm:\n    component: probe.wasm\n    args: [copy, {inputPath: in}, {outputPath: out}]\n",
    )
    .unwrap();
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        "name: bytes\ntasks:\n  make: {component: make.yaml}\n  last: {component: last.yaml, inputs: {in: {from: make.out}}}\n",
    )
    .unwrap();
    let pipeline = pipeline.to_str().unwrap();
    let first = record(
        &home
            .expect(&["run", pipeline, "--json", "--no-cache"], 0)
            .stdout,
    );
    let first_id = first["id"].as_str().unwrap();

    // The component's bytes change (a custom section appended): everything runs again.
    let mut wasm = std::fs::read(&probe).unwrap();
    wasm.extend_from_slice(&[0x00, 0x05, 0x04, b't', b'e', b's', b't']);
    std::fs::write(&probe, wasm).unwrap();
    let changed = record(
        &home
            .expect(&["runs", "resume", first_id, "--json"], 0)
            .stdout,
    );
    for name in ["make", "last"] {
        let t = task(&changed, name);
        assert_eq!(t["attempts"], 1, "{t}");
        assert!(t["cached_from"].is_null(), "{t}");
    }
    let changed_id = changed["id"].as_str().unwrap();

    // An output's bytes in the store change: its task runs again, and what follows it.
    let digest = task(&changed, "make")["outputs"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let hex = digest.strip_prefix("sha256:").unwrap();
    let stored = dir.join("home/artifacts/sha256").join(&hex[..2]).join(hex);
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&stored, "EVIL").unwrap();
    let resumed = record(
        &home
            .expect(&["runs", "resume", changed_id, "--json"], 0)
            .stdout,
    );
    for name in ["make", "last"] {
        let t = task(&resumed, name);
        assert_eq!(t["attempts"], 1, "{t}");
        assert!(t["cached_from"].is_null(), "{t}");
    }
    let store = sluice_runtime::store::Store::open(&dir.join("home")).unwrap();
    let out = task(&resumed, "last")["outputs"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(store.read(&out).unwrap(), b"made");
    drop(store);

    // An artifact parameter whose recorded bytes left the store.
    std::fs::write(
        dir.join("with-param.yaml"),
        "name: with-param\nparams:\n  data: {type: Dataset}\ntasks:\n  last: {component: last.yaml, inputs: {in: {param: data}}}\n",
    )
    .unwrap();
    let data = dir.join("data.txt");
    std::fs::write(&data, "PARAM").unwrap();
    let with_param = dir.join("with-param.yaml");
    let ran = record(
        &home
            .expect(
                &[
                    "run",
                    with_param.to_str().unwrap(),
                    "--json",
                    "--param",
                    &format!("data={}", data.display()),
                ],
                0,
            )
            .stdout,
    );
    let ran_id = ran["id"].as_str().unwrap();
    let param = ran["params"]["data"].as_str().unwrap().to_owned();
    let hex = param.strip_prefix("sha256:").unwrap();
    std::fs::remove_file(dir.join("home/artifacts/sha256").join(&hex[..2]).join(hex)).unwrap();
    // A file in the working folder named like the digest must never stand in for it.
    std::fs::write(crate::support::root().join(&param), "IMPOSTOR").ok();
    let gone = home.expect(&["runs", "rerun", ran_id], 2);
    let _ = std::fs::remove_file(crate::support::root().join(&param));
    assert!(
        gone.stderr.starts_with(&format!(
            "error: param 'data': the file it had in run {ran_id} ({param}) is no longer in the store"
        )),
        "{}",
        gone.stderr
    );
    assert_eq!(gone.stderr.lines().count(), 1, "{}", gone.stderr);
}

/// Under `--runner process` the task cache keys a step by its program's bytes too: an
/// edited program runs again, never answered from the cache with its old output.
#[test]
fn the_task_cache_tells_an_edited_host_program_from_the_one_that_ran() {
    use std::os::unix::fs::PermissionsExt;

    let home = Home::new();
    let dir = home.dir.path();
    let bin = dir.join("bin");
    std::fs::create_dir(&bin).unwrap();
    let tool = bin.join("mytool");
    let write_tool = |word: &str| {
        std::fs::write(&tool, format!("#!/bin/sh\nprintf {word} > \"$1\"\n")).unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    write_tool("ONE");
    std::fs::write(
        dir.join("tool.yaml"),
        "name: tool\noutputs:\n- {name: out}\nimplementation:\n  container:\n    image: none\n    command: [mytool, {outputPath: out}]\n",
    )
    .unwrap();
    let pipeline = dir.join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        "name: tool\ntasks:\n  t: {component: tool.yaml}\n",
    )
    .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let run = |expect: &str| -> Value {
        let ran = home.sluice_with(
            &[
                "run",
                pipeline.to_str().unwrap(),
                "--json",
                "--runner",
                "process",
            ],
            &[("PATH", &path)],
        );
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        let record = record(&ran.stdout);
        let digest = task(&record, "t")["outputs"][0]["digest"]
            .as_str()
            .unwrap()
            .to_owned();
        let store = sluice_runtime::store::Store::open(&dir.join("home")).unwrap();
        assert_eq!(store.read(&digest).unwrap(), expect.as_bytes());
        record
    };
    run("ONE");
    // The same program: from the cache.
    let again = run("ONE");
    assert_eq!(task(&again, "t")["implementation"], "cache");
    // An edited program: it runs, and its output is the new one.
    write_tool("THREE");
    let edited = run("THREE");
    assert_eq!(task(&edited, "t")["attempts"], 1, "{edited}");
}
