#!/usr/bin/env bash
# Time to first page: runs `make run` the way a user does and reports the seconds until the
# dashboard serves its sign-in page, with the time of each step; then stops the server it
# started (the cluster stays up, as after `make run`, unless this script started it cold).
#
#   hack/first-page.sh           warm: this machine's caches as they are (run it twice for the
#                                second-run number; `make cluster-down` first for a stopped cluster)
#   hack/first-page.sh --cold    cold: an empty HEXA_CACHE and Go build cache in a temporary
#                                directory, so every tool, the control plane, Karpenter and the
#                                server are built from nothing. The download caches (cargo's
#                                registry, Go's module cache, npm's) are kept: this measures the
#                                machine's work, not the network's.
# The log with a timestamp on every line goes to $HEXA_CACHE/first-page-<mode>.log.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
caller_path="$PATH" # before env.sh puts this machine's cached tools on it
. "$here/env.sh"
cd "$here/.."

mode=warm
[[ "${1:-}" == --cold ]] && mode=cold
log="$HEXA_CACHE/first-page-$mode.log"
port=$(free_port)

run_env=(LISTEN_ADDR="127.0.0.1:$port")
if [[ $mode == cold ]]; then
  cold="$(mktemp -d /tmp/hexa-cold.XXXXXX)"
  # Everything under HEXA_CACHE (tools, control plane, Karpenter, builds, cluster, database)
  # and Go's build cache start empty; the clone's own target/site is built anew too.
  run_env+=(HEXA_CACHE="$cold/cache" GOCACHE="$cold/go-build" CARGO_TARGET_DIR="$cold/cache/target" PATH="$caller_path")
  rm -rf target/site
  step "cold run in $cold (removed at the end)"
fi

t0=$(date +%s)
# `make run` in a session of its own (its last step execs the server there), every line with
# the seconds since it began. Through a FIFO with a reader of our own: the cluster's daemons
# inherit the writing end, so the reader is stopped, not waited for.
fifo="$(mktemp -u /tmp/first-page.XXXXXX)"
mkfifo "$fifo"
while IFS= read -r line; do printf '%5d %s\n' $(( $(date +%s) - t0 )) "$line"; done <"$fifo" >"$log" &
stamper=$!
env -u HEXA_TOOLS "${run_env[@]}" HEXA_T0="$t0" setsid bash hack/run.sh >"$fifo" 2>&1 &
runner=$!
cleanup() {
  kill -TERM -- "-$runner" 2>/dev/null || true
  sleep 1
  kill "$stamper" 2>/dev/null || true
  rm -f "$fifo"
  if [[ $mode == cold ]]; then
    HEXA_CACHE="$cold/cache" bash hack/cluster/down.sh >/dev/null 2>&1 || true
    rm -rf "$cold"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM # so that a stop by signal cleans up too

served=""
while kill -0 "$runner" 2>/dev/null; do
  if curl -fs -o /dev/null "http://127.0.0.1:$port/login"; then
    served=$(( $(date +%s) - t0 ))
    break
  fi
  sleep 0.5
done
if [[ -z "$served" ]]; then
  echo "make run ended without serving a page; the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi

# The steps as a timeline: every `==>` line carries its time since the start ([m:ss]); the
# cluster's steps ran beside the Rust build's, so they are listed by that time, not by line.
echo "time to first page ($mode): ${served} s   (log: $log)"
sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -a '==> \[' | sed 's/^ *[0-9]* *==> //' |
  sed -E 's/^\[([0-9]+):([0-9]+)\]/\1 \2 &/' | sort -s -k1,1n -k2,2n | cut -d' ' -f3- |
  cut -c1-120 | sed 's/^/  /'
