//! A KFP task as a run needs it, beyond its command line: the interface its component
//! declares (`inputDefinitions`, `outputDefinitions` of the IR's `ComponentSpec`), what its
//! executor is (a container, an importer, an operation only a cluster performs), and the
//! limits its inputs decide. [`bind`] gives the values that reached a task their declared
//! types and the component's defaults, as KFP's driver does before it launches a step.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use super::ArtifactType;
use super::values::{self, ParameterType};
use crate::spec::ResourceSpec;
use crate::spec::resources::{ByteSize, Cpu};

/// A component's inputs or outputs (`inputDefinitions`, `outputDefinitions`).
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
pub struct Interface {
    #[serde(default)]
    pub parameters: BTreeMap<String, ParameterSpec>,
    #[serde(default)]
    pub artifacts: BTreeMap<String, ArtifactSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParameterSpec {
    pub parameter_type: ParameterType,
    #[serde(default)]
    pub default_value: Option<Json>,
    #[serde(default)]
    pub is_optional: bool,
    #[serde(default)]
    pub description: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArtifactSpec {
    #[serde(default)]
    pub artifact_type: ArtifactType,
    #[serde(default)]
    pub is_artifact_list: bool,
    #[serde(default)]
    pub is_optional: bool,
}

/// Everything the run needs of one KFP executor task beyond its v1 component.
#[derive(Clone, Debug)]
pub struct KfpTask {
    /// The executor's label in the IR's `deploymentSpec` (`exec-train`), by which
    /// platform settings (kfp-kubernetes) name it.
    pub executor: Option<String>,
    /// The component's `inputDefinitions`.
    pub inputs: Interface,
    /// The component's `outputDefinitions`.
    pub outputs: Interface,
    pub action: Action,
}

/// What a KFP task's executor does.
#[derive(Clone, Debug)]
pub enum Action {
    /// Runs its container through an executor (Docker, or a host process).
    Container {
        /// Limits given by input placeholders (`set_memory_limit(param)`), decided per
        /// task from its inputs; the task's fixed resources hold the rest.
        resources_at_run: Option<ResourcesAtRun>,
    },
    /// KFP's importer: takes an existing file into the run as an artifact.
    Importer {
        uri: ImportUri,
        type_: ArtifactType,
        /// The artifact's metadata, as the importer's spec gives it (`{}` for none).
        metadata: Json,
    },
    /// A Kubernetes operation only KFP's backend performs (`argostub/createpvc` and
    /// `argostub/deletepvc` of kfp-kubernetes): nothing to do in a local run.
    Kubernetes { operation: String },
}

/// Where an importer's file is named.
#[derive(Clone, Debug, PartialEq)]
pub enum ImportUri {
    /// Written in the pipeline.
    Constant(String),
    /// The value of this input parameter of the importer task.
    Parameter(String),
}

/// A container's memory and CPU limits written as input placeholders
/// (`{{$.inputs.parameters['mem']}}`), as the IR keeps them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ResourcesAtRun {
    pub memory_limit: Option<String>,
    pub cpu_limit: Option<String>,
}

impl ResourcesAtRun {
    /// `fixed` with the limits these placeholders give for a task's input `params`; the
    /// error names the limit and the value that is not a quantity.
    pub fn apply(
        &self,
        fixed: &ResourceSpec,
        params: &BTreeMap<String, Json>,
    ) -> Result<ResourceSpec, String> {
        let mut resources = fixed.clone();
        if let Some(text) = &self.memory_limit {
            let value =
                super::resolve_text(text, params).map_err(|m| format!("the memory limit: {m}"))?;
            let memory = ByteSize::parse(&value).map_err(|e| format!("the memory limit: {e}"))?;
            resources.memory = Some(memory);
        }
        if let Some(text) = &self.cpu_limit {
            let value =
                super::resolve_text(text, params).map_err(|m| format!("the CPU limit: {m}"))?;
            let cpu = Cpu::parse(&value).map_err(|e| format!("the CPU limit: {e}"))?;
            resources.cpu = Some(cpu);
        }
        Ok(resources)
    }
}

/// Gives the parameter values that reached a task their declared types, fills in the
/// component's defaults for those unset or null, and drops optional ones left without a
/// value, as KFP's driver does; a required parameter or artifact without a value, or a
/// value not of its type, is an error naming the input. `artifacts` says which artifact
/// inputs have a value.
pub fn bind(
    inputs: &Interface,
    params: &mut BTreeMap<String, Json>,
    has_artifact: impl Fn(&str) -> bool,
) -> Result<(), String> {
    for (name, p) in &inputs.parameters {
        match params.get(name) {
            Some(v) if !v.is_null() => {
                let coerced = match (p.parameter_type, v) {
                    // A value that came through a file or a loop item as text.
                    (t, Json::String(s)) if t != ParameterType::String => values::parse(t, s),
                    (t, v) => values::coerce(t, v),
                }
                .map_err(|m| format!("input '{name}': {m}"))?;
                params.insert(name.clone(), coerced);
            }
            _ => match &p.default_value {
                Some(d) => {
                    let d = values::coerce(p.parameter_type, d)
                        .map_err(|m| format!("input '{name}': default: {m}"))?;
                    params.insert(name.clone(), d);
                }
                None if p.is_optional => {
                    params.remove(name);
                }
                None => return Err(format!("input '{name}' has no value")),
            },
        }
    }
    for (name, a) in &inputs.artifacts {
        if !has_artifact(name) && !a.is_optional {
            return Err(format!("input artifact '{name}' has no value"));
        }
    }
    Ok(())
}

/// The KFP v1 type name a parameter type is recorded under.
pub fn v1_type(ty: ParameterType) -> &'static str {
    match ty {
        ParameterType::String => "String",
        ParameterType::NumberInteger => "Integer",
        ParameterType::NumberDouble => "Float",
        ParameterType::Boolean => "Boolean",
        ParameterType::List => "JsonArray",
        ParameterType::Struct | ParameterType::TaskFinalStatus | ParameterType::TaskConfig => {
            "JsonObject"
        }
    }
}

/// The parameter type a KFP v1 type name stands for (the reverse of [`v1_type`]); `None`
/// for an artifact's type or an unknown name.
pub fn parameter_type(v1: &str) -> Option<ParameterType> {
    Some(match v1 {
        "String" => ParameterType::String,
        "Integer" => ParameterType::NumberInteger,
        "Float" => ParameterType::NumberDouble,
        "Boolean" => ParameterType::Boolean,
        "JsonArray" => ParameterType::List,
        "JsonObject" => ParameterType::Struct,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn interface(yaml: &str) -> Interface {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn binding_types_values_and_fills_defaults() {
        let inputs = interface(
            "parameters:\n  n: {parameterType: NUMBER_INTEGER}\n  s: {parameterType: STRING, defaultValue: hi}\n  o: {parameterType: STRING, isOptional: true}\n",
        );
        let mut params = BTreeMap::from([
            ("n".to_owned(), Json::String("3".into())),
            ("o".to_owned(), Json::Null),
        ]);
        bind(&inputs, &mut params, |_| false).unwrap();
        assert_eq!(params["n"], Json::from(3));
        assert_eq!(params["s"], Json::String("hi".into()));
        assert!(!params.contains_key("o"));
        let mut missing = BTreeMap::new();
        assert_eq!(
            bind(&inputs, &mut missing, |_| false).unwrap_err(),
            "input 'n' has no value"
        );
    }

    #[test]
    fn limits_from_placeholders_apply_over_the_fixed_ones() {
        let at_run = ResourcesAtRun {
            memory_limit: Some("{{$.inputs.parameters['mem']}}".into()),
            cpu_limit: None,
        };
        let params = BTreeMap::from([("mem".to_owned(), Json::String("1Gi".into()))]);
        let resources = at_run.apply(&ResourceSpec::default(), &params).unwrap();
        assert_eq!(resources.memory, Some(ByteSize(1 << 30)));
        let bad = BTreeMap::from([("mem".to_owned(), Json::String("lots".into()))]);
        assert!(
            at_run
                .apply(&ResourceSpec::default(), &bad)
                .unwrap_err()
                .starts_with("the memory limit: ")
        );
    }
}
