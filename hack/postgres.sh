#!/usr/bin/env bash
# A throwaway PostgreSQL cluster on a free loopback port, for the tests.
#   hack/postgres.sh start   -> prints the DATABASE_URL on its last line
#   hack/postgres.sh stop
# Installs Debian's PostgreSQL if it is missing. Runs as the `postgres` user (it refuses root).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/env.sh"
# Under /tmp: the postgres user cannot enter root's home.
dir="${TMPDIR:-/tmp}/hexabase-pg-test"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)"

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
start)
  if [ -z "$bin" ]; then
    step "apt-get install postgresql"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    bin="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)"
  fi
  "$0" stop >/dev/null 2>&1 || true
  rm -rf "$dir"; mkdir -p "$dir"
  [ "$(id -u)" = 0 ] && chown postgres "$dir"
  port=$(free_port)
  as_pg "$bin/initdb" -D "$dir/data" -U hexabase --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
  as_pg "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
    -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off" start >/dev/null
  as_pg "$bin/createdb" -h 127.0.0.1 -p "$port" -U hexabase hexabase_test
  echo "$port" > "$dir/port"
  echo "postgres://hexabase@127.0.0.1:$port/hexabase_test"
  ;;
stop)
  if [ -d "$dir/data" ] && [ -n "$bin" ]; then
    as_pg "$bin/pg_ctl" -D "$dir/data" -m fast stop >/dev/null 2>&1 || true
  fi
  ;;
*) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
