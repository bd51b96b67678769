#!/usr/bin/env bash
# `make run`: installs what is missing, starts the local cluster (unless KUBECONFIG points at
# another one), builds, and serves the dashboard with the demo account.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
cd "$here/.."
forget_moved_checkout

bash hack/tools.sh
if [ -z "${KUBECONFIG:-}" ]; then
  # The local cluster runs Karpenter (hack/karpenter): dedicated nodes are NodeClaims it launches.
  bash hack/cluster/up.sh
  bash hack/cluster/seed.sh
  . "${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}/env"
  export KUBECONFIG
  export HEXA_NODE_PROVIDER="${HEXA_NODE_PROVIDER:-karpenter}"
else
  step "using the cluster of KUBECONFIG=$KUBECONFIG"
fi
export HEXA_NODE_PROVIDER="${HEXA_NODE_PROVIDER:-kwok}"
bash hack/crds.sh
bash hack/build.sh

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
exec "$CARGO_TARGET_DIR/release/server" --seed-demo
