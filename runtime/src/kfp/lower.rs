//! Lowers a compiled KFP pipeline (the IR, `PipelineSpec` 2.1) into Sluice's plan, the
//! one normal form every front end produces. Executor tasks become [`PlannedTask`]s whose
//! component is the executor as a KFP v1 component (its command line keeps KFP's
//! placeholders, resolved per attempt from the executor input); every DAG task (a nested
//! pipeline, a condition's branch, a loop's body, an exit handler's body) becomes a
//! [`Group`] with its condition and its loop. Values are wired through: a nested DAG's
//! inputs are replaced by what its parent binds them to (or its defaults), a loop body's
//! item by [`Source::Item`], a DAG's outputs by the sources its selectors name (a loop's
//! as [`Source::Collected`], `OneOf` as [`Source::OneOf`]). Nothing runs and nothing is
//! contacted: images are named, not pulled.
//!
//! Task (and group) names are their display names (`taskInfo.name`); every task whose
//! display name another task also has takes its enclosing DAG tasks' keys in front
//! (`outer.inner`), so that a task's name depends on the pipeline alone, never on the
//! order tasks were lowered in.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value as Json;

use super::Params;
use super::ir::{self, ComponentSpec, IrFile, TaskSpec};
use crate::launcher::task::{Action, ImportUri, KfpTask, v1_type};
use crate::launcher::values;
use crate::plan::{
    Caching, Group, Iteration, Node, ParamValue, PipelineOutput, Plan, PlanError, PlanParam,
    PlannedTask, Source, Trigger, ValueOrigin,
};
use crate::spec::{Component, ParamSpec, TypeSpec};

/// The plan of one run of `file` with the parameter values `params` (see
/// [`super::bind_params`]), its containers' images substituted by `image_map` (`FROM`,
/// `TO`). Every problem is reported, one [`PlanError`] each, naming the IR field.
pub fn lower(
    file: &IrFile,
    params: &Params,
    image_map: &[(String, String)],
) -> Result<Plan, Vec<PlanError>> {
    let mut lowering = Lowering {
        file,
        image_map,
        tasks: Vec::new(),
        groups: Vec::new(),
        places: Vec::new(),
        group_places: Vec::new(),
        components: HashMap::new(),
        errors: Vec::new(),
    };
    let root = &file.spec.root;
    let mut scope = Scope::default();
    let mut plan_params = IndexMap::new();
    for (name, spec) in &root.input_definitions.parameters {
        let value = params.values.get(name).map(|v| {
            let given = spec
                .default_value
                .as_ref()
                .and_then(|d| values::coerce(spec.parameter_type, d).ok())
                .is_none_or(|d| &d != v);
            let origin = if given {
                ValueOrigin::Given
            } else {
                ValueOrigin::Default
            };
            (ParamValue::Value(values::render(v)), origin)
        });
        if let Some((value, _)) = &value {
            scope.params.insert(
                name.clone(),
                Source::Param {
                    name: name.clone(),
                    value: value.clone(),
                },
            );
        }
        plan_params.insert(
            name.clone(),
            PlanParam {
                spec: ParamSpec {
                    type_: Some(TypeSpec::named(v1_type(spec.parameter_type))),
                    default: spec.default_value.as_ref().map(values::render),
                    description: spec.description.clone(),
                    optional: spec.is_optional,
                },
                value,
            },
        );
    }
    for (name, spec) in &root.input_definitions.artifacts {
        let value = params
            .artifacts
            .get(name)
            .map(|path| (ParamValue::File(path.clone()), ValueOrigin::Given));
        if let Some((value, _)) = &value {
            scope.artifacts.insert(
                name.clone(),
                Source::Param {
                    name: name.clone(),
                    value: value.clone(),
                },
            );
        }
        plan_params.insert(
            name.clone(),
            PlanParam {
                spec: ParamSpec {
                    type_: Some(TypeSpec::named(spec.artifact_type.title())),
                    default: None,
                    description: None,
                    optional: spec.is_optional,
                },
                value,
            },
        );
    }
    let members = lowering.dag(root, "root", &scope, None, &[]);
    lowering.name_tasks();
    let (out_params, out_artifacts) = dag_outputs(root, &members, |source| source);
    let mut outputs = IndexMap::new();
    for (name, source) in out_params {
        let type_ = root
            .output_definitions
            .parameters
            .get(&name)
            .map_or("STRING", |p| p.parameter_type.as_str());
        outputs.insert(
            name,
            PipelineOutput {
                source,
                type_: type_.to_owned(),
                artifact: false,
            },
        );
    }
    for (name, source) in out_artifacts {
        let type_ = root
            .output_definitions
            .artifacts
            .get(&name)
            .map_or("system.Artifact", |a| a.artifact_type.title());
        outputs.insert(
            name,
            PipelineOutput {
                source,
                type_: type_.to_owned(),
                artifact: true,
            },
        );
    }
    if !lowering.errors.is_empty() {
        return Err(lowering.errors);
    }
    Ok(Plan {
        name: file.name().to_owned(),
        description: file.spec.pipeline_info.description.clone(),
        source: file.path.clone(),
        source_digest: file.digest.clone(),
        params: plan_params,
        tasks: lowering.tasks,
        groups: lowering.groups,
        deploy: None,
        outputs,
        pipeline_root: file.spec.default_pipeline_root.clone(),
        slurm: None,
    })
}

/// The sources a DAG's own inputs have, by name.
#[derive(Clone, Debug, Default)]
struct Scope {
    params: BTreeMap<String, Source>,
    artifacts: BTreeMap<String, Source>,
}

/// A DAG task once lowered: an executor task, or a group with the sources of its
/// outputs.
enum Lowered {
    Task(usize),
    Group {
        index: usize,
        params: BTreeMap<String, Source>,
        artifacts: BTreeMap<String, Source>,
    },
}

impl Lowered {
    /// The source of one of its outputs (a parameter's, or with `artifact` an
    /// artifact's): a task's own, or what a group's selectors name.
    fn output(&self, key: &str, artifact: bool) -> Option<Source> {
        match self {
            Lowered::Task(i) => Some(Source::Output {
                task: *i,
                output: key.to_owned(),
            }),
            Lowered::Group {
                params, artifacts, ..
            } => {
                if artifact {
                    artifacts.get(key).cloned()
                } else {
                    params.get(key).cloned()
                }
            }
        }
    }

    fn node(&self) -> Node {
        match self {
            Lowered::Task(i) => Node::Task(*i),
            Lowered::Group { index, .. } => Node::Group(*index),
        }
    }
}

struct Lowering<'a> {
    file: &'a IrFile,
    image_map: &'a [(String, String)],
    tasks: Vec<PlannedTask>,
    groups: Vec<Group>,
    /// Each task's display name and enclosing DAG tasks' keys, to name it by.
    places: Vec<(String, Vec<String>)>,
    /// The same for each group.
    group_places: Vec<(String, Vec<String>)>,
    /// Executor components as KFP v1 components, by component name.
    components: HashMap<String, Arc<Component>>,
    errors: Vec<PlanError>,
}

impl Lowering<'_> {
    fn error(&mut self, field: String, message: impl Into<String>) {
        self.errors.push(PlanError {
            file: self.file.path.clone(),
            field,
            message: message.into(),
        });
    }

    /// Lowers the DAG of `component` (named `at` in error fields), whose inputs have
    /// the sources in `scope`, into `group`; `path` holds the enclosing DAG tasks' keys.
    /// Returns each of its tasks, by key.
    fn dag(
        &mut self,
        component: &ComponentSpec,
        at: &str,
        scope: &Scope,
        group: Option<usize>,
        path: &[String],
    ) -> BTreeMap<String, Lowered> {
        let mut lowered = BTreeMap::new();
        let Some(dag) = &component.dag else {
            return lowered;
        };
        for key in dag_order(&dag.tasks) {
            let task = &dag.tasks[key];
            let field = format!("{at}.dag.tasks.{key}");
            let (params, artifacts) = self.task_inputs(task, &field, scope, &lowered);
            let upstream: Vec<Node> = ir::upstream(task)
                .into_iter()
                .filter_map(|u| lowered.get(u).map(Lowered::node))
                .collect();
            let trigger = if task.trigger_policy.runs_after_any_end() {
                Trigger::AllEnded
            } else {
                Trigger::AllSucceeded
            };
            let child_name = &task.component_ref.name;
            let Some(child) = self.file.component(child_name) else {
                self.error(
                    format!("{field}.componentRef.name"),
                    format!("no component '{child_name}'"),
                );
                continue;
            };
            let display = match task.task_info.name.as_str() {
                "" => key.clone(),
                name => name.to_owned(),
            };
            let entry = if child.dag.is_some() {
                let mut inner_path = path.to_vec();
                inner_path.push(key.clone());
                self.group(
                    GroupTask {
                        task,
                        field: &field,
                        display,
                        child,
                        upstream,
                        trigger,
                    },
                    (params, artifacts),
                    group,
                    &inner_path,
                )
            } else {
                let Some(component) = self.component(child_name, &field) else {
                    continue;
                };
                // Named once every task is known (`name_tasks`).
                self.places.push((display.clone(), path.to_vec()));
                let name = display;
                let mut inputs = IndexMap::new();
                inputs.extend(params);
                inputs.extend(artifacts);
                let (upstream_tasks, after_groups) = split_nodes(&upstream);
                let resources = self.resources(child);
                let kfp = self.kfp_task(child, &field);
                self.tasks.push(PlannedTask {
                    name,
                    component,
                    inputs,
                    upstream: upstream_tasks,
                    retry: super::retry_spec(task),
                    timeout: None,
                    resources,
                    prefer: None,
                    kfp: Some(Arc::new(kfp)),
                    keep: Vec::new(),
                    caching: Caching {
                        enabled: task.caching_options.enable_cache,
                        max_staleness: None,
                    },
                    group,
                    after_groups,
                    trigger,
                });
                Lowered::Task(self.tasks.len() - 1)
            };
            lowered.insert(key.clone(), entry);
        }
        lowered
    }

    /// The sources of a task's parameter and artifact inputs.
    fn task_inputs(
        &mut self,
        task: &TaskSpec,
        field: &str,
        scope: &Scope,
        lowered: &BTreeMap<String, Lowered>,
    ) -> (IndexMap<String, Source>, IndexMap<String, Source>) {
        let mut params = IndexMap::new();
        for (name, input) in &task.inputs.parameters {
            let source = if let Some(from) = &input.component_input_parameter {
                scope.params.get(from).cloned()
            } else if let Some(o) = &input.task_output_parameter {
                lowered
                    .get(&o.producer_task)
                    .and_then(|l| l.output(&o.output_parameter_key, false))
            } else if let Some(v) = &input.runtime_value {
                Some(match &v.constant {
                    Json::String(text) if text.contains("{{$.") => Source::RunText(text.clone()),
                    // As the task will receive it: the IR writes an integer as `3.0`.
                    constant => {
                        let typed = self
                            .file
                            .component(&task.component_ref.name)
                            .and_then(|c| c.input_definitions.parameters.get(name))
                            .and_then(|p| values::coerce(p.parameter_type, constant).ok());
                        Source::Constant(values::render(typed.as_ref().unwrap_or(constant)))
                    }
                })
            } else if let Some(s) = &input.task_final_status {
                lowered
                    .get(&s.producer_task)
                    .map(|l| Source::FinalStatus(l.node()))
            } else {
                None
            };
            let source = match (source, &input.parameter_expression_selector) {
                (Some(of), Some(selector)) if !selector.is_empty() => Some(Source::Select {
                    of: Box::new(of),
                    selector: selector.clone(),
                }),
                (source, _) => source,
            };
            match source {
                Some(source) => {
                    params.insert(name.clone(), source);
                }
                // A producer that is not a sibling, or an output it does not have: the
                // checks when the file was loaded rule both out, but say so if not.
                None if input.task_output_parameter.is_some() => self.error(
                    format!("{field}.inputs.parameters.{name}"),
                    "names an output no task of this DAG produces",
                ),
                None => {}
            }
        }
        let mut artifacts = IndexMap::new();
        for (name, input) in &task.inputs.artifacts {
            let source = if let Some(from) = &input.component_input_artifact {
                scope.artifacts.get(from).cloned()
            } else if let Some(o) = &input.task_output_artifact {
                lowered
                    .get(&o.producer_task)
                    .and_then(|l| l.output(&o.output_artifact_key, true))
            } else {
                None
            };
            if let Some(source) = source {
                artifacts.insert(name.clone(), source);
            }
        }
        (params, artifacts)
    }

    /// Lowers a DAG task: its group, then its members, then the sources of its outputs.
    fn group(
        &mut self,
        g: GroupTask<'_>,
        (params, artifacts): (IndexMap<String, Source>, IndexMap<String, Source>),
        parent: Option<usize>,
        path: &[String],
    ) -> Lowered {
        let GroupTask {
            task,
            field,
            display,
            child,
            upstream,
            trigger,
        } = g;
        let index = self.groups.len();
        let condition = task
            .trigger_policy
            .condition
            .clone()
            .filter(|c| !c.is_empty());
        let mut inner = Scope::default();
        let mut item_input = None;
        let iteration = if let Some(it) = &task.parameter_iterator {
            item_input = Some(it.item_input.clone());
            let items = match (&it.items.raw, &it.items.input_parameter) {
                (Some(raw), _) => match serde_json::from_str::<Json>(raw) {
                    Ok(Json::Array(_)) => Some(Source::Constant(raw.clone())),
                    _ => {
                        self.error(
                            format!("{field}.parameterIterator.items.raw"),
                            format!("expected a JSON list, found {raw}"),
                        );
                        None
                    }
                },
                (None, Some(input)) => params.get(input).cloned().or_else(|| {
                    self.error(
                        format!("{field}.parameterIterator.items.inputParameter"),
                        format!("the task has no input '{input}'"),
                    );
                    None
                }),
                (None, None) => {
                    self.error(format!("{field}.parameterIterator.items"), "names no items");
                    None
                }
            };
            items.map(|items| Iteration {
                items,
                parallelism: parallelism(task),
            })
        } else if let Some(it) = &task.artifact_iterator {
            item_input = Some(it.item_input.clone());
            let items = artifacts.get(&it.items.input_artifact).cloned();
            if items.is_none() {
                self.error(
                    format!("{field}.artifactIterator.items.inputArtifact"),
                    format!("the task has no input '{}'", it.items.input_artifact),
                );
            }
            items.map(|items| Iteration {
                items,
                parallelism: parallelism(task),
            })
        } else {
            None
        };
        // The nested DAG's inputs: what the task binds them to, its defaults for what
        // the task leaves unset (or sets to nothing at run time), its loop's item.
        for (name, spec) in &child.input_definitions.parameters {
            let default = spec
                .default_value
                .as_ref()
                .map(|d| Source::Constant(values::render(d)));
            let source = if item_input.as_deref() == Some(name) {
                Some(Source::Item { group: index })
            } else {
                match (params.get(name).cloned(), default) {
                    (Some(bound), Some(default)) => Some(Source::OneOf(vec![bound, default])),
                    (bound, default) => bound.or(default),
                }
            };
            if let Some(source) = source {
                inner.params.insert(name.clone(), source);
            }
        }
        for name in child.input_definitions.artifacts.keys() {
            let source = if item_input.as_deref() == Some(name) {
                Some(Source::Item { group: index })
            } else {
                artifacts.get(name).cloned()
            };
            if let Some(source) = source {
                inner.artifacts.insert(name.clone(), source);
            }
        }
        // A loop's item may also reach the body under the name the task gives it.
        if let Some(item) = &item_input
            && !inner.params.contains_key(item)
            && !inner.artifacts.contains_key(item)
        {
            if task.artifact_iterator.is_some() {
                inner
                    .artifacts
                    .insert(item.clone(), Source::Item { group: index });
            } else {
                inner
                    .params
                    .insert(item.clone(), Source::Item { group: index });
            }
        }
        let looped = iteration.is_some();
        // Named once every group is known (`name_tasks`).
        let outer = &path[..path.len().saturating_sub(1)];
        self.group_places.push((display.clone(), outer.to_vec()));
        self.groups.push(Group {
            name: display,
            group: parent,
            upstream,
            trigger,
            inputs: params,
            condition,
            iteration,
        });
        let members = self.dag(
            child,
            &format!("components.{}", task.component_ref.name),
            &inner,
            Some(index),
            path,
        );
        let collect = |of: Source| {
            if looped {
                Source::Collected {
                    group: index,
                    of: Box::new(of),
                }
            } else {
                of
            }
        };
        let (out_params, out_artifacts) = dag_outputs(child, &members, collect);
        Lowered::Group {
            index,
            params: out_params,
            artifacts: out_artifacts,
        }
    }

    /// Names every task and every group: its display name when no other task (group) has
    /// it, else its enclosing DAG tasks' keys and its display name (`outer.inner.add`),
    /// with `-2`, `-3` after names still taken, in plan order.
    fn name_tasks(&mut self) {
        for (task, name) in self.tasks.iter_mut().zip(unique_names(&self.places)) {
            task.name = name;
        }
        for (group, name) in self.groups.iter_mut().zip(unique_names(&self.group_places)) {
            group.name = name;
        }
    }

    fn component(&mut self, name: &str, field: &str) -> Option<Arc<Component>> {
        if let Some(c) = self.components.get(name) {
            return Some(c.clone());
        }
        let spec = self.file.component(name)?;
        let container = spec
            .executor_label
            .as_deref()
            .and_then(|label| self.file.spec.deployment_spec.executors.get(label))
            .and_then(|e| e.container.as_ref());
        let image = container.map(|c| {
            self.image_map
                .iter()
                .find(|(from, _)| *from == c.image)
                .map_or(c.image.as_str(), |(_, to)| to.as_str())
        });
        // An importer or a cluster-only operation has no container to run.
        let runs = container
            .zip(image)
            .filter(|(c, _)| !c.image.starts_with("argostub/"));
        match super::synthesize(self.file, name, spec, runs) {
            Ok(c) => {
                let c = Arc::new(c);
                self.components.insert(name.to_owned(), c.clone());
                Some(c)
            }
            Err(e) => {
                self.error(format!("{field}.componentRef.name"), crate::error_chain(&e));
                None
            }
        }
    }

    /// What the run needs of an executor task beyond its component: its interface and
    /// what its executor does.
    fn kfp_task(&mut self, component: &ComponentSpec, field: &str) -> KfpTask {
        let executor = component
            .executor_label
            .as_deref()
            .and_then(|label| self.file.spec.deployment_spec.executors.get(label));
        let action = match executor {
            Some(e) if e.importer.is_some() => {
                let importer = e.importer.as_ref().expect("an importer");
                let uri = match (
                    &importer.artifact_uri.constant,
                    &importer.artifact_uri.runtime_parameter,
                ) {
                    (Some(c), _) => ImportUri::Constant(values::render(c)),
                    (None, Some(p)) => ImportUri::Parameter(p.clone()),
                    (None, None) => {
                        self.error(
                            format!("{field}: importer.artifactUri"),
                            "names neither a constant nor a runtime parameter",
                        );
                        ImportUri::Constant(String::new())
                    }
                };
                Action::Importer {
                    uri,
                    type_: importer.type_schema.clone(),
                    metadata: importer
                        .metadata
                        .clone()
                        .unwrap_or_else(|| Json::Object(Default::default())),
                }
            }
            Some(e) => match e.container.as_ref() {
                Some(c) if c.image.starts_with("argostub/") => Action::Kubernetes {
                    operation: c.image["argostub/".len()..].to_owned(),
                },
                Some(c) => Action::Container {
                    resources_at_run: super::deferred_limits(c.resources.as_ref()),
                },
                None => Action::Container {
                    resources_at_run: None,
                },
            },
            None => Action::Container {
                resources_at_run: None,
            },
        };
        KfpTask {
            executor: component.executor_label.clone(),
            inputs: component.input_definitions.clone(),
            outputs: component.output_definitions.clone(),
            action,
        }
    }

    /// A container's fixed resources; limits a placeholder sets are decided per task at
    /// run time.
    fn resources(&mut self, component: &ComponentSpec) -> crate::spec::ResourceSpec {
        let Some(label) = component.executor_label.as_deref() else {
            return Default::default();
        };
        let container = self
            .file
            .spec
            .deployment_spec
            .executors
            .get(label)
            .and_then(|e| e.container.as_ref());
        let Some(container) = container else {
            return Default::default();
        };
        let (fixed, _) = super::split_resources(container.resources.as_ref());
        super::resources(fixed.as_ref()).unwrap_or_else(|m| {
            let field = format!("deploymentSpec.executors.{label}.container.resources");
            // Tasks sharing the executor share its fault: say it once.
            if !self.errors.iter().any(|e| e.field == field) {
                self.error(field, m);
            }
            Default::default()
        })
    }
}

/// A name for each of `places` (display name, enclosing DAG tasks' keys): the display
/// name when no other place has it, else qualified by the keys; `-2`, `-3` after a name
/// still taken.
fn unique_names(places: &[(String, Vec<String>)]) -> Vec<String> {
    let mut uses: HashMap<&str, usize> = HashMap::new();
    for (display, _) in places {
        *uses.entry(display.as_str()).or_default() += 1;
    }
    let mut taken = HashSet::new();
    places
        .iter()
        .map(|(display, path)| {
            let base = if uses[display.as_str()] == 1 {
                display.clone()
            } else {
                path.iter()
                    .chain(std::iter::once(display))
                    .map(String::as_str)
                    .collect::<Vec<_>>()
                    .join(".")
            };
            let mut name = base.clone();
            let mut n = 2;
            while !taken.insert(name.clone()) {
                name = format!("{base}-{n}");
                n += 1;
            }
            name
        })
        .collect()
}

/// The sources of the outputs a DAG component exposes (`dag.outputs`), each passed
/// through `collect` (a loop's body collects them over its iterations): the one its
/// selector names, or `OneOf` the branches a selector lists.
fn dag_outputs(
    component: &ComponentSpec,
    members: &BTreeMap<String, Lowered>,
    collect: impl Fn(Source) -> Source,
) -> (BTreeMap<String, Source>, BTreeMap<String, Source>) {
    let member_output =
        |producer: &str, key: &str, artifact: bool| members.get(producer)?.output(key, artifact);
    let mut out_params = BTreeMap::new();
    let mut out_artifacts = BTreeMap::new();
    let Some(dag) = &component.dag else {
        return (out_params, out_artifacts);
    };
    for (name, spec) in &dag.outputs.parameters {
        let mut sources: Vec<Source> = spec
            .selectors()
            .filter_map(|s| member_output(&s.producer_subtask, &s.output_parameter_key, false))
            .collect();
        let source = match sources.len() {
            0 => continue,
            1 => sources.remove(0),
            _ => Source::OneOf(sources),
        };
        out_params.insert(name.clone(), collect(source));
    }
    for (name, spec) in &dag.outputs.artifacts {
        let mut sources: Vec<Source> = spec
            .artifact_selectors
            .iter()
            .filter_map(|s| member_output(&s.producer_subtask, &s.output_artifact_key, true))
            .collect();
        let source = match sources.len() {
            0 => continue,
            1 => sources.remove(0),
            _ => Source::OneOf(sources),
        };
        out_artifacts.insert(name.clone(), collect(source));
    }
    (out_params, out_artifacts)
}

/// A DAG task whose component is a DAG, with what is known of it.
struct GroupTask<'a> {
    task: &'a TaskSpec,
    field: &'a str,
    display: String,
    child: &'a ComponentSpec,
    upstream: Vec<Node>,
    trigger: Trigger,
}

fn parallelism(task: &TaskSpec) -> Option<usize> {
    match task.iterator_policy.parallelism_limit {
        0 => None,
        n => Some(n as usize),
    }
}

/// Upstream tasks (ascending) and upstream groups of a node.
fn split_nodes(nodes: &[Node]) -> (Vec<usize>, Vec<usize>) {
    let mut tasks = Vec::new();
    let mut groups = Vec::new();
    for node in nodes {
        match node {
            Node::Task(i) => tasks.push(*i),
            Node::Group(g) => groups.push(*g),
        }
    }
    tasks.sort_unstable();
    groups.sort_unstable();
    (tasks, groups)
}

/// A DAG's task keys, each after the tasks it depends on; ties in key order. The IR was
/// checked acyclic when loaded.
fn dag_order(tasks: &BTreeMap<String, TaskSpec>) -> Vec<&String> {
    let mut order = Vec::with_capacity(tasks.len());
    let mut placed: BTreeSet<&str> = BTreeSet::new();
    while order.len() < tasks.len() {
        let before = order.len();
        for (key, task) in tasks {
            if placed.contains(key.as_str()) {
                continue;
            }
            let ready = ir::upstream(task)
                .iter()
                .all(|u| placed.contains(u) || !tasks.contains_key(*u));
            if ready {
                placed.insert(key);
                order.push(key);
            }
        }
        if order.len() == before {
            // A cycle the load-time checks missed: the rest in key order.
            order.extend(tasks.keys().filter(|k| !placed.contains(k.as_str())));
            break;
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::plan::Format;

    const NESTED: &str = r#"
pipelineInfo: {name: p}
schemaVersion: 2.1.0
root:
  inputDefinitions:
    parameters:
      n: {parameterType: NUMBER_INTEGER, defaultValue: 2}
  dag:
    tasks:
      loop:
        taskInfo: {name: loop}
        componentRef: {name: comp-body}
        parameterIterator: {items: {raw: '[1, 2]'}, itemInput: item}
        iteratorPolicy: {parallelismLimit: 1}
      sum:
        taskInfo: {name: sum}
        componentRef: {name: comp-echo}
        dependentTasks: [loop]
        inputs:
          parameters:
            "x\nm": {taskOutputParameter: {producerTask: loop, outputParameterKey: out}}
components:
  comp-body:
    inputDefinitions:
      parameters:
        item: {parameterType: NUMBER_INTEGER}
    outputDefinitions:
      parameters:
        out: {parameterType: LIST}
    dag:
      outputs:
        parameters:
          out: {valueFromParameter: {producerSubtask: echo, outputParameterKey: Output}}
      tasks:
        echo:
          taskInfo: {name: echo}
          componentRef: {name: comp-echo}
          inputs:
            parameters:
              x: {componentInputParameter: item}
  comp-echo:
    executorLabel: exec-echo
    inputDefinitions:
      parameters:
        x: {parameterType: STRING}
    outputDefinitions:
      parameters:
        Output: {parameterType: STRING}
deploymentSpec:
  executors:
    exec-echo: {container: {image: alpine, command: [echo]}}
"#;

    /// A loop's body reads its item; a task after the loop reads its outputs collected;
    /// the loop keeps its parallelism; names (here an input's) print on one line each.
    #[test]
    fn loops_lower_into_a_group_with_items_and_collected_outputs() {
        let file = IrFile::parse(Path::new("p.yaml"), NESTED).unwrap();
        let params = super::super::bind_params(&file, &[]).unwrap();
        let plan = lower(&file, &params, &[]).unwrap();
        assert_eq!(plan.groups.len(), 1);
        let group = &plan.groups[0];
        assert_eq!(group.name, "loop");
        let iteration = group.iteration.as_ref().unwrap();
        assert_eq!(iteration.parallelism, Some(1));
        assert_eq!(iteration.items, Source::Constant("[1, 2]".into()));
        let echo = plan.task("echo").unwrap();
        assert_eq!(echo.group, Some(0));
        assert_eq!(echo.inputs["x"], Source::Item { group: 0 });
        let sum = plan.task("sum").unwrap();
        assert_eq!(sum.after_groups, [0]);
        assert_eq!(
            sum.inputs["x\nm"],
            Source::Collected {
                group: 0,
                of: Box::new(Source::Output {
                    task: 0,
                    output: "Output".into()
                })
            }
        );
        assert_eq!(plan.stages(), [1, 2]);
        let text = plan.render(Format::Text);
        assert!(text.contains("x\\nm"), "{text}");
        assert!(
            !text.lines().any(|l| l.trim_start().starts_with('m')),
            "{text}"
        );
    }
}

#[cfg(test)]
mod naming {
    use std::path::Path;

    use super::*;

    /// The nested pipeline sorts first and is lowered first; names do not depend on it.
    #[test]
    fn a_shared_display_name_is_qualified_by_where_each_task_sits() {
        let yaml = r#"
pipelineInfo: {name: p}
schemaVersion: 2.1.0
root:
  dag:
    tasks:
      a-inner:
        taskInfo: {name: a-inner}
        componentRef: {name: comp-inner}
      add:
        taskInfo: {name: add}
        componentRef: {name: comp-echo}
      solo:
        taskInfo: {name: solo}
        componentRef: {name: comp-echo}
      b-inner:
        taskInfo: {name: a-inner}
        componentRef: {name: comp-inner}
components:
  comp-inner:
    dag:
      tasks:
        add:
          taskInfo: {name: add}
          componentRef: {name: comp-echo}
  comp-echo:
    executorLabel: exec-echo
deploymentSpec:
  executors:
    exec-echo: {container: {image: alpine, command: [echo]}}
"#;
        let file = IrFile::parse(Path::new("p.yaml"), yaml).unwrap();
        let params = super::super::bind_params(&file, &[]).unwrap();
        let plan = lower(&file, &params, &[]).unwrap();
        let mut names: Vec<&str> = plan.tasks.iter().map(|t| t.name.as_str()).collect();
        names.sort_unstable();
        assert_eq!(names, ["a-inner.add", "add", "b-inner.add", "solo"]);
        let groups: Vec<&str> = plan.groups.iter().map(|g| g.name.as_str()).collect();
        assert_eq!(groups, ["a-inner", "a-inner-2"]);
    }
}
