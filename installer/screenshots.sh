#!/usr/bin/env bash
# Render every GUI page with real content to resources/screenshots/<page>.png (the README shows
# them): under Xvfb when it is installed (a real X11 server), else Qt's offscreen platform.
#   installer/screenshots.sh [OUT_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-resources/screenshots}
if command -v xvfb-run >/dev/null 2>&1; then
  xvfb-run -a -s "-screen 0 1280x820x24" .venv/bin/lensroute gui --screenshot "$out"
else
  QT_QPA_PLATFORM=offscreen .venv/bin/lensroute gui --screenshot "$out"
fi
