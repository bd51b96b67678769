#!/usr/bin/env bash
# Start (or confirm) the real Karpenter controller (kwok cloud provider) against a running local
# cluster (hack/cluster/up.sh): build it if needed (hack/karpenter/build.sh), install its CRDs
# (server-side apply, then wait until each resource answers a LIST), create the KWOKNodeClasses
# (`default` and one per region with capacity), and run karpenter-kwok as a background process
# configured by env vars only. hack/cluster/up.sh calls it once the cluster is up.
# Nodes it creates carry kwok.x-k8s.io/node=fake, so the cluster's KWOK makes them Ready.
#
# Idempotent: a karpenter already running for this cluster with the same settings and healthy is
# left alone; with different settings (feature gates, instance types file) it is restarted.
# State: $HEXA_CLUSTER_DIR/run/karpenter.{pid,ports,config}, log $HEXA_CLUSTER_DIR/logs/karpenter.log.
#
# Env: HEXA_CACHE (hack/env.sh), HEXA_CLUSTER_DIR (default $HEXA_CACHE/cluster; its `env` file,
#      written by hack/cluster/up.sh, gives KUBECONFIG and KUBECTL),
#      KARPENTER_VERSION (default v1.14.1), K8S_VERSION (kubectl fallback, default v1.37.2),
#      HEXA_KARPENTER_INSTANCE_TYPES (default hack/karpenter/instance-types.json),
#      HEXA_KARPENTER_FEATURE_GATES (FEATURE_GATES, default Karpenter's own; e.g.
#      StaticCapacity=true for static NodePools), HEXA_KARPENTER_LOG_LEVEL (default info),
#      HEXA_KARPENTER_NODE_CLASSES (KWOKNodeClasses to create; default "default" plus one per
#      region with an available offering in the instance types file),
#      HEXA_KARPENTER_TIMEOUT (seconds to wait for CRDs and health, default 120).
# Prints the health and metrics endpoints; the same go to $HEXA_CLUSTER_DIR/karpenter.env.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"

KARPENTER_VERSION="${KARPENTER_VERSION:-v1.14.1}"
K8S_VERSION="${K8S_VERSION:-v1.37.2}"
D="${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}"
TIMEOUT="${HEXA_KARPENTER_TIMEOUT:-120}"
KDIR="$HEXA_CACHE/karpenter/$KARPENTER_VERSION"
BIN="$KDIR/bin/karpenter-kwok"
ITYPES="${HEXA_KARPENTER_INSTANCE_TYPES:-$HERE/instance-types.json}"

[[ -f "$D/env" ]] || { echo "karpenter/up.sh: no cluster in $D (run hack/cluster/up.sh first)" >&2; exit 1; }
D="$(cd "$D" && pwd)"
KUBECONFIG="$(sed -n 's/^KUBECONFIG=//p' "$D/env")"
KUBECTL="$(sed -n 's/^KUBECTL=//p' "$D/env")"
[[ -x "${KUBECTL:-}" ]] || KUBECTL="$HEXA_CACHE/k8s/$K8S_VERSION/bin/kubectl"
[[ -f "$KUBECONFIG" && -x "$KUBECTL" ]] || { echo "karpenter/up.sh: no kubeconfig/kubectl from $D/env" >&2; exit 1; }
ITYPES="$(cd "$(dirname "$ITYPES")" && pwd)/$(basename "$ITYPES")"
[[ -f "$ITYPES" ]] || { echo "karpenter/up.sh: instance types file $ITYPES not found" >&2; exit 1; }
export KUBECONFIG
kc() { "$KUBECTL" --request-timeout=20s "$@"; }

KARPENTER_VERSION="$KARPENTER_VERSION" bash "$HERE/build.sh"

mkdir -p "$D/run" "$D/logs"
# Our own lock: hack/cluster/up.sh may call this while it holds $D/run/.lock.
exec 7>"$D/run/.karpenter.lock"
flock -w 300 7 || { echo "karpenter/up.sh: another karpenter up/down holds $D/run/.karpenter.lock" >&2; exit 1; }

PF="$D/run/karpenter.pid"
LOG="$D/logs/karpenter.log"

# ours <pid>: our binary, started for this cluster (its environment names our kubeconfig;
# karpenter takes no arguments here, so the command line alone cannot tell clusters apart).
ours() {
  local pid="$1"
  [[ "$pid" =~ ^[0-9]+$ && -r "/proc/$pid/cmdline" ]] || return 1
  [[ "$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1)" == "$BIN" ]] || return 1
  tr '\0' '\n' <"/proc/$pid/environ" 2>/dev/null | grep -qxF "KUBECONFIG=$KUBECONFIG"
}
running() { [[ -f "$PF" ]] && ours "$(cat "$PF")"; }

port_free() { ! ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }
pick_port() { # a free port outside the ephemeral range, not in $TAKEN
  local p i
  for i in $(seq 1 500); do
    p=$(( 20000 + RANDOM % 12000 ))
    [[ " $TAKEN " == *" $p "* ]] && continue
    port_free "$p" && { TAKEN+=" $p"; echo "$p"; return 0; }
  done
  echo "karpenter/up.sh: no free port found" >&2
  return 1
}

healthy() { # the manager's readiness: caches synced and the NodePool/NodeClaim kinds mapped
  [[ "$(curl -s --max-time 2 "http://127.0.0.1:$HEALTH_PROBE_PORT/readyz")" == ok ]]
}

# ---------------------------------------------------------------- CRDs
t0=$(date +%s)
kc apply --server-side --force-conflicts --field-manager=hexabase-karpenter -f "$KDIR/crds" >/dev/null
crds=()
for f in "$KDIR/crds"/*.yaml; do
  crds+=("$(awk '/^metadata:/{m=1;next} m && /^[[:space:]]+name:/{print $2; exit}' "$f")")
done
kc wait --for=condition=Established --timeout="${TIMEOUT}s" "${crds[@]/#/crd/}" >/dev/null
# Established is not enough: wait until each resource is served (a LIST works).
deadline=$(( $(date +%s) + TIMEOUT ))
for r in "${crds[@]}"; do
  until kc get "$r" -o name >/dev/null 2>&1; do
    if (( $(date +%s) > deadline )); then
      echo "karpenter/up.sh: $r not served after ${TIMEOUT}s" >&2; exit 1
    fi
    sleep 0.3
  done
done
step "karpenter: ${#crds[@]} CRDs installed and served ($(( $(date +%s) - t0 ))s)"

# The node classes NodeClaims/NodePools refer to (the CRD defaults their status to Ready=True).
# A NodeClaim naming a class that does not exist is refused as insufficient capacity (Warning
# Event InsufficientCapacityError, NodeClaim deleted): one class per region with capacity, none
# for a sold-out region, lets Karpenter itself refuse that region (see docs/karpenter.md).
# By default: `default`, and one class named after each region that has an available offering
# in the instance types file (kwok ignores `"Available": false`; a missing class is how the
# local cloud says no). Classes this script made earlier and no longer wants are deleted.
if [[ -z "${HEXA_KARPENTER_NODE_CLASSES:-}" ]]; then
  HEXA_KARPENTER_NODE_CLASSES="default $(python3 -c '
import json, sys
regions = set()
for it in json.load(open(sys.argv[1])):
    for o in it.get("offerings", []):
        if o.get("Available", True):
            for r in o.get("Requirements", []):
                if r.get("key") == "topology.kubernetes.io/region":
                    regions.update(r.get("values", []))
print(" ".join(sorted(regions)))' "$ITYPES")"
fi
MANAGED=app.kubernetes.io/managed-by=hexabase-karpenter-up
for nc in $HEXA_KARPENTER_NODE_CLASSES; do
  printf 'apiVersion: karpenter.kwok.sh/v1alpha1\nkind: KWOKNodeClass\nmetadata:\n  name: %s\n  labels: {app.kubernetes.io/managed-by: hexabase-karpenter-up}\n---\n' "$nc"
done | kc apply --server-side --field-manager=hexabase-karpenter -f - >/dev/null
for nc in $(kc get kwoknodeclasses.karpenter.kwok.sh -l "$MANAGED" -o name | sed 's|.*/||'); do
  [[ " $HEXA_KARPENTER_NODE_CLASSES " == *" $nc "* ]] || kc delete kwoknodeclasses.karpenter.kwok.sh "$nc" --wait=false >/dev/null
done
step "karpenter: node classes $HEXA_KARPENTER_NODE_CLASSES"

# ---------------------------------------------------------------- settings
if [[ -f "$D/run/karpenter.ports" ]]; then
  # shellcheck disable=SC1091
  source "$D/run/karpenter.ports"
fi
stop() {
  local pid; pid="$(cat "$PF")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do ours "$pid" || break; sleep 0.1; done
  if ours "$pid"; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
  rm -f "$PF"
}
if running && [[ -z "${METRICS_PORT:-}" || -z "${HEALTH_PROBE_PORT:-}" ]]; then
  step "karpenter: running without a ports record; restarting (pid $(cat "$PF"))"
  stop
fi
TAKEN=""
if ! running; then
  for n in METRICS_PORT HEALTH_PROBE_PORT; do
    v="${!n:-}"
    if [[ -z "$v" ]] || ! port_free "$v" || [[ " $TAKEN " == *" $v "* ]]; then v="$(pick_port)"; fi
    TAKEN+=" $v" # (pick_port runs in a subshell: record the pick here)
    printf -v "$n" '%s' "$v"
  done
  printf 'METRICS_PORT=%s\nHEALTH_PROBE_PORT=%s\n' "$METRICS_PORT" "$HEALTH_PROBE_PORT" >"$D/run/karpenter.ports"
fi

# Everything the process gets (env vars only: karpenter's own flag set panics on unknown flags).
ENVS=(
  "KUBECONFIG=$KUBECONFIG"
  "DISABLE_LEADER_ELECTION=true"
  "METRICS_PORT=$METRICS_PORT"
  "HEALTH_PROBE_PORT=$HEALTH_PROBE_PORT"
  "INSTANCE_TYPES_FILE_PATH=$ITYPES"
  "LOG_LEVEL=${HEXA_KARPENTER_LOG_LEVEL:-info}"
)
[[ -n "${HEXA_KARPENTER_FEATURE_GATES:-}" ]] && ENVS+=("FEATURE_GATES=$HEXA_KARPENTER_FEATURE_GATES")
# The settings (and the instance types' content) decide whether a running karpenter is current.
config="$(printf '%s\n' "${ENVS[@]}"; sha256sum <"$ITYPES" | cut -d' ' -f1; stat -c '%s %Y' "$BIN")"

if running && [[ "$(cat "$D/run/karpenter.config" 2>/dev/null)" != "$config" ]]; then
  step "karpenter: settings changed; restarting (pid $(cat "$PF"))"
  stop
fi

if running && healthy; then
  step "karpenter: already running (pid $(cat "$PF"), health :$HEALTH_PROBE_PORT)"
else
  t0=$(date +%s%N)
  if ! running; then
    printf '%s\n' "$config" >"$D/run/karpenter.config"
    { echo; echo "=== $(date -u +%FT%TZ) starting karpenter-kwok $KARPENTER_VERSION"; } >>"$LOG"
    # A new session, so it outlives this shell; the inner shell records its PID and execs.
    setsid env "${ENVS[@]}" bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$PF" "$BIN" \
      </dev/null >>"$LOG" 2>&1 7>&- 8>&- 9>&- &
    for _ in $(seq 1 50); do running && break; sleep 0.1; done
  fi
  deadline=$(( $(date +%s) + TIMEOUT ))
  until healthy; do
    if ! running; then
      echo "karpenter/up.sh: karpenter exited; last log lines ($LOG):" >&2
      tail -n 30 "$LOG" >&2; exit 1
    fi
    if (( $(date +%s) > deadline )); then
      echo "karpenter/up.sh: karpenter not ready after ${TIMEOUT}s; last log lines ($LOG):" >&2
      tail -n 30 "$LOG" >&2; exit 1
    fi
    sleep 0.3
  done
  step "karpenter: ready (pid $(cat "$PF"), $(( ($(date +%s%N) - t0) / 1000000 ))ms; log $LOG)"
fi

cat >"$D/karpenter.env" <<EOF
KARPENTER_HEALTH=http://127.0.0.1:$HEALTH_PROBE_PORT
KARPENTER_METRICS=http://127.0.0.1:$METRICS_PORT/metrics
KARPENTER_NODE_CLASSES="$HEXA_KARPENTER_NODE_CLASSES"
KARPENTER_LOG=$LOG
EOF
