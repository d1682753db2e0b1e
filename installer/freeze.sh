#!/usr/bin/env bash
# Build the frozen application: one folder holding Python, the GUI, the CLI, the seed catalogue,
# a trained ranker and the text encoder, which runs on a Debian machine with no Python and no
# network (Qt's few Debian libraries aside: installer/debian-libs.sh). PyInstaller does the
# freezing (installer/lensroute.spec). Training and model building need torch and stay with the
# full install (installer/install.sh); the frozen app says so when asked to train.
#   installer/freeze.sh [--out DIR] [--ranker DIR] [--encoder DIR] [--no-archive]
# Defaults: out dist/, the ranker and encoder that installer/setup.sh built in the data folder.
# Writes DIR/lensroute/ (run DIR/lensroute/lensroute) and DIR/lensroute-<version>-linux-<arch>.tar.gz;
# then installer/smoke-frozen.sh DIR/lensroute checks it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=dist ranker="" encoder="" archive=1
while [ $# -gt 0 ]; do
  case "$1" in
    --out) out=$2; shift 2 ;;
    --ranker) ranker=$2; shift 2 ;;
    --encoder) encoder=$2; shift 2 ;;
    --no-archive) archive=0; shift ;;
    *) echo "usage: installer/freeze.sh [--out DIR] [--ranker DIR] [--encoder DIR] [--no-archive]" >&2; exit 2 ;;
  esac
done
python=${LENSROUTE_PYTHON:-.venv/bin/python}  # the environment to freeze (setup.sh's by default)
[ -x "$python" ] || { echo "run installer/setup.sh first (no $python here)" >&2; exit 1; }
python=$(cd "$(dirname "$python")" && pwd)/$(basename "$python")  # absolute, the venv's link kept
"$python" -c 'import PyInstaller' 2>/dev/null || {
  echo "PyInstaller is missing: .venv/bin/python -m pip install -e '.[freeze]' (setup.sh --dev includes it)" >&2; exit 1; }
for tool in objdump objcopy ldd; do  # PyInstaller's binary analysis on Linux
  command -v "$tool" >/dev/null || { echo "PyInstaller needs $tool: sudo apt-get install binutils" >&2; exit 1; }
done
[ -n "$ranker" ] || ranker=$("$python" -c 'from recommender.ranker import user_ranker_dir; print(user_ranker_dir())')
[ -n "$encoder" ] || encoder=$("$python" -c 'from recommender.text_encoder import encoder_dir; print(encoder_dir())')
[ -f "$ranker/manifest.json" ] || { echo "no trained ranker in $ranker: run \`lensroute train\` (or installer/setup.sh)" >&2; exit 1; }
[ -f "$encoder/model.onnx" ] || { echo "no text encoder in $encoder: run \`lensroute models build-builtin\`" >&2; exit 1; }

out=$(mkdir -p "$out" && cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
(cd installer && "$python" -m PyInstaller --noconfirm --log-level WARN \
  --distpath "$work/dist" --workpath "$work/build" lensroute.spec)

# Data goes where an installed wheel keeps it (<prefix>/share/lensroute/resources; the frozen
# app's prefix is its _internal folder), so `paths.resources_dir()` finds it the same way.
app="$work/dist/lensroute"
resources="$app/_internal/share/lensroute/resources"
mkdir -p "$resources"
cp -r resources/seed resources/calibration resources/*.yaml resources/lensroute.svg "$resources/"
mkdir -p "$resources/ranker"
for file in "$ranker"/*; do  # lens.pt is torch weights for fine-tuning: serving never reads it
  [ "$(basename "$file")" = lens.pt ] || cp "$file" "$resources/ranker/"
done
mkdir -p "$resources/models/all-minilm-l6-v2"
cp "$encoder/model.onnx" "$encoder/tokenizer.json" "$encoder/lensroute-model.json" "$resources/models/all-minilm-l6-v2/"

rm -rf "$out/lensroute"
mv "$app" "$out/lensroute"
version=$("$out/lensroute/lensroute" --version | cut -d' ' -f2)
echo "built $out/lensroute (lensroute $version, $(du -sh "$out/lensroute" | cut -f1))"
if [ "$archive" = 1 ]; then
  tarball="$out/lensroute-$version-linux-$(uname -m).tar.gz"
  tar -C "$out" -czf "$tarball" lensroute
  echo "wrote $tarball ($(du -sh "$tarball" | cut -f1))"
fi
