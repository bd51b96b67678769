#!/usr/bin/env bash
# Installs the platform's custom resources (generated from the Rust types into deploy/crds by
# `cargo run -p server --bin crdgen -- deploy/crds`) into the cluster KUBECONFIG names, and
# waits until they are served. The server also installs them at start-up; doing it here lets
# tests and the dashboard read them before any engine runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
kubectl="${KUBECTL:-$(ls "$HEXA_CACHE"/k8s/*/bin/kubectl 2>/dev/null | sort -V | tail -n1)}"
step "installing the custom resources (deploy/crds) and the platform's objects (deploy/platform)"
"$kubectl" apply --server-side --force-conflicts -f "$here/../deploy/crds/" -f "$here/../deploy/platform/" >/dev/null
"$kubectl" wait --for=condition=Established --timeout=60s -f "$here/../deploy/crds/" >/dev/null
# Established is not yet served: the apiserver answers 429 "storage is (re)initializing" for a
# moment after. Wait until both resources list.
for _ in $(seq 1 60); do
  "$kubectl" get dedicatednodes.hexabase.ai,workloadmigrations.hexabase.ai -A >/dev/null 2>&1 && exit 0
  sleep 0.5
done
echo "custom resources installed but not served after 30 s" >&2
exit 1
