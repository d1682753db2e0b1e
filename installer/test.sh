#!/usr/bin/env bash
# Run the whole test suite: a throwaway PostgreSQL server on 127.0.0.1 (installed when missing)
# so the store tests run on both engines, Qt offscreen, then pytest with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
pgdir=$(mktemp -d /tmp/lensroute-pg.XXXXXX)
port=$((20000 + RANDOM % 20000))
cleanup() { installer/pg-test-server.sh stop "$pgdir"; rm -rf "$pgdir"; }
trap cleanup EXIT
url=$(installer/pg-test-server.sh start "$pgdir" "$port")
export LENSROUTE_TEST_PG_URL="$url" QT_QPA_PLATFORM=offscreen
.venv/bin/python -m pytest "$@"
