//! Plan construction: bindings, ordering, and the one-line errors for each kind of mistake.

use std::path::Path;

use super::*;
use crate::spec::PipelineFile;

const PRODUCER: &str = r#"
name: producer
inputs:
- {name: rows, type: Integer, default: 10}
- {name: note, type: String, optional: true}
outputs:
- {name: data, type: Dataset}
- {name: count, type: Integer}
implementation:
  wasm: {component: p.wasm, resources: {memory: 128Mi}}
"#;

const CONSUMER: &str = r#"
name: consumer
inputs:
- {name: data, type: Dataset}
- {name: n, type: Integer, optional: true}
outputs:
- {name: model, type: Model}
implementation:
  wasm: {component: c.wasm, args: [{inputPath: data}, {outputPath: model}]}
"#;

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("producer.yaml"), PRODUCER).unwrap();
        std::fs::write(dir.path().join("consumer.yaml"), CONSUMER).unwrap();
        Fixture { dir }
    }

    fn plan(&self, pipeline: &str, args: &[(&str, &str)]) -> Result<Plan, Vec<String>> {
        let path = self.dir.path().join("pipeline.yaml");
        std::fs::write(&path, pipeline).unwrap();
        let file = PipelineFile::load(&path).map_err(|e| vec![e.to_string()])?;
        let args: Vec<(String, String)> = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let prefix = format!("{}/", self.dir.path().display());
        Plan::build(&file, &args).map_err(|errs| {
            errs.iter()
                .map(|e| e.to_string().replace(&prefix, ""))
                .collect()
        })
    }
}

#[test]
fn binds_and_orders_tasks() {
    let f = Fixture::new();
    let plan = f
        .plan(
            r#"
name: p
params:
  seed: {type: Integer, default: 7}
  raw: {type: Dataset, default: data/raw.csv}
tasks:
  train:
    component: consumer.yaml
    inputs: {data: {from: make.data}, n: {param: seed}}
    after: [other]
  other:
    component: producer.yaml
    inputs: {rows: 3}
  make:
    component: producer.yaml
    retries: {limit: 2, backoff: 10ms}
    timeout: 2s
    resources: {cpu_time: 1s}
"#,
            &[("seed", "9")],
        )
        .unwrap();
    let names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["other", "make", "train"]);
    let train = plan.task("train").unwrap();
    assert_eq!(train.upstream, [0, 1]);
    assert_eq!(
        train.inputs["data"],
        Source::Output {
            task: 1,
            output: "data".into()
        }
    );
    assert_eq!(
        train.inputs["n"],
        Source::Param {
            name: "seed".into(),
            value: ParamValue::Value("9".into())
        }
    );
    let make = plan.task("make").unwrap();
    assert_eq!(make.inputs["rows"], Source::Default("10".into()));
    assert!(!make.inputs.contains_key("note"));
    assert_eq!(make.retry.limit, 2);
    assert_eq!(make.timeout, Some(Duration::from_secs(2)));
    assert_eq!(
        make.resources.memory.unwrap().0,
        128 << 20,
        "component default kept"
    );
    assert_eq!(make.resources.cpu_time.unwrap().0, Duration::from_secs(1));
    assert_eq!(
        plan.task("other").unwrap().inputs["rows"],
        Source::Constant("3".into())
    );
    assert_eq!(plan.stages(), [1, 1, 2]);
    match &plan.params["raw"].value {
        Some((ParamValue::File(p), ValueOrigin::Default)) => {
            assert_eq!(p, &f.dir.path().join("data/raw.csv"))
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(plan.downstream()[1], [2]);
    let text = plan.render(Format::Text);
    assert!(text.contains("data <- make.data"), "{text}");
    assert!(text.contains("after other"), "{text}");
    let dot = plan.render(Format::Dot);
    assert!(dot.contains("t1 -> t2 [label=\"data -> data\"]"), "{dot}");
    let json: serde_json::Value = serde_json::from_str(&plan.render(Format::Json)).unwrap();
    assert_eq!(json["tasks"][2]["inputs"][0]["from"], "output");
}

#[test]
fn every_mistake_is_reported_on_its_own_line() {
    let f = Fixture::new();
    let errors = f
        .plan(
            r#"
name: p
params:
  seed: {type: Integer, default: x}
  need: {type: String}
tasks:
  a:
    component: producer.yaml
    inputs: {rows: many, colour: red}
  b:
    component: consumer.yaml
    inputs: {data: {from: a.dataset}}
  c:
    component: consumer.yaml
    inputs: {data: {from: a.count}}
    timeout: 0s
  d:
    component: consumer.yaml
    inputs: {n: {param: sead}}
    after: [zz]
  e:
    component: missing.yaml
"#,
            &[("sead", "1")],
        )
        .unwrap_err();
    assert_eq!(
        errors,
        [
            "pipeline.yaml: --param sead: the pipeline has no parameter 'sead' (it has: seed, need)",
            "pipeline.yaml: params.seed.default: expected an Integer, found 'x'",
            "pipeline.yaml: params.need: required parameter has no value; pass --param need=...",
            "pipeline.yaml: tasks.a.inputs.rows: expected an Integer, found 'many'",
            "pipeline.yaml: tasks.a.inputs.colour: component 'producer' has no input 'colour' (inputs: rows, note)",
            "pipeline.yaml: tasks.b.inputs.data: task 'a' has no output 'dataset' (outputs: data, count)",
            "pipeline.yaml: tasks.c.inputs.data: output 'a.count' is Integer, but the input expects Dataset",
            "pipeline.yaml: tasks.c.timeout: expected a duration longer than 0",
            "pipeline.yaml: tasks.d.after: unknown task 'zz' (tasks: a, b, c, d, e)",
            "pipeline.yaml: tasks.d.inputs.n: unknown parameter 'sead'",
            "pipeline.yaml: tasks.d.inputs: missing required input 'data' (Dataset)",
            "pipeline.yaml: tasks.e.component: cannot read missing.yaml: No such file or directory (os error 2)",
        ]
    );
}

#[test]
fn cycles_are_named() {
    let f = Fixture::new();
    let errors = f
        .plan(
            r#"
name: p
tasks:
  x: {component: producer.yaml, after: [z]}
  y: {component: consumer.yaml, inputs: {data: {from: x.data}}}
  z: {component: producer.yaml, after: [y]}
  w: {component: producer.yaml, after: [w]}
"#,
            &[],
        )
        .unwrap_err();
    assert_eq!(
        errors,
        ["pipeline.yaml: tasks.w.after: a task cannot wait for itself"]
    );
    let errors = f
        .plan(
            r#"
name: p
tasks:
  x: {component: producer.yaml, after: [z]}
  y: {component: consumer.yaml, inputs: {data: {from: x.data}}}
  z: {component: producer.yaml, after: [y]}
"#,
            &[],
        )
        .unwrap_err();
    assert_eq!(
        errors,
        ["pipeline.yaml: tasks.x: tasks form a cycle: x -> y -> z -> x"]
    );
}

#[test]
fn given_params_are_type_checked_and_artifacts_are_paths() {
    let f = Fixture::new();
    let pipeline = r#"
name: p
params:
  rows: {type: Integer, default: 5}
  raw: {type: Dataset}
tasks:
  t: {component: consumer.yaml, inputs: {data: {param: raw}, n: {param: rows}}}
"#;
    let errors = f
        .plan(pipeline, &[("rows", "five"), ("raw", "x.csv")])
        .unwrap_err();
    assert_eq!(
        errors,
        ["pipeline.yaml: --param rows: expected an Integer, found 'five'"]
    );
    let plan = f.plan(pipeline, &[("raw", "elsewhere/x.csv")]).unwrap();
    assert_eq!(
        plan.tasks[0].inputs["data"],
        Source::Param {
            name: "raw".into(),
            value: ParamValue::File("elsewhere/x.csv".into())
        }
    );
    assert_eq!(
        artifact_params(&plan).collect::<Vec<_>>(),
        [("raw", Path::new("elsewhere/x.csv"))]
    );
}

#[test]
fn accelerators_need_a_container_implementation() {
    let f = Fixture::new();
    let errors = f
        .plan(
            "name: p\ntasks:\n  t:\n    component: producer.yaml\n    resources: {accelerator: {type: nvidia.com/gpu}}\n",
            &[],
        )
        .unwrap_err();
    assert_eq!(
        errors,
        [
            "pipeline.yaml: tasks.t.resources.accelerator: component 'producer' has no container implementation, and wasm steps cannot use accelerators"
        ]
    );
}

#[test]
fn a_component_alone() {
    let f = Fixture::new();
    let component = Arc::new(Component::load(&f.dir.path().join("consumer.yaml")).unwrap());
    let plan = Plan::for_component(
        component.clone(),
        &[("data".into(), "x.csv".into()), ("n".into(), "4".into())],
    )
    .unwrap();
    assert_eq!(plan.tasks.len(), 1);
    assert_eq!(plan.tasks[0].name, "consumer");
    assert_eq!(
        plan.tasks[0].inputs["data"],
        Source::Param {
            name: "data".into(),
            value: ParamValue::File("x.csv".into())
        }
    );
    assert_eq!(artifact_params(&plan).count(), 1);

    let prefix = format!("{}/", f.dir.path().display());
    let errors: Vec<String> = Plan::for_component(
        component,
        &[("n".into(), "four".into()), ("m".into(), "1".into())],
    )
    .unwrap_err()
    .iter()
    .map(|e| e.to_string().replace(&prefix, ""))
    .collect();
    assert_eq!(
        errors,
        [
            "consumer.yaml: --input m: component 'consumer' has no input 'm' (inputs: data, n)",
            "consumer.yaml: --input n: expected an Integer, found 'four'",
            "consumer.yaml: --input: missing required input 'data' (Dataset); pass --input name=value",
        ]
    );
}

#[test]
fn deploy_sections_are_checked() {
    let f = Fixture::new();
    let plan = f
        .plan(
            "name: p\ntasks:\n  t: {component: consumer.yaml, inputs: {data: x}}\ndeploy:\n  model: cancer\n  artifact: t.model\n  predictor: bin/predictor.wasm\n  gate: accuracy >= 0.9\n  labels: [stable]\n",
            &[],
        )
        .unwrap();
    let d = plan.deploy.unwrap();
    assert_eq!(
        (d.model.as_str(), d.task, d.output.as_str()),
        ("cancer", 0, "model")
    );
    assert_eq!(d.predictor, f.dir.path().join("bin/predictor.wasm"));
    let errors = f
        .plan(
            "name: p\ntasks:\n  t: {component: consumer.yaml, inputs: {data: x}}\ndeploy:\n  model: 'bad name'\n  artifact: t.weights\n  predictor: p.wasm\n  gate: 'accuracy >='\n  labels: [Stable]\n",
            &[],
        )
        .unwrap_err();
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert!(
        errors[0].starts_with("pipeline.yaml: deploy.model: a model name"),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].starts_with("pipeline.yaml: deploy.labels: 'Stable' is not a label"),
        "{}",
        errors[1]
    );
    assert!(
        errors[2].starts_with("pipeline.yaml: deploy.gate: not a valid CEL expression"),
        "{}",
        errors[2]
    );
    assert_eq!(
        errors[3],
        "pipeline.yaml: deploy.artifact: task 't' has no output 'weights' (outputs: model)"
    );
}
