#!/usr/bin/env bash
# Runs the example pipeline end to end: installs the build targets, builds the sample
# components, the trainer's container image and `sluice`, then trains and evaluates the
# breast-cancer classifier with every step in wasm, shows the recorded run, runs the
# container variant (training in Docker, the rest in wasm) and checks that both trained
# the same model.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
echo "building the sample components (wasm32-wasip2)..." >&2
scripts/build-components.sh
echo "building the trainer's container image..." >&2
scripts/build-images.sh
echo "building sluice..." >&2
cargo build --release --locked --quiet -p sluice-cli
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
sluice="$target_dir/release/sluice"

last_run() {
    "$sluice" runs list --json --limit 1 | python3 -c 'import json,sys; print(json.load(sys.stdin)[0]["id"])'
}
model() {
    "$sluice" runs show "$1" --json | python3 -c '
import json, sys
run = json.load(sys.stdin)
train = next(t for t in run["tasks"] if t["name"] == "train")
print(next(o["digest"] for o in train["outputs"] if o["name"] == "model"))'
}

"$sluice" validate examples/breast-cancer/pipeline.yaml examples/breast-cancer/pipeline-container.yaml
"$sluice" run examples/breast-cancer/pipeline.yaml "$@"
wasm_run=$(last_run)
"$sluice" runs show "$wasm_run"

echo >&2
echo "the container variant: training in Docker, every other step in wasm" >&2
"$sluice" run examples/breast-cancer/pipeline-container.yaml "$@"
container_run=$(last_run)
if [[ $(model "$wasm_run") == $(model "$container_run") ]]; then
    echo "both variants trained the same model: $(model "$wasm_run")"
else
    echo "error: the variants trained different models ($wasm_run, $container_run)" >&2
    exit 1
fi
