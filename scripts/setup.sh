#!/usr/bin/env bash
# Creates .venv and installs the engine, its dependencies and the test tools, from scratch.
# torch is pinned to the CPU build first; nnU-Net's packages go in with --no-deps because
# dynamic-network-architectures depends on timm, whose torchvision would replace that torch
# with a multi-GB CUDA build. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
# TORCH_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu) picks the CPU build on a machine
# where pip would otherwise download PyPI's CUDA build.
pip install -q --disable-pip-version-check torch==2.13.0 ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
pip install -q --disable-pip-version-check --no-deps nnunetv2==2.8.1 dynamic-network-architectures==0.4.4
pip install -q --disable-pip-version-check -r requirements.txt -r requirements-test.txt 2>&1 \
  | grep -vE "^WARNING: Location|dependency resolver|requires timm" || true
pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | grep -v "^WARNING: Location" || true
python -c "import torch, batseg; assert torch.__version__.startswith('2.13.0'), torch.__version__"
