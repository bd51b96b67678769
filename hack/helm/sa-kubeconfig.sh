#!/usr/bin/env bash
# Writes a kubeconfig that authenticates as a ServiceAccount (a token from the TokenRequest API,
# `kubectl create token`), for the cluster the current KUBECONFIG names: a process using it has
# exactly the permissions a pod running under that ServiceAccount has (the chart's RBAC).
#   bash hack/helm/sa-kubeconfig.sh <namespace> <serviceaccount> <output file> [duration, default 2h]
# Env: KUBECONFIG (an admin kubeconfig), KUBECTL (default: the local cluster's kubectl).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"
[[ $# -ge 3 ]] || { sed -n '2,6p' "$0" >&2; exit 2; }
ns="$1" sa="$2" out="$3" duration="${4:-2h}"
KUBECTL="${KUBECTL:-$(ls "$HEXA_CACHE"/k8s/*/bin/kubectl 2>/dev/null | sort -V | tail -n1)}"
k() { "$KUBECTL" "$@"; }
server="$(k config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
ca="$(k config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
token="$(k create token "$sa" -n "$ns" --duration="$duration")"
umask 077
cat >"$out.tmp" <<KC
apiVersion: v1
kind: Config
clusters:
- name: cluster
  cluster:
    server: $server
    certificate-authority-data: $ca
users:
- name: $ns-$sa
  user:
    token: $token
contexts:
- name: $ns-$sa
  context:
    cluster: cluster
    user: $ns-$sa
    namespace: $ns
current-context: $ns-$sa
KC
mv -f "$out.tmp" "$out"
echo "$out"
