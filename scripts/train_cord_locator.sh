#!/usr/bin/env bash
# Rebuilds the shipped cord locator (cord-locator-synthetic-0.1.0.cordloc) and the figures of its card.
#
#   bash scripts/train_cord_locator.sh [WORK_DIR]        (default work_tmp/cord_locator)
#
# Needs ../shared/data/real-spine-mri beside the repository. The training data are those of the
# tumour model's recipe (scripts/train_real_anatomy_model.sh), made here with the same commands:
# 140 phantoms (seed 2026), two draws of 240 real-background cases (seed 1 with the default options,
# seed 21 with 30 % whole-field-of-view T2 negatives, half on the scan's own grid), and the unaltered
# real scans as distributed and resliced. Subjects sct_t1w, errsm_24 and unf01 never enter training.
# Held out for the card: the 48 insertions into sct_t1w and errsm_24 (seed 2), the unaltered scans,
# and 40 phantoms (seed 7). Knobs: ITERATIONS (2500), SEED (0), OUT (the file to write).
# A step whose output exists is skipped; delete WORK_DIR to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
W=${1:-work_tmp/cord_locator}
OUT=${OUT:-$W/cord-locator-synthetic-0.1.0.cordloc}
mkdir -p "$W"
phantoms() {  # OUT_DIR NAME OPTIONS...
  local out=$1 name=$2; shift 2
  [ -f "$out/$name/dataset.json" ] || batseg phantom -o "$out" --name "$name" --workers 2 --progress quiet "$@"
}
insert() {  # OUT_DIR NAME OPTIONS...  (the shipped locator's data tied tumour types to backgrounds)
  local out=$1 name=$2; shift 2
  [ -f "$out/$name/dataset.json" ] || python scripts/make_real_insertions.py --out "$out" --name "$name" \
    --types-by-background "$@" > "$out.log"
}
phantoms "$W/phantoms" Dataset501_BATsegPhantoms -n 140 --seed 2026 --t2-negative-fraction 0.125
phantoms "$W/test" Dataset502_BATsegPhantomsTest -n 40 --seed 7
insert "$W/real_train" Dataset511_BATsegRealInsertTrain --split train -n 240 --seed 1
insert "$W/real_train_fov" Dataset511_BATsegRealInsertTrain --split train -n 240 --seed 21 \
  --t2-negative-fraction 0.3 --negative-whole-fov --negative-native-share 0.5
insert "$W/real_test" Dataset512_BATsegRealInsertTest --split test -n 48 --seed 2
[ -d "$W/real_unaltered/resliced" ] || python scripts/make_real_insertions.py --out "$W/real_unaltered" --split unaltered
python scripts/train_cord_locator.py \
  --train "$W/real_train/Dataset511_BATsegRealInsertTrain" --train "$W/real_train_fov/Dataset511_BATsegRealInsertTrain" \
  --train "$W/phantoms/Dataset501_BATsegPhantoms" --train "$W/real_unaltered/distributed" --train "$W/real_unaltered/resliced" \
  --test "$W/real_test/Dataset512_BATsegRealInsertTest" --test "$W/real_unaltered/distributed" \
  --test "$W/real_unaltered/resliced" --test "$W/test/Dataset502_BATsegPhantomsTest" \
  --iterations "${ITERATIONS:-2500}" --seed "${SEED:-0}" --out "$OUT" --report "$W/locator.json"
