#!/usr/bin/env bash
# The serving benchmark (run by hand, not a test), in three sections, each against a
# baseline measured in the same run:
#
#   baseline  requests per second and p50/p99 latency of `sluice serve` against a Python
#             server of the same model (FastAPI + scikit-learn under uvicorn,
#             bench/serve/baseline.py), one row and 32 rows per request, TF Serving's
#             row format, under the same load generator (wrk) at the same concurrency;
#   formats   the same rows as an OIP tensor (the baseline), as TF Serving's row format
#             and as its column format, at 1, 32 and 1,024 rows per request: the median
#             of several rounds of each, the formats interleaved within every round;
#   memory    peak resident memory for one and four request bodies at the body limit
#             (bench/serve/memory.py);
#   flood     metric series, /metrics size and resident memory before and after
#             SLUICE_BENCH_SECONDS of requests for random model names (flood.lua).
#
#   bench/serve/run.sh [baseline] [formats] [memory] [flood]     (default: all four)
#
# Installs wrk (Debian) and the baseline's packages (PyPI, in a virtualenv outside the
# clone) when missing. Knobs: SLUICE_BENCH_SECONDS (15, per baseline measurement),
# SLUICE_BENCH_CONNECTIONS (32), SLUICE_BENCH_ROUNDS (5) and SLUICE_BENCH_ROUND_SECONDS
# (5) for the formats.
set -euo pipefail
cd "$(dirname "$0")/../.."

sections=("$@")
[[ ${#sections[@]} -gt 0 ]] || sections=(baseline formats memory flood)
for section in "${sections[@]}"; do
    case $section in
        baseline | formats | memory | flood) ;;
        *) echo "error: unknown section '$section'; use baseline, formats, memory or flood" >&2; exit 2 ;;
    esac
done
wants() { [[ " ${sections[*]} " == *" $1 "* ]]; }
seconds=${SLUICE_BENCH_SECONDS:-15}
connections=${SLUICE_BENCH_CONNECTIONS:-32}
rounds=${SLUICE_BENCH_ROUNDS:-5}
round_seconds=${SLUICE_BENCH_ROUND_SECONDS:-5}
cores=$(nproc)
sluice_port=18700
baseline_port=18701

if ! command -v wrk >/dev/null; then
    sudo=$([[ $(id -u) == 0 ]] || echo sudo)
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk
fi
venv=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/bench-serve-venv
if wants baseline; then
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/serve/requirements.txt
fi

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

wait_for() { # port
    for _ in $(seq 200); do
        curl -sf "http://127.0.0.1:$1/v1/models/breast-cancer" >/dev/null && return
        sleep 0.1
    done
    echo "error: the server on port $1 did not start" >&2
    cat "$work"/*.log >&2
    exit 1
}

"$sluice" serve --bind 127.0.0.1:$sluice_port >"$work/sluice.log" 2>&1 &
pids+=($!)
wait_for $sluice_port

# Request bodies of 1, 32 and 1,024 raw rows of the table, in each format.
python3 - "$work" <<'PY'
import csv, json, sys
work = sys.argv[1]
with open("examples/breast-cancer/data/breast_cancer.csv") as f:
    rows = [[float(x) for x in r[:30]] for r in list(csv.reader(f))[1:]]
for n in (1, 32, 1024):
    chosen = [rows[i % len(rows)] for i in range(n)]
    flat = [x for r in chosen for x in r]
    bodies = {
        "row": {"instances": chosen},
        "column": {"inputs": chosen},
        "oip": {"inputs": [{"name": "features", "shape": [n, 30], "datatype": "FP64", "data": flat}]},
    }
    for name, body in bodies.items():
        with open(f"{work}/{name}-{n}.json", "w") as f:
            json.dump(body, f)
PY

run_wrk() { # url body-file seconds -> wrk's report in $work/wrk.out
    SLUICE_BENCH_BODY=$2 wrk -t2 -c"$connections" -d"$3s" --latency -s bench/serve/predict.lua "$1" >"$work/wrk.out"
    if grep -q "Non-2xx" "$work/wrk.out"; then
        echo "error: failed requests against $1:" >&2
        cat "$work/wrk.out" >&2
        exit 1
    fi
}

figures() { # -> "rps p50_ms p99_ms" of $work/wrk.out
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

if wants baseline; then
    (cd bench/serve && SLUICE_BUNDLE=$bundle exec "$venv/bin/uvicorn" baseline:app --host 127.0.0.1 \
        --port $baseline_port --workers "$cores" --log-level warning --no-access-log) >"$work/baseline.log" 2>&1 &
    pids+=($!)
    wait_for $baseline_port
    python3 - $sluice_port $baseline_port <<'PY'
import csv, json, sys, urllib.request
ports = sys.argv[1:]
with open("examples/breast-cancer/data/breast_cancer.csv") as f:
    rows = [[float(x) for x in r[:30]] for r in list(csv.reader(f))[1:]]
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
        local url="http://127.0.0.1:$1/v1/models/breast-cancer:predict"
        run_wrk "$url" "$2" 3
        run_wrk "$url" "$2" "$seconds"
        figures
    }
    echo
    echo "== baseline: sluice serve against FastAPI + scikit-learn, TF Serving's row format"
    echo "wrk -t2 -c$connections -d${seconds}s against each server in turn, on this $cores-core machine"
    echo "(the load generator shares the cores with the server it measures, alike for both;"
    echo " the baseline runs $cores uvicorn workers, sluice serve its default pool)"
    printf "\n%-10s %-22s %12s %10s %10s\n" "rows/req" "server" "requests/s" "p50 ms" "p99 ms"
    for rows in 1 32; do
        read -r s_rps s_p50 s_p99 < <(measure $sluice_port "$work/row-$rows.json")
        read -r b_rps b_p50 b_p99 < <(measure $baseline_port "$work/row-$rows.json")
        printf "%-10s %-22s %12s %10s %10s\n" "$rows" "sluice serve" "$s_rps" "$s_p50" "$s_p99"
        printf "%-10s %-22s %12s %10s %10s\n" "$rows" "FastAPI + scikit-learn" "$b_rps" "$b_p50" "$b_p99"
        python3 -c "print(f'{\"\":10} sluice / baseline: throughput {$s_rps / $b_rps:.1f}x, p99 {$s_p99 / $b_p99:.2f}x')"
    done
fi

if wants formats; then
    echo
    echo "== formats: the same rows as an OIP tensor (the baseline), TF Serving rows and columns"
    echo "wrk -t2 -c$connections -d${round_seconds}s per format, $rounds rounds with the formats interleaved; medians"
    printf "\n%-10s %-20s %12s %10s %10s %12s\n" "rows/req" "format" "requests/s" "p50 ms" "p99 ms" "OIP / this"
    for rows in 1 32 1024; do
        : >"$work/rounds-$rows"
        for format in oip row column; do
            url="http://127.0.0.1:$sluice_port/v1/models/breast-cancer:predict"
            [[ $format == oip ]] && url="http://127.0.0.1:$sluice_port/v2/models/breast-cancer/infer"
            run_wrk "$url" "$work/$format-$rows.json" 2
        done
        for _ in $(seq "$rounds"); do
            for format in oip row column; do
                url="http://127.0.0.1:$sluice_port/v1/models/breast-cancer:predict"
                [[ $format == oip ]] && url="http://127.0.0.1:$sluice_port/v2/models/breast-cancer/infer"
                run_wrk "$url" "$work/$format-$rows.json" "$round_seconds"
                echo "$format $(figures)" >>"$work/rounds-$rows"
            done
        done
        python3 - "$work/rounds-$rows" "$rows" <<'PY'
import statistics, sys
path, rows = sys.argv[1], sys.argv[2]
runs = {}
for line in open(path):
    name, rps, p50, p99 = line.split()
    runs.setdefault(name, []).append((float(rps), float(p50), float(p99)))
median = {n: [statistics.median(x[i] for x in r) for i in range(3)] for n, r in runs.items()}
labels = {"oip": "OIP tensor", "row": "TF Serving rows", "column": "TF Serving columns"}
for name in ("oip", "row", "column"):
    rps, p50, p99 = median[name]
    spread = ", ".join(f"{x[0]:.0f}" for x in runs[name])
    ratio = median["oip"][0] / rps
    print(f"{rows:<10} {labels[name]:<20} {rps:>12.0f} {p50:>10.3f} {p99:>10.3f} {ratio:>11.2f}x   rounds: {spread}")
PY
    done
fi

if wants memory; then
    kill "${pids[0]}" 2>/dev/null || true
    echo
    echo "== memory: request bodies at the 16 MiB body limit"
    python3 bench/serve/memory.py "$sluice" "$SLUICE_HOME" $((sluice_port + 2))
fi

if wants flood; then
    "$sluice" serve --bind 127.0.0.1:$((sluice_port + 3)) >"$work/flood.log" 2>&1 &
    pids+=($!)
    flood_pid=$!
    wait_for $((sluice_port + 3))
    url="http://127.0.0.1:$((sluice_port + 3))"
    # One request the model answers, so its series exist before the flood.
    curl -sf "$url/v2/models/breast-cancer/infer" -d @"$work/oip-1.json" >/dev/null
    state() { # -> "series metrics_bytes rss_kib"
        curl -sf "$url/metrics" >"$work/metrics.txt"
        echo "$(grep -vc '^#' "$work/metrics.txt") $(wc -c <"$work/metrics.txt") $(awk '/VmRSS/ {print $2}' "/proc/$flood_pid/status")"
    }
    read -r series_before bytes_before rss_before < <(state)
    wrk -t2 -c"$connections" -d"${seconds}s" -s bench/serve/flood.lua "$url" >"$work/flood.out"
    requests=$(awk '/requests in/ {print $1}' "$work/flood.out")
    read -r series_after bytes_after rss_after < <(state)
    echo
    echo "== flood: ${seconds}s of requests for random model names ($requests requests, all 404)"
    printf "%-22s %12s %12s
" "" "before" "after"
    printf "%-22s %12s %12s
" "metric series" "$series_before" "$series_after"
    printf "%-22s %12s %12s
" "/metrics bytes" "$bytes_before" "$bytes_after"
    printf "%-22s %12s %12s
" "resident memory (KiB)" "$rss_before" "$rss_after"
fi
