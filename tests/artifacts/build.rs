//! Builds the sample components (their own cargo workspace) for `wasm32-wasip2` and
//! writes their paths into `$OUT_DIR/artifacts.rs`, so tests and benchmarks never
//! hand-type a path into a target folder.

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
    for entry in fs::read_dir(&components).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() && path.file_name().is_some_and(|n| n != "target") {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.args([
        "build",
        "--release",
        "--locked",
        "--target",
        "wasm32-wasip2",
        "--workspace",
    ])
    .arg("--manifest-path")
    .arg(components.join("Cargo.toml"))
    .arg("--target-dir")
    .arg(&target_dir)
    .arg("--message-format=json-render-diagnostics");
    // The outer build's settings (clippy's wrapper, flags for the host target, its
    // target folder) must not leak into the guest build.
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
        let hint =
            if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed") {
                "\nhint: rustup target add wasm32-wasip2"
            } else {
                ""
            };
        panic!("building the sample components failed:\n{stderr}{hint}");
    }

    let mut consts = String::new();
    let mut seen = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if msg["reason"] != "compiler-artifact" {
            continue;
        }
        let files = msg["filenames"].as_array().into_iter().flatten();
        for file in files
            .filter_map(|f| f.as_str())
            .filter(|f| f.ends_with(".wasm"))
        {
            let stem = Path::new(&file)
                .file_stem()
                .unwrap()
                .to_string_lossy()
                .to_uppercase();
            if seen.contains(&stem) {
                continue;
            }
            consts.push_str(&format!(
                "/// `{file}`\npub const {stem}: &str = {file:?};\n"
            ));
            seen.push(stem);
        }
    }
    consts.push_str(&format!(
        "/// The repository's root folder.\npub const ROOT: &str = {:?};\n",
        root.display().to_string()
    ));
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap()).join("artifacts.rs");
    fs::write(out, consts).unwrap();
}
