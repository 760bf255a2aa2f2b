"""Hostile inference conditions (issue 15, findings 2, 3, 9, 10, 14): a poisoned or stale ONNX
cache is never served, non-finite network outputs are refused, absurd voxel spacings and
process / container memory limits give one line instead of an allocation traceback, and
--threads is bounded.

Every refusal is checked through the CLI in a child process where the finding was a CLI one:
exit status 2, exactly one line on stderr, no traceback, no output written.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from batseg.errors import BATsegError, ModelFileError
from batseg.inference import backends
from batseg.inference.memory import (
    available_memory,
    cgroup_available_bytes,
    check_fits,
    estimate_peak_bytes,
    rlimit_available_bytes,
)
from batseg.inference.predictor import Predictor
from batseg.model_file import verify
from hostile_models import with_weights
from inference_helpers import cache_dir, light_model, make_image, predictor, run_cli, sagittal_image, work_dir


def _refused(result: subprocess.CompletedProcess, *words: str) -> str:
    """Assert a one-line refusal (exit 2, no traceback) naming `words`; the line."""
    text = result.stderr.strip()
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    assert len(text.splitlines()) == 1 and "Traceback" not in result.stderr + result.stdout, result.stderr
    for word in words:
        assert word in text, text
    return text


def _image_file(folder: Path, image: sitk.Image | None = None, name: str = "case.nii.gz") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    sitk.WriteImage(image if image is not None else sagittal_image((8, 40, 40), seed=4), str(path))
    return path


def _entry(folder: Path, model: Path | None = None) -> Path:
    """The cache path of a model's ONNX export in `folder` (exported there first if needed)."""
    model = model or light_model()
    path, _, _ = backends.ensure_onnx(model, verify(model), folder)
    return path


# ---------------------------------------------------------------------------------------------
# Finding 2: the ONNX cache
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def other_model() -> Path:
    """Another light model (other random weights): its export is what an attacker plants."""
    from batseg.models import write_untrained_model

    return write_untrained_model(work_dir() / "other-light.batseg", "light", seed=1)


@pytest.mark.parametrize("with_record", [False, True], ids=["bare-file", "with-its-own-record"])
def test_a_planted_onnx_of_another_model_is_not_served(tmp_path: Path, other_model: Path, with_record: bool) -> None:
    cache = tmp_path / "cache"
    planted = _entry(tmp_path / "attacker", other_model)
    target = backends.onnx_cache_path(verify(light_model()), cache)
    target.parent.mkdir(parents=True)
    shutil.copyfile(planted, target)
    if with_record:
        shutil.copyfile(backends.sidecar_path(planted), backends.sidecar_path(target))
    source = _image_file(tmp_path / "in")
    result = run_cli("predict", "-i", str(source), "-o", str(tmp_path / "out"), "--model", str(light_model()),
                     "--backend", "onnx", "--save-probabilities", "--progress", "json",
                     env_extra={"BATSEG_CACHE_DIR": str(cache)})
    assert result.returncode == 0, result.stderr
    events = [json.loads(line[len("BATSEG "):]) for line in result.stdout.splitlines() if line.startswith("BATSEG ")]
    assert [e for e in events if e.get("event") == "result"][0]["details"]["onnx_cache"] == "cold"
    assert any("is not used" in e.get("message", "") for e in events)
    # A vector image on disk: (z, y, x, class) as an array.
    served = sitk.GetArrayFromImage(sitk.ReadImage(str(tmp_path / "out" / "case.probabilities.nii.gz")))
    served = np.moveaxis(served, -1, 0)
    image = sitk.ReadImage(str(source))
    own = predictor("onnx").predict(image, probabilities=True).probabilities
    foreign = Predictor(other_model, device="cpu", backend="torch").predict(image, probabilities=True).probabilities
    assert np.abs(served - own).max() < 1e-4 and np.abs(served - foreign).max() > 1e-2
    assert target.read_bytes() != planted.read_bytes()  # rebuilt in place


def _drop_record(path: Path) -> None:
    backends.sidecar_path(path).unlink()


def _flip_bytes(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2: len(data) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:1000])


def _stale_version(path: Path) -> None:
    record = json.loads(backends.sidecar_path(path).read_text())
    record["made_from"]["onnxruntime"] = "0.0.1"
    backends.sidecar_path(path).write_text(json.dumps(record))


def _garbage_record(path: Path) -> None:
    backends.sidecar_path(path).write_text("{not json")


def _link_to_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "no-record": _drop_record,
    "flipped-bytes": _flip_bytes,
    "truncated": _truncate,
    "record-of-another-onnxruntime": _stale_version,
    "unreadable-record": _garbage_record,
    "link-to-dev-zero": _link_to_dev_zero,
}


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_a_stale_or_damaged_cache_entry_is_rebuilt(tmp_path: Path, damage: str) -> None:
    folder = tmp_path / "cache"
    path = _entry(folder)
    good = path.read_bytes()
    DAMAGE[damage](path)
    rebuilt = Predictor(light_model(), device="cpu", backend="onnx", cache_folder=folder)
    assert rebuilt.backend_info["onnx_cache"] == "cold"
    assert path.is_file() and not path.is_symlink() and len(path.read_bytes()) == len(good)
    assert backends.read_cached_onnx(path, backends.export_source(verify(light_model())))[0] == path.read_bytes()
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temporary file left
    image = sagittal_image((8, 40, 40), seed=5)
    np.testing.assert_allclose(
        rebuilt.predict(image, probabilities=True).probabilities,
        predictor("onnx").predict(image, probabilities=True).probabilities, atol=1e-5,
    )


def test_the_warm_cache_is_used_and_keyed_on_everything_it_depends_on(monkeypatch, tmp_path: Path) -> None:
    folder = tmp_path / "cache"
    _entry(folder)
    warm = Predictor(light_model(), device="cpu", backend="onnx", cache_folder=folder)
    assert warm.backend_info["onnx_cache"] == "warm"
    record = json.loads(backends.sidecar_path(Path(warm.backend_info["onnx_path"])).read_text())
    assert record["made_from"] == backends.export_source(warm.manifest)
    assert set(record["made_from"]) >= {"manifest_sha256", "weights_sha256", "exporter", "torch", "onnxruntime"}
    manifest = verify(light_model())
    key = backends.onnx_cache_path(manifest)
    assert backends.onnx_cache_path({**manifest, "name": "renamed"}) != key  # any manifest change
    assert backends.onnx_cache_path({**manifest, "weights_sha256": "0" * 64}) != key
    monkeypatch.setattr(backends, "EXPORT_TAG", "ts-opset17-v2")
    assert backends.onnx_cache_path(manifest) != key
    monkeypatch.undo()
    monkeypatch.setattr(backends, "_installed_version", lambda name: "99.0")
    assert backends.onnx_cache_path(manifest) != key  # another torch
    monkeypatch.undo()
    monkeypatch.setattr(backends, "_onnxruntime_version", lambda: "99.0")
    assert backends.onnx_cache_path(manifest) != key


# ---------------------------------------------------------------------------------------------
# Finding 3: non-finite outputs
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def nan_output_model() -> Path:
    """Finite weights (so the model file itself passes) whose activations overflow to inf, then NaN."""
    def huge(tensors: dict) -> dict:
        return {name: torch.full_like(t, 1e38) if t.ndim == 5 else t for name, t in tensors.items()}

    return with_weights(light_model(), work_dir() / "nan-outputs.batseg", huge)


@pytest.mark.parametrize("backend", ["auto", "torch", "onnx"])
def test_non_finite_network_outputs_are_refused(tmp_path: Path, nan_output_model: Path, backend: str) -> None:
    source = _image_file(tmp_path / "in")
    out = tmp_path / "out"
    # --no-cord-locator: the locator's own (good) export would be cached beside the refused one.
    result = run_cli("predict", "-i", str(source), "-o", str(out), "--model", str(nan_output_model),
                     "--backend", backend, "--progress", "quiet", "--no-cord-locator",
                     env_extra={"BATSEG_CACHE_DIR": str(tmp_path / "cache")})
    _refused(result, "not finite")
    assert not out.exists() or not any(out.iterdir())
    assert not list((tmp_path / "cache").rglob("*.onnx"))  # the failed export was not cached


class _NaNSession:
    """An ONNX Runtime session stand-in whose outputs are NaN."""

    def run(self, names, feeds):
        return [np.full((1, 5, *feeds["image"].shape[2:]), np.nan, dtype=np.float32)]


def test_the_export_check_fails_on_nan_where_pytorch_is_finite(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setattr(backends, "_session", lambda *args, **kwargs: _NaNSession())

    def wrapper(x: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.zeros((1, 5, *x.shape[2:])),)

    with pytest.raises(BATsegError, match="differs from PyTorch by nan"):
        backends._check_export(tmp_path / "x.onnx", wrapper, (1, 1, 8, 16, 16))

    def nan_wrapper(x: torch.Tensor) -> tuple[torch.Tensor]:
        return (torch.full((1, 5, *x.shape[2:]), float("nan")),)

    with pytest.raises(ModelFileError, match="not finite"):
        backends._check_export(tmp_path / "x.onnx", nan_wrapper, (1, 1, 8, 16, 16))


# ---------------------------------------------------------------------------------------------
# Findings 9 and 10: memory estimate and limits
# ---------------------------------------------------------------------------------------------


def test_the_estimate_is_exact_where_int64_wrapped() -> None:
    shape = (2_800_000, 128_000_000, 112_000_000)  # a 10 x 64 x 56 image with 1e6 mm voxels
    needed = estimate_peak_bytes(35_840, 4, shape, 2_000_000, True, 5, 5, 16, False)
    assert isinstance(needed, int) and needed > 2**63
    with pytest.raises(BATsegError) as raised:
        check_fits(needed, 8 * 1024**3, "case", (56, 64, 10), model_shape=shape)
    assert "spacing" in str(raised.value) and "\n" not in str(raised.value) and len(str(raised.value)) < 400


@pytest.mark.parametrize("spacing, suffix", [(1e6, ".nii.gz"), (1e30, ".nii.gz"), (1e300, ".mha"), (1e308, ".mha")])
def test_an_absurd_spacing_is_refused_in_one_line(tmp_path: Path, spacing: float, suffix: str) -> None:
    image = sagittal_image((8, 40, 40), seed=6)
    image.SetSpacing((spacing,) * 3)
    source = _image_file(tmp_path / "in", image, f"case{suffix}")
    out = tmp_path / "out"
    result = run_cli("predict", "-i", str(source), "-o", str(out), "--model", str(light_model()), timeout=60)
    _refused(result, "spacing")
    assert not out.exists() or not any(out.iterdir())


def test_an_absurd_spacing_is_refused_by_the_predictor_itself() -> None:
    """Callers that skip the header check (tune-postprocess) get the same refusal, not an allocation."""
    image = sagittal_image((8, 40, 40), seed=6)
    image.SetSpacing((1e6, 1e6, 1e6))
    with pytest.raises(BATsegError, match="spacing"):
        predictor("onnx").predict(image)


def _cgroup(root: Path, relative: str, files: dict[str, str]) -> None:
    folder = root / relative
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / name).write_text(text)


def test_cgroup_v2_and_v1_limits_are_read(tmp_path: Path) -> None:
    gib = 1024**3
    proc = tmp_path / "cgroup"
    proc.write_text("0::/job/step\n")
    _cgroup(tmp_path, "", {"memory.max": "max\n", "memory.current": str(50 * gib)})
    _cgroup(tmp_path, "job", {"memory.max": str(4 * gib), "memory.current": str(3 * gib),
                              "memory.stat": f"anon 1\ninactive_file {gib}\n"})
    _cgroup(tmp_path, "job/step", {"memory.max": "max", "memory.current": str(gib)})
    # The parent's limit applies to its children; its reclaimable page cache counts as free.
    assert cgroup_available_bytes(tmp_path, proc) == 2 * gib
    v1 = tmp_path / "v1"
    proc.write_text("12:cpu,cpuacct:/x\n4:memory:/docker/abc\n0::/\n")
    _cgroup(v1, "memory", {"memory.limit_in_bytes": "9223372036854771712", "memory.usage_in_bytes": str(gib)})
    _cgroup(v1, "memory/docker/abc", {"memory.limit_in_bytes": str(3 * gib), "memory.usage_in_bytes": str(2 * gib),
                                      "memory.stat": f"inactive_file 5\ntotal_inactive_file {gib // 2}\n"})
    assert cgroup_available_bytes(v1, proc) == 3 * gib - (2 * gib - gib // 2)
    # Inside a container the process's own group is the mount root (no /docker/abc below it).
    shutil.rmtree(v1 / "memory" / "docker")
    (v1 / "memory" / "memory.limit_in_bytes").write_text(str(2 * gib))
    assert cgroup_available_bytes(v1, proc) == gib
    proc.write_text("0::/\n")
    assert cgroup_available_bytes(tmp_path / "missing", proc) is None
    assert cgroup_available_bytes(tmp_path, tmp_path / "no-proc-file") is None


def _limit_address_space(limit: int) -> Callable[[], None]:
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    return apply


def test_the_address_space_limit_bounds_the_available_memory() -> None:
    code = (
        "import json, psutil, resource\n"
        "from batseg.inference.memory import available_memory, rlimit_available_bytes\n"
        "vms = psutil.Process().memory_info().vms\n"
        "resource.setrlimit(resource.RLIMIT_AS, (vms + 300 * 2**20, resource.RLIM_INFINITY))\n"
        "print(json.dumps([rlimit_available_bytes(), *available_memory()]))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    process, available, where = json.loads(result.stdout)
    assert 200 * 2**20 < process <= 300 * 2**20 and available == process and "ulimit" in where
    if resource.getrlimit(resource.RLIMIT_AS)[0] == resource.RLIM_INFINITY:
        assert rlimit_available_bytes() is None or rlimit_available_bytes() > 2**40  # RLIMIT_DATA may be set
    assert available_memory()[0] > 0


def test_predict_under_ulimit_v_is_refused_in_one_line(tmp_path: Path) -> None:
    """prlimit --as: the image fits the machine's free memory but not the process's address space."""
    volume = np.zeros((48, 640, 640), np.uint8)
    volume[20:28, 300:340, 300:340] = 100
    source = _image_file(tmp_path / "in", make_image(volume))
    limit = 2 * 1024**3
    if available_memory()[0] < 4 * 1024**3:
        pytest.skip("needs 4 GB of free memory to show that the process limit, not the machine, refuses")
    env = {**os.environ, "BATSEG_CACHE_DIR": str(cache_dir())}
    predictor("onnx")  # a warm cache: the child only loads the export
    result = subprocess.run(
        [sys.executable, "-m", "batseg", "predict", "-i", str(source), "-o", str(tmp_path / "out"),
         "--model", str(light_model()), "--progress", "quiet"],
        capture_output=True, text=True, env=env, timeout=120, preexec_fn=_limit_address_space(limit),
    )
    _refused(result, "ulimit -v")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


# ---------------------------------------------------------------------------------------------
# Finding 14: --threads
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threads", ["0", "-3", "100000"])
def test_threads_out_of_range_are_refused_by_every_command(tmp_path: Path, threads: str) -> None:
    source = _image_file(tmp_path / "in")
    data = tmp_path / "data"
    _image_file(data / "imagesTr", name="c_0000.nii.gz")
    _image_file(data / "labelsTr", name="c.nii.gz")
    commands = {
        "predict": ["predict", "-i", str(source), "-o", str(tmp_path / "out"), "--model", str(light_model())],
        "tune-postprocess": ["tune-postprocess", "--model", str(light_model()), "--data", str(data)],
        "benchmark": ["benchmark", "--model", str(light_model()), "--repeats", "1", "--skip-nnunet"],
    }
    for name, args in commands.items():
        _refused(run_cli(*args, "--threads", threads, timeout=60), "--threads", threads)
    assert not (tmp_path / "out").exists()


def test_thread_bounds() -> None:
    assert backends.check_threads(None) is None and backends.check_threads(1) == 1
    assert backends.check_threads(backends.max_threads()) == backends.max_threads()
    assert 4 <= backends.max_threads() <= backends.MAX_THREADS
    for bad in (0, backends.max_threads() + 1, 100_000, True, 2.0):
        with pytest.raises(BATsegError, match="out of range"):
            backends.check_threads(bad)  # type: ignore[arg-type]
    with pytest.raises(BATsegError, match="out of range"):
        Predictor(light_model(), device="cpu", threads=100_000)
