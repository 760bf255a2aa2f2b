"""The model registry: shipped and user folders, the default model, names, broken files."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from batseg.errors import ModelFileError
from batseg.model_file import read_manifest
from batseg import models
from inference_helpers import light_model


def _copy_with_name(folder: Path, file_name: str, name: str, default: bool = False) -> Path:
    """A copy of the test model whose manifest carries another name (weights unchanged)."""
    import json
    import zipfile

    folder.mkdir(parents=True, exist_ok=True)
    target = folder / file_name
    with zipfile.ZipFile(light_model()) as source, zipfile.ZipFile(target, "w") as archive:
        manifest = json.loads(source.read("manifest.json"))
        manifest["name"] = name
        if default:
            manifest["default"] = True
        archive.writestr("manifest.json", json.dumps(manifest))
        archive.writestr("weights.safetensors", source.read("weights.safetensors"))
    return target


def test_default_model_rules(tmp_path: Path) -> None:
    shipped = tmp_path / "shipped"
    with pytest.raises(ModelFileError, match="no shipped model"):
        models.default_model_path(shipped)
    only = _copy_with_name(shipped, "b-model.batseg", "b")
    assert models.default_model_path(shipped) == only
    _copy_with_name(shipped, "a-model.batseg", "a")
    assert models.default_model_path(shipped).name == "a-model.batseg"  # alphabetical without a mark
    marked = _copy_with_name(shipped, "c-model.batseg", "c", default=True)
    assert models.default_model_path(shipped) == marked


def test_listing_and_resolving_names(tmp_path: Path, monkeypatch) -> None:
    user = tmp_path / "user"
    monkeypatch.setenv(models.USER_DIR_ENV, str(user))
    assert models.user_models_dir() == user
    mine = _copy_with_name(user, "mine.batseg", "my-retrained-model")
    (user / "broken.batseg").write_bytes(b"not a zip")
    entries = models.list_models(tmp_path / "nothing-shipped")
    assert [e.source for e in entries] == ["user", "user"]
    broken = [e for e in entries if e.manifest is None]
    assert len(broken) == 1 and "not a BATseg model file" in broken[0].error
    assert models.resolve_model("my-retrained-model") == mine
    assert models.resolve_model(str(mine)) == mine
    with pytest.raises(ModelFileError, match="neither a file nor the name"):
        models.resolve_model("no-such-model")


def test_untrained_model_says_what_it_is(tmp_path: Path) -> None:
    manifest = read_manifest(light_model())
    assert manifest["architecture"]["topology"] == "light"
    assert "random weights" in manifest["disclaimer"] and "not for clinical use" in manifest["disclaimer"]
    copy = tmp_path / "copy.batseg"
    shutil.copy(light_model(), copy)
    assert read_manifest(copy)["weights_sha256"] == manifest["weights_sha256"]
