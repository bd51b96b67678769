#!/usr/bin/env bash
# `make bench`: the dashboard at platform scale (server/examples/scale_bench.rs). Brings up a
# control plane of its own (cluster-bench), seeds it at scale, runs the release server twice
# (watch caches, and direct reads) side by side, writes docs/BENCHMARKS.md, and stops the
# cluster it started. Scale: BENCH_NODES (2000), BENCH_PODS (20000), BENCH_WORKLOADS (1000),
# BENCH_STREAMS (1000). BENCH_REUSE_CLUSTER=1 starts the last run's cluster again instead
# of seeding a new one.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
cd "$here/.."
forget_moved_checkout

export HEXA_CLUSTER_DIR="$HEXA_CACHE/cluster-bench"
# No Prometheus (scraping 2,000 emulated kubelets every 5 s) and no Karpenter (the bench's
# orders use the kwok provider; Karpenter watching 2,000 nodes took half a core throughout):
# load the measurements must not carry.
export HEXA_PROMETHEUS=0 HEXA_KARPENTER=0
trap 'bash hack/cluster/down.sh >/dev/null 2>&1 || true' EXIT
if [[ -n "${BENCH_REUSE_CLUSTER:-}" ]]; then
  # The scale cluster of the last run, seeded already (its data survives down.sh).
  export BENCH_SEED=0
  bash hack/cluster/up.sh
  . "$HEXA_CLUSTER_DIR/env"
  export KUBECONFIG KUBECTL
else
  fresh_cluster
fi

bash hack/build.sh
step "building the benchmark (release)"
cargo_as_leptos build --package=server --example=scale_bench --no-default-features --release
# A thousand live streams are a thousand connections on each side.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
step "benchmark: seeding the scale cluster and measuring (several minutes)"
mkdir -p docs
BENCH_SERVER="$CARGO_TARGET_DIR/release/server" LEPTOS_SITE_ROOT="$PWD/target/site" "$CARGO_TARGET_DIR/release/examples/scale_bench"
