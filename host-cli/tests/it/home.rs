//! Many `sluice` processes, one home: a new home opened by several processes at once,
//! and runs recorded side by side.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::support::{Home, cache_dir, root};

#[test]
fn eight_processes_open_a_new_home_at_once() {
    for round in 0..20 {
        let home = Home::new();
        let children: Vec<_> = (0..8)
            .map(|_| {
                Command::new(env!("CARGO_BIN_EXE_sluice"))
                    .args(["runs", "list", "--json"])
                    .current_dir(root())
                    .env("SLUICE_HOME", home.dir.path().join("home"))
                    .env("SLUICE_CACHE_DIR", cache_dir())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for child in children {
            let out = child.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "round {round}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "[]");
        }
    }
}

/// Nine runs at once: each process's writes wait for the others'
/// (a write transaction that read first would fail "database is locked" instead).
#[test]
fn runs_at_once_in_one_home_are_all_recorded_whole() {
    let home = Home::new();
    let pipeline = "examples/breast-cancer/pipeline.yaml";
    let children: Vec<_> = ["l2=0.5", "l2=2", "l2=1"]
        .iter()
        .cycle()
        .take(9)
        .map(|param| {
            Command::new(env!("CARGO_BIN_EXE_sluice"))
                .args(["run", pipeline, "--param", param])
                .current_dir(root())
                .env("SLUICE_HOME", home.dir.path().join("home"))
                .env("SLUICE_CACHE_DIR", cache_dir())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let list: Vec<Value> =
        serde_json::from_str(&home.expect(&["runs", "list", "--json"], 0).stdout).unwrap();
    assert_eq!(list.len(), 9);
    for run in list {
        let id = run["id"].as_str().unwrap();
        let shown: Value =
            serde_json::from_str(&home.expect(&["runs", "show", id, "--json"], 0).stdout).unwrap();
        assert_eq!(shown["state"], "succeeded", "{shown}");
        let tasks = shown["tasks"].as_array().unwrap();
        assert_eq!(tasks.len(), 7, "{shown}");
        for task in tasks {
            assert_eq!(task["state"], "succeeded", "{task}");
            assert!(!task["outputs"].as_array().unwrap().is_empty(), "{task}");
        }
    }
}

#[test]
fn a_run_whose_process_died_ends_interrupted_when_the_home_is_next_opened() {
    let home = Home::new();
    let spin = root().join("tests/cases/components/spin.yaml");
    let echo = root().join("tests/cases/components/echo.yaml");
    let pipeline = home.dir.path().join("pipeline.yaml");
    std::fs::write(
        &pipeline,
        format!(
            "name: killed\ntasks:\n  loop: {{component: {}, timeout: 10m}}\n  after: {{component: {}, inputs: {{text: hi}}, after: [loop]}}\n",
            spin.display(),
            echo.display()
        ),
    )
    .unwrap();
    let (mut child, _stderr, seen) = home.start_run(&pipeline, "loop: started");
    assert!(seen.contains("loop: started"), "{seen}");
    // An attempt's start is recorded a few milliseconds after it (a shorter one's with
    // its end): let it be, then kill the process.
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    // The next process to open the home ends the record, saying why.
    let list: Vec<Value> =
        serde_json::from_str(&home.expect(&["runs", "list", "--json"], 0).stdout).unwrap();
    let id = list[0]["id"].as_str().unwrap();
    let shown: Value =
        serde_json::from_str(&home.expect(&["runs", "show", id, "--json"], 0).stdout).unwrap();
    assert_eq!(shown["state"], "interrupted", "{shown}");
    assert!(
        shown["error"]
            .as_str()
            .unwrap()
            .contains("ended before the run did"),
        "{shown}"
    );
    let task = |name: &str| {
        shown["tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap()
            .clone()
    };
    assert_eq!(task("loop")["state"], "failed", "{shown}");
    assert!(
        task("loop")["error"]
            .as_str()
            .unwrap()
            .starts_with("interrupted: ")
    );
    assert_eq!(task("after")["state"], "skipped", "{shown}");
    assert_eq!(
        task("after")["error"],
        "not recorded as started: the run was interrupted (an attempt's start is recorded a few milliseconds after it, so it may have run)"
    );
}

#[test]
fn store_gc_removes_only_what_nothing_refers_to() {
    let home = Home::new();
    home.expect(&["run", "examples/breast-cancer/pipeline.yaml"], 0);
    // An artifact no run records (as a run that died between storing an output and
    // recording it would leave), and a write that never finished.
    let store = sluice_runtime::store::Store::open(&home.dir.path().join("home")).unwrap();
    let stray = store.put_bytes(b"nobody's output").unwrap();
    drop(store);
    std::fs::write(home.dir.path().join("home/tmp/.tmpUnfinished"), b"half").unwrap();
    let before: Value =
        serde_json::from_str(&home.expect(&["runs", "list", "--json"], 0).stdout).unwrap();
    let run = before[0]["id"].as_str().unwrap().to_owned();

    let dry = home.expect(&["store", "gc", "--dry-run"], 0);
    assert!(
        dry.stdout
            .contains(&format!("would remove {}", stray.digest)),
        "{}",
        dry.stdout
    );
    assert!(
        dry.stdout.contains("would remove 1 artifacts"),
        "{}",
        dry.stdout
    );
    let path = |digest: &str| {
        home.dir
            .path()
            .join("home/artifacts/sha256")
            .join(&digest[7..9])
            .join(&digest[7..])
    };
    assert!(path(&stray.digest).exists(), "a dry run removes nothing");

    let gc = home.expect(&["store", "gc"], 0);
    assert!(
        gc.stdout.contains("removed 1 artifacts") && gc.stdout.contains("and 1 unfinished writes"),
        "{}",
        gc.stdout
    );
    assert!(!path(&stray.digest).exists());
    assert!(!home.dir.path().join("home/tmp/.tmpUnfinished").exists());
    // Everything the run recorded is still there: its outputs read back whole, and a
    // rerun from the record succeeds.
    let shown: Value =
        serde_json::from_str(&home.expect(&["runs", "show", &run, "--json"], 0).stdout).unwrap();
    for task in shown["tasks"].as_array().unwrap() {
        for output in task["outputs"].as_array().unwrap() {
            if output["metadata"]["in_memory"] == true {
                continue;
            }
            let digest = output["digest"].as_str().unwrap();
            assert!(path(digest).exists(), "{}: {digest}", task["name"]);
        }
    }
    home.expect(&["runs", "rerun", &run], 0);
    let again = home.expect(&["store", "gc"], 0);
    assert!(
        again.stdout.contains("removed 0 artifacts"),
        "{}",
        again.stdout
    );
}

/// A host-process step outlives a Sluice killed with SIGKILL (nothing in Sluice runs
/// then); the next Sluice process to open the home stops it.
#[test]
fn a_killed_runs_host_processes_are_stopped_when_the_home_is_next_opened() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let home = Home::new();
    let dir = home.dir.path();
    std::fs::write(
        dir.join("nap.yaml"),
        "name: nap\nimplementation:\n  container:\n    image: none\n    command: [sleep, '317']\n",
    )
    .unwrap();
    let pipeline = dir.join("p.yaml");
    std::fs::write(&pipeline, "name: p\ntasks:\n  nap: {component: nap.yaml}\n").unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["run", pipeline.to_str().unwrap(), "--runner", "process"])
        .env("SLUICE_HOME", dir.join("home"))
        .env("SLUICE_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The step's process group, once it runs: `runs/<run>/<task>/<attempt>/.process`.
    let find = || -> Option<u32> {
        let runs = std::fs::read_dir(dir.join("home/runs")).ok()?;
        for run in runs.flatten() {
            for task in std::fs::read_dir(run.path()).ok()?.flatten() {
                for attempt in std::fs::read_dir(task.path())
                    .into_iter()
                    .flatten()
                    .flatten()
                {
                    if let Ok(text) = std::fs::read_to_string(attempt.path().join(".process")) {
                        return text.split_whitespace().next()?.parse().ok();
                    }
                }
            }
        }
        None
    };
    let started = Instant::now();
    let pid = loop {
        if let Some(pid) = find() {
            break pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the step never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let running = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            !stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.starts_with(" Z"))
        })
    };
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(running(pid), "the step ended with Sluice");
    home.expect(&["runs", "list"], 0);
    let stopped = Instant::now();
    while running(pid) {
        assert!(
            stopped.elapsed() < Duration::from_secs(5),
            "the step (pid {pid}) still runs after the home was opened again"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
