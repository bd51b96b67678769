#!/usr/bin/env bash
# Stop the karpenter-kwok process started by hack/karpenter/up.sh for this cluster: exactly the
# PID in $HEXA_CLUSTER_DIR/run/karpenter.pid, after checking it is our binary and that its
# environment names this cluster's kubeconfig. Idempotent. Leaves the CRDs, the KWOKNodeClass
# and any NodeClaims/Nodes in the cluster (they carry Karpenter's finalizers: delete NodeClaims
# while Karpenter still runs, or stop the whole cluster).
# Env: HEXA_CACHE (hack/env.sh), HEXA_CLUSTER_DIR (default $HEXA_CACHE/cluster).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"

D="${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}"

if [[ ! -f "$D/run/karpenter.pid" ]]; then
  step "karpenter: nothing to stop in ${D}"
  exit 0
fi
D="$(cd "$D" && pwd)"
exec 7>"$D/run/.karpenter.lock"
flock -w 300 7 || { echo "karpenter/down.sh: another karpenter up/down holds $D/run/.karpenter.lock" >&2; exit 1; }

PF="$D/run/karpenter.pid"
KUBECONFIG_PATH="$D/kubeconfig"
[[ -f "$D/env" ]] && KUBECONFIG_PATH="$(sed -n 's/^KUBECONFIG=//p' "$D/env")"

ours() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  [[ "$(basename "$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1)")" == karpenter-kwok ]] || return 1
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "KUBECONFIG=$KUBECONFIG_PATH"
}

[[ -f "$PF" ]] || { step "karpenter: nothing to stop in $D"; exit 0; }
pid="$(cat "$PF")"
if ours "$pid"; then
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do # up to 10s, then SIGKILL
    ours "$pid" || break
    sleep 0.1
  done
  if ours "$pid"; then
    step "karpenter: pid $pid ignored SIGTERM; killing"
    kill -KILL "$pid" 2>/dev/null || true
    sleep 0.2
  fi
  step "karpenter: stopped (pid $pid)"
elif [[ "$pid" =~ ^[0-9]+$ && -d "/proc/$pid" ]]; then
  step "karpenter: pid $pid in $PF is not our karpenter (left alone)"
else
  step "karpenter: not running in $D"
fi
rm -f "$PF"
