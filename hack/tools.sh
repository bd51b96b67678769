#!/usr/bin/env bash
# Installs every tool the build and the tests need, idempotently.
# A second run finds everything in place and returns in about a second.
#   --system   only the Debian packages (what the local cluster's scripts need too: openssl,
#              curl), so that `make run` can start on the cluster while cargo installs the rest.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"

# --- Debian packages: the browser for Playwright, Prometheus for the latency guard.
need_apt=()
command -v chromium >/dev/null || need_apt+=(chromium)
command -v prometheus >/dev/null || [ -x /usr/bin/prometheus ] || need_apt+=(prometheus)
command -v initdb >/dev/null || [ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql)
command -v openssl >/dev/null || need_apt+=(openssl)
command -v curl >/dev/null || need_apt+=(curl)
if [ ${#need_apt[@]} -gt 0 ]; then
  step "apt-get install ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
[[ "${1:-}" == --system ]] && exit 0

# --- Rust: the wasm target, cargo-leptos and wasm-bindgen (pinned, see DESIGN.md).
# Their own release profiles are kept: built without LTO and at opt-level 1, cargo-leptos still
# took 17.8 min here (its ~650 crates are the cost, not the profile), so that bought nothing.
if ! rustup target list --installed | grep -q wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if ! cargo-leptos --version 2>/dev/null | grep -q '0.3.5'; then
  step "cargo install cargo-leptos 0.3.5 (first time only: ~18 min on 2 cores)"
  cargo install cargo-leptos --version 0.3.5 --locked --root "$HEXA_TOOLS"
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q '0.2.130'; then
  step "cargo install wasm-bindgen-cli 0.2.130 (first time only: ~3 min on 2 cores)"
  # Not --locked: the locked build wants a webpki-roots release the registry lacks.
  cargo install wasm-bindgen-cli --version 0.2.130 --root "$HEXA_TOOLS"
fi

# --- npm: wasm-opt from binaryen 132 (Debian's 108 silently breaks hydration),
# and Playwright's test runner (it drives Debian's chromium, never a downloaded one).
if ! [ -x "$HEXA_TOOLS/node_modules/.bin/wasm-opt" ]; then
  step "npm install binaryen@132"
  (cd "$HEXA_TOOLS" && npm install --no-audit --no-fund --silent binaryen@132)
fi
