//! KFP v1 `component.yaml`, read as it is, plus Sluice's `implementation.wasm`.
//! Owns the component structures, their checks (names unique, placeholders naming
//! declared ports, defaults of the declared type) and loading one file from disk.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use serde::{Deserialize, Deserializer, Serialize};

use super::placeholder::{Arg, Port};
use super::resources::ResourceSpec;
use super::types::{ParamType, TypeSpec, render_constant};
use super::{SpecError, sha256_hex};

/// A component file: inputs, outputs and how to run it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ComponentSpec {
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<serde_json::Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub inputs: Vec<InputSpec>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub outputs: Vec<OutputSpec>,
    pub implementation: Implementation,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct InputSpec {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<TypeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// KFP keeps defaults as strings; YAML scalars are rendered as KFP renders them.
    #[serde(
        default,
        deserialize_with = "constant",
        skip_serializing_if = "Option::is_none"
    )]
    pub default: Option<String>,
    #[serde(default)]
    pub optional: bool,
}

impl InputSpec {
    /// Whether a task must bind this input: neither optional nor defaulted.
    pub fn is_required(&self) -> bool {
        !self.optional && self.default.is_none()
    }

    pub fn param_type(&self) -> Option<ParamType> {
        self.type_.as_ref().and_then(TypeSpec::param_type)
    }
}

#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OutputSpec {
    pub name: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub type_: Option<TypeSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl OutputSpec {
    pub fn param_type(&self) -> Option<ParamType> {
        self.type_.as_ref().and_then(TypeSpec::param_type)
    }

    /// Whether this output holds KFP v1 `mlpipeline-metrics` JSON, which Sluice records as
    /// the task's metrics.
    pub fn is_metrics(&self) -> bool {
        self.type_
            .as_ref()
            .is_some_and(|t| t.name.eq_ignore_ascii_case("Metrics"))
            || self.name == "mlpipeline-metrics"
            || self.name == "MLPipeline Metrics"
    }
}

/// How to run a component. KFP defines `container` and `graph` (a component made of
/// other components' tasks); Sluice adds `wasm`. A component may carry both `wasm` and
/// `container`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Implementation {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wasm: Option<WasmSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub graph: Option<super::graph::GraphSpec>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerSpec {
    pub image: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub command: Vec<Arg>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<Arg>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: IndexMap<String, String>,
    /// Deprecated KFP v1 form: output name -> path inside the container.
    #[serde(default, deserialize_with = "null_as_default")]
    pub file_outputs: IndexMap<String, String>,
}

/// Sluice's wasm implementation: a component (a WASI command, or a typed step exporting
/// `sluice:pipeline/step`) and the same argument language as `container`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WasmSpec {
    /// Path to the `.wasm` component, relative to the component file.
    pub component: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub args: Vec<Arg>,
    /// The only environment variables the component sees.
    #[serde(default, deserialize_with = "null_as_default")]
    pub env: IndexMap<String, String>,
    #[serde(default)]
    pub resources: ResourceSpec,
    /// Present when the component also exports `sluice:pipeline/transform`: consecutive
    /// transform tasks then run as one fused chain, passing tables in memory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transform: Option<TransformSpec>,
}

/// How a transform component's artifacts cross the `transform` interface.
#[derive(Clone, Debug, Default, Deserialize, Serialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a mapping with `tables`, the artifacts passed as tables"
)]
pub struct TransformSpec {
    /// Artifact inputs and outputs passed as tables (CSV files outside a chain); every
    /// other artifact is passed as its bytes.
    #[serde(default)]
    pub tables: Vec<String>,
}

/// A component file loaded from disk.
#[derive(Clone, Debug)]
pub struct Component {
    pub spec: ComponentSpec,
    /// The `component.yaml` it came from.
    pub path: PathBuf,
    /// `sha256:` digest of the file's bytes.
    pub digest: String,
}

impl Component {
    pub fn load(path: &Path) -> Result<Component, SpecError> {
        let text = crate::files::read_text_limited(
            path,
            crate::files::SPEC_FILE_MAX,
            crate::files::Follow::Yes,
        )
        .map_err(|source| SpecError::Read {
            path: path.to_owned(),
            source,
        })?;
        Component::parse(path, &text)
    }

    /// Parses and checks component YAML; `path` names it in errors and anchors relative paths.
    pub fn parse(path: &Path, text: &str) -> Result<Component, SpecError> {
        let spec: ComponentSpec = super::from_yaml(path, text)?;
        spec.check()
            .map_err(|(field, message)| SpecError::Invalid {
                path: path.to_owned(),
                field,
                message,
            })?;
        Ok(Component {
            spec,
            path: path.to_owned(),
            digest: sha256_hex(text.as_bytes()),
        })
    }

    /// The component's name, or its file name when it declares none.
    pub fn name(&self) -> String {
        match &self.spec.name {
            Some(name) => name.clone(),
            None => self
                .path
                .parent()
                .and_then(Path::file_name)
                .unwrap_or(self.path.as_os_str())
                .to_string_lossy()
                .into_owned(),
        }
    }

    /// The graph of a KFP v1 graph component.
    pub fn graph(&self) -> Option<&super::graph::GraphSpec> {
        self.spec.implementation.graph.as_ref()
    }

    /// Whether a command line passes the KFP `executorInput`: such a component is a KFP v2
    /// step, which may report outputs in an executor output file.
    pub fn uses_executor_input(&self) -> bool {
        fn has(args: &[Arg]) -> bool {
            args.iter().any(|a| match a {
                Arg::ExecutorInput | Arg::OutputMetadata => true,
                Arg::Concat(items) => has(items),
                Arg::If {
                    cond,
                    then,
                    otherwise,
                } => has(std::slice::from_ref(cond)) || has(then) || has(otherwise),
                _ => false,
            })
        }
        let imp = &self.spec.implementation;
        imp.container
            .as_ref()
            .is_some_and(|c| has(&c.command) || has(&c.args))
            || imp.wasm.as_ref().is_some_and(|w| has(&w.args))
    }

    /// The wasm file, resolved against the component file's folder; `None` when the
    /// implementation is in a registry.
    pub fn wasm_path(&self) -> Option<PathBuf> {
        let wasm = self.spec.implementation.wasm.as_ref()?;
        if crate::oci::is_reference(&wasm.component) {
            return None;
        }
        let dir = self.path.parent().unwrap_or(Path::new(""));
        Some(super::join_clean(dir, &wasm.component))
    }

    /// The `oci://` reference of the wasm implementation, when it is in a registry.
    pub fn wasm_reference(&self) -> Option<&str> {
        let wasm = self.spec.implementation.wasm.as_ref()?;
        crate::oci::is_reference(&wasm.component).then_some(wasm.component.as_str())
    }

    pub fn input(&self, name: &str) -> Option<&InputSpec> {
        self.spec.inputs.iter().find(|i| i.name == name)
    }

    pub fn output(&self, name: &str) -> Option<&OutputSpec> {
        self.spec.outputs.iter().find(|o| o.name == name)
    }
}

impl ComponentSpec {
    /// Checks what YAML structure alone cannot: unique names, placeholders naming declared
    /// ports, defaults of the declared type, a runnable implementation.
    /// Errors are `(field, message)`.
    pub(crate) fn check(&self) -> Result<(), (String, String)> {
        let mut seen = std::collections::HashSet::new();
        for (i, input) in self.inputs.iter().enumerate() {
            if !seen.insert(input.name.as_str()) {
                return Err((
                    format!("inputs[{i}].name"),
                    format!("duplicate input name '{}'", input.name),
                ));
            }
            // KFP 1.8 loads a JSON-typed input's default as text without reading it
            // (published components default a List to '' and a JsonArray to '{}'); the
            // program gets the text as it is.
            if let (Some(default), Some(ty)) = (&input.default, input.param_type())
                && !matches!(ty, ParamType::JsonObject | ParamType::JsonArray)
            {
                ty.check(default)
                    .map_err(|m| (format!("inputs[{i}].default"), m.to_string()))?;
            }
        }
        seen.clear();
        for (i, output) in self.outputs.iter().enumerate() {
            if !seen.insert(output.name.as_str()) {
                return Err((
                    format!("outputs[{i}].name"),
                    format!("duplicate output name '{}'", output.name),
                ));
            }
        }

        let imp = &self.implementation;
        if let Some(graph) = &imp.graph {
            graph.check(self)?;
        } else if imp.wasm.is_none() && imp.container.is_none() {
            return Err((
                "implementation".into(),
                "expected a `wasm`, `container` or `graph` implementation".into(),
            ));
        }
        if let Some(wasm) = &imp.wasm {
            if crate::oci::is_reference(&wasm.component) {
                if let Err(e) = crate::oci::OciRef::parse(&wasm.component) {
                    return Err(("implementation.wasm.component".into(), e.to_string()));
                }
            } else if wasm.component.trim().is_empty() {
                return Err((
                    "implementation.wasm.component".into(),
                    "expected the path of a .wasm component".into(),
                ));
            }
            self.check_args("implementation.wasm.args", &wasm.args)?;
            if let Some(transform) = &wasm.transform {
                for (i, name) in transform.tables.iter().enumerate() {
                    let input = self.inputs.iter().find(|p| &p.name == name);
                    let output = self.outputs.iter().find(|p| &p.name == name);
                    let artifact = input.is_some_and(|p| p.param_type().is_none())
                        || output.is_some_and(|p| p.param_type().is_none());
                    if !artifact {
                        return Err((
                            format!("implementation.wasm.transform.tables[{i}]"),
                            format!("'{name}' is not a declared artifact input or output"),
                        ));
                    }
                }
            }
        }
        if let Some(container) = &imp.container {
            self.check_args("implementation.container.command", &container.command)?;
            self.check_args("implementation.container.args", &container.args)?;
            for name in container.file_outputs.keys() {
                if !self.outputs.iter().any(|o| &o.name == name) {
                    return Err((
                        "implementation.container.fileOutputs".into(),
                        format!("'{name}' is not a declared output"),
                    ));
                }
            }
        }
        Ok(())
    }

    fn check_args(&self, field: &str, args: &[Arg]) -> Result<(), (String, String)> {
        for (i, arg) in args.iter().enumerate() {
            let mut problem = None;
            arg.visit_references(&mut |port, name, placeholder| {
                if problem.is_some() {
                    return;
                }
                let declared = match port {
                    Port::Input => self.inputs.iter().any(|p| p.name == name),
                    Port::Output => self.outputs.iter().any(|p| p.name == name),
                };
                if !declared {
                    let side = match port {
                        Port::Input => "input",
                        Port::Output => "output",
                    };
                    problem = Some(format!(
                        "{placeholder} names '{name}', which is not a declared {side}"
                    ));
                }
            });
            if let Some(message) = problem {
                return Err((format!("{field}[{i}]"), message));
            }
        }
        Ok(())
    }
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

fn constant<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let value = serde_yaml_ng::Value::deserialize(d)?;
    Ok(render_constant(&value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<Component, String> {
        Component::parse(Path::new("c/component.yaml"), yaml).map_err(|e| e.to_string())
    }

    const KFP_V1: &str = r#"
name: Train classifier
description: Trains a model
inputs:
- {name: training_data, type: CSV}
- {name: learning_rate, type: Float, default: '0.1'}
- {name: epochs, type: Integer, default: 10}
- {name: notes, optional: true}
- {name: gcs, type: {GCSPath: {data_type: CSV}}, optional: true}
outputs:
- {name: model, type: Model}
- {name: MLPipeline Metrics, type: Metrics}
implementation:
  container:
    image: python:3.11
    command: [python3, -c, "print(1)"]
    args:
    - --data
    - {inputPath: training_data}
    - --lr
    - {inputValue: learning_rate}
    - if:
        cond: {isPresent: notes}
        then: [--notes, {inputValue: notes}]
    - --model
    - {outputPath: model}
    - {outputPath: MLPipeline Metrics}
"#;

    #[test]
    fn reads_kfp_v1_components_as_they_are() {
        let c = parse(KFP_V1).unwrap();
        assert_eq!(c.name(), "Train classifier");
        assert_eq!(c.spec.inputs.len(), 5);
        assert_eq!(c.spec.inputs[1].default.as_deref(), Some("0.1"));
        assert_eq!(c.spec.inputs[2].default.as_deref(), Some("10"));
        assert!(c.spec.inputs[0].is_required());
        assert!(!c.spec.inputs[3].is_required());
        assert_eq!(
            c.spec.inputs[4].type_.as_ref().unwrap().to_string(),
            r#"GCSPath{"data_type":"CSV"}"#
        );
        assert!(c.spec.outputs[1].is_metrics());
        assert!(c.digest.starts_with("sha256:"));
    }

    #[test]
    fn a_placeholder_must_name_a_declared_port() {
        let yaml = KFP_V1.replace("{inputPath: training_data}", "{inputPath: train_data}");
        assert_eq!(
            parse(&yaml).unwrap_err(),
            "c/component.yaml: implementation.container.args[1]: inputPath names 'train_data', which is not a declared input"
        );
    }

    #[test]
    fn defaults_must_have_the_declared_type() {
        let yaml = KFP_V1.replace("default: 10", "default: ten");
        assert_eq!(
            parse(&yaml).unwrap_err(),
            "c/component.yaml: inputs[2].default: expected an Integer, found 'ten'"
        );
    }

    #[test]
    fn duplicate_inputs_are_rejected() {
        let yaml = KFP_V1.replace("{name: notes, optional: true}", "{name: epochs}");
        assert_eq!(
            parse(&yaml).unwrap_err(),
            "c/component.yaml: inputs[3].name: duplicate input name 'epochs'"
        );
    }

    #[test]
    fn graph_components_are_checked() {
        let graph = |tasks: &str| {
            parse(&format!(
                "name: g\ninputs: [{{name: x}}]\noutputs: [{{name: y}}]\nimplementation:\n  graph:\n{tasks}"
            ))
        };
        let ok = graph(
            "    tasks:\n      a: {componentRef: {url: a.yaml}, arguments: {n: {graphInput: {inputName: x}}, k: 3}}\n      b: {componentRef: {name: B}, arguments: {n: {taskOutput: {taskId: a, outputName: out}}}}\n    outputValues: {y: {taskOutput: {taskId: b, outputName: out}}}\n",
        )
        .unwrap();
        let g = ok.graph().unwrap();
        assert_eq!(g.tasks.len(), 2);
        assert_eq!(
            g.tasks["a"].arguments["k"],
            crate::spec::graph::GraphArgument::Constant("3".into())
        );
        let err = graph("    tasks: {}\n").unwrap_err();
        assert!(err.contains("a graph has at least one task"), "{err}");
        let err = graph("    tasks:\n      a: {componentRef: {name: A}, arguments: {n: {graphInput: {inputName: z}}}}\n").unwrap_err();
        assert_eq!(
            err,
            "c/component.yaml: implementation.graph.tasks.a.arguments.n: graphInput 'z' is not a declared input"
        );
        let err = graph("    tasks:\n      a: {componentRef: {name: A}, arguments: {n: {taskOutput: {taskId: a, outputName: o}}}}\n").unwrap_err();
        assert!(err.contains("tasks form a cycle: a -> a"), "{err}");
        let err = graph("    tasks:\n      a: {componentRef: {}}\n").unwrap_err();
        assert!(
            err.contains("expected one of spec, url, name or digest"),
            "{err}"
        );
        let err = graph("    tasks:\n      a: {componentRef: {name: A}}\n    outputValues: {q: {taskOutput: {taskId: a, outputName: o}}}\n").unwrap_err();
        assert!(
            err.contains("outputValues.q: 'q' is not a declared output"),
            "{err}"
        );
    }

    #[test]
    fn wasm_implementation_resolves_relative_to_the_file() {
        let c = parse(
            "name: n\nimplementation:\n  wasm:\n    component: ../bin/n.wasm\n    resources: {memory: 64Mi}\n",
        )
        .unwrap();
        assert_eq!(c.wasm_path().unwrap(), Path::new("bin/n.wasm"));
        let wasm = c.spec.implementation.wasm.as_ref().unwrap();
        assert_eq!(wasm.resources.memory.unwrap().0, 64 << 20);
    }

    #[test]
    fn malformed_yaml_names_line_and_column() {
        let err = parse("name: x\ninputs:\n- {name: a\nimplementation: {}\n").unwrap_err();
        assert!(err.starts_with("c/component.yaml:4:"), "{err}");
    }
}
