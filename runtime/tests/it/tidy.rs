//! Rules of the code base that review alone would let slip: every Rust file says what it
//! owns, and the invariants of ARCHITECTURE.md hold.

use std::fs;
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(sluice_test_artifacts::ROOT)
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

fn files_under(parts: &[&str]) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for part in parts {
        rust_files(&root().join(part), &mut files);
    }
    files
}

#[test]
fn every_rust_file_opens_with_what_it_owns() {
    let files = files_under(&["runtime", "host-cli", "tests", "bench", "sample-components"]);
    assert!(files.len() > 40, "found only {}", files.len());
    let lacking: Vec<_> = files
        .iter()
        .filter(|f| !fs::read_to_string(f).unwrap().starts_with("//! "))
        .collect();
    assert!(
        lacking.is_empty(),
        "no `//!` paragraph at the top of {lacking:?}"
    );
}

fn offenders(files: &[PathBuf], allowed: &str, needle: &str) -> Vec<PathBuf> {
    files
        .iter()
        .filter(|f| !f.starts_with(root().join(allowed)))
        .filter(|f| fs::read_to_string(f).unwrap().contains(needle))
        .cloned()
        .collect()
}

#[test]
fn only_the_wasm_host_its_executor_and_the_predictor_pools_touch_wasmtime() {
    let allowed = [
        "runtime/src/wasm",
        "runtime/src/exec/wasm",
        "runtime/src/serve/predictor.rs",
    ];
    let files: Vec<PathBuf> = files_under(&["runtime/src", "host-cli/src"])
        .into_iter()
        .filter(|f| !allowed.iter().any(|a| f.starts_with(root().join(a))))
        .collect();
    for needle in ["wasmtime::", "wasmtime_wasi"] {
        let found = offenders(&files, "runtime/src/none", needle);
        assert!(
            found.is_empty(),
            "`{needle}` outside wasm, exec::wasm and serve::predictor: {found:?}"
        );
    }
}

/// Every `crate::<module>` a module's sources name, with the file that names it.
fn imports(module: &str) -> Vec<(String, PathBuf)> {
    let src = root().join("runtime/src");
    let mut files = Vec::new();
    let folder = src.join(module);
    if folder.is_dir() {
        rust_files(&folder, &mut files);
    }
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push(file);
    }
    assert!(!files.is_empty(), "no sources for {module}");
    let mut found = Vec::new();
    for file in files {
        let text = fs::read_to_string(&file).unwrap();
        for (i, _) in text.match_indices("crate::") {
            let name: String = text[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push((name, file.clone()));
        }
    }
    found
}

#[test]
fn layers_import_only_downward() {
    let above: &[(&str, &[&str])] = &[
        (
            "plan",
            &[
                "exec", "schedule", "session", "deploy", "kfp", "serve", "argo",
            ],
        ),
        (
            "exec",
            &[
                "plan", "schedule", "session", "deploy", "kfp", "serve", "slurm", "argo",
            ],
        ),
        // An export reads a plan and how each task would run; it runs nothing.
        (
            "argo",
            &["schedule", "session", "deploy", "kfp", "serve", "slurm"],
        ),
        // A backend is an executor over executors: it knows neither plans nor the
        // scheduler that calls it.
        (
            "slurm",
            &["plan", "schedule", "session", "deploy", "kfp", "serve"],
        ),
        (
            "launcher",
            &[
                "plan", "exec", "schedule", "session", "deploy", "kfp", "serve",
            ],
        ),
        (
            "spec",
            &[
                "plan", "exec", "schedule", "session", "deploy", "kfp", "serve",
            ],
        ),
        (
            "wasm",
            &[
                "plan", "exec", "schedule", "session", "deploy", "kfp", "serve",
            ],
        ),
        (
            "serve",
            &["plan", "exec", "schedule", "session", "deploy", "kfp"],
        ),
        ("schedule", &["session", "deploy", "kfp", "serve", "slurm"]),
    ];
    let mut wrong = Vec::new();
    for (module, forbidden) in above {
        for (name, file) in imports(module) {
            if forbidden.contains(&name.as_str()) {
                wrong.push(format!("{} imports crate::{name}", file.display()));
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_server_knows_no_wasmtime_and_the_protocols_no_pools() {
    // The HTTP side speaks tensors; only `predictor` turns them into calls.
    for file in [
        "runtime/src/serve/tfs.rs",
        "runtime/src/serve/oip.rs",
        "runtime/src/serve/tensor.rs",
    ] {
        let text = fs::read_to_string(root().join(file)).unwrap();
        for needle in ["wasmtime::", "wasmtime_wasi", "predictor::"] {
            assert!(!text.contains(needle), "`{needle}` in {file}");
        }
    }
}

#[test]
fn only_the_docker_executor_talks_to_docker() {
    let files = files_under(&["runtime/src", "host-cli/src"]);
    let found = offenders(&files, "runtime/src/exec/docker.rs", "bollard");
    assert!(
        found.is_empty(),
        "bollard used outside exec::docker: {found:?}"
    );
}

#[test]
fn planning_does_no_io() {
    let files = files_under(&["runtime/src/plan"]);
    for needle in ["std::fs", "fs::", "File::", "tokio::"] {
        let found = offenders(&files, "runtime/src/plan/tests.rs", needle);
        assert!(found.is_empty(), "`{needle}` in plan: {found:?}");
    }
}

#[test]
fn only_the_command_knows_the_terminal() {
    let manifest = fs::read_to_string(root().join("runtime/Cargo.toml")).unwrap();
    let dependencies = manifest.split("[dev-dependencies]").next().unwrap();
    for crate_name in ["clap", "indicatif", "comfy-table", "anyhow", "console"] {
        assert!(
            !dependencies.contains(&format!("\n{crate_name}")),
            "the runtime depends on {crate_name}"
        );
    }
    let found = offenders(
        &files_under(&["runtime/src"]),
        "runtime/src/none",
        "io::IsTerminal",
    );
    assert!(
        found.is_empty(),
        "terminal checks in the runtime: {found:?}"
    );
}

#[test]
fn one_bindgen_site() {
    let files = files_under(&["runtime/src"]);
    let sites: Vec<_> = files
        .iter()
        .filter(|f| fs::read_to_string(f).unwrap().contains("bindgen!("))
        .collect();
    assert_eq!(sites.len(), 1, "{sites:?}");
}
