#!/usr/bin/env bash
# Builds the server's OCI image without a Docker daemon (buildah, vfs storage, chroot isolation),
# from scratch: the release server binary, exactly the shared libraries `ldd` lists for it (glibc:
# the loader, libc, libm, libgcc_s), CA certificates, /etc/passwd and /etc/group with the non-root
# user 10001, the site files (target/site: pkg/ with the wasm bundle, public assets) and the
# catalogue. No shell, no package manager in the image.
#   output: $HEXA_CACHE/image/hexabase-server.oci.tar (oci-archive), size printed
#   layout: /usr/local/bin/server, /usr/share/hexabase/site, /etc/hexabase/catalogue.yaml
# Inputs (from `bash hack/build.sh`): $CARGO_TARGET_DIR/release/server and target/site.
# This script never builds them: it waits for a build another process is running
# (HEXA_IMAGE_WAIT seconds, default 0) and otherwise fails saying what to run.
#
# Env: HEXA_CACHE, CARGO_TARGET_DIR (hack/env.sh), HEXA_IMAGE_NAME (default
#      localhost/hexabase/server), HEXA_IMAGE_TAG (default the Cargo workspace version),
#      HEXA_IMAGE_OUT (default $HEXA_CACHE/image/hexabase-server.oci.tar), SOURCE_DATE_EPOCH.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../env.sh
source "$HERE/../env.sh"
root="$(cd "$HERE/../.." && pwd)"
cd "$root"

bin="$CARGO_TARGET_DIR/release/server"
site="$root/target/site"
catalogue="$root/deploy/catalogue.yaml"
out="${HEXA_IMAGE_OUT:-$HEXA_CACHE/image/hexabase-server.oci.tar}"
version="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)"
name="${HEXA_IMAGE_NAME:-localhost/hexabase/server}"
tag="${HEXA_IMAGE_TAG:-$version}"
t0=$(date +%s)

# --- inputs
deadline=$(( $(date +%s) + ${HEXA_IMAGE_WAIT:-0} ))
have_inputs() { [[ -x "$bin" ]] && compgen -G "$site/pkg/*.wasm" >/dev/null; }
until have_inputs; do
  if (( $(date +%s) >= deadline )); then
    echo "image/build.sh: missing $bin or $site/pkg/*.wasm; run 'bash hack/build.sh' first" >&2
    exit 1
  fi
  sleep 10
done

# --- buildah (Debian's), installed once
if ! command -v buildah >/dev/null; then
  step "apt-get install buildah"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends buildah >/dev/null
fi

# One image build at a time per machine (the storage and the output file are shared).
mkdir -p "$HEXA_CACHE/locks" "$HEXA_CACHE/image" "$(dirname "$out")"
exec 9>"$HEXA_CACHE/locks/image-build.lock"
if ! flock -n 9; then
  step "another image build is running; waiting for it"
  flock 9
fi

export BUILDAH_ISOLATION=chroot
store="$HEXA_CACHE/image/storage"
bh() { buildah --root "$store/root" --runroot "$store/run" --storage-driver vfs "$@"; }

stage="$(mktemp -d "$HEXA_CACHE/image/stage.XXXXXX")"
ctr=""
cleanup() {
  [[ -n "$ctr" ]] && bh rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup EXIT

# --- the root filesystem, staged
step "image: staging the root filesystem"
install -d -m 0755 "$stage"/{etc/ssl/certs,etc/hexabase,usr/local/bin,usr/share/hexabase}
install -d -m 1777 "$stage/tmp"
install -m 0755 "$bin" "$stage/usr/local/bin/server"

# Exactly what the dynamic loader resolves for the binary (absolute paths in ldd's output),
# each at the path ldd names, as a regular file (symlinks resolved).
interp="$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)\]/\1/p')"
libs=()
while read -r path; do libs+=("$path"); done < <(ldd "$bin" | grep -o '/[^ ]*' | sort -u)
[[ -n "$interp" ]] && libs+=("$interp")
mapfile -t libs < <(printf '%s\n' "${libs[@]}" | sort -u)
for lib in "${libs[@]}"; do
  [[ -f "$lib" ]] || { echo "image/build.sh: ldd lists $lib but it is not a file" >&2; exit 1; }
  install -D -m 0755 "$(readlink -f "$lib")" "$stage$lib"
done
if ldd "$bin" | grep -q 'not found'; then
  echo "image/build.sh: unresolved libraries:" >&2; ldd "$bin" >&2; exit 1
fi

install -m 0644 /etc/ssl/certs/ca-certificates.crt "$stage/etc/ssl/certs/ca-certificates.crt"
cat >"$stage/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
hexabase:x:10001:10001:hexabase:/tmp:/sbin/nologin
PASSWD
cat >"$stage/etc/group" <<'GROUP'
root:x:0:
hexabase:x:10001:
GROUP
# glibc's resolver (nss files and dns are part of libc since 2.34): /etc/hosts, then DNS.
echo 'hosts: files dns' >"$stage/etc/nsswitch.conf"
chmod 0644 "$stage"/etc/{passwd,group,nsswitch.conf}

cp -a "$site" "$stage/usr/share/hexabase/site"
install -m 0644 "$catalogue" "$stage/etc/hexabase/catalogue.yaml"
chmod -R u=rwX,go=rX "$stage/usr/share/hexabase"

# --- the image
revision="$(git rev-parse HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD -- 2>/dev/null || revision="$revision-dirty"
created="$(date -u -d "@${SOURCE_DATE_EPOCH:-$(date +%s)}" +%Y-%m-%dT%H:%M:%SZ)"

step "image: buildah from scratch (vfs storage in $store)"
ctr="$(bh from --name "hexabase-image-$$" scratch)"
bh copy --chown 0:0 "$ctr" "$stage/" / >/dev/null
bh config \
  --entrypoint '["/usr/local/bin/server"]' --cmd '' \
  --user 10001:10001 --workingdir /tmp --port 3000/tcp \
  --env LISTEN_ADDR=0.0.0.0:3000 \
  --env LEPTOS_SITE_ROOT=/usr/share/hexabase/site \
  --env HEXA_CATALOGUE=/etc/hexabase/catalogue.yaml \
  --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
  --env LOG_FORMAT=json \
  --label org.opencontainers.image.title=hexabase-server \
  --label "org.opencontainers.image.description=Hexabase.AI dashboard and dedicated-node engine" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$revision" \
  --label "org.opencontainers.image.created=$created" \
  --label org.opencontainers.image.licenses=Apache-2.0 \
  --label org.opencontainers.image.vendor=Hexabase.AI \
  --label org.opencontainers.image.url=https://hexabase.ai \
  "$ctr"
image_id="$(bh commit --quiet --rm --format oci "$ctr" "$name:$tag")"
ctr=""
rm -f "$out.tmp"
bh push --quiet "$image_id" "oci-archive:$out.tmp:$name:$tag" >/dev/null
mv -f "$out.tmp" "$out"
bh rmi "$image_id" >/dev/null 2>&1 || true

size_b=$(stat -c %s "$out")
step "image: $name:$tag -> $out ($(numfmt --to=iec --suffix=B "$size_b"), $size_b bytes; binary $(du -h "$bin" | cut -f1), site $(du -sh "$site" | cut -f1), libraries: ${libs[*]}) in $(( $(date +%s) - t0 ))s"
echo "$out $size_b"
