#!/usr/bin/env bash
# Runs every test: the workspace's unit and integration tests (which build the sample
# components for wasm32-wasip2 first) and the sample components' own unit tests.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
cargo test --workspace --locked "$@"
env -u CARGO_TARGET_DIR cargo test --locked --workspace \
    --manifest-path sample-components/Cargo.toml --target-dir sample-components/target
