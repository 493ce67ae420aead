//! Source conventions of the sample components that a reviewer would otherwise have to
//! check by hand: every Rust file opens with a `//!` paragraph saying what it owns.

use std::fs;
use std::path::{Path, PathBuf};

use crate::workspace;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            if name != "target" && !name.starts_with('.') {
                rust_files(&path, out);
            }
        } else if name.ends_with(".rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_rust_file_says_what_it_owns() {
    let mut files = Vec::new();
    rust_files(&workspace(), &mut files);
    assert!(files.len() >= 15, "found only {files:?}");
    let lacking: Vec<&PathBuf> = files
        .iter()
        .filter(|path| !fs::read_to_string(path).unwrap().starts_with("//! "))
        .collect();
    assert!(
        lacking.is_empty(),
        "these files do not open with a `//!` paragraph: {lacking:?}"
    );
}
