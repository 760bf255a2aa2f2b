"""Export a reviewed case for retraining, in nnU-Net's raw dataset layout.

Layout of the export folder (one folder collects every reviewed case):

    dataset.json                    nnU-Net v2 dataset description, kept consistent on every export
    imagesTr/CASE_0000.nii.gz       the input volume (channel 0: T1Gd)
    labelsTr/CASE.nii.gz            the reviewed label map (0-4, batseg.labels values)
    segTr/CASE.seg.nrrd             the reviewed segmentation as Slicer saves it (names, colours, codes)
    aiTr/CASE.nii.gz                the AI's original label map, when the segmentation came from BATseg
    provenanceTr/CASE.json          model name/version/checksum, per-class Dice AI vs reviewed
                                    (editing effort), voxels added/removed, reviewer, ISO time

Decisions:
- Case identifiers are `batseg_NNNN`, the next number after every identifier already present
  in any of the folders: an existing case is never overwritten, and no file name carries the
  volume's name (which may hold a patient name).
- Segments are mapped to classes by terminology and name (`segmentation.read_class_masks`);
  overlapping tumour segments are refused with the voxel counts (see segmentation.py).
- All-or-nothing: every file is written into a temporary folder inside the export folder,
  then moved into place without replacing anything; dataset.json is rewritten atomically
  last. On any error the moved files are removed again and the temporary folder deleted, so
  a failure half-way leaves no partial case and the old dataset.json.
- Dice per class is None when the class is absent from both the AI output and the review.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import slicer

from batseg import __version__ as batseg_version
from batseg.atomic_files import write_text_atomically
from batseg.errors import BATsegError
from batseg.labels import NNUNET_LABELS, TUMOUR_CLASSES

from BATsegSlicerLib.ai_output import recall_ai_output
from BATsegSlicerLib.files import move_no_clobber
from BATsegSlicerLib.segmentation import read_class_masks
from BATsegSlicerLib.storage import ijk_to_ras, write_segmentation, write_volume

FILE_ENDING = ".nii.gz"
CHANNEL_NAMES = {"0": "T1Gd"}
CASE_PREFIX = "batseg_"
CASE_PATTERN = re.compile(r"^batseg_(\d+)")
FOLDERS = ("imagesTr", "labelsTr", "segTr", "aiTr", "provenanceTr")
DISCLAIMER = ("Reviewed research data for retraining BATseg; AI outputs came from a model that may be trained on "
              "synthetic phantoms and is not for clinical use.")
OVERLAP_RULE = "overlapping tumour segments are refused at export; the reviewer resolves them"


@dataclass
class ExportedCase:
    """Where an exported case went and what its provenance record says."""

    case_id: str
    folder: str
    files: dict[str, str] = field(default_factory=dict)  # role -> absolute path
    provenance: dict[str, Any] = field(default_factory=dict)


def export_case(
    segmentation_node: "slicer.vtkMRMLSegmentationNode",
    volume_node: "slicer.vtkMRMLScalarVolumeNode",
    export_dir: str,
    reviewer: str = "",
) -> ExportedCase:
    """Export one reviewed case into `export_dir` (created if missing); see the module docstring."""
    export_dir = os.path.abspath(os.fspath(export_dir))
    os.makedirs(export_dir, exist_ok=True)
    dataset = _load_compatible_dataset(export_dir)
    masks = read_class_masks(segmentation_node, volume_node)
    labels = masks.label_array()
    ai = recall_ai_output(segmentation_node)
    if ai.labels is not None and ai.labels.shape != labels.shape:
        ai.labels = None  # the volume was replaced since the AI ran: its output no longer applies
    case_id = next_case_id(export_dir)
    staging = tempfile.mkdtemp(dir=export_dir, prefix=".batseg-export-")
    moved: list[str] = []
    try:
        staged = _write_case(staging, case_id, segmentation_node, volume_node, labels, ai.labels)
        provenance = _provenance(case_id, reviewer, volume_node, labels, masks.segment_names, ai, staged)
        staged["provenance"] = _stage_json(staging, "provenanceTr", f"{case_id}.json", provenance)
        final = {role: os.path.join(export_dir, os.path.relpath(path, staging)) for role, path in staged.items()}
        for role, path in staged.items():
            os.makedirs(os.path.dirname(final[role]), exist_ok=True)
            move_no_clobber(path, final[role])
            moved.append(final[role])
        _write_dataset(export_dir, dataset)
    except BaseException:
        for path in moved:
            if os.path.exists(path):
                os.remove(path)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportedCase(case_id, export_dir, final, provenance)


def next_case_id(export_dir: str) -> str:
    """`batseg_NNNN` with the number after the highest one used in any case folder."""
    highest = 0
    for folder in FOLDERS:
        path = os.path.join(export_dir, folder)
        if os.path.isdir(path):
            for name in os.listdir(path):
                match = CASE_PATTERN.match(name)
                if match:
                    highest = max(highest, int(match.group(1)))
    return f"{CASE_PREFIX}{highest + 1:04d}"


def dataset_description(num_training: int, existing: dict[str, Any] | None = None) -> dict[str, Any]:
    """nnU-Net v2's dataset.json for the export folder (user-added keys are kept)."""
    description = dict(existing or {})
    description.update({
        "channel_names": dict(CHANNEL_NAMES),
        "labels": dict(NNUNET_LABELS),
        "numTraining": int(num_training),
        "file_ending": FILE_ENDING,
    })
    description.setdefault("name", "BATseg reviewed cases")
    description.setdefault("description", "Cases reviewed and corrected in 3D Slicer (BATsegSlicer), for fine-tuning.")
    return description


def _load_compatible_dataset(export_dir: str) -> dict[str, Any] | None:
    """The existing dataset.json, or None; refuses a folder that holds another kind of dataset."""
    path = os.path.join(export_dir, "dataset.json")
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as handle:
            dataset = json.load(handle)
    except (OSError, ValueError) as error:
        raise BATsegError(f"{path} cannot be read ({error}): choose another export folder") from None
    expected = {"labels": NNUNET_LABELS, "channel_names": CHANNEL_NAMES, "file_ending": FILE_ENDING}
    for key, value in expected.items():
        if dataset.get(key) != value:
            raise BATsegError(f"{path} describes another dataset ({key} is {dataset.get(key)!r}, BATseg needs "
                              f"{value!r}): choose an empty folder or a BATseg export folder")
    return dataset


def _write_dataset(export_dir: str, existing: dict[str, Any] | None) -> None:
    """Rewrite dataset.json (atomically) with numTraining = the label files now present."""
    labels_dir = os.path.join(export_dir, "labelsTr")
    count = sum(1 for name in os.listdir(labels_dir) if name.endswith(FILE_ENDING) and not name.startswith("."))
    text = json.dumps(dataset_description(count, existing), indent=2) + "\n"
    write_text_atomically(os.path.join(export_dir, "dataset.json"), text, overwrite=True)


def _write_case(staging: str, case_id: str, segmentation_node, volume_node, labels: np.ndarray,
                ai_labels: np.ndarray | None) -> dict[str, str]:
    """Write the case's image, label, segmentation and AI files into the staging folder."""
    staged = {
        "image": _staged_path(staging, "imagesTr", f"{case_id}_0000{FILE_ENDING}"),
        "label": _staged_path(staging, "labelsTr", f"{case_id}{FILE_ENDING}"),
        "segmentation": _staged_path(staging, "segTr", f"{case_id}.seg.nrrd"),
    }
    write_volume(volume_node, staged["image"])
    write_label_map(labels, volume_node, staged["label"])
    write_segmentation(segmentation_node, staged["segmentation"])
    if ai_labels is not None:
        staged["ai_output"] = _staged_path(staging, "aiTr", f"{case_id}{FILE_ENDING}")
        write_label_map(ai_labels, volume_node, staged["ai_output"])
    return staged


def _staged_path(staging: str, folder: str, name: str) -> str:
    os.makedirs(os.path.join(staging, folder), exist_ok=True)
    return os.path.join(staging, folder, name)


def _stage_json(staging: str, folder: str, name: str, content: dict[str, Any]) -> str:
    path = _staged_path(staging, folder, name)
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=2)
        handle.write("\n")
    return path


def write_label_map(labels: np.ndarray, reference: "slicer.vtkMRMLVolumeNode", path: str) -> None:
    """Write a uint8 label array on `reference`'s grid (exact IJK-to-RAS) to a file."""
    node = slicer.vtkMRMLLabelMapVolumeNode()
    import vtk

    matrix = vtk.vtkMatrix4x4()
    reference.GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)
    slicer.util.updateVolumeFromArray(node, labels.astype(np.uint8))
    write_volume(node, path)


def _provenance(case_id: str, reviewer: str, volume_node, labels: np.ndarray, segment_names: dict[int, list[str]],
                ai, staged: dict[str, str]) -> dict[str, Any]:
    """The case's provenance record (written as provenanceTr/CASE.json)."""
    voxel_mm3 = float(np.prod(volume_node.GetSpacing()))
    return {
        "case_id": case_id,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "reviewer": reviewer,
        "model": ai.model,
        "editing": editing_effort(ai.labels, labels, voxel_mm3) if ai.labels is not None else None,
        "class_voxels": {t.key: int(np.count_nonzero(labels == t.value)) for t in TUMOUR_CLASSES},
        "class_volumes_cm3": {t.key: float(np.count_nonzero(labels == t.value) * voxel_mm3 / 1000.0)
                              for t in TUMOUR_CLASSES},
        "segments": {t.key: segment_names.get(t.value, []) for t in TUMOUR_CLASSES},
        "label_mapping": "segments mapped to classes by terminology and name, never by label value",
        "overlap_rule": OVERLAP_RULE,
        "geometry": {"dimensions_ijk": list(volume_node.GetImageData().GetDimensions()),
                     "ijk_to_ras": ijk_to_ras(volume_node).tolist()},
        "files": {**{role: _relative(path) for role, path in staged.items()},
                  "provenance": f"provenanceTr/{case_id}.json"},
        "software": {"batseg": batseg_version, "slicer": _slicer_version()},
        "disclaimer": DISCLAIMER,
    }


def _relative(path: str) -> str:
    """A staged file's path relative to the export folder, with forward slashes."""
    return os.path.relpath(path, os.path.dirname(os.path.dirname(path))).replace(os.sep, "/")


def editing_effort(ai_labels: np.ndarray, reviewed: np.ndarray, voxel_mm3: float) -> dict[str, Any]:
    """How much the reviewer changed: per-class Dice AI vs reviewed, voxels added and removed."""
    dice: dict[str, float | None] = {}
    added: dict[str, int] = {}
    removed: dict[str, int] = {}
    for tumour in TUMOUR_CLASSES:
        ai_mask = ai_labels == tumour.value
        reviewed_mask = reviewed == tumour.value
        total = int(ai_mask.sum()) + int(reviewed_mask.sum())
        dice[tumour.key] = None if total == 0 else 2.0 * int((ai_mask & reviewed_mask).sum()) / total
        added[tumour.key] = int((reviewed_mask & ~ai_mask).sum())
        removed[tumour.key] = int((ai_mask & ~reviewed_mask).sum())
    changed = int(np.count_nonzero(ai_labels != reviewed))
    return {
        "dice_ai_vs_reviewed": dice,
        "voxels_added": added,
        "voxels_removed": removed,
        "changed_voxels": changed,
        "changed_volume_cm3": changed * voxel_mm3 / 1000.0,
    }


def _slicer_version() -> str | None:
    app = getattr(slicer, "app", None)
    return str(app.applicationVersion) if app is not None else None
