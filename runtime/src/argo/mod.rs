//! `sluice export argo`: a lowered [`Plan`] as an Argo Workflows `Workflow` (or
//! `WorkflowTemplate`, `argoproj.io/v1alpha1`), for Kubernetes clusters.
//!
//! One DAG template holds one task per plan task, each running a template of its own.
//! Every step runs [`crate::exec::step`]'s step file (`sluice task exec --step`), placed in
//! its pod as a raw input artifact: a wasm step in the `sluice-step` image, which holds a
//! static `sluice` (and, when embedded, the components); a container step in its own image,
//! into which an init container of the `sluice-step` image first copies `sluice` (as KFP's
//! launcher is copied into its steps). Values cross between steps as Argo artifacts, byte
//! for byte, so every output's digest is the one a local run gives; outputs of parameter
//! types are also output parameters (`valueFrom.path`), for conditions, loops and Argo's UI.
//! Pipeline parameters are the workflow's `arguments`; retries are `retryStrategy`
//! (`Always`, so a pod lost with its node is retried, as on Slurm); timeouts are
//! `activeDeadlineSeconds`; resources are the container's requests and limits.
//!
//! What cannot map is refused, one [`ExportError`] per problem, naming the task and the
//! feature; what maps only approximately is said in [`Export::notes`].

pub mod model;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use model::*;

use crate::exec::attempt::{ATTEMPT_VERSION, ComponentFile};
use crate::exec::step::{COMPONENTS_DIR, STEP_FILE, STEP_ROOT, StepFile, StepInput};
use crate::exec::{Kind, Prepared};
use crate::plan::{ParamValue, Plan, PlannedTask, Source};
use crate::spec::{Component, ResourceSpec};
use crate::store::path_segment;

/// Where the `sluice-step` image holds `sluice`.
pub const SLUICE_IN_IMAGE: &str = "/usr/local/bin/sluice";
/// Where a container step's init container copies `sluice` (an `emptyDir`).
pub const LAUNCHER_DIR: &str = "/sluice/bin";
/// The volume [`LAUNCHER_DIR`] is.
const LAUNCHER_VOLUME: &str = "sluice-launcher";
/// The input artifact every step's file arrives as.
const STEP_ARTIFACT: &str = "sluice-step";
/// Memory a wasm step's pod needs beyond its guest's: wasmtime, the compiler, buffers.
const WASM_HOST_MEMORY: u64 = 256 << 20;
/// A local file given as a pipeline's artifact parameter is written into the workflow
/// (`raw`) when it is text of at most this many bytes.
pub const RAW_MAX: u64 = 1 << 20;

/// Which document to write.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DocumentKind {
    /// A `Workflow`: one run, named by Argo from `generateName`.
    #[default]
    Workflow,
    /// A `WorkflowTemplate`: named, for runs submitted from it.
    WorkflowTemplate,
}

/// How to export.
#[derive(Clone, Debug)]
pub struct ExportOptions {
    pub kind: DocumentKind,
    /// The `sluice-step` image: it runs wasm steps and gives container steps `sluice`.
    pub step_image: String,
    /// The image wasm steps run in when components are embedded; by default
    /// `<step image's repository>-<pipeline>:<12 hex of the embedded components' digests>`.
    pub embed_image: Option<String>,
    /// Embed components pulled from registries too, not only local files (for clusters
    /// that cannot reach the registries).
    pub embed: bool,
    /// Run wasm command steps under this Kubernetes runtime class (a runwasi or SpinKube
    /// shim), the component's OCI reference as the container's image.
    pub runtime_class: Option<String>,
    /// The artifact repository outputs are kept in; the cluster's default when `None`.
    pub artifact_repository: Option<ArtifactRepositoryRef>,
    /// The `ConfigMap` memoized outputs are kept in.
    pub memoize_config_map: String,
    /// Components the run pulled from registries: reference to (file, pinned reference).
    pub pulled: HashMap<String, (PathBuf, String)>,
}

impl ExportOptions {
    /// Defaults: a `Workflow`, `sluice-step:<this version>`, the cluster's artifact
    /// repository, memoization in `sluice-memoize`.
    pub fn new() -> ExportOptions {
        ExportOptions {
            kind: DocumentKind::Workflow,
            step_image: format!("sluice-step:{}", env!("CARGO_PKG_VERSION")),
            embed_image: None,
            embed: false,
            runtime_class: None,
            artifact_repository: None,
            memoize_config_map: "sluice-memoize".into(),
            pulled: HashMap::new(),
        }
    }
}

impl Default for ExportOptions {
    fn default() -> Self {
        ExportOptions::new()
    }
}

/// A wasm component the step image must hold, at
/// `<COMPONENTS_DIR>/sha256-<hex>.wasm`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Embedded {
    /// `sha256:<hex>` of the file.
    pub digest: String,
    pub file: PathBuf,
}

impl Embedded {
    /// Its file name in the image's components folder.
    pub fn file_name(&self) -> String {
        format!("{}.wasm", self.digest.replace(':', "-"))
    }
}

/// An exported workflow.
#[derive(Clone, Debug)]
pub struct Export {
    pub workflow: Workflow,
    /// Components the wasm steps' image must hold (empty: the plain step image will do).
    pub embedded: Vec<Embedded>,
    /// The image wasm steps run in.
    pub wasm_image: String,
    /// What maps only approximately, one line each.
    pub notes: Vec<String>,
}

impl Export {
    /// The workflow as YAML.
    pub fn to_yaml(&self) -> String {
        serde_yaml_ng::to_string(&self.workflow).expect("a workflow serializes")
    }

    /// A Dockerfile for the image wasm steps run in, when components are embedded: the
    /// step image and the components beside it in `components/`.
    pub fn dockerfile(&self, step_image: &str) -> Option<String> {
        if self.embedded.is_empty() {
            return None;
        }
        Some(format!(
            "# The step image with this pipeline's wasm components, by digest.\nFROM {step_image}\nCOPY components/ {COMPONENTS_DIR}/\n"
        ))
    }
}

/// One part of a plan that cannot be exported: where, which feature, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {feature}: {message}")]
pub struct ExportError {
    /// `task 'train'`, `parameter 'data'`, `pipeline`.
    pub at: String,
    pub feature: String,
    pub message: String,
}

impl ExportError {
    fn task(task: &str, feature: &str, message: impl Into<String>) -> ExportError {
        ExportError {
            at: format!("task '{task}'"),
            feature: feature.into(),
            message: message.into(),
        }
    }
}

/// Exports `plan`, each task running as `prepared` says (`Runners::describe`'s decision:
/// wasm, or its container), reporting every problem rather than only the first.
pub fn export(
    plan: &Plan,
    prepared: &[Prepared],
    options: &ExportOptions,
) -> Result<Export, Vec<ExportError>> {
    Exporter::new(plan, prepared, options).run()
}

struct Exporter<'a> {
    plan: &'a Plan,
    prepared: &'a [Prepared],
    options: &'a ExportOptions,
    errors: Vec<ExportError>,
    notes: Vec<String>,
    embedded: BTreeMap<String, PathBuf>,
    /// Argo's name of each plan task (template and DAG task alike).
    names: Vec<String>,
    /// Argo's name of each pipeline parameter.
    params: HashMap<String, String>,
    launcher: bool,
    /// Cached tasks Argo's memoization cannot key.
    unmemoized: Vec<String>,
}

impl<'a> Exporter<'a> {
    fn new(plan: &'a Plan, prepared: &'a [Prepared], options: &'a ExportOptions) -> Self {
        let mut taken = HashSet::from(["pipeline".to_owned()]);
        let names = plan
            .tasks
            .iter()
            .map(|t| unique(&mut taken, dns_label(&t.name)))
            .collect();
        let mut taken = HashSet::new();
        let params = plan
            .params
            .keys()
            .map(|p| (p.clone(), unique(&mut taken, argo_name(p))))
            .collect();
        Exporter {
            plan,
            prepared,
            options,
            errors: Vec::new(),
            notes: Vec::new(),
            embedded: BTreeMap::new(),
            names,
            params,
            launcher: false,
            unmemoized: Vec::new(),
        }
    }

    fn run(mut self) -> Result<Export, Vec<ExportError>> {
        if let Some(class) = &self.options.runtime_class {
            // Argo starts every step's command through its emissary, a Linux binary that
            // then executes the command: under a wasm shim's runtime class neither can run.
            return Err(vec![ExportError {
                at: "pipeline".into(),
                feature: format!("--runtime-class {class}"),
                message: "Argo runs each step's command through its emissary executor, a Linux program a wasm shim cannot start; wasm steps run in the sluice-step image instead".into(),
            }]);
        }
        if !self.plan.groups.is_empty() || self.plan.tasks.iter().any(|t| t.kfp.is_some()) {
            return Err(vec![ExportError {
                at: "pipeline".into(),
                feature: "compiled KFP pipeline".into(),
                message: "only Sluice pipelines and components export to Argo so far".into(),
            }]);
        }
        let arguments = self.arguments();
        let mut dag = Template {
            name: "pipeline".into(),
            dag: Some(DagTemplate::default()),
            ..Template::default()
        };
        dag.inputs.artifacts = arguments
            .artifacts
            .iter()
            .map(|a| Artifact {
                name: a.name.clone(),
                ..Artifact::default()
            })
            .collect();
        let mut templates = Vec::new();
        for (i, task) in self.plan.tasks.iter().enumerate() {
            if let Some((dag_task, template)) = self.task(i, task) {
                dag.dag.as_mut().expect("a dag").tasks.push(dag_task);
                templates.push(template);
            }
        }
        if !self.unmemoized.is_empty() {
            self.notes.push(format!(
                "not memoized, since Argo's memoization keys on parameters and these tasks read artifacts: {}",
                self.unmemoized.join(", ")
            ));
        }
        if self.plan.deploy.is_some() {
            self.notes.push(
                "deploy: not part of the workflow; serve the model artifact with `sluice serve` or your cluster's model server".into(),
            );
        }
        let wasm_image = self.wasm_image();
        for t in &mut templates {
            if let Some(c) = &mut t.container
                && c.image.is_empty()
            {
                c.image = wasm_image.clone();
            }
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        templates.insert(0, dag);
        let name = dns_label(&self.plan.name);
        let mut metadata = ObjectMeta::default();
        match self.options.kind {
            DocumentKind::Workflow => metadata.generate_name = Some(format!("{name}-")),
            DocumentKind::WorkflowTemplate => metadata.name = Some(name.clone()),
        }
        metadata
            .labels
            .insert("sluice.dev/pipeline".into(), name.clone());
        metadata.annotations.insert(
            "sluice.dev/source-digest".into(),
            self.plan.source_digest.clone(),
        );
        if let Some(description) = &self.plan.description {
            metadata.annotations.insert(
                "workflows.argoproj.io/description".into(),
                description.clone(),
            );
        }
        let volumes = if self.launcher {
            vec![serde_json::json!({"name": LAUNCHER_VOLUME, "emptyDir": {}})]
        } else {
            Vec::new()
        };
        let workflow = Workflow {
            api_version: API_VERSION.into(),
            kind: match self.options.kind {
                DocumentKind::Workflow => "Workflow",
                DocumentKind::WorkflowTemplate => "WorkflowTemplate",
            }
            .into(),
            metadata,
            spec: WorkflowSpec {
                entrypoint: "pipeline".into(),
                arguments,
                artifact_repository_ref: self.options.artifact_repository.clone(),
                volumes,
                templates,
                ..WorkflowSpec::default()
            },
        };
        Ok(Export {
            workflow,
            embedded: self
                .embedded
                .into_iter()
                .map(|(digest, file)| Embedded { digest, file })
                .collect(),
            wasm_image,
            notes: self.notes,
        })
    }

    /// The image wasm steps run in: the step image, or the one built over it with the
    /// embedded components.
    fn wasm_image(&self) -> String {
        if self.embedded.is_empty() {
            return self.options.step_image.clone();
        }
        if let Some(image) = &self.options.embed_image {
            return image.clone();
        }
        let digests: Vec<&str> = self.embedded.keys().map(String::as_str).collect();
        let tag = crate::spec::sha256_hex(digests.join("\n").as_bytes());
        let tag = tag.trim_start_matches("sha256:");
        let repository = match self.options.step_image.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => self.options.step_image.as_str(),
        };
        format!("{repository}-{}:{}", dns_label(&self.plan.name), &tag[..12])
    }

    /// The workflow's arguments: one per pipeline parameter that has a value.
    fn arguments(&mut self) -> Arguments {
        let mut arguments = Arguments::default();
        for (name, param) in &self.plan.params {
            let argo = self.params[name].clone();
            let description = param.spec.description.clone();
            match &param.value {
                None => {}
                Some((ParamValue::Value(value), _)) => arguments.parameters.push(Parameter {
                    name: argo,
                    value: Some(value.clone()),
                    description,
                    value_from: None,
                }),
                Some((ParamValue::File(path), _)) => match artifact_location(argo, path) {
                    Ok(artifact) => arguments.artifacts.push(artifact),
                    Err(message) => self.errors.push(ExportError {
                        at: format!("parameter '{name}'"),
                        feature: "artifact".into(),
                        message,
                    }),
                },
            }
        }
        arguments
    }

    fn task(&mut self, i: usize, task: &PlannedTask) -> Option<(DagTask, Template)> {
        let name = self.names[i].clone();
        let prepared = &self.prepared[i];
        let mut template = Template {
            name: name.clone(),
            ..Template::default()
        };
        let mut dag_task = DagTask {
            name: name.clone(),
            template: name.clone(),
            ..DagTask::default()
        };
        let upstream: Vec<&str> = task
            .upstream
            .iter()
            .map(|u| self.names[*u].as_str())
            .collect();
        if !upstream.is_empty() {
            dag_task.depends = Some(upstream.join(" && "));
        }
        let mut taken: HashSet<String> = HashSet::from([STEP_ARTIFACT.to_owned()]);
        let mut step_inputs = BTreeMap::new();
        let mut values = Vec::new();
        let mut artifact_inputs = false;
        for (input, source) in &task.inputs {
            let type_ = task.component.input(input).and_then(|i| i.type_.clone());
            let argo = unique(&mut taken, argo_name(input));
            let step_input = match source {
                Source::Constant(value) | Source::Default(value) => StepInput::Constant {
                    value: value.clone(),
                    type_,
                },
                Source::Param {
                    name: param,
                    value: ParamValue::Value(_),
                } => {
                    template.inputs.parameters.push(Parameter {
                        name: argo.clone(),
                        ..Parameter::default()
                    });
                    dag_task.arguments.parameters.push(Parameter {
                        name: argo.clone(),
                        value: Some(format!(
                            "{{{{workflow.parameters.{}}}}}",
                            self.params[param]
                        )),
                        ..Parameter::default()
                    });
                    values.push(format!("{input}={{{{inputs.parameters.{argo}}}}}"));
                    StepInput::Value { type_ }
                }
                Source::Param {
                    name: param,
                    value: ParamValue::File(_),
                } => {
                    artifact_inputs = true;
                    template.inputs.artifacts.push(input_artifact(&argo, input));
                    dag_task.arguments.artifacts.push(Artifact {
                        name: argo.clone(),
                        from: Some(format!("{{{{inputs.artifacts.{}}}}}", self.params[param])),
                        ..Artifact::default()
                    });
                    StepInput::Artifact { type_ }
                }
                Source::Output {
                    task: producer,
                    output,
                } => {
                    artifact_inputs = true;
                    template.inputs.artifacts.push(input_artifact(&argo, input));
                    let from_task = &self.names[*producer];
                    let from_output = output_names(&self.plan.tasks[*producer].component)
                        .remove(output)
                        .unwrap_or_else(|| argo_name(output));
                    dag_task.arguments.artifacts.push(Artifact {
                        name: argo.clone(),
                        from: Some(format!(
                            "{{{{tasks.{from_task}.outputs.artifacts.{from_output}}}}}"
                        )),
                        ..Artifact::default()
                    });
                    StepInput::Artifact { type_ }
                }
                other => {
                    self.errors.push(ExportError::task(
                        &task.name,
                        other.kind(),
                        format!("input '{input}' has a source Argo cannot give it"),
                    ));
                    continue;
                }
            };
            step_inputs.insert(input.clone(), step_input);
        }
        for (output, argo) in output_names(&task.component) {
            let path = format!("{STEP_ROOT}/outputs/{}/data", path_segment(&output));
            let spec = task.component.output(&output);
            if spec.is_some_and(|o| o.param_type().is_some() && !o.is_metrics()) {
                template.outputs.parameters.push(Parameter {
                    name: argo.clone(),
                    value_from: Some(ValueFrom { path: path.clone() }),
                    ..Parameter::default()
                });
            }
            template.outputs.artifacts.push(Artifact {
                name: argo,
                path: Some(path),
                archive: Some(ArchiveStrategy::none()),
                ..Artifact::default()
            });
        }
        if task.retry.limit > 0 {
            let factor = task.retry.factor;
            if factor.fract() != 0.0 || !(1.0..=1000.0).contains(&factor) {
                self.errors.push(ExportError::task(
                    &task.name,
                    "retries.factor",
                    format!("Argo's backoff factor is a whole number from 1, found {factor}"),
                ));
            }
            template.retry_strategy = Some(RetryStrategy {
                limit: task.retry.limit,
                retry_policy: "Always".into(),
                backoff: Backoff {
                    duration: go_duration(task.retry.backoff.0),
                    factor: factor as u32,
                    max_duration: Some(go_duration(task.retry.max_backoff.0)),
                },
            });
        }
        if let Some(timeout) = task.timeout {
            template.active_deadline_seconds = Some(timeout.as_secs_f64().ceil() as u64);
        }
        let component = self.step_component(task, prepared)?;
        let step = StepFile {
            version: ATTEMPT_VERSION,
            pipeline: self.plan.name.clone(),
            task: task.name.clone(),
            component,
            inputs: step_inputs,
            resources: task.resources.clone(),
            timeout_ms: task
                .timeout
                .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
            prepared: Prepared {
                kind: match prepared.kind {
                    Kind::Wasm => Kind::Wasm,
                    Kind::Container | Kind::Process => Kind::Process,
                },
                ..prepared.clone()
            },
        };
        template.inputs.artifacts.insert(
            0,
            Artifact {
                name: STEP_ARTIFACT.into(),
                path: Some(STEP_FILE.into()),
                raw: Some(RawArtifact {
                    // Ending in a newline, it is written as a block of lines.
                    data: serde_json::to_string_pretty(&step).expect("a step file serializes")
                        + "\n",
                }),
                ..Artifact::default()
            },
        );
        self.memoize(task, &mut template, artifact_inputs);
        let mut args = vec![
            "task".to_owned(),
            "exec".to_owned(),
            "--step".to_owned(),
            STEP_FILE.to_owned(),
            "--run".to_owned(),
            "{{workflow.name}}".to_owned(),
        ];
        for value in values {
            args.push("--value".into());
            args.push(value);
        }
        let resources = self.resources(task, prepared.kind == Kind::Wasm);
        template.container = Some(match prepared.kind {
            Kind::Wasm => Container {
                // Filled in once every embedded component is known.
                image: String::new(),
                command: vec![SLUICE_IN_IMAGE.into()],
                args,
                resources,
                ..Container::default()
            },
            Kind::Container | Kind::Process => {
                let image = task
                    .component
                    .spec
                    .implementation
                    .container
                    .as_ref()
                    .map(|c| c.image.clone())
                    .unwrap_or_default();
                self.launcher = true;
                let mount = VolumeMount {
                    name: LAUNCHER_VOLUME.into(),
                    mount_path: LAUNCHER_DIR.into(),
                };
                template.init_containers.push(Container {
                    name: Some("sluice-launcher".into()),
                    image: self.options.step_image.clone(),
                    command: vec![SLUICE_IN_IMAGE.into()],
                    args: vec!["task".into(), "install".into(), LAUNCHER_DIR.into()],
                    volume_mounts: vec![mount.clone()],
                    ..Container::default()
                });
                Container {
                    image,
                    command: vec![format!("{LAUNCHER_DIR}/sluice")],
                    args,
                    resources,
                    volume_mounts: vec![mount],
                    ..Container::default()
                }
            }
        });
        Some((dag_task, template))
    }

    /// The component as the step finds it: a wasm implementation's file under the image's
    /// components folder (embedded) or its pinned `oci://` reference.
    fn step_component(&mut self, task: &PlannedTask, prepared: &Prepared) -> Option<ComponentFile> {
        let mut spec = task.component.spec.clone();
        let path = PathBuf::from(format!("{COMPONENTS_DIR}/component.yaml"));
        if prepared.kind != Kind::Wasm {
            spec.implementation.wasm = None;
            if let Some(container) = &spec.implementation.container {
                if !container.file_outputs.is_empty() {
                    self.errors.push(ExportError::task(
                        &task.name,
                        "fileOutputs",
                        "paths inside the image, which the step's launcher cannot collect; write outputs at {outputPath: ...}",
                    ));
                    return None;
                }
                if container.command.is_empty() {
                    self.errors.push(ExportError::task(
                        &task.name,
                        "container command",
                        "empty: the step's launcher runs the command itself and cannot read the image's entrypoint; name the program in `command`",
                    ));
                    return None;
                }
            }
            return Some(ComponentFile {
                spec,
                path,
                digest: task.component.digest.clone(),
            });
        }
        let wasm = spec.implementation.wasm.as_mut().expect("a wasm task");
        let reference = task.component.wasm_reference().map(str::to_owned);
        let embed_file = match &reference {
            Some(reference) => match self.options.pulled.get(reference) {
                Some((file, pinned)) if self.options.embed => {
                    let _ = pinned;
                    Some(file.clone())
                }
                Some((_, pinned)) => {
                    wasm.component = pinned.clone();
                    None
                }
                None => {
                    self.errors.push(ExportError::task(
                        &task.name,
                        "wasm component",
                        format!("{reference} was not pulled before the export"),
                    ));
                    return None;
                }
            },
            None => task.component.wasm_path(),
        };
        if let Some(file) = embed_file {
            let Some(digest) = prepared.executable_digest.clone() else {
                self.errors.push(ExportError::task(
                    &task.name,
                    "wasm component",
                    format!(
                        "{} could not be loaded: {}",
                        file.display(),
                        prepared.reason
                    ),
                ));
                return None;
            };
            let embedded = Embedded {
                digest: digest.clone(),
                file: file.clone(),
            };
            wasm.component = embedded.file_name();
            self.embedded.insert(digest, file);
        }
        Some(ComponentFile {
            spec,
            path,
            digest: task.component.digest.clone(),
        })
    }

    /// Requests and limits of a task's container. A wasm step's pod holds the guest's
    /// memory cap and the host's own.
    fn resources(&mut self, task: &PlannedTask, wasm: bool) -> Resources {
        let r: &ResourceSpec = &task.resources;
        let mut resources = Resources::default();
        let memory = match (r.memory, wasm) {
            (Some(m), false) => Some(m.0),
            (Some(m), true) => Some(m.0 + WASM_HOST_MEMORY),
            (None, true) => Some(
                crate::exec::wasm::WasmConfig::new(PathBuf::new()).default_memory
                    + WASM_HOST_MEMORY,
            ),
            (None, false) => None,
        };
        if let Some(bytes) = memory {
            if r.memory.is_some() {
                resources.requests.insert("memory".into(), quantity(bytes));
            }
            resources.limits.insert("memory".into(), quantity(bytes));
        }
        if let Some(cpu) = r.cpu {
            let q = format!("{}m", cpu.millicores);
            resources.requests.insert("cpu".into(), q.clone());
            resources.limits.insert("cpu".into(), q);
        }
        if let Some(storage) = r.ephemeral_storage {
            let q = quantity(storage.0);
            resources
                .requests
                .insert("ephemeral-storage".into(), q.clone());
            resources.limits.insert("ephemeral-storage".into(), q);
        }
        if let Some(acc) = &r.accelerator {
            let kind = match acc.kind.to_ascii_lowercase().as_str() {
                "gpu" | "nvidia.com/gpu" | "nvidia" => "nvidia.com/gpu".to_owned(),
                "tpu" | "google.com/tpu" => "google.com/tpu".to_owned(),
                _ => acc.kind.clone(),
            };
            resources.limits.insert(kind, acc.count.to_string());
        }
        resources
    }

    /// Argo's memoization, for a cached task whose inputs are all values: its key holds
    /// the task's step file's digest and every value. Argo keys by parameters only, so a
    /// task that reads artifacts is not memoized, and a note says so.
    fn memoize(&mut self, task: &PlannedTask, template: &mut Template, artifact_inputs: bool) {
        if !task.caching.enabled {
            return;
        }
        if artifact_inputs {
            self.unmemoized.push(task.name.clone());
            return;
        }
        // What the task runs, and every constant it is given: the step file but its values.
        let step = template
            .inputs
            .artifacts
            .iter()
            .find(|a| a.name == STEP_ARTIFACT)
            .and_then(|a| a.raw.as_ref())
            .map_or("", |r| r.data.as_str());
        let digest = crate::spec::sha256_hex(step.as_bytes());
        let mut key = format!(
            "{}.{}",
            dns_label(&task.name),
            &digest["sha256:".len()..][..16]
        );
        for p in &template.inputs.parameters {
            key.push_str(&format!(".{{{{inputs.parameters.{}}}}}", p.name));
        }
        template.memoize = Some(Memoize {
            key,
            max_age: task.caching.max_staleness.map(go_duration),
            cache: MemoizeCache {
                config_map: ConfigMapKeySelector {
                    name: self.options.memoize_config_map.clone(),
                },
            },
        });
    }
}

/// An input artifact of a step's template, where the step reads it.
fn input_artifact(argo: &str, input: &str) -> Artifact {
    Artifact {
        name: argo.to_owned(),
        path: Some(format!("{STEP_ROOT}/inputs/{}/data", path_segment(input))),
        ..Artifact::default()
    }
}

/// Argo's name of each of a component's outputs, by output name.
fn output_names(component: &Component) -> BTreeMap<String, String> {
    let mut taken = HashSet::new();
    component
        .spec
        .outputs
        .iter()
        .map(|o| (o.name.clone(), unique(&mut taken, argo_name(&o.name))))
        .collect()
}

/// Where a pipeline's artifact parameter comes from: a URL Argo reads (`http(s)://`,
/// `s3://bucket/key`, `gs://bucket/key`), or a local text file of at most [`RAW_MAX`]
/// bytes, written into the workflow.
fn artifact_location(name: String, path: &Path) -> Result<Artifact, String> {
    let text = path.to_string_lossy();
    let mut artifact = Artifact {
        name,
        ..Artifact::default()
    };
    for scheme in ["https", "http", "s3", "gs"] {
        let marker = format!("{scheme}://");
        let Some(at) = text.find(&marker) else {
            continue;
        };
        if at > 0 && !text[..at].ends_with('/') {
            continue;
        }
        let url = &text[at..];
        let rest = &url[marker.len()..];
        let bucket_key = || -> Result<BucketKey, String> {
            match rest.split_once('/') {
                Some((bucket, key)) if !bucket.is_empty() && !key.is_empty() => Ok(BucketKey {
                    bucket: Some(bucket.to_owned()),
                    key: key.to_owned(),
                }),
                _ => Err(format!("expected {scheme}://BUCKET/KEY, found '{url}'")),
            }
        };
        match scheme {
            "s3" => artifact.s3 = Some(bucket_key()?),
            "gs" => artifact.gcs = Some(bucket_key()?),
            _ => {
                artifact.http = Some(HttpArtifact {
                    url: url.to_owned(),
                })
            }
        }
        return Ok(artifact);
    }
    let bytes =
        crate::files::read_limited(path, RAW_MAX, crate::files::Follow::Yes).map_err(|e| {
            format!(
                "{}: {e}; give an http(s)://, s3:// or gs:// URL with --param",
                path.display()
            )
        })?;
    let data = String::from_utf8(bytes).map_err(|_| {
        format!(
            "{} is not text, so it cannot be written into the workflow; give an http(s)://, s3:// or gs:// URL with --param",
            path.display()
        )
    })?;
    artifact.raw = Some(RawArtifact { data });
    Ok(artifact)
}

/// Bytes as a Kubernetes quantity: `768Mi` when a whole number of mebibytes, else bytes.
fn quantity(bytes: u64) -> String {
    const MI: u64 = 1 << 20;
    if bytes.is_multiple_of(1 << 30) && bytes > 0 {
        format!("{}Gi", bytes >> 30)
    } else if bytes.is_multiple_of(MI) && bytes > 0 {
        format!("{}Mi", bytes / MI)
    } else {
        bytes.to_string()
    }
}

/// A Go duration (`1s`, `1500ms`), as Argo reads them.
fn go_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// A name as Argo takes template and task names: lowercase letters, digits and `-`,
/// starting with a letter, at most 63 characters.
fn dns_label(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    while out.contains("--") {
        out = out.replace("--", "-");
    }
    let mut out = out.trim_matches('-').to_owned();
    if !out.starts_with(|c: char| c.is_ascii_lowercase()) {
        out.insert_str(0, "t-");
    }
    out.truncate(63);
    out.trim_end_matches('-').to_owned()
}

/// A name as Argo takes parameter and artifact names: letters, digits, `-` and `_`.
fn argo_name(name: &str) -> String {
    let out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    if out.is_empty() { "x".into() } else { out }
}

/// `name`, or `name-2`, `name-3`... when taken.
fn unique(taken: &mut HashSet<String>, name: String) -> String {
    let mut candidate = name.clone();
    let mut n = 2;
    while !taken.insert(candidate.clone()) {
        candidate = format!("{name}-{n}");
        n += 1;
    }
    candidate
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_become_what_argo_takes() {
        assert_eq!(dns_label("Normalize_Test"), "normalize-test");
        assert_eq!(dns_label("2nd"), "t-2nd");
        assert_eq!(argo_name("Input data"), "Input-data");
        let mut taken = HashSet::new();
        assert_eq!(unique(&mut taken, "a".into()), "a");
        assert_eq!(unique(&mut taken, "a".into()), "a-2");
        assert_eq!(
            go_duration(std::time::Duration::from_millis(1500)),
            "1500ms"
        );
        assert_eq!(go_duration(std::time::Duration::from_secs(60)), "60s");
    }

    #[test]
    fn artifact_parameters_are_urls_or_small_text_files() {
        let s3 = artifact_location("d".into(), Path::new("s3://bucket/a/b.csv")).unwrap();
        assert_eq!(s3.s3.unwrap().key, "a/b.csv");
        let http = artifact_location("d".into(), Path::new("/base/https://example.org/x")).unwrap();
        assert_eq!(http.http.unwrap().url, "https://example.org/x");
        assert!(
            artifact_location("d".into(), Path::new("gs://bucket"))
                .unwrap_err()
                .contains("expected gs://BUCKET/KEY")
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f.csv");
        std::fs::write(&file, "a,b\n1,2\n").unwrap();
        let raw = artifact_location("d".into(), &file).unwrap();
        assert_eq!(raw.raw.unwrap().data, "a,b\n1,2\n");
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(
            artifact_location("d".into(), &file)
                .unwrap_err()
                .contains("is not text")
        );
    }
}
