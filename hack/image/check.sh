#!/usr/bin/env bash
# Proves the OCI image runs, without a container engine: unpacks the archive's layers with
# plain tar (index.json -> manifest -> layers, whiteouts honoured) into a temp dir, then starts
# the image's entrypoint with the image's own environment, user and working dir:
#   - as root here: in a private mount namespace, the unpacked root filesystem bind-mounted
#     read-only with a tmpfs on /tmp (as the chart runs it: readOnlyRootFilesystem + emptyDir),
#     then chroot --userspec=<image user>: only the image's loader and libraries exist;
#   - otherwise: the image's own loader with --library-path to the image's libraries (the
#     process then runs as the calling user).
# The server gets a SQLite DATABASE_URL in the temp dir, no KUBECONFIG and no cluster,
# --engine=false, a free port. Expects 200 from /healthz, /readyz and /login, a served wasm
# bundle, the uid of the image's user, and that the loaded libraries are the image's own.
#
# Env: HEXA_IMAGE_OUT (default $HEXA_CACHE/image/hexabase-server.oci.tar),
#      HEXA_IMAGE_CHECK_MODE=loader to use the loader mode even as root.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"

archive="${HEXA_IMAGE_OUT:-$HEXA_CACHE/image/hexabase-server.oci.tar}"
[[ -f "$archive" ]] || { echo "image/check.sh: no $archive; run 'bash hack/image/build.sh' first" >&2; exit 1; }
t0=$(date +%s%N)
work="$(mktemp -d "${TMPDIR:-/tmp}/hexa-image-check.XXXXXX")"
pid=""
cleanup() {
  if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  # The read-only bind and the tmpfs live in the server's private mount namespace only:
  # nothing is mounted under $work here.
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "image/check.sh: FAIL: $*" >&2; [[ -f "$work/server.log" ]] && tail -n 30 "$work/server.log" >&2; exit 1; }
ok() { printf '  ok  %s\n' "$*"; }

step "image check: unpacking $archive ($(du -h "$archive" | cut -f1))"
mkdir -p "$work/oci" "$work/rootfs"
tar -xf "$archive" -C "$work/oci"
# index.json -> manifest -> config + layers (python3: JSON only, no image tooling).
python3 - "$work/oci" >"$work/image.env" <<'PY'
import json, shlex, sys
d = sys.argv[1]
blob = lambda dg: f"{d}/blobs/{dg.replace(':', '/', 1)}"
index = json.load(open(f"{d}/index.json"))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
config = json.load(open(blob(manifest["config"]["digest"])))
c = config.get("config", {})
out = {
  "LAYERS": " ".join(blob(l["digest"]) for l in manifest["layers"]),
  "ENTRYPOINT": " ".join(c.get("Entrypoint") or []),
  "CMD": " ".join(c.get("Cmd") or []),
  "IMAGE_USER": c.get("User", ""),
  "WORKDIR": c.get("WorkingDir", "/"),
  "IMAGE_ENV": "\n".join(c.get("Env") or []),
  "LABELS": "\n".join(f"{k}={v}" for k, v in sorted((c.get("Labels") or {}).items())),
}
for k, v in out.items():
    print(f"{k}={shlex.quote(v)}")
PY
# shellcheck disable=SC1091
. "$work/image.env"
for layer in $LAYERS; do
  # Whiteouts: .wh.<name> deletes <name> from lower layers; .wh..wh..opq empties the directory.
  while read -r wh; do
    dir="$(dirname "$wh")"; base="$(basename "$wh")"
    if [[ "$base" == .wh..wh..opq ]]; then find "$work/rootfs/$dir" -mindepth 1 -delete 2>/dev/null || true
    else rm -rf "${work:?}/rootfs/$dir/${base#.wh.}"; fi
  done < <(tar -tzf "$layer" | grep -E '(^|/)\.wh\.' || true)
  tar -xzf "$layer" -C "$work/rootfs" --numeric-owner --exclude='.wh.*' --exclude='*/.wh.*'
done
[[ -n "$ENTRYPOINT" ]] || fail "the image has no entrypoint"
entry="${ENTRYPOINT%% *}"
[[ -x "$work/rootfs$entry" ]] || fail "entrypoint $entry is not an executable file in the image"
ok "unpacked $(echo "$LAYERS" | wc -w) layer(s): $(du -sh "$work/rootfs" | cut -f1) on disk; entrypoint $ENTRYPOINT; user $IMAGE_USER"
printf '%s\n' "$LABELS" | grep -q '^org.opencontainers.image.version=' || fail "no org.opencontainers.image.version label"
ok "labels: $(printf '%s\n' "$LABELS" | sed 's/=.*//' | tr '\n' ' ')"
uid="${IMAGE_USER%%:*}"
[[ "$uid" =~ ^[0-9]+$ && "$uid" != 0 ]] || fail "image user is '$IMAGE_USER', not a numeric non-root uid"
grep -q "^[^:]*:x:$uid:" "$work/rootfs/etc/passwd" || fail "uid $uid is not in the image's /etc/passwd"

port=$(free_port)
# The image's environment, then the check's: a SQLite file in the (tmpfs) /tmp, this port,
# no cluster. env -i: nothing of this shell (KUBECONFIG, HOME, ...) leaks in.
mapfile -t envv < <(printf '%s\n' "$IMAGE_ENV" | grep -v '^LISTEN_ADDR=')
envv+=("LISTEN_ADDR=127.0.0.1:$port" "DATABASE_URL=sqlite:///tmp/hexabase-check.db?mode=rwc" "RUST_LOG=info")
args=(--engine=false)

mode=""
if [[ "${HEXA_IMAGE_CHECK_MODE:-}" != loader && $(id -u) == 0 ]] && command -v unshare >/dev/null && command -v chroot >/dev/null \
   && unshare -m true 2>/dev/null; then
  mode=chroot
  # Private mount namespace: rootfs read-only, tmpfs on /tmp, then chroot as the image user.
  # env, unshare, sh and chroot each exec the next: $! is the server's own pid. chroot(1) starts
  # it in / (it cannot honour the image's WorkingDir; the server uses no relative path here).
  env -i "${envv[@]}" "$(command -v unshare)" -m --propagation private /bin/sh -c '
    r="$1"; u="$2"; shift 2
    /bin/mount --bind "$r" "$r" && /bin/mount -o remount,bind,ro "$r" "$r" \
      && /bin/mount -t tmpfs -o mode=1777,size=64m tmpfs "$r/tmp" || exit 97
    exec '"$(command -v chroot)"' --userspec="$u" "$r" "$@"' _ "$work/rootfs" "$IMAGE_USER" \
    $ENTRYPOINT $CMD "${args[@]}" </dev/null >"$work/server.log" 2>&1 &
  pid=$!
else
  mode=loader
  interp="$(ls "$work/rootfs"/lib64/ld-linux-*.so.* 2>/dev/null | head -n1)"
  [[ -n "$interp" ]] || fail "no loader in the image's /lib64"
  libpath="$(find "$work/rootfs" -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:)"
  mkdir -p "$work/tmp"
  envv=("${envv[@]/#DATABASE_URL=*/DATABASE_URL=sqlite://$work/tmp/hexabase-check.db?mode=rwc}")
  envv=("${envv[@]/#LEPTOS_SITE_ROOT=/LEPTOS_SITE_ROOT=$work/rootfs}")
  envv=("${envv[@]/#HEXA_CATALOGUE=/HEXA_CATALOGUE=$work/rootfs}")
  envv=("${envv[@]/#SSL_CERT_FILE=/SSL_CERT_FILE=$work/rootfs}")
  (cd "$work/tmp" && exec env -i "${envv[@]}" "$interp" --library-path "$libpath" \
     "$work/rootfs$entry" "${args[@]}") </dev/null >"$work/server.log" 2>&1 &
  pid=$!
fi
ok "started the image's $entry ($mode mode, pid $pid) on 127.0.0.1:$port"

base="http://127.0.0.1:$port"
up=0
for _ in $(seq 1 150); do
  kill -0 "$pid" 2>/dev/null || fail "the server exited"
  if curl -fsS -o /dev/null --max-time 2 "$base/healthz" 2>/dev/null; then up=1; break; fi
  sleep 0.2
done
[[ $up == 1 ]] || fail "no answer on $base/healthz after 30 s"
t_ready=$(( ($(date +%s%N) - t0) / 1000000 ))

code() { curl -s -o "$work/body" -w '%{http_code}' --max-time 10 "$base$1"; }
[[ "$(code /healthz)" == 200 ]] || fail "/healthz is not 200"
ok "GET /healthz 200 ($(head -c 40 "$work/body"))"
[[ "$(code /readyz)" == 200 ]] || fail "/readyz is not 200: $(cat "$work/body")"
grep -q '"status":"ready"' "$work/body" || fail "/readyz: $(cat "$work/body")"
ok "GET /readyz 200 $(cat "$work/body")"
[[ "$(code /login)" == 200 ]] || fail "/login is not 200"
grep -qi '<form' "$work/body" || fail "/login has no form"
ok "GET /login 200 ($(wc -c <"$work/body") bytes of server-rendered HTML with the sign-in form)"
wasm="$(grep -o '/pkg/[A-Za-z0-9_.-]*\.wasm' "$work/body" | head -n1 || true)"
[[ -n "$wasm" ]] || wasm="/pkg/$(basename "$(ls "$work/rootfs"/usr/share/hexabase/site/pkg/*.wasm | head -n1)")"
[[ "$(code "$wasm")" == 200 ]] || fail "$wasm is not served from the image's site files"
ok "GET $wasm 200 ($(wc -c <"$work/body") bytes, from the image's site files)"
[[ "$(code /site.css)" == 200 ]] || fail "/site.css is not 200"
ok "GET /site.css 200"

# Who runs it, with which libraries.
puid="$(awk '/^Uid:/{print $2}' "/proc/$pid/status")"
if [[ $mode == chroot ]]; then
  [[ "$puid" == "$uid" ]] || fail "the server runs as uid $puid, not $uid"
  ok "the process runs as uid $puid (the image's user), chrooted in the unpacked image"
else
  ok "the process runs as uid $puid, the caller's (the loader mode does not switch users)"
fi
libs="$(awk '$6 ~ /\.so/ {print $6}' "/proc/$pid/maps" | sort -u)"
outside="$(echo "$libs" | grep -v "^$work/rootfs/" || true)"
[[ -z "$outside" ]] || fail "libraries from outside the image: $outside"
ok "every loaded library is the image's own: $(echo "$libs" | sed "s|^$work/rootfs||" | tr '\n' ' ')"
if [[ $mode == chroot ]]; then
  rootopts="$(awk '$5 == "/" {print $6}' "/proc/$pid/mountinfo" | tail -n1)"
  [[ ",$rootopts," == *,ro,* ]] || fail "the server's root filesystem is mounted '$rootopts', not read-only"
  tmpfs="$(awk '$5 == "/tmp" {print $6, $9}' "/proc/$pid/mountinfo" | tail -n1)"
  ok "its root filesystem is read-only ($rootopts), /tmp is $tmpfs (as the chart mounts an emptyDir)"
fi
if grep -q '"level":"WARN".*no Kubernetes cluster\|no Kubernetes cluster' "$work/server.log"; then
  ok "no cluster configured: the server says so and serves anyway"
fi
grep -q '^{' "$work/server.log" && ok "logs are JSON lines (LOG_FORMAT=json from the image)"

kill -TERM "$pid"
for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$pid" 2>/dev/null && fail "the server did not stop within 10 s of SIGTERM"
wait "$pid" 2>/dev/null && rc=0 || rc=$?
pid=""
[[ $rc == 0 ]] || fail "the server exited $rc after SIGTERM"
ok "SIGTERM: clean exit"
step "image check passed in $(( ($(date +%s%N) - t0) / 1000000 )) ms (first /healthz 200 after ${t_ready} ms, including the unpack)"
