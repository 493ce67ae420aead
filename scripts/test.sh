#!/usr/bin/env bash
# Runs every test: the workspace's unit and integration tests (which build the sample
# components for wasm32-wasip2 first, and run container steps in the local Docker Engine)
# and the sample components' own unit tests. A Docker Engine that cannot be reached fails
# the run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
scripts/build-images.sh
cargo test --workspace --locked "$@"
env -u CARGO_TARGET_DIR cargo test --locked --workspace \
    --manifest-path sample-components/Cargo.toml --target-dir sample-components/target

# No container may outlive the run that made it.
left=$(docker ps --all --quiet --filter label=sluice.run)
if [[ -n $left ]]; then
    echo "error: containers outlived their runs:" >&2
    docker ps --all --filter label=sluice.run >&2
    exit 1
fi
