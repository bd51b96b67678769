#!/usr/bin/env bash
# `make chaos`: the fault suite (server/tests/chaos.rs, `fault_suite`): 20 kill -9 of the engine
# at seeded random instants spread over provisioning and migration, then the API server and
# etcd restarted mid-migration, PostgreSQL down for 10 s, Prometheus stopped under the latency
# guard. Prints the seed and a table (fault, instant, what it hit, outcome, time to recover).
# It gets its own cluster (started from empty state, stopped at the end) and its own PostgreSQL,
# so it can run beside `make test`.
#   HEXA_CHAOS_SEED=<n>   replay the instants of an earlier run
#   HEXA_CHAOS_KILLS=<n>  how many kills (default 20); HEXA_CHAOS_CELLS=<n> cells at once (default 2)
#   HEXA_KEEP_CLUSTER=1   leave the cluster running afterwards
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
cd "$here/.."
root="$PWD"
forget_moved_checkout

bash hack/tools.sh

export HEXA_CLUSTER_DIR="${HEXA_CHAOS_CLUSTER_DIR:-$HEXA_CACHE/cluster-chaos}"
# hack/postgres.sh keeps its server under $TMPDIR; a directory of our own keeps it apart from
# a `make test` running at the same time (and the postgres user must be able to enter it).
export TMPDIR="${TMPDIR:-/tmp}/hexabase-chaos"
mkdir -p "$TMPDIR" && chmod 755 "$TMPDIR"
cleanup() {
  bash "$root/hack/postgres.sh" stop || true
  [ -z "${HEXA_KEEP_CLUSTER:-}" ] && bash "$root/hack/cluster/down.sh" || true
}
trap cleanup EXIT

step "building the fault suite"
cargo test -p server --test chaos --no-run

fresh_cluster

step "starting a throwaway PostgreSQL"
TEST_POSTGRES_URL="$(bash hack/postgres.sh start | tail -n1)"
export TEST_POSTGRES_URL HEXA_REQUIRE_POSTGRES=1

step "fault suite"
t0=$(date +%s)
cargo test -p server --test chaos -- --ignored --exact fault_suite --nocapture
step "make chaos passed in $(( $(date +%s) - t0 )) s"
