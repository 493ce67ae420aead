#!/usr/bin/env bash
# Builds the container images of the sample components that have one (the trainer, and the
# probe the container tests use): static x86_64-unknown-linux-musl binaries in images built
# FROM scratch by the local Docker Engine, so nothing is pulled from a registry. All of
# them, or the ones named (`scripts/build-images.sh train`).
set -euo pipefail
cd "$(dirname "$0")/.."
images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=(train probe)
packages=()
for name in "${images[@]}"; do packages+=(-p "$name"); done

if ! docker info >/dev/null 2>&1; then
    echo "error: the Docker Engine at ${DOCKER_HOST:-unix:///var/run/docker.sock} is not reachable; start the Docker daemon" >&2
    exit 1
fi
env -u CARGO_TARGET_DIR -u RUSTFLAGS -u CARGO_BUILD_TARGET \
    cargo build --release --locked --quiet --target x86_64-unknown-linux-musl "${packages[@]}" \
    --manifest-path sample-components/Cargo.toml --target-dir sample-components/target
version=$(sed -n 's/^version = "\(.*\)"/\1/p' sample-components/Cargo.toml | head -n 1)
for name in "${images[@]}"; do
    context=$(mktemp -d)
    trap 'rm -rf "$context"' EXIT
    cp "sample-components/target/x86_64-unknown-linux-musl/release/$name" "$context/$name"
    cp "sample-components/$name/Dockerfile" "$context/Dockerfile"
    if ! output=$(docker build --quiet --tag "sluice-samples/$name:$version" "$context" 2>&1); then
        echo "$output" >&2
        exit 1
    fi
    rm -rf "$context"
    trap - EXIT
    echo "built sluice-samples/$name:$version" >&2
done
