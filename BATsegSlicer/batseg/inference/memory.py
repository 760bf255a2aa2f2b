"""Memory the prediction pipeline will need for an image, estimated from its header alone.

`batseg predict` refuses an image whose estimate exceeds the memory available now, with one
line, before reading its pixels: better than being killed half-way (or swapping the machine
to a halt) on a 16 GB laptop.

The estimate (bytes) is the sum of what is alive at the peak, the end of the prediction:
- input grid: the image as read (its pixel type), its float32 copy, the back-resampled logits
  (5 channels) turned in place into probabilities, the field (F channels) when asked for, the
  label map, and one float32 working volume for postprocessing and the report;
- model grid: the resampled image, the logits and field sums (and the weights when there are
  several tiles);
- the network's activations on one tile: `ACTIVATION_BYTES_PER_VOXEL_PER_FEATURE` times the
  first stage's features per tile voxel. Calibrated with ONNX Runtime on the light topology
  (16 features): 595 MB per million voxels at 16 x 160 x 160 and 630 at 16 x 272 x 272, i.e.
  about 40 bytes per voxel per first-stage feature; PyTorch's peak is of the same order.
- `FIXED_OVERHEAD_BYTES` for the interpreter, libraries and the model itself.

Sizes are multiplied in Python integers, never numpy int64: a header with an absurd spacing
(1e6 mm) gives a model grid of ~1e22 voxels, which wrapped int64 to a negative estimate that
passed the check (then a 445 PiB allocation traceback).

"Available" is the smallest of: the machine's available memory (psutil), what is left under
the process's own limits (RLIMIT_AS: `ulimit -v`, `prlimit --as`; RLIMIT_DATA) and what is
left under the memory limit of each cgroup the process is in (v2 ``memory.max``, v1
``memory.limit_in_bytes``: containers, systemd slices, batch schedulers). Free memory alone
let a job under `prlimit --as=3G` pass the check and die allocating.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Sequence

from batseg.errors import InputImageError

ACTIVATION_BYTES_PER_VOXEL_PER_FEATURE = 40
FIXED_OVERHEAD_BYTES = 400 * 1024**2
# The most the tile activations may take by default; "auto" tiles are sized to stay under it.
ACTIVATION_BUDGET_BYTES = 1536 * 1024**2
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
# cgroup v1 writes "no limit" as 2**63 minus a page; anything this large is no limit.
UNLIMITED = 1 << 62
# (limit file, usage file, reclaimable page-cache key of memory.stat) per cgroup version.
_V2 = ("memory.max", "memory.current", "inactive_file")
_V1 = ("memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")


def tile_voxel_budget(first_features: int, budget_bytes: int = ACTIVATION_BUDGET_BYTES) -> int:
    """The largest tile (in voxels) whose activations fit the budget."""
    return int(budget_bytes // (ACTIVATION_BYTES_PER_VOXEL_PER_FEATURE * max(1, first_features)))


def estimate_peak_bytes(
    input_voxels: int,
    input_bytes_per_voxel: int,
    model_shape: Sequence[int],
    tile_voxels: int,
    several_tiles: bool,
    num_classes: int,
    field_channels: int,
    first_features: int,
    keep_field: bool,
) -> int:
    """The pipeline's peak memory in bytes (see the module docstring), as an exact Python int."""
    model_voxels = math.prod(int(n) for n in model_shape)
    per_input_voxel = input_bytes_per_voxel + 4 + 4 * num_classes + 1 + 4
    if keep_field:
        per_input_voxel += 4 * field_channels
    per_model_voxel = 4 * (1 + num_classes + field_channels + (1 if several_tiles else 0))
    activations = ACTIVATION_BYTES_PER_VOXEL_PER_FEATURE * int(first_features) * int(tile_voxels)
    return int(input_voxels) * per_input_voxel + model_voxels * per_model_voxel + activations + FIXED_OVERHEAD_BYTES


def _read_int(path: Path) -> int | None:
    """An integer control file's value; None when absent, unreadable or "max" (no limit)."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None


def _stat_value(path: Path, key: str) -> int:
    """One counter of a cgroup's memory.stat (0 when absent)."""
    try:
        lines = path.read_text(encoding="ascii").splitlines()
    except (OSError, UnicodeDecodeError):
        return 0
    for line in lines:
        name, _, value = line.partition(" ")
        if name == key and value.strip().isdigit():
            return int(value)
    return 0


def _cgroup_folders(root: Path, proc_cgroup: Path) -> list[tuple[Path, tuple[str, str, str]]]:
    """This process's memory cgroup folders and their ancestors (each one's limit applies), with their version."""
    try:
        lines = proc_cgroup.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return []
    folders: list[tuple[Path, tuple[str, str, str]]] = []
    for line in lines:
        hierarchy, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if hierarchy == "0" and not controllers:
            base, files = root, _V2
        elif "memory" in controllers.split(","):
            base, files = root / "memory", _V1
        else:
            continue
        relative = Path(path.lstrip("/"))
        # Without a cgroup namespace the mount shows the whole tree; inside one (or an old
        # container mount) the process's own group is the mount root: try both.
        for folder in (relative, *relative.parents):
            if (base / folder, files) not in folders:
                folders.append((base / folder, files))
    return folders


def cgroup_available_bytes(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int | None:
    """What is left under the tightest memory cgroup limit of this process; None when unlimited.

    Usage counts page cache, which the kernel reclaims before it kills: its inactive part is
    taken as free (the working set, as container runtimes report it).
    """
    left = None
    for folder, (limit_file, usage_file, cache_key) in _cgroup_folders(root, proc_cgroup):
        limit = _read_int(folder / limit_file)
        if limit is None or limit >= UNLIMITED:
            continue
        usage = _read_int(folder / usage_file) or 0
        working_set = max(0, usage - _stat_value(folder / "memory.stat", cache_key))
        room = max(0, limit - working_set)
        left = room if left is None else min(left, room)
    return left


def rlimit_available_bytes() -> int | None:
    """What is left under this process's address-space and data limits; None when unlimited."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    import psutil

    used = psutil.Process().memory_info()
    left = None
    for limit_name, used_bytes in (("RLIMIT_AS", used.vms), ("RLIMIT_DATA", getattr(used, "data", 0))):
        if not hasattr(resource, limit_name):
            continue
        soft, _ = resource.getrlimit(getattr(resource, limit_name))
        if soft == resource.RLIM_INFINITY or soft < 0:
            continue
        room = max(0, soft - int(used_bytes))
        left = room if left is None else min(left, room)
    return left


def available_memory() -> tuple[int, str]:
    """Memory a new allocation can get now, and what sets that bound (module docstring)."""
    import psutil

    bounds = [(int(psutil.virtual_memory().available), "")]
    process = rlimit_available_bytes()
    if process is not None:
        bounds.append((process, "under this process's memory limit (ulimit -v)"))
    if os.name == "posix":
        group = cgroup_available_bytes()
        if group is not None:
            bounds.append((group, "under the container's or cgroup's memory limit"))
    return min(bounds, key=lambda bound: bound[0])


def available_bytes() -> int:
    """Memory available to a new allocation now (see `available_memory`)."""
    return available_memory()[0]


def peak_resident_bytes() -> int:
    """This process's peak resident memory so far.

    On Linux the high-water mark of the process's own memory map (VmHWM): `getrusage`'s
    ru_maxrss also counts the parent's resident size at the moment the process was spawned
    (the address space it was forked from), which inflates small children of big parents.
    On Windows the peak working set (psutil); elsewhere ru_maxrss (kilobytes on Linux-like
    systems, bytes on macOS).
    """
    import sys

    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        info = psutil.Process().memory_info()
        return int(getattr(info, "peak_wset", info.rss))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def gigabytes(count: int) -> str:
    """A byte count as GB for a message; exact integers of any size (no float overflow)."""
    if count >= 10**15 * 1024**3:
        return f"more than {10**15:.0e} GB"
    return f"{count / 1024**3:.3g} GB"


def _count(number: int) -> str:
    """A voxel count for a message: exact when short, its order of magnitude when absurd."""
    text = str(int(number))
    return text if len(text) <= 9 else f"~1e{len(text) - 1}"


def check_fits(
    needed: int,
    available: int,
    name: str,
    size: Sequence[int],
    where: str = "",
    model_shape: Sequence[int] | None = None,
) -> None:
    """One-line refusal when the estimate exceeds the available memory.

    `where` says which bound applies (e.g. a cgroup limit); `model_shape`, when given and far
    larger than the image, is named with a hint at the header's voxel spacing, the usual cause.
    """
    if needed <= available:
        return
    advice = "crop the image to the spine or use a larger machine"
    if model_shape is not None and math.prod(int(n) for n in model_shape) > 64 * max(1, math.prod(size[:3])):
        # Far more model-grid voxels than image voxels: the header's spacing is wrong, not the machine too small.
        advice = (f"resampled to the model's spacing it would be {' x '.join(map(_count, model_shape))} voxels: "
                  "check the voxel spacing in its header")
    raise InputImageError(
        f"{name} ({' x '.join(map(str, size))} voxels) needs about {gigabytes(needed)} of memory to segment "
        f"and only {gigabytes(available)} is available{' ' + where if where else ''}; {advice}"
    )
