#!/usr/bin/env bash
# Start (or stop) a throwaway PostgreSQL server on 127.0.0.1 for the test suite.
#   installer/pg-test-server.sh start DIR PORT   -> prints the URL to use as LENSROUTE_TEST_PG_URL
#   installer/pg-test-server.sh stop DIR
# Installs Debian's postgresql when it is missing (needs root or sudo). Runs as the `postgres`
# user when invoked as root, because initdb refuses to run as root.
set -euo pipefail
action=${1:?start|stop}; dir=${2:?data dir}; port=${3:-55432}
bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1 || true)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
if [ "$action" = stop ]; then
  [ -n "$bindir" ] && [ -d "$dir" ] && as_pg "$bindir/pg_ctl" -D "$dir" -m fast stop >/dev/null 2>&1 || true
  exit 0
fi
if [ -z "$bindir" ]; then
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq postgresql >/dev/null
  bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
fi
mkdir -p "$dir"
[ "$(id -u)" = 0 ] && chown postgres "$dir"
if [ ! -f "$dir/PG_VERSION" ]; then
  as_pg "$bindir/initdb" -D "$dir" -U lensroute --auth=trust -E UTF8 >/dev/null
fi
as_pg "$bindir/pg_ctl" -D "$dir" -o "-p $port -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off" -l "$dir/server.log" -w start >/dev/null
as_pg "$bindir/createdb" -h 127.0.0.1 -p "$port" -U lensroute lensroute_test 2>/dev/null || true
echo "postgresql://lensroute@127.0.0.1:$port/lensroute_test"
