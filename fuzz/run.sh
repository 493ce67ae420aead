#!/usr/bin/env bash
# Fuzzes everything Sluice reads from outside, each target for a fixed time, and reports
# the executions run and the crashes found per target.
#
#   fuzz/run.sh                 every target, 60 s each
#   fuzz/run.sh 600 kfp_ir      one target, 10 minutes
#
# Targets (fuzz/fuzz_targets/, entry points in runtime/src/fuzzing.rs): pipeline_yaml,
# component_yaml, kfp_ir, oip_request, tfs_request, oci_manifest, bundle. Seed corpora
# come from the repository: the example and test pipelines and components, the KFP test
# pipelines compiled by the real KFP compiler, the request bodies in fuzz/seeds, and a
# bundle written by `sluice bundle`. What a target finds grows fuzz/corpus/<target>;
# inputs that crash land in fuzz/artifacts/<target>/ (reproduce one with
# `cargo +nightly fuzz run <target> <file>`), and each becomes a unit test beside the
# code it broke. Needs the nightly toolchain and cargo-fuzz; both are installed here.
set -euo pipefail
cd "$(dirname "$0")"
root=$(cd .. && pwd)

seconds=${1:-60}
shift || true
all=(pipeline_yaml component_yaml kfp_ir oip_request tfs_request oci_manifest bundle)
if [[ $# -gt 0 ]]; then targets=("$@"); else targets=("${all[@]}"); fi

rustup toolchain list | grep -q '^nightly' ||
    rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Seed corpora, refreshed from the repository each time (the corpus keeps what it found).
seed() {
    local target=$1
    shift
    mkdir -p "corpus/$target"
    for file in "$@"; do
        [[ -f $file ]] && cp "$file" "corpus/$target/seed-$(sha256sum "$file" | cut -c1-16)"
    done
    return 0
}
shopt -s nullglob
seed pipeline_yaml "$root"/examples/*/pipeline.yaml "$root"/tests/cases/*/pipeline.yaml
seed component_yaml "$root"/sample-components/*/component.yaml \
    "$root"/tests/cases/components/*.yaml "$root"/tests/kfp/components/*.yaml
seed oip_request seeds/oip_request/*
seed tfs_request seeds/tfs_request/*
seed oci_manifest seeds/oci_manifest/*

kfp_python=${SLUICE_TEST_KFP_PYTHON:-${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kfp-venv/bin/python}
if [[ " ${targets[*]} " == *" kfp_ir "* ]]; then
    if [[ ! -x $kfp_python ]]; then
        python3 -m venv "$(dirname "$(dirname "$kfp_python")")"
    fi
    "$kfp_python" -m pip install --quiet --disable-pip-version-check \
        -r "$root/tests/kfp/requirements.txt"
    compiled=$(mktemp -d)
    "$kfp_python" "$root/tests/kfp/compile.py" "$compiled" >/dev/null
    seed kfp_ir "$compiled"/*.yaml
    rm -rf "$compiled"
fi

if [[ " ${targets[*]} " == *" bundle "* ]]; then
    # A small bundle: a pipeline with one container component (no wasm, no images).
    cargo build --quiet --release --locked --manifest-path "$root/Cargo.toml" -p sluice-cli
    sluice=${CARGO_TARGET_DIR:-$root/target}/release/sluice
    work=$(mktemp -d)
    printf 'name: c\ninputs:\n- {name: n, type: Integer}\noutputs:\n- {name: out}\nimplementation:\n  container: {image: "busybox:1", command: [sh, -c, "echo $0 > $1", {inputValue: n}, {outputPath: out}]}\n' \
        >"$work/c.yaml"
    printf 'name: p\nparams:\n  n: {type: Integer, default: 3}\ntasks:\n  a: {component: c.yaml, inputs: {n: {param: n}}}\n' \
        >"$work/p.yaml"
    SLUICE_HOME=$work/home "$sluice" bundle "$work/p.yaml" -o "$work/seed.bundle" >/dev/null
    seed bundle "$work/seed.bundle"
    rm -rf "$work"
fi

report=()
for target in "${targets[@]}"; do
    log=$(mktemp)
    mkdir -p "artifacts/$target"
    before=$(find "artifacts/$target" -type f | wc -l)
    echo "== $target: $seconds s" >&2
    # -rss_limit_mb: more than any target may hold is a finding; -timeout: one input
    # taking 10 s is a hang.
    cargo +nightly fuzz run --release "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=1048576 \
        -print_final_stats=1 >"$log" 2>&1 || true
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -oE '[0-9]+$' || echo 0)
    after=$(find "artifacts/$target" -type f | wc -l)
    corpus=$(find "corpus/$target" -type f | wc -l)
    report+=("$(printf '%-16s %12s %8s %8s' "$target" "${runs:-0}" "$((after - before))" "$corpus")")
    if ((after > before)); then
        echo "   new findings in fuzz/artifacts/$target:" >&2
        grep -E '^(==[0-9]+==|thread|SUMMARY|artifact_prefix|Test unit written)' "$log" | head -20 >&2 || true
    fi
    rm -f "$log"
done

printf '%-16s %12s %8s %8s\n' target executions crashes corpus
printf '%s\n' "${report[@]}"
found=$(find artifacts -type f | wc -l)
((found == 0)) || echo "fuzz/artifacts holds $found input(s) that crashed a target" >&2
