//! Entry points for the fuzz targets in `fuzz/`, and for the tests that replay their seeds
//! and every input that once broke one (`tests/it/fuzz_inputs.rs`). Each
//! takes untrusted bytes where Sluice takes them in, and does what Sluice does with them
//! after parsing (planning a pipeline, fitting tensors to a signature and writing them
//! back, following an image index), so a fault anywhere on that path is found. Every
//! one must return: an error is an answer; a panic, a hang or unbounded memory is a bug.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use indexmap::IndexMap;

use crate::spec::{Component, PipelineFile, PipelineSpec};

/// A component with one input and one output of each kind, standing in for every
/// component a fuzzed pipeline names.
const COMPONENT: &str = "name: c
inputs:
- {name: data, type: Dataset, optional: true}
- {name: n, type: Integer, default: '1'}
- {name: s, type: String, optional: true}
outputs:
- {name: out, type: Dataset}
- {name: count, type: Integer}
implementation:
  wasm:
    component: c.wasm
    args: [{inputPath: data}, {inputValue: n}, {outputPath: out}, {outputPath: count}]
";

/// A pipeline file: parsed, each task given [`COMPONENT`], planned, and the plan
/// rendered as text, DOT and JSON.
pub fn pipeline_yaml(bytes: &[u8]) {
    static C: OnceLock<Arc<Component>> = OnceLock::new();
    let component = C.get_or_init(|| {
        Arc::new(Component::parse(Path::new("c.yaml"), COMPONENT).expect("a valid component"))
    });
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let path = Path::new("pipeline.yaml");
    let Ok(spec) = crate::spec::from_yaml::<PipelineSpec>(path, text) else {
        return;
    };
    let components = spec
        .tasks
        .keys()
        .map(|name| (name.clone(), Ok(component.clone())))
        .collect::<IndexMap<_, _>>();
    let file = PipelineFile {
        path: path.to_owned(),
        digest: crate::spec::sha256_hex(bytes),
        spec,
        components,
    };
    if let Ok(plan) = crate::plan::Plan::build(&file, &[]) {
        use crate::plan::Format;
        for format in [Format::Text, Format::Dot, Format::Json] {
            let _ = plan.render(format);
        }
    }
}

/// A component file (KFP v1 `component.yaml`, with Sluice's `implementation.wasm`),
/// and a plan to run it alone.
pub fn component_yaml(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    if let Ok(component) = Component::parse(Path::new("component.yaml"), text) {
        let _ = crate::plan::Plan::for_component(Arc::new(component), &[]);
    }
}

/// A pipeline compiled by the KFP SDK: parsed and checked, its parameters bound to their
/// defaults, lowered into a plan and the plan rendered.
pub fn kfp_ir(bytes: &[u8]) {
    let Ok(text) = std::str::from_utf8(bytes) else {
        return;
    };
    let Ok(file) = crate::kfp::IrFile::parse(Path::new("pipeline.yaml"), text) else {
        return;
    };
    let _ = crate::kfp::not_applicable(&file);
    let (params, _) = crate::kfp::bind_what_can_be(&file, &[]);
    if let Ok(plan) = crate::kfp::lower::lower(&file, &params, &[]) {
        for format in [
            crate::plan::Format::Text,
            crate::plan::Format::Dot,
            crate::plan::Format::Json,
        ] {
            let _ = plan.render(format);
        }
    }
}

/// An Open Inference Protocol v2 request body; the JSON header ends at the first NUL,
/// binary tensor data follows it.
pub fn oip_request(bytes: &[u8]) {
    crate::serve::fuzz::oip(bytes);
}

/// A TensorFlow Serving predict request body (row or column format).
pub fn tfs_request(bytes: &[u8]) {
    crate::serve::fuzz::tfs(bytes);
}

/// A manifest or image index as a registry would return it.
pub fn oci_manifest(bytes: &[u8]) {
    crate::oci::fuzz_manifest(bytes);
}

/// A bundle (an OCI image layout in a tar archive), opened into a scratch home.
pub fn bundle(bytes: &[u8]) {
    static HOME: OnceLock<(tempfile::TempDir, crate::oci::Registries)> = OnceLock::new();
    let (home, registries) = HOME.get_or_init(|| {
        let home = tempfile::tempdir().expect("a scratch folder");
        let registries = crate::oci::Registries::new(
            &home.path().join("cache"),
            crate::oci::RegistryOptions {
                offline: true,
                ..Default::default()
            },
        );
        (home, registries)
    });
    let _ =
        crate::oci::bundle::open_bytes(Path::new("fuzz.bundle"), bytes, home.path(), registries);
    let _ = std::fs::remove_dir_all(home.path().join("bundles"));
}
