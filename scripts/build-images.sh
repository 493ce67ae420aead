#!/usr/bin/env bash
# Builds container images from static x86_64-unknown-linux-musl binaries, FROM scratch, with
# the local Docker Engine, so nothing is pulled from a registry: `sluice-step`, the step image
# of exported Argo Workflows (`sluice` itself), and the images of the sample components that
# have one (the trainer, and the probe the container tests use). All of them, or the ones
# named (`scripts/build-images.sh train`). `sluice-step` is a release build unless
# SLUICE_STEP_PROFILE names another cargo profile (the tests use `dev`, which compiles faster).
set -euo pipefail
cd "$(dirname "$0")/.."
images=("$@")
[[ ${#images[@]} -gt 0 ]] || images=(sluice-step train probe)

if ! docker info >/dev/null 2>&1; then
    echo "error: the Docker Engine at ${DOCKER_HOST:-unix:///var/run/docker.sock} is not reachable; start the Docker daemon" >&2
    exit 1
fi

# Builds an image from a folder holding a Dockerfile and the files named.
build() { # tag dockerfile file...
    local context
    context=$(mktemp -d)
    cp "${@:3}" "$context/"
    cp "$2" "$context/Dockerfile"
    if ! output=$(docker build --quiet --tag "$1" "$context" 2>&1); then
        echo "$output" >&2
        rm -rf "$context"
        exit 1
    fi
    rm -rf "$context"
    echo "built $1" >&2
}

packages=()
samples=()
for name in "${images[@]}"; do
    if [[ $name == sluice-step ]]; then
        # C dependencies (SQLite) are compiled for musl by musl-gcc; the image carries
        # this machine's CA certificates, for registries over HTTPS.
        certs=/etc/ssl/certs/ca-certificates.crt
        if ! command -v musl-gcc >/dev/null || [[ ! -f $certs ]]; then
            sudo=$([[ $(id -u) == 0 ]] || echo sudo)
            $sudo apt-get update -qq &&
                $sudo apt-get install -y -qq musl-tools ca-certificates >/dev/null
        fi
        profile=${SLUICE_STEP_PROFILE:-release}
        target_dir=${CARGO_TARGET_DIR:-target}
        cargo build --locked --quiet --profile "$profile" --target x86_64-unknown-linux-musl -p sluice-cli
        folder=$profile
        [[ $profile == dev ]] && folder=debug
        version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
        build "sluice-step:$version" images/sluice-step/Dockerfile \
            "$target_dir/x86_64-unknown-linux-musl/$folder/sluice" "$certs"
    else
        packages+=(-p "$name")
        samples+=("$name")
    fi
done
[[ ${#samples[@]} -gt 0 ]] || exit 0
env -u CARGO_TARGET_DIR -u RUSTFLAGS -u CARGO_BUILD_TARGET \
    cargo build --release --locked --quiet --target x86_64-unknown-linux-musl "${packages[@]}" \
    --manifest-path sample-components/Cargo.toml --target-dir sample-components/target
version=$(sed -n 's/^version = "\(.*\)"/\1/p' sample-components/Cargo.toml | head -n 1)
for name in "${samples[@]}"; do
    build "sluice-samples/$name:$version" "sample-components/$name/Dockerfile" \
        "sample-components/target/x86_64-unknown-linux-musl/release/$name"
done
