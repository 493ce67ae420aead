//! Every `component.yaml` checked against the KFP v1 component format as Sluice reads it and
//! against the crate beside it: the wasm path matches the crate's output file, typed steps
//! (cdylib crates) have no `args` and command steps do, types are the KFP names Sluice
//! uses, and every placeholder names a declared input or output of the right kind.

use std::fs;

use serde_yaml_ng::Value;

use crate::workspace;

const PARAMETER_TYPES: &[&str] = &[
    "String",
    "Integer",
    "Float",
    "Boolean",
    "JsonObject",
    "JsonArray",
];
// `UI_metadata`: the type KFP v1 gives `mlpipeline-ui-metadata` outputs.
const ARTIFACT_TYPES: &[&str] = &["Dataset", "Model", "Metrics", "Artifact", "UI_metadata"];
const STEPS: &[&str] = &[
    "evaluate",
    "normalize",
    "package",
    "split",
    "train",
    "validate",
];

struct Component {
    dir: String,
    spec: Value,
    crate_name: String,
    typed: bool,
}

struct Port {
    name: String,
    kind: String,
    /// Optional and without a default: may only be used under `if: {cond: {isPresent}}`.
    may_be_absent: bool,
}

fn components() -> Vec<Component> {
    let mut found = Vec::new();
    for entry in fs::read_dir(workspace()).unwrap() {
        let dir = entry.unwrap().path();
        let file = dir.join("component.yaml");
        if !file.exists() {
            continue;
        }
        let spec: Value = serde_yaml_ng::from_str(&fs::read_to_string(&file).unwrap())
            .unwrap_or_else(|err| panic!("{}: {err}", file.display()));
        let manifest = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        let crate_name = manifest
            .lines()
            .find_map(|line| line.strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .expect("Cargo.toml names its package")
            .to_owned();
        found.push(Component {
            dir: dir.file_name().unwrap().to_string_lossy().into_owned(),
            spec,
            crate_name,
            typed: manifest.contains("crate-type = [\"cdylib\"]"),
        });
    }
    found.sort_by(|a, b| a.dir.cmp(&b.dir));
    found
}

fn text<'a>(value: &'a Value, key: &str, context: &str) -> &'a str {
    value
        .get(key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{context}: '{key}' must be text"))
}

fn keys(value: &Value) -> Vec<String> {
    value
        .as_mapping()
        .expect("a mapping")
        .keys()
        .map(|key| key.as_str().expect("text keys").to_owned())
        .collect()
}

fn ports(component: &Component, list: &str) -> Vec<Port> {
    let allowed_keys: &[&str] = if list == "inputs" {
        &["name", "type", "description", "default", "optional"]
    } else {
        &["name", "type", "description"]
    };
    let mut ports: Vec<Port> = Vec::new();
    for port in component.spec[list].as_sequence().expect("a list") {
        let context = format!("{}/component.yaml {list}", component.dir);
        for key in keys(port) {
            assert!(
                allowed_keys.contains(&key.as_str()),
                "{context}: key '{key}'"
            );
        }
        let name = text(port, "name", &context).to_owned();
        let kind = text(port, "type", &context).to_owned();
        assert!(!text(port, "description", &context).is_empty());
        if let Some(default) = port.get("default") {
            assert!(
                default.is_string(),
                "{context} '{name}': KFP defaults are text"
            );
        }
        let optional = port
            .get("optional")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        assert!(
            !ports.iter().any(|p| p.name == name),
            "{context}: '{name}' twice"
        );
        ports.push(Port {
            may_be_absent: optional && port.get("default").is_none(),
            name,
            kind,
        });
    }
    ports
}

#[derive(Debug)]
struct Reference {
    placeholder: String,
    name: String,
    guarded: bool,
}

fn walk(arg: &Value, guarded: &[String], out: &mut Vec<Reference>) {
    match arg {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => {}
        Value::Sequence(items) => items.iter().for_each(|item| walk(item, guarded, out)),
        Value::Mapping(mapping) => {
            assert_eq!(mapping.len(), 1, "a placeholder has one key: {arg:?}");
            let (key, value) = mapping.iter().next().unwrap();
            let key = key.as_str().unwrap();
            match key {
                "inputValue" | "inputPath" | "outputPath" | "isPresent" => {
                    let name = value.as_str().expect("a placeholder names a port");
                    out.push(Reference {
                        placeholder: key.to_owned(),
                        name: name.to_owned(),
                        guarded: guarded.iter().any(|g| g == name),
                    });
                }
                "concat" => walk(value, guarded, out),
                "if" => {
                    for part in keys(value) {
                        assert!(["cond", "then", "else"].contains(&part.as_str()), "{part}");
                    }
                    let cond = &value["cond"];
                    walk(cond, guarded, out);
                    let mut inner = guarded.to_vec();
                    if let Some(name) = cond.get("isPresent").and_then(Value::as_str) {
                        inner.push(name.to_owned());
                    }
                    walk(&value["then"], &inner, out);
                    if let Some(otherwise) = value.get("else") {
                        walk(otherwise, guarded, out);
                    }
                }
                other => panic!("unknown placeholder '{other}'"),
            }
        }
        other => panic!("unexpected argument {other:?}"),
    }
}

#[test]
fn every_pipeline_step_has_a_component_file() {
    let dirs: Vec<String> = components().into_iter().map(|c| c.dir).collect();
    assert_eq!(dirs, STEPS);
}

#[test]
fn component_files_point_at_their_wasm_and_declare_kfp_types() {
    for component in components() {
        let context = format!("{}/component.yaml", component.dir);
        for key in keys(&component.spec) {
            assert!(
                ["name", "description", "inputs", "outputs", "implementation"]
                    .contains(&key.as_str()),
                "{context}: key '{key}'"
            );
        }
        assert!(!text(&component.spec, "name", &context).is_empty());
        let implementation = &component.spec["implementation"];
        // The trainer alone also ships as a container image (see train/Dockerfile), with
        // the same arguments.
        if component.dir == "train" {
            assert_eq!(keys(implementation), ["wasm", "container"], "{context}");
            let container = &implementation["container"];
            assert_eq!(
                text(container, "image", &context),
                "sluice-samples/train:0.1.0"
            );
            assert_eq!(
                container["args"], implementation["wasm"]["args"],
                "{context}"
            );
        } else {
            assert_eq!(keys(implementation), ["wasm"], "{context}");
        }
        let wasm = &implementation["wasm"];
        assert_eq!(
            text(wasm, "component", &context),
            format!(
                "../target/wasm32-wasip2/release/{}.wasm",
                component.crate_name.replace('-', "_")
            ),
            "{context}"
        );
        assert_eq!(
            wasm.get("args").is_none(),
            component.typed,
            "{context}: typed steps take no args, command steps need them"
        );
        for port in ports(&component, "inputs") {
            assert!(
                PARAMETER_TYPES.contains(&port.kind.as_str())
                    || ARTIFACT_TYPES.contains(&port.kind.as_str()),
                "{context}: input '{}' has type {}",
                port.name,
                port.kind
            );
        }
        for port in ports(&component, "outputs") {
            assert!(
                ARTIFACT_TYPES.contains(&port.kind.as_str()),
                "{context}: output '{}' has type {}",
                port.name,
                port.kind
            );
        }
    }
}

#[test]
fn command_arguments_use_every_port_the_right_way() {
    for component in components().into_iter().filter(|c| !c.typed) {
        let context = format!("{}/component.yaml", component.dir);
        let inputs = ports(&component, "inputs");
        let outputs = ports(&component, "outputs");
        let mut references = Vec::new();
        walk(
            &component.spec["implementation"]["wasm"]["args"],
            &[],
            &mut references,
        );
        for reference in &references {
            let name = &reference.name;
            match reference.placeholder.as_str() {
                "outputPath" => assert!(
                    outputs.iter().any(|p| &p.name == name),
                    "{context}: no output '{name}'"
                ),
                placeholder => {
                    let port = inputs
                        .iter()
                        .find(|p| &p.name == name)
                        .unwrap_or_else(|| panic!("{context}: no input '{name}'"));
                    let parameter = PARAMETER_TYPES.contains(&port.kind.as_str());
                    match placeholder {
                        "inputValue" => assert!(parameter, "{context}: inputValue of '{name}'"),
                        "inputPath" => assert!(!parameter, "{context}: inputPath of '{name}'"),
                        _ => {}
                    }
                    if placeholder != "isPresent" && port.may_be_absent {
                        assert!(
                            reference.guarded,
                            "{context}: optional '{name}' used outside an isPresent check"
                        );
                    }
                }
            }
        }
        for port in inputs.iter().chain(&outputs) {
            assert!(
                references
                    .iter()
                    .any(|r| r.name == port.name && r.placeholder != "isPresent"),
                "{context}: '{}' is declared but never passed",
                port.name
            );
        }
    }
}
