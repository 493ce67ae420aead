#!/usr/bin/env bash
# Runs the example pipeline end to end: installs the build targets, builds the sample
# components and `sluice`, then trains and evaluates the breast-cancer classifier and
# shows the recorded run.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "building the sample components (wasm32-wasip2)..." >&2
scripts/build-components.sh
echo "building sluice..." >&2
cargo build --release --locked --quiet -p sluice-cli
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
sluice="$target_dir/release/sluice"

"$sluice" validate examples/breast-cancer/pipeline.yaml
"$sluice" run examples/breast-cancer/pipeline.yaml "$@"
run_id=$("$sluice" runs list --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])')
"$sluice" runs show "$run_id"
