#!/usr/bin/env bash
# The serving benchmark (run by hand, not a test): requests per second and p50/p99
# latency of `sluice serve` against a Python baseline serving the same model (FastAPI +
# scikit-learn under uvicorn, bench/serve/baseline.py), in the same run, under the same
# load generator (wrk) at the same fixed concurrency over loopback. Two scenarios: one row
# per request, and 32 rows per request, both in TF Serving's row format.
#
# Installs wrk (Debian) and the baseline's packages (PyPI, in a virtualenv outside the
# clone) when missing. Knobs: SLUICE_BENCH_SECONDS (15), SLUICE_BENCH_CONNECTIONS (32).
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${SLUICE_BENCH_SECONDS:-15}
connections=${SLUICE_BENCH_CONNECTIONS:-32}
cores=$(nproc)
sluice_port=18700
baseline_port=18701

if ! command -v wrk >/dev/null; then
    sudo=$([[ $(id -u) == 0 ]] || echo sudo)
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
venv=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/bench-serve-venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/serve/requirements.txt

scripts/setup.sh
scripts/build-components.sh >/dev/null
cargo build --release --locked --quiet -p sluice-cli
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
sluice="$target_dir/release/sluice"

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
export SLUICE_HOME=$work/home
"$sluice" run examples/breast-cancer/pipeline.yaml >/dev/null 2>&1
bundle=$SLUICE_HOME/models/breast-cancer/1/model

"$sluice" serve --bind 127.0.0.1:$sluice_port >"$work/sluice.log" 2>&1 &
pids+=($!)
(cd bench/serve && SLUICE_BUNDLE=$bundle exec "$venv/bin/uvicorn" baseline:app --host 127.0.0.1 \
    --port $baseline_port --workers "$cores" --log-level warning --no-access-log) >"$work/baseline.log" 2>&1 &
pids+=($!)
for port in $sluice_port $baseline_port; do
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$port/v1/models/breast-cancer" >/dev/null && break
        sleep 0.1
    done
    curl -sf "http://127.0.0.1:$port/v1/models/breast-cancer" >/dev/null \
        || { echo "error: the server on port $port did not start" >&2; cat "$work"/*.log >&2; exit 1; }
done

# Request bodies: 1 and 32 raw rows of the table, and a check that both servers agree.
python3 - "$work" $sluice_port $baseline_port <<'PY'
import csv, json, sys, urllib.request
work, ports = sys.argv[1], sys.argv[2:]
with open("examples/breast-cancer/data/breast_cancer.csv") as f:
    rows = [[float(x) for x in r[:30]] for r in list(csv.reader(f))[1:]]
for n in (1, 32):
    with open(f"{work}/body-{n}.json", "w") as f:
        json.dump({"instances": rows[:n]}, f)
answers = []
for port in ports:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/v1/models/breast-cancer:predict",
                                     data=json.dumps({"instances": rows}).encode(),
                                     headers={"Content-Type": "application/json"})
    answers.append(json.load(urllib.request.urlopen(request))["predictions"])
for i, (a, b) in enumerate(zip(*answers)):
    if a["label"] != b["label"] or abs(a["probability"] - b["probability"]) > 1e-9 * max(1e-300, abs(b["probability"])) + 1e-15:
        sys.exit(f"the servers disagree on row {i}: {a} vs {b}")
print(f"both servers give the same predictions for all {len(rows)} rows of the table")
PY

measure() { # port body-file -> "rps p50_ms p99_ms"
    SLUICE_BENCH_BODY=$2 wrk -t2 -c"$connections" -d3s -s bench/serve/predict.lua \
        "http://127.0.0.1:$1/v1/models/breast-cancer:predict" >/dev/null
    SLUICE_BENCH_BODY=$2 wrk -t2 -c"$connections" -d"${seconds}s" --latency -s bench/serve/predict.lua \
        "http://127.0.0.1:$1/v1/models/breast-cancer:predict" >"$work/wrk.out"
    if grep -q "Non-2xx" "$work/wrk.out"; then
        echo "error: failed requests against port $1:" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
    python3 - "$work/wrk.out" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
def ms(label):
    value, unit = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s)\s*$", text, re.M).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
print(f"{rps:.0f} {ms('50%'):.3f} {ms('99%'):.3f}")
PY
}

echo
echo "wrk -t2 -c$connections -d${seconds}s against each server in turn, on this $cores-core machine"
echo "(the load generator shares the cores with the server it measures, alike for both;"
echo " the baseline runs $cores uvicorn workers, sluice serve its default pool)"
printf "\n%-10s %-22s %12s %10s %10s\n" "rows/req" "server" "requests/s" "p50 ms" "p99 ms"
for rows in 1 32; do
    read -r s_rps s_p50 s_p99 < <(measure $sluice_port "$work/body-$rows.json")
    read -r b_rps b_p50 b_p99 < <(measure $baseline_port "$work/body-$rows.json")
    printf "%-10s %-22s %12s %10s %10s\n" "$rows" "sluice serve" "$s_rps" "$s_p50" "$s_p99"
    printf "%-10s %-22s %12s %10s %10s\n" "$rows" "FastAPI + scikit-learn" "$b_rps" "$b_p50" "$b_p99"
    python3 -c "print(f'{\"\":10} sluice / baseline: throughput {$s_rps / $b_rps:.1f}x, p99 {$s_p99 / $b_p99:.2f}x')"
done
