#!/usr/bin/env bash
# Rebuilds a model fine-tuned on synthetic lesions inserted into real healthy scans, with phantoms
# replayed, and every figure of its card. With the defaults and TYPES_BY_BACKGROUND=1: 0.7.0 from
# 0.6.0 (trained on phantoms). The shipped 0.10.0 is a soup of three fine-tunings of 0.8.0 (its card
# has every command); 0.9.0, its first member and the model it replaced:
#   PARENT=BATsegSlicer/Resources/Models/batseg-light-synthetic-0.8.0.batseg VERSION=0.9.0 TRAIN_SEED=6 \
#     PHANTOM_CASES=280 TRAIN_OPTS="--t1-tissue-share 0.7 --ap-window-share 0.6" \
#     bash scripts/train_real_anatomy_model.sh WORK_DIR      (at commit 6676c79, where 0.8.0 is shipped)
#
#   bash scripts/train_real_anatomy_model.sh [WORK_DIR]        (default work_tmp/real_anatomy)
#
# 0.8.0 is 0.7.0 fine-tuned again on a draw whose T2 backgrounds also have T1 tissue levels and
# tight fields of view; both were made with each tumour type tied to backgrounds (TYPES_BY_BACKGROUND=1,
# make_real_insertions.lesion_type); 0.7.0 comes from git history:
#   git show c2723a2:BATsegSlicer/Resources/Models/batseg-light-synthetic-0.7.0.batseg > WORK_DIR.0.7.0.batseg
#   PARENT=WORK_DIR.0.7.0.batseg VERSION=0.8.0 TRAIN_SEED=4 TYPES_BY_BACKGROUND=1 \
#     TRAIN_OPTS="--t1-tissue-share 0.7 --ap-window-share 0.6" bash scripts/train_real_anatomy_model.sh WORK_DIR
#
# A model soup (batseg average): MEMBERS="DIR1 DIR2 ..." names work folders of runs of this script
# (CARD=0) that fine-tuned one parent, each on its own draw; this run then averages their weights
# instead of training, tunes and scores the average, and PARENT is the model it is compared with
# (e.g. the shipped model it replaces). Each run records its knobs in WORK_DIR/RECIPE for the card.
#
# Needs ../shared/data/real-spine-mri beside the repository. Knobs (environment): EPOCHS (50), ITERS
# (50), LR (0.003), VERSION (0.7.0), PARENT (default: 0.6.0 from git history), DEVICE (cpu), FORCE=1 to
# replace a shipped file of that version, CARD=0 to stop before the card; the real training split: TRAIN_SEED (1), TRAIN_CASES (240),
# TRAIN_OPTS (extra options of make_real_insertions.py; default "": T2 negatives 15%, cropped to the cord),
# TYPES_BY_BACKGROUND=1 for the type-to-background pairing of 0.7.0 and 0.8.0 in all three real splits;
# PHANTOM_CASES (140): phantoms replayed. Backgrounds sct_t1w and errsm_24 never enter training
# (scripts/make_real_insertions.py, HELD_OUT). A step whose output exists is skipped (a rerun
# continues where one stopped); delete WORK_DIR to start over.
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
W=${1:-work_tmp/real_anatomy}
EPOCHS=${EPOCHS:-50}
ITERS=${ITERS:-50}
LR=${LR:-0.003}
VERSION=${VERSION:-0.7.0}
DEVICE=${DEVICE:-cpu}
NAME=batseg-light-synthetic
mkdir -p "$W"
# The parent 0.6.0 is no longer shipped: it comes from git history (sha256 a86196b5...).
PARENT_IN_GIT=f97b9ee:BATsegSlicer/Resources/Models/batseg-light-phantoms-0.6.0.batseg
PARENT=${PARENT:-$W/batseg-light-phantoms-0.6.0.batseg}
[ -f "$PARENT" ] || git show "$PARENT_IN_GIT" > "$PARENT"
[ -f "$W/COMMIT" ] || git rev-parse HEAD > "$W/COMMIT"
# This run's knobs, one KEY=value per line (the card script reads a soup's members' recipes from them).
[ -f "$W/RECIPE" ] || printf '%s\n' "VERSION=$VERSION" "TRAIN_SEED=${TRAIN_SEED:-1}" "TRAIN_CASES=${TRAIN_CASES:-240}" \
  "PHANTOM_CASES=${PHANTOM_CASES:-140}" "TYPES_BY_BACKGROUND=${TYPES_BY_BACKGROUND:-}" "TRAIN_OPTS=${TRAIN_OPTS:-}" \
  "MEMBERS=${MEMBERS:-}" > "$W/RECIPE"

# 1. Data. Phantoms: the parent's kind (replayed so that the phantom domain is not forgotten),
#    validation (seed 11), held-out test (seed 7) and T2 negatives (seed 8), as for 0.6.0.
#    Real backgrounds: 240 training cases on the training subjects (seed 1), 24 validation cases on
#    the same subjects (seed 3), 48 held-out cases on the held-out subjects (seed 2), and every
#    unaltered real scan.
phantoms() {  # $1 folder, $2 dataset name, $3.. options
  local out=$1 name=$2; shift 2
  [ -f "$out/$name/dataset.json" ] || batseg phantom -o "$out" --name "$name" --workers 2 --progress quiet "$@"
}
[ -n "${MEMBERS:-}" ] || phantoms "$W/phantoms" Dataset501_BATsegPhantoms -n "${PHANTOM_CASES:-140}" --seed 2026 \
  --t2-negative-fraction 0.125
phantoms "$W/phval" Dataset503_BATsegPhantomsVal -n 20 --seed 11
phantoms "$W/test" Dataset502_BATsegPhantomsTest -n 40 --seed 7
phantoms "$W/t2test" Dataset505_BATsegPhantomsT2Test -n 10 --seed 8 --healthy-fraction 0 --t2-negative-fraction 1
insert() {  # $1 folder, $2 dataset name, $3.. options
  local out=$1 name=$2; shift 2
  [ -f "$out/$name/dataset.json" ] || python scripts/make_real_insertions.py --out "$out" --name "$name" "$@" > "$out.log"
}
PAIRING=${TYPES_BY_BACKGROUND:+--types-by-background}
# shellcheck disable=SC2086  # TRAIN_OPTS is a list of options; PAIRING one option or none
[ -n "${MEMBERS:-}" ] || insert "$W/real_train" Dataset511_BATsegRealInsertTrain --split train -n "${TRAIN_CASES:-240}" --seed "${TRAIN_SEED:-1}" ${TRAIN_OPTS:-} $PAIRING
# shellcheck disable=SC2086
insert "$W/real_val" Dataset513_BATsegRealInsertVal --split train -n 24 --seed 3 $PAIRING
# shellcheck disable=SC2086
insert "$W/real_test" Dataset512_BATsegRealInsertTest --split test -n 48 --seed 2 $PAIRING
[ -d "$W/real_unaltered/resliced" ] || python scripts/make_real_insertions.py --out "$W/real_unaltered" --split unaltered
[ -f "$W/val/Dataset514_BATsegMixVal/dataset.json" ] || python scripts/link_datasets.py -o "$W/val/Dataset514_BATsegMixVal" \
  "$W/real_val/Dataset513_BATsegRealInsertVal" "$W/phval/Dataset503_BATsegPhantomsVal"

# 2. Fine-tune the parent on the real-background cases, with the phantoms replayed (the real cases
#    are the "new" data: 240 real + PHANTOM_CASES phantoms).
#    A soup instead averages its members' fine-tuned (untuned) files.
# shellcheck disable=SC2046  # one model file per member folder
[ -z "${MEMBERS:-}" ] || [ -f "$W/$NAME.batseg" ] || batseg average $(printf "%s/$NAME.batseg " $MEMBERS) \
  -o "$W/$NAME.batseg" --version "$VERSION" > "$W/train.log" 2>&1
[ -f "$W/$NAME.batseg" ] || OMP_NUM_THREADS=$(nproc) nnUNet_n_proc_DA=1 batseg train --finetune-from "$PARENT" \
  --data "$W/real_train/Dataset511_BATsegRealInsertTrain" --replay-data "$W/phantoms/Dataset501_BATsegPhantoms" \
  --output "$W/$NAME.batseg" --epochs "$EPOCHS" --iterations-per-epoch "$ITERS" --val-iterations 5 --batch-size 4 \
  --foreground-oversampling 0.5 --lr "$LR" --device "$DEVICE" --seed 1 --workdir "$W/work_ft" \
  --name "$NAME" --version "$VERSION" --overwrite --progress bar > "$W/train.log" 2>&1

# 3. Minimum lesion volume chosen on the mixed validation set (24 real + 20 phantoms).
[ -f "$W/$NAME-tuned.batseg" ] || batseg tune-postprocess --model "$W/$NAME.batseg" --data "$W/val/Dataset514_BATsegMixVal" \
  --output "$W/$NAME-tuned.batseg" --json "$W/tune_$NAME.json" --device cpu --overwrite --progress quiet

# 4. Before (parent) and after (tuned child) on the same held-out data.
evaluate() {  # $1 tag, $2 model file
  batseg predict -i "$W/test/Dataset502_BATsegPhantomsTest/imagesTr" -o "$W/pred_$1" --model "$2" --device cpu \
    --overwrite --progress quiet
  batseg evaluate --pred "$W/pred_$1" --gt "$W/test/Dataset502_BATsegPhantomsTest/labelsTr" -o "$W/eval_$1.json" \
    --png "$W/eval_$1.png" --overwrite > /dev/null
  batseg predict -i "$W/t2test/Dataset505_BATsegPhantomsT2Test/imagesTr" -o "$W/pred_t2_$1" --model "$2" \
    --device cpu --overwrite --progress quiet
  python scripts/evaluate_real_anatomy.py --model "$2" --data "$W" --out "$W/real_eval_$1" > "$W/real_eval_$1.md"
}
evaluate parent "$PARENT"
evaluate "$NAME" "$W/$NAME-tuned.batseg"

# 5. Card and shipped file (CARD=0 stops before: the figures are in WORK_DIR for review).
[ "${CARD:-1}" = 0 ] && exit 0
python scripts/make_real_anatomy_card.py --work "$W" --name "$NAME" --parent "$PARENT" --version "$VERSION" \
  --epochs "$EPOCHS" --iters "$ITERS" --train-seed "${TRAIN_SEED:-1}" --train-opts "${TRAIN_OPTS:-}" \
  --members "${MEMBERS:-}" ${FORCE:+--force}
