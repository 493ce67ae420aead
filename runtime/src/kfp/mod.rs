//! Kubeflow Pipelines v2: pipelines the KFP SDK compiled (the IR, `PipelineSpec` 2.1),
//! run as they are. `ir` reads and checks the file; `lower` lowers it into Sluice's plan,
//! which the one scheduler runs; [`prepare`] readies its containers. What a step sees and
//! leaves (executor input, placeholders, executor output), the values' types and CEL are
//! KFP's launcher protocol, in [`crate::launcher`], below the executors. Nothing here
//! touches Docker or wasmtime.

pub mod ir;
pub mod lower;

use std::collections::BTreeMap;
use std::path::PathBuf;

use indexmap::IndexMap;
use serde_json::Value as Json;

pub use ir::IrFile;

use crate::launcher::task::{Action, ResourcesAtRun, v1_type};
use crate::launcher::values;
use crate::plan::Plan;

use crate::exec::{Executor, Kind, PrepareError};
use crate::schedule::ScheduleError;
use crate::spec::component::Implementation;
use crate::spec::placeholder::Arg;
use crate::spec::resources::{Accelerator, Cpu};
use crate::spec::{
    ByteSize, Component, ComponentSpec, HumanDuration, InputSpec, OutputSpec, ResourceSpec,
    RetrySpec, TypeSpec,
};

/// One problem with the run's `--param` values, on one line.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: root.inputDefinitions.{field}: {message}", file.display())]
pub struct ParamError {
    pub file: PathBuf,
    pub field: String,
    pub message: String,
    /// A required parameter without a value (rather than a bad value).
    pub missing: bool,
}

/// The pipeline's parameter values for one run: `--param` values parsed as the IR's
/// types, defaults for the rest; artifact inputs as files to import.
#[derive(Clone, Debug, Default)]
pub struct Params {
    pub values: BTreeMap<String, Json>,
    pub artifacts: BTreeMap<String, PathBuf>,
}

pub fn bind_params(file: &IrFile, args: &[(String, String)]) -> Result<Params, Vec<ParamError>> {
    let (params, errors) = bind_what_can_be(file, args);
    if errors.is_empty() {
        Ok(params)
    } else {
        Err(errors)
    }
}

/// The values that could be bound, and the problems with the rest.
pub fn bind_what_can_be(file: &IrFile, args: &[(String, String)]) -> (Params, Vec<ParamError>) {
    let root = &file.spec.root.input_definitions;
    let mut errors = Vec::new();
    let error = |errors: &mut Vec<ParamError>, field: String, message: String| {
        let missing = message.starts_with("required");
        errors.push(ParamError {
            file: file.path.clone(),
            field,
            message,
            missing,
        })
    };
    for (name, _) in args {
        if !root.parameters.contains_key(name) && !root.artifacts.contains_key(name) {
            let declared: Vec<&str> = root
                .parameters
                .keys()
                .chain(root.artifacts.keys())
                .map(String::as_str)
                .collect();
            error(
                &mut errors,
                format!("parameters.{name}"),
                format!(
                    "no such pipeline parameter (parameters: {})",
                    if declared.is_empty() {
                        "none".to_owned()
                    } else {
                        declared.join(", ")
                    }
                ),
            );
        }
    }
    let given = |name: &str| args.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v);
    let mut params = Params::default();
    for (name, spec) in &root.parameters {
        let field = format!("parameters.{name}");
        let value = match (given(name), &spec.default_value) {
            (Some(text), _) => values::parse(spec.parameter_type, text).map_err(|e| e.to_string()),
            (None, Some(default)) => {
                values::coerce(spec.parameter_type, default).map_err(|e| e.to_string())
            }
            (None, None) if spec.is_optional => continue,
            (None, None) => Err(format!(
                "required ({}); pass --param {name}=VALUE",
                spec.parameter_type.as_str()
            )),
        };
        match value {
            Ok(v) => {
                params.values.insert(name.clone(), v);
            }
            Err(m) => error(&mut errors, field, m),
        }
    }
    for (name, spec) in &root.artifacts {
        match given(name) {
            Some(path) => {
                params.artifacts.insert(name.clone(), PathBuf::from(path));
            }
            None if spec.is_optional => {}
            None => error(
                &mut errors,
                format!("artifacts.{name}"),
                format!(
                    "required ({}); pass --param {name}=PATH",
                    spec.artifact_type.title()
                ),
            ),
        }
    }
    (params, errors)
}

/// Settings of the file that have no meaning on a single machine (Kubernetes secrets,
/// volumes, node selectors, ...), one line each.
pub fn not_applicable(file: &IrFile) -> Vec<String> {
    let mut lines = Vec::new();
    for (platform, spec) in &file.platform.platforms {
        for (executor, settings) in &spec.deployment_spec.executors {
            for (setting, value) in settings {
                let detail = summarize(value);
                lines.push(format!(
                    "{executor}: {platform} setting '{setting}'{detail} does not apply to a local run; ignored"
                ));
            }
        }
        for key in spec.other.keys() {
            lines.push(format!(
                "{platform} setting '{key}' does not apply to a local run; ignored"
            ));
        }
    }
    for (label, executor) in &file.spec.deployment_spec.executors {
        let Some(resources) = executor
            .container
            .as_ref()
            .and_then(|c| c.resources.as_ref())
        else {
            continue;
        };
        let requests = [
            (
                "cpu request",
                resources
                    .resource_cpu_request
                    .clone()
                    .or(resources.cpu_request.map(|c| c.to_string())),
            ),
            (
                "memory request",
                resources
                    .resource_memory_request
                    .clone()
                    .or(resources.memory_request.map(|m| format!("{m}G"))),
            ),
        ];
        for (what, value) in requests {
            if let Some(value) = value {
                lines.push(format!(
                    "{label}: {what} {value} is a scheduling hint for a cluster; locally only limits apply"
                ));
            }
        }
    }
    lines
}

fn summarize(value: &Json) -> String {
    let names: Vec<String> = match value {
        Json::Array(items) => items
            .iter()
            .filter_map(|i| {
                [
                    "secretName",
                    "pvcName",
                    "configMapName",
                    "constant",
                    "name",
                    "key",
                ]
                .iter()
                .find_map(|k| i.get(*k).and_then(Json::as_str).map(str::to_owned))
                .or_else(|| {
                    i.get("pvcNameParameter")
                        .map(|_| "(a parameter)".to_owned())
                })
            })
            .collect(),
        Json::Object(map) => map
            .get("labels")
            .and_then(Json::as_object)
            .map(|l| {
                l.iter()
                    .map(|(k, v)| format!("{k}={}", values::render(v)))
                    .collect()
            })
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    if names.is_empty() {
        String::new()
    } else {
        format!(" ({})", names.join(", "))
    }
}

/// What [`prepare`] decided for a lowered KFP plan: how each task runs, by index into
/// the plan's tasks, and what the user should know before the run (one line each).
#[derive(Debug)]
pub struct Prepared {
    pub tasks: Vec<crate::exec::Prepared>,
    pub notes: Vec<String>,
}

/// Decides how every executor task of a lowered KFP plan runs and loads what it needs,
/// once per component, before anything runs, so that a missing image or program fails
/// the run at once, saying why (for a lightweight Python component, with the ways to run
/// it here). Importers and cluster-only operations need no executor.
pub async fn prepare(plan: &Plan, executor: &dyn Executor) -> Result<Prepared, ScheduleError> {
    let mut by_component: BTreeMap<String, crate::exec::Prepared> = BTreeMap::new();
    // The host's kfp, checked once per version a component pins.
    let mut host_kfp: BTreeMap<String, Result<Option<String>, String>> = BTreeMap::new();
    let mut notes = Vec::new();
    let mut tasks = Vec::with_capacity(plan.tasks.len());
    for task in &plan.tasks {
        let component = task.component.name();
        if let Some(p) = by_component.get(&component) {
            tasks.push(p.clone());
            continue;
        }
        let action = task.kfp.as_ref().map(|k| &k.action);
        let without_executor = |implementation: String| crate::exec::Prepared {
            kind: Kind::Process,
            implementation,
            reason: String::new(),
            executable_digest: None,
            transform: None,
        };
        let prepared = match action {
            Some(Action::Importer { .. }) => without_executor("importer".into()),
            Some(Action::Kubernetes { operation }) => {
                without_executor(format!("kubernetes {operation}"))
            }
            Some(Action::Container { resources_at_run }) => {
                let container = task.component.spec.implementation.container.as_ref();
                let image = container.map_or("", |c| c.image.as_str());
                let lightweight = container.is_some_and(is_lightweight);
                let prepared = executor
                    .prepare(crate::schedule::target(task))
                    .await
                    .map_err(|e| {
                        let hint = format!(
                            "; a lightweight Python component runs in its image ({image}): load that image into the Docker Engine, map it to a local one with --image-map {image}=IMAGE, or run it with --runner process on a host python3 that has kfp installed"
                        );
                        // An engine or registry out of reach, or a host without what the
                        // step needs, stays the environment's failure, with the same ways
                        // out.
                        let with_hint = |mut text: String| {
                            if lightweight {
                                text.push_str(&hint);
                            }
                            text
                        };
                        let source = match e {
                            PrepareError::Unreachable { service, detail } => {
                                PrepareError::Unreachable {
                                    service,
                                    detail: with_hint(detail),
                                }
                            }
                            PrepareError::HostLacks { message } => PrepareError::HostLacks {
                                message: with_hint(message),
                            },
                            other => PrepareError::Other {
                                message: with_hint(crate::error_chain(&other)),
                            },
                        };
                        ScheduleError::Prepare {
                            task: component.clone(),
                            source,
                        }
                    })?;
                if prepared.kind == Kind::Process {
                    for setting in unenforced(&task.resources, resources_at_run.as_ref()) {
                        notes.push(format!(
                            "{component}: its {setting} does not apply under --runner process; the process runs without it"
                        ));
                    }
                }
                if prepared.kind == Kind::Process
                    && lightweight
                    && let Some(container) = container
                {
                    let pinned = pinned_kfp(container);
                    if !host_kfp.contains_key(&pinned) {
                        let checked = check_host_kfp(&pinned);
                        if let Ok(Some(note)) = &checked {
                            notes.push(note.clone());
                        }
                        host_kfp.insert(pinned.clone(), checked);
                    }
                    host_kfp[&pinned]
                        .clone()
                        .map_err(|message| ScheduleError::Prepare {
                            task: component.clone(),
                            source: PrepareError::HostLacks { message },
                        })?;
                }
                prepared
            }
            // Not a KFP task: prepared as any other.
            None => executor
                .prepare(crate::schedule::target(task))
                .await
                .map_err(|source| ScheduleError::Prepare {
                    task: task.name.clone(),
                    source,
                })?,
        };
        by_component.insert(component, prepared.clone());
        tasks.push(prepared);
    }
    Ok(Prepared { tasks, notes })
}

/// The literal arguments of a container's command line (a synthesized component's are
/// all literal: KFP's placeholders sit inside them).
fn literals(container: &crate::spec::ContainerSpec) -> impl Iterator<Item = &str> {
    container
        .command
        .iter()
        .chain(&container.args)
        .filter_map(|a| match a {
            Arg::Literal(text) => Some(text.as_str()),
            _ => None,
        })
}

/// A task's retry policy (`retryPolicy`) as the scheduler follows it; durations were
/// checked when the file was loaded.
pub(crate) fn retry_spec(task: &ir::TaskSpec) -> RetrySpec {
    let Some(policy) = &task.retry_policy else {
        return RetrySpec {
            limit: 0,
            ..RetrySpec::default()
        };
    };
    let base = RetrySpec::default();
    let duration = |d: &Option<String>, fallback: HumanDuration| {
        d.as_deref()
            .and_then(|d| ir::parse_duration(d).ok())
            .map(HumanDuration)
            .unwrap_or(fallback)
    };
    RetrySpec {
        limit: policy.max_retry_count,
        backoff: duration(
            &policy.backoff_duration,
            HumanDuration(std::time::Duration::ZERO),
        ),
        factor: policy.backoff_factor.unwrap_or(base.factor),
        max_backoff: duration(&policy.backoff_max_duration, base.max_backoff),
    }
}

/// Whether an executor is a lightweight Python component (`@dsl.component`).
fn is_lightweight(container: &crate::spec::ContainerSpec) -> bool {
    literals(container).any(|a| a.contains("kfp.dsl.executor_main"))
}

/// The `kfp==X` requirement a lightweight component's command installs.
fn pinned_kfp(container: &crate::spec::ContainerSpec) -> String {
    literals(container)
        .find_map(|c| {
            let at = c.find("'kfp==")?;
            let rest = &c[at + 1..];
            Some(rest[..rest.find('\'')?].to_owned())
        })
        .unwrap_or_else(|| "kfp".into())
}

/// A lightweight component run by the host's `python3` needs the `kfp` package there
/// (its command installs it with pip otherwise, which needs the network).
fn check_host_kfp(pinned: &str) -> Result<Option<String>, String> {
    let python = which::which("python3")
        .map_err(|_| format!("a lightweight Python component needs python3 on this host's PATH, with {pinned} installed"))?;
    let wanted = pinned.strip_prefix("kfp==").unwrap_or("");
    let output = std::process::Command::new(&python)
        .args(["-c", "import kfp, sys; sys.stdout.write(kfp.__version__)"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !output.status.success() {
        return Err(format!(
            "a lightweight Python component needs the kfp package: {} cannot import it; install {pinned} there, or put a virtualenv that has it first on PATH",
            python.display()
        ));
    }
    let found = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    if !wanted.is_empty() && found != wanted {
        return Ok(Some(format!(
            "the pipeline was compiled with {pinned}, and {} has kfp {found}: its lightweight steps will pip-install {pinned} first, which needs the network (install that version to run offline)",
            python.display()
        )));
    }
    Ok(None)
}

/// An executor component as a KFP v1 component: its inputs and outputs, and its
/// container with the IR's command and arguments (placeholders resolved per attempt).
fn synthesize(
    file: &IrFile,
    name: &str,
    spec: &ir::ComponentSpec,
    container: Option<(&ir::ContainerSpec, &str)>,
) -> Result<Component, ScheduleError> {
    let mut inputs = Vec::new();
    for (n, p) in &spec.input_definitions.parameters {
        inputs.push(InputSpec {
            name: n.clone(),
            type_: Some(TypeSpec::named(v1_type(p.parameter_type))),
            description: p.description.clone(),
            default: None,
            optional: true,
        });
    }
    for (n, a) in &spec.input_definitions.artifacts {
        inputs.push(InputSpec {
            name: n.clone(),
            type_: Some(TypeSpec::named(a.artifact_type.title())),
            description: None,
            default: None,
            optional: true,
        });
    }
    let mut outputs = Vec::new();
    for (n, p) in &spec.output_definitions.parameters {
        outputs.push(OutputSpec {
            name: n.clone(),
            type_: Some(TypeSpec::named(v1_type(p.parameter_type))),
            description: None,
        });
    }
    for (n, a) in &spec.output_definitions.artifacts {
        outputs.push(OutputSpec {
            name: n.clone(),
            type_: Some(TypeSpec::named(a.artifact_type.title())),
            description: None,
        });
    }
    let container = container.map(|(c, image)| crate::spec::ContainerSpec {
        image: image.to_owned(),
        command: c.command.iter().cloned().map(Arg::Literal).collect(),
        args: c.args.iter().cloned().map(Arg::Literal).collect(),
        env: c
            .env
            .iter()
            .map(|e| (e.name.clone(), e.value.clone()))
            .collect::<IndexMap<_, _>>(),
        file_outputs: IndexMap::new(),
    });
    let label = spec.executor_label.as_deref().unwrap_or_default();
    let executor = file.spec.deployment_spec.executors.get(label);
    let material = serde_json::json!({
        "inputs": inputs.iter().map(|i| (&i.name, &i.type_)).collect::<Vec<_>>(),
        "outputs": outputs.iter().map(|o| (&o.name, &o.type_)).collect::<Vec<_>>(),
        "container": executor.and_then(|e| e.container.as_ref()).map(|c| (&c.image, &c.command, &c.args, c.env.iter().map(|e| (&e.name, &e.value)).collect::<Vec<_>>())),
    });
    Ok(Component {
        spec: ComponentSpec {
            name: Some(name.trim_start_matches("comp-").to_owned()),
            description: None,
            metadata: None,
            inputs,
            outputs,
            implementation: Implementation {
                wasm: None,
                container,
                graph: None,
            },
        },
        path: file.path.clone(),
        digest: crate::spec::sha256_hex(material.to_string().as_bytes()),
    })
}

/// The limits and requests a process cannot be held to, named as a note says them.
fn unenforced(fixed: &ResourceSpec, at_run: Option<&ResourcesAtRun>) -> Vec<String> {
    let mut settings = Vec::new();
    if let Some(memory) = fixed.memory {
        settings.push(format!("memory limit of {memory}"));
    }
    if let Some(cpu) = fixed.cpu {
        settings.push(format!("CPU limit of {cpu}"));
    }
    if let Some(a) = &fixed.accelerator {
        settings.push(format!("accelerator request ({} x {})", a.count, a.kind));
    }
    if let Some(spec) = at_run {
        if let Some(text) = &spec.memory_limit {
            settings.push(format!("memory limit ({text})"));
        }
        if let Some(text) = &spec.cpu_limit {
            settings.push(format!("CPU limit ({text})"));
        }
    }
    settings
}

/// Splits a container's resources into those written as quantities and those given by
/// input placeholders, which only the task's inputs decide (`None` when there are none).
fn split_resources(spec: Option<&ir::Resources>) -> (Option<ir::Resources>, Option<ir::Resources>) {
    let Some(spec) = spec else {
        return (None, None);
    };
    let deferred = |v: &Option<String>| v.as_deref().is_some_and(|t| t.contains("{{$"));
    if !deferred(&spec.resource_memory_limit) && !deferred(&spec.resource_cpu_limit) {
        return (Some(spec.clone()), None);
    }
    let mut fixed = spec.clone();
    if deferred(&spec.resource_memory_limit) {
        fixed.resource_memory_limit = None;
        fixed.memory_limit = None;
    }
    if deferred(&spec.resource_cpu_limit) {
        fixed.resource_cpu_limit = None;
        fixed.cpu_limit = None;
    }
    (Some(fixed), Some(spec.clone()))
}

/// The limits of a container that input placeholders give, which only each task's inputs
/// decide; `None` when it has none.
fn deferred_limits(spec: Option<&ir::Resources>) -> Option<ResourcesAtRun> {
    let (_, at_run) = split_resources(spec);
    let at_run = at_run?;
    let deferred = |v: &Option<String>| v.clone().filter(|t| t.contains("{{$"));
    Some(ResourcesAtRun {
        memory_limit: deferred(&at_run.resource_memory_limit),
        cpu_limit: deferred(&at_run.resource_cpu_limit),
    })
}

/// CPU, memory and accelerator limits of a container executor.
fn resources(spec: Option<&ir::Resources>) -> Result<ResourceSpec, String> {
    let Some(r) = spec else {
        return Ok(ResourceSpec::default());
    };
    let memory = match (&r.resource_memory_limit, r.memory_limit) {
        (Some(text), _) => Some(ByteSize::parse(text).map_err(|e| e.to_string())?),
        (None, Some(gb)) => {
            // The older `memoryLimit`: a number of GB (10^9 bytes).
            let bytes = (gb * 1e9).round();
            if !(bytes.is_finite() && bytes >= 1.0 && bytes < u64::MAX as f64) {
                return Err(format!(
                    "memoryLimit: expected a positive number of GB, found {gb}"
                ));
            }
            Some(ByteSize(bytes as u64))
        }
        (None, None) => None,
    };
    let cpu = match (&r.resource_cpu_limit, r.cpu_limit) {
        (Some(text), _) => Some(Cpu::parse(text).map_err(|e| e.to_string())?),
        (None, Some(cores)) => Some(Cpu::parse(&cores.to_string()).map_err(|e| e.to_string())?),
        (None, None) => None,
    };
    let accelerator = match &r.accelerator {
        Some(a) => {
            let kind = a.resource_type.clone().or_else(|| a.type_.clone());
            let count = a
                .resource_count
                .clone()
                .or_else(|| a.count.as_ref().map(values::render));
            match kind {
                Some(kind) if !kind.is_empty() => {
                    let count = match count {
                        Some(c) => c.parse::<u32>().map_err(|_| {
                            format!("accelerator count '{c}' is not a whole number")
                        })?,
                        None => 1,
                    };
                    Some(Accelerator { kind, count })
                }
                _ => None,
            }
        }
        None => None,
    };
    Ok(ResourceSpec {
        memory,
        cpu,
        accelerator,
        ..ResourceSpec::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources_of(yaml: &str) -> Result<ResourceSpec, String> {
        let r: ir::Resources = serde_yaml_ng::from_str(yaml).unwrap();
        resources(Some(&r))
    }

    #[test]
    fn container_resources_map_to_limits() {
        // The quantity strings win over the older numbers (cores; GB).
        let r = resources_of(
            "{cpuLimit: 2.0, memoryLimit: 1.0, resourceCpuLimit: '500m', resourceMemoryLimit: 256Mi}",
        )
        .unwrap();
        assert_eq!(r.memory.unwrap().0, 256 << 20);
        assert_eq!(r.cpu.unwrap(), Cpu::parse("0.5").unwrap());
        let r = resources_of("{cpuLimit: 2.0, memoryLimit: 1.5}").unwrap();
        assert_eq!(r.memory.unwrap().0, 1_500_000_000);
        assert_eq!(r.cpu.unwrap(), Cpu::parse("2").unwrap());
        let r = resources_of("{accelerator: {resourceType: nvidia.com/gpu, resourceCount: '2'}}")
            .unwrap();
        let a = r.accelerator.unwrap();
        assert_eq!((a.kind.as_str(), a.count), ("nvidia.com/gpu", 2));
        let r = resources_of("{accelerator: {type: TPU_V3, count: 8}}").unwrap();
        assert_eq!(r.accelerator.unwrap().count, 8);
        assert!(resources_of("{resourceMemoryLimit: lots}").is_err());
        // Numbers that are no quantity are refused, never clamped to 0 or to the end of
        // a u64.
        for bad in [
            "{memoryLimit: -1}",
            "{memoryLimit: 1e300}",
            "{memoryLimit: .nan}",
            "{cpuLimit: 1e308}",
            "{cpuLimit: -2}",
            "{accelerator: {type: TPU_V3, count: '-1'}}",
        ] {
            assert!(resources_of(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn limits_given_by_placeholders_wait_for_the_tasks_inputs() {
        let r: ir::Resources = serde_yaml_ng::from_str(
            "{resourceMemoryLimit: \"{{$.inputs.parameters['pipelinechannel--mem']}}\", resourceCpuLimit: '2'}",
        )
        .unwrap();
        let (fixed, at_run) = split_resources(Some(&r));
        let fixed = resources(fixed.as_ref()).unwrap();
        assert_eq!(
            (fixed.memory, fixed.cpu.map(|c| c.millicores)),
            (None, Some(2000))
        );
        assert!(at_run.is_some());
        let at_run = deferred_limits(Some(&r)).unwrap();
        let params: BTreeMap<String, serde_json::Value> =
            [("pipelinechannel--mem".to_owned(), serde_json::json!("300M"))].into();
        let resolved = at_run.apply(&fixed, &params).unwrap();
        assert_eq!(resolved.memory.unwrap().0, 300_000_000);
        assert_eq!(resolved.cpu.map(|c| c.millicores), Some(2000));
        assert_eq!(
            at_run.apply(&fixed, &BTreeMap::new()).unwrap_err(),
            "the memory limit: '{{$.inputs.parameters['pipelinechannel--mem']}}' asks for parameter 'pipelinechannel--mem', which has no value"
        );
        let params: BTreeMap<String, serde_json::Value> =
            [("pipelinechannel--mem".to_owned(), serde_json::json!("lots"))].into();
        assert!(at_run.apply(&fixed, &params).is_err());
    }
}
