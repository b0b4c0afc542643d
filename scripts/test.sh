#!/usr/bin/env bash
# The README's test command: install the test dependencies, then run the whole suite.
# torch first, pinned to the local CPU build: a bare `torch` requirement would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pip install -q torch==2.13.0
python -m pip install -q -r requirements-dev.txt
export HF_HUB_OFFLINE=1
python -m pytest -q "$@"
