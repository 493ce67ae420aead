#!/usr/bin/env bash
# Runs the example pipeline end to end and leaves its model served: installs the build
# targets, builds the sample components, the trainer's container image and `sluice`;
# trains a first (strongly regularised) breast-cancer classifier, which deploys as
# version 1; starts `sluice serve` and asks it for predictions over both protocols with
# curl; trains the better default model while clients keep asking, and counts the failed
# requests while the server swaps to version 2; runs the container variant (training in
# Docker) and checks that it trained the same model. The server keeps running at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh wasm32-wasip2
# Downloads overlap the components' build, which needs the CPU and not the network: the
# target the trainer's image is built for, and the crates of `sluice` itself.
fetched=$(mktemp)
trap 'rm -f "$fetched"' EXIT
(
    scripts/setup.sh x86_64-unknown-linux-musl &&
        cargo fetch --locked --quiet --target "$(rustc -vV | sed -n 's/^host: //p')"
) >"$fetched" 2>&1 &
fetching=$!
echo "building the sample components (wasm32-wasip2)..." >&2
# Only what the example runs: its steps, its predictor, and the trainer's image.
scripts/build-components.sh validate split normalize train evaluate package predictor
if ! wait "$fetching"; then
    cat "$fetched" >&2
    echo "error: installing the musl target or fetching the crates of sluice failed" >&2
    exit 1
fi
echo "building the trainer's container image..." >&2
scripts/build-images.sh train
echo "building sluice..." >&2
cargo build --release --locked --quiet -p sluice-cli
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
sluice="$target_dir/release/sluice"
home=${SLUICE_HOME:-${XDG_DATA_HOME:-$HOME/.local/share}/sluice}
port=${SLUICE_PORT:-8501}

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
# Two raw rows of the table (30 features each, without the diagnosis), as JSON lists.
rows=$(python3 -c '
import csv
with open("examples/breast-cancer/data/breast_cancer.csv") as f:
    table = list(csv.reader(f))
print(",".join("[" + ",".join(r[:30]) + "]" for r in (table[1], table[21])))')

"$sluice" validate examples/breast-cancer/pipeline.yaml examples/breast-cancer/pipeline-container.yaml

echo >&2
echo "a first model, strongly regularised (l2 = 1): it passes the gate and deploys" >&2
"$sluice" run examples/breast-cancer/pipeline.yaml -p l2=1 "$@"

# A server for this home: the one already running, or a new one in the background.
url=$(python3 - "$home/serve/server.json" <<'PY' || true
import json, os, sys
try:
    info = json.load(open(sys.argv[1]))
    os.kill(info["pid"], 0)
    print(info["url"])
except Exception:
    pass
PY
)
if [[ -z $url ]]; then
    mkdir -p "$home"
    setsid nohup "$sluice" serve --ui --bind "127.0.0.1:$port" >"$home/serve.log" 2>&1 </dev/null &
    url=http://127.0.0.1:$port
    for _ in $(seq 300); do
        curl -sf "$url/v2/health/ready" >/dev/null && break
        sleep 0.1
    done
fi
curl -sf "$url/v2/health/ready" >/dev/null || { echo "error: sluice serve did not start; see $home/serve.log" >&2; exit 1; }
echo "sluice serve answers on $url" >&2

echo >&2
echo "TF Serving REST:  POST $url/v1/models/breast-cancer:predict" >&2
curl -sS "$url/v1/models/breast-cancer:predict" -d "{\"instances\": [$rows]}"
echo
echo "Open Inference Protocol v2:  POST $url/v2/models/breast-cancer/infer" >&2
curl -sS "$url/v2/models/breast-cancer/infer" \
    -d "{\"inputs\": [{\"name\": \"features\", \"shape\": [2, 30], \"datatype\": \"FP64\", \"data\": [$rows]}]}"
echo

echo >&2
echo "the better model (the default l2 = 0.01), deployed while clients keep asking" >&2
load_log=$(mktemp)
stop_file=$(mktemp -u)
(
    while [[ ! -e $stop_file ]]; do
        curl -s -o /dev/null -w '%{http_code}\n' "$url/v1/models/breast-cancer:predict" -d "{\"instances\": [$rows]}"
    done >"$load_log"
) &
load=$!
sleep 1
"$sluice" run examples/breast-cancer/pipeline.yaml "$@"
wasm_run=$(last_run)
sleep 1
touch "$stop_file"
wait "$load"
total=$(wc -l <"$load_log")
failed=$(grep -cv '^200$' "$load_log" || true)
rm -f "$load_log" "$stop_file"
echo "during the swap: $total requests, $failed failed"
curl -sS "$url/v2/models/breast-cancer/infer" \
    -d "{\"inputs\": [{\"name\": \"features\", \"shape\": [2, 30], \"datatype\": \"FP64\", \"data\": [$rows]}]}"
echo
[[ $failed == 0 ]] || { echo "error: requests failed during the swap" >&2; exit 1; }

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

"$sluice" models show breast-cancer
echo
echo "sluice serve keeps serving on $url (metrics: $url/metrics; stop it: kill \$(python3 -c 'import json; print(json.load(open(\"$home/serve/server.json\"))[\"pid\"])'))"
if curl -sf -o /dev/null "$url/ui/"; then
    echo "its web UI shows these runs, their graphs, logs and a comparison: $url/ui/"
else
    echo "the web UI of these runs: $sluice ui (then http://127.0.0.1:8580/ui/)"
fi
