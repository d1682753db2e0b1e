#!/usr/bin/env bash
# Render every GUI page with real content to resources/screenshots/<page>.png (the README shows
# them): under Xvfb when it is installed (a real X11 server), else Qt's offscreen platform.
#   installer/screenshots.sh [OUT_DIR]
# The pages show what $LENSROUTE_HOME holds: render from a home with ../shared/data imported, a
# trained ranker, `lensroute evaluate --split all` run and a calibrated router (`lensroute route
# calibrate`), or the Train & evaluate and Route pages show their empty states (warned below).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-resources/screenshots}
home=$(.venv/bin/python -c 'from recommender.paths import home_dir; print(home_dir())')
[ -s "$home/evaluations.json" ] || echo "warning: $home has no evaluations.json: the Train & evaluate page's table will be empty" >&2
[ -n "$(ls -A "$home/routers" 2>/dev/null)" ] || echo "warning: $home has no calibrated router: the Route page will show 'no pool'" >&2
if command -v xvfb-run >/dev/null 2>&1; then
  xvfb-run -a -s "-screen 0 1280x820x24" .venv/bin/lensroute gui --screenshot "$out"
else
  QT_QPA_PLATFORM=offscreen .venv/bin/lensroute gui --screenshot "$out"
fi
