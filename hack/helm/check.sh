#!/usr/bin/env bash
# Checks the Helm chart deploy/chart without running its pods (KWOK cannot run containers):
#   1. the chart's copies of deploy/catalogue.yaml and deploy/crds/ are identical (sync.sh --check)
#   2. helm lint --strict, with the default values and with a second set (set B: karpenter
#      provider, ServiceMonitor, Prometheus, database.url, hard anti-affinity)
#   3. values the server cannot run with fail the render (bad provider, SQLite URL, no database)
#   4. against the API server KUBECONFIG names, in a throwaway namespace:
#      the chart's CRDs, then each rendering, with kubectl apply --dry-run=server (admission,
#      schema and strict field validation by the real API server; nothing is persisted), and
#      assertions on the objects the server returns (replicas, probes, security, env, RBAC...);
#      set B's ServiceMonitor needs the monitoring.coreos.com CRD: when the cluster lacks it, the
#      real upstream CRD (prometheus-operator, from the Go module proxy) is installed for the
#      check and removed after, so the ServiceMonitor is validated against its real schema
#   5. the RBAC as the API server enforces it: the ServiceAccount, ClusterRole(Binding) and Role
#      (Binding) are applied for real, then SubjectAccessReviews for the ServiceAccount must
#      allow every permission the server needs and deny a list of things it must not do; for
#      both providers. Everything is deleted at the end (the ServiceMonitor CRD only if this
#      check installed it: do not run two checks against one cluster at the same time).
# helm is built from its Go module by hack/helm/build.sh (cached).
#
# Env: KUBECONFIG (required), KUBECTL (default: the local cluster's kubectl), HEXA_CACHE.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"
root="$(cd "$HERE/../.." && pwd)"
cd "$root"
chart=deploy/chart
T0=$(date +%s%N)
PROM_OPERATOR_VERSION="${PROM_OPERATOR_VERSION:-v0.85.0}"

[[ -n "${KUBECONFIG:-}" && -f "${KUBECONFIG%%:*}" ]] || {
  echo "helm/check.sh: KUBECONFIG must name a running cluster's kubeconfig (e.g. . \$HEXA_CACHE/cluster/env)" >&2; exit 1; }
export KUBECONFIG
KUBECTL="${KUBECTL:-$(ls "$HEXA_CACHE"/k8s/*/bin/kubectl 2>/dev/null | sort -V | tail -n1)}"
[[ -x "$KUBECTL" ]] || { echo "helm/check.sh: no kubectl (set KUBECTL)" >&2; exit 1; }
k() { "$KUBECTL" "$@"; }
helm="$(bash "$HERE/build.sh" | tail -n1)"

work="$(mktemp -d "${TMPDIR:-/tmp}/hexa-helm-check.XXXXXX")"
ns="hexa-chart-check-$(date +%s)-$$"
release=hexa
created_monitoring_crd=""
checks=0
cleanup() {
  set +e
  k delete namespace "$ns" --ignore-not-found --wait=false >/dev/null 2>&1
  k delete clusterrolebinding,clusterrole -l "app.kubernetes.io/instance=$release,hexabase.ai/chart-check=$ns" \
    --ignore-not-found >/dev/null 2>&1
  [[ -n "$created_monitoring_crd" ]] && k delete crd servicemonitors.monitoring.coreos.com --ignore-not-found >/dev/null 2>&1
  rm -rf "$work"
}
trap cleanup EXIT
ok() { checks=$((checks + 1)); printf '  ok  %s\n' "$*"; }
fail() { echo "helm/check.sh: FAIL: $*" >&2; exit 1; }

step "chart check: $helm ($("$helm" version --short)), kubectl $("$KUBECTL" version --client -o json | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p' | head -n1), API server $(k get --raw /version | sed -n 's/.*"gitVersion": "\(.*\)".*/\1/p')"

# ------------------------------------------------------------------ 1. copies
bash "$HERE/sync.sh" --check >/dev/null || fail "chart copies are stale (see above)"
ok "deploy/chart/files/catalogue.yaml and deploy/chart/crds/ are identical to deploy/catalogue.yaml and deploy/crds/"

# ------------------------------------------------------------------ 2. lint
cat >"$work/values-b.yaml" <<'VALUES'
# Set B: the karpenter provider (as hack/karpenter runs it locally) and the optional parts on.
nodeProvider: karpenter
karpenter:
  nodeClass: {group: karpenter.kwok.sh, kind: KWOKNodeClass, name: default}
serviceMonitor:
  enabled: true
  labels: {release: kube-prometheus-stack}
prometheus:
  url: http://prometheus-operated.monitoring.svc:9090
database:
  url: postgres://hexabase:secret@postgres.db.svc:5432/hexabase?sslmode=disable
podAntiAffinity: hard
replicaCount: 3
VALUES
"$helm" lint --strict "$chart" >"$work/lint-a.log" 2>&1 || { cat "$work/lint-a.log" >&2; fail "helm lint (default values)"; }
ok "helm lint --strict $chart (default values): $(grep -c '^\[' "$work/lint-a.log" || true) notes, 0 failures"
"$helm" lint --strict "$chart" -f "$work/values-b.yaml" >"$work/lint-b.log" 2>&1 || { cat "$work/lint-b.log" >&2; fail "helm lint (set B)"; }
ok "helm lint --strict $chart -f values-b.yaml (karpenter, ServiceMonitor, Prometheus, database.url)"

# ------------------------------------------------------------------ 3. refused values
refuse() { # <what> <helm args...>: the render must fail
  local what="$1"; shift
  if "$helm" template "$release" "$chart" -n "$ns" "$@" >/dev/null 2>"$work/refused.log"; then
    fail "the chart rendered with $what"
  fi
  ok "refused: $what ($(sed -n 's/^Error: .*): //p' "$work/refused.log" | head -n1 | cut -c1-80))"
}
refuse "nodeProvider=gcp" --set nodeProvider=gcp
refuse "a SQLite database.url" --set database.url=sqlite:///tmp/x.db
refuse "no database secret nor url" --set database.existingSecret=
refuse "karpenter without a NodeClass name" --set nodeProvider=karpenter --set karpenter.nodeClass.name=

# ------------------------------------------------------------------ 4. server-side dry run
render() { # <name> <helm args...>: $work/<name>.yaml (templates) and $work/<name>-crds.yaml (crds/)
  local name="$1"; shift
  "$helm" template "$release" "$chart" -n "$ns" --include-crds "$@" >"$work/$name.all.yaml"
  # Split helm's output into the CRDs (crds/, which Helm installs before everything else) and
  # the templates; label the cluster-scoped RBAC so the cleanup finds exactly this run's.
  python3 - "$work/$name.all.yaml" "$work/$name.yaml" "$work/$name-crds.yaml" "$ns" <<'PY'
import re, sys
src, tpl, crds, ns = sys.argv[1:5]
docs = [d for d in re.split(r"^---\s*$", open(src).read(), flags=re.M) if re.search(r"^kind:", d, re.M)]
t, c = [], []
for d in docs:
    if re.search(r"^kind: CustomResourceDefinition$", d, re.M):
        c.append(d); continue
    if re.search(r"^kind: ClusterRole(Binding)?$", d, re.M):
        d = d.replace("\n  labels:\n", f"\n  labels:\n    hexabase.ai/chart-check: {ns}\n", 1)
    t.append(d)
open(tpl, "w").write("---".join([""] + t))
open(crds, "w").write("---".join([""] + c))
PY
}
render a
render b -f "$work/values-b.yaml"

k create namespace "$ns" >/dev/null
ok "throwaway namespace $ns created (the release namespace; deleted at the end)"

cmp -s "$work/a-crds.yaml" "$work/b-crds.yaml" || fail "the CRDs differ between value sets"
k apply --dry-run=server -f "$work/a-crds.yaml" -o name >"$work/crds.out" 2>"$work/crds.err" \
  || { cat "$work/crds.err" >&2; fail "CRDs rejected"; }
[[ $(wc -l <"$work/crds.out") == $(ls deploy/crds/*.yaml | wc -l) ]] || fail "expected $(ls deploy/crds/*.yaml | wc -l) CRDs, the API server saw: $(cat "$work/crds.out")"
ok "CRDs first, from helm template --include-crds (kubectl apply --dry-run=server): $(sed 's|.*/||' "$work/crds.out" | tr '\n' ' ')"

if ! k get crd servicemonitors.monitoring.coreos.com >/dev/null 2>&1; then
  gomod="$(go mod download -json "github.com/prometheus-operator/prometheus-operator@$PROM_OPERATOR_VERSION" \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",*$/\1/p')"
  smcrd="$gomod/example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"
  [[ -f "$smcrd" ]] || fail "no ServiceMonitor CRD in prometheus-operator $PROM_OPERATOR_VERSION"
  created_monitoring_crd=1
  k apply --server-side -f "$smcrd" >/dev/null
  k wait --for=condition=Established --timeout=60s crd/servicemonitors.monitoring.coreos.com >/dev/null
  for _ in $(seq 1 60); do k get servicemonitors -n "$ns" >/dev/null 2>&1 && break; sleep 0.5; done
  ok "ServiceMonitor CRD absent: installed prometheus-operator $PROM_OPERATOR_VERSION's own for this check (removed at the end)"
fi

for set in a b; do
  k apply --dry-run=server -n "$ns" -f "$work/$set.yaml" -o json >"$work/$set.json" 2>"$work/$set.err" \
    || { cat "$work/$set.err" >&2; fail "set $set rejected by the API server"; }
  ok "set $set: kubectl apply --dry-run=server accepted $(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(len(d.get("items",[d])), "objects:", " ".join(sorted(o["kind"] for o in d.get("items",[d]))))' "$work/$set.json")"
done

# Assertions on what the API server returned (defaults applied).
python3 - "$work/a.json" "$work/b.json" "$ns" "$release" >"$work/assert.out" <<'PY' || fail "rendered objects do not match the chart's promises"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
ns, release = sys.argv[3], sys.argv[4]
def objs(d): return d.get("items", [d])
def one(d, kind):
    xs = [o for o in objs(d) if o["kind"] == kind]
    assert len(xs) == 1, f"expected one {kind}, got {len(xs)}"
    return xs[0]
def kinds(d): return sorted(o["kind"] for o in objs(d))
checks = []
def check(cond, what):
    if not cond:
        print(f"  FAIL {what}", file=sys.stderr); sys.exit(1)
    checks.append(what)

for name, d in (("a", a), ("b", b)):
    dep = one(d, "Deployment")
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    env = {e["name"]: e for e in c.get("env", [])}
    sc, psc = c["securityContext"], pod["securityContext"]
    check(psc.get("runAsNonRoot") and psc.get("runAsUser") == 10001, f"{name}: pod runs as non-root uid 10001")
    check(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
          and sc.get("capabilities", {}).get("drop") == ["ALL"], f"{name}: read-only root fs, no privilege escalation, capabilities drop ALL")
    check(c["livenessProbe"]["httpGet"]["path"] == "/healthz" and c["readinessProbe"]["httpGet"]["path"] == "/readyz",
          f"{name}: liveness /healthz, readiness /readyz")
    check(c["resources"].get("requests") and c["resources"].get("limits"), f"{name}: resources set")
    check(env["LISTEN_ADDR"]["value"] == "0.0.0.0:3000" and env["LOG_FORMAT"]["value"] == "json"
          and env["HEXA_LEASE_NAMESPACE"]["value"] == ns and "secretKeyRef" in env["DATABASE_URL"]["valueFrom"]
          and env["HEXA_CATALOGUE"]["value"].startswith("/etc/hexabase/catalogue/") and "SECURE_COOKIES" in env,
          f"{name}: env LISTEN_ADDR, LOG_FORMAT=json, DATABASE_URL from a Secret, HEXA_CATALOGUE, HEXA_LEASE_NAMESPACE={ns}, SECURE_COOKIES")
    cm = one(d, "ConfigMap")
    check("catalogue.yaml" in cm["data"] and any(v.get("configMap", {}).get("name") == cm["metadata"]["name"] for v in pod["volumes"]),
          f"{name}: the catalogue ConfigMap is mounted")
    check(pod["serviceAccountName"] == one(d, "ServiceAccount")["metadata"]["name"], f"{name}: the pod runs under the chart's ServiceAccount")
    aa = pod.get("affinity", {}).get("podAntiAffinity", {})
    check(aa, f"{name}: podAntiAffinity across nodes")
    svc = one(d, "Service")
    check(svc["spec"]["type"] == "ClusterIP" and svc["spec"]["ports"][0]["port"] == 80 and svc["spec"]["ports"][0]["targetPort"] == "http",
          f"{name}: Service ClusterIP 80 -> http (3000)")
    pdb = one(d, "PodDisruptionBudget")
    check(pdb["spec"]["minAvailable"] == 1, f"{name}: PodDisruptionBudget minAvailable 1")
    np_ = one(d, "NetworkPolicy")
    check(set(np_["spec"]["policyTypes"]) == {"Ingress", "Egress"}, f"{name}: NetworkPolicy ingress and egress")
    role = one(d, "Role")
    check(any("leases" in r["resources"] and "update" in r["verbs"] and r.get("resourceNames") == ["hexabase-engine"] for r in role["rules"]),
          f"{name}: Role: Lease hexabase-engine get/update (+create) in the release namespace")
    cr = one(d, "ClusterRole")
    rules = cr["rules"]
    def allowed(group, resource, verb):
        return any(group in r.get("apiGroups", []) and resource in r.get("resources", []) and verb in r["verbs"] for r in rules)
    check(not any(r["resources"] == ["*"] or r["verbs"] == ["*"] or "secrets" in r["resources"] for r in rules), f"{name}: ClusterRole has no wildcard and no Secrets")
    if name == "a":
        check(dep["spec"]["replicas"] == 2, "a: 2 replicas by default")
        check("preferredDuringSchedulingIgnoredDuringExecution" in aa, "a: soft anti-affinity by default")
        check(env["HEXA_NODE_PROVIDER"]["value"] == "kwok" and "HEXA_KARPENTER_NODE_CLASS_NAME" not in env and "PROMETHEUS_URL" not in env,
              "a: HEXA_NODE_PROVIDER=kwok, no Karpenter or Prometheus env")
        check(allowed("", "nodes", "create") and not allowed("karpenter.sh", "nodeclaims", "create"), "a: kwok may create Nodes, no NodeClaims")
        check("ServiceMonitor" not in kinds(d) and "Secret" not in kinds(d), "a: no ServiceMonitor, no Secret (existingSecret)")
        check(env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "hexabase-database", "a: DATABASE_URL from Secret hexabase-database")
    else:
        check(dep["spec"]["replicas"] == 3 and "requiredDuringSchedulingIgnoredDuringExecution" in aa, "b: 3 replicas, hard anti-affinity")
        check(env["HEXA_NODE_PROVIDER"]["value"] == "karpenter" and env["HEXA_KARPENTER_NODE_CLASS_GROUP"]["value"] == "karpenter.kwok.sh"
              and env["HEXA_KARPENTER_NODE_CLASS_KIND"]["value"] == "KWOKNodeClass" and env["HEXA_KARPENTER_NODE_CLASS_NAME"]["value"] == "default",
              "b: HEXA_NODE_PROVIDER=karpenter and HEXA_KARPENTER_NODE_CLASS_GROUP/KIND/NAME")
        check(env["PROMETHEUS_URL"]["value"].startswith("http://prometheus-operated"), "b: PROMETHEUS_URL")
        check(allowed("karpenter.sh", "nodeclaims", "create") and not allowed("", "nodes", "create"), "b: karpenter may create NodeClaims, not Nodes")
        sec = one(d, "Secret")
        check(env["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == sec["metadata"]["name"], "b: the chart-made Secret holds DATABASE_URL")
        sm = one(d, "ServiceMonitor")
        check(sm["spec"]["endpoints"][0]["path"] == "/metrics" and sm["metadata"]["labels"].get("release") == "kube-prometheus-stack",
              "b: ServiceMonitor scrapes /metrics with the given labels")
        ports = [p.get("port") for r in np_["spec"]["egress"] for p in r.get("ports", [])]
        check(9090 in ports, "b: NetworkPolicy lets the server reach Prometheus on 9090 (the port of prometheus.url)")
for c in checks:
    print(f"  ok  {c}")
PY
cat "$work/assert.out"
checks=$((checks + $(grep -c . "$work/assert.out")))

# ------------------------------------------------------------------ 5. RBAC as enforced
# SubjectAccessReviews for the ServiceAccount, answered by the API server's RBAC authorizer.
# (Not `kubectl auth can-i`: it cannot name resources of CRDs the cluster does not serve,
# such as karpenter.sh NodeClaims here.)
sa="$(python3 -c 'import json,sys; print([o for o in json.load(open(sys.argv[1]))["items"] if o["kind"]=="ServiceAccount"][0]["metadata"]["name"])' "$work/a.json")"
as="system:serviceaccount:$ns:$sa"
rbac_apply() { # <set>: the ServiceAccount and RBAC objects of a rendering, for real
  python3 - "$work/$1.yaml" >"$work/$1-rbac.yaml" <<'PY'
import re, sys
docs = re.split(r"^---\s*$", open(sys.argv[1]).read(), flags=re.M)
keep = re.compile(r"^kind: (ServiceAccount|ClusterRole|ClusterRoleBinding|Role|RoleBinding)$", re.M)
print("---".join([""] + [d for d in docs if keep.search(d)]))
PY
  k apply --server-side --force-conflicts --field-manager=hexa-chart-check -n "$ns" -f "$work/$1-rbac.yaml" >/dev/null
}
# access <file of expectations>: each line `yes|no verb resource[.group][/subresource] [namespace|-] [name]`.
# Prints the failures; returns 1 if any.
access() {
  python3 - "$1" "$ns" "$sa" "$work/sar.expect" >"$work/sar.json" <<'PY'
import json, sys
path, ns, sa, expfile = sys.argv[1:5]
items, expect = [], []
for line in open(path):
    f = line.split()
    if not f or f[0].startswith("#"): continue
    want, verb, res = f[0], f[1], f[2]
    namespace = f[3] if len(f) > 3 and f[3] != "-" else ""
    name = f[4] if len(f) > 4 else ""
    res, _, sub = res.partition("/")
    resource, _, group = res.partition(".")
    expect.append({"want": want, "line": line.strip()})
    items.append({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
      "spec": {"user": f"system:serviceaccount:{ns}:{sa}",
               "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"],
               "resourceAttributes": {"verb": verb, "group": group, "resource": resource,
                                      "subresource": sub, "namespace": namespace, "name": name}}})
print(json.dumps({"apiVersion": "v1", "kind": "List", "items": items}))
json.dump(expect, open(expfile, "w"))
PY
  k create -f "$work/sar.json" -o json >"$work/sar.out" || return 1
  python3 - "$work/sar.expect" "$work/sar.out" <<'PY'
import json, sys
sent = json.load(open(sys.argv[1]))
# kubectl prints one JSON object per created review, one after the other.
text, dec, got, i = open(sys.argv[2]).read(), json.JSONDecoder(), [], 0
while True:
    while i < len(text) and text[i].isspace(): i += 1
    if i >= len(text): break
    obj, i = dec.raw_decode(text, i)
    got.extend(obj.get("items", [obj]))
bad = 0
for s, g in zip(sent, got):
    allowed = bool(g["status"].get("allowed"))
    if allowed != (s["want"] == "yes"):
        bad += 1
        print(f"    {s['line']}: got {'yes' if allowed else 'no'} ({g['status'].get('reason', '')})")
sys.exit(1 if bad or len(got) != len(sent) else 0)
PY
}
rbac_wait() { # <expectation line>: the authorizer's informer catches up within a moment
  echo "$1" >"$work/first.txt"
  for _ in $(seq 1 50); do access "$work/first.txt" >/dev/null && return 0; sleep 0.2; done
  access "$work/first.txt" >&2 || true
  fail "RBAC: '$1' for $as still not true after 10 s"
}

cat >"$work/rbac-common.txt" <<RULES
# Reads across the cluster (dashboard, fit check, migration).
yes get nodes
yes list nodes
yes watch nodes
no patch nodes - shared-1
yes list pods -
yes watch pods acme-production
yes get namespaces - acme-production
yes list namespaces
yes list resourcequotas -
yes list poddisruptionbudgets.policy acme-production
yes get deployments.apps acme-production web
yes list statefulsets.apps -
yes watch deployments.apps -
yes patch deployments.apps acme-production web
yes patch statefulsets.apps acme-production cache
# The platform's resources, their status and finalizers.
yes create dedicatednodes.hexabase.ai
yes delete dedicatednodes.hexabase.ai - dn-1
yes patch dedicatednodes.hexabase.ai/status - dn-1
yes update dedicatednodes.hexabase.ai/finalizers - dn-1
yes create workloadmigrations.hexabase.ai acme-production
yes patch workloadmigrations.hexabase.ai/status acme-production m-1
yes watch workloadmigrations.hexabase.ai -
# What it installs at start-up (server-side apply; an apply that creates is a create of that name).
yes create customresourcedefinitions.apiextensions.k8s.io - dedicatednodes.hexabase.ai
yes patch customresourcedefinitions.apiextensions.k8s.io - dedicatednodes.hexabase.ai
yes get customresourcedefinitions.apiextensions.k8s.io - workloadmigrations.hexabase.ai
yes watch customresourcedefinitions.apiextensions.k8s.io - workloadmigrations.hexabase.ai
yes create priorityclasses.scheduling.k8s.io - hexabase-dedicated
yes patch priorityclasses.scheduling.k8s.io - hexabase-dedicated
yes create validatingadmissionpolicies.admissionregistration.k8s.io - hexabase-dedicated-pods
yes patch validatingadmissionpolicies.admissionregistration.k8s.io - hexabase-dedicated-pods
yes patch validatingadmissionpolicybindings.admissionregistration.k8s.io - hexabase-dedicated-pods
yes create validatingadmissionpolicies.admissionregistration.k8s.io - hexabase-tenant-pods
yes patch validatingadmissionpolicybindings.admissionregistration.k8s.io - hexabase-tenant-pods
# Events: published on the orders (in default, as for every cluster-scoped object) and on the
# migrations (in their namespace), read for the node page.
yes create events.events.k8s.io default
yes patch events.events.k8s.io default
yes create events.events.k8s.io acme-production
yes list events default
no delete events default
no update events.events.k8s.io default
# The engine Lease, in the release namespace only.
yes create leases.coordination.k8s.io $ns
yes get leases.coordination.k8s.io $ns hexabase-engine
yes update leases.coordination.k8s.io $ns hexabase-engine
no update leases.coordination.k8s.io kube-system hexabase-engine
no update leases.coordination.k8s.io $ns other
no delete leases.coordination.k8s.io $ns hexabase-engine
# Nothing else.
no get secrets $ns
no list secrets -
no create pods acme-production
no delete pods acme-production web-1
no create pods/eviction acme-production web-1
no update deployments.apps acme-production web
no delete deployments.apps acme-production web
no create deployments.apps acme-production
no create configmaps $ns
no patch namespaces - acme-production
no update resourcequotas acme-production q
no delete customresourcedefinitions.apiextensions.k8s.io - dedicatednodes.hexabase.ai
no update dedicatednodes.hexabase.ai - dn-1
no deletecollection workloadmigrations.hexabase.ai acme-production
no get secrets acme-production
no patch customresourcedefinitions.apiextensions.k8s.io - other.example.com
no list customresourcedefinitions.apiextensions.k8s.io
no create customresourcedefinitions.apiextensions.k8s.io - other.example.com
no create customresourcedefinitions.apiextensions.k8s.io
no create priorityclasses.scheduling.k8s.io - other
no patch validatingadmissionpolicies.admissionregistration.k8s.io - other
no create mutatingwebhookconfigurations.admissionregistration.k8s.io - x
no create serviceaccounts/token $ns $sa
no bind clusterroles.rbac.authorization.k8s.io
no escalate clusterroles.rbac.authorization.k8s.io
no impersonate users
no create nodepools.karpenter.sh
RULES

rbac_apply a
rbac_wait "yes create nodes"
{ cat "$work/rbac-common.txt"
  printf '%s\n' "yes create nodes" "yes delete nodes - dn-1" "no create nodeclaims.karpenter.sh" "no delete nodeclaims.karpenter.sh - x"
} >"$work/rbac-a.txt"
access "$work/rbac-a.txt" || fail "RBAC (kwok) for $as: the lines above"
ok "RBAC (kwok), as the API server enforces it for $as: $(grep -c '^yes' "$work/rbac-a.txt") needed permissions granted, $(grep -c '^no' "$work/rbac-a.txt") others refused"

rbac_apply b
rbac_wait "yes create nodeclaims.karpenter.sh"
{ cat "$work/rbac-common.txt"
  printf '%s\n' "yes create nodeclaims.karpenter.sh" "yes delete nodeclaims.karpenter.sh - x" "yes watch nodeclaims.karpenter.sh" \
    "no update nodeclaims.karpenter.sh - x" "no create nodes" "no delete nodes - dn-1" \
    "yes list events -" "yes get kwoknodeclasses.karpenter.kwok.sh - default" "no update kwoknodeclasses.karpenter.kwok.sh - default"
} >"$work/rbac-b.txt"
access "$work/rbac-b.txt" || fail "RBAC (karpenter) for $as: the lines above"
ok "RBAC (karpenter): $(grep -c '^yes' "$work/rbac-b.txt") granted (NodeClaims get/list/watch/create/delete), $(grep -c '^no' "$work/rbac-b.txt") refused (Node create/delete among them)"

step "chart check passed: $checks groups of checks in $(( ($(date +%s%N) - T0) / 1000000 )) ms (namespace $ns and the check's cluster objects removed)"
