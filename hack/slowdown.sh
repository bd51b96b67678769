#!/usr/bin/env bash
# Demo only: asks the demo's traffic simulator (started by `make run`) to add <ms> to every
# simulated request of the web app for <seconds>; 0 ms ends a slowdown. Prints its state.
# Usage: hack/slowdown.sh <ms> [seconds]. Env: HEXA_CLUSTER_DIR (as hack/cluster/up.sh).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
ms="${1:?usage: hack/slowdown.sh <ms> [seconds]}"
seconds="${2:-120}"
[[ "$ms" =~ ^[0-9]+$ && "$seconds" =~ ^[0-9]+$ ]] || { echo "slowdown.sh: <ms> and <seconds> are whole numbers" >&2; exit 2; }
D="${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}"
addr="$(sed -n 's/^SIMULATOR_ADDR=//p' "$D/env" 2>/dev/null || true)"
[[ -n "$addr" ]] || { echo "slowdown.sh: no local cluster in $D (start it with make run)" >&2; exit 1; }
if [[ "$ms" == 0 ]]; then
  curl -fsS -X DELETE "http://$addr/slowdown" || { echo "slowdown.sh: the simulator does not answer on $addr (is make run running?)" >&2; exit 1; }
else
  curl -fsS -X POST "http://$addr/slowdown?ms=$ms&seconds=$seconds" || { echo "slowdown.sh: the simulator does not answer on $addr (is make run running?)" >&2; exit 1; }
fi
echo
