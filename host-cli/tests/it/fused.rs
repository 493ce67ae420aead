//! Fused transform chains: the example pipeline's preprocessing runs as one chain by
//! default and gives byte-identical outputs to the same tasks run through files
//! (`--no-fuse`); `sluice plan` says which tasks were fused and why others were not; a
//! transform failing inside a chain fails its task and skips what follows; and a wiring
//! whose transform types disagree is refused before anything runs.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sluice_runtime::store::{RunRecord, RunState, TaskState};

use crate::support::{Home, root};

const PIPELINE: &str = "examples/breast-cancer/pipeline.yaml";
const CHAIN: [&str; 4] = ["validate", "split", "normalize", "normalize-test"];

fn record(ran: &crate::support::Ran) -> RunRecord {
    serde_json::from_str(&ran.stdout).unwrap()
}

/// Every output of every task: its digest, and whether it stayed in memory.
fn outputs(run: &RunRecord) -> BTreeMap<(String, String), (String, bool)> {
    run.tasks
        .iter()
        .flat_map(|t| {
            t.outputs.iter().map(|o| {
                let in_memory = o
                    .metadata
                    .as_ref()
                    .and_then(|m| m.get("in_memory"))
                    .is_some_and(|v| v == true);
                (
                    (t.name.clone(), o.name.clone()),
                    (o.digest.clone(), in_memory),
                )
            })
        })
        .collect()
}

#[test]
fn fused_and_unfused_runs_give_identical_outputs() {
    let home = Home::new();
    let fused = record(&home.expect(&["run", PIPELINE, "--json"], 0));
    let files = record(&home.expect(&["run", PIPELINE, "--json", "--no-fuse"], 0));
    assert_eq!(fused.state, RunState::Succeeded);

    for task in &fused.tasks {
        let in_chain = CHAIN.contains(&task.name.as_str());
        let implementation = task.implementation.as_deref().unwrap_or_default();
        let reason = task.implementation_reason.as_deref().unwrap_or_default();
        assert_eq!(
            implementation.starts_with("wasm transform"),
            in_chain,
            "{}: {implementation}",
            task.name
        );
        assert_eq!(reason.starts_with("fused chain 1"), in_chain, "{reason}");
    }
    assert!(files.tasks.iter().all(|t| {
        !t.implementation_reason
            .as_deref()
            .unwrap_or_default()
            .contains("fused")
    }));

    let (fused, files) = (outputs(&fused), outputs(&files));
    assert_eq!(
        fused.keys().collect::<Vec<_>>(),
        files.keys().collect::<Vec<_>>()
    );
    let held: Vec<String> = fused
        .iter()
        .filter(|(_, (_, in_memory))| *in_memory)
        .map(|((t, o), _)| format!("{t}.{o}"))
        .collect();
    // split.test is kept (the pipeline says so): stored, and handed on all the same.
    assert_eq!(held, ["split.train", "validate.validated"]);
    // Every output that was stored is the same bytes either way.
    for (key, (digest, in_memory)) in &fused {
        if !in_memory {
            assert_eq!(digest, &files[key].0, "{key:?}");
        }
    }
    assert!(files.values().all(|(_, in_memory)| !in_memory));
}

#[test]
fn plan_says_which_tasks_are_fused_and_why_others_are_not() {
    let home = Home::new();
    let plan = home.expect(&["plan", PIPELINE], 0).stdout;
    for line in [
        "fused chain 1: validate, split, normalize, normalize-test",
        "  in memory: validate.validated -> split.data",
        "  in memory: split.train -> normalize.data",
        "  in memory: split.test -> normalize-test.data",
        "  stored: split.test (the pipeline keeps it)",
        "  train: component 'Train logistic regression' declares no implementation.wasm.transform",
    ] {
        assert!(plan.contains(line), "{line}\n{plan}");
    }
    let plain = home.expect(&["plan", PIPELINE, "--no-fuse"], 0).stdout;
    assert!(plain.contains("no fused chains"), "{plain}");
    assert!(plain.contains("  split: --no-fuse"), "{plain}");
}

fn component(name: &str) -> String {
    root()
        .join("sample-components")
        .join(name)
        .join("component.yaml")
        .display()
        .to_string()
}

fn data(file: &str) -> String {
    root()
        .join("examples/breast-cancer/data")
        .join(file)
        .display()
        .to_string()
}

/// The `params` section every test pipeline here starts with: the example's table and
/// schema.
fn params() -> String {
    format!(
        "params:
  data: {{type: Dataset, default: {}}}
  schema: {{type: Artifact, default: {}}}
",
        data("breast_cancer.csv"),
        data("schema.json")
    )
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn a_failing_transform_fails_its_task_and_skips_the_rest_of_the_chain() {
    let home = Home::new();
    let pipeline = write(
        home.dir.path(),
        "chain.yaml",
        &format!(
            "name: broken-chain
{params}tasks:
  validate:
    component: {validate}
    inputs: {{data: {{param: data}}, schema: {{param: schema}}}}
  split:
    component: {split}
    inputs: {{data: {{from: validate.validated}}, seed: 1, stratify: nope}}
    retries: {{limit: 2, backoff: 1ms}}
  normalize:
    component: {normalize}
    inputs: {{data: {{from: split.train}}, exclude: diagnosis}}
",
            validate = component("validate"),
            split = component("split"),
            normalize = component("normalize"),
            params = params(),
        ),
    );
    let plan = home.expect(&["plan", pipeline.to_str().unwrap()], 0).stdout;
    assert!(
        plan.contains("fused chain 1: validate, split, normalize"),
        "{plan}"
    );

    let ran = home.sluice(&["run", pipeline.to_str().unwrap(), "--json"]);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    let run = record(&ran);
    let task = |name: &str| run.tasks.iter().find(|t| t.name == name).unwrap();
    assert_eq!(task("validate").state, TaskState::Succeeded);
    let split = task("split");
    assert_eq!(split.state, TaskState::Failed);
    // The step's own invalid-input error, not retried.
    assert_eq!(split.attempts, 1);
    let error = split.error.as_deref().unwrap_or_default();
    assert!(
        error.contains("stratify column 'nope' is not in the header"),
        "{error}"
    );
    let normalize = task("normalize");
    assert_eq!(normalize.state, TaskState::Skipped);
    assert!(
        normalize
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("upstream task 'split' failed")
    );
}

#[test]
fn kept_outputs_are_stored_even_inside_a_chain() {
    let home = Home::new();
    let pipeline = write(
        home.dir.path(),
        "keep.yaml",
        &format!(
            "name: keep
{params}tasks:
  validate:
    component: {validate}
    inputs: {{data: {{param: data}}, schema: {{param: schema}}}}
    keep: [validated]
  split:
    component: {split}
    inputs: {{data: {{from: validate.validated}}, seed: 1}}
",
            validate = component("validate"),
            split = component("split"),
            params = params(),
        ),
    );
    let plan = home.expect(&["plan", pipeline.to_str().unwrap()], 0).stdout;
    assert!(
        plan.contains("stored: validate.validated (the pipeline keeps it)"),
        "{plan}"
    );
    let run = record(&home.expect(&["run", pipeline.to_str().unwrap(), "--json"], 0));
    let outs = outputs(&run);
    let (digest, in_memory) = &outs[&("validate".to_owned(), "validated".to_owned())];
    assert!(!in_memory);
    // Kept, it is the input's own bytes.
    let original = std::fs::read(data("breast_cancer.csv")).unwrap();
    assert_eq!(digest, &sluice_runtime::spec::sha256_hex(&original));
    // And it was handed on in memory all the same.
    let split = run.tasks.iter().find(|t| t.name == "split").unwrap();
    assert!(
        split
            .implementation_reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("fused chain 1")
    );
}

#[test]
fn transforms_whose_types_disagree_are_refused_before_anything_runs() {
    let home = Home::new();
    let probe = write(
        home.dir.path(),
        "probe.yaml",
        &format!(
            "name: table probe
inputs:
  - {{name: data, type: Dataset}}
outputs:
  - {{name: out, type: Dataset}}
implementation:
  wasm:
    component: {}
    transform:
      tables: [data, out]
",
            sluice_test_artifacts::TABLE_PROBE
        ),
    );
    let pipeline = write(
        home.dir.path(),
        "mismatch.yaml",
        &format!(
            "name: mismatch
{params}tasks:
  validate:
    component: {validate}
    inputs: {{data: {{param: data}}, schema: {{param: schema}}}}
  probe:
    component: {probe}
    inputs: {{data: {{from: validate.validated}}}}
",
            validate = component("validate"),
            probe = probe.display(),
            params = params(),
        ),
    );
    let path = pipeline.to_str().unwrap();
    let expected = "tasks.probe.inputs.data: task 'validate' exports sluice:pipeline/transform@0.1.0 with `rows: u64";
    let checked = home.expect(&["validate", path], 2);
    assert!(checked.stderr.contains(expected), "{}", checked.stderr);
    assert!(
        checked
            .stderr
            .contains("but task 'probe' exports sluice:pipeline/transform@0.1.0 with `rows: u32"),
        "{}",
        checked.stderr
    );
    // Its own binary does not match what its component.yaml declares either.
    assert!(
        checked
            .stderr
            .contains("implementation.wasm.transform: declared, but the component exports sluice:pipeline/transform@0.1.0 with a type this Sluice cannot call"),
        "{}",
        checked.stderr
    );

    // So does the component file checked alone.
    let alone = home.expect(&["validate", probe.to_str().unwrap()], 2);
    assert!(
        alone
            .stderr
            .contains("probe.yaml: implementation.wasm.transform: declared, but"),
        "{}",
        alone.stderr
    );
    home.expect(&["validate", &component("normalize")], 0);

    let ran = home.expect(&["run", path], 2);
    assert!(ran.stderr.contains(expected), "{}", ran.stderr);
    let runs = home.expect(&["runs", "list", "--json"], 0);
    let runs: Vec<RunRecord> = serde_json::from_str(&runs.stdout).unwrap();
    assert!(runs.is_empty(), "nothing ran");
}

#[test]
fn composed_and_uncomposed_forms_agree() {
    let home = Home::new();
    let dir = home.dir.path();
    let composed = dir.join("validate-normalize.wasm");
    let made = home.expect(
        &[
            "compose",
            sluice_test_artifacts::NORMALIZE_STAGE,
            "--plug",
            sluice_test_artifacts::VALIDATE,
            "-o",
            composed.to_str().unwrap(),
        ],
        0,
    );
    assert!(
        made.stdout
            .contains("plugged sluice:pipeline/transform@0.1.0 <- "),
        "{}",
        made.stdout
    );
    let component = write(
        dir,
        "validate-normalize.yaml",
        &format!(
            "name: Validate then normalize
inputs:
  - {{name: data, type: Dataset}}
  - {{name: schema, type: Artifact}}
  - {{name: exclude, type: String}}
outputs:
  - {{name: report, type: Artifact}}
  - {{name: normalized, type: Dataset}}
  - {{name: fitted_stats, type: Artifact}}
implementation:
  wasm:
    component: {}
    transform:
      tables: [data, normalized]
",
            composed.display()
        ),
    );
    let params = params();
    let one = write(
        dir,
        "one.yaml",
        &format!(
            "name: composed
{params}tasks:
  prepare:
    component: {}
    inputs: {{data: {{param: data}}, schema: {{param: schema}}, exclude: diagnosis}}
",
            component.display()
        ),
    );
    let two = write(
        dir,
        "two.yaml",
        &format!(
            "name: uncomposed
{params}tasks:
  validate:
    component: {}
    inputs: {{data: {{param: data}}, schema: {{param: schema}}}}
  normalize:
    component: {}
    inputs: {{data: {{from: validate.validated}}, exclude: diagnosis}}
",
            self::component("validate"),
            self::component("normalize"),
        ),
    );
    let one = outputs(&record(
        &home.expect(&["run", one.to_str().unwrap(), "--json"], 0),
    ));
    let two = outputs(&record(
        &home.expect(&["run", two.to_str().unwrap(), "--json"], 0),
    ));
    let digest = |outs: &BTreeMap<(String, String), (String, bool)>, task: &str, output: &str| {
        outs[&(task.to_owned(), output.to_owned())].0.clone()
    };
    for (composed, task, output) in [
        ("normalized", "normalize", "normalized"),
        ("fitted_stats", "normalize", "fitted_stats"),
        ("report", "validate", "report"),
    ] {
        assert_eq!(
            digest(&one, "prepare", composed),
            digest(&two, task, output),
            "{composed}"
        );
    }
}

#[test]
fn compose_names_both_ends_of_an_export_that_does_not_fit() {
    let home = Home::new();
    let out = home.dir.path().join("bad.wasm");
    let ran = home.expect(
        &[
            "compose",
            sluice_test_artifacts::NORMALIZE_STAGE,
            "--plug",
            sluice_test_artifacts::TABLE_PROBE,
            "-o",
            out.to_str().unwrap(),
        ],
        2,
    );
    let line = ran.stderr.lines().next().unwrap_or_default();
    assert!(
        line.contains("normalize_stage.wasm imports `sluice:pipeline/transform@0.1.0`"),
        "{line}"
    );
    assert!(
        line.contains("table_probe.wasm exports `sluice:pipeline/transform@0.1.0`"),
        "{line}"
    );
    assert!(
        line.contains("record field `rows`: expected u64, found u32"),
        "{line}"
    );
    assert!(!out.exists());
}
