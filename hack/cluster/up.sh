#!/usr/bin/env bash
# Start (or confirm) the local Kubernetes control plane: etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, KWOK (the kubelets, with their emulated resource
# metrics) and Prometheus scraping them as it scrapes kubelets, on 127.0.0.1, then Karpenter
# with its kwok cloud provider (hack/karpenter/up.sh).
# Builds the binaries first if needed (hack/cluster/build.sh).
#
# Idempotent: components already running and healthy are left alone.
# Last line printed: `export KUBECONFIG=<path>`; the same goes to $HEXA_CLUSTER_DIR/env.
#
# Env: HEXA_CACHE (hack/env.sh), HEXA_CLUSTER_DIR (state; default $HEXA_CACHE/cluster),
#      HEXA_CLUSTER_TIMEOUT (seconds to wait for health, default 180),
#      K8S_VERSION / ETCD_VERSION / KWOK_VERSION (same defaults as build.sh),
#      HEXA_PROMETHEUS=0 (no Prometheus: the scale benchmark's 2,000 nodes need none),
#      HEXA_KARPENTER=0 (no Karpenter: nor do they need it),
#      PROMETHEUS_BIN (default /usr/bin/prometheus, Debian's package: hack/tools.sh --system).
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.8}"
KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
D="${HEXA_CLUSTER_DIR:-$HEXA_CACHE/cluster}"
TIMEOUT="${HEXA_CLUSTER_TIMEOUT:-180}"

K8S_BIN="$HEXA_CACHE/k8s/$K8S_VERSION/bin"
ETCD_BIN="$HEXA_CACHE/etcd/$ETCD_VERSION/bin/etcd"
KWOK_BIN="$HEXA_CACHE/kwok/$KWOK_VERSION/bin/kwok"
KWOK_STAGES="$HEXA_CACHE/kwok/$KWOK_VERSION/stages"
KUBECTL="$K8S_BIN/kubectl"
KWOK_METRICS="$HEXA_CACHE/kwok/$KWOK_VERSION/metrics"
PROMETHEUS_BIN="${PROMETHEUS_BIN:-/usr/bin/prometheus}"
# How often Prometheus scrapes the (emulated) kubelets; the dashboard's charts and the latency
# guard read at this resolution.
SCRAPE_INTERVAL=5s

T_START=$(date +%s)
K8S_VERSION="$K8S_VERSION" ETCD_VERSION="$ETCD_VERSION" KWOK_VERSION="$KWOK_VERSION" \
  bash "$HERE/build.sh"

mkdir -p "$D"/{pki,logs,run,etcd-data}
chmod 700 "$D" "$D/pki" "$D/etcd-data"
D="$(cd "$D" && pwd)" # absolute: it appears in command lines that down.sh checks
PKI="$D/pki"
KUBECONFIG_PATH="$D/kubeconfig"

exec 8>"$D/run/.lock"
flock -w 300 8 || { echo "$(basename "$0"): another up.sh/down.sh holds $D/run/.lock" >&2; exit 1; }

COMPONENTS=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok)
[[ "${HEXA_PROMETHEUS:-1}" == 0 ]] || COMPONENTS+=(prometheus)

bin_of() {
  case "$1" in
    etcd) echo "$ETCD_BIN" ;;
    kwok) echo "$KWOK_BIN" ;;
    prometheus) echo "$PROMETHEUS_BIN" ;;
    *) echo "$K8S_BIN/$1" ;;
  esac
}

# running <component>: the PID file names a live process that is our binary with our state dir.
running() {
  local pf="$D/run/$1.pid" pid
  [[ -f "$pf" ]] || return 1
  pid="$(cat "$pf")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  local argv0 cmd
  argv0="$(tr '\0' '\n' <"/proc/$pid/cmdline" | head -n1)"
  cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
  [[ "$argv0" == "$(bin_of "$1")" && "$cmd" == *"$D/"* ]]
}

port_free() { ! ss -ltnH "sport = :$1" 2>/dev/null | grep -q .; }

pick_port() { # a free port outside the ephemeral range, not in $TAKEN
  local p i
  for i in $(seq 1 500); do
    p=$(( 20000 + RANDOM % 12000 ))
    [[ " $TAKEN " == *" $p "* ]] && continue
    port_free "$p" && { TAKEN+=" $p"; echo "$p"; return 0; }
  done
  echo "up.sh: no free port found" >&2
  return 1
}

# ---------------------------------------------------------------- ports
any_running=0
for c in "${COMPONENTS[@]}"; do running "$c" && any_running=1; done
# SIMULATOR_PORT: where `make run` starts the demo's traffic simulator, which Prometheus scrapes.
PORT_NAMES=(ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT SCHEDULER_PORT KWOK_PORT PROMETHEUS_PORT SIMULATOR_PORT)
if [[ -f "$D/ports.env" ]]; then
  # shellcheck disable=SC1091
  source "$D/ports.env"
fi
TAKEN=""
changed=0
for n in "${PORT_NAMES[@]}"; do
  v="${!n:-}"
  # On a cold start, re-pick any remembered port that something else has taken meanwhile.
  if [[ -z "$v" ]] || { [[ $any_running == 0 ]] && ! port_free "$v"; } || [[ " $TAKEN " == *" $v "* ]]; then
    # Not in a $(…) subshell: pick_port records its pick in TAKEN, so two components never
    # get the same port.
    pick_port >"$D/run/.port"; v="$(cat "$D/run/.port")"; TAKEN+=" $v"; changed=1
  else
    TAKEN+=" $v"
  fi
  printf -v "$n" '%s' "$v"
done
if [[ $changed == 1 ]]; then
  for n in "${PORT_NAMES[@]}"; do echo "$n=${!n}"; done >"$D/ports.env"
fi

# ---------------------------------------------------------------- certificates
gen_cert() { # <name> <subject> <extensions>
  local name="$1" subj="$2" ext="$3"
  [[ -f "$PKI/$name.crt" && -f "$PKI/$name.key" ]] && return 0
  openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" >"$PKI/$name.ext"
  openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 3650 -sha256 -extfile "$PKI/$name.ext" -out "$PKI/$name.crt" 2>/dev/null
  rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

if [[ ! -f "$PKI/ca.crt" ]]; then
  step "cluster: generating certificates in $PKI"
  openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/ca.key" -sha256 -days 3650 -subj "/CN=hexabase-local-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$PKI/ca.crt" 2>/dev/null
fi
LEAF="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer"
gen_cert apiserver "/CN=kube-apiserver" "$LEAF
extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,IP:192.0.2.10,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
CLIENT="$LEAF
extendedKeyUsage=clientAuth"
gen_cert admin "/O=system:masters/CN=kubernetes-admin" "$CLIENT"
gen_cert kube-controller-manager "/CN=system:kube-controller-manager" "$CLIENT"
gen_cert kube-scheduler "/CN=system:kube-scheduler" "$CLIENT"
gen_cert kwok "/O=system:masters/CN=kwok-controller" "$CLIENT"
gen_cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$CLIENT"
# Front-proxy (aggregation layer) CA and client, as kubeadm sets up: components then find a
# requestheader CA in kube-system/extension-apiserver-authentication.
if [[ ! -f "$PKI/front-proxy-ca.crt" ]]; then
  openssl genrsa -out "$PKI/front-proxy-ca.key" 2048 2>/dev/null
  openssl req -x509 -new -key "$PKI/front-proxy-ca.key" -sha256 -days 3650 -subj "/CN=front-proxy-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$PKI/front-proxy-ca.crt" 2>/dev/null
fi
if [[ ! -f "$PKI/front-proxy-client.crt" ]]; then
  openssl genrsa -out "$PKI/front-proxy-client.key" 2048 2>/dev/null
  openssl req -new -key "$PKI/front-proxy-client.key" -subj "/CN=front-proxy-client" -out "$PKI/front-proxy-client.csr" 2>/dev/null
  printf '%s\n' "$CLIENT" >"$PKI/front-proxy-client.ext"
  openssl x509 -req -in "$PKI/front-proxy-client.csr" -CA "$PKI/front-proxy-ca.crt" -CAkey "$PKI/front-proxy-ca.key" \
    -CAcreateserial -days 3650 -sha256 -extfile "$PKI/front-proxy-client.ext" -out "$PKI/front-proxy-client.crt" 2>/dev/null
  rm -f "$PKI/front-proxy-client.csr" "$PKI/front-proxy-client.ext"
fi
if [[ ! -f "$PKI/sa.key" ]]; then
  openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
  openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
fi
chmod 600 "$PKI"/*.key

# ---------------------------------------------------------------- kubeconfigs
b64() { base64 -w0 <"$1"; }
write_kubeconfig() { # <file> <cert name> <user name>
  local tmp="$1.tmp"
  cat >"$tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hexa-local
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(b64 "$PKI/ca.crt")
users:
- name: $3
  user:
    client-certificate-data: $(b64 "$PKI/$2.crt")
    client-key-data: $(b64 "$PKI/$2.key")
contexts:
- name: hexa-local
  context:
    cluster: hexa-local
    user: $3
    namespace: default
current-context: hexa-local
EOF
  chmod 600 "$tmp"
  mv -f "$tmp" "$1"
}
write_kubeconfig "$KUBECONFIG_PATH" admin kubernetes-admin
write_kubeconfig "$D/run/kube-controller-manager.kubeconfig" kube-controller-manager system:kube-controller-manager
write_kubeconfig "$D/run/kube-scheduler.kubeconfig" kube-scheduler system:kube-scheduler
write_kubeconfig "$D/run/kwok.kubeconfig" kwok kwok-controller

# A component whose configuration file changed since it started is restarted below, so a
# cluster started by an older checkout picks up the new configuration.
stale_config=()
write_config() { # <component> <file>; the content on stdin
  local c="$1" f="$2"
  cat >"$f.new"
  if [[ -f "$f" ]] && ! cmp -s "$f" "$f.new"; then stale_config+=("$c"); fi
  mv -f "$f.new" "$f"
}

# KWOK configuration: the default Stages kwokctl uses and its emulation of the kubelet's
# resource metrics (both copied from the kwok module by build.sh), and what the emulated
# containers use (kwok/usage.yaml).
write_config kwok "$D/run/kwok.yaml" < <(
  first=1
  for f in "$KWOK_STAGES"/*.yaml "$KWOK_METRICS/metrics-resource.yaml" "$HERE/kwok/usage.yaml"; do
    [[ $first == 1 ]] || echo "---"
    first=0
    cat "$f"
  done
)

# Prometheus scrapes every KWOK node's /metrics/resource as it would scrape a kubelet's, with
# the node's name as the `node` label (as kube-prometheus labels kubelet series). The targets
# come from KWOK's own service discovery endpoint (one per node it manages): Debian's
# Prometheus is built without kubernetes_sd. The dashboard reads usage only through PromQL,
# so a real cluster's Prometheus, discovering kubelets its own way, works the same.
write_config prometheus "$D/run/prometheus.yml" <<EOF
global:
  scrape_interval: $SCRAPE_INTERVAL
  scrape_timeout: $SCRAPE_INTERVAL
  evaluation_interval: $SCRAPE_INTERVAL
scrape_configs:
  - job_name: kubelet-resource
    http_sd_configs:
      - url: http://127.0.0.1:$KWOK_PORT/discovery/prometheus
        refresh_interval: $SCRAPE_INTERVAL
    relabel_configs:
      - source_labels: [__metrics_path__]
        regex: /metrics/nodes/([^/]+)/metrics/resource
        action: keep
      - source_labels: [__metrics_path__]
        regex: /metrics/nodes/([^/]+)/metrics/resource
        target_label: node
        replacement: \${1}
      - regex: metrics_name
        action: labeldrop
  # The demo's traffic simulator (hack/run.sh starts it; down between runs), standing in for
  # the web application's own request metrics.
  - job_name: demo-traffic-simulator
    static_configs:
      - targets: ['127.0.0.1:$SIMULATOR_PORT']
EOF

# ---------------------------------------------------------------- start
args_of() {
  case "$1" in
    etcd)
      ARGS=(--name=hexa-local --data-dir="$D/etcd-data" \
        --listen-client-urls="http://127.0.0.1:$ETCD_PORT" \
        --advertise-client-urls="http://127.0.0.1:$ETCD_PORT" \
        --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
        --initial-cluster="hexa-local=http://127.0.0.1:$ETCD_PEER_PORT" \
        --auto-compaction-retention=1 --quota-backend-bytes=4294967296 \
        --log-level=warn)
      ;;
    kube-apiserver)
      ARGS=(--etcd-servers="http://127.0.0.1:$ETCD_PORT" \
        --bind-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
        --advertise-address=192.0.2.10 --endpoint-reconciler-type=none \
        --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key" \
        --client-ca-file="$PKI/ca.crt" \
        --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt" \
        --kubelet-client-key="$PKI/apiserver-kubelet-client.key" \
        --service-account-key-file="$PKI/sa.pub" \
        --service-account-signing-key-file="$PKI/sa.key" \
        --service-account-issuer=https://kubernetes.default.svc.cluster.local \
        --service-cluster-ip-range=10.96.0.0/16 \
        --authorization-mode=Node,RBAC \
        --allow-privileged=true \
        --requestheader-client-ca-file="$PKI/front-proxy-ca.crt" \
        --requestheader-allowed-names=front-proxy-client \
        --requestheader-username-headers=X-Remote-User \
        --requestheader-group-headers=X-Remote-Group \
        --requestheader-extra-headers-prefix=X-Remote-Extra- \
        --proxy-client-cert-file="$PKI/front-proxy-client.crt" \
        --proxy-client-key-file="$PKI/front-proxy-client.key" \
        --enable-admission-plugins=NodeRestriction \
        --profiling=false)
      ;;
    kube-controller-manager)
      local kc="$D/run/kube-controller-manager.kubeconfig"
      ARGS=(--kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
        --bind-address=127.0.0.1 --secure-port="$KCM_PORT" --cert-dir="$D/run/kube-controller-manager-certs" \
        --leader-elect=false \
        --root-ca-file="$PKI/ca.crt" --service-account-private-key-file="$PKI/sa.key" \
        --use-service-account-credentials=true \
        --cluster-signing-cert-file="$PKI/ca.crt" --cluster-signing-key-file="$PKI/ca.key" \
        --service-cluster-ip-range=10.96.0.0/16 \
        '--controllers=*' \
        --kube-api-qps=100 --kube-api-burst=200 \
        --profiling=false)
      ;;
    kube-scheduler)
      local kc="$D/run/kube-scheduler.kubeconfig"
      ARGS=(--kubeconfig="$kc" --authentication-kubeconfig="$kc" --authorization-kubeconfig="$kc" \
        --bind-address=127.0.0.1 --secure-port="$SCHEDULER_PORT" --cert-dir="$D/run/kube-scheduler-certs" \
        --leader-elect=false \
        --kube-api-qps=100 --kube-api-burst=200 \
        --profiling=false)
      ;;
    kwok)
      ARGS=(--kubeconfig="$D/run/kwok.kubeconfig" --config="$D/run/kwok.yaml" \
        --manage-all-nodes=false \
        --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
        --node-ip=127.0.0.1 --node-port="$KWOK_PORT" --server-address="127.0.0.1:$KWOK_PORT" \
        --node-lease-duration-seconds=40 \
        --cidr=10.244.0.0/16)
      ;;
    prometheus)
      ARGS=(--config.file="$D/run/prometheus.yml" --storage.tsdb.path="$D/prometheus-data" \
        --storage.tsdb.retention.time=8d --web.listen-address="127.0.0.1:$PROMETHEUS_PORT" \
        --log.level=warn)
      ;;
  esac
}

start() {
  local c="$1" bin
  bin="$(bin_of "$c")"
  args_of "$c"
  {
    echo
    echo "=== $(date -u +%FT%TZ) starting $c"
  } >>"$D/logs/$c.log"
  # A new session, so the component outlives this shell; the inner shell records its
  # own PID and execs the binary (same PID).
  setsid bash -c 'echo $$ >"$1"; shift; exec "$@"' _ "$D/run/$c.pid" "$bin" "${ARGS[@]}" \
    </dev/null >>"$D/logs/$c.log" 2>&1 8>&- &
  local i
  for i in $(seq 1 50); do
    running "$c" && return 0
    sleep 0.1
  done
  echo "up.sh: $c did not start; last log lines ($D/logs/$c.log):" >&2
  tail -n 30 "$D/logs/$c.log" >&2
  exit 1
}

healthy() {
  case "$1" in
    etcd) curl -sf --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"' ;;
    kube-apiserver)
      [[ "$(curl -s --max-time 3 --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
        "https://127.0.0.1:$APISERVER_PORT/readyz")" == ok ]] ;;
    kube-controller-manager) [[ "$(curl -sk --max-time 2 "https://127.0.0.1:$KCM_PORT/healthz")" == ok ]] ;;
    kube-scheduler) [[ "$(curl -sk --max-time 2 "https://127.0.0.1:$SCHEDULER_PORT/healthz")" == ok ]] ;;
    kwok) [[ "$(curl -s --max-time 2 "http://127.0.0.1:$KWOK_PORT/healthz")" == ok ]] ;;
    prometheus) curl -sf --max-time 2 "http://127.0.0.1:$PROMETHEUS_PORT/-/ready" >/dev/null ;;
  esac
}

wait_healthy() {
  local c="$1" deadline=$(( $(date +%s) + TIMEOUT ))
  until healthy "$c"; do
    if ! running "$c"; then
      echo "up.sh: $c exited; last log lines ($D/logs/$c.log):" >&2
      tail -n 40 "$D/logs/$c.log" >&2
      exit 1
    fi
    if (( $(date +%s) > deadline )); then
      echo "up.sh: $c not healthy after ${TIMEOUT}s; last log lines ($D/logs/$c.log):" >&2
      tail -n 40 "$D/logs/$c.log" >&2
      exit 1
    fi
    sleep 0.3
  done
}

# A running component whose configuration changed is stopped here and started again below.
for c in "${stale_config[@]}"; do
  running "$c" || continue
  pid="$(cat "$D/run/$c.pid")"
  step "cluster: restarting $c (its configuration changed)"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do running "$c" || break; sleep 0.1; done
  running "$c" && kill -KILL "$pid" 2>/dev/null || true
done

all_ok=1
for c in "${COMPONENTS[@]}"; do
  if running "$c" && healthy "$c"; then continue; fi
  all_ok=0
done

if [[ $all_ok == 1 ]]; then
  step "cluster: already running (state in $D)"
else
  step "cluster: starting in $D (apiserver https://127.0.0.1:$APISERVER_PORT)"
  for c in "${COMPONENTS[@]}"; do
    t0=$(date +%s%N)
    if running "$c"; then
      step "cluster: $c already running (pid $(cat "$D/run/$c.pid"))"
    else
      start "$c"
    fi
    wait_healthy "$c"
    step "cluster: $c healthy (pid $(cat "$D/run/$c.pid"), $(( ($(date +%s%N) - t0) / 1000000 ))ms)"
  done
fi

# The default ServiceAccount shows that the controller-manager's token machinery works.
deadline=$(( $(date +%s) + TIMEOUT ))
until KUBECONFIG="$KUBECONFIG_PATH" "$KUBECTL" get serviceaccount default -n default >/dev/null 2>&1; do
  if (( $(date +%s) > deadline )); then
    echo "up.sh: ServiceAccount default/default not created after ${TIMEOUT}s; see $D/logs/kube-controller-manager.log" >&2
    exit 1
  fi
  sleep 0.5
done

cat >"$D/env" <<EOF
KUBECONFIG=$KUBECONFIG_PATH
KUBECTL=$KUBECTL
HEXA_CLUSTER_DIR=$D
HEXA_APISERVER=https://127.0.0.1:$APISERVER_PORT
EOF
if [[ " ${COMPONENTS[*]} " == *" prometheus "* ]]; then
  echo "PROMETHEUS_URL=http://127.0.0.1:$PROMETHEUS_PORT" >>"$D/env"
  echo "SIMULATOR_ADDR=127.0.0.1:$SIMULATOR_PORT" >>"$D/env"
fi

# Karpenter (its kwok cloud provider) provisions the dedicated nodes: docs/karpenter.md.
# HEXA_KARPENTER=0 leaves it out (and stops one running): the scale bench uses the kwok
# provider, and Karpenter watching 2,000 nodes would take a core from its measurements.
if [[ "${HEXA_KARPENTER:-1}" == 0 ]]; then
  HEXA_CLUSTER_DIR="$D" bash "$HERE/../karpenter/down.sh"
else
  HEXA_CLUSTER_DIR="$D" bash "$HERE/../karpenter/up.sh"
fi

step "cluster: ready in $(( $(date +%s) - T_START ))s — kube-apiserver https://127.0.0.1:$APISERVER_PORT, kubectl $KUBECTL, logs $D/logs"
echo "export KUBECONFIG=$KUBECONFIG_PATH"
