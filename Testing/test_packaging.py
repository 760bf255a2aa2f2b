"""The engine as a wheel: `pip install .` (not only an editable install) gives a `batseg` that finds
the shipped model and the sample cases without the source tree, and pyproject.toml lists every
package of the engine."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from setuptools import find_packages

REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "BATsegSlicer"


def test_pyproject_lists_every_engine_package() -> None:
    listed = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]["packages"]
    on_disk = find_packages(str(MODULE), include=["batseg", "batseg.*"])
    assert sorted(listed) == sorted(on_disk + ["batseg._shipped"])


def _build_wheel(tmp_path: Path) -> Path:
    """A wheel built from a copy of the files a build reads (the repo itself stays untouched)."""
    source = tmp_path / "src"
    (source / "BATsegSlicer" / "Resources").mkdir(parents=True)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(MODULE / "batseg", source / "BATsegSlicer" / "batseg", ignore=shutil.ignore_patterns("__pycache__"))
    for folder in ("Models", "SampleData", "Icons", "UI"):
        shutil.copytree(MODULE / "Resources" / folder, source / "BATsegSlicer" / "Resources" / folder)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(tmp_path / "dist")],
        check=True, capture_output=True, text=True,
    )
    return next((tmp_path / "dist").glob("batseg-*.whl"))


@pytest.mark.slow
def test_installed_wheel_finds_the_shipped_model_and_samples(tmp_path: Path) -> None:
    wheel = _build_wheel(tmp_path)
    names = zipfile.ZipFile(wheel).namelist()
    shipped = sorted(n for n in names if n.startswith("batseg/_shipped/"))
    assert any(n.endswith(".batseg") for n in shipped) and "batseg/_shipped/SampleData/sample_data.json" in shipped
    assert not any("/Icons/" in n or "/UI/" in n for n in names)  # the Slicer panel's files stay out
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, text=True)
    check = (
        "import batseg, sys\n"
        "from batseg.models import default_model_path\n"
        "from batseg.model_file import read_manifest\n"
        "from batseg.phantoms.samples import sample_cases, sample_path\n"
        "print(batseg.__file__)\n"
        "print(read_manifest(default_model_path())['name'])\n"
        "cases = sample_cases()\n"
        "assert all(sample_path(c['name'], kind).is_file() for c in cases for kind in ('image', 'label'))\n"
        "print(len(cases))\n"
    )
    # The wheel's copy comes first on the path; the other dependencies still come from this environment.
    env = {**os.environ, "PYTHONPATH": str(target)}
    done = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    location, model_name, samples = done.stdout.split()
    assert Path(location).is_relative_to(target)
    assert model_name == "batseg-light-synthetic" and int(samples) == 4


def test_the_demo_installs_the_runtime_only_and_the_tests_add_their_tools() -> None:
    """Issue 17, item 7: the test tools (slicer-core with VTK) stay out of the demo's environment."""
    scripts = REPO / "scripts"
    setup = (scripts / "setup.sh").read_text(encoding="utf-8")
    assert "requirements-test.txt" in setup and '"${1:-}" = "--with-tests"' in setup
    assert "bash scripts/setup.sh --with-tests" in (scripts / "test.sh").read_text(encoding="utf-8")
    demo = (scripts / "demo.sh").read_text(encoding="utf-8")
    assert "bash scripts/setup.sh" in demo and "--with-tests" not in demo
    runtime = (REPO / "requirements.txt").read_text(encoding="utf-8")
    assert "slicer" not in runtime.lower() and "pytest" not in runtime.lower()
