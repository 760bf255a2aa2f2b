"""Inference backends: run the network on one tile, with PyTorch or with ONNX Runtime.

Both take a (1, 1, z, y, x) float32 numpy tile and return numpy (logits (1, 5, ...), field
(1, F, ...) or None), so the sliding window, test-time augmentation and resampling are shared.

ONNX Runtime (decision: the default on CPU, chosen by measurement; see `DEFAULT_CPU_BACKEND`):
the network is exported once per model file with the TorchScript-based exporter
(`torch.onnx.export(dynamo=False)`, opset 17, dynamic z/y/x axes so any tile size runs) and
cached. The export is checked against PyTorch on a small tile (finite outputs, within
`EXPORT_CHECK_TOLERANCE`) before it is cached. The cache folder is ``$BATSEG_CACHE_DIR``, else
``$XDG_CACHE_HOME/batseg``, else ``~/.cache/batseg``. One `InferenceSession` is created per
backend and reused for every tile and every case; with a warm cache the ONNX path never
imports torch (about 1.5 s saved per process).

The cache trusts nothing it finds (a planted or stale file was once served with exit 0 under
the shipped model's name):
- an entry is ``<cache>/onnx/<key>.onnx`` where the key is the sha256 of what the export was
  made from (`export_source`): the whole manifest, the weights' sha256, the exporter tag and
  opset, and the torch and onnxruntime versions; any change gives another entry;
- beside it ``<key>.json`` (written atomically, after the ONNX file) records that source and
  the ONNX file's own size and sha256;
- before use the sidecar must name the same source and the file's bytes must hash to its
  sha256; the session is built from exactly those verified bytes (no window between check
  and load). An entry that fails (no sidecar, planted, stale, damaged) is never used: it is
  exported again to a temporary name and renamed over it.

PyTorch: the model file's network in eval mode under `torch.inference_mode`, with autocast
(mixed precision) on CUDA as nnU-Net's predictor does, float32 on CPU.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import warnings
from pathlib import Path
from typing import Any, Callable, Protocol

import numpy as np

from batseg.errors import BATsegError, ModelFileError

OPSET = 17
EXPORT_TAG = "ts-opset17-v1"  # change when the export procedure changes: old cache files are ignored
SIDECAR_FORMAT = 1  # of the <key>.json beside each cached export
MAX_THREADS = 256  # --threads above this crashed the runtimes (100000 segfaulted); far past any useful count
BACKENDS: tuple[str, ...] = ("auto", "torch", "onnx")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda")
# Measured on the 2-core development machine, light topology, 16 x 272 x 272 model grid in one
# tile (the benchmark volume): ONNX Runtime 0.7-1.0 s per forward pass, PyTorch 2.4 s.
DEFAULT_CPU_BACKEND = "onnx"
EXPORT_CHECK_TOLERANCE = 1e-3  # max |logit difference| relative to max(1, max |logit|)

Log = Callable[[str], None]


class Backend(Protocol):
    """What the predictor needs from a backend."""

    name: str
    device: str

    def run(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]: ...


def max_threads() -> int:
    """The largest --threads accepted: four per core, at most `MAX_THREADS` (and at least 4)."""
    return max(4, min(MAX_THREADS, 4 * (os.cpu_count() or 1)))


def check_threads(threads: int | None, option: str = "--threads") -> int | None:
    """`threads` when it is None (the libraries' choice) or within 1..max_threads(); else a one-line error."""
    if threads is None:
        return None
    if isinstance(threads, bool) or not isinstance(threads, int) or not 1 <= threads <= max_threads():
        raise BATsegError(
            f"{option} {threads} is out of range: give 1 to {max_threads()} ({os.cpu_count() or 1} CPU cores here)"
        )
    return threads


def cache_dir() -> Path:
    """The folder for cached ONNX exports (see the module docstring)."""
    if os.environ.get("BATSEG_CACHE_DIR"):
        return Path(os.environ["BATSEG_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "batseg"


def _torch_build_has_cuda() -> bool:
    """Whether the installed torch is a CUDA build, read from torch/version.py without importing torch."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.origin:
        return False
    version_file = Path(spec.origin).with_name("version.py")
    try:
        text = version_file.read_text(encoding="utf-8")
    except OSError:
        return True  # unknown: let torch answer
    for line in text.splitlines():
        if line.startswith("cuda"):
            return "None" not in line
    return True


def cuda_available() -> bool:
    """True when PyTorch can use a CUDA GPU (torch is imported only for a CUDA build)."""
    if not _torch_build_has_cuda():
        return False
    import torch

    return bool(torch.cuda.is_available())


def resolve_device(device: str) -> str:
    """'cpu' or 'cuda' from the user's choice; 'cuda' without a GPU is an error."""
    if device not in DEVICES:
        raise BATsegError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" and not cuda_available():
        raise BATsegError("--device cuda was asked for but no CUDA GPU is usable here; use --device cpu")
    return device


def onnx_cuda_available() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def resolve_backend(backend: str, device: str) -> str:
    """'torch' or 'onnx' for a resolved device."""
    if backend not in BACKENDS:
        raise BATsegError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return DEFAULT_CPU_BACKEND if device == "cpu" else "torch"
    if backend == "onnx" and device == "cuda" and not onnx_cuda_available():
        raise BATsegError(
            "this onnxruntime has no CUDA support; use --backend torch for the GPU, or --device cpu"
        )
    return backend


def is_out_of_memory(exc: BaseException) -> bool:
    """True for a GPU out-of-memory error from PyTorch or ONNX Runtime."""
    text = str(exc).lower()
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in text or "failed to allocate memory" in text


# ---------------------------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------------------------


class TorchBackend:
    """The model file's network run by PyTorch."""

    name = "torch"

    def __init__(self, model_path: Path, device: str = "cpu", threads: int | None = None, network: Any = None) -> None:
        import torch

        from batseg.model_file import load_model

        if threads:
            torch.set_num_threads(int(threads))
        self.device = device
        self._torch = torch
        self.network = network if network is not None else load_model(model_path, "cpu").network
        self.network.to(device).eval()

    def run(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        torch = self._torch
        x = torch.from_numpy(tile).to(self.device)
        with torch.inference_mode(), torch.autocast("cuda", enabled=self.device == "cuda"):
            output = self.network(x)
        seg, field = output if isinstance(output, tuple) else (output, None)
        seg_np = seg.float().cpu().numpy()
        return seg_np, None if field is None else field.float().cpu().numpy()


# ---------------------------------------------------------------------------------------------
# ONNX export and cache
# ---------------------------------------------------------------------------------------------


def _installed_version(distribution: str) -> str:
    """An installed distribution's version from its metadata (imports nothing: a warm run needs no torch)."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "none"


def _onnxruntime_version() -> str:
    """The onnxruntime in use (its CPU and GPU builds are different distributions)."""
    try:
        import onnxruntime
    except ImportError:
        raise BATsegError("onnxruntime is not installed; use --backend torch") from None
    return str(onnxruntime.__version__)


def export_source(manifest: dict[str, Any]) -> dict[str, Any]:
    """Everything an ONNX export depends on; its hash names the cache entry (module docstring)."""
    canonical = json.dumps(manifest, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return {
        "manifest_sha256": hashlib.sha256(canonical.encode("ascii")).hexdigest(),
        "weights_sha256": str(manifest["weights_sha256"]),
        "exporter": EXPORT_TAG,
        "opset": OPSET,
        "torch": _installed_version("torch"),
        "onnxruntime": _onnxruntime_version(),
    }


def onnx_cache_path(manifest: dict[str, Any], folder: Path | None = None) -> Path:
    """Where the ONNX export of a model (keyed by the hash of `export_source`) is cached."""
    source = json.dumps(export_source(manifest), sort_keys=True).encode("ascii")
    return (folder or cache_dir()) / "onnx" / f"{hashlib.sha256(source).hexdigest()}.onnx"


def sidecar_path(onnx_path: Path) -> Path:
    """The JSON record beside a cached export: what it was made from, its size and sha256."""
    return onnx_path.with_suffix(".json")


def _read_sidecar(path: Path, source: dict[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The sidecar of a cache entry when it is ours and names `source`; else (None, why not)."""
    try:
        if not stat.S_ISREG(path.stat().st_mode) or path.stat().st_size > 64 * 1024:
            return None, "its record is not a small file"
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, "it has no record of what it was made from"
    except (OSError, ValueError, RecursionError):
        return None, "its record is unreadable"
    if not isinstance(record, dict) or record.get("format") != SIDECAR_FORMAT:
        return None, "its record has another format"
    if record.get("made_from") != source:
        return None, "it was made from another model, exporter or library version"
    if not isinstance(record.get("onnx_sha256"), str) or type(record.get("onnx_bytes")) is not int:
        return None, "its record lacks the file's checksum"
    return record, ""


def read_cached_onnx(path: Path, source: dict[str, Any]) -> tuple[bytes | None, str]:
    """The verified bytes of a cache entry, or (None, why it cannot be used); ("" when there is none)."""
    if not path.exists() and not path.is_symlink() and not sidecar_path(path).exists():
        return None, ""
    record, problem = _read_sidecar(sidecar_path(path), source)
    if record is None:
        return None, problem
    try:
        info = path.stat()
        # Size first: a planted link to /dev/zero or a huge file is never read.
        if not stat.S_ISREG(info.st_mode) or info.st_size != record["onnx_bytes"]:
            return None, "it is not a regular file of the size its record gives"
        data = path.read_bytes()
    except OSError:
        return None, "it is unreadable"
    if hashlib.sha256(data).hexdigest() != record["onnx_sha256"]:
        return None, "its checksum differs from its record"
    return data, ""


def _write_sidecar(onnx_path: Path, data: bytes, source: dict[str, Any]) -> None:
    """Record what a fresh export was made from and its checksum, atomically."""
    from batseg.atomic_files import write_text_atomically

    record = {
        "format": SIDECAR_FORMAT,
        "made_from": source,
        "onnx_bytes": len(data),
        "onnx_sha256": hashlib.sha256(data).hexdigest(),
    }
    write_text_atomically(sidecar_path(onnx_path), json.dumps(record, indent=1, sort_keys=True) + "\n", overwrite=True)


def _check_tile(manifest: dict[str, Any]) -> tuple[int, int, int]:
    """A small valid tile for checking an export: at most 8 x 64 x 64, a multiple of the downsampling."""
    from batseg.inference.sliding_window import downsampling_factors, round_up

    factors = downsampling_factors(manifest["architecture"]["arch_kwargs"]["strides"])
    patch = manifest["input"]["patch_size"]
    return tuple(round_up(min(n, wanted), f) for n, wanted, f in zip(patch, (8, 64, 64), factors))  # type: ignore


def export_onnx(
    model_path: Path, manifest: dict[str, Any], destination: Path, source: dict[str, Any] | None = None
) -> bytes:
    """Export the model file's network to ONNX at `destination` (atomically), check it, record it; its bytes."""
    import torch

    from batseg.atomic_files import write_atomically
    from batseg.model_file import load_model

    network = load_model(model_path, "cpu").network

    class _Outputs(torch.nn.Module):
        """Always a tuple (logits, field) or (logits,), whatever the network returns."""

        def __init__(self, net: torch.nn.Module) -> None:
            super().__init__()
            self.net = net

        def forward(self, x: torch.Tensor) -> Any:
            out = self.net(x)
            return out if isinstance(out, tuple) else (out,)

    wrapper = _Outputs(network).eval()
    has_field = manifest["architecture"]["field_head"] is not None
    outputs = ["logits", "field"] if has_field else ["logits"]
    axes = {2: "z", 3: "y", 4: "x"}
    example = torch.zeros((1, manifest["architecture"]["input_channels"], *_check_tile(manifest)))
    exported: list[bytes] = []

    def write(temporary: Path) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation / instance-norm notes
            try:
                torch.onnx.export(
                    wrapper, (example,), str(temporary), dynamo=False, opset_version=OPSET, input_names=["image"],
                    output_names=outputs, dynamic_axes={name: axes for name in ["image", *outputs]},
                    do_constant_folding=True,
                )
            except Exception as exc:  # the exporter raises many types; any of them means "no ONNX"
                first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
                raise BATsegError(f"the network could not be exported to ONNX ({first}); use --backend torch") from None
        _check_export(temporary, wrapper, example.shape)
        exported.append(temporary.read_bytes())  # the bytes checked, whatever replaces the file later

    write_atomically(destination, write, overwrite=True)
    data = exported[0]
    # The record last: an entry whose record is missing or older than its file fails the check.
    _write_sidecar(destination, data, source or export_source(manifest))
    return data


def _check_export(path: Path, wrapper: Any, shape: tuple[int, ...]) -> None:
    """Refuse an export whose outputs differ from PyTorch's, or are not finite, on a random tile."""
    import torch

    example = torch.from_numpy(np.random.default_rng(0).standard_normal(shape).astype(np.float32))
    with torch.inference_mode():
        reference = [t.numpy() for t in wrapper(example)]
    if not all(np.isfinite(ref).all() for ref in reference):
        # PyTorch itself gives NaN / inf: the network is broken, not the export (no fallback helps).
        raise ModelFileError(
            "the network's outputs on a test tile are not finite numbers (NaN or infinity); the model file is broken"
        )
    try:
        produced = _session(path, threads=None, device="cpu").run(None, {"image": example.numpy()})
    except Exception as exc:  # onnxruntime's own exception types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise BATsegError(f"ONNX Runtime cannot run the exported network ({first}); use --backend torch") from None
    for ref, out in zip(reference, produced):
        error = float(np.abs(ref - out).max())
        # Written as "not within": NaN compares False both ways, so "error > tol" let NaN through.
        if not error <= EXPORT_CHECK_TOLERANCE * max(1.0, float(np.abs(ref).max())):
            raise BATsegError(
                f"the ONNX export differs from PyTorch by {error:.3g}; use --backend torch"
            )


def ensure_onnx(
    model_path: Path, manifest: dict[str, Any], folder: Path | None = None, log: Log | None = None
) -> tuple[Path, bytes, bool]:
    """The verified ONNX export of a model, exporting it first if needed: (path, its bytes, was already cached)."""
    source = export_source(manifest)
    path = onnx_cache_path(manifest, folder)
    data, problem = read_cached_onnx(path, source)
    if data is not None:
        return path, data, True
    if log:
        why = f"the cached export {path.name} is not used: {problem}; " if problem else ""
        log(f"{why}exporting the model to ONNX once (cached in {path.parent})")
    _check_cache_folder(path.parent)
    try:
        data = export_onnx(model_path, manifest, path, source)
    except OSError as exc:
        raise BATsegError(
            f"cannot write the ONNX cache in {path.parent} ({exc.strerror}); set BATSEG_CACHE_DIR to a writable folder"
        ) from None
    return path, data, False


def _check_cache_folder(folder: Path) -> None:
    """The atomic writer's up-front check, with the message that names BATSEG_CACHE_DIR."""
    from batseg.atomic_files import check_writable_folder

    try:
        check_writable_folder(folder)
    except BATsegError:
        raise BATsegError(f"cannot write the ONNX cache in {folder}; set BATSEG_CACHE_DIR to a writable folder") from None


# ---------------------------------------------------------------------------------------------
# ONNX Runtime
# ---------------------------------------------------------------------------------------------


def _session(model: Path | bytes, threads: int | None, device: str, arena: bool = True) -> Any:
    """An ONNX Runtime session over a file or over a model's bytes; without `arena`, no CPU memory
    arena and no memory pattern (CPU_MEMORY_ARENA)."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = int(threads)
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only: no warnings on stderr
    if not arena:
        options.enable_cpu_mem_arena = False
        options.enable_mem_pattern = False
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return onnxruntime.InferenceSession(model if isinstance(model, bytes) else str(model), options, providers=providers)


# ONNX Runtime's CPU arena keeps every block it has allocated for reuse, and its memory pattern
# preallocates the plan of the largest run; both trade memory for speed. Measured on the paper
# topology with the cascade crop (scripts/bench_paper_levers.py, docs/inference.md): peak 2.5 GB
# with them, 1.35 GB without, the network stage 1.7x slower. So they stay on for networks whose
# first stage has fewer than ARENA_MAX_FEATURES features (the light topology: a few hundred MB
# either way) and are off for the paper's 32 and more, where they decide whether 2 GB is enough.
# CPU_MEMORY_ARENA forces them on (True) or off (False); None follows that rule.
CPU_MEMORY_ARENA: bool | None = None
ARENA_MAX_FEATURES = 32


def use_arena(manifest: dict[str, Any]) -> bool:
    """Whether ONNX Runtime keeps its CPU memory arena for this model (CPU_MEMORY_ARENA)."""
    if CPU_MEMORY_ARENA is not None:
        return CPU_MEMORY_ARENA
    features = (manifest.get("architecture") or {}).get("arch_kwargs", {}).get("features_per_stage") or [0]
    return int(features[0]) < ARENA_MAX_FEATURES


class OnnxBackend:
    """An ONNX Runtime session over the cached export, created once and reused."""

    name = "onnx"

    def __init__(
        self, onnx_path: Path, device: str = "cpu", threads: int | None = None, model_bytes: bytes | None = None,
        arena: bool = True,
    ) -> None:
        """A session over `model_bytes` (the verified content of `onnx_path`) when given, else over the file."""
        self.device = device
        self.path = onnx_path
        self.arena = arena
        try:
            self.session = _session(onnx_path if model_bytes is None else model_bytes, threads, device, arena)
        except Exception as exc:  # onnxruntime raises its own exception types for a bad file
            raise ModelFileError(
                f"the cached ONNX model {onnx_path.name} cannot be loaded ({str(exc).splitlines()[0][:120]}); "
                "delete it to export again"
            ) from None
        self.outputs = [o.name for o in self.session.get_outputs()]

    def run(self, tile: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        produced = self.session.run(None, {"image": tile})
        return produced[0], produced[1] if len(produced) > 1 else None


def create_backend(
    kind: str,
    model_path: Path,
    manifest: dict[str, Any],
    device: str,
    threads: int | None = None,
    folder: Path | None = None,
    log: Log | None = None,
) -> tuple[Backend, dict[str, Any]]:
    """A ready backend of a resolved `kind` ('torch' or 'onnx') and facts about it for the log."""
    if kind == "torch":
        return TorchBackend(model_path, device, threads), {"backend": "torch", "device": device}
    path, data, cached = ensure_onnx(model_path, manifest, folder, log)
    arena = use_arena(manifest)
    try:
        backend = OnnxBackend(path, device, threads, data, arena)
    except ModelFileError:
        # Verified bytes this onnxruntime cannot load (the key names its version, so rare): export again once.
        path.unlink(missing_ok=True)
        path, data, cached = ensure_onnx(model_path, manifest, folder, log)
        backend = OnnxBackend(path, device, threads, data, arena)
    return backend, {"backend": "onnx", "device": device, "onnx_cache": "warm" if cached else "cold",
                     "onnx_path": str(path), "onnx_memory_arena": arena}
