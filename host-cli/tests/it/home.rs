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

#[test]
fn two_runs_at_once_in_one_home_are_both_recorded_whole() {
    let home = Home::new();
    let pipeline = "examples/breast-cancer/pipeline.yaml";
    let children: Vec<_> = ["l2=0.5", "l2=2"]
        .iter()
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
    assert_eq!(list.len(), 2);
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
