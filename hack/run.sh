#!/usr/bin/env bash
# `make run`: installs what is missing, starts the local cluster (unless KUBECONFIG points at
# another one), builds, and serves the dashboard with the demo account.
#
# The local cluster (its Go build on a first run, then start, seed and custom resources) and
# the Rust side (tools, then the server and wasm build) do not depend on each other, so the
# cluster is prepared in the background while cargo works: on a first run the downloads of one
# overlap the other's compiling, and on a warm run the cluster starts while cargo checks that
# nothing changed. hack/first-page.sh measures the whole thing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
cd "$here/.."
export HEXA_T0="${HEXA_T0:-$(date +%s)}"
forget_moved_checkout

bash hack/tools.sh --system
cluster_pid=""
cluster_log=""
if [ -z "${KUBECONFIG:-}" ]; then
  cluster_dir="${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}"
  mkdir -p "$cluster_dir/logs"
  cluster_log="$cluster_dir/logs/make-run-cluster.log"
  step "local cluster: preparing in the background (first time: builds the control plane and Karpenter, ~12 min on 2 cores; log: $cluster_log)"
  # The local cluster runs Karpenter (hack/karpenter): dedicated nodes are NodeClaims it launches.
  # In a session of its own, so that leaving early (Ctrl-C, a failed build) stops all of it.
  setsid bash hack/cluster/ready.sh >"$cluster_log" 2>&1 &
  cluster_pid=$!
  trap '[ -n "$cluster_pid" ] && kill -- "-$cluster_pid" 2>/dev/null; true' EXIT
fi

bash hack/tools.sh
bash hack/build.sh

if [ -n "$cluster_pid" ]; then
  if kill -0 "$cluster_pid" 2>/dev/null; then
    step "waiting for the local cluster (its progress follows)"
    tail -n +1 -f --pid="$cluster_pid" "$cluster_log" >&2 &
    tail_pid=$!
  else
    # Done while cargo worked: its steps (each with its own time) for the record.
    grep -a '==>' "$cluster_log" >&2 || true
  fi
  if ! wait "$cluster_pid"; then
    cluster_pid=""
    echo "the local cluster did not start; the end of $cluster_log:" >&2
    tail -n 30 "$cluster_log" >&2
    exit 1
  fi
  cluster_pid=""
  [ -n "${tail_pid:-}" ] && wait "$tail_pid" 2>/dev/null || true
  step "local cluster ready"
  prometheus_url="${PROMETHEUS_URL:-}"
  . "$cluster_dir/env"
  export KUBECONFIG
  # Usage charts and the latency guard read the local cluster's Prometheus, unless the
  # caller named one.
  PROMETHEUS_URL="${prometheus_url:-${PROMETHEUS_URL:-}}"
  [ -z "$PROMETHEUS_URL" ] || export PROMETHEUS_URL
  export HEXA_NODE_PROVIDER="${HEXA_NODE_PROVIDER:-karpenter}"
else
  step "using the cluster of KUBECONFIG=$KUBECONFIG"
  bash hack/crds.sh
fi
export HEXA_NODE_PROVIDER="${HEXA_NODE_PROVIDER:-kwok}"

mkdir -p "$HEXA_CACHE/data"
export DATABASE_URL="${DATABASE_URL:-sqlite://$HEXA_CACHE/data/hexabase.db?mode=rwc}"
export LEPTOS_SITE_ROOT="$PWD/target/site"
export LISTEN_ADDR="${LISTEN_ADDR:-127.0.0.1:3000}"
cat <<MSG

  Hexabase.AI is starting on  http://$LISTEN_ADDR
  Sign in as                  dev@example.com / hexabase-demo
  Cluster                     KUBECONFIG=$KUBECONFIG
  Dedicated nodes from        $HEXA_NODE_PROVIDER (HEXA_NODE_PROVIDER=karpenter|kwok)
  Stop with Ctrl-C; stop the cluster with 'make cluster-down'.

MSG
# The demo's web app serves no real traffic (KWOK pods): a simulator, not part of the product,
# exports its request latencies for Prometheus (README, "The demo's metrics and traffic"). It ends with the
# server (it watches its parent, which the exec below makes the server).
if [ -n "${SIMULATOR_ADDR:-}" ]; then
  step "demo traffic simulator on http://$SIMULATOR_ADDR (make slowdown MS=300 slows the web app down)"
  "$CARGO_TARGET_DIR/release/traffic-simulator" --listen "$SIMULATOR_ADDR" >"$HEXA_CACHE/traffic-simulator.log" 2>&1 &
fi
exec "$CARGO_TARGET_DIR/release/server" --seed-demo
