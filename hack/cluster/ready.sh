#!/usr/bin/env bash
# The local cluster ready for the dashboard: started (hack/cluster/up.sh, which builds the
# binaries on a first run), seeded with the demo (seed.sh) and serving the platform's custom
# resources (hack/crds.sh). Idempotent, like each of its steps.
# Last line printed: `export KUBECONFIG=<path>`.
# Env: as up.sh (HEXA_CACHE, HEXA_CLUSTER_DIR, ...).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"
D="${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}"

bash "$HERE/up.sh" >&2
bash "$HERE/seed.sh" >&2
# shellcheck disable=SC1091
. "$D/env"
export KUBECONFIG KUBECTL
bash "$HERE/../crds.sh" >&2
echo "export KUBECONFIG=$KUBECONFIG"
