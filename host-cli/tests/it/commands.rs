//! The subcommands besides `run`: running one component alone, plans, run records,
//! logs, and what bad input looks like.

use crate::support::{Home, root};

#[test]
fn a_component_runs_on_its_own_and_writes_its_outputs() {
    let home = Home::new();
    let out = home.dir.path().join("out");
    let out_arg = out.to_str().unwrap();
    let ran = home.expect(
        &[
            "component",
            "run",
            "sample-components/normalize/component.yaml",
            "--input",
            "data=examples/breast-cancer/data/breast_cancer.csv",
            "--input",
            "exclude=diagnosis",
            "--output-dir",
            out_arg,
        ],
        0,
    );
    assert!(ran.stdout.contains("wrote "), "{}", ran.stdout);
    let normalized = std::fs::read_to_string(out.join("normalized")).unwrap();
    assert_eq!(normalized.lines().count(), 570, "header and 569 rows");
    assert!(normalized.starts_with("mean_radius,"));
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("fitted_stats")).unwrap()).unwrap();
    assert!(stats.is_object());
    // Ordinary files, as the user's umask makes them; never world-writable.
    use std::os::unix::fs::PermissionsExt;
    for (umask, mode) in [("022", 0o644), ("077", 0o600)] {
        let out = home.dir.path().join(format!("out-{umask}"));
        home.expect_under_umask(
            umask,
            &[
                "component",
                "run",
                "sample-components/normalize/component.yaml",
                "--input",
                "data=examples/breast-cancer/data/breast_cancer.csv",
                "--input",
                "exclude=diagnosis",
                "--output-dir",
                out.to_str().unwrap(),
            ],
            0,
        );
        for file in ["normalized", "fitted_stats"] {
            let got = std::fs::metadata(out.join(file))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(got, mode, "{file} under umask {umask}: {got:o}");
        }
    }

    let missing = home.expect(
        &[
            "component",
            "run",
            "sample-components/normalize/component.yaml",
            "--output-dir",
            out_arg,
        ],
        2,
    );
    assert_eq!(
        missing.stderr.trim(),
        "error: sample-components/normalize/component.yaml: --input: missing required inputs 'data' (Dataset), 'exclude' (String); pass --input name=value"
    );
}

#[test]
fn plans_render_as_text_dot_and_json() {
    let home = Home::new();
    let text = home.expect(&["plan", "examples/breast-cancer/pipeline.yaml"], 0);
    assert!(
        text.stdout.contains("stage 4\n  normalize-test"),
        "{}",
        text.stdout
    );
    let dot = home.expect(
        &[
            "plan",
            "examples/breast-cancer/pipeline.yaml",
            "--format",
            "dot",
        ],
        0,
    );
    assert!(
        dot.stdout.starts_with("digraph \"breast-cancer\" {"),
        "{}",
        dot.stdout
    );
    assert!(
        dot.stdout.contains("[label=\"model -> model\"]"),
        "{}",
        dot.stdout
    );
    // The example's first four steps run as one fused chain, drawn as its cluster.
    assert!(
        dot.stdout
            .contains("subgraph cluster_chain0 {\n    label=\"fused chain 1\";"),
        "{}",
        dot.stdout
    );
    let json = home.expect(
        &[
            "plan",
            "examples/breast-cancer/pipeline.yaml",
            "--format",
            "json",
            "-p",
            "seed=3",
        ],
        0,
    );
    let plan: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(plan["tasks"].as_array().unwrap().len(), 7);
    assert_eq!(plan["deploy"]["model"], "breast-cancer");
    assert_eq!(plan["deploy"]["task"], "package");
    assert_eq!(plan["deploy"]["gate"], "accuracy >= 0.93");
    assert_eq!(plan["params"][3]["value"], "3");
    assert_eq!(plan["params"][3]["origin"], "given");
    assert_eq!(
        plan["fusion"]["chains"][0],
        serde_json::json!(["validate", "split", "normalize", "normalize-test"])
    );
    assert_eq!(
        plan["fusion"]["not_fused"]["train"],
        "component 'Train logistic regression' declares no implementation.wasm.transform"
    );
}

#[test]
fn a_failed_run_exits_1_and_keeps_the_logs() {
    let home = Home::new();
    let ran = home.expect(
        &[
            "run",
            "tests/cases/run-failure-skips-downstream/pipeline.yaml",
        ],
        1,
    );
    assert!(
        ran.stdout.contains("logs of the failed task: sluice logs"),
        "{}",
        ran.stdout
    );
    let list = home.expect(&["runs", "list"], 0);
    assert!(list.stdout.contains("failed"), "{}", list.stdout);
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&home.expect(&["runs", "list", "--json"], 0).stdout).unwrap();
    let id = runs[0]["id"].as_str().unwrap();
    let logs = home.expect(&["logs", id, "a"], 0);
    assert!(
        logs.stdout.contains("== stderr ==\nfailing with 1"),
        "{}",
        logs.stdout
    );
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let home = Home::new();
    for (args, expected) in [
        (
            vec!["runs", "show", "1999"],
            "error: no run matches '1999' (see `sluice runs list`)",
        ),
        (
            vec!["run", "no/such/pipeline.yaml"],
            "error: cannot read no/such/pipeline.yaml: No such file or directory (os error 2)",
        ),
        (
            vec!["run", "sample-components/split/component.yaml"],
            "error: sample-components/split/component.yaml is a component; run it with `sluice component run`",
        ),
        (
            vec![
                "run",
                "examples/breast-cancer/pipeline.yaml",
                "--param",
                "data=/no/such.csv",
            ],
            "error: param 'data': cannot import /no/such.csv: cannot read /no/such.csv: No such file or directory (os error 2)",
        ),
        // Devices and folders are refused by what they are, never read.
        (
            vec!["run", "/dev/zero"],
            "error: cannot read /dev/zero: is a character device, not a regular file",
        ),
        (
            vec!["validate", "/dev/zero"],
            "error: cannot read /dev/zero: is a character device, not a regular file",
        ),
        (
            vec!["component", "run", "/dev/zero", "-o", "out"],
            "error: cannot read /dev/zero: is a character device, not a regular file",
        ),
        (
            vec!["run", "examples"],
            "error: cannot read examples: is a folder, not a regular file",
        ),
        (
            vec![
                "run",
                "examples/breast-cancer/pipeline.yaml",
                "--param",
                "seed",
            ],
            "error: invalid value 'seed' for '--param <NAME=VALUE>': expected name=value, found 'seed' (see `sluice run --help`)",
        ),
        (
            vec!["--home", "h", "runs", "resume", "r", "--parallelism", "x"],
            "error: invalid value 'x' for '--parallelism <N>': invalid digit found in string (see `sluice runs resume --help`)",
        ),
        (
            vec![
                "run",
                "tests/cases/run-params/pipeline.yaml",
                "--prefer",
                "nosuchtask=wasm",
            ],
            "error: --prefer nosuchtask=...: tests/cases/run-params/pipeline.yaml has no task 'nosuchtask' (its tasks: a, b)",
        ),
        (
            vec![
                "run",
                "examples/breast-cancer/pipeline.yaml",
                "--timeout",
                "0s",
            ],
            "error: invalid value '0s' for '--timeout <DURATION>': expected a duration longer than 0 (see `sluice run --help`)",
        ),
    ] {
        let ran = home.expect(&args, 2);
        let first = ran.stderr.lines().next().unwrap_or_default();
        assert_eq!(first, expected, "sluice {}", args.join(" "));
    }
}

#[test]
fn every_sample_component_validates() {
    let home = Home::new();
    let mut files = vec!["examples/breast-cancer/pipeline.yaml".to_owned()];
    for entry in std::fs::read_dir(root().join("sample-components"))
        .unwrap()
        .flatten()
    {
        let c = entry.path().join("component.yaml");
        if c.is_file() {
            files.push(c.strip_prefix(root()).unwrap().display().to_string());
        }
    }
    assert!(files.len() >= 6);
    let args: Vec<&str> = std::iter::once("validate")
        .chain(files.iter().map(String::as_str))
        .collect();
    let ran = home.expect(&args, 0);
    assert_eq!(
        ran.stdout.lines().filter(|l| l.contains(": ok (")).count(),
        files.len()
    );
}

#[test]
fn ctrl_c_interrupts_running_wasm_and_records_the_run_as_cancelled() {
    use std::process::Command;

    let home = Home::new();
    let pipeline = home.dir.path().join("spin.yaml");
    let spin = root().join("tests/cases/components/spin.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: spin\ntasks:\n  a: {{component: {}}}\n  b: {{component: {}, after: [a]}}\n",
            spin.display(),
            spin.display()
        ),
    )
    .unwrap();
    let (mut child, mut stderr, seen) = home.start_run(&pipeline, "a: started");
    assert!(seen.contains("a: started"), "{seen}");
    let started = std::time::Instant::now();
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}{rest}");
    assert!(
        started.elapsed().as_secs() < 5,
        "cancelling took {:?}",
        started.elapsed()
    );
    assert!(rest.contains("a: cancelled"), "{rest}");

    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&home.expect(&["runs", "list", "--json"], 0).stdout).unwrap();
    assert_eq!(runs[0]["state"], "cancelled");
    let run: serde_json::Value = serde_json::from_str(
        &home
            .expect(
                &["runs", "show", runs[0]["id"].as_str().unwrap(), "--json"],
                0,
            )
            .stdout,
    )
    .unwrap();
    assert_eq!(run["tasks"][0]["state"], "cancelled");
    assert_eq!(run["tasks"][1]["state"], "cancelled");
}

/// `text` as a regular expression that matches it alone.
fn regex_escape(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '/' || c == '_' || c == '-' {
                c.to_string()
            } else {
                format!("\\{c}")
            }
        })
        .collect()
}

#[test]
fn plan_and_run_record_snapshots() {
    let home = Home::new();
    let plan = home.expect(&["plan", "examples/breast-cancer/pipeline.yaml"], 0);
    insta::assert_snapshot!("plan_text", plan.stdout);

    home.expect(
        &[
            "run",
            "tests/cases/run-params/pipeline.yaml",
            "-p",
            "text=snap",
        ],
        0,
    );
    let runs: Vec<serde_json::Value> =
        serde_json::from_str(&home.expect(&["runs", "list", "--json"], 0).stdout).unwrap();
    let show = home.expect(&["runs", "show", runs[0]["id"].as_str().unwrap()], 0);
    let mut settings = insta::Settings::clone_current();
    // Paths are recorded absolute.
    settings.add_filter(&regex_escape(root().to_str().unwrap()), "[root]");
    settings.add_filter(r"\d{8}-\d{6}-[0-9a-f]{4}", "[run]");
    settings.add_filter(r"\b[0-9a-f]{12}\b", "[digest]");
    settings.add_filter(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2} UTC", "[time]");
    settings.add_filter(r"\b\d+(\.\d+)?(ms|s)\b", "[duration]");
    // Column widths follow the values above; keep the words, not the padding.
    settings.add_filter(r"[─═]+", "─");
    settings.add_filter(r" {2,}", " ");
    settings.bind(|| insta::assert_snapshot!("runs_show", show.stdout));
}

#[test]
fn bad_data_fails_validation_naming_row_and_column() {
    let home = Home::new();
    let good =
        std::fs::read_to_string(root().join("examples/breast-cancer/data/breast_cancer.csv"))
            .unwrap();
    let mut lines: Vec<String> = good.lines().map(str::to_owned).collect();
    let mut fields: Vec<&str> = lines[17].split(',').collect();
    fields[2] = "abc";
    lines[17] = fields.join(",");
    let bad = home.dir.path().join("bad.csv");
    std::fs::write(&bad, lines.join("\n") + "\n").unwrap();
    let param = format!("data={}", bad.display());
    let ran = home.expect(
        &[
            "run",
            "examples/breast-cancer/pipeline.yaml",
            "--param",
            &param,
        ],
        1,
    );
    assert!(
        ran.stderr.contains("validate: failed in ")
            && ran
                .stderr
                .contains("row 18, column 'mean_perimeter': expected a number, found 'abc'"),
        "{}",
        ran.stderr
    );
    assert!(
        ran.stderr
            .contains("split: skipped: upstream task 'validate' failed"),
        "{}",
        ran.stderr
    );
}

#[test]
fn an_unreachable_docker_engine_is_one_clear_line() {
    let home = Home::new();
    let ran = home.sluice_with(
        &["run", "examples/breast-cancer/pipeline-container.yaml"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    // The environment failed, not the input: exit code 3.
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    let line = ran.stderr.lines().next().unwrap_or_default();
    assert!(
        line.starts_with("error: task 'train': cannot reach the Docker Engine at unix:///nonexistent/docker.sock: ")
            && line.ends_with("; is the Docker daemon running?"),
        "{line}"
    );
    // A pipeline with no container step does not need the engine at all.
    let ok = home.sluice_with(
        &["run", "examples/breast-cancer/pipeline.yaml"],
        &[("DOCKER_HOST", "unix:///nonexistent/docker.sock")],
    );
    assert_eq!(ok.code, 0, "{}", ok.stderr);
}

/// Exit codes tell the user's mistakes (2) from the environment's failures (3).
#[test]
fn exit_codes_tell_bad_input_from_a_failing_environment() {
    let home = Home::new();
    // Nothing listens on port 1 of the loopback: the registry is unreachable.
    let ran = home.sluice(&[
        "pull",
        "oci://127.0.0.1:1/sluice/probe:1",
        "--insecure-registry",
        "127.0.0.1:1",
    ]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(
        ran.stderr.starts_with(
            "error: cannot reach the registry 127.0.0.1:1 for oci://127.0.0.1:1/sluice/probe:1: "
        ),
        "{}",
        ran.stderr
    );
    // A reference that is not one is the user's to fix.
    let bad = home.sluice(&["pull", "oci://UPPER/case:1"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    // A home on a file system with no room left: the run database cannot be created.
    let full = home.dir.path().join("full");
    std::fs::create_dir(&full).unwrap();
    let sluice = env!("CARGO_BIN_EXE_sluice");
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount -t tmpfs -o size=8k tmpfs "$1" && exec "$2" --home "$1" runs list"#)
        .args(["sh", full.to_str().unwrap(), sluice])
        .output()
        .expect("unshare (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // A home that is a file: the environment's to fix, said in one line.
    let afile = home.dir.path().join("afile");
    std::fs::write(&afile, "").unwrap();
    let ran = home.sluice(&["--home", afile.to_str().unwrap(), "runs", "list"]);
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert_eq!(
        ran.stderr,
        format!(
            "error: cannot open the Sluice home {0}: cannot use {0}: it is not a folder\n",
            afile.display()
        )
    );
    // A home that exists on a file system mounted read-only.
    let frozen = home.dir.path().join("frozen");
    home.expect(&["--home", frozen.to_str().unwrap(), "runs", "list"], 0);
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" --home "$1" runs list"#)
        .args(["sh", frozen.to_str().unwrap(), sluice])
        .output()
        .expect("unshare (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(
        stderr,
        format!(
            "error: cannot open the Sluice home {0}: cannot write in {0}: Read-only file system (os error 30)\n",
            frozen.display()
        )
    );
    // Checking a pipeline's wiring loads its components through the home's compile
    // cache: a read-only home fails the check as the environment's failure.
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(r#"mount --bind "$1" "$1" && mount -o remount,bind,ro "$1" && exec "$2" --home "$1" validate examples/breast-cancer/pipeline.yaml"#)
        .args(["sh", frozen.to_str().unwrap(), sluice])
        .current_dir(sluice_test_artifacts::ROOT)
        .output()
        .expect("unshare (util-linux) runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert!(stderr.contains("Read-only file system"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    // A server the home names that does not answer: the repository is changed (here, it
    // has no such model to change) and the server's silence is a warning.
    let ran = home.sluice_with(
        &["models", "rollback", "iris"],
        &[
            ("SLUICE_SERVER_URL", "http://127.0.0.1:1"),
            ("SLUICE_ADMIN_TOKEN", "0123456789abcdef0123"),
        ],
    );
    assert_eq!(ran.code, 2, "{}", ran.stderr);
    let lines: Vec<&str> = ran.stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{}", ran.stderr);
    assert!(
        lines[0].starts_with("warning: cannot reach the server at http://127.0.0.1:1: "),
        "{}",
        ran.stderr
    );
    assert!(lines[1].starts_with("error: "), "{}", ran.stderr);
    // A bundle of container images with no Docker Engine to export them.
    let component = home.dir.path().join("boxed.yaml");
    std::fs::write(
        &component,
        "name: boxed\nimplementation:\n  container: {image: 'sluice-samples/probe:0.1.0', command: [probe, noop]}\n",
    )
    .unwrap();
    let pipeline = home.dir.path().join("boxed-pipeline.yaml");
    std::fs::write(
        &pipeline,
        "name: boxed\ntasks:\n  a: {component: boxed.yaml}\n",
    )
    .unwrap();
    let bundle = home.dir.path().join("boxed.tar");
    let ran = home.sluice_with(
        &[
            "bundle",
            pipeline.to_str().unwrap(),
            "-o",
            bundle.to_str().unwrap(),
            "--with-images",
        ],
        &[("DOCKER_HOST", "unix:///nowhere/docker.sock")],
    );
    assert_eq!(ran.code, 3, "{}", ran.stderr);
    assert!(ran.stderr.contains("Docker Engine"), "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "{}", ran.stderr);
}

#[test]
fn ctrl_c_stops_running_containers_and_removes_them() {
    use std::process::Command;

    let home = Home::new();
    let pipeline = home.dir.path().join("spin.yaml");
    let component = home.dir.path().join("spin-container.yaml");
    std::fs::write(
        &component,
        "name: spin\nimplementation:\n  container: {image: 'sluice-samples/probe:0.1.0', command: [probe, spin]}\n",
    )
    .unwrap();
    std::fs::write(
        &pipeline,
        format!(
            "name: spin\ntasks:\n  a: {{component: {}}}\n",
            component.display()
        ),
    )
    .unwrap();
    let (mut child, _stderr, seen) = home.start_run(&pipeline, "a: started");
    assert!(
        seen.contains("a: started (container sluice-samples/probe:0.1.0"),
        "{seen}"
    );
    let run_id = seen
        .lines()
        .find_map(|l| l.split("run ").nth(1)?.split(':').next())
        .unwrap()
        .to_owned();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(
        crate::support::containers_of(&run_id).len(),
        1,
        "the container is not running"
    );
    Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130));
    assert!(
        crate::support::containers_of(&run_id).is_empty(),
        "a container outlived the run"
    );
}

#[test]
fn a_closed_stdout_ends_quietly_and_terminal_escapes_are_shown_escaped() {
    use std::process::{Command, Stdio};
    let home = Home::new();
    // A task whose parameter and output carry escape sequences that would clear the
    // screen and retitle the terminal.
    let evil = "\x1b[2J\x1b]0;pwned\x07";
    let component = home.dir.path().join("shout.yaml");
    std::fs::write(
        &component,
        format!(
            "name: shout\ninputs:\n- {{name: text, type: String}}\nimplementation:\n  wasm:\n    component: {}\n    args: [echo, {{inputValue: text}}]\n",
            sluice_test_artifacts::PROBE
        ),
    )
    .unwrap();
    let pipeline = home.dir.path().join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: shout\nparams:\n  text: {{type: String}}\ntasks:\n  a: {{component: {}, inputs: {{text: {{param: text}}}}}}\n",
            component.display()
        ),
    )
    .unwrap();
    let ran = home.expect(
        &[
            "run",
            pipeline.to_str().unwrap(),
            "--param",
            &format!("text={evil}"),
        ],
        0,
    );
    assert!(!ran.stderr.contains('\x1b'), "{:?}", ran.stderr);
    let list: serde_json::Value =
        serde_json::from_str(&home.expect(&["runs", "list", "--json"], 0).stdout).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    for args in [
        vec!["runs", "show", id.as_str()],
        vec!["logs", id.as_str(), "a"],
        vec!["runs", "show", id.as_str(), "--json"],
    ] {
        let shown = home.expect(&args, 0);
        assert!(
            !shown.stdout.contains('\x1b') && !shown.stdout.contains('\x07'),
            "{args:?}: {:?}",
            shown.stdout
        );
        assert!(
            shown.stdout.contains("\\u001b[2J"),
            "{args:?}: {}",
            shown.stdout
        );
    }
    // A component's name is escaped in `plan`'s fusion lines as on its stage lines.
    let named = home.dir.path().join("named.yaml");
    std::fs::write(
        &named,
        format!(
            "name: \"we\\nird\\u001b[2J\"\nimplementation:\n  wasm:\n    component: {}\n    args: [noop]\n",
            sluice_test_artifacts::PROBE
        ),
    )
    .unwrap();
    let named_pipeline = home.dir.path().join("named-pipeline.yaml");
    std::fs::write(
        &named_pipeline,
        "name: p\ntasks:\n  a: {component: named.yaml}\n",
    )
    .unwrap();
    let plan = home
        .expect(&["plan", named_pipeline.to_str().unwrap()], 0)
        .stdout;
    assert!(!plan.contains('\x1b'), "{plan:?}");
    let not_fused = plan.split("not fused:\n").nth(1).unwrap();
    assert_eq!(
        not_fused,
        "  a: component 'we\\nird\\u{1b}[2J' declares no implementation.wasm.transform\n"
    );

    // JSON output stays JSON, with the value as it was.
    let json: serde_json::Value =
        serde_json::from_str(&home.expect(&["runs", "show", &id, "--json"], 0).stdout).unwrap();
    assert_eq!(json["params"]["text"], evil);

    // A reader that has gone (`| head -1`): every command ends quietly, exit code 0.
    for args in [
        vec!["runs", "list"],
        vec!["runs", "show", id.as_str()],
        vec!["logs", id.as_str(), "a"],
        vec!["plan", "examples/breast-cancer/pipeline.yaml"],
        vec!["validate", "examples/breast-cancer/pipeline.yaml"],
        vec!["models", "list"],
    ] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .current_dir(root())
            .env("SLUICE_HOME", home.dir.path().join("home"))
            .env("SLUICE_CACHE_DIR", crate::support::cache_dir())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.stderr.is_empty(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_wasm_component_path_must_be_a_regular_file() {
    let home = Home::new();
    for (wasm, what) in [("/dev/zero", "a character device"), ("/tmp", "a folder")] {
        let component = home.dir.path().join("c.yaml");
        std::fs::write(
            &component,
            format!("name: c\nimplementation:\n  wasm: {{component: {wasm}}}\n"),
        )
        .unwrap();
        let out = home.dir.path().join("out");
        let ran = home.expect(
            &[
                "component",
                "run",
                component.to_str().unwrap(),
                "-o",
                out.to_str().unwrap(),
            ],
            2,
        );
        assert_eq!(
            ran.stderr.trim(),
            format!(
                "error: task 'c': cannot read wasm component {wasm}: is {what}, not a regular file"
            )
        );
    }
}

/// A guest asleep in a host call is stopped by the deadline at once, not left running.
#[test]
fn component_run_stops_an_attempt_at_its_timeout() {
    let home = Home::new();
    let component = home.dir.path().join("sleep.yaml");
    std::fs::write(
        &component,
        format!(
            "name: sleep\nimplementation:\n  wasm: {{component: {}, args: [sleep, '600000']}}\n",
            sluice_test_artifacts::PROBE
        ),
    )
    .unwrap();
    let out = home.dir.path().join("out");
    let ran = home.expect(
        &[
            "component",
            "run",
            component.to_str().unwrap(),
            "-o",
            out.to_str().unwrap(),
            "--timeout",
            "1s",
        ],
        1,
    );
    assert!(
        ran.stderr.contains("sleep: failed in 1.0") && ran.stderr.contains("timed out after 1s"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("panicked"), "{}", ran.stderr);
}

/// Container and process steps are measured while they run; the step is stopped once
/// its outputs pass the limit, not when it ends.
#[test]
fn a_process_step_writing_past_its_storage_limit_is_stopped() {
    let home = Home::new();
    let dir = home.dir.path();
    std::fs::write(
        dir.join("fill.yaml"),
        "name: fill\noutputs:\n- {name: out}\nimplementation:\n  container:\n    image: none\n    command: [sh, -c, 'head -c 5000000 /dev/zero > \"$0\"; sleep 600', {outputPath: out}]\n",
    )
    .unwrap();
    let pipeline = dir.join("p.yaml");
    std::fs::write(
        &pipeline,
        "name: p\ntasks:\n  fill: {component: fill.yaml, resources: {ephemeral_storage: 1Mi}}\n",
    )
    .unwrap();
    let ran = home.expect(
        &["run", pipeline.to_str().unwrap(), "--runner", "process"],
        1,
    );
    // Stopped within milliseconds (`failed in 255ms`), long before its sleep ends.
    assert!(
        ran.stderr
            .contains("ms: ephemeral storage limit of 1Mi exceeded (the outputs held 4.8Mi"),
        "{}",
        ran.stderr
    );
}

/// A program the process runner needs and the host lacks is the environment's failure
/// (exit 3), named before anything runs.
#[test]
fn a_program_missing_from_the_host_is_the_environments_failure() {
    let home = Home::new();
    let dir = home.dir.path();
    std::fs::write(
        dir.join("c.yaml"),
        "name: c\nimplementation:\n  container:\n    image: none\n    command: [sluice-no-such-program]\n",
    )
    .unwrap();
    let pipeline = dir.join("p.yaml");
    std::fs::write(&pipeline, "name: p\ntasks:\n  c: {component: c.yaml}\n").unwrap();
    let ran = home.expect(
        &["run", pipeline.to_str().unwrap(), "--runner", "process"],
        3,
    );
    assert!(
        ran.stderr
            .contains("cannot find the program 'sluice-no-such-program' on this host's PATH"),
        "{}",
        ran.stderr
    );
}
