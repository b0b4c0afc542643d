#!/usr/bin/env bash
# The README's test command: install the test dependencies, then run the whole suite.
#
#   bash scripts/test.sh [--with-comfyui] [--no-skips] [pytest arguments...]
#
# --with-comfyui  also run the ComfyUI integration tests (marker `comfyui`) against a real ComfyUI 0.3.64.
#                 It is set up once, then reused, by ../shared/tools/setup_comfyui.sh (MVG_SHARED_DIR
#                 overrides ../shared) in a cache folder outside the clone:
#                 ${MVG_COMFYUI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/comfyui-mvg}/ComfyUI-0.3.64.
#                 The pack's requirements.txt and tests/requirements-comfyui.txt (comfy-cli) go into
#                 ComfyUI's own venv; COMFYUI_DIR / COMFYUI_PYTHON point pytest at it, and
#                 MVG_REQUIRE_COMFYUI=1 makes a missing ComfyUI an error instead of a skip.
# --no-skips      MVG_NO_SKIPS=1: a skipped test fails the run, and the run must have run tests and
#                 skipped none (checked again from pytest's JUnit report).
# Without options the comfyui tests are skipped (with the reason) unless COMFYUI_DIR and COMFYUI_PYTHON
# are already set. CI (.ci/run) runs: bash scripts/test.sh --with-comfyui --no-skips
#
# torch first, pinned to the local CPU build: a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd -P)
with_comfyui=0
no_skips=0
while [ $# -gt 0 ]; do
  case "$1" in
    --with-comfyui) with_comfyui=1 ;;
    --no-skips) no_skips=1 ;;
    --) shift; break ;;
    *) break ;;
  esac
  shift
done

python -m pip install -q torch==2.13.0
python -m pip install -q -r requirements-dev.txt
export HF_HUB_OFFLINE=1

if [ "$with_comfyui" = 1 ]; then
  setup=${MVG_SHARED_DIR:-$ROOT/../shared}/tools/setup_comfyui.sh
  cache=${MVG_COMFYUI_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/comfyui-mvg}
  comfy=$(realpath -m "$cache/ComfyUI-0.3.64")
  if [ ! -f "$setup" ]; then
    echo "scripts/test.sh: $setup not found (set MVG_SHARED_DIR to the folder with tools/setup_comfyui.sh)" >&2
    exit 2
  fi
  case "$comfy/" in
    "$ROOT"/*) echo "scripts/test.sh: the ComfyUI cache $comfy must be outside the clone ($ROOT)" >&2; exit 2 ;;
  esac
  mkdir -p "$(dirname "$comfy")"
  (
    flock 9  # one setup at a time per cache (parallel CI jobs, several clones)
    bash "$setup" "$comfy"
    "$comfy/venv/bin/python" -m pip install -q -r requirements.txt -r tests/requirements-comfyui.txt
  ) 9>"$(dirname "$comfy")/.setup.lock"
  export COMFYUI_DIR=$comfy COMFYUI_PYTHON=$comfy/venv/bin/python MVG_REQUIRE_COMFYUI=1
fi

junit=
if [ "$no_skips" = 1 ]; then
  export MVG_NO_SKIPS=1
  junit=$(mktemp "${TMPDIR:-/tmp}/mvg-junit.XXXXXX.xml")
  trap 'rm -f "$junit"' EXIT
  set -- --junitxml="$junit" "$@"
fi

rc=0
python -m pytest -q -rs "$@" || rc=$?
if [ "$rc" = 5 ]; then
  echo "scripts/test.sh: pytest collected no tests (exit code 5): that is a failure" >&2
fi
[ "$rc" = 0 ] || exit "$rc"

if [ -n "$junit" ]; then
  python - "$junit" <<'EOF'
import sys
import xml.etree.ElementTree as ET

root = ET.parse(sys.argv[1]).getroot()
suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))
n = {k: sum(int(s.get(k, 0)) for s in suites) for k in ("tests", "skipped", "failures", "errors")}
print(f"scripts/test.sh --no-skips: {n['tests']} tests, {n['skipped']} skipped, {n['failures']} failed, "
      f"{n['errors']} errors")
if n["tests"] == 0 or n["skipped"] or n["failures"] or n["errors"]:
    sys.exit("scripts/test.sh --no-skips: the run must have tests and no skips, failures or errors")
EOF
fi
