//! Every input the fuzz targets start from (`fuzz/seeds`) and every input that once made
//! one panic, hang or run out of memory (`fuzz/regressions/<target>/`), replayed through
//! the same entry points on every test run, so a fault the fuzzer found stays fixed.

use std::path::{Path, PathBuf};

use sluice_runtime::fuzzing;

type Target = fn(&[u8]);

const TARGETS: [(&str, Target); 7] = [
    ("pipeline_yaml", fuzzing::pipeline_yaml),
    ("component_yaml", fuzzing::component_yaml),
    ("kfp_ir", fuzzing::kfp_ir),
    ("oip_request", fuzzing::oip_request),
    ("tfs_request", fuzzing::tfs_request),
    ("oci_manifest", fuzzing::oci_manifest),
    ("bundle", fuzzing::bundle),
];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
}

#[test]
fn seeds_and_past_findings_pass_through_every_target() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut replayed = 0;
    for (name, target) in TARGETS {
        let mut inputs = files(&fuzz_dir().join("seeds").join(name));
        inputs.extend(files(&fuzz_dir().join("regressions").join(name)));
        // The repository's own files the fuzz script seeds from.
        match name {
            "pipeline_yaml" => inputs.extend(files(&root.join("examples/breast-cancer"))),
            "component_yaml" => inputs.extend(files(&root.join("tests/kfp/components"))),
            _ => {}
        }
        for input in inputs.iter().filter(|p| p.is_file()) {
            target(&std::fs::read(input).unwrap());
            replayed += 1;
        }
    }
    assert!(
        replayed >= 15,
        "only {replayed} inputs were found to replay"
    );
}
