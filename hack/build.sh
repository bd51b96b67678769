#!/usr/bin/env bash
# Builds the server and the hydrated wasm bundle (release) with cargo-leptos.
#
# cargo-leptos runs wasm-bindgen, wasm-opt and its JS minifier again on every build, even when
# the wasm did not change: a minute here, most of a warm `make run`. So the sources each half
# is built from are fingerprinted (file contents, the checkout's path, the toolchain): nothing
# to do when neither changed, the server alone when only it did. Cargo still decides what to
# recompile inside a build; this only skips cargo-leptos's steps that would redo the same work.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
cd "$here/.."
forget_moved_checkout

site="$PWD/target/site"
server_bin="$CARGO_TARGET_DIR/release/server"
simulator_bin="$CARGO_TARGET_DIR/release/traffic-simulator"
front_stamp="$site/.built-from"
server_stamp="$CARGO_TARGET_DIR/release/.server-built-from"

# fingerprint <pathspec...>: one hash of the named files' contents (tracked and new, not
# ignored), the checkout's path and rustc's version; empty when this is not a git checkout.
fingerprint() {
  git rev-parse --git-dir >/dev/null 2>&1 || return 0
  { pwd -P; rustc --version
    git ls-files -z -co --exclude-standard -- "$@" | xargs -0 -r sha256sum 2>/dev/null || true
  } | sha256sum | cut -d' ' -f1
}
# What the wasm is built from, and what the server is built from (everything the binary may
# include; the scripts, tests and docs are not in it).
front="$(fingerprint app frontend style public Cargo.toml Cargo.lock)"
whole="$(fingerprint . ':!end2end' ':!docs' ':!hack' ':!.ci')"
same() { [[ -n "$2" && -f "$1" && "$(cat "$1")" == "$2" ]]; }

if same "$front_stamp" "$front" && [[ -f "$site/pkg/hexabase.wasm" ]]; then
  if same "$server_stamp" "$whole" && [[ -x "$server_bin" && -x "$simulator_bin" ]]; then
    step "build: up to date (the sources are those of the last build)"
    exit 0
  fi
  step "cargo leptos build --release --server-only (the wasm is up to date)"
  cargo leptos build --release --server-only
else
  step "cargo leptos build --release (first time: ~12 min on 2 cores; then the changed crates)"
  rm -f "$front_stamp"
  cargo leptos build --release
  [[ -n "$front" ]] && echo "$front" >"$front_stamp"
fi
# The demo's traffic simulator (`make run` starts it; not part of the product): the server's
# library as just built, so only its own small binary compiles and links.
step "cargo build --bin traffic-simulator (the demo's simulated traffic)"
cargo_as_leptos build --package=server --bin=traffic-simulator --no-default-features --release
[[ -n "$whole" ]] && echo "$whole" >"$server_stamp"
true
