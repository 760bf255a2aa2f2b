"""Model files: round trip, and every kind of broken file gives a one-line ModelFileError."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest
import torch

from batseg.errors import ModelFileError
from batseg.labels import TUMOUR_CLASSES
from batseg.model_file import (
    MANIFEST_MEMBER,
    WEIGHTS_MEMBER,
    load_model,
    read_manifest,
    verify,
    write_model_file,
)
from batseg.network import build_network, topology_kwargs


def manifest(field_channels: int = 4) -> dict:
    return {
        "name": "test-model",
        "version": "1.0.0",
        "architecture": {
            "topology": "light",
            "arch_kwargs": topology_kwargs("light"),
            "num_classes": 5,
            "input_channels": 1,
            "field_head": {"channels": field_channels, "activation": "sigmoid", "variant": "classwise",
                           "truncation": 1.0, "loss": "cubic"} if field_channels else None,
        },
        "input": {"contrast": "T1Gd", "target_spacing": [3.3, 0.94, 0.94], "normalization": "zscore",
                  "patch_size": [16, 160, 160], "orientation": "PIR"},
        "classes": [{"value": c.value, "key": c.key, "name": c.name, "color": list(c.color)} for c in TUMOUR_CLASSES],
        "training": {"epochs": 0},
        "metrics": {},
    }


@pytest.fixture()
def model_path(tmp_path: Path) -> tuple[Path, torch.nn.Module]:
    torch.manual_seed(1)
    net = build_network(topology_kwargs("light"), field_channels=4).eval()
    return write_model_file(tmp_path / "m.batseg", net.state_dict(), manifest()), net


def one_line_error(path: Path, **kwargs) -> str:
    with pytest.raises(ModelFileError) as info:
        load_model(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message
    return message


def rewrite(source: Path, target: Path, manifest_edit=None, weights_edit=None) -> Path:
    """Copy a model file, changing its manifest and/or weights bytes (keeping the recorded sha)."""
    with zipfile.ZipFile(source) as archive:
        data = json.loads(archive.read(MANIFEST_MEMBER))
        weights = archive.read(WEIGHTS_MEMBER)
    if manifest_edit:
        manifest_edit(data)
    if weights_edit:
        weights = weights_edit(weights)
    with zipfile.ZipFile(target, "w") as archive:
        archive.writestr(MANIFEST_MEMBER, json.dumps(data))
        archive.writestr(WEIGHTS_MEMBER, weights)
    return target


def test_round_trip_gives_identical_outputs(model_path) -> None:
    path, net = model_path
    loaded = load_model(path)
    x = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        seg_a, field_a = net(x)
        seg_b, field_b = loaded.network(x)
    assert torch.equal(seg_a, seg_b) and torch.equal(field_a, field_b)
    assert loaded.manifest["name"] == "test-model"
    assert verify(path)["weights_sha256"] == read_manifest(path)["weights_sha256"]


def test_baseline_round_trip(tmp_path: Path) -> None:
    net = build_network(topology_kwargs("light"), field_channels=0).eval()
    path = write_model_file(tmp_path / "b.batseg", net.state_dict(), manifest(field_channels=0))
    x = torch.randn(1, 1, 8, 32, 32)
    with torch.no_grad():
        assert torch.equal(net(x), load_model(path).network(x))


def test_missing_and_not_a_zip(tmp_path: Path) -> None:
    assert "does not exist" in one_line_error(tmp_path / "absent.batseg")
    junk = tmp_path / "junk.batseg"
    junk.write_bytes(b"\x00garbage" * 100)
    assert "not a BATseg model file" in one_line_error(junk)


def test_truncated_file(model_path, tmp_path: Path) -> None:
    path, _ = model_path
    cut = tmp_path / "cut.batseg"
    data = path.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    one_line_error(cut)


def test_tampered_weights(model_path, tmp_path: Path) -> None:
    path, _ = model_path

    def flip(weights: bytes) -> bytes:
        middle = len(weights) // 2
        return weights[:middle] + bytes([weights[middle] ^ 0xFF]) + weights[middle + 1:]

    tampered = rewrite(path, tmp_path / "t.batseg", weights_edit=flip)
    assert "checksum" in one_line_error(tampered)
    with pytest.raises(ModelFileError):
        verify(tampered)


def test_incompatible_classes(model_path, tmp_path: Path) -> None:
    path, _ = model_path

    def other_classes(data: dict) -> None:
        data["classes"] = [{"value": 1, "key": "liver", "name": "Liver", "color": [1, 0, 0]}]

    other = rewrite(path, tmp_path / "o.batseg", manifest_edit=other_classes)
    assert "liver" in one_line_error(other)


def test_weights_not_fitting_the_manifest(model_path, tmp_path: Path) -> None:
    path, _ = model_path

    def more_channels(data: dict) -> None:
        data["architecture"]["field_head"]["channels"] = 5

    wrong = rewrite(path, tmp_path / "w.batseg", manifest_edit=more_channels)
    assert "do not fit" in one_line_error(wrong)


def test_newer_format_and_incomplete_manifest(model_path, tmp_path: Path) -> None:
    path, _ = model_path
    newer = rewrite(path, tmp_path / "n.batseg", manifest_edit=lambda d: d.update(format_version=99))
    assert "newer" in one_line_error(newer)
    incomplete = rewrite(path, tmp_path / "i.batseg", manifest_edit=lambda d: d.pop("input"))
    assert "lacks" in one_line_error(incomplete)


def test_existing_output_is_not_overwritten(model_path) -> None:
    path, net = model_path
    before = path.read_bytes()
    with pytest.raises(ModelFileError):
        write_model_file(path, net.state_dict(), manifest())
    assert path.read_bytes() == before
