#!/usr/bin/env bash
# The scale benchmark (run by hand, not a test): `sluice run` end to end on no-op chains
# and fan-outs of 100, 1,000 and 10,000 wasm tasks, against Dask's threaded scheduler on
# the same graph shapes, in the same run (the `scale` section of sluice-bench).
#
#   bench/scale/run.sh
#
# Installs Debian's `time` (for peak memory) and Dask (PyPI, in a virtualenv outside the
# clone) when missing; builds `sluice` and the no-op component. The runs' homes are under
# the target folder, on disk.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [[ ! -x /usr/bin/time ]]; then
    sudo=$([[ $(id -u) == 0 ]] || echo sudo)
    $sudo apt-get update -qq && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq time
fi
venv=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/bench-scale-venv
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r bench/scale/requirements.txt

scripts/setup.sh
cargo build --release --locked --quiet -p sluice-cli -p sluice-bench
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
SLUICE_BIN="$target_dir/release/sluice" SLUICE_BENCH_DASK_PYTHON="$venv/bin/python" \
    "$target_dir/release/sluice-bench" scale
