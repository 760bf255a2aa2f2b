"""Synthetic lesions inserted into the real healthy scans of ../shared, as nnU-Net raw data sets.

Each case takes one real background, reslices it (and its manual cord mask) to a random
clinical sagittal grid (`batseg.phantoms.real_grid`), makes a T2 background T1-like (dark CSF)
or, for a share of T2 cases, keeps it as a healthy wrong-contrast negative, and paints one
lesion of the four types (`batseg.phantoms.insertion`). The lesions are synthetic; only the
anatomy, noise and texture are real. Backgrounds are split by subject: the held-out split uses
only HELD_OUT backgrounds, which no training split may contain.

    python scripts/make_real_insertions.py --out WORK_DIR/real_train --split train -n 160 --seed 1
    python scripts/make_real_insertions.py --out WORK_DIR/real_test --split test -n 48 --seed 2
    python scripts/make_real_insertions.py --out WORK_DIR/real_val --split train -n 24 --seed 3 --name Dataset513_BATsegRealInsertVal
    python scripts/make_real_insertions.py --out WORK_DIR/real_unaltered --split unaltered

`--split unaltered` writes every real scan without a lesion (T1 and T2, as distributed and on a
clinical grid) with an all-background label, for the specificity check.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from batseg.labels import NNUNET_LABELS
from batseg.phantoms.insertion import insert_lesion
from batseg.phantoms.real_grid import (anterior_posterior_window, clinical_grid, cord_rows, crop_rows, reslice,
                                      t1_like, t1_tissue_levels)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real-spine-mri"
# name: (scan, cord mask, contrast); the axial 16 mm spine-generic slab has no sagittal extent.
BACKGROUNDS = {
    "sct_t1w": ("sct_testing_data/t1/t1w.nii.gz", "sct_testing_data/t1/t1w_seg-manual.nii.gz", "T1"),
    "sct_t2": ("sct_testing_data/t2/t2.nii.gz", "sct_testing_data/t2/t2_seg-manual.nii.gz", "T2"),
    "errsm_11_t2": ("spinalcordtoolbox_2014/errsm_11/t2.nii.gz", "spinalcordtoolbox_2014/errsm_11/t2_manual_segmentation.nii.gz", "T2"),
    "errsm_18_t2": ("spinalcordtoolbox_2014/errsm_18/t2.nii.gz", "spinalcordtoolbox_2014/errsm_18/t2_manual_segmentation.nii.gz", "T2"),
    "errsm_21_t2": ("spinalcordtoolbox_2014/errsm_21/t2.nii.gz", "spinalcordtoolbox_2014/errsm_21/t2_manual_segmentation.nii.gz", "T2"),
    "errsm_24_t2": ("spinalcordtoolbox_2014/errsm_24/t2.nii.gz", "spinalcordtoolbox_2014/errsm_24/t2_manual_segmentation.nii.gz", "T2"),
}
# Kept out of every training split: the only real T1 with a cord mask, and one T2 subject.
HELD_OUT = ("sct_t1w", "errsm_24_t2")
TRAIN = tuple(name for name in BACKGROUNDS if name not in HELD_OUT)
UNALTERED = {**{k: v[:2] for k, v in BACKGROUNDS.items()},
             "unf01_t1w": ("spine-generic_sub-unf01/sub-unf01_T1w.nii.gz", "spine-generic_sub-unf01/sub-unf01_T1w_seg-manual.nii.gz"),
             "unf01_t2w": ("spine-generic_sub-unf01/sub-unf01_T2w.nii.gz", "spine-generic_sub-unf01/sub-unf01_T2w_seg-manual.nii.gz")}
TYPES = (1, 2, 3, 4)


def lesion_type(index: int, backgrounds: int, by_background: bool = False) -> int:
    """The tumour type painted into case `index` of a split cycling over `backgrounds` backgrounds.

    0.7.0 and 0.8.0 were trained and measured with `by_background`: the type cycled with the case
    index like the background did, so with 4 training backgrounds each always carried the same
    type (sct_t2 meningioma, errsm_11 ependymoma, ...) and with the 2 held-out ones sct_t1w had
    only meningiomas and astrocytomas: the network could read the type off the anatomy, and the
    held-out figures per type were figures per background. The default steps the type once per
    round of backgrounds, so every background carries every type in equal numbers."""
    if by_background:
        return TYPES[index % len(TYPES)]
    return TYPES[(index // backgrounds) % len(TYPES)]


def _read(name: str, paths: tuple[str, str]) -> tuple[sitk.Image, sitk.Image]:
    scan, mask = (REAL / p for p in paths)
    if not scan.is_file():
        sys.exit(f"{scan} is missing: this script needs ../shared/data/real-spine-mri beside the repository")
    return sitk.ReadImage(str(scan), sitk.sitkFloat32), sitk.ReadImage(str(mask), sitk.sitkFloat32)


@dataclass(frozen=True)
class NegativeGrid:
    """How T2 negatives are cut. 0.7.0 was trained with the defaults (cropped to the cord rows like the
    T1-like cases); whole_fov keeps the skull base and the lower rows, where false lesions arose on
    real T2 scans, and native_share keeps the scan's own grid for that share of them."""
    whole_fov: bool = False
    native_share: float = 0.0


@dataclass(frozen=True)
class Contrast:
    """How T2 backgrounds are made T1-like. 0.7.0 was trained with the defaults (the canal only);
    tissue_share is the share of them whose tissue outside the canal is also moved to T1 levels
    (real_grid.t1_tissue_levels)."""
    tissue_share: float = 0.0
    ap_window_share: float = 0.0  # share of cases cut to a random anterior-posterior window (any contrast)


def _write(folder: Path, case: str, image: sitk.Image, label: sitk.Image, cord: sitk.Image) -> None:
    for sub, suffix, item in (("imagesTr", "_0000", image), ("labelsTr", "", label), ("cordTr", "", cord)):
        (folder / sub).mkdir(parents=True, exist_ok=True)
        temporary = folder / sub / f".part-{case}{suffix}.nii.gz"
        sitk.WriteImage(item, str(temporary), True)
        temporary.replace(folder / sub / f"{case}{suffix}.nii.gz")


def _on_grid(array: np.ndarray, reference: sitk.Image, pixel: int) -> sitk.Image:
    image = sitk.Cast(sitk.GetImageFromArray(array), pixel)
    image.CopyInformation(reference)
    return image


def make_case(name: str, index: int, seed: int, t2_negative: float, healthy: float, tumour: int,
              negatives: NegativeGrid | None = None, contrast: Contrast | None = None
              ) -> tuple[sitk.Image, sitk.Image, sitk.Image, dict]:
    """One case on `name`'s background (module docstring) with a lesion of type `tumour` unless it
    is drawn healthy; `negatives` says how T2 negatives are cut, `contrast` how T2 backgrounds are
    made T1-like."""
    negatives, contrast = negatives or NegativeGrid(), contrast or Contrast()
    rng = np.random.default_rng([seed, index])
    scan, mask = _read(name, BACKGROUNDS[name][:2])
    reference = clinical_grid(scan, rng)
    draw = rng.random()
    negative = BACKGROUNDS[name][2] == "T2" and draw < t2_negative
    if negative and rng.random() < negatives.native_share:  # as distributed: users load files unresliced
        reference = scan
    cord = sitk.GetArrayFromImage(reslice(mask, reference, label=True))
    # Only the rows with a cord mask can be made T1-like; a negative may keep the whole field of view.
    if BACKGROUNDS[name][2] == "T2" and not (negative and negatives.whole_fov):
        rows = cord_rows(cord, reference.GetSpacing()[1])
        reference = crop_rows(reference, rows)
        cord = cord[:, rows]
    if contrast.ap_window_share > 0 and rng.random() < contrast.ap_window_share:
        columns = anterior_posterior_window(cord, reference.GetSpacing()[0], rng)
        reference = crop_rows(reference, columns, axis=0)
        cord = cord[:, :, columns]
    image = sitk.GetArrayFromImage(reslice(scan, reference))
    spacing = reference.GetSpacing()[::-1]  # (k, j, i)
    meta = {"background": name, "spacing_mm": [round(s, 3) for s in reference.GetSpacing()],
            "size": list(reference.GetSize()), "contrast": BACKGROUNDS[name][2]}
    label = np.zeros(image.shape, np.uint8)
    if negative:
        meta["role"] = "T2 negative (unaltered contrast, no lesion)"
    else:
        if BACKGROUNDS[name][2] == "T2":
            image = t1_like(image, cord, spacing, rng)
            meta["contrast"] = "T2 made T1-like"
            # Drawn only when asked for, so that the default data sets stay as they were.
            if contrast.tissue_share > 0 and rng.random() < contrast.tissue_share:
                image = t1_tissue_levels(image, cord, spacing, rng)
                meta["contrast"] = "T2 made T1-like, tissue at T1 levels"
        if draw < t2_negative + healthy or not cord.any():
            meta["role"] = "healthy"
        else:
            inserted = insert_lesion(image, cord, spacing, tumour, rng)
            image, label, cord = inserted.image, inserted.label, inserted.cord
            meta.update(role="lesion", lesions=inserted.lesions)
    return (_on_grid(image, reference, sitk.sitkFloat32), _on_grid(label, reference, sitk.sitkUInt8),
            _on_grid(cord.astype(np.uint8), reference, sitk.sitkUInt8), meta)


def _dataset_json(count: int, description: str) -> dict:
    return {"channel_names": {"0": "T1Gd"}, "labels": dict(NNUNET_LABELS), "numTraining": count,
            "file_ending": ".nii.gz", "name": "BATseg lesions in real healthy scans",
            "description": description,
            "licence": "backgrounds: see ../shared/data/real-spine-mri/licenses (MIT, CC BY 4.0); lesions synthetic"}


DEFAULT_NAMES = {"train": "Dataset511_BATsegRealInsertTrain", "test": "Dataset512_BATsegRealInsertTest"}


def write_split(out: Path, split: str, cases: int, seed: int, t2_negative: float, healthy: float,
                name: str | None = None, negatives: NegativeGrid | None = None,
                contrast: Contrast | None = None, types_by_background: bool = False) -> None:
    folder = out / (name or DEFAULT_NAMES[split])
    names = TRAIN if split == "train" else HELD_OUT
    metas = {}
    for index in range(cases):
        name = names[index % len(names)]
        # No "_NNNN" ending: nnU-Net reads "CASE_0000" as case CASE, channel 0.
        case = f"real{split}{index:04d}"
        tumour = lesion_type(index, len(names), types_by_background)
        image, label, cord, meta = make_case(name, index + 1000 * seed, seed, t2_negative, healthy, tumour,
                                             negatives, contrast)
        _write(folder, case, image, label, cord)
        metas[case] = meta
        print(f"{case}: {name} {meta['role']} {meta.get('lesions', '')}", flush=True)
    description = (f"Synthetic lesions inserted into real healthy spinal MRI ({', '.join(names)}), "
                   "resliced to random clinical sagittal grids: synthetic lesions, not for clinical use.")
    (folder / "insertions.json").write_text(json.dumps({"seed": seed, "split": split, "backgrounds": list(names),
                                                        "types_by_background": types_by_background,
                                                        "held_out": list(HELD_OUT), "cases": metas}, indent=1))
    (folder / "dataset.json").write_text(json.dumps(_dataset_json(cases, description), indent=1))


def write_unaltered(out: Path) -> None:
    """Every real scan without a lesion: as distributed, and on a 0.5 x 0.5 x 3.6 mm sagittal grid."""
    for name, paths in UNALTERED.items():
        scan, mask = _read(name, paths)
        for kind, image, cord in (("distributed", scan, mask > 0.5),
                                  ("resliced", None, None)):
            if image is None:
                reference = clinical_grid(scan, None, 0.5, 3.6)
                image, cord = reslice(scan, reference), reslice(mask, reference, label=True)
            label = sitk.Cast(cord * 0, sitk.sitkUInt8)
            _write(out / kind, name, image, label, sitk.Cast(cord, sitk.sitkUInt8))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--split", choices=("train", "test", "unaltered"), required=True)
    parser.add_argument("-n", "--cases", type=int, default=160)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--t2-negative-fraction", type=float, default=0.15)
    parser.add_argument("--healthy-fraction", type=float, default=0.1)
    parser.add_argument("--name", default=None, help="dataset folder name (default: Dataset511/512_...)")
    parser.add_argument("--negative-whole-fov", action="store_true",
                        help="T2 negatives keep the whole field of view (default: cropped to the cord rows)")
    parser.add_argument("--negative-native-share", type=float, default=0.0,
                        help="share of T2 negatives left on the scan's own grid, as distributed (default 0)")
    parser.add_argument("--t1-tissue-share", type=float, default=0.0,
                        help="share of T2 backgrounds made T1-like whose tissue outside the canal is also moved "
                             "to T1 levels (default 0, as for 0.7.0)")
    parser.add_argument("--ap-window-share", type=float, default=0.0,
                        help="share of cases cut to a random 40-150 mm anterior-posterior window around the cord "
                             "(default 0, as for 0.7.0)")
    parser.add_argument("--types-by-background", action="store_true",
                        help="pair each tumour type with the same backgrounds, as the data of 0.7.0 and 0.8.0 were "
                             "made (lesion_type; default: every background carries every type)")
    args = parser.parse_args()
    if args.split == "unaltered":
        write_unaltered(args.out)
    else:
        negative = args.t2_negative_fraction if args.split == "train" else 0.0
        healthy = args.healthy_fraction if args.split == "train" else 0.0
        write_split(args.out, args.split, args.cases, args.seed, negative, healthy, args.name,
                    NegativeGrid(args.negative_whole_fov, args.negative_native_share),
                    Contrast(args.t1_tissue_share, args.ap_window_share), args.types_by_background)


if __name__ == "__main__":
    main()
