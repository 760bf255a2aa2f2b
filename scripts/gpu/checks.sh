#!/usr/bin/env bash
# The GPU checks of the engine and inference issues, as one short device run (a few minutes):
#   1. training step of the paper's setting (paper topology, batch 2, patch 12 x 384 x 384,
#      fp16): plain nnU-Net vs BATseg with its field target vs the field computed by scipy in
#      the step; target: BATseg at most 1.10x plain nnU-Net (scripts/bench_train_step.py);
#   2. network-level prediction of a clinical 15 x 512 x 512 sagittal volume with the paper's
#      topology, no TTA: BATseg vs nnU-Net's predictor; target: at most 0.2 s
#      (scripts/bench_gpu_inference.py).
# Prepare here, once per machine:  bash scripts/gpu/fetch_wheels.sh   (writes .whl/, git-ignored)
# Run there with the device tool:  command "bash scripts/gpu/checks.sh", carry [".whl"],
#                                  timeout_s 540; the outputs come back from $OUT.
# Multi-GPU (DDP) training is not checked here: the lent machine has one GPU.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-work_tmp/gpu_checks}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
# PYTHONPATH comes before site-packages in sys.path, so the SimpleITK placeholder there would
# hide a real SimpleITK: it joins PYTHONPATH only where no SimpleITK can be imported.
PLACEHOLDER=""
python3 -c "import SimpleITK" 2>/dev/null || PLACEHOLDER=":$PWD/scripts/gpu/placeholder"
export PYTHONPATH="/tmp/site:$PWD/BATsegSlicer$PLACEHOLDER" PYTHONUNBUFFERED=1
export nnUNet_raw=/tmp/nnunet nnUNet_preprocessed=/tmp/nnunet nnUNet_results=/tmp/nnunet
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" | tee -a "$OUT/gpu.txt"
python3 scripts/bench_train_step.py --device cuda --warmup 3 --repeats 20 --workers 12 2>&1 | tee "$OUT/train_step.txt"
python3 scripts/bench_gpu_inference.py --device cuda --topology paper --warmup 3 --repeats 20 2>&1 | tee "$OUT/inference.txt"
