//! `sluice export argo`: exported workflows checked against Argo Workflows' own schema (the
//! models the `hera` package generates from it), the example's export kept as a snapshot,
//! and every step of the exported example and of its container variant run in the local
//! Docker Engine, giving the outputs a local run gives.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::support::{Home, root};

const EXAMPLE: &str = "examples/breast-cancer/pipeline.yaml";
const CONTAINER_EXAMPLE: &str = "examples/breast-cancer/pipeline-container.yaml";

/// Checks workflow files with `tests/argo/validate.py`: the problems it found, one per line.
fn argo_schema_problems(files: &[&Path]) -> String {
    let python = std::env::var("SLUICE_TEST_PYTHON").expect(
        "SLUICE_TEST_PYTHON names a Python with hera (tests/clients/requirements.txt); scripts/test.sh sets one up",
    );
    let out = Command::new(python)
        .arg(root().join("tests/argo/validate.py"))
        .args(files)
        .output()
        .expect("the validator runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() || !out.stdout.is_empty(),
        "the validator failed: {stderr}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Exports `pipeline` into `dir/<name>.yaml`, expecting success; the file.
fn export(home: &Home, pipeline: &str, name: &str, extra: &[&str]) -> PathBuf {
    let out = home.dir.path().join(format!("{name}.yaml"));
    let mut args = vec!["export", "argo", pipeline, "-o", out.to_str().unwrap()];
    args.extend_from_slice(extra);
    home.expect(&args, 0);
    out
}

fn read_yaml(path: &Path) -> Value {
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn the_examples_export_as_workflows_argos_schema_accepts() {
    let home = Home::new();
    let workflow = export(&home, EXAMPLE, "example", &[]);
    let template = export(
        &home,
        EXAMPLE,
        "template",
        &[
            "--kind",
            "workflow-template",
            "--artifact-repository",
            "repositories/minio",
            "-p",
            "data=s3://datasets/breast_cancer.csv",
        ],
    );
    let container = export(&home, CONTAINER_EXAMPLE, "container", &[]);
    let problems = argo_schema_problems(&[&workflow, &template, &container]);
    assert!(problems.is_empty(), "{problems}");

    let doc = read_yaml(&template);
    assert_eq!(doc["kind"], "WorkflowTemplate");
    assert_eq!(doc["metadata"]["name"], "breast-cancer");
    assert_eq!(
        doc["spec"]["artifactRepositoryRef"],
        serde_json::json!({"configMap": "repositories", "key": "minio"})
    );
    let data = &doc["spec"]["arguments"]["artifacts"][0];
    assert_eq!(
        data["s3"],
        serde_json::json!({"bucket": "datasets", "key": "breast_cancer.csv"})
    );

    // The container variant's trainer runs in its own image, given `sluice` by an init
    // container of the step image; its resources are the container's.
    let doc = read_yaml(&container);
    let train = template_named(&doc, "train");
    assert_eq!(train["container"]["image"], "sluice-samples/train:0.1.0");
    assert_eq!(train["container"]["command"][0], "/sluice/bin/sluice");
    assert_eq!(
        train["initContainers"][0]["args"],
        serde_json::json!(["task", "install", "/sluice/bin"])
    );
    assert_eq!(
        train["container"]["resources"],
        serde_json::json!({
            "requests": {"memory": "512Mi", "cpu": "1000m"},
            "limits": {"memory": "512Mi", "cpu": "1000m"}
        })
    );
    assert_eq!(train["activeDeadlineSeconds"], 600);
    assert_eq!(train["retryStrategy"]["limit"], 1);

    insta::assert_snapshot!("example-workflow", redacted(&read_yaml(&workflow)));
}

/// The example's export with what depends on the machine that built the components left
/// out: their digests (and the image tag made of them), and all but the first line of
/// the data files written into the workflow.
fn redacted(doc: &Value) -> String {
    let mut doc = doc.clone();
    for artifact in doc["spec"]["arguments"]["artifacts"]
        .as_array_mut()
        .unwrap()
    {
        let data = artifact["raw"]["data"].as_str().unwrap().to_owned();
        let first = data.lines().next().unwrap_or_default();
        artifact["raw"]["data"] = Value::from(format!(
            "{first}\n<{} bytes, sha256:{}>\n",
            data.len(),
            hex(data.as_bytes())
        ));
    }
    for template in doc["spec"]["templates"].as_array_mut().unwrap() {
        if let Some(image) = template["container"]["image"].as_str()
            && image.starts_with("sluice-step-")
        {
            template["container"]["image"] = Value::from("<step image with the components>");
        }
        for artifact in template["inputs"]["artifacts"]
            .as_array_mut()
            .into_iter()
            .flatten()
        {
            if let Some(data) = artifact["raw"]["data"].as_str() {
                let mut step: Value = serde_json::from_str(data).unwrap();
                step["prepared"]["executable_digest"] = Value::from("<wasm digest>");
                step["component"]["spec"]["implementation"]["wasm"]["component"] =
                    Value::from("<wasm digest>.wasm");
                artifact["raw"]["data"] =
                    Value::from(serde_json::to_string_pretty(&step).unwrap() + "\n");
            }
        }
    }
    serde_yaml_ng::to_string(&doc).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn template_named<'a>(doc: &'a Value, name: &str) -> &'a Value {
    doc["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no template {name}"))
}

#[test]
fn what_argo_cannot_run_is_refused_in_one_line() {
    let home = Home::new();
    let refused = home.expect(&["export", "argo", EXAMPLE, "-p", "data=/bin/true"], 2);
    assert_eq!(
        refused.stderr.trim(),
        format!(
            "error: {EXAMPLE}: parameter 'data': artifact: /bin/true is not text, so it cannot be written into the workflow; give an http(s)://, s3:// or gs:// URL with --param"
        )
    );
    let refused = home.expect(
        &["export", "argo", EXAMPLE, "--runtime-class", "wasmtime"],
        2,
    );
    assert_eq!(
        refused.stderr.trim().lines().count(),
        1,
        "{}",
        refused.stderr
    );
    assert!(
        refused.stderr.contains(
            "pipeline: --runtime-class wasmtime: Argo runs each step's command through its emissary"
        ),
        "{}",
        refused.stderr
    );
}

/// Runs every step of an exported workflow the way Argo would start its pod, with the
/// local Docker Engine: the template's image, command, args and init containers; its input
/// artifacts mounted at their paths (raw ones written out, passed ones taken from the
/// producing step's outputs), parameters substituted, and the outputs folder mounted so the
/// outputs can be read back. Steps run one at a time in the DAG's order, which is a
/// topological one. This checks the step containers, not Argo: it is no Argo emulator
/// (no retries, no conditions, no artifact repository). Returns each step's outputs'
/// digests, by task and output.
fn run_steps(workflow: &Value, work: &Path) -> BTreeMap<(String, String), String> {
    let spec = &workflow["spec"];
    let mut params = BTreeMap::new();
    for p in spec["arguments"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        params.insert(
            p["name"].as_str().unwrap().to_owned(),
            p["value"].as_str().unwrap().to_owned(),
        );
    }
    let mut files: BTreeMap<String, PathBuf> = BTreeMap::new();
    std::fs::create_dir_all(work.join("arguments")).unwrap();
    for a in spec["arguments"]["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = a["name"].as_str().unwrap();
        let path = work.join("arguments").join(name);
        std::fs::write(&path, a["raw"]["data"].as_str().expect("a raw argument")).unwrap();
        files.insert(format!("{{{{inputs.artifacts.{name}}}}}"), path);
    }
    let entry = template_named(workflow, spec["entrypoint"].as_str().unwrap());
    let mut digests = BTreeMap::new();
    for task in entry["dag"]["tasks"].as_array().unwrap() {
        let name = task["name"].as_str().unwrap();
        let template = template_named(workflow, task["template"].as_str().unwrap());
        let pod = work.join(name);
        std::fs::create_dir_all(pod.join("outputs")).unwrap();
        let mut inputs = BTreeMap::new();
        for p in task["arguments"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let mut value = p["value"].as_str().unwrap().to_owned();
            for (k, v) in &params {
                value = value.replace(&format!("{{{{workflow.parameters.{k}}}}}"), v);
            }
            inputs.insert(p["name"].as_str().unwrap().to_owned(), value);
        }
        let mut passed = BTreeMap::new();
        for a in task["arguments"]["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let from = a["from"].as_str().unwrap();
            let file = files
                .get(from)
                .unwrap_or_else(|| panic!("{name}: nothing gives {from}"));
            passed.insert(a["name"].as_str().unwrap().to_owned(), file.clone());
        }
        let mut mounts = Vec::new();
        for a in template["inputs"]["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let artifact = a["name"].as_str().unwrap();
            let host = match a["raw"]["data"].as_str() {
                Some(data) => {
                    let path = pod.join(format!("raw-{artifact}"));
                    std::fs::write(&path, data).unwrap();
                    path
                }
                None => passed[artifact].clone(),
            };
            if a["optional"] == true && !host.exists() {
                continue;
            }
            mounts.push(format!(
                "{}:{}:ro",
                host.display(),
                a["path"].as_str().unwrap()
            ));
        }
        mounts.push(format!(
            "{}:/sluice/task/outputs",
            pod.join("outputs").display()
        ));
        let substitute = |text: &str| -> String {
            let mut text = text
                .replace("{{workflow.name}}", "exported-example")
                .replace("{{pod.name}}", &format!("exported-example-{name}"))
                .replace("{{workflow.creationTimestamp}}", "2026-12-01T00:00:00Z");
            for (k, v) in &inputs {
                text = text.replace(&format!("{{{{inputs.parameters.{k}}}}}"), v);
            }
            assert!(!text.contains("{{"), "{name}: unresolved {text}");
            text
        };
        // Volumes the template's containers share (the launcher's folder).
        let mut volumes = Vec::new();
        for init in template["initContainers"].as_array().into_iter().flatten() {
            for m in init["volumeMounts"].as_array().into_iter().flatten() {
                let host = pod.join(m["name"].as_str().unwrap());
                std::fs::create_dir_all(&host).unwrap();
                volumes.push(format!(
                    "{}:{}",
                    host.display(),
                    m["mountPath"].as_str().unwrap()
                ));
            }
            docker_run(name, init, &volumes, &substitute);
        }
        let mut all = mounts;
        all.extend(volumes);
        docker_run(name, &template["container"], &all, &substitute);
        for a in template["outputs"]["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let output = a["name"].as_str().unwrap();
            let path = a["path"].as_str().unwrap();
            let host = pod
                .join("outputs")
                .join(path.strip_prefix("/sluice/task/outputs/").unwrap());
            let bytes = std::fs::read(&host)
                .unwrap_or_else(|e| panic!("{name}: output {output} at {path}: {e}"));
            files.insert(
                format!("{{{{tasks.{name}.outputs.artifacts.{output}}}}}"),
                host.clone(),
            );
            // A KFP artifact's metadata travels beside it; a local run records it apart.
            if output.ends_with("--metadata") {
                continue;
            }
            digests.insert(
                (name.to_owned(), output.to_owned()),
                format!("sha256:{}", hex(&bytes)),
            );
        }
        for p in template["outputs"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let path = p["valueFrom"]["path"].as_str().unwrap();
            let host = pod
                .join("outputs")
                .join(path.strip_prefix("/sluice/task/outputs/").unwrap());
            assert!(host.is_file(), "{name}: output parameter at {path}");
        }
    }
    digests
}

/// `docker run` of one container of a template, with these mounts, without network.
fn docker_run(
    task: &str,
    container: &Value,
    mounts: &[String],
    substitute: &dyn Fn(&str) -> String,
) {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| substitute(s.as_str().unwrap()))
            .collect()
    };
    let command = strings(&container["command"]);
    let mut docker = Command::new("docker");
    docker.args(["run", "--rm", "--network", "none"]);
    for m in mounts {
        docker.args(["--volume", m]);
    }
    for e in container["env"].as_array().into_iter().flatten() {
        docker.args([
            "--env",
            &format!(
                "{}={}",
                e["name"].as_str().unwrap(),
                e["value"].as_str().unwrap()
            ),
        ]);
    }
    docker.args(["--entrypoint", &command[0]]);
    docker.arg(container["image"].as_str().unwrap());
    docker.args(&command[1..]);
    docker.args(strings(&container["args"]));
    let out = docker.output().expect("docker runs");
    assert!(
        out.status.success(),
        "{task}: {:?} failed:\n{}{}",
        docker,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Each output of a local run of `pipeline` (not fused, so every output is a file), by
/// task and output.
fn local_outputs(
    home: &Home,
    pipeline: &str,
    extra: &[&str],
) -> BTreeMap<(String, String), String> {
    let mut args = vec!["run", pipeline, "--no-fuse", "--json"];
    args.extend_from_slice(extra);
    let run = home.expect(&args, 0).record();
    run.tasks
        .iter()
        .flat_map(|t| {
            t.outputs
                .iter()
                .map(|o| ((t.name.clone(), o.name.clone()), o.digest.clone()))
        })
        .collect()
}

#[test]
fn each_step_of_the_exported_examples_runs_in_docker_as_it_does_locally() {
    for pipeline in [EXAMPLE, CONTAINER_EXAMPLE] {
        let home = Home::new();
        let local = local_outputs(&home, pipeline, &[]);
        let exported = export(&home, pipeline, "workflow", &[]);
        let doc = read_yaml(&exported);
        let context = home.dir.path().join("workflow.yaml.image");
        let image = template_named(&doc, "validate")["container"]["image"]
            .as_str()
            .unwrap()
            .to_owned();
        let build = Command::new("docker")
            .args(["build", "--quiet", "--tag", &image])
            .arg(&context)
            .output()
            .unwrap();
        assert!(
            build.status.success(),
            "{}",
            String::from_utf8_lossy(&build.stderr)
        );
        let work = home.dir.path().join("pods");
        let ran = run_steps(&doc, &work);
        let _ = Command::new("docker").args(["rmi", &image]).output();
        assert_eq!(ran, local, "{pipeline}");
    }
}

/// The compiled KFP test pipelines, each with the parameters it needs, and whether it
/// exports: a pipeline with a feature the export refuses says which, one line each.
const KFP: &[(&str, &[&str], &[&str])] = &[
    (
        "artifact_input",
        &["data=examples/breast-cancer/data/schema.json"],
        &[],
    ),
    (
        "artifact_loop",
        &[],
        &["group 'for-loop-1': loop items: a loop over collected artifacts"],
    ),
    ("caching", &["log_dir=/tmp/log"], &[]),
    (
        "conditions",
        &[],
        &["task 'join': input 'value': one of sources do not export to Argo yet"],
    ),
    (
        "containers",
        &["source=hello"],
        &[
            "task 'importer': importer: KFP's importer reads a file into the run's artifacts; give the file as a pipeline parameter instead",
            "task 'message-2': resource limits from parameters: limits set from pipeline values (set_memory_limit(param)) cannot be Argo's; write them as constants",
            "task 'message-3': resource limits from parameters: limits set from pipeline values (set_memory_limit(param)) cannot be Argo's; write them as constants",
        ],
    ),
    ("exit_handler", &[], &[]),
    ("failure_chain", &[], &[]),
    ("kubernetes", &[], &[]),
    (
        "loops",
        &[],
        &[
            "task 'sum-files': input 'files': collected artifacts: Argo gathers a loop's output parameters, not its artifacts",
        ],
    ),
    ("nested", &[], &[]),
    ("params_outputs", &[], &[]),
    ("process_runner", &[], &[]),
    ("resume", &["flag=/tmp/flag"], &[]),
    ("retries", &["counter_dir=/tmp/counter"], &[]),
    ("slow_loop", &[], &[]),
    (
        "uris",
        &[],
        &[
            "task 'import-made': importer: KFP's importer reads a file into the run's artifacts; give the file as a pipeline parameter instead",
            "task 'import-given': importer: KFP's importer reads a file into the run's artifacts; give the file as a pipeline parameter instead",
        ],
    ),
];

#[test]
fn compiled_kfp_pipelines_export_as_workflows_argos_schema_accepts_or_are_refused_saying_why() {
    let home = Home::new();
    let mut exported = Vec::new();
    for (name, params, refusals) in KFP {
        let pipeline = crate::kfp::compiled(name);
        let out = home.dir.path().join(format!("{name}.yaml"));
        let mut args = vec![
            "export".to_owned(),
            "argo".to_owned(),
            pipeline.display().to_string(),
            "-o".to_owned(),
            out.display().to_string(),
        ];
        for p in *params {
            args.extend(["-p".to_owned(), (*p).to_owned()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        if refusals.is_empty() {
            home.expect(&args, 0);
            exported.push(out);
        } else {
            let refused = home.expect(&args, 2);
            let expected: Vec<String> = refusals
                .iter()
                .map(|r| format!("error: {}: {r}", pipeline.display()))
                .collect();
            let lines: Vec<&str> = refused.stderr.lines().collect();
            assert_eq!(lines, expected, "{name}");
            assert!(!out.exists(), "{name}: a refused export wrote a file");
        }
    }
    let files: Vec<&Path> = exported.iter().map(PathBuf::as_path).collect();
    let problems = argo_schema_problems(&files);
    assert!(problems.is_empty(), "{problems}");

    // Conditions, loops and nested pipelines become DAG templates; the item reaches each
    // iteration as a parameter; an exit handler waits for its body however it ended.
    let nested = read_yaml(&home.dir.path().join("nested.yaml"));
    assert!(
        nested["spec"]["templates"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|t| t.get("dag").is_some())
            .count()
            >= 2
    );
    let slow = read_yaml(&home.dir.path().join("slow_loop.yaml"));
    let over = slow["spec"]["templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["dag"]["tasks"][0]["name"] == "iteration")
        .expect("a loop's template");
    assert!(
        over["dag"]["tasks"][0].get("withItems").is_some()
            || over["dag"]["tasks"][0].get("withParam").is_some(),
        "{over}"
    );
    // Values collected from a loop's iterations are the loop's aggregated output.
    let resume = read_yaml(&home.dir.path().join("resume.yaml"));
    let total = &template_named(&resume, "pipeline")["dag"]["tasks"][1];
    assert_eq!(
        total["arguments"]["parameters"][0]["value"],
        "{{tasks.for-loop-2.outputs.parameters.square-Output}}"
    );
    let exit = read_yaml(&home.dir.path().join("exit_handler.yaml"));
    let root = template_named(&exit, "pipeline");
    let waits_for_any_end = root["dag"]["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["depends"].as_str().is_some_and(|d| d.contains(".Failed")));
    assert!(waits_for_any_end, "{root}");
    // kfp-kubernetes' settings reach the pod.
    let k8s = read_yaml(&home.dir.path().join("kubernetes.yaml"));
    assert_eq!(
        k8s["spec"]["imagePullSecrets"],
        serde_json::json!([{"name": "registry-key"}])
    );
    let hello = template_named(&k8s, "hello");
    assert_eq!(
        hello["nodeSelector"]["cloud.google.com/gke-accelerator"],
        "nvidia-tesla-t4"
    );
    assert_eq!(
        hello["container"]["env"][0]["valueFrom"]["secretKeyRef"]["name"],
        "db-credentials"
    );
    assert_eq!(
        hello["volumes"][0]["persistentVolumeClaim"]["claimName"],
        "training-data"
    );
}

#[test]
fn each_step_of_an_exported_kfp_pipeline_runs_in_docker_as_it_does_locally() {
    let home = Home::new();
    let pipeline = crate::kfp::compiled("params_outputs");
    let pipeline = pipeline.to_str().unwrap();
    let map = "python:3.11=sluice-test/kfp-python:3.11";
    let local = local_outputs(&home, pipeline, &["--image-map", map]);
    let exported = export(&home, pipeline, "workflow", &["--image-map", map]);
    let ran = run_steps(&read_yaml(&exported), &home.dir.path().join("pods"));
    assert_eq!(ran, local);
}
