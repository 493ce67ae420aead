//! The data-driven pipeline cases of `tests/cases/`, each run by this one runner
//! (see `tests/cases/README.md` for the format).

use std::collections::BTreeMap;

use serde::Deserialize;
use sluice_runtime::store::RunRecord;

use crate::support::{Home, root};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    #[serde(default = "run")]
    command: String,
    #[serde(default)]
    args: Vec<String>,
    exit: i32,
    state: Option<String>,
    #[serde(default)]
    tasks: BTreeMap<String, String>,
    #[serde(default)]
    errors: BTreeMap<String, String>,
    #[serde(default)]
    attempts: BTreeMap<String, u32>,
    #[serde(default)]
    outputs: BTreeMap<String, BTreeMap<String, String>>,
}

fn run() -> String {
    "run".into()
}

#[test]
fn pipeline_cases() {
    let dir = root().join("tests/cases");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .filter(|e| e.path().join("expect.yaml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert!(names.len() >= 15, "cases went missing: {names:?}");
    for name in names {
        check(&name);
    }
}

fn check(name: &str) {
    let case = root().join("tests/cases").join(name);
    let expect: Expect =
        serde_yaml_ng::from_str(&std::fs::read_to_string(case.join("expect.yaml")).unwrap())
            .unwrap_or_else(|e| panic!("{name}/expect.yaml: {e}"));
    let file = if case.join("component.yaml").is_file() {
        "component.yaml"
    } else {
        "pipeline.yaml"
    };
    let path = format!("tests/cases/{name}/{file}");
    let mut args: Vec<&str> = vec![expect.command.as_str(), path.as_str()];
    args.extend(expect.args.iter().map(String::as_str));
    if expect.command == "run" && expect.exit != 2 {
        args.push("--json");
    }
    let home = Home::new();
    let ran = home.sluice(&args);
    assert_eq!(
        ran.code, expect.exit,
        "case {name}: exit code\n--- stdout\n{}\n--- stderr\n{}",
        ran.stdout, ran.stderr
    );
    if expect.exit == 2 {
        insta::assert_snapshot!(name, ran.stderr);
        return;
    }
    let record: RunRecord = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("case {name}: run record: {e}\n{}", ran.stdout));
    if let Some(state) = &expect.state {
        assert_eq!(&record.state.to_string(), state, "case {name}: run state");
    }
    let task = |t: &str| {
        record
            .tasks
            .iter()
            .find(|x| x.name == t)
            .unwrap_or_else(|| panic!("case {name}: no task {t}"))
    };
    for (t, state) in &expect.tasks {
        assert_eq!(&task(t).state.to_string(), state, "case {name}: task {t}");
    }
    for (t, piece) in &expect.errors {
        let error = task(t).error.clone().unwrap_or_default();
        assert!(
            error.contains(piece.as_str()),
            "case {name}: task {t}: error '{error}' lacks '{piece}'"
        );
    }
    for (t, n) in &expect.attempts {
        assert_eq!(task(t).attempts, *n, "case {name}: attempts of {t}");
    }
    for (t, outputs) in &expect.outputs {
        for (output, value) in outputs {
            let got = task(t)
                .outputs
                .iter()
                .find(|o| &o.name == output)
                .and_then(|o| o.value.clone());
            assert_eq!(
                got.as_deref(),
                Some(value.as_str()),
                "case {name}: {t}.{output}"
            );
        }
    }
}
