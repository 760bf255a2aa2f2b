"""Export a reviewed case for retraining, in nnU-Net's raw dataset layout.

Layout of the export folder (one folder collects every reviewed case):

    dataset.json                    nnU-Net v2 dataset description; its "dataset" mapping lists
                                    every complete case (see "A case appears atomically")
    imagesTr/CASE_0000.nii.gz       the input volume (channel 0: T1Gd)
    labelsTr/CASE.nii.gz            the reviewed label map (0-4, batseg.labels values)
    segTr/CASE.seg.nrrd             the reviewed segmentation as Slicer saves it (names, colours, codes)
    aiTr/CASE.nii.gz                the AI's original label map, when the segmentation came from BATseg
    provenanceTr/CASE.json          model name/version/checksum, per-class Dice AI vs reviewed
                                    (editing effort), voxels added/removed, reviewer, ISO time
    quarantine/CASE/                files of a case an interrupted export left incomplete, with
                                    WHY.txt; never used for training, never deleted by BATseg

Decisions:
- Case identifiers are `batseg_NNNN`, the next number after every identifier already present
  in any of the folders (quarantine and unfinished exports included): an existing case is
  never overwritten, and no file name carries the volume's name (which may hold a patient name).
- Segments are mapped to classes by terminology and name (`segmentation.read_class_masks`);
  overlapping tumour segments are refused with the voxel counts (see segmentation.py).
- All-or-nothing on errors: every file is written into a staging folder inside the export
  folder, then moved into place without replacing anything; on any error the moved files are
  removed again and the staging folder deleted, leaving the old dataset.json.
- A case appears atomically, even when the process is killed (kill -9, Slicer crashing):
  dataset.json lists each case explicitly (nnU-Net v2's "dataset" mapping, which nnU-Net and
  `batseg train` read instead of scanning imagesTr), and it is replaced by one rename after all
  of a case's files are in place. That rename is the commit: before it nnU-Net does not see the
  case at all, after it the case is complete. The files are moved label first and image last, so
  that even a reader that scans imagesTr never meets an image without its label.
- Repair at the next export (`repair_export_folder`): a staging folder of a dead export whose
  files were all written (its provenance record is the last one written) is finished, i.e. its
  remaining files are moved into place; one that was killed while writing holds only partial
  copies and is removed. A case still incomplete after that (a file missing, e.g. left by an
  older BATseg that moved the image first) is moved into quarantine/CASE/ with a note:
  the user's files are set aside, never deleted. Staging folders are named
  `.batseg-export-PID-HOST-RANDOM`; only names of that pattern (or the older
  `.batseg-export-RANDOM`) are touched, and only when their process is provably dead or the
  folder has not changed for `STALE_AFTER_S` (another machine's export on a shared folder, an
  older BATseg's, or a process id the system has given to another program). The repairing
  export first renames such a folder after itself, so that a kill during the repair leaves a
  folder whose owner is dead again. A repair that fails (a file of another user) is reported as
  a note and left for the next export; the export itself goes on. Temporary files of a
  dataset.json or WHY.txt write that was killed (`batseg.atomic_files` names them after their
  process) are removed once that process is gone.
- Repairs are returned as `ExportedCase.notes` and logged as warnings.
- Dice per class is None when the class is absent from both the AI output and the review.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import numpy as np
import slicer

from batseg import __version__ as batseg_version
from batseg.atomic_files import remove_stale_parts, write_text_atomically
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
CASE_ID = re.compile(r"batseg_\d+")
FOLDERS = ("imagesTr", "labelsTr", "segTr", "aiTr", "provenanceTr")
QUARANTINE = "quarantine"
STAGING_PREFIX = ".batseg-export-"
STAGING_NAME = re.compile(r"\.batseg-export-(?P<pid>\d{1,10})-(?P<host>[0-9a-f]{8})-[a-z0-9_]{8}")
LEGACY_STAGING_NAME = re.compile(r"\.batseg-export-[a-z0-9_]{8}")  # older BATseg versions: no owner in the name
STALE_AFTER_S = 3600.0  # an export takes seconds: an unchanged staging folder this old is abandoned
DISCLAIMER = ("Reviewed research data for retraining BATseg; AI outputs came from a model that may be trained on "
              "synthetic phantoms and is not for clinical use.")
OVERLAP_RULE = "overlapping tumour segments are refused at export; the reviewer resolves them"

_log = logging.getLogger(__name__)
_own_stagings: set[str] = set()  # this process's live staging folders (its pid may equal a dead one's)


@dataclass
class ExportedCase:
    """Where an exported case went, what its provenance record says, and what was repaired first."""

    case_id: str
    folder: str
    files: dict[str, str] = field(default_factory=dict)  # role -> absolute path
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # repairs of earlier, interrupted exports


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
    staging = _create_staging(export_dir)
    moved: list[str] = []
    try:
        notes = _repair(export_dir, staging, dataset)
        case_id = next_case_id(export_dir)
        staged = _write_case(staging, case_id, segmentation_node, volume_node, labels, ai.labels)
        provenance = _provenance(case_id, reviewer, volume_node, labels, masks.segment_names, ai, staged)
        staged["provenance"] = _stage_json(staging, "provenanceTr", f"{case_id}.json", provenance)
        final = {role: os.path.join(export_dir, os.path.relpath(staged[role], staging))
                 for role in case_files(case_id, "ai_output" in staged)}  # the order of the moves: image last
        for role, target in final.items():
            os.makedirs(os.path.dirname(target), exist_ok=True)
            move_no_clobber(staged[role], target)
            moved.append(target)
        _commit_dataset(export_dir, dataset)
    except BaseException:
        for path in reversed(moved):  # the image first: no moment with an image but no label
            if os.path.exists(path):
                os.remove(path)
        raise
    finally:
        _remove_staging(staging)
    return ExportedCase(case_id, export_dir, final, provenance, notes)


def repair_export_folder(export_dir: str) -> list[str]:
    """Finish or set aside what interrupted exports left in `export_dir`; one note per repair.

    `export_case` does this before every export; a folder of another dataset is refused.
    """
    export_dir = os.path.abspath(os.fspath(export_dir))
    dataset = _load_compatible_dataset(export_dir)
    staging = _create_staging(export_dir)
    try:
        return _repair(export_dir, staging, dataset)
    finally:
        _remove_staging(staging)


def case_files(case_id: str, with_ai: bool) -> dict[str, str]:
    """Role -> path relative to the export folder of a case's files, in the order they are moved
    into place: the image last, so that an image in imagesTr always comes with its whole case."""
    files = {"label": f"labelsTr/{case_id}{FILE_ENDING}", "segmentation": f"segTr/{case_id}.seg.nrrd"}
    if with_ai:
        files["ai_output"] = f"aiTr/{case_id}{FILE_ENDING}"
    files["provenance"] = f"provenanceTr/{case_id}.json"
    files["image"] = f"imagesTr/{case_id}_0000{FILE_ENDING}"
    return files


def next_case_id(export_dir: str) -> str:
    """`batseg_NNNN` with the number after the highest one used in any case folder, in
    quarantine or by an export under way (its staging folder)."""
    folders = [os.path.join(export_dir, folder) for folder in FOLDERS]
    folders.append(os.path.join(export_dir, QUARANTINE))
    folders += [os.path.join(staging, folder) for staging in _staging_folders(export_dir) for folder in FOLDERS]
    highest = 0
    for path in folders:
        for name in _list(path):
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
    if not isinstance(dataset, dict):
        raise BATsegError(f"{path} does not hold a JSON object: choose an empty folder or a BATseg export folder")
    expected = {"labels": NNUNET_LABELS, "channel_names": CHANNEL_NAMES, "file_ending": FILE_ENDING}
    for key, value in expected.items():
        if dataset.get(key) != value:
            raise BATsegError(f"{path} describes another dataset ({key} is {dataset.get(key)!r}, BATseg needs "
                              f"{value!r}): choose an empty folder or a BATseg export folder")
    return dataset


def _commit_dataset(export_dir: str, existing: dict[str, Any] | None) -> None:
    """Replace dataset.json, in one rename, by one listing every complete case now on disk.

    The listing is the commit of an export: files of a case not (yet) listed are invisible to
    nnU-Net, so a kill at any point leaves a dataset that nnU-Net accepts.
    """
    cases = _complete_cases(export_dir)
    description = dataset_description(len(cases), existing)
    description.pop("dataset", None)  # rewritten last, after the short keys a reader looks for
    description["dataset"] = cases
    text = json.dumps(description, indent=2) + "\n"
    write_text_atomically(os.path.join(export_dir, "dataset.json"), text, overwrite=True)


def _complete_cases(export_dir: str) -> dict[str, dict[str, Any]]:
    """nnU-Net's "dataset" mapping of every case in imagesTr whose files are all present.

    A case of another tool (not named batseg_NNNN) needs only its image and label.
    """
    cases = {}
    for name in sorted(_list(os.path.join(export_dir, "imagesTr"))):
        if name.startswith(".") or not name.endswith(f"_0000{FILE_ENDING}"):
            continue
        case_id = name[: -len(f"_0000{FILE_ENDING}")]
        files = _expected_files(export_dir, case_id)
        if not _missing(export_dir, files):
            cases[case_id] = {"images": [files["image"]], "label": files["label"]}
    return cases


def _expected_files(export_dir: str, case_id: str) -> dict[str, str]:
    """The files `case_id` needs to be complete; whether it has an AI output its provenance says."""
    if not CASE_ID.fullmatch(case_id):
        return {"label": f"labelsTr/{case_id}{FILE_ENDING}", "image": f"imagesTr/{case_id}_0000{FILE_ENDING}"}
    provenance = _read_json(os.path.join(export_dir, "provenanceTr", f"{case_id}.json"))
    files = provenance.get("files") if isinstance(provenance, dict) else None
    return case_files(case_id, isinstance(files, dict) and "ai_output" in files)


def _missing(export_dir: str, files: dict[str, str]) -> list[str]:
    """The relative paths of `files` that are not files in `export_dir`.

    Only presence counts: every file arrives by a rename of a completely written one.
    """
    return [rel for rel in files.values() if not os.path.isfile(os.path.join(export_dir, rel))]


def _write_case(staging: str, case_id: str, segmentation_node, volume_node, labels: np.ndarray,
                ai_labels: np.ndarray | None) -> dict[str, str]:
    """Write the case's image, label, segmentation and AI files into the staging folder."""
    files = case_files(case_id, ai_labels is not None)
    staged = {role: _staged_path(staging, rel) for role, rel in files.items() if role != "provenance"}
    write_volume(volume_node, staged["image"])
    write_label_map(labels, volume_node, staged["label"])
    write_segmentation(segmentation_node, staged["segmentation"])
    if ai_labels is not None:
        write_label_map(ai_labels, volume_node, staged["ai_output"])
    return staged


def _staged_path(staging: str, relative: str) -> str:
    path = os.path.join(staging, *relative.split("/"))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return path


def _stage_json(staging: str, folder: str, name: str, content: dict[str, Any]) -> str:
    """Write the provenance record last, and by a rename: its presence in a staging folder
    tells a later repair that every file of the case was written completely."""
    path = _staged_path(staging, f"{folder}/{name}")
    write_text_atomically(path, json.dumps(content, indent=2) + "\n", overwrite=False)
    return path


# Repair of interrupted exports -----------------------------------------------------------------


def _repair(export_dir: str, own_staging: str, dataset: dict[str, Any] | None) -> list[str]:
    """Finish or remove dead exports' staging folders and quarantine incomplete cases.

    dataset.json is first rewritten to list the complete cases only (an older BATseg's has no
    listing), so that every state on the way, should this be killed too, is a valid dataset.
    Cases of exports still under way are left alone.
    """
    remove_stale_parts(export_dir)  # dataset.json's temporary, left by an export killed while writing it
    notes = _unlisted_cases(export_dir, dataset)
    _commit_if_outdated(export_dir, dataset)
    busy: set[str] = set()
    for staging in _staging_folders(export_dir):
        if staging == own_staging:
            continue
        if _in_use(staging):
            busy |= _staged_case_ids(staging)
            continue
        claimed = _claim(staging)
        if claimed:
            name = os.path.basename(staging)
            notes += _attempt(name, lambda: _finish_or_discard(export_dir, claimed, name))
    for case_id in sorted(_case_ids_on_disk(export_dir) - busy):
        notes += _attempt(case_id, lambda: _quarantine_if_incomplete(export_dir, case_id))
    _commit_if_outdated(export_dir, dataset)
    for note in notes:
        _log.warning("BATseg export: %s", note)
    return notes


def _attempt(what: str, repair: Callable[[], list[str]]) -> list[str]:
    """Run one repair; its failure (another user's file, a read-only folder) becomes a note and
    the export goes on: what was not repaired is not listed in dataset.json, so nnU-Net never
    sees it, and the next export tries again."""
    try:
        return repair()
    except (OSError, BATsegError) as error:
        return [f"could not repair {what} ({error}): left as it is, not used for training"]


def _commit_if_outdated(export_dir: str, existing: dict[str, Any] | None) -> None:
    """Rewrite dataset.json unless it lists exactly the complete cases on disk (an empty new
    folder gets none yet)."""
    current = _read_json(os.path.join(export_dir, "dataset.json"))
    cases = _complete_cases(export_dir)
    if current is None and not cases:
        return
    if isinstance(current, dict) and current.get("dataset") == cases and current.get("numTraining") == len(cases):
        return
    _commit_dataset(export_dir, existing)


def _unlisted_cases(export_dir: str, dataset: dict[str, Any] | None) -> list[str]:
    """Notes for complete cases that dataset.json does not list (an export killed just before
    its commit): the repair lists them."""
    listed = (dataset or {}).get("dataset")
    if not isinstance(listed, dict):
        return []  # an older BATseg's dataset.json: its cases are all listed now, without a note each
    return [f"{case_id}: added to dataset.json (its export was interrupted just before listing it)"
            for case_id in _complete_cases(export_dir) if case_id not in listed]


def _create_staging(export_dir: str) -> str:
    """A new staging folder named after this process (PID and host) so that a later export
    can tell whether it is still in use."""
    staging = tempfile.mkdtemp(dir=export_dir, prefix=f"{STAGING_PREFIX}{os.getpid()}-{_host_tag()}-")
    _own_stagings.add(staging)
    return staging


def _remove_staging(staging: str) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    _own_stagings.discard(staging)


def _staging_folders(export_dir: str) -> list[str]:
    """Staging folders of this exporter (its exact name patterns only) in `export_dir`."""
    names = [n for n in _list(export_dir) if STAGING_NAME.fullmatch(n) or LEGACY_STAGING_NAME.fullmatch(n)]
    paths = [os.path.join(export_dir, name) for name in sorted(names)]
    return [path for path in paths if os.path.isdir(path) and not os.path.islink(path)]


def _in_use(staging: str) -> bool:
    """Whether an export may still be writing into `staging` (when in doubt: yes, until stale)."""
    if staging in _own_stagings:
        return True
    try:
        age = time.time() - os.path.getmtime(staging)
    except OSError:
        return False  # removed meanwhile
    if age > STALE_AFTER_S:
        return False
    owner = STAGING_NAME.fullmatch(os.path.basename(staging))
    if owner is None or owner["host"] != _host_tag():
        return True  # an older BATseg's, or another machine's on a shared folder: judged by age only
    pid = int(owner["pid"])
    # Our own pid on a folder we did not create: a dead process had it (pids repeat in containers).
    return pid != os.getpid() and _process_alive(pid)


def _claim(staging: str) -> str | None:
    """Rename a dead export's staging folder after this process before repairing it, so that a
    kill during the repair leaves a folder whose owner is known to be dead (an older BATseg's
    would otherwise look fresh again, its age renewed by the repair), and two exports never
    repair the same folder. None when another export claimed it first."""
    suffix = os.path.basename(staging)[-8:]
    claimed = os.path.join(os.path.dirname(staging), f"{STAGING_PREFIX}{os.getpid()}-{_host_tag()}-{suffix}")
    if claimed == staging:
        return staging
    if os.path.lexists(claimed):
        return None  # a rename would replace it if it were an empty folder; the next export tries again
    try:
        os.rename(staging, claimed)
    except OSError:
        return None  # gone (claimed by another export), or a folder of that name exists: next time
    return claimed


def _process_alive(pid: int) -> bool:
    """False only when no process `pid` exists on this machine."""
    if os.name == "nt":
        return True  # os.kill(pid, 0) would terminate it on Windows; the age decides there
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True  # another user's process (or an id the kernel refuses): keep its folder
    return True


def _host_tag() -> str:
    """8 hex digits naming this machine (an export folder may be shared between machines)."""
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _staged_case_ids(staging: str) -> set[str]:
    """The case identifiers of the files in a staging folder."""
    return {case_id for _, case_id in _staged_files(staging)}


def _staged_files(staging: str) -> list[tuple[str, str]]:
    """(path relative to the staging folder, case id) of the case files it holds, in move order
    (files of other names, e.g. writers' temporaries, are not case files)."""
    found = []
    for folder in FOLDERS:
        for name in _list(os.path.join(staging, folder)):
            match = CASE_PATTERN.match(name)
            if match and f"{folder}/{name}" in case_files(match.group(0), True).values():
                found.append((f"{folder}/{name}", match.group(0)))
    return sorted(found, key=lambda item: (item[1], _rank(*item)))


def _rank(relative: str, case_id: str) -> int:
    """The position of a case file in the order of the moves (image last)."""
    return list(case_files(case_id, True).values()).index(relative)


def _finish_or_discard(export_dir: str, staging: str, name: str) -> list[str]:
    """Move a dead export's remaining files into place when they were all written (its provenance
    record is there, staged or already moved); otherwise they are partial copies: removed."""
    files = _staged_files(staging)
    case_ids = sorted({case_id for _, case_id in files})
    complete = [c for c in case_ids if _read_json(_provenance_path(export_dir, staging, c)) is not None]
    notes = []
    for case_id in complete:
        remaining = [rel for rel, c in files if c == case_id]
        notes += _move_remaining(export_dir, staging, case_id, remaining)
        notes.append(f"{case_id}: finished an export that was interrupted ({name})")
    if set(case_ids) - set(complete):
        notes.append(f"removed {name}: an export interrupted while it was writing its files left only partial copies")
    shutil.rmtree(staging, ignore_errors=True)
    return notes


def _provenance_path(export_dir: str, staging: str, case_id: str) -> str:
    """The case's provenance record: still in the staging folder, or already moved."""
    staged = os.path.join(staging, "provenanceTr", f"{case_id}.json")
    return staged if os.path.isfile(staged) else os.path.join(export_dir, "provenanceTr", f"{case_id}.json")


def _move_remaining(export_dir: str, staging: str, case_id: str, remaining: list[str]) -> list[str]:
    """Move staged files into place; one whose place is taken by another file goes to quarantine."""
    notes = []
    for relative in remaining:
        source, target = os.path.join(staging, relative), os.path.join(export_dir, relative)
        if _drop_if_same(source, target):
            continue
        if os.path.exists(target):
            notes += _quarantine(export_dir, case_id, {relative: source},
                                 f"{relative} was already taken by another file when an interrupted export was finished")
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        move_no_clobber(source, target)
    return notes


def _case_ids_on_disk(export_dir: str) -> set[str]:
    """The batseg_NNNN identifiers of every file in the case folders."""
    return {case_id for _, case_id in _case_files_on_disk(export_dir)}


def _case_files_on_disk(export_dir: str, only: str | None = None) -> list[tuple[str, str]]:
    """(relative path, case id) of the batseg case files in the case folders (of case `only`)."""
    found = []
    for folder in FOLDERS:
        for name in _list(os.path.join(export_dir, folder)):
            match = CASE_PATTERN.match(name)
            if match and (only is None or match.group(0) == only):
                found.append((f"{folder}/{name}", match.group(0)))
    return found


def _quarantine_if_incomplete(export_dir: str, case_id: str) -> list[str]:
    """Set an incomplete case's files aside in quarantine/CASE/ (nnU-Net never sees them there)."""
    missing = _missing(export_dir, _expected_files(export_dir, case_id))
    if not missing:
        return []
    present = {rel: os.path.join(export_dir, rel) for rel, _ in _case_files_on_disk(export_dir, case_id)}
    reason = f"incomplete, most likely after an interrupted export (missing: {', '.join(missing)})"
    return _quarantine(export_dir, case_id, present, reason)


def _quarantine(export_dir: str, case_id: str, files: dict[str, str], reason: str) -> list[str]:
    """Move `files` (relative path -> current path) into quarantine/CASE/, image first (so that
    a kill on the way leaves no image without its label), with the reason in WHY.txt."""
    folder = os.path.join(export_dir, QUARANTINE, case_id)
    _append_note(folder, reason)
    for relative in sorted(files, key=lambda rel: not rel.startswith("imagesTr/")):
        target = os.path.join(folder, *relative.split("/"))
        if not _drop_if_same(files[relative], target):
            target = _free_path(target)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            move_no_clobber(files[relative], target)
    where = os.path.relpath(folder, export_dir).replace(os.sep, "/")
    return [f"{case_id}: moved {len(files)} file(s) to {where}/, {reason}; move them back to use the case again"]


def _append_note(folder: str, reason: str) -> None:
    """Add a dated line to WHY.txt in `folder` (replaced by a rename, never half-written)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "WHY.txt")
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError:
        text = ("Files set aside by BATseg's export: they are never used for training. Move them back into the\n"
                "export folder's case folders once complete, or delete them.\n")
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")
    remove_stale_parts(folder)  # the temporary of a repair killed while writing this note
    write_text_atomically(path, f"{text}{now}: {reason}\n", overwrite=True)


def _drop_if_same(source: str, target: str) -> bool:
    """When `target` is `source` itself (a move killed between its hard link and its removal of
    the source), remove the source and say so."""
    try:
        same = os.path.samefile(source, target)
    except OSError:
        return False  # no target (or no source)
    if same:
        os.remove(source)
    return same


def _free_path(path: str) -> str:
    """`path`, or `path` with .1, .2, ... added when a file of that name is already there."""
    candidate, number = path, 0
    while os.path.lexists(candidate):
        number += 1
        candidate = f"{path}.{number}"
    return candidate


def _read_json(path: str) -> Any:
    """The JSON content of `path`, or None when it is missing or not valid JSON."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _list(folder: str) -> list[str]:
    """The names in `folder`; none when it is missing or unreadable."""
    try:
        return os.listdir(folder)
    except OSError:
        return []


# Provenance ------------------------------------------------------------------------------------


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
        "files": case_files(case_id, "ai_output" in staged),
        "software": {"batseg": batseg_version, "slicer": _slicer_version()},
        "disclaimer": DISCLAIMER,
    }


def editing_effort(ai_labels: np.ndarray, reviewed: np.ndarray, voxel_mm3: float) -> dict[str, Any]:
    """How much the reviewer changed: per-class Dice AI vs reviewed, voxels added and removed."""
    # The engine's Dice, the one `batseg evaluate` reports. Imported here, at export time: it
    # needs scipy, which a Slicer without the engine's dependencies does not have at start-up.
    from batseg.metrics import dice as dice_of

    dice: dict[str, float | None] = {}
    added: dict[str, int] = {}
    removed: dict[str, int] = {}
    for tumour in TUMOUR_CLASSES:
        ai_mask = ai_labels == tumour.value
        reviewed_mask = reviewed == tumour.value
        # None, not the engine's 1.0, when neither has the class: there was nothing to edit.
        dice[tumour.key] = dice_of(ai_mask, reviewed_mask) if ai_mask.any() or reviewed_mask.any() else None
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
