#!/usr/bin/env bash
# Build the distributable wheel: dist/lensroute-<version>-py3-none-any.whl. It carries the three
# packages and the bundled resources (seed catalogue, calibration questions, prices, icon) as data
# files, so an installed lensroute needs no source tree. installer/install.sh installs it.
#   installer/package.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-dist}
python=.venv/bin/python
[ -x "$python" ] || python=${PYTHON:-python3.11}
rm -f "$out"/lensroute-*.whl
"$python" -m pip wheel -q --disable-pip-version-check --no-deps -w "$out" .
ls "$out"/lensroute-*.whl
