#!/usr/bin/env bash
# Stop the local cluster started by up.sh: Karpenter (hack/karpenter/down.sh), then exactly the
# processes named by its PID files, after checking each PID's command line is our binary with
# our state dir. Idempotent.
#   --purge   also remove the state dir (certificates, etcd data, logs).
# Env: HEXA_CACHE (hack/env.sh), HEXA_CLUSTER_DIR (default $HEXA_CACHE/cluster).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"

PURGE=0
for a in "$@"; do
  case "$a" in
    --purge) PURGE=1 ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    *) echo "down.sh: unknown argument $a" >&2; exit 2 ;;
  esac
done

D="${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}"
if [[ ! -d "$D" ]]; then
  step "cluster: nothing to stop ($D does not exist)"
  exit 0
fi
D="$(cd "$D" && pwd)"
mkdir -p "$D/run"
exec 8>"$D/run/.lock"
flock -w 300 8 || { echo "$(basename "$0"): another up.sh/down.sh holds $D/run/.lock" >&2; exit 1; }

# Karpenter first, while the API server it talks to still runs (docs/karpenter.md).
HEXA_CLUSTER_DIR="$D" bash "$HERE/../karpenter/down.sh"

# Reverse start order: kubelets and controllers first, etcd last.
COMPONENTS=(prometheus kwok kube-scheduler kube-controller-manager kube-apiserver etcd)

# ours <component> <pid>: the process is the component's binary, started with our state dir.
ours() {
  local c="$1" pid="$2" argv0 cmd
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1)"
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
  [[ "$(basename "$argv0")" == "$c" && "$cmd" == *"$D/"* ]]
}

stopped=0
for c in "${COMPONENTS[@]}"; do
  pf="$D/run/$c.pid"
  [[ -f "$pf" ]] || continue
  pid="$(cat "$pf")"
  if [[ "$pid" =~ ^[0-9]+$ ]] && ours "$c" "$pid"; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do # up to 10s, then SIGKILL
      ours "$c" "$pid" || break
      sleep 0.1
    done
    if ours "$c" "$pid"; then
      step "cluster: $c (pid $pid) ignored SIGTERM; killing"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    step "cluster: stopped $c (pid $pid)"
    stopped=$((stopped + 1))
  elif [[ "$pid" =~ ^[0-9]+$ ]] && [[ -d "/proc/$pid" ]]; then
    step "cluster: pid $pid in $pf is not our $c (left alone)"
  fi
  rm -f "$pf"
done
[[ $stopped -gt 0 ]] || step "cluster: nothing running in $D"

if [[ $PURGE == 1 ]]; then
  exec 8>&-
  rm -rf "$D"
  step "cluster: removed $D"
fi
