//! The one integration-test binary of the sample components: the whole breast-cancer flow
//! on the shipped data, the `component.yaml` files against the crates they describe, and
//! the workspace's source conventions. Reads files of the repository; writes nothing.

mod columns;
mod components;
mod flow;
mod tidy;

use std::path::PathBuf;

/// The `sample-components` folder.
fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("ml sits inside sample-components")
        .to_path_buf()
}

/// The repository root.
fn repository() -> PathBuf {
    workspace()
        .parent()
        .expect("sample-components sits inside the repository")
        .to_path_buf()
}
