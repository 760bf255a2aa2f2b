#!/usr/bin/env bash
# Creates .venv and installs the engine, its dependencies and the test tools, from scratch.
# torch is pinned to the CPU build first; nnU-Net's packages go in with --no-deps because
# dynamic-network-architectures depends on timm, whose torchvision would replace that torch
# with a multi-GB CUDA build. Idempotent: a second run only checks.
#
#   bash scripts/setup.sh               the runtime only (what scripts/demo.sh needs)
#   bash scripts/setup.sh --with-tests  also the test tools (slicer-core with VTK: about 800 MB)
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
REQUIREMENTS=(-r requirements.txt)
[ "${1:-}" = "--with-tests" ] && REQUIREMENTS+=(-r requirements-test.txt)
say() { echo "setup: $*" >&2; }
[ -x .venv/bin/python ] || { say "creating .venv"; "$PY" -m venv .venv; }
. .venv/bin/activate
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) picks the CPU build on a machine
# where pip would otherwise download PyPI's CUDA build.
say "installing torch 2.13.0 (CPU build; the first time takes a while, later runs only check)"
pip install -q --disable-pip-version-check torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
say "installing nnU-Net v2 and the engine's dependencies${REQUIREMENTS[2]:+ and the test tools} (minutes the first time, seconds later)"
pip install -q --disable-pip-version-check --no-deps nnunetv2==2.8.1 dynamic-network-architectures==0.4.4
pip install -q --disable-pip-version-check "${REQUIREMENTS[@]}" 2>&1 \
  | grep -vE "^WARNING: Location|dependency resolver|requires timm" || true
pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
python -c "import torch, batseg; assert torch.__version__.startswith('2.13.0'), torch.__version__"
say "ready (.venv)"
