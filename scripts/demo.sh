#!/usr/bin/env bash
# The README's main job: set up (idempotent), then run the shipped model on the bundled sample
# phantoms (one per tumour type), writing label maps and lesion reports into out/demo/, and
# score them against the phantoms' ground truth. Synthetic data; not for clinical use.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh  # the runtime only; scripts/test.sh adds the test tools
. .venv/bin/activate
OUT=${1:-out/demo}
echo "demo: segmenting the four sample phantoms with the shipped model, then scoring them" >&2
batseg sample -o "$OUT/input" --overwrite
batseg predict -i "$OUT/input/images" -o "$OUT/predictions" --device cpu --overwrite
batseg evaluate --pred "$OUT/predictions" --gt "$OUT/input/labels" -o "$OUT/evaluation.json" --png "$OUT/evaluation.png" --overwrite
echo "Label maps and lesion reports: $OUT/predictions (CASE.nii.gz, CASE.report.json, CASE.report.csv)"
