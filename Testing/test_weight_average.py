"""`batseg average`: the weight average of sibling models (model soup), and every refusal in one line."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
from hostile_models import with_edit  # noqa: E402

from batseg.errors import ModelFileError  # noqa: E402
from batseg.model_file import load_model, read_manifest, unique_tensors, write_model_file  # noqa: E402
from batseg.models import write_untrained_model  # noqa: E402
from batseg.training.weight_average import average_model_files  # noqa: E402


def _child(parent: Path, path: Path, seed: int, round_folder: str, parent_sha: str | None = None) -> Path:
    """A 'fine-tuning' of `parent`: its weights plus seeded noise, with the lineage a fine-tuning records."""
    loaded = load_model(parent)
    manifest = {k: v for k, v in loaded.manifest.items() if k not in ("format", "format_version", "weights_sha256")}
    generator = torch.Generator().manual_seed(seed)
    state = {k: v + 0.01 * torch.randn(v.shape, generator=generator) if v.is_floating_point() else v
             for k, v in unique_tensors(loaded.network.state_dict()).items()}
    manifest["parent"] = {"name": manifest["name"], "version": manifest["version"],
                          "weights_sha256": parent_sha or loaded.manifest["weights_sha256"]}
    manifest["postprocessing"] = {"fill_holes": True, "min_volume_mm3": 100.0 * seed}
    manifest["training"] = {"command": ["batseg", "train", "--seed", str(seed)],
                            "data": {"rounds": [{"model": "m 0.1", "sources": ["WORK_DIR/a"], "num_cases": 1},
                                                {"model": f"child {seed}", "sources": [round_folder], "num_cases": 2}]}}
    manifest["version"] = f"0.2.{seed}"
    return write_model_file(path, state, manifest)


@pytest.fixture()
def family(tmp_path: Path) -> tuple[Path, Path, Path]:
    parent = write_untrained_model(tmp_path / "parent.batseg", "light", seed=0)
    return parent, _child(parent, tmp_path / "a.batseg", 1, "WORK_DIR/r1"), _child(parent, tmp_path / "b.batseg", 2, "WORK_DIR/r2")


def _tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_model(path).network.state_dict()


def test_average_is_the_mean_of_the_members(family, tmp_path: Path) -> None:
    _, a, b = family
    out = average_model_files([a, b], tmp_path / "soup.batseg", version="0.3.0")
    soup, first, second = _tensors(out), _tensors(a), _tensors(b)
    for key, tensor in soup.items():
        assert torch.allclose(tensor, (first[key] + second[key]) / 2, atol=1e-6), key
    assert not torch.equal(soup["unet.decoder.seg_layers.3.weight"], first["unet.decoder.seg_layers.3.weight"])
    manifest = read_manifest(out)
    assert manifest["version"] == "0.3.0"
    assert "postprocessing" not in manifest  # a member's setting does not suit the average
    assert [m["file"] for m in manifest["averaged_from"]] == ["a.batseg", "b.batseg"]
    assert manifest["averaged_from"][1]["command"] == ["batseg", "train", "--seed", "2"]
    assert manifest["parent"] == read_manifest(a)["parent"]
    rounds = [r["sources"] for r in manifest["training"]["data"]["rounds"]]
    assert rounds == [["WORK_DIR/a"], ["WORK_DIR/r1"], ["WORK_DIR/r2"]]  # the shared round once


def test_cli_writes_the_average_and_says_to_tune(family, tmp_path: Path, capsys) -> None:
    from batseg.cli import main

    _, a, b = family
    out = tmp_path / "soup.batseg"
    assert main(["average", str(a), str(b), "-o", str(out)]) == 0
    assert "tune-postprocess" in capsys.readouterr().out
    assert read_manifest(out)["version"] == read_manifest(a)["version"]


def _refusal(paths: list[Path], out: Path, overwrite: bool = False) -> str:
    with pytest.raises(ModelFileError) as info:
        average_model_files(paths, out, overwrite=overwrite)
    message = str(info.value)
    assert "\n" not in message
    if not overwrite:
        assert not out.exists() or out.read_bytes() == b"user's file"
    return message


def test_refuses_what_cannot_be_averaged(family, tmp_path: Path) -> None:
    parent, a, b = family
    out = tmp_path / "soup.batseg"
    assert "at least two" in _refusal([a], out)
    assert "records no parent" in _refusal([parent, a], out)
    stranger = _child(parent, tmp_path / "c.batseg", 3, "WORK_DIR/r3", parent_sha="0" * 64)
    assert "different parents" in _refusal([a, stranger], out)
    copy = tmp_path / "a-copy.batseg"
    copy.write_bytes(a.read_bytes())
    assert "same weights" in _refusal([a, copy], out)
    other_input = with_edit(b, tmp_path / "d.batseg", lambda m: m["input"].update(target_spacing=[3.0, 0.5, 0.5]))
    assert "differ in their input" in _refusal([a, other_input], out)
    assert "one of the models" in _refusal([a, b], a, overwrite=True)
    soup = average_model_files([a, b], tmp_path / "ab.batseg")
    assert "already averaged into ab.batseg" in _refusal([a, soup], out)
    out.write_bytes(b"user's file")
    assert "already exists" in _refusal([a, b], out)
    assert out.read_bytes() == b"user's file"


def test_a_hostile_member_is_refused_before_anything_is_written(family, tmp_path: Path) -> None:
    _, a, b = family
    hostile = with_edit(b, tmp_path / "h.batseg", lambda m: m["architecture"]["arch_kwargs"].update(nonlin="os.system"))
    out = tmp_path / "soup.batseg"
    with pytest.raises(ModelFileError):
        average_model_files([a, hostile], out)
    assert not out.exists()


def test_cli_error_is_one_line(family, tmp_path: Path, capsys) -> None:
    from batseg.cli import main

    _, a, _ = family
    assert main(["average", str(a), str(a), "-o", str(tmp_path / "soup.batseg")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("batseg: error: ") and "same weights" in err[0]
    assert main(["average", str(a), str(a), "-o", str(tmp_path / "soup.nii.gz")]) == 2
    assert "must end in .batseg" in capsys.readouterr().err
