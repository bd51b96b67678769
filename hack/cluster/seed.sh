#!/usr/bin/env bash
# Seed the local cluster with a demo platform (idempotent): a shared pool of three KWOK
# nodes, workspaces acme-production (Pro) and acme-sandbox (Hobby) with quotas and apps.
# Waits until every node and pod is Ready.
#
# Needs a running cluster (hack/cluster/up.sh). Env: HEXA_CACHE, HEXA_CLUSTER_DIR (as up.sh),
# KUBECONFIG (default: the cluster's), HEXA_SEED_TIMEOUT (seconds per wait, default 180).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"

D="${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}"
TIMEOUT="${HEXA_SEED_TIMEOUT:-180}"
if [[ ! -f "$D/env" ]]; then
  echo "seed.sh: no cluster in $D; run hack/cluster/up.sh first" >&2
  exit 1
fi
KCTL="$(sed -n 's/^KUBECTL=//p' "$D/env")"
export KUBECONFIG="${KUBECONFIG:-$(sed -n 's/^KUBECONFIG=//p' "$D/env")}"
k() { "$KCTL" "$@"; }

T0=$(date +%s)
step "seed: applying $HERE/seed/*.yaml"
# The platform's own objects first: the quotas' scope names the dedicated priority class.
k apply --server-side --force-conflicts --field-manager=hexa-seed -f "$HERE/../../deploy/platform/" >/dev/null
if ! k apply --server-side --force-conflicts --field-manager=hexa-seed -f "$HERE/seed/" >/dev/null 2>"$D/logs/seed-apply.err"; then
  # A quota's scope cannot change in place: a cluster seeded before the shared-pool scope
  # existed gets its quotas replaced once.
  if grep -q "field is immutable" "$D/logs/seed-apply.err"; then
    step "seed: replacing the workspace quotas (their scope changed)"
    for ns in acme-production acme-sandbox globex-prod; do k delete resourcequota workspace-quota -n "$ns" --ignore-not-found >/dev/null; done
    k apply --server-side --force-conflicts --field-manager=hexa-seed -f "$HERE/seed/" >/dev/null
  else
    cat "$D/logs/seed-apply.err" >&2
    exit 1
  fi
fi

step "seed: waiting for nodes shared-pool-1..3 to be Ready (KWOK)"
k wait --for=condition=Ready --timeout="${TIMEOUT}s" node/shared-pool-1 node/shared-pool-2 node/shared-pool-3 >/dev/null

for w in acme-production/deployment/web acme-production/deployment/api acme-production/deployment/worker acme-production/deployment/reports \
         acme-production/statefulset/cache acme-sandbox/deployment/preview globex-prod/deployment/storefront; do
  ns="${w%%/*}"; obj="${w#*/}"
  step "seed: waiting for $ns $obj"
  k rollout status -n "$ns" "$obj" --timeout="${TIMEOUT}s" >/dev/null
done
for ns in acme-production acme-sandbox globex-prod; do
  k wait --for=condition=Ready pod --all -n "$ns" --timeout="${TIMEOUT}s" >/dev/null
done

step "seed: done in $(( $(date +%s) - T0 ))s"
k get nodes -o wide
k get pods -n acme-production -o wide
k get pods -n acme-sandbox -o wide
k get pods -n globex-prod -o wide
k get resourcequota -A
