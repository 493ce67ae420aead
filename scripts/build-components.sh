#!/usr/bin/env bash
# Builds the sample components for wasm32-wasip2 into sample-components/target, where
# their component.yaml files expect them: all of them, or the packages named
# (`scripts/build-components.sh validate split`).
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(--workspace)
if [[ $# -gt 0 ]]; then
    packages=()
    for name in "$@"; do packages+=(-p "$name"); done
fi
# A target folder set for the host workspace must not capture the components' build.
env -u CARGO_TARGET_DIR -u RUSTFLAGS -u CARGO_BUILD_TARGET \
    cargo build --release --locked --quiet --target wasm32-wasip2 "${packages[@]}" \
    --manifest-path sample-components/Cargo.toml --target-dir sample-components/target
