#!/usr/bin/env bash
# Installs the platform's custom resources (generated from the Rust types into deploy/crds by
# `cargo run -p server --bin crdgen -- deploy/crds`) into the cluster KUBECONFIG names, and
# waits until they are served. The server also installs them at start-up; doing it here lets
# tests and the dashboard read them before any engine runs.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
kubectl="${KUBECTL:-$(ls "$HEXA_CACHE"/k8s/*/bin/kubectl 2>/dev/null | sort -V | tail -n1)}"
step "installing the custom resources (deploy/crds)"
"$kubectl" apply --server-side --force-conflicts -f "$here/../deploy/crds/" >/dev/null
"$kubectl" wait --for=condition=Established --timeout=60s -f "$here/../deploy/crds/" >/dev/null
