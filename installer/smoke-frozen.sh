#!/usr/bin/env bash
# Smoke test of the frozen application (installer/freeze.sh), as a new user runs it: a fresh data
# folder, no network (when this machine can cut it: `unshare`), no Python from outside.
#   installer/smoke-frozen.sh APP_DIR     (APP_DIR holds the `lensroute` executable)
# Prints one line per check, runs them all, and exits non-zero if any failed.
set -uo pipefail
app=${1:?usage: installer/smoke-frozen.sh APP_DIR}
exe=$(cd "$app" && pwd)/lensroute
[ -x "$exe" ] || { echo "no lensroute executable in $app" >&2; exit 2; }
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
export LENSROUTE_HOME=$home/data LENSROUTE_CONFIG=$home/config XDG_DATA_HOME=$home/xdg QT_QPA_PLATFORM=offscreen
unset LENSROUTE_DB LENSROUTE_ENCODER_DIR PYTHONPATH PYTHONHOME VIRTUAL_ENV
# Outside Python: nothing may come from the build machine's environment.
export PATH=/usr/bin:/bin

offline=()
if unshare -n true 2>/dev/null; then offline=(unshare -n)
elif unshare -rn true 2>/dev/null; then offline=(unshare -rn)
else echo "note: cannot cut the network here (no unshare); running with it"; fi

failures=0
check() {  # check NAME EXPECTED_EXIT COMMAND...; output in $home/out
  local name=$1 expected=$2; shift 2
  local started=$SECONDS
  "${offline[@]}" "$@" >"$home/out" 2>"$home/err"
  local rc=$?
  if [ "$rc" != "$expected" ]; then
    echo "FAIL $name: exit $rc (expected $expected)"; tail -5 "$home/err"; failures=$((failures + 1)); return 1
  fi
  echo "ok   $name ($((SECONDS - started)) s)"
}
expect() {  # expect NAME PATTERN FILE: the last check's output must match
  if ! grep -Eq "$2" "$3"; then echo "FAIL $1: no match for /$2/ in:"; head -5 "$3"; failures=$((failures + 1)); fi
}

check "version" 0 "$exe" --version && expect "version" '^lensroute [0-9]' "$home/out"
check "init loads the bundled seed" 0 "$exe" init && expect "init" 'loaded the seed catalogue' "$home/err"
check "stats --json" 0 "$exe" stats --json && expect "stats records" '"records": [1-9][0-9]*' "$home/out"
check "rank with the shipped ranker and encoder" 0 "$exe" rank --description \
  "Retrieve passages that answer questions about French legal documents" --top-k 5 --json
expect "rank results" '"model_version"' "$home/out"
[ "$(grep -c '"rank":' "$home/out")" = 5 ] || { echo "FAIL rank: expected 5 results"; failures=$((failures + 1)); }
check "rank with filters" 0 "$exe" rank --description "Write Python functions from docstrings" --top-k 3 \
  --max-params 20B --open-weights --json
expect "rank filters" '"max_parameters": 20000000000' "$home/out"
check "show a model the seed holds" 0 "$exe" show model wizardlm/wizardcoder-15b-v1.0 --json
expect "show model" '"name": "WizardLM/WizardCoder-15B-V1.0"' "$home/out"
check "compare two models head to head" 0 "$exe" compare WizardLM/WizardCoder-15B-V1.0 \
  deepseek-ai/deepseek-coder-6.7b-instruct --description "Write Python functions from docstrings" --json
expect "compare" '"meetings": [1-9]' "$home/out"
check "models list shows the shipped encoder" 0 "$exe" models list && expect "models list" 'all-minilm-l6-v2' "$home/out"
check "doctor: all the main job needs, no PyTorch" 0 "$exe" doctor --json
expect "doctor ok" '"ok": true' "$home/out"
expect "doctor torch" 'cannot train' "$home/out"
check "export" 0 "$exe" -q export "$home/records.parquet"
check "import what was exported: nothing new" 0 "$exe" -q import "$home/records.parquet"
expect "re-import" 'added 0, updated 0' "$home/out"
check "delete --dry-run counts and keeps everything" 0 "$exe" delete --source aider --dry-run --json \
  && expect "delete dry run" '"applied": false' "$home/out"
check "calibrate a pool with the LightGBM router" 0 "$exe" -q route calibrate --pool all-minilm-l6-v2 \
  --data "$(dirname "$exe")/_internal/share/lensroute/resources/calibration/general_mc.jsonl" --router lgbm
expect "calibrate" 'cross-validated accuracy' "$home/out"
check "route a question" 0 "$exe" route answer "Which gas do plants take in for photosynthesis?" \
  --choices oxygen "carbon dioxide" nitrogen helium --json
expect "route answer" '"model": "all-minilm-l6-v2"' "$home/out"
check "train says it needs the full install" 5 "$exe" -q train
expect "train message" 'full install' "$home/err"
[ "$(wc -l <"$home/err")" = 1 ] || { echo "FAIL train: the error is not one line"; failures=$((failures + 1)); }
check "bad input: one line, exit 2" 2 "$exe" rank --description ""
check "GUI renders every page" 0 "$exe" gui --screenshot "$home/shots"
! grep -q "showed an error" "$home/err" || { echo "FAIL gui: $(grep "showed an error" "$home/err" | head -3)"; failures=$((failures + 1)); }
shots=$(find "$home/shots" -name '*.png' -size +1k | wc -l)
[ "$shots" -ge 6 ] || { echo "FAIL gui: $shots screenshots (expected 6)"; failures=$((failures + 1)); }

if [ "$failures" -gt 0 ]; then echo "$failures check(s) failed"; exit 1; fi
echo "frozen app OK: $exe"
