#!/usr/bin/env bash
# `make test`: every test. Rust unit and integration tests (SQLite and PostgreSQL, against the
# local cluster), then the Playwright suite in Debian's Chromium against a release build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
cd "$here/.."
root="$PWD"
export HEXA_T0="${HEXA_T0:-$(date +%s)}"
forget_moved_checkout

bash hack/tools.sh

# Style first: a formatting slip or a lint fails in a minute, not after the cluster tests.
step "cargo fmt --check, cargo clippy -D warnings (server and app, then the wasm frontend)"
cargo fmt --all --check
cargo clippy --workspace --exclude frontend --all-targets -- -D warnings
cargo clippy -p frontend --target wasm32-unknown-unknown -- -D warnings

# The tests get their own cluster, started from empty state and stopped at the end, so that
# nothing a developer (or an earlier run) left in the run command's cluster changes a result.
export HEXA_CLUSTER_DIR="${HEXA_TEST_CLUSTER_DIR:-$HEXA_CACHE/cluster-test}"
cluster_dir="$HEXA_CLUSTER_DIR"
server_pid=""
simulator_pid=""
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
  [ -n "$simulator_pid" ] && kill "$simulator_pid" 2>/dev/null || true
  bash "$root/hack/postgres.sh" stop || true
  [ -z "${HEXA_KEEP_CLUSTER:-}" ] && bash "$root/hack/cluster/down.sh" || true
}
trap cleanup EXIT

# The end-to-end specs change the cluster the way a platform admin would, with its kubectl.
fresh_cluster
bash hack/helm/check.sh

step "starting a throwaway PostgreSQL"
TEST_POSTGRES_URL="$(bash hack/postgres.sh start | tail -n1)"
export TEST_POSTGRES_URL HEXA_REQUIRE_POSTGRES=1

step "cargo test (unit and integration)"
cargo test --workspace --exclude frontend --no-fail-fast

bash hack/build.sh
bash hack/image/build.sh && bash hack/image/check.sh

step "Playwright end-to-end tests in Chromium"
# The demo's traffic simulator, as `make run` starts it: the report's p95 before and after a
# move is read from Prometheus like any app's (it ends with this script, its parent).
if [ -n "${SIMULATOR_ADDR:-}" ]; then
  "$CARGO_TARGET_DIR/release/traffic-simulator" --listen "$SIMULATOR_ADDR" >"$HEXA_CACHE/e2e-simulator.log" 2>&1 &
  simulator_pid=$!
fi
port=$(free_port)
e2e_db="$HEXA_CACHE/e2e-$$.db"
rm -f "$e2e_db"
LISTEN_ADDR="127.0.0.1:$port" DATABASE_URL="sqlite://$e2e_db?mode=rwc" LEPTOS_SITE_ROOT="$PWD/target/site" HEXA_NODE_PROVIDER=karpenter \
  "$CARGO_TARGET_DIR/release/server" --seed-demo >"$HEXA_CACHE/e2e-server.log" 2>&1 &
server_pid=$!
# Ready: the database answers and the watch caches have listed the cluster once.
for _ in $(seq 1 150); do curl -fs "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.2; done
cd end2end
[ -d node_modules/@playwright/test ] || npm ci --no-audit --no-fund
BASE_URL="http://127.0.0.1:$port" npx playwright test
