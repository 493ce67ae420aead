//! The KFP pipeline IR (`PipelineSpec`, schema 2.1) as the KFP compiler writes it: the
//! structures Sluice reads, and the checks that every reference in the file resolves, so
//! that a run never discovers a broken file halfway. Field names follow the protobuf's
//! JSON names; fields Sluice does not use are ignored, as KFP's own backend ignores fields
//! it does not know.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

pub use crate::launcher::ArtifactType;
pub use crate::launcher::task::{ArtifactSpec, Interface, ParameterSpec};
pub use crate::launcher::values::ParameterType;
use crate::spec::SpecError;

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineSpec {
    pub pipeline_info: PipelineInfo,
    #[serde(default)]
    pub deployment_spec: DeploymentSpec,
    #[serde(default)]
    pub components: BTreeMap<String, ComponentSpec>,
    pub root: ComponentSpec,
    #[serde(default)]
    pub schema_version: Option<String>,
    #[serde(default)]
    pub sdk_version: Option<String>,
    #[serde(default)]
    pub default_pipeline_root: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PipelineInfo {
    pub name: String,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DeploymentSpec {
    #[serde(default)]
    pub executors: BTreeMap<String, ExecutorSpec>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    #[serde(default)]
    pub input_definitions: Interface,
    #[serde(default)]
    pub output_definitions: Interface,
    #[serde(default)]
    pub dag: Option<DagSpec>,
    #[serde(default)]
    pub executor_label: Option<String>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DagSpec {
    #[serde(default)]
    pub tasks: BTreeMap<String, TaskSpec>,
    #[serde(default)]
    pub outputs: DagOutputs,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct DagOutputs {
    #[serde(default)]
    pub parameters: BTreeMap<String, DagOutputParameter>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, DagOutputArtifact>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputParameter {
    #[serde(default)]
    pub value_from_parameter: Option<ParameterSelector>,
    #[serde(default)]
    pub value_from_oneof: Option<OneOf>,
}

impl DagOutputParameter {
    /// Where the output comes from: its one selector, or each of its `OneOf` in order.
    pub fn selectors(&self) -> impl Iterator<Item = &ParameterSelector> {
        self.value_from_parameter.iter().chain(
            self.value_from_oneof
                .iter()
                .flat_map(|o| &o.parameter_selectors),
        )
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OneOf {
    #[serde(default)]
    pub parameter_selectors: Vec<ParameterSelector>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSelector {
    pub producer_subtask: String,
    pub output_parameter_key: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DagOutputArtifact {
    #[serde(default)]
    pub artifact_selectors: Vec<ArtifactSelector>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSelector {
    pub producer_subtask: String,
    pub output_artifact_key: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    #[serde(default)]
    pub task_info: TaskInfo,
    #[serde(default)]
    pub inputs: TaskInputs,
    #[serde(default)]
    pub dependent_tasks: Vec<String>,
    #[serde(default)]
    pub caching_options: CachingOptions,
    pub component_ref: ComponentRef,
    #[serde(default)]
    pub trigger_policy: TriggerPolicy,
    #[serde(default)]
    pub parameter_iterator: Option<ParameterIterator>,
    #[serde(default)]
    pub artifact_iterator: Option<ArtifactIterator>,
    #[serde(default)]
    pub iterator_policy: IteratorPolicy,
    #[serde(default)]
    pub retry_policy: Option<RetryPolicy>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TaskInfo {
    #[serde(default)]
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TaskInputs {
    #[serde(default)]
    pub parameters: BTreeMap<String, InputParameter>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, InputArtifact>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputParameter {
    #[serde(default)]
    pub component_input_parameter: Option<String>,
    #[serde(default)]
    pub task_output_parameter: Option<TaskOutputParameter>,
    #[serde(default)]
    pub runtime_value: Option<RuntimeValue>,
    #[serde(default)]
    pub task_final_status: Option<TaskFinalStatus>,
    #[serde(default)]
    pub parameter_expression_selector: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputParameter {
    pub producer_task: String,
    pub output_parameter_key: String,
}

#[derive(Clone, Debug, Deserialize)]
pub struct RuntimeValue {
    #[serde(default)]
    pub constant: Value,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskFinalStatus {
    pub producer_task: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputArtifact {
    #[serde(default)]
    pub component_input_artifact: Option<String>,
    #[serde(default)]
    pub task_output_artifact: Option<TaskOutputArtifact>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskOutputArtifact {
    pub producer_task: String,
    pub output_artifact_key: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CachingOptions {
    #[serde(default)]
    pub enable_cache: bool,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ComponentRef {
    pub name: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct TriggerPolicy {
    #[serde(default)]
    pub condition: Option<String>,
    #[serde(default)]
    pub strategy: Option<String>,
}

impl TriggerPolicy {
    /// Whether the task runs once its upstream tasks end, however they end.
    pub fn runs_after_any_end(&self) -> bool {
        self.strategy.as_deref() == Some("ALL_UPSTREAM_TASKS_COMPLETED")
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterIterator {
    pub items: ParameterItems,
    pub item_input: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterItems {
    #[serde(default)]
    pub raw: Option<String>,
    #[serde(default)]
    pub input_parameter: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactIterator {
    pub items: ArtifactItems,
    pub item_input: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactItems {
    pub input_artifact: String,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IteratorPolicy {
    #[serde(default)]
    pub parallelism_limit: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetryPolicy {
    #[serde(default)]
    pub max_retry_count: u32,
    #[serde(default)]
    pub backoff_duration: Option<String>,
    #[serde(default)]
    pub backoff_factor: Option<f64>,
    #[serde(default)]
    pub backoff_max_duration: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ExecutorSpec {
    #[serde(default)]
    pub container: Option<ContainerSpec>,
    #[serde(default)]
    pub importer: Option<ImporterSpec>,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct ContainerSpec {
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub resources: Option<Resources>,
}

#[derive(Clone, Debug, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

/// `PipelineContainerSpec.ResourceSpec`: the older numeric fields (cores; memory in GB)
/// and the newer quantity strings, which win when both are there.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resources {
    #[serde(default)]
    pub cpu_limit: Option<f64>,
    #[serde(default)]
    pub memory_limit: Option<f64>,
    #[serde(default)]
    pub cpu_request: Option<f64>,
    #[serde(default)]
    pub memory_request: Option<f64>,
    #[serde(default)]
    pub resource_cpu_limit: Option<String>,
    #[serde(default)]
    pub resource_memory_limit: Option<String>,
    #[serde(default)]
    pub resource_cpu_request: Option<String>,
    #[serde(default)]
    pub resource_memory_request: Option<String>,
    #[serde(default)]
    pub accelerator: Option<Accelerator>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Accelerator {
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    #[serde(default)]
    pub count: Option<Value>,
    #[serde(default)]
    pub resource_type: Option<String>,
    #[serde(default)]
    pub resource_count: Option<String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImporterSpec {
    pub artifact_uri: ImporterUri,
    #[serde(default)]
    pub type_schema: ArtifactType,
    #[serde(default)]
    pub metadata: Option<Value>,
    #[serde(default)]
    pub reimport: bool,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImporterUri {
    #[serde(default)]
    pub constant: Option<Value>,
    #[serde(default)]
    pub runtime_parameter: Option<String>,
}

/// The second YAML document the compiler writes when a pipeline uses
/// `kfp-kubernetes`: Kubernetes settings by executor.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct PlatformSpec {
    #[serde(default)]
    pub platforms: BTreeMap<String, Platform>,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Platform {
    #[serde(default)]
    pub deployment_spec: PlatformDeployment,
    #[serde(flatten)]
    pub other: BTreeMap<String, Value>,
}

#[derive(Clone, Debug, Default, Deserialize)]
pub struct PlatformDeployment {
    #[serde(default)]
    pub executors: BTreeMap<String, BTreeMap<String, Value>>,
}

/// A loaded IR file: the pipeline and any platform settings that came with it.
#[derive(Clone, Debug)]
pub struct IrFile {
    pub path: PathBuf,
    /// `sha256:` of the file's bytes.
    pub digest: String,
    pub spec: PipelineSpec,
    pub platform: PlatformSpec,
}

impl IrFile {
    pub fn load(path: &Path) -> Result<IrFile, SpecError> {
        let text = crate::files::read_text_limited(
            path,
            crate::files::SPEC_FILE_MAX,
            crate::files::Follow::Yes,
        )
        .map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        IrFile::parse(path, &text)
    }

    pub fn parse(path: &Path, text: &str) -> Result<IrFile, SpecError> {
        let mut docs = serde_yaml_ng::Deserializer::from_str(text);
        let first = docs
            .next()
            .ok_or_else(|| invalid(path, "(document)", "empty file"))?;
        let spec =
            PipelineSpec::deserialize(first).map_err(|e| crate::spec::yaml_error(path, e))?;
        let mut platform = PlatformSpec::default();
        for doc in docs {
            let value = serde_yaml_ng::Value::deserialize(doc)
                .map_err(|e| crate::spec::yaml_error(path, e))?;
            if value.get("platforms").is_some() {
                platform = serde_yaml_ng::from_value(value)
                    .map_err(|e| crate::spec::yaml_error(path, e))?;
            }
        }
        let file = IrFile {
            path: path.to_owned(),
            digest: crate::spec::sha256_hex(text.as_bytes()),
            spec,
            platform,
        };
        file.check()?;
        Ok(file)
    }

    pub fn name(&self) -> &str {
        &self.spec.pipeline_info.name
    }

    pub fn component(&self, name: &str) -> Option<&ComponentSpec> {
        self.spec.components.get(name)
    }

    /// Every reference in the file resolves and every DAG is acyclic; the first problem
    /// found is reported with its field path.
    fn check(&self) -> Result<(), SpecError> {
        let spec = &self.spec;
        match spec.schema_version.as_deref() {
            Some(v) if v.starts_with("2.1") => {}
            Some(v) => {
                return Err(invalid(
                    &self.path,
                    "schemaVersion",
                    &format!(
                        "'{v}' is not supported: Sluice runs KFP pipeline IR 2.1 (compile the pipeline with kfp 2.x)"
                    ),
                ));
            }
            None => {
                return Err(invalid(
                    &self.path,
                    "schemaVersion",
                    "missing: expected the KFP pipeline IR's `schemaVersion: 2.1.0`",
                ));
            }
        }
        if spec.pipeline_info.name.trim().is_empty() {
            return Err(invalid(
                &self.path,
                "pipelineInfo.name",
                "empty: a compiled pipeline has a name",
            ));
        }
        if spec.root.dag.is_none() {
            return Err(invalid(
                &self.path,
                "root.dag",
                "missing: the root component must be a DAG",
            ));
        }
        self.check_component("root", &spec.root)?;
        for (name, component) in &spec.components {
            self.check_component(&format!("components.{name}"), component)?;
        }
        // A DAG component must not contain itself, however deep, and DAGs nest at most
        // MAX_NESTING deep (every later stage walks the nesting).
        let mut done = BTreeSet::new();
        for name in spec.components.keys() {
            match self.nesting_cycle(name, &mut Vec::new(), &mut done) {
                Some(Nesting::Cycle(cycle)) => {
                    return Err(invalid(
                        &self.path,
                        &format!("components.{}", cycle[0]),
                        &format!("components contain themselves: {}", cycle.join(" -> ")),
                    ));
                }
                Some(Nesting::TooDeep(path)) => {
                    return Err(invalid(
                        &self.path,
                        &format!("components.{}", path[0]),
                        &format!(
                            "DAG components nest more than {MAX_NESTING} deep ({} -> ... -> {})",
                            path[0],
                            path[path.len() - 1]
                        ),
                    ));
                }
                None => {}
            }
        }
        Ok(())
    }

    fn nesting_cycle(
        &self,
        name: &str,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Nesting> {
        if done.contains(name) {
            return None;
        }
        if let Some(at) = stack.iter().position(|s| s == name) {
            let mut cycle = stack[at..].to_vec();
            cycle.push(name.to_owned());
            return Some(Nesting::Cycle(cycle));
        }
        if stack.len() >= MAX_NESTING {
            let mut path = stack.clone();
            path.push(name.to_owned());
            return Some(Nesting::TooDeep(path));
        }
        stack.push(name.to_owned());
        if let Some(dag) = self.component(name).and_then(|c| c.dag.as_ref()) {
            for task in dag.tasks.values() {
                if let Some(cycle) = self.nesting_cycle(&task.component_ref.name, stack, done) {
                    return Some(cycle);
                }
            }
        }
        stack.pop();
        done.insert(name.to_owned());
        None
    }

    fn check_component(&self, at: &str, component: &ComponentSpec) -> Result<(), SpecError> {
        let err = |field: String, message: String| invalid(&self.path, &field, &message);
        match (&component.dag, &component.executor_label) {
            (Some(dag), _) => {
                for (name, task) in &dag.tasks {
                    let at = format!("{at}.dag.tasks.{name}");
                    // Task names become record names and lines of output: a control
                    // character (a newline) in one could fake lines of its own.
                    if name
                        .chars()
                        .chain(task.task_info.name.chars())
                        .any(char::is_control)
                    {
                        return Err(err(
                            format!("{at}.taskInfo.name"),
                            "a task name must not contain control characters".to_owned(),
                        ));
                    }
                    let Some(child) = self.component(&task.component_ref.name) else {
                        return Err(err(
                            format!("{at}.componentRef.name"),
                            format!("no component '{}' in `components`", task.component_ref.name),
                        ));
                    };
                    let mut producers: Vec<(&str, String)> = Vec::new();
                    for dep in &task.dependent_tasks {
                        producers.push((dep, format!("{at}.dependentTasks")));
                    }
                    for (input, p) in &task.inputs.parameters {
                        let field = format!("{at}.inputs.parameters.{input}");
                        if let Some(o) = &p.task_output_parameter {
                            producers.push((&o.producer_task, field.clone()));
                        }
                        if let Some(s) = &p.task_final_status {
                            producers.push((&s.producer_task, field.clone()));
                        }
                        if let Some(sel) = &p.parameter_expression_selector {
                            crate::launcher::expr::Selector::compile(sel).map_err(|m| {
                                err(
                                    format!("{field}.parameterExpressionSelector"),
                                    m.to_string(),
                                )
                            })?;
                        }
                    }
                    for (input, a) in &task.inputs.artifacts {
                        if let Some(o) = &a.task_output_artifact {
                            producers
                                .push((&o.producer_task, format!("{at}.inputs.artifacts.{input}")));
                        }
                    }
                    for (producer, field) in producers {
                        if !dag.tasks.contains_key(producer) {
                            return Err(err(
                                field,
                                format!("no task '{producer}' in the same DAG"),
                            ));
                        }
                    }
                    if let Some(condition) = &task.trigger_policy.condition
                        && !condition.is_empty()
                    {
                        crate::launcher::expr::Condition::compile(condition).map_err(|m| {
                            err(format!("{at}.triggerPolicy.condition"), m.to_string())
                        })?;
                    }
                    if (task.parameter_iterator.is_some() || task.artifact_iterator.is_some())
                        && child.dag.is_none()
                    {
                        return Err(err(
                            format!("{at}.componentRef.name"),
                            "a loop's component must be a DAG".into(),
                        ));
                    }
                    if let Some(r) = &task.retry_policy {
                        for (field, d) in [
                            ("backoffDuration", &r.backoff_duration),
                            ("backoffMaxDuration", &r.backoff_max_duration),
                        ] {
                            if let Some(d) = d {
                                parse_duration(d).map_err(|m| {
                                    err(format!("{at}.retryPolicy.{field}"), m.to_string())
                                })?;
                            }
                        }
                        // Each delay is the last one times the factor: below 1 (or not a
                        // number) the delays would shrink, or have no meaning.
                        if let Some(f) = r.backoff_factor
                            && !(f >= 1.0 && f.is_finite())
                        {
                            return Err(err(
                                format!("{at}.retryPolicy.backoffFactor"),
                                format!("expected a number of at least 1, found {f}"),
                            ));
                        }
                    }
                }
                if let Some(cycle) = find_cycle(dag) {
                    return Err(err(
                        format!("{at}.dag.tasks"),
                        format!("tasks form a cycle: {}", cycle.join(" -> ")),
                    ));
                }
                Ok(())
            }
            (None, Some(label)) => {
                let Some(executor) = self.spec.deployment_spec.executors.get(label) else {
                    return Err(err(
                        format!("{at}.executorLabel"),
                        format!("no executor '{label}' in `deploymentSpec.executors`"),
                    ));
                };
                if executor.container.is_none() && executor.importer.is_none() {
                    let kind = executor
                        .other
                        .keys()
                        .next()
                        .cloned()
                        .unwrap_or_else(|| "(empty)".into());
                    return Err(err(
                        format!("deploymentSpec.executors.{label}"),
                        format!(
                            "a '{kind}' executor cannot run here: Sluice runs `container` and `importer` executors"
                        ),
                    ));
                }
                Ok(())
            }
            (None, None) => Err(err(
                at.to_owned(),
                "a component needs either `dag` or `executorLabel`".into(),
            )),
        }
    }
}

/// The upstream tasks of a task within its DAG: `dependentTasks` and the producers of
/// its inputs.
pub fn upstream(task: &TaskSpec) -> BTreeSet<&str> {
    let mut up: BTreeSet<&str> = task.dependent_tasks.iter().map(String::as_str).collect();
    for p in task.inputs.parameters.values() {
        if let Some(o) = &p.task_output_parameter {
            up.insert(&o.producer_task);
        }
        if let Some(s) = &p.task_final_status {
            up.insert(&s.producer_task);
        }
    }
    for a in task.inputs.artifacts.values() {
        if let Some(o) = &a.task_output_artifact {
            up.insert(&o.producer_task);
        }
    }
    up
}

fn find_cycle(dag: &DagSpec) -> Option<Vec<String>> {
    // Depth-first search with colours; returns the first cycle met.
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit<'a>(
        dag: &'a DagSpec,
        name: &'a str,
        marks: &mut BTreeMap<&'a str, Mark>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        match marks.get(name) {
            Some(Mark::Done) => return None,
            Some(Mark::Open) => {
                let from = stack.iter().position(|s| *s == name).unwrap_or(0);
                let mut cycle: Vec<String> = stack[from..].iter().map(|s| s.to_string()).collect();
                cycle.push(name.to_owned());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(name, Mark::Open);
        stack.push(name);
        if let Some(task) = dag.tasks.get(name) {
            for up in upstream(task) {
                if let Some(cycle) = visit(dag, up, marks, stack) {
                    return Some(cycle);
                }
            }
        }
        stack.pop();
        marks.insert(name, Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    for name in dag.tasks.keys() {
        if let Some(cycle) = visit(dag, name, &mut marks, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// Protobuf JSON durations (`"3600s"`, `"0.5s"`) and the forms Sluice accepts elsewhere.
pub fn parse_duration(
    text: &str,
) -> Result<std::time::Duration, crate::spec::resources::QuantityError> {
    if let Some(secs) = text.strip_suffix('s')
        && let Ok(v) = secs.parse::<f64>()
    {
        // Negative, not a number, or past what a duration holds: not a duration.
        return std::time::Duration::try_from_secs_f64(v)
            .map_err(|_| crate::spec::resources::QuantityError::Duration(text.to_owned()));
    }
    humantime::parse_duration(text)
        .map_err(|_| crate::spec::resources::QuantityError::Duration(text.to_owned()))
}

/// How deep DAG components may nest (a nested pipeline in a nested pipeline ...).
pub const MAX_NESTING: usize = 100;

/// What walking the nesting of DAG components found.
enum Nesting {
    /// Components that contain themselves, in order.
    Cycle(Vec<String>),
    /// A path of components nested past [`MAX_NESTING`].
    TooDeep(Vec<String>),
}

fn invalid(path: &Path, field: &str, message: &str) -> SpecError {
    SpecError::Invalid {
        path: path.to_owned(),
        field: field.to_owned(),
        message: message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = "\
pipelineInfo: {name: p}
schemaVersion: 2.1.0
root:
  dag:
    tasks:
      a: {taskInfo: {name: a}, componentRef: {name: comp-group}}
components:
  comp-group:
    dag:
      tasks:
        b: {taskInfo: {name: b}, componentRef: {name: comp-echo}}
  comp-echo: {executorLabel: exec-echo}
deploymentSpec:
  executors:
    exec-echo: {container: {image: alpine, command: [echo]}}
";

    fn parse(text: &str) -> Result<IrFile, String> {
        IrFile::parse(Path::new("p.yaml"), text).map_err(|e| e.to_string())
    }

    /// DAGs nested past the limit are one error at load, never a stack overflow later.
    #[test]
    fn deep_nesting_is_refused_when_loaded() {
        let nested = |depth: usize| {
            let mut text = String::from(
                "pipelineInfo: {name: p}\nschemaVersion: 2.1.0\nroot:\n  dag:\n    tasks:\n      a: {taskInfo: {name: a}, componentRef: {name: comp-0}}\ncomponents:\n",
            );
            for i in 0..depth {
                text.push_str(&format!(
                    "  comp-{i}:\n    dag:\n      tasks:\n        t: {{taskInfo: {{name: t}}, componentRef: {{name: comp-{}}}}}\n",
                    i + 1
                ));
            }
            text.push_str(&format!(
                "  comp-{depth}: {{executorLabel: exec-echo}}\ndeploymentSpec:\n  executors:\n    exec-echo: {{container: {{image: alpine, command: [echo]}}}}\n"
            ));
            text
        };
        parse(&nested(MAX_NESTING - 1)).unwrap();
        let err = parse(&nested(2000)).unwrap_err();
        assert!(
            err.contains(&format!("DAG components nest more than {MAX_NESTING} deep")),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }

    #[test]
    fn retry_policies_that_cannot_be_followed_are_refused_when_loaded() {
        let with = |policy: &str| {
            SMALL.replace(
                "b: {taskInfo: {name: b}, componentRef: {name: comp-echo}}",
                &format!("b: {{taskInfo: {{name: b}}, componentRef: {{name: comp-echo}}, retryPolicy: {{maxRetryCount: 2, {policy}}}}}"),
            )
        };
        parse(&with("backoffDuration: 1s, backoffFactor: 2")).unwrap();
        for (policy, field) in [
            ("backoffDuration: 99999999999999999999s", "backoffDuration"),
            ("backoffDuration: -1s", "backoffDuration"),
            ("backoffMaxDuration: NaNs", "backoffMaxDuration"),
            ("backoffFactor: -2.0", "backoffFactor"),
            ("backoffFactor: 0.5", "backoffFactor"),
        ] {
            let err = parse(&with(policy)).unwrap_err();
            assert!(
                err.contains(&format!("comp-group.dag.tasks.b.retryPolicy.{field}: ")),
                "{policy}: {err}"
            );
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn references_are_checked_when_loaded() {
        parse(SMALL).unwrap();
        let err = parse(&SMALL.replace("comp-echo}}\n  comp-echo", "comp-group}}\n  comp-echo"))
            .unwrap_err();
        assert!(
            err.contains("components contain themselves: comp-group -> comp-group"),
            "{err}"
        );
        let err =
            parse(&SMALL.replace("exec-echo: {container", "exec-other: {container")).unwrap_err();
        assert!(err.contains("no executor 'exec-echo'"), "{err}");
        let err = parse(&SMALL.replace("taskInfo: {name: b}", "taskInfo: {name: \"b\\nfake\"}"))
            .unwrap_err();
        assert!(
            err.contains("taskInfo.name: a task name must not contain control characters"),
            "{err}"
        );
        let err = parse(&SMALL.replace("{name: comp-echo}", "{name: comp-nope}")).unwrap_err();
        assert!(err.contains("no component 'comp-nope'"), "{err}");
        let err = parse(&SMALL.replace("pipelineInfo: {name: p}", "pipelineInfo: {name: ''}"))
            .unwrap_err();
        assert!(err.contains("pipelineInfo.name: empty"), "{err}");
        let err = parse(&SMALL.replace(
            "{container: {image: alpine, command: [echo]}}",
            "{customJob: {}}",
        ))
        .unwrap_err();
        assert!(
            err.contains("a 'customJob' executor cannot run here"),
            "{err}"
        );
        let err = parse("pipelineInfo: {name: p}\nroot: {dag: {tasks: {}}}\n").unwrap_err();
        assert!(err.contains("schemaVersion: missing"), "{err}");
        let err = parse(&SMALL.replace("    tasks:\n      a:", "    tasks:\n      a: {taskInfo: {name: a}, dependentTasks: [a], componentRef: {name: comp-echo}}\n      c:")).unwrap_err();
        assert!(err.contains("tasks form a cycle: a -> a"), "{err}");
    }

    #[test]
    fn a_platform_document_may_follow() {
        let text = format!(
            "{SMALL}---\nplatforms:\n  kubernetes:\n    deploymentSpec:\n      executors:\n        exec-echo:\n          secretAsEnv: [{{secretName: s}}]\n"
        );
        let file = parse(&text).unwrap();
        let k8s = &file.platform.platforms["kubernetes"];
        assert!(k8s.deployment_spec.executors["exec-echo"].contains_key("secretAsEnv"));
    }
}
