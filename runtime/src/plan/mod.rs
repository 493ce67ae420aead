//! The plan: a checked DAG of tasks built from a parsed pipeline and the parameter values
//! of one run. Binds every input to a constant, a default, a parameter or an upstream
//! output; checks names, types, required inputs and cycles; orders tasks topologically.
//! Does no IO: everything it needs was read by `spec`.

mod graph;
mod render;

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::spec::types::compatible;
use crate::spec::{
    Binding, Component, InputSpec, ParamSpec, PipelineFile, Prefer, ResourceSpec, RetrySpec,
    TypeSpec,
};

pub use graph::{Graph, GraphEdge, GraphNode, GraphNodeKind};
pub use render::Format;
pub(crate) use render::esc as one_line;

/// One problem with a pipeline, on one line naming the file and the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {field}: {message}", file.display())]
pub struct PlanError {
    pub file: PathBuf,
    /// Dotted path of the offending field, e.g. `tasks.train.inputs.data`.
    pub field: String,
    pub message: String,
}

/// The value a pipeline parameter has in this run.
#[derive(Clone, Debug, PartialEq)]
pub enum ParamValue {
    Value(String),
    /// An artifact parameter: a file to import into the store when the run starts.
    File(PathBuf),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueOrigin {
    /// Given on the command line.
    Given,
    Default,
}

#[derive(Clone, Debug)]
pub struct PlanParam {
    pub spec: ParamSpec,
    /// `None` only for an optional parameter nobody set.
    pub value: Option<(ParamValue, ValueOrigin)>,
}

/// Where one task input comes from in this run.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    /// A constant written in the pipeline.
    Constant(String),
    /// The component's default for an input the pipeline does not bind.
    Default(String),
    Param {
        name: String,
        value: ParamValue,
    },
    /// An output of the task at index `task` in [`Plan::tasks`]: of the same iteration
    /// when both sit in a loop, of the one instance when the producer sits outside it.
    Output {
        task: usize,
        output: String,
    },
    /// The current item of the loop group at index `group` in [`Plan::groups`].
    Item {
        group: usize,
    },
    /// One value per iteration of the loop group `group`, in item order (KFP's fan-in,
    /// `dsl.Collected`): `of` as each iteration has it.
    Collected {
        group: usize,
        of: Box<Source>,
    },
    /// The first of these that has a value when the task starts (KFP's `OneOf`, and a
    /// nested pipeline's default for an input its parent may leave unset).
    OneOf(Vec<Source>),
    /// A field of a JSON value, by a CEL field selector (KFP's
    /// `parameterExpressionSelector`, such as `parseJson(string_value)["a"]`).
    Select {
        of: Box<Source>,
        selector: String,
    },
    /// How a task or a group ended, as KFP's `PipelineTaskFinalStatus` (a JSON object
    /// with `state` and `error`).
    FinalStatus(Node),
    /// A constant with run placeholders (`{{$.pipeline_job_name}}`), filled in when the
    /// run starts.
    RunText(String),
}

impl Source {
    /// What kind of source this is, in a word or two (`output`, `loop item`).
    pub fn kind(&self) -> &'static str {
        match self {
            Source::Constant(_) => "constant",
            Source::Default(_) => "default",
            Source::Param { .. } => "parameter",
            Source::Output { .. } => "output",
            Source::Item { .. } => "loop item",
            Source::Collected { .. } => "collected outputs",
            Source::OneOf(_) => "one of",
            Source::Select { .. } => "selected field",
            Source::FinalStatus(_) => "final status",
            Source::RunText(_) => "run placeholder",
        }
    }

    /// Calls `f` on every task index this source refers to, nested sources included.
    pub fn tasks_mut(&mut self, f: &mut impl FnMut(&mut usize)) {
        match self {
            Source::Output { task, .. } | Source::FinalStatus(Node::Task(task)) => f(task),
            Source::Collected { of, .. } | Source::Select { of, .. } => of.tasks_mut(f),
            Source::OneOf(list) => list.iter_mut().for_each(|s| s.tasks_mut(f)),
            Source::Constant(_)
            | Source::Default(_)
            | Source::Param { .. }
            | Source::Item { .. }
            | Source::FinalStatus(Node::Group(_))
            | Source::RunText(_) => {}
        }
    }
}

/// A node of the plan's graph: an executor task or a control group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Node {
    /// Index into [`Plan::tasks`].
    Task(usize),
    /// Index into [`Plan::groups`].
    Group(usize),
}

/// When a node may start, given how its upstream nodes ended.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Trigger {
    /// Once every upstream node succeeded; skipped when one did not.
    #[default]
    AllSucceeded,
    /// Once every upstream node ended, however it ended (KFP's exit handlers and
    /// `ALL_UPSTREAM_TASKS_COMPLETED`).
    AllEnded,
}

/// A control group: part of the pipeline that the run decides about as values arrive
/// (a KFP DAG task: a nested pipeline, a condition's branch, a loop's body, an exit
/// handler's body). Its members are the tasks and groups whose `group` names it. It
/// starts when its upstream nodes ended (as its `trigger` says); then its condition, if
/// any, decides whether its members run at all, and its loop, if any, runs them once per
/// item. It ends when its members have: failed if one failed, else succeeded.
#[derive(Clone, Debug)]
pub struct Group {
    /// Its name in the pipeline (`condition-1`, `for-loop-2`, `exit-handler-1`).
    pub name: String,
    /// The group it sits in; `None` for the pipeline's own DAG.
    pub group: Option<usize>,
    /// Nodes of the same parent it waits for.
    pub upstream: Vec<Node>,
    pub trigger: Trigger,
    /// The values its condition and its loop read, by the names they use.
    pub inputs: IndexMap<String, Source>,
    /// A CEL expression over `inputs` (`inputs.parameter_values['x'] > 3`): the members
    /// run only when it holds; otherwise they are recorded as not run, which is no
    /// failure.
    pub condition: Option<String>,
    /// Runs the members once per item of a list.
    pub iteration: Option<Iteration>,
}

/// A loop over a list: the members run once per item, `Source::Item` giving each its
/// item.
#[derive(Clone, Debug)]
pub struct Iteration {
    /// The list: a JSON list of values, or a list of artifacts.
    pub items: Source,
    /// Most iterations running at once; `None` for no limit.
    pub parallelism: Option<usize>,
}

/// How tasks use the task cache: the outputs of an earlier task of any run with the same
/// component, executable, implementation and input digests, taken instead of running.
/// Every task that runs records its cache key, whether or not it looks the cache up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Caching {
    /// Look the cache up before running (`--no-cache` and a task's `cache: false` say no).
    pub enabled: bool,
    /// Take only outputs of a task that ended at most this long ago.
    pub max_staleness: Option<Duration>,
}

impl Default for Caching {
    fn default() -> Self {
        Caching {
            enabled: true,
            max_staleness: None,
        }
    }
}

impl Caching {
    /// The run's caching narrowed by a task's own: enabled only if both are, the shorter
    /// staleness bound.
    pub fn and(self, task: Caching) -> Caching {
        Caching {
            enabled: self.enabled && task.enabled,
            max_staleness: match (self.max_staleness, task.max_staleness) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            },
        }
    }
}

#[derive(Clone, Debug)]
pub struct PlannedTask {
    pub name: String,
    pub component: Arc<Component>,
    /// Every input that has a value, in the component's declaration order.
    pub inputs: IndexMap<String, Source>,
    /// Indices into [`Plan::tasks`] this task waits for (data and `after`), ascending.
    pub upstream: Vec<usize>,
    pub retry: RetrySpec,
    pub timeout: Option<Duration>,
    /// The task's request over its component's.
    pub resources: ResourceSpec,
    /// The implementation the pipeline prefers for this task, if it says.
    pub prefer: Option<Prefer>,
    /// For a task of a compiled KFP pipeline: its IR interface, by which the values
    /// that reach it are typed and laid out in its executor input, and what its executor
    /// does (a container, an importer, a cluster-only operation).
    pub kfp: Option<Arc<crate::launcher::task::KfpTask>>,
    /// Outputs stored even when the task runs in a fused chain.
    pub keep: Vec<String>,
    /// How the task uses the task cache (the run's `--no-cache` narrows it further).
    pub caching: Caching,
    /// The group it sits in ([`Plan::groups`]); `None` for the pipeline's own DAG.
    pub group: Option<usize>,
    /// Groups of the same parent it waits for, beyond the tasks in `upstream`.
    pub after_groups: Vec<usize>,
    pub trigger: Trigger,
}

#[derive(Clone, Debug)]
pub struct Plan {
    pub name: String,
    pub description: Option<String>,
    pub source: PathBuf,
    pub source_digest: String,
    pub params: IndexMap<String, PlanParam>,
    /// In topological order; ties follow the order of the pipeline file.
    pub tasks: Vec<PlannedTask>,
    /// Control groups (conditions, loops, nested pipelines), each after its parent;
    /// empty for a Sluice pipeline, whose tasks each run once.
    pub groups: Vec<Group>,
    /// What to serve if the run succeeds.
    pub deploy: Option<PlannedDeploy>,
    /// What the pipeline outputs (a KFP pipeline's `root.dag.outputs`), recorded with the
    /// run when it succeeds; empty for a Sluice pipeline.
    pub outputs: IndexMap<String, PipelineOutput>,
    /// The pipeline root a KFP pipeline was compiled with (`defaultPipelineRoot`), which
    /// `{{$.pipeline_root}}` resolves to; without one, the run's artifacts folder.
    pub pipeline_root: Option<String>,
    /// The pipeline's settings for running on Slurm (`backend.slurm`).
    pub slurm: Option<crate::spec::SlurmSpec>,
}

/// One output of a pipeline: where its value comes from, and its type as recorded.
#[derive(Clone, Debug, PartialEq)]
pub struct PipelineOutput {
    pub source: Source,
    /// The type it is recorded under (`NUMBER_INTEGER`, `system.Model`).
    pub type_: String,
    /// An artifact (or a list of them), rather than a parameter value.
    pub artifact: bool,
}

/// A checked `deploy` section.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedDeploy {
    pub model: String,
    /// Index into [`Plan::tasks`] of the task whose output is served.
    pub task: usize,
    pub output: String,
    /// The predictor `.wasm`, resolved against the pipeline file's folder.
    pub predictor: PathBuf,
    /// A CEL expression over the run's metrics; it compiled when planned.
    pub gate: Option<String>,
    pub labels: Vec<String>,
}

impl Plan {
    /// Builds the plan of one run from a loaded pipeline and `--param` values, reporting
    /// every problem found rather than only the first.
    pub fn build(file: &PipelineFile, args: &[(String, String)]) -> Result<Plan, Vec<PlanError>> {
        Builder::new(file).build(args)
    }

    /// The plan of running one component on its own: a single task whose inputs are the
    /// `--input name=value` arguments (a file path for artifact-typed inputs).
    pub fn for_component(
        component: Arc<Component>,
        args: &[(String, String)],
    ) -> Result<Plan, Vec<PlanError>> {
        let (params, inputs) = component_inputs(&component, args)?;
        let mut task_name: String = component
            .name()
            .to_ascii_lowercase()
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        if !valid_task_name(&task_name) {
            task_name = format!("c{task_name}");
        }
        let resources = component
            .spec
            .implementation
            .wasm
            .as_ref()
            .map(|w| w.resources.clone())
            .unwrap_or_default();
        Ok(Plan {
            name: component.name(),
            description: component.spec.description.clone(),
            source: component.path.clone(),
            source_digest: component.digest.clone(),
            params,
            tasks: vec![PlannedTask {
                name: task_name,
                component,
                inputs,
                upstream: Vec::new(),
                retry: RetrySpec::default(),
                timeout: None,
                resources,
                prefer: None,
                kfp: None,
                keep: Vec::new(),
                caching: Caching::default(),
                group: None,
                after_groups: Vec::new(),
                trigger: Trigger::AllSucceeded,
            }],
            groups: Vec::new(),
            deploy: None,
            outputs: IndexMap::new(),
            pipeline_root: None,
            slurm: None,
        })
    }

    /// The plan of running a KFP v1 graph component on its own: one task per graph task,
    /// given the components [`crate::spec::graph::load_tasks`] loaded for them.
    pub fn for_graph(
        graph_component: Arc<Component>,
        components: &IndexMap<String, Arc<Component>>,
        args: &[(String, String)],
    ) -> Result<Plan, Vec<PlanError>> {
        use crate::spec::graph::GraphArgument;
        let (params, graph_inputs) = component_inputs(&graph_component, args)?;
        let graph = graph_component
            .graph()
            .expect("for_graph is given a graph component");
        let mut errors = Vec::new();
        let index: HashMap<&str, usize> = graph
            .tasks
            .keys()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut tasks = Vec::new();
        let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); graph.tasks.len()];
        for (i, (id, task)) in graph.tasks.iter().enumerate() {
            let at = format!("implementation.graph.tasks.{id}");
            let component = components[id].clone();
            let mut inputs = IndexMap::new();
            for (name, arg) in &task.arguments {
                if component.input(name).is_none() {
                    errors.push(PlanError {
                        file: graph_component.path.clone(),
                        field: format!("{at}.arguments.{name}"),
                        message: no_such_input(&component, name),
                    });
                    continue;
                }
                let source = match arg {
                    GraphArgument::Constant(v) => Some(Source::Constant(v.clone())),
                    GraphArgument::GraphInput { input_name } => {
                        graph_inputs.get(input_name).cloned()
                    }
                    GraphArgument::TaskOutput {
                        task_id,
                        output_name,
                    } => {
                        let upstream = index[task_id.as_str()];
                        if components[task_id].output(output_name).is_none() {
                            errors.push(PlanError {
                                file: graph_component.path.clone(),
                                field: format!("{at}.arguments.{name}"),
                                message: format!("task '{task_id}' has no output '{output_name}'"),
                            });
                        }
                        edges[i].insert(upstream);
                        Some(Source::Output {
                            task: upstream,
                            output: output_name.clone(),
                        })
                    }
                };
                if let Some(source) = source {
                    inputs.insert(name.clone(), source);
                }
            }
            for input in &component.spec.inputs {
                if inputs.contains_key(&input.name) {
                    continue;
                }
                match &input.default {
                    Some(d) => {
                        inputs.insert(input.name.clone(), Source::Default(d.clone()));
                    }
                    None if input.optional => {}
                    None => errors.push(PlanError {
                        file: graph_component.path.clone(),
                        field: format!("{at}.arguments"),
                        message: format!("input '{}' has no value", input.name),
                    }),
                }
            }
            if task.is_enabled.is_some() {
                errors.push(PlanError {
                    file: graph_component.path.clone(),
                    field: format!("{at}.isEnabled"),
                    message: "conditional graph tasks are not supported; compile the pipeline with the KFP v2 SDK, whose conditions Sluice runs".into(),
                });
            }
            let retries = task
                .execution_options
                .as_ref()
                .and_then(|o| o.retry_strategy.as_ref())
                .map_or(0, |r| r.max_retries);
            let resources = component
                .spec
                .implementation
                .wasm
                .as_ref()
                .map(|w| w.resources.clone())
                .unwrap_or_default();
            tasks.push(PlannedTask {
                name: id.clone(),
                component,
                inputs,
                upstream: Vec::new(),
                retry: RetrySpec {
                    limit: retries,
                    ..RetrySpec::default()
                },
                timeout: None,
                resources,
                prefer: None,
                kfp: None,
                keep: Vec::new(),
                caching: Caching::default(),
                group: None,
                after_groups: Vec::new(),
                trigger: Trigger::AllSucceeded,
            });
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let order = topological_order(&edges).map_err(|cycle| {
            vec![PlanError {
                file: graph_component.path.clone(),
                field: "implementation.graph.tasks".into(),
                message: format!(
                    "tasks form a cycle through '{}'",
                    graph
                        .tasks
                        .get_index(cycle[0])
                        .map_or("", |(id, _)| id.as_str())
                ),
            }]
        })?;
        let tasks = in_order(tasks, &edges, &order);
        Ok(Plan {
            name: graph_component.name(),
            description: graph_component.spec.description.clone(),
            source: graph_component.path.clone(),
            source_digest: graph_component.digest.clone(),
            params,
            tasks,
            groups: Vec::new(),
            deploy: None,
            outputs: IndexMap::new(),
            pipeline_root: None,
            slurm: None,
        })
    }

    /// Whether a loop encloses what sits in `group` (a task or group's `group`): its
    /// tasks then run once per item, recorded as `NAME.i...`.
    pub fn in_loop(&self, mut group: Option<usize>) -> bool {
        while let Some(g) = group {
            if self.groups[g].iteration.is_some() {
                return true;
            }
            group = self.groups[g].group;
        }
        false
    }

    pub fn task(&self, name: &str) -> Option<&PlannedTask> {
        self.tasks.iter().find(|t| t.name == name)
    }

    /// For each task, the indices of the tasks that wait on it.
    pub fn downstream(&self) -> Vec<Vec<usize>> {
        let mut down = vec![Vec::new(); self.tasks.len()];
        for (i, task) in self.tasks.iter().enumerate() {
            for &u in &task.upstream {
                down[u].push(i);
            }
        }
        down
    }

    /// Each task's stage: 1 for tasks with no upstream, else one more than its latest
    /// upstream. A task in a group is no earlier than the group's first stage, which is
    /// one more than the last stage of each node the group waits for; a group's last
    /// stage is its latest member's.
    pub fn stages(&self) -> Vec<usize> {
        let mut stage = vec![1; self.tasks.len()];
        let mut first: Vec<Option<usize>> = vec![None; self.groups.len()];
        for i in 0..self.tasks.len() {
            let task = &self.tasks[i];
            let in_group = task
                .group
                .map_or(1, |g| self.group_start(g, &stage[..i], &mut first));
            let after_tasks = task.upstream.iter().map(|&u| stage[u] + 1);
            let after_groups = task
                .after_groups
                .iter()
                .map(|&g| self.group_end(g, &stage[..i]) + 1);
            stage[i] = after_tasks.chain(after_groups).fold(in_group, usize::max);
        }
        stage
    }

    /// The first stage of group `g`, given the stages of the tasks before it.
    fn group_start(&self, g: usize, stage: &[usize], first: &mut [Option<usize>]) -> usize {
        if let Some(s) = first[g] {
            return s;
        }
        let group = &self.groups[g];
        let parent = group.group.map_or(1, |p| self.group_start(p, stage, first));
        let start = group
            .upstream
            .iter()
            .map(|node| match *node {
                Node::Task(t) => stage.get(t).copied().unwrap_or(1) + 1,
                Node::Group(h) => self.group_end(h, stage) + 1,
            })
            .fold(parent, usize::max);
        first[g] = Some(start);
        start
    }

    /// The last stage of group `g`: its latest member task's, among `stage`'s tasks.
    fn group_end(&self, g: usize, stage: &[usize]) -> usize {
        let within = |mut group: Option<usize>| {
            while let Some(h) = group {
                if h == g {
                    return true;
                }
                group = self.groups[h].group;
            }
            false
        };
        stage
            .iter()
            .enumerate()
            .filter(|(i, _)| within(self.tasks[*i].group))
            .map(|(_, s)| *s)
            .max()
            .unwrap_or(1)
    }

    pub fn render(&self, format: Format) -> String {
        render::render(self, format)
    }
}

/// Renumbers tasks into topological `order`: each output source and upstream index is
/// rewritten to the tasks' new positions.
fn in_order(
    tasks: Vec<PlannedTask>,
    edges: &[BTreeSet<usize>],
    order: &[usize],
) -> Vec<PlannedTask> {
    let mut position = vec![0; order.len()];
    for (pos, &i) in order.iter().enumerate() {
        position[i] = pos;
    }
    let mut slots: Vec<Option<PlannedTask>> = tasks.into_iter().map(Some).collect();
    order
        .iter()
        .map(|&i| {
            let mut task = slots[i].take().expect("each task is placed once");
            for source in task.inputs.values_mut() {
                source.tasks_mut(&mut |task| *task = position[*task]);
            }
            task.upstream = edges[i].iter().map(|&d| position[d]).collect();
            task.upstream.sort_unstable();
            task
        })
        .collect()
}

type ComponentInputs = (IndexMap<String, PlanParam>, IndexMap<String, Source>);

/// The `--input` values of a component run on its own: the run's parameters, and the
/// source of each of the component's inputs that has a value.
fn component_inputs(
    component: &Component,
    args: &[(String, String)],
) -> Result<ComponentInputs, Vec<PlanError>> {
    let mut errors = Vec::new();
    let error = |errors: &mut Vec<PlanError>, field: String, message: String| {
        errors.push(PlanError {
            file: component.path.clone(),
            field,
            message,
        })
    };
    for (name, _) in args {
        if component.input(name).is_none() {
            error(
                &mut errors,
                format!("--input {name}"),
                no_such_input(component, name),
            );
        }
    }
    let mut params = IndexMap::new();
    let mut inputs = IndexMap::new();
    let mut missing = Vec::new();
    for input in &component.spec.inputs {
        let given = args
            .iter()
            .rev()
            .find(|(n, _)| *n == input.name)
            .map(|(_, v)| v);
        let artifact = input.type_.as_ref().is_some_and(TypeSpec::is_artifact);
        match given {
            Some(v) => {
                if let Some(ty) = input.param_type()
                    && let Err(m) = ty.check(v)
                {
                    error(
                        &mut errors,
                        format!("--input {}", input.name),
                        m.to_string(),
                    );
                    continue;
                }
                let value = if artifact {
                    ParamValue::File(PathBuf::from(v))
                } else {
                    ParamValue::Value(v.clone())
                };
                params.insert(
                    input.name.clone(),
                    PlanParam {
                        spec: ParamSpec {
                            type_: input.type_.clone(),
                            default: None,
                            description: input.description.clone(),
                            optional: input.optional,
                        },
                        value: Some((value.clone(), ValueOrigin::Given)),
                    },
                );
                inputs.insert(
                    input.name.clone(),
                    Source::Param {
                        name: input.name.clone(),
                        value,
                    },
                );
            }
            None => match &input.default {
                Some(d) => {
                    inputs.insert(input.name.clone(), Source::Default(d.clone()));
                }
                None if input.optional => {}
                None => missing.push(input),
            },
        }
    }
    if !missing.is_empty() {
        error(
            &mut errors,
            "--input".into(),
            format!("{}; pass --input name=value", missing_inputs(&missing)),
        );
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok((params, inputs))
}

struct Builder<'a> {
    file: &'a PipelineFile,
    errors: Vec<PlanError>,
}

impl<'a> Builder<'a> {
    fn new(file: &'a PipelineFile) -> Self {
        Builder {
            file,
            errors: Vec::new(),
        }
    }

    fn error(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.errors.push(PlanError {
            file: self.file.path.clone(),
            field: field.into(),
            message: message.into(),
        });
    }

    fn build(mut self, args: &[(String, String)]) -> Result<Plan, Vec<PlanError>> {
        let params = self.params(args);
        let spec = &self.file.spec;
        let index: HashMap<&str, usize> = spec
            .tasks
            .keys()
            .enumerate()
            .map(|(i, name)| (name.as_str(), i))
            .collect();

        let mut tasks = Vec::with_capacity(spec.tasks.len());
        let mut edges: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); spec.tasks.len()];
        for (i, (name, task)) in spec.tasks.iter().enumerate() {
            let at = format!("tasks.{name}");
            if !valid_task_name(name) {
                self.error(
                    &at,
                    "a task name starts with a letter or digit and has only letters, digits, '-' and '_'",
                );
            }
            let component = match &self.file.components[name] {
                Ok(c) => c.clone(),
                Err(err) => {
                    self.error(format!("{at}.component"), crate::error_chain(err.as_ref()));
                    continue;
                }
            };
            if component.graph().is_some() {
                self.error(
                    format!("{at}.component"),
                    format!(
                        "'{}' is a graph component: run it on its own with `sluice component run`, or name its tasks' components in the pipeline",
                        component.name()
                    ),
                );
                continue;
            }
            for dep in &task.after {
                match index.get(dep.as_str()) {
                    Some(&d) if d == i => {
                        self.error(format!("{at}.after"), "a task cannot wait for itself")
                    }
                    Some(&d) => {
                        edges[i].insert(d);
                    }
                    None => self.error(format!("{at}.after"), unknown_task(dep, spec.tasks.keys())),
                }
            }
            let inputs = self.bind_inputs(
                &at,
                name,
                &component,
                task.inputs.iter(),
                &params,
                &index,
                &mut edges[i],
            );
            let resources = task.resources.or(&component
                .spec
                .implementation
                .wasm
                .as_ref()
                .map(|w| w.resources.clone())
                .unwrap_or_default());
            if resources.accelerator.is_some() && component.spec.implementation.container.is_none()
            {
                self.error(
                    format!("{at}.resources.accelerator"),
                    format!(
                        "component '{}' has no container implementation, and wasm steps cannot use accelerators",
                        component.name()
                    ),
                );
            }
            for (k, output) in task.keep.iter().enumerate() {
                if component.output(output).is_none() {
                    self.error(
                        format!("{at}.keep[{k}]"),
                        format!("component '{}' has no output '{output}'", component.name()),
                    );
                }
            }
            if task.timeout.is_some_and(|t| t.0.is_zero()) {
                self.error(
                    format!("{at}.timeout"),
                    "expected a duration longer than 0".to_owned(),
                );
            }
            let imp = &component.spec.implementation;
            let offered = match task.prefer {
                Some(Prefer::Container) => imp.container.is_some(),
                Some(Prefer::Wasm) => imp.wasm.is_some(),
                None => true,
            };
            if !offered {
                self.error(
                    format!("{at}.prefer"),
                    format!(
                        "component '{}' has no {} implementation",
                        component.name(),
                        task.prefer.map(|p| p.to_string()).unwrap_or_default()
                    ),
                );
            }
            tasks.push(PlannedTask {
                name: name.clone(),
                component,
                inputs,
                upstream: Vec::new(),
                retry: task.retries,
                timeout: task.timeout.map(|t| t.0),
                resources,
                prefer: task.prefer,
                kfp: None,
                keep: task.keep.clone(),
                caching: Caching {
                    enabled: task.cache,
                    max_staleness: task.max_cache_staleness.map(|d| d.0),
                },
                group: None,
                after_groups: Vec::new(),
                trigger: Trigger::AllSucceeded,
            });
        }
        let deploy = spec.deploy.as_ref().and_then(|d| self.deploy(d, &index));
        if !self.errors.is_empty() {
            return Err(self.errors);
        }

        let order = match topological_order(&edges) {
            Ok(order) => order,
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .map(|&i| spec.tasks.get_index(i).unwrap().0.as_str())
                    .collect();
                self.error(
                    format!("tasks.{}", names[0]),
                    format!("tasks form a cycle: {} -> {}", names.join(" -> "), names[0]),
                );
                return Err(self.errors);
            }
        };
        let tasks = in_order(tasks, &edges, &order);

        Ok(Plan {
            name: spec.name.clone(),
            description: spec.description.clone(),
            source: self.file.path.clone(),
            source_digest: self.file.digest.clone(),
            params,
            tasks,
            groups: Vec::new(),
            deploy: deploy.map(|d| PlannedDeploy {
                task: order
                    .iter()
                    .position(|&i| i == d.task)
                    .expect("the deploy task is planned"),
                ..d
            }),
            outputs: IndexMap::new(),
            pipeline_root: None,
            slurm: spec.backend.as_ref().and_then(|b| b.slurm.clone()),
        })
    }

    fn deploy(
        &mut self,
        d: &crate::spec::DeploySpec,
        index: &HashMap<&str, usize>,
    ) -> Option<PlannedDeploy> {
        let errors = self.errors.len();
        if !valid_model_name(&d.model) {
            self.error(
                "deploy.model",
                "a model name starts with a letter or digit and has only letters, digits, '.', '-' and '_'",
            );
        }
        for label in &d.labels {
            if !valid_label(label) {
                self.error(
                    "deploy.labels",
                    format!("'{label}' is not a label: use lower-case letters, digits, '-' and '_', starting with a letter"),
                );
            }
        }
        if let Some(gate) = &d.gate
            && let Err(m) = crate::spec::gate::Gate::compile(gate)
        {
            self.error("deploy.gate", m.to_string());
        }
        let target = match d.artifact.split_once('.') {
            Some((task, output)) => match index.get(task) {
                Some(&i) => match &self.file.components[task] {
                    Ok(c) if c.output(output).is_some() => Some((i, output.to_owned())),
                    Ok(c) => {
                        let declared = c.spec.outputs.iter().map(|o| o.name.as_str());
                        self.error(
                            "deploy.artifact",
                            format!(
                                "task '{task}' has no output '{output}' (outputs: {})",
                                listing(declared)
                            ),
                        );
                        None
                    }
                    Err(_) => None,
                },
                None => {
                    self.error(
                        "deploy.artifact",
                        unknown_task(task, self.file.spec.tasks.keys()),
                    );
                    None
                }
            },
            None => {
                self.error(
                    "deploy.artifact",
                    format!("expected task.output, found '{}'", d.artifact),
                );
                None
            }
        };
        let (task, output) = target?;
        (self.errors.len() == errors).then(|| PlannedDeploy {
            model: d.model.clone(),
            task,
            output,
            predictor: crate::spec::join_clean(self.file.base_dir(), &d.predictor),
            gate: d.gate.clone(),
            labels: d.labels.clone(),
        })
    }

    fn params(&mut self, args: &[(String, String)]) -> IndexMap<String, PlanParam> {
        let spec = &self.file.spec;
        for (name, _) in args {
            if !spec.params.contains_key(name) {
                let known: Vec<&str> = spec.params.keys().map(String::as_str).collect();
                let message = if known.is_empty() {
                    "the pipeline has no parameters".to_owned()
                } else {
                    format!(
                        "the pipeline has no parameter '{name}' (it has: {})",
                        known.join(", ")
                    )
                };
                self.error(format!("--param {name}"), message);
            }
        }
        let mut out = IndexMap::new();
        for (name, p) in &spec.params {
            if let Some(default) = &p.default
                && let Some(ty) = p.type_.as_ref().and_then(TypeSpec::param_type)
                && let Err(m) = ty.check(default)
            {
                self.error(format!("params.{name}.default"), m.to_string());
            }
            let given = args.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v);
            let value = match (given, &p.default) {
                (Some(v), _) => {
                    if let Some(ty) = p.type_.as_ref().and_then(TypeSpec::param_type)
                        && let Err(m) = ty.check(v)
                    {
                        self.error(format!("--param {name}"), m.to_string());
                    }
                    let value = if p.is_artifact() {
                        ParamValue::File(PathBuf::from(v))
                    } else {
                        ParamValue::Value(v.clone())
                    };
                    Some((value, ValueOrigin::Given))
                }
                (None, Some(d)) => {
                    let value = if p.is_artifact() {
                        ParamValue::File(self.file.base_dir().join(d))
                    } else {
                        ParamValue::Value(d.clone())
                    };
                    Some((value, ValueOrigin::Default))
                }
                (None, None) if p.optional => None,
                (None, None) => {
                    self.error(
                        format!("params.{name}"),
                        format!("required parameter has no value; pass --param {name}=..."),
                    );
                    None
                }
            };
            out.insert(
                name.clone(),
                PlanParam {
                    spec: p.clone(),
                    value,
                },
            );
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn bind_inputs<'b>(
        &mut self,
        at: &str,
        task_name: &str,
        component: &Component,
        bindings: impl Iterator<Item = (&'b String, &'b Binding)>,
        params: &IndexMap<String, PlanParam>,
        index: &HashMap<&str, usize>,
        edges: &mut BTreeSet<usize>,
    ) -> IndexMap<String, Source> {
        let spec = &self.file.spec;
        let mut bound: HashMap<&str, Source> = HashMap::new();
        for (input_name, binding) in bindings {
            let field = format!("{at}.inputs.{input_name}");
            let Some(input) = component.input(input_name) else {
                self.error(field, no_such_input(component, input_name));
                continue;
            };
            let source = match binding {
                Binding::Value(v) => {
                    if let Some(ty) = input.param_type()
                        && let Err(m) = ty.check(v)
                    {
                        self.error(field, m.to_string());
                        continue;
                    }
                    Source::Constant(v.clone())
                }
                Binding::Param(p) => {
                    let Some(param) = params.get(p) else {
                        self.error(field, format!("unknown parameter '{p}'"));
                        continue;
                    };
                    if !compatible(param.spec.type_.as_ref(), input.type_.as_ref()) {
                        self.error(
                            field,
                            type_mismatch(
                                &format!("parameter '{p}'"),
                                param.spec.type_.as_ref(),
                                input.type_.as_ref(),
                            ),
                        );
                        continue;
                    }
                    match &param.value {
                        Some((value, _)) => Source::Param {
                            name: p.clone(),
                            value: value.clone(),
                        },
                        None => {
                            if input.is_required() {
                                self.error(field, format!("parameter '{p}' is optional and unset, but the input is required"));
                            }
                            continue;
                        }
                    }
                }
                Binding::Output { task, output } => {
                    let Some(&upstream) = index.get(task.as_str()) else {
                        self.error(field, unknown_task(task, spec.tasks.keys()));
                        continue;
                    };
                    if task == task_name {
                        self.error(field, "a task cannot take its own output");
                        continue;
                    }
                    let Ok(producer) = &self.file.components[task.as_str()] else {
                        continue; // reported against the producing task
                    };
                    let Some(out) = producer.output(output) else {
                        let declared = producer.spec.outputs.iter().map(|o| o.name.as_str());
                        self.error(
                            field,
                            format!(
                                "task '{task}' has no output '{output}' (outputs: {})",
                                listing(declared)
                            ),
                        );
                        continue;
                    };
                    if !compatible(out.type_.as_ref(), input.type_.as_ref()) {
                        self.error(
                            field,
                            type_mismatch(
                                &format!("output '{task}.{output}'"),
                                out.type_.as_ref(),
                                input.type_.as_ref(),
                            ),
                        );
                        continue;
                    }
                    edges.insert(upstream);
                    Source::Output {
                        task: upstream,
                        output: output.clone(),
                    }
                }
            };
            bound.insert(input.name.as_str(), source);
        }

        let mut inputs = IndexMap::new();
        let mut missing = Vec::new();
        for input in &component.spec.inputs {
            if let Some(source) = bound.remove(input.name.as_str()) {
                inputs.insert(input.name.clone(), source);
            } else if let Some(default) = &input.default {
                inputs.insert(input.name.clone(), Source::Default(default.clone()));
            } else if !input.optional
                && !self
                    .errors
                    .iter()
                    .any(|e| e.field == format!("{at}.inputs.{}", input.name))
            {
                missing.push(input);
            }
        }
        if !missing.is_empty() {
            self.error(format!("{at}.inputs"), missing_inputs(&missing));
        }
        inputs
    }
}

fn no_such_input(component: &Component, name: &str) -> String {
    let declared = component.spec.inputs.iter().map(|i| i.name.as_str());
    format!(
        "component '{}' has no input '{name}' (inputs: {})",
        component.name(),
        listing(declared)
    )
}

fn listing<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<&str> = names.collect();
    if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    }
}

/// "missing required input 'data' (Dataset)", or inputs, for a list of required inputs.
fn missing_inputs(missing: &[&InputSpec]) -> String {
    let names: Vec<String> = missing
        .iter()
        .map(|input| match &input.type_ {
            Some(t) => format!("'{}' ({t})", input.name),
            None => format!("'{}'", input.name),
        })
        .collect();
    let noun = if names.len() == 1 { "input" } else { "inputs" };
    format!("missing required {noun} {}", names.join(", "))
}

/// Model names appear in URLs and folder names.
pub fn valid_model_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name.len() <= 128
}

/// Labels (`stable`, `canary`) appear in URLs and must not look like versions.
pub fn valid_label(label: &str) -> bool {
    let mut chars = label.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_'))
        && label.len() <= 64
}

fn valid_task_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn unknown_task<'k>(name: &str, known: impl Iterator<Item = &'k String>) -> String {
    let known: Vec<&str> = known.map(String::as_str).collect();
    format!("unknown task '{name}' (tasks: {})", known.join(", "))
}

fn type_mismatch(what: &str, from: Option<&TypeSpec>, to: Option<&TypeSpec>) -> String {
    let show = |t: Option<&TypeSpec>| t.map_or("untyped".to_owned(), |t| t.to_string());
    format!(
        "{what} is {}, but the input expects {}",
        show(from),
        show(to)
    )
}

/// Kahn's algorithm; among ready tasks the earliest declared goes first. On a cycle,
/// returns the tasks of one cycle in order.
fn topological_order(deps: &[BTreeSet<usize>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = deps.len();
    let mut waiting: Vec<usize> = deps.iter().map(BTreeSet::len).collect();
    let mut dependents = vec![Vec::new(); n];
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(i);
        }
    }
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| waiting[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &j in &dependents[i] {
            waiting[j] -= 1;
            if waiting[j] == 0 {
                ready.push(Reverse(j));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    Err(find_cycle(deps))
}

fn find_cycle(deps: &[BTreeSet<usize>]) -> Vec<usize> {
    let mut graph: DiGraph<usize, ()> = DiGraph::new();
    let nodes: Vec<NodeIndex> = (0..deps.len()).map(|i| graph.add_node(i)).collect();
    for (i, ds) in deps.iter().enumerate() {
        for &d in ds {
            graph.add_edge(nodes[d], nodes[i], ());
        }
    }
    let scc = petgraph::algo::tarjan_scc(&graph)
        .into_iter()
        .filter(|c| c.len() > 1)
        .min_by_key(|c| c.iter().map(|n| graph[*n]).min())
        .expect("a failed topological sort has a cycle");
    // Walk the cycle from its earliest-declared task along edges inside the component.
    let members: BTreeSet<usize> = scc.iter().map(|n| graph[*n]).collect();
    let start = *members.first().expect("non-empty");
    let mut cycle = vec![start];
    let mut current = start;
    loop {
        let next = graph
            .neighbors(nodes[current])
            .map(|n| graph[n])
            .filter(|m| members.contains(m))
            .min()
            .expect("every member of a cycle has a successor in it");
        if next == start || cycle.contains(&next) {
            break;
        }
        cycle.push(next);
        current = next;
    }
    cycle
}

/// Paths of the artifact parameters of a plan, for callers that import them.
pub fn artifact_params(plan: &Plan) -> impl Iterator<Item = (&str, &Path)> {
    plan.params.iter().filter_map(|(name, p)| match &p.value {
        Some((ParamValue::File(path), _)) => Some((name.as_str(), path.as_path())),
        _ => None,
    })
}

#[cfg(test)]
mod tests;
