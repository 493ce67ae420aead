//! Builds the sample components (their own cargo workspace) for `wasm32-wasip2`, and the
//! trainer and the probe as static `x86_64-unknown-linux-musl` binaries, and writes their
//! paths into `$OUT_DIR/artifacts.rs`, so tests and benchmarks never hand-type a path into
//! a target folder.

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let components = root.join("sample-components");
    let target_dir = components.join("target");

    println!("cargo:rerun-if-changed={}", root.join("wit").display());
    for entry in ["Cargo.toml", "Cargo.lock"] {
        println!(
            "cargo:rerun-if-changed={}",
            components.join(entry).display()
        );
    }
    // Every file, not the folders: a folder named here is only as new as its own entries.
    for entry in fs::read_dir(&components).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            watch_files(&path);
        }
    }

    let wasm = cargo_build(&components, &target_dir, "wasm32-wasip2", &["--workspace"]);
    // The same sources as static native binaries: the executables of the container images
    // and of the process runner.
    let native = cargo_build(
        &components,
        &target_dir,
        "x86_64-unknown-linux-musl",
        &["-p", "train", "-p", "probe"],
    );

    let mut consts = String::new();
    for (stdout, suffix, wanted) in [(&wasm, "", ".wasm"), (&native, "_NATIVE", "")] {
        for line in stdout.lines() {
            let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                continue;
            };
            if msg["reason"] != "compiler-artifact" {
                continue;
            }
            let Some(file) = msg["executable"].as_str().or_else(|| {
                msg["filenames"]
                    .as_array()?
                    .iter()
                    .filter_map(|f| f.as_str())
                    .find(|f| f.ends_with(wanted) && !wanted.is_empty())
            }) else {
                continue;
            };
            let stem = Path::new(file)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_uppercase();
            let name = format!("{stem}{suffix}");
            if consts.contains(&format!("pub const {name}:")) {
                continue;
            }
            consts.push_str(&format!(
                "/// `{file}`\npub const {name}: &str = {file:?};\n"
            ));
        }
    }
    consts.push_str(&format!(
        "/// The repository's root folder.\npub const ROOT: &str = {:?};\n",
        root.display().to_string()
    ));
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("artifacts.rs");
    fs::write(out, consts).unwrap();
}

/// Builds the sample components for `target` and returns cargo's JSON messages.
fn cargo_build(components: &Path, target_dir: &Path, target: &str, select: &[&str]) -> String {
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--release", "--locked", "--target", target])
        .args(select)
        .arg("--manifest-path")
        .arg(components.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(target_dir)
        .arg("--message-format=json-render-diagnostics");
    // The outer build's settings (clippy's wrapper, flags for the host target, its
    // target folder) must not leak into this one.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_RUSTFLAGS",
        "CARGO_PROFILE_RELEASE_DEBUG",
    ] {
        cmd.env_remove(var);
    }
    let output = cmd
        .output()
        .expect("cannot run cargo for the sample components");
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("target may not be installed") {
            format!("\nhint: rustup target add {target}")
        } else {
            String::new()
        };
        panic!("building the sample components for {target} failed:\n{stderr}{hint}");
    }
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Asks cargo to rerun this script when any file under `dir` changes.
fn watch_files(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            watch_files(&path);
        } else {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}
