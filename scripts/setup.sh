#!/usr/bin/env bash
# Installs what building and testing Sluice needs on a fresh Debian machine with rustup:
# the wasm32-wasip2 and x86_64-unknown-linux-musl targets, or only the targets named
# (`scripts/setup.sh wasm32-wasip2`). Safe to run again.
set -euo pipefail

if ! command -v rustup >/dev/null; then
    echo "error: rustup is needed (https://rustup.rs)" >&2
    exit 1
fi
installed=$(rustup target list --installed)
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(wasm32-wasip2 x86_64-unknown-linux-musl)
for target in "${targets[@]}"; do
    if ! grep -qx "$target" <<<"$installed"; then
        rustup target add "$target"
    fi
done
