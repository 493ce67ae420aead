#!/usr/bin/env bash
# Runs every test: the workspace's unit and integration tests (which build the sample
# components for wasm32-wasip2 first, and run container steps in the local Docker Engine)
# and the sample components' own unit tests. A Docker Engine that cannot be reached fails
# the run, as does a Python without the stock serving clients or the KFP SDK; the local
# OCI registries the registry tests push to (scripts/registries.sh), the Slurm cluster
# the Slurm backend's tests submit to (scripts/slurm.sh) and the headless Chromium the web
# UI's tests drive (scripts/browser.sh) are started here.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/setup.sh
# The step image of exported workflows from a dev build, which compiles in a fraction of a
# release build's time (its Cranelift is optimized either way).
SLUICE_STEP_PROFILE=dev scripts/build-images.sh

# Stock clients of the serving protocols (Triton's Python client, requests), in a
# virtualenv outside the clone.
venv=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/test-venv
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    sudo=$([[ $(id -u) == 0 ]] || echo sudo)
    $sudo apt-get update -qq && $sudo apt-get install -y -qq python3-venv
fi
[[ -x $venv/bin/python ]] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/clients/requirements.txt
"$venv/bin/pip" install --quiet --disable-pip-version-check --no-deps -r tests/ui/requirements.txt
export SLUICE_TEST_PYTHON=$venv/bin/python

# The KFP SDK, which compiles the KFP test pipelines (tests/kfp) and runs their
# lightweight Python steps under `--runner process`; a virtualenv of its own.
kfp_venv=${XDG_CACHE_HOME:-$HOME/.cache}/sluice/kfp-venv
[[ -x $kfp_venv/bin/python ]] || python3 -m venv "$kfp_venv"
"$kfp_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/kfp/requirements.txt
export SLUICE_TEST_KFP_PYTHON=$kfp_venv/bin/python
# The same Python and packages as an image built FROM scratch, so the tests also run
# lightweight KFP components in Docker (no python image can be pulled here).
image_context=$(mktemp -d)
"$kfp_venv/bin/python" tests/kfp/python_image.py "$image_context/image" >/dev/null
docker build --quiet --tag sluice-test/kfp-python:3.11 "$image_context/image" >/dev/null 2>&1 ||
    docker build --tag sluice-test/kfp-python:3.11 "$image_context/image"
rm -rf "$image_context"

# Two local OCI registries (anonymous, and basic auth) on 127.0.0.1, for the registry
# tests, and a Slurm cluster of two nodes, for the Slurm backend's tests.
trap 'scripts/registries.sh stop; scripts/slurm.sh stop; scripts/browser.sh stop' EXIT
eval "$(scripts/registries.sh start)"
# Headless Chromium behind chromedriver, for the web UI's browser tests.
browser=$(scripts/browser.sh start)
eval "$browser"
# (An assignment, so that a cluster that does not start fails the run.)
slurm=$(scripts/slurm.sh start 2)
eval "$slurm"
export SLUICE_TEST_SLURM_CONF=$SLURM_CONF

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
