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
    // Each delay is capped; nothing bounds all attempts together.
    assert_eq!(
        train["retryStrategy"],
        serde_json::json!({
            "limit": 1,
            "retryPolicy": "Always",
            "backoff": {"duration": "1s", "factor": 2, "cap": "60s"}
        })
    );

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
    for args in [
        &["--step-image", "alpine\nRUN echo pwned"][..],
        &["--image", "Bad Image!!"],
        &["--prefer", "nosuch=wasm"],
        &["--image-map", "a=b"],
    ] {
        let mut all = vec!["export", "argo", EXAMPLE];
        all.extend_from_slice(args);
        let refused = home.expect(&all, 2);
        assert_eq!(
            refused.stderr.lines().count(),
            1,
            "{args:?}: {}",
            refused.stderr
        );
    }
}

/// Runs every step of an exported workflow the way Argo would start its pod, with the
/// local Docker Engine: the template's image, command, args and init containers; its input
/// artifacts mounted at their paths (raw ones written out, passed ones taken from the
/// producing step's outputs), parameters substituted, and the outputs folder mounted so the
/// outputs can be read back. Steps run one at a time, each once the DAG tasks it `depends`
/// on have ended; a DAG template's tasks run in its scope, a `when` is compared as text,
/// `withItems` and `withParam` run a task once per item (its output parameters gathered
/// into a JSON list). This checks the step containers and how the workflow wires them; it
/// is no Argo emulator (no retries, no deadlines, no artifact repository, no expression
/// tags). Returns each step's outputs' digests, by task (`task.i` in the `i`th iteration of
/// a loop, as a local run records it) and output, and the phase of the whole.
fn run_steps(workflow: &Value, work: &Path) -> (BTreeMap<(String, String), String>, String) {
    run_steps_with(workflow, work, &[])
}

/// [`run_steps`], each container given these `docker run` options too.
fn run_steps_with(
    workflow: &Value,
    work: &Path,
    docker: &[String],
) -> (BTreeMap<(String, String), String>, String) {
    let spec = &workflow["spec"];
    let mut steps = Steps {
        workflow,
        work: work.to_owned(),
        params: BTreeMap::new(),
        digests: BTreeMap::new(),
        pods: 0,
        docker: docker.to_vec(),
    };
    for p in spec["arguments"]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
    {
        steps.params.insert(
            p["name"].as_str().unwrap().to_owned(),
            p["value"].as_str().unwrap().to_owned(),
        );
    }
    let mut scope = Scope::default();
    std::fs::create_dir_all(work.join("arguments")).unwrap();
    for a in spec["arguments"]["artifacts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let name = a["name"].as_str().unwrap();
        let path = work.join("arguments").join(name);
        std::fs::write(&path, a["raw"]["data"].as_str().expect("a raw argument")).unwrap();
        scope.artifacts.insert(name.to_owned(), path);
    }
    let entry = spec["entrypoint"].as_str().unwrap();
    let done = steps.run_template(entry, scope, "", "");
    (steps.digests, done.phase)
}

/// What a template sees: its inputs.
#[derive(Clone, Debug, Default)]
struct Scope {
    params: BTreeMap<String, String>,
    artifacts: BTreeMap<String, PathBuf>,
}

/// How a task ended, and what it left.
#[derive(Clone, Debug)]
struct Done {
    phase: String,
    params: BTreeMap<String, String>,
    artifacts: BTreeMap<String, PathBuf>,
}

impl Done {
    fn phase(phase: &str) -> Done {
        Done {
            phase: phase.into(),
            params: BTreeMap::new(),
            artifacts: BTreeMap::new(),
        }
    }
}

struct Steps<'a> {
    workflow: &'a Value,
    work: PathBuf,
    params: BTreeMap<String, String>,
    digests: BTreeMap<(String, String), String>,
    pods: usize,
    /// More `docker run` options (`--network host`, `--env ...`); without network by
    /// default.
    docker: Vec<String>,
}

impl Steps<'_> {
    fn run_template(&mut self, name: &str, scope: Scope, record: &str, suffix: &str) -> Done {
        let template = template_named(self.workflow, name).clone();
        if template.get("dag").is_some() {
            self.run_dag(&template, &scope, suffix)
        } else {
            self.run_pod(&template, &scope, record)
        }
    }

    fn run_dag(&mut self, template: &Value, scope: &Scope, suffix: &str) -> Done {
        let tasks = template["dag"]["tasks"].as_array().unwrap().clone();
        let mut done: BTreeMap<String, Done> = BTreeMap::new();
        while done.len() < tasks.len() {
            let next = tasks.iter().find(|t| {
                let name = t["name"].as_str().unwrap();
                !done.contains_key(name)
                    && depends_on(t).iter().all(|d| done.contains_key(d.as_str()))
            });
            let task = next.expect("a task whose dependencies have ended").clone();
            let name = task["name"].as_str().unwrap().to_owned();
            let ended = self.run_task(&task, scope, &done, suffix);
            done.insert(name, ended);
        }
        if done.values().any(|d| d.phase == "Failed") {
            return Done::phase("Failed");
        }
        // A DAG that succeeded resolves its outputs.
        let mut out = Done::phase("Succeeded");
        for p in template["outputs"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let from = p["valueFrom"]["parameter"].as_str().unwrap();
            match self.resolve(from, scope, &done, None) {
                Some(value) => {
                    out.params.insert(p["name"].as_str().unwrap().into(), value);
                }
                None => return Done::phase("Error"),
            }
        }
        for a in template["outputs"]["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let from = a["from"].as_str().unwrap();
            match artifact_at(from, scope, &done) {
                Some(path) => {
                    out.artifacts
                        .insert(a["name"].as_str().unwrap().into(), path);
                }
                // Argo fails a DAG whose output it cannot resolve unless it is optional.
                None if a["optional"] == true => {}
                None => return Done::phase("Error"),
            }
        }
        out
    }

    fn run_task(
        &mut self,
        task: &Value,
        scope: &Scope,
        done: &BTreeMap<String, Done>,
        suffix: &str,
    ) -> Done {
        let name = task["name"].as_str().unwrap();
        if let Some(depends) = task["depends"].as_str()
            && !depends_hold(depends, done)
        {
            return Done::phase("Omitted");
        }
        if let Some(when) = task["when"].as_str() {
            let when = self.resolve(when, scope, done, None).unwrap_or_default();
            let (left, right) = when.split_once(" == ").expect("`a == b`");
            if left.trim() != right.trim() {
                return Done::phase("Skipped");
            }
        }
        let items: Option<Vec<Value>> = match (task.get("withItems"), task.get("withParam")) {
            (Some(items), _) => Some(items.as_array().unwrap().clone()),
            (None, Some(param)) => {
                let text = self
                    .resolve(param.as_str().unwrap(), scope, done, None)
                    .unwrap();
                Some(serde_json::from_str(&text).unwrap())
            }
            (None, None) => None,
        };
        let template = task["template"].as_str().unwrap();
        let Some(items) = items else {
            let inner = self.arguments(task, scope, done, None);
            return self.run_template(template, inner, &format!("{name}{suffix}"), suffix);
        };
        // Each iteration, then their output parameters gathered as Argo gathers them.
        let mut ended = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let item = match item {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            let inner = self.arguments(task, scope, done, Some(&item));
            let suffix = format!("{suffix}.{i}");
            ended.push(self.run_template(template, inner, &format!("{name}{suffix}"), &suffix));
        }
        let mut out = Done::phase(if ended.iter().all(|d| d.phase == "Succeeded") {
            "Succeeded"
        } else {
            "Failed"
        });
        let names: Vec<String> = ended
            .first()
            .map(|d| d.params.keys().cloned().collect())
            .unwrap_or_default();
        for param in names {
            let list: Vec<Value> = ended
                .iter()
                .map(|d| {
                    let text = &d.params[&param];
                    serde_json::from_str(text).unwrap_or(Value::String(text.clone()))
                })
                .collect();
            out.params.insert(param, Value::Array(list).to_string());
        }
        out
    }

    /// The inputs a DAG task gives its template.
    fn arguments(
        &self,
        task: &Value,
        scope: &Scope,
        done: &BTreeMap<String, Done>,
        item: Option<&str>,
    ) -> Scope {
        let mut inner = Scope::default();
        for p in task["arguments"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let value = self
                .resolve(p["value"].as_str().unwrap(), scope, done, item)
                .unwrap_or_else(|| panic!("{}: no value for {p}", task["name"]));
            inner
                .params
                .insert(p["name"].as_str().unwrap().into(), value);
        }
        for a in task["arguments"]["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let from = a["from"].as_str().unwrap();
            match artifact_at(from, scope, done) {
                Some(path) => {
                    inner
                        .artifacts
                        .insert(a["name"].as_str().unwrap().into(), path);
                }
                // Argo leaves out an optional argument it cannot resolve, and fails the
                // task for any other.
                None if a["optional"] == true => {}
                None => panic!("{}: argument {from} cannot be resolved", task["name"]),
            }
        }
        inner
    }

    /// `text` with every `{{...}}` tag of a DAG's scope filled in; `None` when one names
    /// an output that is not there.
    fn resolve(
        &self,
        text: &str,
        scope: &Scope,
        done: &BTreeMap<String, Done>,
        item: Option<&str>,
    ) -> Option<String> {
        let mut out = String::new();
        let mut rest = text;
        while let Some(at) = rest.find("{{") {
            out.push_str(&rest[..at]);
            let end = rest[at..].find("}}").unwrap() + at;
            let tag = &rest[at + 2..end];
            let parts: Vec<&str> = tag.splitn(4, '.').collect();
            let value = match parts.as_slice() {
                ["item"] => item?.to_owned(),
                ["workflow", "parameters", name] => self.params.get(*name)?.clone(),
                ["inputs", "parameters", name] => scope.params.get(*name)?.clone(),
                ["tasks", task, "status"] => done.get(*task)?.phase.clone(),
                ["tasks", task, "outputs", rest] => {
                    let name = rest.strip_prefix("parameters.")?;
                    done.get(*task)?.params.get(name)?.clone()
                }
                _ => panic!("unknown tag {tag}"),
            };
            out.push_str(&value);
            rest = &rest[end + 2..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn run_pod(&mut self, template: &Value, scope: &Scope, record: &str) -> Done {
        self.pods += 1;
        let pod = self.work.join(format!("{}-{record}", self.pods));
        std::fs::create_dir_all(pod.join("outputs")).unwrap();
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
                None => match scope.artifacts.get(artifact) {
                    Some(path) => path.clone(),
                    None if a["optional"] == true => continue,
                    None => panic!("{record}: no artifact {artifact}"),
                },
            };
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
                .replace("{{pod.name}}", &format!("exported-example-{record}"))
                .replace("{{workflow.creationTimestamp}}", "2026-12-01T00:00:00Z");
            for (k, v) in &scope.params {
                text = text.replace(&format!("{{{{inputs.parameters.{k}}}}}"), v);
            }
            assert!(!text.contains("{{"), "{record}: unresolved {text}");
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
            assert!(
                docker_run(record, init, &volumes, &substitute, &self.docker),
                "{record}: init container"
            );
        }
        mounts.extend(volumes);
        if !docker_run(
            record,
            &template["container"],
            &mounts,
            &substitute,
            &self.docker,
        ) {
            return Done::phase("Failed");
        }
        let mut done = Done::phase("Succeeded");
        let host_of = |path: &str| {
            pod.join("outputs")
                .join(path.strip_prefix("/sluice/task/outputs/").unwrap())
        };
        for a in template["outputs"]["artifacts"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let output = a["name"].as_str().unwrap();
            let path = a["path"].as_str().unwrap();
            let host = host_of(path);
            let bytes = std::fs::read(&host)
                .unwrap_or_else(|e| panic!("{record}: output {output} at {path}: {e}"));
            done.artifacts.insert(output.to_owned(), host.clone());
            // A KFP artifact's metadata travels beside it; a local run records it apart.
            if !output.ends_with("--metadata") {
                self.digests.insert(
                    (record.to_owned(), output.to_owned()),
                    format!("sha256:{}", hex(&bytes)),
                );
            }
        }
        for p in template["outputs"]["parameters"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let path = p["valueFrom"]["path"].as_str().unwrap();
            let text = std::fs::read_to_string(host_of(path))
                .unwrap_or_else(|e| panic!("{record}: output parameter at {path}: {e}"));
            done.params.insert(p["name"].as_str().unwrap().into(), text);
        }
        done
    }
}

/// The DAG tasks a task's `depends` names.
fn depends_on(task: &Value) -> Vec<String> {
    task["depends"]
        .as_str()
        .map(|d| {
            d.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '.'))
                .filter(|w| !w.is_empty())
                .map(|w| w.split('.').next().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Whether a `depends` of the forms the export writes holds: `a && b` (each succeeded or
/// skipped), `(a.Succeeded || a.Failed || ...)` (each ended as one of those).
fn depends_hold(depends: &str, done: &BTreeMap<String, Done>) -> bool {
    depends.split(" && ").all(|term| {
        let term = term.trim().trim_start_matches('(').trim_end_matches(')');
        if term.contains(" || ") {
            term.split(" || ").any(|alt| {
                let (task, phase) = alt.trim().split_once('.').unwrap();
                done[task].phase == phase || (phase == "Errored" && done[task].phase == "Error")
            })
        } else {
            matches!(done[term].phase.as_str(), "Succeeded" | "Skipped")
        }
    })
}

/// The file an artifact reference names.
fn artifact_at(from: &str, scope: &Scope, done: &BTreeMap<String, Done>) -> Option<PathBuf> {
    let tag = from.strip_prefix("{{")?.strip_suffix("}}")?;
    let parts: Vec<&str> = tag.splitn(4, '.').collect();
    match parts.as_slice() {
        ["inputs", "artifacts", name] => scope.artifacts.get(*name).cloned(),
        ["tasks", task, "outputs", rest] => {
            let name = rest.strip_prefix("artifacts.")?;
            done.get(*task)?.artifacts.get(name).cloned()
        }
        _ => panic!("unknown artifact reference {from}"),
    }
}

/// `docker run` of one container of a template, with these mounts, without network;
/// whether it succeeded.
fn docker_run(
    task: &str,
    container: &Value,
    mounts: &[String],
    substitute: &dyn Fn(&str) -> String,
    options: &[String],
) -> bool {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .map(|s| substitute(s.as_str().unwrap()))
            .collect()
    };
    let command = strings(&container["command"]);
    let mut docker = Command::new("docker");
    docker.args(["run", "--rm"]);
    if options.is_empty() {
        docker.args(["--network", "none"]);
    }
    docker.args(options);
    for m in mounts {
        docker.args(["--volume", m]);
    }
    for e in container["env"].as_array().into_iter().flatten() {
        if let Some(value) = e["value"].as_str() {
            docker.args(["--env", &format!("{}={value}", e["name"].as_str().unwrap())]);
        }
    }
    docker.args(["--entrypoint", &command[0]]);
    docker.arg(container["image"].as_str().unwrap());
    docker.args(&command[1..]);
    docker.args(strings(&container["args"]));
    let out = docker.output().expect("docker runs");
    if !out.status.success() {
        eprintln!(
            "{task}: {:?} failed:\n{}{}",
            docker,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out.status.success()
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
    crate::support::outputs(&home.expect(&args, 0).record())
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
        let (ran, phase) = run_steps(&doc, &work);
        let _ = Command::new("docker").args(["rmi", &image]).output();
        assert_eq!(phase, "Succeeded", "{pipeline}");
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
    ("conditions", &[], &[]),
    (
        "containers",
        &["source=examples/breast-cancer/data/schema.json"],
        &[
            "task 'message-2': resource limits from parameters: limits set from pipeline values (set_memory_limit(param)) cannot be Argo's; write them as constants",
            "task 'message-3': resource limits from parameters: limits set from pipeline values (set_memory_limit(param)) cannot be Argo's; write them as constants",
        ],
    ),
    ("exit_handler", &[], &[]),
    ("failure_chain", &[], &[]),
    (
        "imports",
        &["source=examples/breast-cancer/data/schema.json"],
        &[],
    ),
    ("branches", &[], &[]),
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
            "task 'read-made': input 'data': imported by 'import-made': the URI is made by task 'make' as the run goes, and Argo reads artifacts only from locations the workflow names",
            "task 'read-given': input 'data': imported by 'import-given': the URI is made by task 'where' as the run goes, and Argo reads artifacts only from locations the workflow names",
        ],
    ),
];

#[test]
fn compiled_kfp_pipelines_export_as_workflows_argos_schema_accepts_or_are_refused_saying_why() {
    let home = Home::new();
    let mut listed: Vec<String> = KFP.iter().map(|(name, ..)| (*name).to_owned()).collect();
    listed.sort();
    assert_eq!(
        listed,
        crate::kfp::test_pipelines(),
        "every KFP test pipeline"
    );
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

/// The outputs of every task that succeeded in a local run of a compiled KFP test pipeline,
/// and whether the run succeeded.
fn local_kfp_outputs(
    home: &Home,
    pipeline: &str,
    extra: &[&str],
) -> (BTreeMap<(String, String), String>, bool) {
    let mut args = vec!["run", pipeline, "--json"];
    args.extend_from_slice(extra);
    let ran = home.sluice(&args);
    assert!(ran.code == 0 || ran.code == 1, "{}", ran.stderr);
    let run = ran.record();
    let outputs = run
        .tasks
        .iter()
        .filter(|t| t.state == sluice_runtime::store::TaskState::Succeeded)
        .flat_map(|t| {
            t.outputs
                .iter()
                .map(|o| ((t.name.clone(), o.name.clone()), o.digest.clone()))
        })
        .collect();
    (outputs, ran.code == 0)
}

/// Compiled KFP pipelines exported and run step by step in Docker give the outputs of a
/// local run in Docker: parameters of every type, artifacts with metadata and run
/// placeholders; a nested pipeline's output passed out of its DAG; a loop's iterations
/// and their values collected downstream; an exit handler that sees its body's status,
/// after a success and after a failure; a failing task whose downstream does not run;
/// branches of a condition whichever holds, and `dsl.OneOf` of their outputs; an imported
/// file with its metadata (the importer itself has no step, so a local run's record of it
/// is left out of the comparison).
#[test]
fn each_step_of_exported_kfp_pipelines_runs_in_docker_as_it_does_locally() {
    let map = "python:3.11=sluice-test/kfp-python:3.11";
    let cases: &[(&str, &[&str])] = &[
        ("params_outputs", &[]),
        ("nested", &["-p", "x=10"]),
        ("resume", &["-p", "flag=/nonexistent/flag"]),
        ("exit_handler", &[]),
        ("exit_handler", &["-p", "fail=true"]),
        // The local run goes on past its failure as these steps do, one after another
        // (without --keep-going, how far a local run gets before it stops depends on
        // timing).
        ("failure_chain", &["--keep-going"]),
        ("branches", &[]),
        (
            "branches",
            &["-p", "word=tails", "-p", "n=1", "-p", "rate=0.75"],
        ),
        // dsl.OneOf: the value of whichever branch ran.
        ("conditions", &[]),
        (
            "conditions",
            &["-p", "word=tails", "-p", "n=1", "-p", "rate=0.75"],
        ),
        ("conditions", &["-p", "word=edge", "-p", "n=5"]),
        // The importer has no step: its file is an input artifact of the task reading it.
        (
            "imports",
            &["-p", "source=examples/breast-cancer/data/schema.json"],
        ),
    ];
    for (name, params) in cases {
        let home = Home::new();
        let pipeline = crate::kfp::compiled(name);
        let pipeline = pipeline.to_str().unwrap();
        let mut extra = vec!["--image-map", map];
        extra.extend_from_slice(params);
        let (mut local, succeeded) = local_kfp_outputs(&home, pipeline, &extra);
        local.retain(|(task, _), _| task != "import-given");
        extra.retain(|a| *a != "--keep-going");
        let exported = export(&home, pipeline, "workflow", &extra);
        let (ran, phase) = run_steps(&read_yaml(&exported), &home.dir.path().join("pods"));
        assert_eq!(ran, local, "{name} {params:?}");
        assert_eq!(
            phase == "Succeeded",
            succeeded,
            "{name} {params:?}: {phase}"
        );
    }
}

/// Wasm components named by registry reference are pulled when the workflow is exported,
/// pinned to their digests, and pulled again by digest by each step: nothing is embedded,
/// the steps run in the plain step image and give a local run's outputs.
#[test]
fn wasm_steps_pull_their_components_by_digest_from_the_registry() {
    let home = Home::new();
    let host = crate::registry::registry("SLUICE_TEST_REGISTRY");
    let pipeline = crate::registry::registry_pipeline(&home, &host);
    let pipeline = pipeline.to_str().unwrap();
    let insecure = ["--insecure-registry", host.as_str()];
    let local = local_outputs(&home, pipeline, &insecure);
    let exported = export(&home, pipeline, "workflow", &insecure);
    assert!(!home.dir.path().join("workflow.yaml.image").exists());
    let doc = read_yaml(&exported);
    let validate = template_named(&doc, "validate");
    assert_eq!(validate["container"]["image"], "sluice-step:0.1.0");
    let step: Value = serde_json::from_str(
        validate["inputs"]["artifacts"][0]["raw"]["data"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    let component = step["component"]["spec"]["implementation"]["wasm"]["component"]
        .as_str()
        .unwrap();
    assert!(
        component.starts_with(&format!("oci://{host}/")) && component.contains("@sha256:"),
        "{component}"
    );
    // The steps reach the registry on 127.0.0.1 from the host's network.
    let docker = [
        "--network".to_owned(),
        "host".to_owned(),
        "--env".to_owned(),
        format!("SLUICE_INSECURE_REGISTRIES={host}"),
    ];
    let (ran, phase) = run_steps_with(&doc, &home.dir.path().join("pods"), &docker);
    assert_eq!(phase, "Succeeded");
    assert_eq!(ran, local);

    // With --embed the components travel in the image instead, by digest.
    let embedded = export(
        &home,
        pipeline,
        "embedded",
        &["--insecure-registry", host.as_str(), "--embed"],
    );
    let doc = read_yaml(&embedded);
    let image = template_named(&doc, "validate")["container"]["image"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(image.starts_with("sluice-step-breast-cancer:"), "{image}");
    let components = home.dir.path().join("embedded.yaml.image/components");
    assert_eq!(std::fs::read_dir(&components).unwrap().count(), 6);

    // Without CA certificates no registry can be reached over HTTPS: one line, the
    // environment's exit code, no panic.
    let empty = home.dir.path().join("no-certificates.crt");
    std::fs::write(&empty, "").unwrap();
    let out = Command::new("docker")
        .args(["run", "--rm", "--network", "host", "--volume"])
        .arg(format!(
            "{}:/etc/ssl/certs/ca-certificates.crt:ro",
            empty.display()
        ))
        .args(["--entrypoint", "/usr/local/bin/sluice", "sluice-step:0.1.0"])
        .args(["--home", "/tmp/home", "pull", component])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("cannot set up HTTPS for registries"),
        "{stderr}"
    );
}
