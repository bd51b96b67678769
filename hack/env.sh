# Shared settings for every hack/ script: where tools and builds are cached.
# Sourced, not executed. Everything lives outside the clone so that a fresh
# clone (CI) reuses what an earlier run built on this machine.
export HEXA_CACHE="${HEXA_CACHE:-$HOME/.cache/hexabase}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HEXA_CACHE/target}"
export HEXA_TOOLS="$HEXA_CACHE/tools"
export PATH="$HEXA_TOOLS/bin:$HEXA_TOOLS/node_modules/.bin:$HOME/.cargo/bin:/usr/local/go/bin:$PATH"
mkdir -p "$HEXA_CACHE" "$HEXA_TOOLS/bin"

# step "message": a visible progress line for long set-up work. Under `make run` and `make test`
# (which set HEXA_T0) it starts with the time since the command began, so a long first run
# shows where it is; the long steps name their own first-time estimate.
step() {
  if [[ -n "${HEXA_T0:-}" ]]; then
    local s=$(( $(date +%s) - HEXA_T0 ))
    printf '\033[1;34m==>\033[0m [%d:%02d] %s\n' $(( s / 60 )) $(( s % 60 )) "$*" >&2
  else
    printf '\033[1;34m==>\033[0m %s\n' "$*" >&2
  fi
}

# cargo_as_leptos <cargo args>: cargo with cargo-leptos's own environment (its build of the
# server sets these): anything else changes the leptos crates' fingerprints and rebuilds them,
# here and again in the next `cargo leptos build`. For the other binaries of the server package.
cargo_as_leptos() {
  LEPTOS_OUTPUT_NAME=hexabase LEPTOS_SITE_ROOT=target/site LEPTOS_SITE_PKG_DIR=pkg LEPTOS_SITE_ADDR=127.0.0.1:3000 \
    LEPTOS_RELOAD_PORT=3001 LEPTOS_LIB_DIR=frontend LEPTOS_BIN_DIR=server LEPTOS_JS_MINIFY=true LEPTOS_HASH_FILES=false \
    cargo "$@"
}

# free_port: a TCP port on 127.0.0.1 that nothing listens on now (the kernel's pick).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The server's build script compiles the stylesheet from app/src and cargo remembers the
# absolute paths it watched. A target dir shared by clones at different paths (CI clones
# anew each time) would otherwise keep the last clone's stylesheet while that clone's files
# still exist unchanged. So when the checkout moved, the server's build outputs are
# forgotten (only the server crate rebuilds; its sources are new files anyway).
forget_moved_checkout() {
  local root mark
  root="$(pwd -P)"
  mark="$CARGO_TARGET_DIR/.hexabase-source-root"
  if [[ "$(cat "$mark" 2>/dev/null)" != "$root" ]]; then
    cargo clean -q -p server 2>/dev/null || true
    cargo clean -q -p server --release 2>/dev/null || true
    mkdir -p "$CARGO_TARGET_DIR" && echo "$root" >"$mark"
  fi
}

# A fresh cluster in $HEXA_CLUSTER_DIR for a suite (run from the repository root): whatever an
# earlier run left is purged, the demo is seeded and the platform's CRDs are installed;
# KUBECONFIG and KUBECTL name it afterwards.
fresh_cluster() {
  bash hack/cluster/down.sh --purge >/dev/null 2>&1 || true
  bash hack/cluster/ready.sh >/dev/null
  . "$HEXA_CLUSTER_DIR/env"
  export KUBECONFIG KUBECTL
  # The cluster's Prometheus (scraping the emulated kubelets), when it runs one.
  [ -z "${PROMETHEUS_URL:-}" ] || export PROMETHEUS_URL
}
