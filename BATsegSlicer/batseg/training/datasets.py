"""Training data: a plain nnU-Net raw dataset folder anywhere -> `DatasetNNN_Name` in the work dir.

Accepted input is nnU-Net v2's raw layout (what the Slicer module's export writes):
``dataset.json``, ``imagesTr/CASE_0000<ending>``, ``labelsTr/CASE<ending>`` (or a
``"dataset"`` mapping in dataset.json, as nnU-Net allows). The folder may live anywhere and
have any name; nnU-Net needs it under `$nnUNet_raw` as ``DatasetNNN_Name``, so it is linked
(symlinks, or copies where links are not possible) into the work dir.

Decisions:
- Labels must be BATseg's: values 0-4, 0 background, 1-4 the four tumour types. Names are
  matched loosely (case, spaces, underscores: "Spinal meningioma" = "spinal_meningioma" =
  "meningioma"), since exports from other tools name them differently; values must match
  exactly, because a model trained on other values would mislabel every tumour.
- One image channel (T1 Gd), as BATseg is single-contrast.
- Each label must lie on its image's voxel grid (size and spacing, compared in patient axis
  order so that a label stored in another orientation is not refused). Checked here from the
  headers, naming the case: nnU-Net's own check only says "check text output above", and that
  text is hidden with --progress quiet or json.
- The dataset ID is stable: a folder already imported from the same source with the same
  files (names, sizes, modification times) is reused, so its preprocessed data and training
  checkpoints are found again (`--resume`). Changed data gets a new ID and is preprocessed
  afresh. IDs are taken from 900 upwards to stay clear of nnU-Net's public dataset numbers.
- Orientation: nnU-Net trains on the stored array axes and never reorients, so cases stored in
  another orientation than the others (or than the model being fine-tuned) are written as
  reoriented copies (a permutation / flip of voxel axes, `SimpleITK.DICOMOrient`; no
  interpolation) instead of links.
- Fine-tuning merges datasets: cases keep their names with a source prefix, each case once
  (so it is preprocessed once), and the new cases are drawn more often than the replayed ones
  (`MergedDataset.repeats`, applied by the trainer) so that they make up about `new_share` of
  the draws: a few corrected cases among hundreds would otherwise hardly ever be drawn.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batseg.atomic_files import remove_stale_parts, write_folder_atomically
from batseg.errors import BATsegError
from batseg.labels import NNUNET_LABELS, TUMOUR_CLASSES

FIRST_DATASET_ID = 900
SOURCE_RECORD = "batseg_source.json"
DEFAULT_NEW_SHARE = 0.3


@dataclass
class Case:
    """One training case: its image file (single channel) and label file."""

    identifier: str
    image: Path
    label: Path


@dataclass
class RawDataset:
    """A validated nnU-Net raw dataset folder."""

    folder: Path
    dataset_json: dict[str, Any]
    cases: list[Case] = field(default_factory=list)

    @property
    def file_ending(self) -> str:
        return self.dataset_json["file_ending"]

    @property
    def description(self) -> str:
        return str(self.dataset_json.get("description", "") or self.dataset_json.get("name", ""))


def _normalise(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def check_labels(labels: Any, where: str) -> None:
    """Refuse a dataset.json whose labels are not BATseg's five classes."""
    if not isinstance(labels, dict) or not all(isinstance(v, int) for v in labels.values()):
        raise BATsegError(f"{where}: 'labels' must map class names to integer values (0 background, 1-4 tumour types)")
    by_value = {v: _normalise(k) for k, v in labels.items()}
    wanted = {0: {"background"}} | {c.value: {_normalise(c.key), _normalise(c.name)} for c in TUMOUR_CLASSES}
    if set(by_value) != set(wanted) or any(by_value[v] not in names for v, names in wanted.items()):
        expected = ", ".join(f"{k}={v}" for k, v in NNUNET_LABELS.items())
        raise BATsegError(f"{where}: labels {labels} do not match BATseg's classes ({expected}); relabel the data")


def _read_dataset_json(folder: Path) -> dict[str, Any]:
    path = folder / "dataset.json"
    if not folder.is_dir():
        raise BATsegError(f"training data folder {folder} does not exist; give an nnU-Net raw dataset folder")
    if not path.is_file():
        raise BATsegError(f"{folder} has no dataset.json; give an nnU-Net raw dataset folder (dataset.json, imagesTr, labelsTr)")
    return read_json_object(path)


def read_json_object(path: Path) -> dict[str, Any]:
    """A dataset.json's object; BATsegError (one line) when it is not readable JSON or not an object."""
    try:
        dataset_json = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BATsegError(f"{path} is not readable JSON ({' '.join(str(exc).split())}); fix or re-export the dataset") from None
    if not isinstance(dataset_json, dict):
        raise BATsegError(f"{path} must hold a JSON object")
    return dataset_json


def _check_channels(dataset_json: dict[str, Any], where: str) -> None:
    channels = dataset_json.get("channel_names", dataset_json.get("modality"))
    if not isinstance(channels, dict) or len(channels) != 1:
        raise BATsegError(f"{where}: 'channel_names' must list exactly one image channel (T1 Gd); got {channels!r}")
    ending = dataset_json.get("file_ending")
    if not isinstance(ending, str) or not ending.startswith("."):
        raise BATsegError(f"{where}: 'file_ending' must be a file extension such as \".nii.gz\"; got {ending!r}")


def _list_cases(folder: Path, dataset_json: dict[str, Any]) -> list[Case]:
    ending = dataset_json["file_ending"]
    if "dataset" in dataset_json:
        from nnunetv2.utilities.utils import get_filenames_of_train_images_and_targets

        listed = get_filenames_of_train_images_and_targets(str(folder), json.loads(json.dumps(dataset_json)))
        return [Case(k, Path(v["images"][0]), Path(v["label"])) for k, v in sorted(listed.items())]
    pattern = re.compile(r"(.+)_0000" + re.escape(ending))
    images = folder / "imagesTr"
    names = sorted(p.name for p in images.iterdir()) if images.is_dir() else []
    cases = []
    for name in names:
        match = pattern.fullmatch(name)
        if match:
            identifier = match.group(1)
            cases.append(Case(identifier, images / name, folder / "labelsTr" / f"{identifier}{ending}"))
    return cases


def _check_complete(cases: list[Case]) -> None:
    """Refuse the dataset when a case lacks its image or label file, naming the case.

    An error, not a skip with a warning: a case without its label is most often an export that
    was interrupted (or files moved by hand), and training on the rest would quietly train on
    other data than the user chose, for hours; nnU-Net's own integrity check refuses it too.
    The Slicer module's export lists its cases in dataset.json only once they are complete, and
    its next export sets an incomplete case aside, so its folders do not reach this error.
    """
    for case in cases:
        for role, path in (("image", case.image), ("label", case.label)):
            if not path.is_file():
                raise BATsegError(
                    f"case {case.identifier} is incomplete: its {role} file {path} is missing (an interrupted "
                    "export? the next export from Slicer repairs a BATseg export folder); add the file, or "
                    "move the case's other files out of the folder")


def read_raw_dataset(folder: str | os.PathLike[str]) -> RawDataset:
    """Validate an nnU-Net raw dataset folder and list its cases (BATsegError if unusable)."""
    folder = Path(folder).expanduser().resolve()
    dataset_json = _read_dataset_json(folder)
    where = f"{folder}/dataset.json"
    check_labels(dataset_json.get("labels"), where)
    _check_channels(dataset_json, where)
    cases = _list_cases(folder, dataset_json)
    if not cases:
        raise BATsegError(
            f"{folder} has no training cases (expected imagesTr/CASE_0000{dataset_json['file_ending']} "
            f"with labelsTr/CASE{dataset_json['file_ending']})"
        )
    _check_complete(cases)
    for case in cases:
        check_label_grid(case)
    return RawDataset(folder, dataset_json, cases)


def check_label_grid(case: Case) -> None:
    """BATsegError naming the case when its label's size or spacing is not its image's.

    Compared as nnU-Net compares them (size exactly, spacing with numpy's default tolerance),
    from the headers only, each in patient (LPS) axis order.
    """
    import numpy as np

    image, label = _grid(case.image), _grid(case.label)
    for what, index in (("size", 0), ("spacing", 1)):
        if len(image[index]) != len(label[index]) or not np.allclose(image[index], label[index]):
            raise BATsegError(
                f"case {case.identifier}: image {case.image.name} and label {case.label.name} differ in {what} "
                f"({_values(image[index])} vs {_values(label[index])}); draw or resample the label on the image's grid"
            )


def _header_reader(path: Path):
    """A SimpleITK reader of the image at `path` that has read its header (not its voxels)."""
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError:
        raise BATsegError(f"cannot read the image header of {path}; is it a valid image file?") from None
    return reader


def _grid(path: Path) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(size, spacing) of an image from its header, in patient axis order where it is 3-D."""
    import numpy as np

    reader = _header_reader(path)
    size, spacing = tuple(float(n) for n in reader.GetSize()), reader.GetSpacing()
    if len(size) != 3:
        return size, spacing
    # Column i of the direction matrix is voxel axis i in LPS; its largest entry names the patient axis.
    axes = np.abs(np.asarray(reader.GetDirection(), dtype=float).reshape(3, 3)).argmax(axis=0)
    if len(set(axes.tolist())) != 3:
        return size, spacing  # a degenerate direction: leave it to nnU-Net
    order = np.argsort(axes)
    return tuple(size[i] for i in order), tuple(spacing[i] for i in order)


def _values(values: tuple[float, ...]) -> str:
    return "(" + ", ".join(f"{v:g}" for v in values) + ")"


def orientation_code(path: Path) -> str:
    """The ITK/DICOM orientation code (e.g. "PIR") of an image, read from its header only."""
    import SimpleITK as sitk

    reader = _header_reader(path)
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(reader.GetDirection())


def _fingerprint(cases: list[Case]) -> list[list[Any]]:
    """What identifies the data: file names, sizes and modification times."""
    out = []
    for case in cases:
        for path in (case.image, case.label):
            stat = path.stat()
            out.append([case.identifier, path.name, stat.st_size, int(stat.st_mtime)])
    return out


def _existing_ids(raw_root: Path) -> dict[int, Path]:
    found = {}
    for path in raw_root.glob("Dataset[0-9][0-9][0-9]_*"):
        found[int(path.name[7:10])] = path
    return found


def _link(source: Path, target: Path) -> None:
    try:
        os.symlink(source, target)
    except OSError:
        shutil.copy2(source, target)


def _safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9]+", "", name)[:40]
    return cleaned or "BATseg"


def _reoriented_copy(source: Path, target: Path, orientation: str) -> None:
    """`source` with its voxel axes permuted / flipped to `orientation` (no interpolation)."""
    import SimpleITK as sitk

    sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(source)), orientation), str(target))


def _place(case: Case, image: Path, label: Path, orientation: str | None) -> None:
    """Link a case's files, or write reoriented copies if it is stored in another orientation."""
    if orientation and orientation_code(case.image) != orientation:
        _reoriented_copy(case.image, image, orientation)
        _reoriented_copy(case.label, label, orientation)
    else:
        _link(case.image, image)
        _link(case.label, label)


def _write_linked_dataset(
    target: Path, cases: list[tuple[str, Case]], dataset_json: dict[str, Any], record: dict[str, Any]
) -> None:
    """Create `target` (imagesTr, labelsTr, dataset.json) with each (new id, case) placed in it.

    Filled under a temporary name and renamed, so nnU-Net never meets a half-linked dataset; the
    temporary folders of imports killed earlier are removed first (those of live ones are kept).
    """

    def fill(folder: Path) -> None:
        images, labels = folder / "imagesTr", folder / "labelsTr"
        images.mkdir()
        labels.mkdir()
        ending = dataset_json["file_ending"]
        for identifier, case in cases:
            _place(case, images / f"{identifier}_0000{ending}", labels / f"{identifier}{ending}", record.get("orientation"))
        out = {k: v for k, v in dataset_json.items() if k != "dataset"}
        out.update({"labels": dict(NNUNET_LABELS), "numTraining": len(cases), "file_ending": ending})
        (folder / "dataset.json").write_text(json.dumps(out, indent=2), encoding="utf-8")
        (folder / SOURCE_RECORD).write_text(json.dumps(record, indent=2), encoding="utf-8")

    remove_stale_parts(target.parent)
    write_folder_atomically(target, fill)


def _import(raw_root: Path, name: str, cases: list[tuple[str, Case]], dataset_json: dict, record: dict) -> str:
    """The name of an up-to-date imported dataset with this record, creating it if needed."""
    existing = _existing_ids(raw_root)
    for path in existing.values():
        stored = path / SOURCE_RECORD
        if stored.is_file() and json.loads(stored.read_text(encoding="utf-8")) == record:
            return path.name
    # An ID must also be free in the preprocessed and results folders (nnU-Net checks all three).
    taken = set(existing) | set(_existing_ids(raw_root.parent / "preprocessed")) | set(
        _existing_ids(raw_root.parent / "results")
    )
    dataset_id = next(i for i in range(FIRST_DATASET_ID, 10000) if i not in taken)
    if dataset_id > 999:
        raise BATsegError(f"the work dir {raw_root.parent} holds too many datasets; remove old ones or use another --workdir")
    dataset_name = f"Dataset{dataset_id:03d}_{_safe_name(name)}"
    _write_linked_dataset(raw_root / dataset_name, cases, dataset_json, record)
    return dataset_name


def import_dataset(dataset: RawDataset, raw_root: Path, name: str | None = None, orientation: str | None = None) -> str:
    """Link `dataset` into `raw_root` (nnU-Net's raw folder); returns its DatasetNNN_Name.

    Cases stored in another orientation than `orientation` (an ITK code such as "PIR") are
    copied reoriented, since nnU-Net trains on the stored array axes as they are.
    """
    record = {"sources": [str(dataset.folder)], "files": _fingerprint(dataset.cases), "orientation": orientation}
    cases = [(c.identifier, c) for c in dataset.cases]
    return _import(raw_root, name or dataset.folder.name, cases, dataset.dataset_json, record)


@dataclass
class MergedDataset:
    """An imported fine-tuning dataset (each case once) and how often its new cases are drawn."""

    name: str
    repeats: dict[str, int]  # identifier -> draws relative to a replayed case (new cases only)
    new_cases: int
    replayed_cases: int


def new_case_repeats(new_cases: int, replayed_cases: int, new_share: float = DEFAULT_NEW_SHARE) -> int:
    """How often each new case is drawn relative to a replayed one: n_new * r / (n_new * r + n_old) ~ new_share."""
    if not replayed_cases:
        return 1
    return max(1, math.ceil(new_share * replayed_cases / ((1 - new_share) * new_cases)))


def merge_for_finetuning(
    new: RawDataset, replayed: list[tuple[str, RawDataset]], raw_root: Path, name: str,
    new_share: float = DEFAULT_NEW_SHARE, orientation: str | None = None,
) -> MergedDataset:
    """One dataset of the new cases plus the replayed ones (each named `PREFIX_CASE`), all in
    `orientation` (the model's training orientation, see `import_dataset`).

    Each case is in it once, so nnU-Net preprocesses each case once; the new cases' weight in
    training is given by `repeats`, which the trainer applies when it draws cases
    (`trainer.repeated_identifiers`), so that they make up about `new_share` of the draws."""
    cases = [(f"new_{c.identifier}", c) for c in new.cases]
    for prefix, dataset in replayed:
        cases += [(f"{prefix}_{c.identifier}", c) for c in dataset.cases]
    n_old = len(cases) - len(new.cases)
    repeats = new_case_repeats(len(new.cases), n_old, new_share)
    record = {
        "sources": [str(new.folder)] + [str(dataset.folder) for _, dataset in replayed],
        "files": _fingerprint(new.cases) + [f for _, dataset in replayed for f in _fingerprint(dataset.cases)],
        "prefixes": ["new"] + [prefix for prefix, _ in replayed],
        "layout": "each case once",  # not the copies per repeat of batseg 0.6 and before
        "orientation": orientation,
    }
    # The new data's generator record does not describe the merged set (replay reads the lineage instead).
    dataset_json = {k: v for k, v in new.dataset_json.items() if k != "batseg"}
    dataset_name = _import(raw_root, name, cases, dataset_json, record)
    weights = {identifier: repeats for identifier, _ in cases[: len(new.cases)]} if repeats > 1 else {}
    return MergedDataset(dataset_name, weights, len(new.cases), n_old)
