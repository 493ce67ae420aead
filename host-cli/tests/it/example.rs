//! The example pipeline end to end on the real breast-cancer table: it validates,
//! splits, normalises, trains and evaluates, and the model's test accuracy, read from
//! the run's recorded metrics, reaches 0.93.

use sluice_runtime::store::{RunRecord, RunState, TaskState};

use crate::support::{Home, trained_model};

const PIPELINE: &str = "examples/breast-cancer/pipeline.yaml";

#[test]
fn the_example_pipeline_trains_an_accurate_model() {
    let home = Home::new();
    let ran = home.expect(&["run", PIPELINE], 0);
    // Not on a terminal: one plain line per event on stderr, the summary on stdout.
    for task in [
        "validate",
        "split",
        "normalize",
        "normalize-test",
        "train",
        "evaluate",
    ] {
        assert!(
            ran.stderr.contains(&format!("{task}: succeeded in ")),
            "{}",
            ran.stderr
        );
    }
    assert!(ran.stdout.contains("accuracy"), "{}", ran.stdout);

    let list = home.expect(&["runs", "list", "--json"], 0);
    let runs: Vec<RunRecord> = serde_json::from_str(&list.stdout).unwrap();
    let id = &runs[0].id;
    let shown = home.expect(&["runs", "show", &id[..15], "--json"], 0);
    let run: RunRecord = serde_json::from_str(&shown.stdout).unwrap();
    assert_eq!(run.state, RunState::Succeeded);
    assert!(run.tasks.iter().all(|t| t.state == TaskState::Succeeded));
    let evaluate = run.tasks.iter().find(|t| t.name == "evaluate").unwrap();
    let accuracy = evaluate.metrics["accuracy"];
    assert!(accuracy >= 0.93, "test accuracy {accuracy}");
    for metric in ["precision", "recall", "f1", "roc-auc"] {
        let v = evaluate.metrics[metric];
        assert!((0.0..=1.0).contains(&v), "{metric} = {v}");
    }
    // The data went in by digest, the split kept its rows, and the metrics are an artifact.
    let split = run.tasks.iter().find(|t| t.name == "split").unwrap();
    assert_eq!(
        split.metrics["train_rows"] + split.metrics["test_rows"],
        569.0
    );
    assert!(
        evaluate
            .outputs
            .iter()
            .any(|o| o.name == "metrics" && o.digest.starts_with("sha256:"))
    );

    let show = home.expect(&["runs", "show", id], 0);
    assert!(show.stdout.contains("evaluate"), "{}", show.stdout);
    let logs = home.expect(&["logs", id, "evaluate"], 0);
    assert!(logs.stdout.contains("confusion matrix"), "{}", logs.stdout);
}

#[test]
fn the_same_seed_gives_the_same_model() {
    let home = Home::new();
    let model = |ran: &crate::support::Ran| trained_model(&ran.record());
    let a = home.expect(&["run", PIPELINE, "--json"], 0);
    let b = home.expect(&["run", PIPELINE, "--json"], 0);
    assert_eq!(model(&a), model(&b), "same data and seed, different model");
    let c = home.expect(&["run", PIPELINE, "--json", "--param", "seed=7"], 0);
    assert_ne!(model(&a), model(&c), "another seed splits differently");
}

#[test]
fn the_container_variant_trains_the_same_model() {
    let home = Home::new();
    let model = |ran: &crate::support::Ran| -> (String, String) {
        let run: RunRecord = serde_json::from_str(&ran.stdout).unwrap();
        let train = run.tasks.iter().find(|t| t.name == "train").unwrap();
        let model = train.outputs.iter().find(|o| o.name == "model").unwrap();
        (model.digest.clone(), train.implementation.clone().unwrap())
    };
    let wasm = home.expect(&["run", PIPELINE, "--json"], 0);
    let container = home.expect(
        &[
            "run",
            "examples/breast-cancer/pipeline-container.yaml",
            "--json",
        ],
        0,
    );
    let (wasm_model, wasm_ran) = model(&wasm);
    let (container_model, container_ran) = model(&container);
    assert_eq!(wasm_ran, "wasm command");
    assert_eq!(container_ran, "container sluice-samples/train:0.1.0");
    assert_eq!(
        wasm_model, container_model,
        "the container trained another model"
    );
    let run: RunRecord = serde_json::from_str(&container.stdout).unwrap();
    assert!(crate::support::containers_of(&run.id).is_empty());
}
