#!/usr/bin/env bash
# The Slurm benchmark (run by hand, not a test): no-op wasm graphs as Slurm jobs on the
# test cluster (scripts/slurm.sh, two nodes on this machine), against the same chain run
# locally and against Slurm's own latency for a no-op job, in the same run (the `slurm`
# section of sluice-bench).
#
#   bench/slurm/run.sh
#
# Starts the test cluster when none runs (and leaves it running); builds `sluice` and the
# benchmarks in release mode.
set -euo pipefail
cd "$(dirname "$0")/../.."

scripts/setup.sh
slurm=$(scripts/slurm.sh start 2)
eval "$slurm"
cargo build --release --locked --quiet -p sluice-cli -p sluice-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
SLUICE_BIN="$target_dir/release/sluice" "$target_dir/release/sluice-bench" slurm
