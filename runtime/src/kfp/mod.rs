//! Kubeflow Pipelines v2: pipelines the KFP SDK compiled (the IR, `PipelineSpec` 2.1),
//! run as they are. `ir` reads and checks the file; `values` and `expr` give parameter
//! values and CEL their KFP meaning; `placeholders` builds what a step sees (executor
//! input, command line) and reads what it leaves (executor output); `driver` walks the
//! DAGs. Container executors run through Sluice's executors (Docker, or host processes
//! with `--runner process`); nothing here touches Docker or wasmtime.

pub mod driver;
pub mod expr;
pub mod ir;
pub mod lower;
pub mod values;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use indexmap::IndexMap;
use serde_json::Value as Json;

pub use driver::{Driver, Options};
pub use ir::IrFile;

use crate::exec::{Executor, Kind, PrepareError, Prepared, Target};
use crate::schedule::ScheduleError;
use crate::spec::component::Implementation;
use crate::spec::placeholder::Arg;
use crate::spec::resources::{Accelerator, Cpu};
use crate::spec::{
    ByteSize, Component, ComponentSpec, InputSpec, OutputSpec, ResourceSpec, TypeSpec,
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

/// A component of the pipeline made ready to run.
#[derive(Clone, Debug)]
pub struct PreparedComponent {
    /// The container executor as a component Sluice's executors can run.
    pub component: Arc<Component>,
    pub prepared: Prepared,
    pub resources: ResourceSpec,
    /// Limits given by placeholders (`set_memory_limit(param)`), resolved from each
    /// task's inputs when it runs; `resources` holds the rest.
    pub resources_at_run: Option<ir::Resources>,
    pub importer: Option<ir::ImporterSpec>,
    /// A Kubernetes operation KFP's backend performs itself (`argostub/createpvc`,
    /// `argostub/deletepvc` from kfp-kubernetes): nothing to do locally.
    pub kubernetes_only: Option<String>,
}

/// A checked IR file whose executors are prepared: images present, programs found.
#[derive(Debug)]
pub struct KfpPipeline {
    pub file: IrFile,
    /// By component name (`comp-...`), for components with an executor.
    pub components: BTreeMap<String, PreparedComponent>,
    /// What the user should know before the run (one line each).
    pub notes: Vec<String>,
}

impl KfpPipeline {
    /// Prepares every executor before anything runs, so that a missing image or program
    /// fails the run at once, saying why. `image_map` substitutes images (`FROM`, `TO`).
    pub async fn prepare(
        file: IrFile,
        executor: &dyn Executor,
        image_map: &[(String, String)],
    ) -> Result<KfpPipeline, ScheduleError> {
        let mut components = BTreeMap::new();
        // The host's kfp, checked once per version a component pins.
        let mut host_kfp: BTreeMap<String, Result<Option<String>, String>> = BTreeMap::new();
        let mut notes = Vec::new();
        for (name, spec) in &file.spec.components {
            let Some(label) = &spec.executor_label else {
                continue;
            };
            let exec = &file.spec.deployment_spec.executors[label];
            let task = name.trim_start_matches("comp-");
            let fail = |message: String| ScheduleError::Prepare {
                task: task.to_owned(),
                source: PrepareError::Other { message },
            };
            if let Some(importer) = &exec.importer {
                let component = synthesize(&file, name, spec, None)?;
                components.insert(
                    name.clone(),
                    PreparedComponent {
                        component: Arc::new(component),
                        prepared: Prepared {
                            kind: Kind::Process,
                            implementation: "importer".into(),
                            reason: String::new(),
                            executable_digest: None,
                            transform: None,
                        },
                        resources: ResourceSpec::default(),
                        resources_at_run: None,
                        importer: Some(importer.clone()),
                        kubernetes_only: None,
                    },
                );
                continue;
            }
            let container = exec.container.as_ref().expect("checked when loaded");
            if let Some(operation) = container.image.strip_prefix("argostub/") {
                let component = synthesize(&file, name, spec, None)?;
                components.insert(
                    name.clone(),
                    PreparedComponent {
                        component: Arc::new(component),
                        prepared: Prepared {
                            kind: Kind::Process,
                            implementation: format!("kubernetes {operation}"),
                            reason: String::new(),
                            executable_digest: None,
                            transform: None,
                        },
                        resources: ResourceSpec::default(),
                        resources_at_run: None,
                        importer: None,
                        kubernetes_only: Some(operation.to_owned()),
                    },
                );
                continue;
            }
            let image = image_map
                .iter()
                .find(|(from, _)| *from == container.image)
                .map_or(container.image.clone(), |(_, to)| to.clone());
            let component = synthesize(&file, name, spec, Some((container, &image)))?;
            let (fixed, at_run) = split_resources(container.resources.as_ref());
            let resources = resources(fixed.as_ref()).map_err(|m| {
                fail(format!(
                    "deploymentSpec.executors.{label}.container.resources: {m}"
                ))
            })?;
            let lightweight = is_lightweight(container);
            let prepared = executor
                .prepare(Target {
                    task: name.trim_start_matches("comp-"),
                    component: &component,
                    resources: &resources,
                    prefer: None,
                })
                .await
                .map_err(|e| {
                    let hint = format!(
                        "; a lightweight Python component runs in its image ({image}): load that image into the Docker Engine, map it to a local one with --image-map {image}=IMAGE, or run it with --runner process on a host python3 that has kfp installed"
                    );
                    // An engine or registry out of reach stays the environment's failure,
                    // with the same way out.
                    if let PrepareError::Unreachable { service, mut detail } = e {
                        if lightweight {
                            detail.push_str(&hint);
                        }
                        return ScheduleError::Prepare {
                            task: task.to_owned(),
                            source: PrepareError::Unreachable { service, detail },
                        };
                    }
                    let mut message = crate::error_chain(&e);
                    if lightweight {
                        message.push_str(&hint);
                    }
                    fail(message)
                })?;
            if prepared.kind == Kind::Process {
                let task = name.trim_start_matches("comp-");
                for setting in unenforced(&resources, at_run.as_ref()) {
                    notes.push(format!(
                        "{task}: its {setting} does not apply under --runner process; the process runs without it"
                    ));
                }
            }
            if prepared.kind == Kind::Process && lightweight {
                let pinned = pinned_kfp(container);
                if !host_kfp.contains_key(&pinned) {
                    let checked = check_host_kfp(&pinned);
                    if let Ok(Some(note)) = &checked {
                        notes.push(note.clone());
                    }
                    host_kfp.insert(pinned.clone(), checked);
                }
                host_kfp[&pinned].clone().map_err(fail)?;
            }
            components.insert(
                name.clone(),
                PreparedComponent {
                    component: Arc::new(component),
                    prepared,
                    resources,
                    resources_at_run: at_run,
                    importer: None,
                    kubernetes_only: None,
                },
            );
        }
        Ok(KfpPipeline {
            file,
            components,
            notes,
        })
    }
}

/// Whether an executor is a lightweight Python component (`@dsl.component`).
fn is_lightweight(container: &ir::ContainerSpec) -> bool {
    container
        .command
        .iter()
        .chain(&container.args)
        .any(|a| a.contains("kfp.dsl.executor_main"))
}

/// The `kfp==X` requirement a lightweight component's command installs.
fn pinned_kfp(container: &ir::ContainerSpec) -> String {
    container
        .command
        .iter()
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
            type_: Some(TypeSpec::named(driver::v1_type(p.parameter_type))),
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
            type_: Some(TypeSpec::named(driver::v1_type(p.parameter_type))),
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
fn unenforced(fixed: &ResourceSpec, at_run: Option<&ir::Resources>) -> Vec<String> {
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
        if let Some(text) = spec
            .resource_memory_limit
            .as_deref()
            .filter(|t| t.contains("{{$"))
        {
            settings.push(format!("memory limit ({text})"));
        }
        if let Some(text) = spec
            .resource_cpu_limit
            .as_deref()
            .filter(|t| t.contains("{{$"))
        {
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

/// The limits of a task whose resources are given by placeholders, resolved from its
/// input parameters; the error names the limit and the value that is not a quantity.
pub(crate) fn resources_at_run(
    spec: &ir::Resources,
    params: &BTreeMap<String, serde_json::Value>,
) -> Result<ResourceSpec, String> {
    let mut resolved = spec.clone();
    for (what, field) in [
        ("memory limit", &mut resolved.resource_memory_limit),
        ("CPU limit", &mut resolved.resource_cpu_limit),
    ] {
        if let Some(text) = field.as_deref().filter(|t| t.contains("{{$")) {
            let value = crate::launcher::resolve_text(text, params)
                .map_err(|m| format!("the {what}: {m}"))?;
            *field = Some(value);
        }
    }
    resources(Some(&resolved))
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
        let at_run = at_run.unwrap();
        let params: BTreeMap<String, serde_json::Value> =
            [("pipelinechannel--mem".to_owned(), serde_json::json!("300M"))].into();
        let resolved = resources_at_run(&at_run, &params).unwrap();
        assert_eq!(resolved.memory.unwrap().0, 300_000_000);
        assert_eq!(
            resources_at_run(&at_run, &BTreeMap::new()).unwrap_err(),
            "the memory limit: '{{$.inputs.parameters['pipelinechannel--mem']}}' asks for parameter 'pipelinechannel--mem', which has no value"
        );
        let params: BTreeMap<String, serde_json::Value> =
            [("pipelinechannel--mem".to_owned(), serde_json::json!("lots"))].into();
        assert!(resources_at_run(&at_run, &params).is_err());
    }
}
