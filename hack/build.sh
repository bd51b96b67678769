#!/usr/bin/env bash
# Builds the server and the hydrated wasm bundle (release) with cargo-leptos.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
cd "$here/.."
forget_moved_checkout
step "cargo leptos build --release (first time: several minutes)"
cargo leptos build --release
