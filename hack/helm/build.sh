#!/usr/bin/env bash
# Builds the Helm 3 CLI once per machine from its Go module (helm.sh/helm/v3, through the Go
# module proxy; GitHub release downloads are not used), like hack/cluster/build.sh builds the
# control plane:
#   $HEXA_CACHE/helm/$HELM_VERSION/bin/helm
# Idempotent: when the binary is present it prints its path and returns at once.
# Last line printed: the path of the helm binary.
#
# Env: HEXA_CACHE (see hack/env.sh), HELM_VERSION (default v3.22.0),
#      HEXA_BUILD_P (go build -p, default 2), HEXA_REBUILD=1 to force a rebuild.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
BUILD_P="${HEXA_BUILD_P:-2}"
HELM_DIR="$HEXA_CACHE/helm/$HELM_VERSION"
HELM_BIN="$HELM_DIR/bin/helm"

export GOFLAGS="-buildvcs=false"
export CGO_ENABLED=0

if [[ "${HEXA_REBUILD:-}" != 1 && -x "$HELM_BIN" ]]; then
  echo "$HELM_BIN"
  exit 0
fi

command -v go >/dev/null || { echo "helm/build.sh: go not found (expected /usr/local/go/bin/go)" >&2; exit 1; }

# One build at a time per machine (parallel test runs may all call this).
mkdir -p "$HEXA_CACHE/locks"
exec 9>"$HEXA_CACHE/locks/helm-build.lock"
if ! flock -n 9; then
  step "another helm build is running; waiting for it"
  flock 9
fi
if [[ "${HEXA_REBUILD:-}" != 1 && -x "$HELM_BIN" ]]; then
  echo "$HELM_BIN"
  exit 0
fi

t0=$(date +%s)
step "helm $HELM_VERSION: downloading helm.sh/helm/v3 and its dependencies (first time only)"
gomod="$(go mod download -json "helm.sh/helm/v3@$HELM_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')"
[[ -f "$gomod" ]] || { echo "helm/build.sh: cannot download helm.sh/helm/v3@$HELM_VERSION" >&2; exit 1; }

# The same -X flags as Helm's own Makefile: the version, and the Kubernetes version that
# `helm template` and `helm lint` assume (from the client-go it is built with: v0.37.x -> 1.37).
kver="$(awk '$1=="k8s.io/client-go"{print $2; exit}' "$gomod")" # e.g. v0.37.0
kmajor=$(( $(echo "${kver#v}" | cut -d. -f1) + 1 ))
kminor="$(echo "${kver#v}" | cut -d. -f2)"
ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION"
ld+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
for p in helm.sh/helm/v3/pkg/lint/rules helm.sh/helm/v3/pkg/chartutil; do
  ld+=" -X $p.k8sVersionMajor=$kmajor -X $p.k8sVersionMinor=$kminor"
done

step "helm $HELM_VERSION: go install helm.sh/helm/v3/cmd/helm (a cold Go cache takes minutes on 2 cores)"
mkdir -p "$HELM_DIR/bin"
rm -rf "$HELM_DIR/bin.tmp"
mkdir -p "$HELM_DIR/bin.tmp"
GOBIN="$HELM_DIR/bin.tmp" go install -p "$BUILD_P" -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
"$HELM_DIR/bin.tmp/helm" version --short >/dev/null
mv -f "$HELM_DIR/bin.tmp/helm" "$HELM_BIN"
rm -rf "$HELM_DIR/bin.tmp"
step "helm: $("$HELM_BIN" version --short) built in $(( $(date +%s) - t0 ))s ($(du -h "$HELM_BIN" | cut -f1)), Kubernetes $kmajor.$kminor assumed by template/lint"
echo "$HELM_BIN"
