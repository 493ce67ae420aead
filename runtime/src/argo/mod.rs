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

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use model::*;

use crate::exec::attempt::{ATTEMPT_VERSION, ComponentFile};
use crate::exec::step::{
    CANDIDATES, COMPONENTS_DIR, CONDITION_OUTPUT, ConditionFile, KfpStep, STEP_FILE, STEP_ROOT,
    StepFile, StepInput,
};
use crate::exec::{Kind, Prepared};
use crate::launcher::task::{Action, ImportUri};
use crate::plan::{Node, ParamValue, Plan, PlannedTask, Source, Trigger};
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
    /// A compiled KFP pipeline's Kubernetes settings (kfp-kubernetes' platform document):
    /// by executor label, each setting's value as written.
    pub platform: BTreeMap<String, BTreeMap<String, serde_json::Value>>,
    /// Its settings that name no executor.
    pub platform_other: Vec<String>,
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
            platform: BTreeMap::new(),
            platform_other: Vec::new(),
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
    /// Argo's name of each group: its DAG template, and its DAG task in its parent's.
    group_names: Vec<String>,
    /// Argo's name of each pipeline parameter.
    params: HashMap<String, String>,
    launcher: bool,
    /// Cached tasks Argo's memoization cannot key.
    unmemoized: Vec<String>,
    /// Each node's DAG task, in its parent's DAG.
    dag_tasks: BTreeMap<Node, DagTask>,
    /// The check step of a group's condition, in the group's parent's DAG.
    checks: BTreeMap<usize, DagTask>,
    /// Step templates (tasks and condition checks), in plan order.
    templates: Vec<Template>,
    /// Values each group's template takes from its parent (`expr`: where the parent has
    /// them).
    group_inputs: Vec<Vec<Threaded>>,
    /// Values each group's template gives its parent (`expr`: where the group has them).
    group_outputs: Vec<Vec<Threaded>>,
    /// What has been made available in a scope, and where: memoized references.
    threaded: HashMap<(Option<usize>, Ref), String>,
    /// Artifacts that may be missing in a scope: made inside a group whose condition may
    /// not hold.
    absent: HashSet<(Option<usize>, Ref)>,
    /// The pipeline's artifacts passed down into each group: by group and the pipeline
    /// DAG's expression, the group's.
    root_threaded: HashMap<(usize, String), String>,
    /// Names taken among a group's inputs and outputs.
    group_taken: Vec<HashSet<String>>,
    /// Parameters each loop gathers from its iterations: (name, where an iteration has
    /// it).
    collected: Vec<Vec<(String, String)>>,
    /// The constant items of loop groups (`withItems`).
    with_items: BTreeMap<usize, Vec<serde_json::Value>>,
    /// Secrets the pods pull images with (kfp-kubernetes' `imagePullSecret`).
    pull_secrets: BTreeSet<String>,
}

/// A value a step's DAG task passes it: an artifact, placed at a file of the step's folder,
/// or a parameter, given to the step as `--value`.
#[derive(Clone, Debug)]
struct Passed {
    artifact: bool,
    /// Where the DAG has it.
    expr: String,
    /// An artifact's file in its input's folder: `data`, or a KFP artifact's
    /// `metadata.json`.
    file: &'static str,
    /// For one of several candidates of an input ([`StepInput::OneOf`]), which: its
    /// folder is then `candidates/<input>/<k>`, and it is optional.
    candidate: Option<usize>,
    /// An artifact the step's template reads from where it is (s3, gcs, http, raw)
    /// rather than from the DAG (`expr` is then empty).
    location: Option<Box<Artifact>>,
}

impl Passed {
    fn value(expr: String) -> Passed {
        Passed {
            artifact: false,
            expr,
            file: "data",
            candidate: None,
            location: None,
        }
    }

    fn located(location: Artifact) -> Passed {
        Passed {
            location: Some(Box::new(location)),
            ..Passed::data(String::new())
        }
    }

    fn data(expr: String) -> Passed {
        Passed {
            artifact: true,
            ..Passed::value(expr)
        }
    }

    fn metadata(expr: String) -> Passed {
        Passed {
            file: "metadata.json",
            ..Passed::data(expr)
        }
    }
}

/// A value a group's template takes from its parent or gives it.
#[derive(Clone, Debug)]
struct Threaded {
    name: String,
    artifact: bool,
    /// Where the other side has it.
    expr: String,
    /// An artifact that may be missing (made in a branch whose condition did not hold):
    /// Argo then passes nothing rather than failing the DAG.
    optional: bool,
}

/// A value that crosses between a task or group and another node.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Ref {
    /// An output of a task, as an artifact.
    Data { task: usize, output: String },
    /// An output of a task, as a parameter.
    Param { task: usize, output: String },
    /// A KFP artifact output's metadata, as an artifact.
    Meta { task: usize, output: String },
    /// The current item of a loop group.
    Item { group: usize },
    /// How a node ended (Argo's phase of it).
    Status(Node),
    /// A parameter output of a task in a loop's body, one value per iteration, as a JSON
    /// list (Argo aggregates the iterations' outputs).
    Collected {
        group: usize,
        task: usize,
        output: String,
    },
}

impl Ref {
    fn is_artifact(&self) -> bool {
        matches!(self, Ref::Data { .. } | Ref::Meta { .. })
    }
}

/// The template input of a loop's iteration that holds its item.
const ITEM: &str = "loop-item";
/// The template input of a loop that holds its items.
const ITEMS: &str = "loop-items";

impl<'a> Exporter<'a> {
    fn new(plan: &'a Plan, prepared: &'a [Prepared], options: &'a ExportOptions) -> Self {
        let mut taken = HashSet::from(["pipeline".to_owned()]);
        let names = plan
            .tasks
            .iter()
            .map(|t| unique(&mut taken, dns_label(&t.name)))
            .collect();
        let group_names = plan
            .groups
            .iter()
            .map(|g| unique(&mut taken, dns_label(&g.name)))
            .collect();
        let mut taken = HashSet::new();
        let params = plan
            .params
            .keys()
            .map(|p| (p.clone(), unique(&mut taken, argo_name(p))))
            .collect();
        let groups = plan.groups.len();
        Exporter {
            plan,
            prepared,
            options,
            errors: Vec::new(),
            notes: Vec::new(),
            embedded: BTreeMap::new(),
            names,
            group_names,
            params,
            launcher: false,
            unmemoized: Vec::new(),
            dag_tasks: BTreeMap::new(),
            checks: BTreeMap::new(),
            templates: Vec::new(),
            group_inputs: vec![Vec::new(); groups],
            group_outputs: vec![Vec::new(); groups],
            threaded: HashMap::new(),
            absent: HashSet::new(),
            root_threaded: HashMap::new(),
            group_taken: vec![HashSet::from([ITEM.to_owned(), ITEMS.to_owned()]); groups],
            with_items: BTreeMap::new(),
            collected: vec![Vec::new(); groups],
            pull_secrets: BTreeSet::new(),
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
        for setting in &self.options.platform_other {
            self.errors.push(ExportError {
                at: "pipeline".into(),
                feature: format!("kubernetes setting '{setting}'"),
                message: "not exported; add it to the workflow by hand".into(),
            });
        }
        let arguments = self.arguments();
        for (i, task) in self.plan.tasks.iter().enumerate() {
            self.task(i, task);
        }
        for g in 0..self.plan.groups.len() {
            self.group(g);
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
        for t in &mut self.templates {
            if let Some(c) = &mut t.container
                && c.image.is_empty()
            {
                c.image = wasm_image.clone();
            }
        }
        if !self.errors.is_empty() {
            return Err(self.errors);
        }
        // Each group's DAG task passes what its template takes from its parent.
        for g in 0..self.plan.groups.len() {
            let Some(task) = self.dag_tasks.get_mut(&Node::Group(g)) else {
                continue;
            };
            for t in &self.group_inputs[g] {
                task.arguments
                    .pass(&t.name, t.artifact, &t.expr, t.optional);
            }
        }
        let mut root = self.dag_template(None, "pipeline".into());
        root.inputs.artifacts = arguments
            .artifacts
            .iter()
            .map(|a| Artifact {
                name: a.name.clone(),
                ..Artifact::default()
            })
            .collect();
        let mut templates = vec![root];
        for g in 0..self.plan.groups.len() {
            templates.extend(self.group_templates(g));
        }
        templates.append(&mut self.templates);
        let name = dns_label(&self.plan.name);
        let mut metadata = ObjectMeta::default();
        match self.options.kind {
            DocumentKind::Workflow => metadata.generate_name = Some(generate_name(&name)),
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
                image_pull_secrets: std::mem::take(&mut self.pull_secrets)
                    .into_iter()
                    .map(|name| LocalObjectReference { name })
                    .collect(),
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
        let image = self.options.step_image.as_str();
        let image = image.split_once('@').map_or(image, |(name, _)| name);
        let repository = match image.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => repo,
            _ => image,
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
                None => self.notes.push(format!(
                    "parameter '{name}' is optional and unset, so the workflow has no such argument; set it with -p when exporting"
                )),
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

    /// The group a node sits in.
    fn home(&self, node: Node) -> Option<usize> {
        match node {
            Node::Task(t) => self.plan.tasks[t].group,
            Node::Group(g) => self.plan.groups[g].group,
        }
    }

    /// Whether scope `outer` holds scope `inner` (or is it).
    fn holds(&self, outer: Option<usize>, inner: Option<usize>) -> bool {
        let mut at = inner;
        loop {
            if at == outer {
                return true;
            }
            match at {
                Some(g) => at = self.plan.groups[g].group,
                None => return false,
            }
        }
    }

    /// The node of scope `scope` that holds `node` (it, or the group around it there).
    fn sibling_in(&self, scope: Option<usize>, node: Node) -> Option<Node> {
        let mut at = node;
        loop {
            let home = self.home(at);
            if home == scope {
                return Some(at);
            }
            at = Node::Group(home?);
        }
    }

    fn node_name(&self, node: Node) -> &str {
        match node {
            Node::Task(t) => &self.names[t],
            Node::Group(g) => &self.group_names[g],
        }
    }

    /// Argo's `depends` for a node of `scope` that waits for `upstream` as `trigger` says:
    /// each upstream node as its sibling in the scope (a node elsewhere is waited for by
    /// the group around it).
    fn depends(&self, scope: Option<usize>, upstream: &[Node], trigger: Trigger) -> Option<String> {
        let mut names = BTreeSet::new();
        for node in upstream {
            match self.sibling_in(scope, *node) {
                // An importer has no step to wait for.
                Some(Node::Task(t)) if self.is_importer(t) => {}
                Some(sibling) => {
                    names.insert(self.node_name(sibling).to_owned());
                }
                None => {}
            }
        }
        let terms: Vec<String> = names
            .into_iter()
            .map(|n| match trigger {
                Trigger::AllSucceeded => n,
                Trigger::AllEnded => format!(
                    "({n}.Succeeded || {n}.Failed || {n}.Errored || {n}.Skipped || {n}.Omitted)"
                ),
            })
            .collect();
        (!terms.is_empty()).then(|| terms.join(" && "))
    }

    /// Where `r` is, as an Argo expression valid in `scope`'s DAG: directly where it is
    /// made, passed in through each group's inputs on the way down, passed out through each
    /// group's outputs on the way up. Errors say what cannot cross.
    fn reference(&mut self, scope: Option<usize>, r: &Ref) -> Result<String, String> {
        if let Some(done) = self.threaded.get(&(scope, r.clone())) {
            return Ok(done.clone());
        }
        let home = match r {
            Ref::Data { task, .. } | Ref::Param { task, .. } | Ref::Meta { task, .. } => {
                self.plan.tasks[*task].group
            }
            Ref::Item { group } => Some(*group),
            Ref::Status(node) => self.home(*node),
            Ref::Collected { group, .. } => self.plan.groups[*group].group,
        };
        let kind = if r.is_artifact() {
            "artifacts"
        } else {
            "parameters"
        };
        let expr = if home == scope {
            match r {
                Ref::Data { task, output } => format!(
                    "{{{{tasks.{}.outputs.artifacts.{}}}}}",
                    self.names[*task],
                    self.output_name(*task, output)
                ),
                Ref::Meta { task, output } => format!(
                    "{{{{tasks.{}.outputs.artifacts.{}}}}}",
                    self.names[*task],
                    metadata_name(&self.output_name(*task, output))
                ),
                Ref::Param { task, output } => {
                    let producer = &self.plan.tasks[*task];
                    if !producer
                        .component
                        .output(output)
                        .is_some_and(|o| o.param_type().is_some() && !o.is_metrics())
                    {
                        return Err(format!(
                            "output '{output}' of task '{}' is not a parameter",
                            producer.name
                        ));
                    }
                    format!(
                        "{{{{tasks.{}.outputs.parameters.{}}}}}",
                        self.names[*task],
                        self.output_name(*task, output)
                    )
                }
                Ref::Item { .. } => format!("{{{{inputs.parameters.{ITEM}}}}}"),
                Ref::Status(node) => format!("{{{{tasks.{}.status}}}}", self.node_name(*node)),
                Ref::Collected {
                    group,
                    task,
                    output,
                } => {
                    let each = Ref::Param {
                        task: *task,
                        output: output.clone(),
                    };
                    let inner = self.reference(Some(*group), &each)?;
                    let base = ref_name(self, &each);
                    let name = unique(&mut self.group_taken[*group], base);
                    self.collected[*group].push((name.clone(), inner));
                    format!(
                        "{{{{tasks.{}.outputs.parameters.{name}}}}}",
                        self.group_names[*group]
                    )
                }
            }
        } else if self.holds(scope, home) {
            // Made inside a group of this scope: out through the group's outputs.
            let child = self
                .sibling_in(scope, Node::Group(home.expect("inside a group")))
                .and_then(|n| match n {
                    Node::Group(g) => Some(g),
                    Node::Task(_) => None,
                })
                .expect("a group of this scope holds it");
            if self.plan.groups[child].iteration.is_some() {
                return Err(format!(
                    "it is made in each iteration of loop '{}' (collect it with dsl.Collected)",
                    self.plan.groups[child].name
                ));
            }
            if matches!(r, Ref::Status(_)) {
                return Err("the status of a task inside another group".into());
            }
            let inner = self.reference(Some(child), r)?;
            let optional = r.is_artifact()
                && (self.plan.groups[child].condition.is_some()
                    || self.absent.contains(&(Some(child), r.clone())));
            if optional {
                self.absent.insert((scope, r.clone()));
            }
            let base = ref_name(self, r);
            let name = unique(&mut self.group_taken[child], base);
            self.group_outputs[child].push(Threaded {
                name: name.clone(),
                artifact: r.is_artifact(),
                expr: inner,
                optional,
            });
            format!(
                "{{{{tasks.{}.outputs.{kind}.{name}}}}}",
                self.group_names[child]
            )
        } else {
            // Made outside: in through this group's inputs.
            let g = scope.expect("the pipeline's scope holds everything");
            let parent = self.plan.groups[g].group;
            let outer = self.reference(parent, r)?;
            let optional = self.absent.contains(&(parent, r.clone()));
            if optional {
                self.absent.insert((scope, r.clone()));
            }
            let base = ref_name(self, r);
            let name = unique(&mut self.group_taken[g], base);
            self.group_inputs[g].push(Threaded {
                name: name.clone(),
                artifact: r.is_artifact(),
                expr: outer,
                optional,
            });
            format!("{{{{inputs.{kind}.{name}}}}}")
        };
        self.threaded.insert((scope, r.clone()), expr.clone());
        Ok(expr)
    }

    /// Argo's name of a task's output.
    fn output_name(&self, task: usize, output: &str) -> String {
        output_names(&self.plan.tasks[task].component)
            .remove(output)
            .unwrap_or_else(|| argo_name(output))
    }

    /// How a source reaches a step of `scope`: in the step file, or by reference.
    fn step_input(
        &mut self,
        scope: Option<usize>,
        source: &Source,
        type_: Option<crate::spec::TypeSpec>,
        kfp_artifact: bool,
    ) -> Result<(StepInput, Vec<Passed>), String> {
        Ok(match source {
            Source::Constant(value) | Source::Default(value) => (
                StepInput::Constant {
                    value: value.clone(),
                    type_,
                },
                Vec::new(),
            ),
            Source::RunText(text) => (
                StepInput::RunText {
                    text: text.clone(),
                    type_,
                },
                Vec::new(),
            ),
            Source::Param {
                name,
                value: ParamValue::Value(_),
            } => {
                let expr = format!("{{{{workflow.parameters.{}}}}}", self.params[name]);
                (StepInput::Value { type_ }, vec![Passed::value(expr)])
            }
            Source::Param {
                name,
                value: ParamValue::File(_),
            } => {
                let root = format!("{{{{inputs.artifacts.{}}}}}", self.params[name]);
                let expr = self.thread_root(scope, &root);
                (
                    StepInput::Artifact {
                        type_,
                        optional: false,
                    },
                    vec![Passed::data(expr)],
                )
            }
            Source::Output { task, .. } if self.is_importer(*task) => {
                let (data, metadata) = self.imported(*task)?;
                let mut refs = vec![Passed::located(data)];
                if kfp_artifact {
                    refs.push(Passed {
                        file: "metadata.json",
                        ..Passed::located(metadata)
                    });
                }
                (
                    StepInput::Artifact {
                        type_,
                        optional: false,
                    },
                    refs,
                )
            }
            Source::Output { task, output } => {
                let data = Ref::Data {
                    task: *task,
                    output: output.clone(),
                };
                let mut refs = vec![Passed::data(self.reference(scope, &data)?)];
                if kfp_artifact && self.plan.tasks[*task].kfp.is_some() {
                    let meta = Ref::Meta {
                        task: *task,
                        output: output.clone(),
                    };
                    refs.push(Passed::metadata(self.reference(scope, &meta)?));
                }
                (
                    StepInput::Artifact {
                        type_,
                        optional: false,
                    },
                    refs,
                )
            }
            Source::Item { group } => {
                if self.plan.groups[*group]
                    .iteration
                    .as_ref()
                    .is_some_and(|i| self.items_are_artifacts(&i.items))
                {
                    return Err("a loop over artifacts".into());
                }
                let expr = self.reference(scope, &Ref::Item { group: *group })?;
                (StepInput::Value { type_ }, vec![Passed::value(expr)])
            }
            Source::FinalStatus(Node::Task(t)) if self.is_importer(*t) => {
                return Err("the final status of an importer, which has no step".into());
            }
            Source::FinalStatus(node) => {
                let expr = self.reference(scope, &Ref::Status(*node))?;
                (
                    StepInput::FinalStatus {
                        task: match node {
                            Node::Task(t) => self.plan.tasks[*t].name.clone(),
                            Node::Group(g) => self.plan.groups[*g].name.clone(),
                        },
                    },
                    vec![Passed::value(expr)],
                )
            }
            Source::Collected { group, of } => {
                let Source::Output { task, output } = of.as_ref() else {
                    return Err(format!("collected {} values", of.kind()));
                };
                if self.plan.tasks[*task]
                    .kfp
                    .as_ref()
                    .is_some_and(|k| k.outputs.artifacts.contains_key(output))
                {
                    return Err(
                        "collected artifacts: Argo gathers a loop's output parameters, not its artifacts"
                            .into(),
                    );
                }
                let r = Ref::Collected {
                    group: *group,
                    task: *task,
                    output: output.clone(),
                };
                let expr = self.reference(scope, &r)?;
                (StepInput::Value { type_ }, vec![Passed::value(expr)])
            }
            Source::Select { of, selector } => {
                let (inner, refs) = self.step_input(scope, of, None, false)?;
                if refs.len() > 1 {
                    return Err("a field of an artifact".into());
                }
                if matches!(inner, StepInput::OneOf { .. }) {
                    return Err("a field of one of several values".into());
                }
                (
                    StepInput::Select {
                        of: Box::new(inner),
                        selector: selector.clone(),
                    },
                    refs,
                )
            }
            Source::OneOf(sources) => {
                // Each artifact candidate is optional (Argo passes nothing for one whose
                // producer did not run); the first candidate that always has a value ends
                // the list, as nothing after it is ever taken.
                let mut candidates = Vec::new();
                let mut passed = Vec::new();
                for source in sources {
                    let (step, refs) =
                        self.step_input(scope, source, type_.clone(), kfp_artifact)?;
                    match step {
                        StepInput::Artifact { type_, .. } => {
                            let k = candidates.len();
                            passed.extend(refs.into_iter().map(|p| Passed {
                                candidate: Some(k),
                                ..p
                            }));
                            candidates.push(StepInput::Artifact {
                                type_,
                                optional: true,
                            });
                        }
                        StepInput::OneOf { of } => {
                            let offset = candidates.len();
                            passed.extend(refs.into_iter().map(|p| Passed {
                                candidate: p.candidate.map(|k| k + offset),
                                ..p
                            }));
                            let ends = of
                                .last()
                                .is_some_and(|c| !matches!(c, StepInput::Artifact { .. }));
                            candidates.extend(of);
                            if ends {
                                break;
                            }
                        }
                        StepInput::Select { of, .. } if !of.is_given() => {
                            return Err("a field of an artifact among one of several values".into());
                        }
                        always => {
                            passed.extend(refs);
                            candidates.push(always);
                            break;
                        }
                    }
                }
                if let [only] = candidates.as_slice()
                    && !matches!(only, StepInput::Artifact { .. })
                {
                    return Ok((only.clone(), passed));
                }
                (StepInput::OneOf { of: candidates }, passed)
            }
        })
    }

    /// Whether a task is a KFP importer, which has no step in the workflow: the steps that
    /// read what it imports read the file from where it is.
    fn is_importer(&self, task: usize) -> bool {
        self.plan.tasks[task]
            .kfp
            .as_ref()
            .is_some_and(|k| matches!(k.action, Action::Importer { .. }))
    }

    /// Where an importer's file is, as an input artifact a step reads it from (s3, gcs,
    /// http, or a local text file written into the workflow), and its metadata (raw JSON).
    /// The URI must be known when exporting: written in the pipeline or a parameter's
    /// value; one a task makes is refused.
    fn imported(&mut self, task: usize) -> Result<(Artifact, Artifact), String> {
        self.importer_location(task)
            .map_err(|e| format!("imported by '{}': {e}", self.plan.tasks[task].name))
    }

    fn importer_location(&mut self, task: usize) -> Result<(Artifact, Artifact), String> {
        let importer = &self.plan.tasks[task];
        let Some(Action::Importer { uri, metadata, .. }) = importer.kfp.as_ref().map(|k| &k.action)
        else {
            unreachable!("is_importer");
        };
        let uri = match uri {
            ImportUri::Constant(uri) => uri.clone(),
            ImportUri::Parameter(input) => match importer.inputs.get(input) {
                Some(Source::Constant(uri) | Source::Default(uri)) => uri.clone(),
                Some(Source::Param {
                    name,
                    value: ParamValue::Value(uri),
                }) => {
                    let note = format!(
                        "importer '{}' reads {uri}, the value of parameter '{name}' when exporting: export again to import another file",
                        importer.name
                    );
                    if !self.notes.contains(&note) {
                        self.notes.push(note);
                    }
                    uri.clone()
                }
                Some(Source::Output { task, .. }) => {
                    return Err(format!(
                        "the URI is made by task '{}' as the run goes, and Argo reads artifacts only from locations the workflow names",
                        self.plan.tasks[*task].name
                    ));
                }
                Some(other) => {
                    return Err(format!("the URI comes from a {} source", other.kind()));
                }
                None => return Err(format!("the URI input '{input}' has no value")),
            },
        };
        let path = uri.strip_prefix("file://").unwrap_or(&uri);
        let data = artifact_location(String::new(), Path::new(path))?;
        let metadata = Artifact {
            raw: Some(RawArtifact {
                data: json_for_argo(metadata),
            }),
            ..Artifact::default()
        };
        Ok((data, metadata))
    }

    fn items_are_artifacts(&self, items: &Source) -> bool {
        match items {
            Source::Output { task, output } => self.plan.tasks[*task]
                .kfp
                .as_ref()
                .is_some_and(|k| k.outputs.artifacts.contains_key(output)),
            Source::Param {
                value: ParamValue::File(_),
                ..
            } => true,
            _ => false,
        }
    }

    /// Declares the inputs of a step template and passes them from its DAG task: each
    /// value the step file does not hold, by the input's name (a KFP artifact's metadata
    /// beside it); returns the `--value` arguments of the step.
    fn wire(
        &mut self,
        template: &mut Template,
        dag_task: &mut DagTask,
        taken: &mut HashSet<String>,
        input: &str,
        step: &StepInput,
        refs: Vec<Passed>,
    ) -> Vec<String> {
        let mut values = Vec::new();
        for Passed {
            artifact,
            expr,
            file,
            candidate,
            location,
        } in refs
        {
            let meta = file != "data";
            let base = match candidate {
                Some(k) => format!("{}--one-of-{k}", argo_name(input)),
                None => argo_name(input),
            };
            let argo = unique(taken, if meta { metadata_name(&base) } else { base });
            let folder = match candidate {
                Some(k) => format!("{CANDIDATES}/{}/{k}", path_segment(input)),
                None => format!("inputs/{}", path_segment(input)),
            };
            let optional = meta
                || candidate.is_some()
                || matches!(step, StepInput::Artifact { optional: true, .. });
            let path = format!("{STEP_ROOT}/{folder}/{file}");
            if let Some(location) = location {
                template.inputs.artifacts.push(Artifact {
                    name: argo,
                    path: Some(path),
                    optional,
                    ..*location
                });
            } else if artifact {
                template.inputs.artifacts.push(Artifact {
                    name: argo.clone(),
                    path: Some(path),
                    optional,
                    ..Artifact::default()
                });
                dag_task.arguments.artifacts.push(Artifact {
                    name: argo,
                    from: Some(expr),
                    optional,
                    ..Artifact::default()
                });
            } else {
                template.inputs.parameters.push(Parameter {
                    name: argo.clone(),
                    ..Parameter::default()
                });
                dag_task.arguments.parameters.push(Parameter {
                    name: argo.clone(),
                    value: Some(expr),
                    ..Parameter::default()
                });
                values.push(format!("{input}={{{{inputs.parameters.{argo}}}}}"));
            }
        }
        values
    }

    fn task(&mut self, i: usize, task: &PlannedTask) {
        let name = self.names[i].clone();
        let scope = task.group;
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
        let mut upstream: Vec<Node> = task.upstream.iter().map(|u| Node::Task(*u)).collect();
        upstream.extend(task.after_groups.iter().map(|g| Node::Group(*g)));
        dag_task.depends = self.depends(scope, &upstream, task.trigger);
        let kfp = task.kfp.as_deref();
        if let Some(kfp) = kfp {
            match &kfp.action {
                Action::Container { resources_at_run } => {
                    if resources_at_run.is_some() {
                        self.errors.push(ExportError::task(
                            &task.name,
                            "resource limits from parameters",
                            "limits set from pipeline values (set_memory_limit(param)) cannot be Argo's; write them as constants",
                        ));
                    }
                }
                // No step: its consumers read the file from where it is (`imported`).
                Action::Importer { .. } => return,
                Action::Kubernetes { operation } => {
                    self.errors.push(ExportError::task(
                        &task.name,
                        operation,
                        "a Kubernetes operation of kfp-kubernetes, which only KFP's backend performs",
                    ));
                    return;
                }
            }
        }
        let mut taken: HashSet<String> = HashSet::from([STEP_ARTIFACT.to_owned()]);
        let mut step_inputs = BTreeMap::new();
        let mut values = Vec::new();
        let mut artifact_inputs = false;
        let mut artifact_names = BTreeMap::new();
        for (input, source) in &task.inputs {
            let type_ = task.component.input(input).and_then(|i| i.type_.clone());
            let kfp_artifact = kfp.is_some_and(|k| k.inputs.artifacts.contains_key(input));
            let (step, refs) = match self.step_input(scope, source, type_, kfp_artifact) {
                Ok(wired) => wired,
                Err(message) => {
                    self.errors.push(ExportError::task(
                        &task.name,
                        &format!("input '{input}'"),
                        message,
                    ));
                    continue;
                }
            };
            // The name the artifact had where it was made (of one of several, the first's).
            let made_as = match source {
                Source::OneOf(list) => list.iter().find_map(|s| match s {
                    Source::Output { output, .. } => Some(output),
                    _ => None,
                }),
                Source::Output { output, .. } => Some(output),
                _ => None,
            };
            if let Some(output) = made_as
                && kfp_artifact
            {
                artifact_names.insert(input.clone(), output.clone());
            }
            // A task that runs however its upstream ended may find an output missing.
            let step = match step {
                StepInput::Artifact { type_, .. } if task.trigger == Trigger::AllEnded => {
                    StepInput::Artifact {
                        type_,
                        optional: true,
                    }
                }
                other => other,
            };
            artifact_inputs |= matches!(step, StepInput::Artifact { .. } | StepInput::OneOf { .. });
            values.extend(self.wire(&mut template, &mut dag_task, &mut taken, input, &step, refs));
            step_inputs.insert(input.clone(), step);
        }
        for (output, argo) in output_names(&task.component) {
            let path = format!("{STEP_ROOT}/outputs/{}/data", path_segment(&output));
            let spec = task.component.output(&output);
            if spec.is_some_and(|o| o.param_type().is_some() && !o.is_metrics()) {
                template.outputs.parameters.push(Parameter {
                    name: argo.clone(),
                    value_from: Some(ValueFrom::path(path.clone())),
                    ..Parameter::default()
                });
            }
            if kfp.is_some_and(|k| k.outputs.artifacts.contains_key(&output)) {
                template.outputs.artifacts.push(Artifact {
                    name: metadata_name(&argo),
                    path: Some(format!(
                        "{STEP_ROOT}/outputs/{}/metadata.json",
                        path_segment(&output)
                    )),
                    archive: Some(ArchiveStrategy::none()),
                    ..Artifact::default()
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
                    // A cap on each delay (`maxDuration` would bound all attempts).
                    cap: Some(go_duration(task.retry.max_backoff.0)),
                },
            });
        }
        if let Some(timeout) = task.timeout {
            template.active_deadline_seconds = Some(timeout.as_secs_f64().ceil() as u64);
        }
        let Some(component) = self.step_component(task, prepared) else {
            return;
        };
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
            kfp: kfp.map(|k| KfpStep {
                inputs: k.inputs.clone(),
                outputs: k.outputs.clone(),
                pipeline_root: self
                    .plan
                    .pipeline_root
                    .clone()
                    .unwrap_or_else(|| format!("{STEP_ROOT}/pipeline-root")),
                artifact_names,
            }),
        };
        template.inputs.artifacts.insert(0, raw_step_file(&step));
        self.memoize(task, &mut template, artifact_inputs);
        let args = step_arguments("--step", values);
        self.containers(task, prepared.kind, args, &mut template);
        if let Some(executor) = kfp.and_then(|k| k.executor.as_deref()) {
            self.platform(task, executor, &mut template);
        }
        self.dag_tasks.insert(Node::Task(i), dag_task);
        self.templates.push(template);
    }

    /// The containers of a task's template, running `sluice` with `args`: a wasm step's in
    /// the image that holds its component (named once every embedded component is known);
    /// a container step's in its own image, after an init container of the step image
    /// copied `sluice` into a volume both mount.
    fn containers(
        &mut self,
        task: &PlannedTask,
        kind: Kind,
        args: Vec<String>,
        template: &mut Template,
    ) {
        let resources = self.resources(task, kind == Kind::Wasm);
        if kind == Kind::Wasm {
            template.container = Some(Container {
                image: String::new(),
                command: vec![SLUICE_IN_IMAGE.into()],
                args,
                resources,
                ..Container::default()
            });
            return;
        }
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
        template.container = Some(Container {
            image,
            command: vec![format!("{LAUNCHER_DIR}/sluice")],
            args,
            resources,
            volume_mounts: vec![mount],
            ..Container::default()
        });
    }

    /// A KFP task's Kubernetes settings (kfp-kubernetes), where Argo has them: image pull
    /// secrets (for every pod), node selectors, tolerations, secrets as environment
    /// variables and persistent volume claims mounted, each named by a constant. Anything
    /// else is refused.
    fn platform(&mut self, task: &PlannedTask, executor: &str, template: &mut Template) {
        let Some(settings) = self.options.platform.get(executor) else {
            return;
        };
        for (setting, value) in settings {
            if let Err(message) = self.setting(setting, value, template) {
                self.errors.push(ExportError::task(
                    &task.name,
                    &format!("kubernetes setting '{setting}'"),
                    message,
                ));
            }
        }
    }

    fn setting(
        &mut self,
        setting: &str,
        value: &serde_json::Value,
        template: &mut Template,
    ) -> Result<(), String> {
        use serde_json::{Value, json};
        let list = || value.as_array().cloned().unwrap_or_default();
        // A name given as a constant, in either of the forms kfp-kubernetes writes.
        let constant = |item: &Value, field: &str, parameter: &str| -> Result<String, String> {
            item[parameter]["runtimeValue"]["constant"]
                .as_str()
                .or_else(|| item[field].as_str())
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .ok_or_else(|| {
                    format!("{field} is not a constant (names from pipeline values do not export)")
                })
        };
        let container = template.container.as_mut().expect("a step template");
        match setting {
            "imagePullSecret" => {
                for item in list() {
                    let name = constant(&item, "secretName", "secretNameParameter")?;
                    self.pull_secrets.insert(name);
                }
            }
            "nodeSelector" => {
                let labels = value["labels"].as_object().cloned().unwrap_or_default();
                for (k, v) in labels {
                    let v = v.as_str().ok_or("a label that is not text")?;
                    template.node_selector.insert(k, v.to_owned());
                }
            }
            "tolerations" => template.tolerations.extend(list()),
            "secretAsEnv" => {
                for item in list() {
                    let name = constant(&item, "secretName", "secretNameParameter")?;
                    let optional = item["optional"].as_bool().unwrap_or(false);
                    for pair in item["keyToEnv"].as_array().cloned().unwrap_or_default() {
                        let (Some(var), Some(key)) =
                            (pair["envVar"].as_str(), pair["secretKey"].as_str())
                        else {
                            return Err("keyToEnv needs envVar and secretKey".into());
                        };
                        container.env.push(EnvVar {
                            name: var.to_owned(),
                            value: None,
                            value_from: Some(json!({"secretKeyRef": {
                                "name": name, "key": key, "optional": optional
                            }})),
                        });
                    }
                }
            }
            "pvcMount" => {
                for item in list() {
                    let claim = constant(&item, "constant", "pvcNameParameter")?;
                    let path = item["mountPath"]
                        .as_str()
                        .ok_or("mountPath is missing")?
                        .to_owned();
                    let volume = format!("pvc-{}", template.volumes.len() + 1);
                    template.volumes.push(json!({
                        "name": volume, "persistentVolumeClaim": {"claimName": claim}
                    }));
                    container.volume_mounts.push(VolumeMount {
                        name: volume,
                        mount_path: path,
                    });
                }
            }
            _ => return Err("not exported; add it to the workflow by hand".into()),
        }
        Ok(())
    }

    /// An input artifact of the pipeline's DAG (`{{inputs.artifacts.NAME}}`), passed down
    /// to `scope`.
    fn thread_root(&mut self, scope: Option<usize>, root_expr: &str) -> String {
        let Some(g) = scope else {
            return root_expr.to_owned();
        };
        let key = (g, root_expr.to_owned());
        if let Some(done) = self.root_threaded.get(&key) {
            return done.clone();
        }
        let outer = self.thread_root(self.plan.groups[g].group, root_expr);
        let base = root_expr
            .trim_start_matches("{{inputs.artifacts.")
            .trim_end_matches("}}")
            .to_owned();
        let name = unique(&mut self.group_taken[g], base);
        self.group_inputs[g].push(Threaded {
            name: name.clone(),
            artifact: true,
            expr: outer,
            optional: false,
        });
        let expr = format!("{{{{inputs.artifacts.{name}}}}}");
        self.root_threaded.insert(key, expr);
        self.root_threaded[&(g, root_expr.to_owned())].clone()
    }

    /// A group's DAG task in its parent's DAG, and the check step of its condition.
    fn group(&mut self, g: usize) {
        let group = &self.plan.groups[g];
        let scope = group.group;
        let name = self.group_names[g].clone();
        let mut dag_task = DagTask {
            name: name.clone(),
            template: name.clone(),
            ..DagTask::default()
        };
        dag_task.depends = self.depends(scope, &group.upstream, group.trigger);
        if let Some(condition) = &group.condition {
            let check = format!("{name}-condition");
            let mut template = Template {
                name: check.clone(),
                ..Template::default()
            };
            let mut check_task = DagTask {
                name: check.clone(),
                template: check.clone(),
                depends: dag_task.depends.clone(),
                ..DagTask::default()
            };
            let mut taken = HashSet::from([STEP_ARTIFACT.to_owned()]);
            let mut inputs = BTreeMap::new();
            let mut values = Vec::new();
            for (input, source) in &group.inputs {
                // Typed as a local run types them before the condition reads them.
                let type_ = match source {
                    Source::Output { task, output } => self.plan.tasks[*task]
                        .component
                        .output(output)
                        .and_then(|o| o.type_.clone()),
                    Source::Param { name, .. } => self
                        .plan
                        .params
                        .get(name)
                        .and_then(|p| p.spec.type_.clone()),
                    _ => None,
                };
                match self.step_input(scope, source, type_, false) {
                    Ok((step, refs)) => {
                        values.extend(self.wire(
                            &mut template,
                            &mut check_task,
                            &mut taken,
                            input,
                            &step,
                            refs,
                        ));
                        inputs.insert(input.clone(), step);
                    }
                    Err(message) => self.errors.push(ExportError {
                        at: format!("group '{}'", group.name),
                        feature: format!("input '{input}'"),
                        message,
                    }),
                }
            }
            let file = ConditionFile {
                version: ATTEMPT_VERSION,
                pipeline: self.plan.name.clone(),
                group: group.name.clone(),
                condition: condition.clone(),
                inputs,
            };
            template.inputs.artifacts.insert(
                0,
                Artifact {
                    name: STEP_ARTIFACT.into(),
                    path: Some(STEP_FILE.into()),
                    raw: Some(RawArtifact {
                        data: json_for_argo(&file),
                    }),
                    ..Artifact::default()
                },
            );
            template.outputs.parameters.push(Parameter {
                name: CONDITION_OUTPUT.into(),
                value_from: Some(ValueFrom::path(format!(
                    "{STEP_ROOT}/outputs/{CONDITION_OUTPUT}/data"
                ))),
                ..Parameter::default()
            });
            let args = step_arguments("--condition", values);
            template.container = Some(Container {
                image: String::new(),
                command: vec![SLUICE_IN_IMAGE.into()],
                args,
                ..Container::default()
            });
            self.templates.push(template);
            self.checks.insert(g, check_task);
            dag_task.depends = Some(match dag_task.depends {
                Some(d) => format!("{d} && {check}"),
                None => check.clone(),
            });
            dag_task.when = Some(format!(
                "{{{{tasks.{check}.outputs.parameters.{CONDITION_OUTPUT}}}}} == true"
            ));
        }
        if let Some(iteration) = &group.iteration {
            let items = match &iteration.items {
                Source::Constant(text) | Source::Default(text) => {
                    match serde_json::from_str::<serde_json::Value>(text) {
                        Ok(serde_json::Value::Array(items)) => Ok(Err(items)),
                        _ => Err(format!("expected a JSON list, found '{text}'")),
                    }
                }
                Source::Param {
                    name,
                    value: ParamValue::Value(_),
                } => Ok(Ok(format!(
                    "{{{{workflow.parameters.{}}}}}",
                    self.params[name]
                ))),
                Source::Output { task, output } if !self.items_are_artifacts(&iteration.items) => {
                    self.reference(
                        scope,
                        &Ref::Param {
                            task: *task,
                            output: output.clone(),
                        },
                    )
                    .map(Ok)
                }
                Source::Collected { group: inner, of } => match of.as_ref() {
                    Source::Output { task, output } if !self.items_are_artifacts(of) => self
                        .reference(
                            scope,
                            &Ref::Collected {
                                group: *inner,
                                task: *task,
                                output: output.clone(),
                            },
                        )
                        .map(Ok),
                    _ => Err("a loop over collected artifacts".into()),
                },
                other if self.items_are_artifacts(other) => Err("a loop over artifacts".into()),
                other => Err(format!(
                    "{} sources do not export to Argo yet",
                    other.kind()
                )),
            };
            match items {
                Ok(Ok(expr)) => dag_task.arguments.parameters.push(Parameter {
                    name: ITEMS.into(),
                    value: Some(expr),
                    ..Parameter::default()
                }),
                Ok(Err(list)) => {
                    self.with_items.insert(g, list);
                }
                Err(message) => self.errors.push(ExportError {
                    at: format!("group '{}'", group.name),
                    feature: "loop items".into(),
                    message,
                }),
            }
        }
        self.dag_tasks.insert(Node::Group(g), dag_task);
    }

    /// The DAG template of `scope`: its nodes' DAG tasks (and condition checks), ordered
    /// by the first task each holds, which keeps the plan's topological order.
    fn dag_template(&mut self, scope: Option<usize>, name: String) -> Template {
        let mut nodes: Vec<Node> = Vec::new();
        for i in 0..self.plan.tasks.len() {
            if let Some(node) = self.sibling_in(scope, Node::Task(i))
                && !nodes.contains(&node)
            {
                nodes.push(node);
            }
        }
        for g in 0..self.plan.groups.len() {
            if self.plan.groups[g].group == scope && !nodes.contains(&Node::Group(g)) {
                nodes.push(Node::Group(g));
            }
        }
        let mut tasks = Vec::new();
        for node in nodes {
            if let Node::Group(g) = node
                && let Some(check) = self.checks.remove(&g)
            {
                tasks.push(check);
            }
            if let Some(task) = self.dag_tasks.remove(&node) {
                tasks.push(task);
            }
        }
        Template {
            name,
            dag: Some(DagTemplate { tasks }),
            ..Template::default()
        }
    }

    /// A group's templates: its DAG, with the inputs and outputs threaded through it; for a
    /// loop, a template over it that runs it once per item, at most `parallelism` at once.
    fn group_templates(&mut self, g: usize) -> Vec<Template> {
        let group = &self.plan.groups[g];
        let name = self.group_names[g].clone();
        let with_items = self.with_items.remove(&g);
        let loop_ = group.iteration.clone();
        let body_name = if loop_.is_some() {
            format!("{name}-iteration")
        } else {
            name.clone()
        };
        let mut body = self.dag_template(Some(g), body_name.clone());
        let declare = |inputs: &mut Inputs, list: &[Threaded]| {
            for t in list {
                if t.artifact {
                    inputs.artifacts.push(Artifact {
                        name: t.name.clone(),
                        optional: t.optional,
                        ..Artifact::default()
                    });
                } else {
                    inputs.parameters.push(Parameter {
                        name: t.name.clone(),
                        ..Parameter::default()
                    });
                }
            }
        };
        declare(&mut body.inputs, &self.group_inputs[g]);
        for t in &self.group_outputs[g] {
            if t.artifact {
                body.outputs.artifacts.push(Artifact {
                    name: t.name.clone(),
                    from: Some(t.expr.clone()),
                    optional: t.optional,
                    ..Artifact::default()
                });
            } else {
                body.outputs.parameters.push(Parameter {
                    name: t.name.clone(),
                    value_from: Some(ValueFrom::parameter(t.expr.clone())),
                    ..Parameter::default()
                });
            }
        }
        let collected = std::mem::take(&mut self.collected[g]);
        for (n, inner) in &collected {
            body.outputs.parameters.push(Parameter {
                name: n.clone(),
                value_from: Some(ValueFrom::parameter(inner.clone())),
                ..Parameter::default()
            });
        }
        let Some(iteration) = loop_ else {
            return vec![body];
        };
        body.inputs.parameters.push(Parameter {
            name: ITEM.into(),
            ..Parameter::default()
        });
        let mut iterate = DagTask {
            name: "iteration".into(),
            template: body_name,
            ..DagTask::default()
        };
        for t in &self.group_inputs[g] {
            let kind = if t.artifact {
                "artifacts"
            } else {
                "parameters"
            };
            let forwarded = format!("{{{{inputs.{kind}.{}}}}}", t.name);
            iterate
                .arguments
                .pass(&t.name, t.artifact, &forwarded, t.optional);
        }
        iterate.arguments.parameters.push(Parameter {
            name: ITEM.into(),
            value: Some("{{item}}".into()),
            ..Parameter::default()
        });
        let mut over = Template {
            name,
            ..Template::default()
        };
        declare(&mut over.inputs, &self.group_inputs[g]);
        match with_items {
            Some(items) => iterate.with_items = Some(items),
            None => {
                over.inputs.parameters.push(Parameter {
                    name: ITEMS.into(),
                    ..Parameter::default()
                });
                iterate.with_param = Some(format!("{{{{inputs.parameters.{ITEMS}}}}}"));
            }
        }
        // Argo gathers each iteration's value into a JSON list.
        for (n, _) in &collected {
            over.outputs.parameters.push(Parameter {
                name: n.clone(),
                value_from: Some(ValueFrom::parameter(format!(
                    "{{{{tasks.iteration.outputs.parameters.{n}}}}}"
                ))),
                ..Parameter::default()
            });
        }
        over.parallelism = iteration.parallelism.map(|p| p as u32);
        over.dag = Some(DagTemplate {
            tasks: vec![iterate],
        });
        vec![over, body]
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
                Some((file, _)) if self.options.embed => Some(file.clone()),
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
        // The values, hashed: a ConfigMap key holds only letters, digits, `-`, `_` and
        // `.`, and a value may hold anything.
        if !template.inputs.parameters.is_empty() {
            let values: Vec<String> = template
                .inputs
                .parameters
                .iter()
                .map(|p| format!("inputs.parameters['{}']", p.name))
                .collect();
            key.push_str(&format!(
                ".{{{{=sprig.sha256sum(toJson([{}]))}}}}",
                values.join(", ")
            ));
        }
        template.memoize = Some(Memoize {
            key,
            // Argo wants a bound; without one, a century.
            max_age: Some(
                task.caching
                    .max_staleness
                    .map_or_else(|| "876000h".to_owned(), go_duration),
            ),
            cache: MemoizeCache {
                config_map: ConfigMapKeySelector {
                    name: self.options.memoize_config_map.clone(),
                },
            },
        });
    }
}

/// The step file as the raw input artifact a template places at [`STEP_FILE`].
fn raw_step_file(step: &impl serde::Serialize) -> Artifact {
    Artifact {
        name: STEP_ARTIFACT.into(),
        path: Some(STEP_FILE.into()),
        raw: Some(RawArtifact {
            data: json_for_argo(step),
        }),
        ..Artifact::default()
    }
}

/// JSON that Argo passes through unchanged: Argo reads `{{` anywhere in a template as the
/// start of a tag to substitute, so each `{` of a pair is written `\u007b` (a pair can only
/// be inside a string: pretty JSON puts each structural brace on its own line). Ends in a
/// newline, so YAML writes it as a block of lines.
fn json_for_argo(value: &impl serde::Serialize) -> String {
    let text = serde_json::to_string_pretty(value).expect("a step file serializes");
    text.replace("{{", "\\u007b\\u007b") + "\n"
}

/// `sluice task exec FLAG /sluice/step.json`, the run it is part of, and a `--value` for
/// each of `values` (`NAME=TEXT`).
fn step_arguments(flag: &str, values: Vec<String>) -> Vec<String> {
    let mut args: Vec<String> = [
        "task",
        "exec",
        flag,
        STEP_FILE,
        "--run",
        "{{workflow.name}}",
        "--task-id",
        "{{pod.name}}",
        "--created",
        "{{workflow.creationTimestamp}}",
    ]
    .map(String::from)
    .to_vec();
    for value in values {
        args.push("--value".into());
        args.push(value);
    }
    args
}

/// The name of the artifact that carries a KFP artifact's metadata.
fn metadata_name(argo: &str) -> String {
    format!("{argo}--metadata")
}

/// The name a value gets where it crosses into or out of a group.
fn ref_name(exporter: &Exporter<'_>, r: &Ref) -> String {
    match r {
        Ref::Data { task, output } | Ref::Param { task, output } => {
            format!("{}-{}", exporter.names[*task], argo_name(output))
        }
        Ref::Meta { task, output } => {
            metadata_name(&format!("{}-{}", exporter.names[*task], argo_name(output)))
        }
        Ref::Item { group } => format!("{}-item", exporter.group_names[*group]),
        Ref::Status(node) => format!("{}-status", exporter.node_name(*node)),
        Ref::Collected { task, output, .. } => {
            format!("{}-{}-all", exporter.names[*task], argo_name(output))
        }
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
        if rest.split('/').next().is_none_or(str::is_empty) {
            return Err(format!("expected {scheme}://HOST/PATH, found '{url}'"));
        }
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
    if let Some((scheme, _)) = text.split_once("://")
        && !scheme.contains('/')
    {
        return Err(format!(
            "unsupported URL scheme '{scheme}': give an http(s)://, s3:// or gs:// URL, or a local file"
        ));
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
    if data.contains("{{") {
        return Err(format!(
            "{} holds `{{{{`, which Argo would read as a template tag; give an http(s)://, s3:// or gs:// URL with --param",
            path.display()
        ));
    }
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

/// A `generateName` for a workflow of the pipeline `name` (a DNS label): Argo appends five
/// characters, and a workflow's name has at most 63.
fn generate_name(name: &str) -> String {
    let prefix: String = name.chars().take(57).collect();
    format!("{}-", prefix.trim_end_matches('-'))
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
    fn step_files_reach_the_step_as_written_whatever_argo_substitutes() {
        let value = serde_json::json!({"text": "hi {{workflow.name}} {{=1+1}} {{inputs.parameters.x}}", "o": {}});
        let text = json_for_argo(&value);
        assert!(!text.contains("{{"), "{text}");
        assert!(text.ends_with('\n'));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(back, value);
    }

    #[test]
    fn generated_names_leave_argo_room_for_its_suffix() {
        let long = "a".repeat(63);
        let name = generate_name(&long);
        assert_eq!(name.len() + 5, 63);
        assert!(name.ends_with('-') && !name.ends_with("--"));
        assert_eq!(generate_name("breast-cancer"), "breast-cancer-");
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
        std::fs::write(&file, "Dear {{name}},\n").unwrap();
        assert!(
            artifact_location("d".into(), &file)
                .unwrap_err()
                .contains("which Argo would read as a template tag")
        );
        assert!(
            artifact_location("d".into(), Path::new("http://"))
                .unwrap_err()
                .contains("expected http://HOST/PATH")
        );
        assert!(
            artifact_location("d".into(), Path::new("ftp://host/x"))
                .unwrap_err()
                .starts_with("unsupported URL scheme 'ftp'")
        );
        std::fs::write(&file, [0xff, 0xfe]).unwrap();
        assert!(
            artifact_location("d".into(), &file)
                .unwrap_err()
                .contains("is not text")
        );
    }
}
