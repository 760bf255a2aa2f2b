"""The paper's Table 5 ablations (issue 16, item 6): the field without truncation and without
normalisation. Targets against hand-derived values, the switches of `batseg train`, the linear
head, the manifest (valid variants round-trip, hostile values refused), fine-tuning's
inheritance, inference with an unbounded field, and a tiny `batseg train` per Table 5 row."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from hostile_models import read_source, write_raw  # noqa: E402
from training_data import make_dataset  # noqa: E402

from batseg.cli import build_parser, main  # noqa: E402
from batseg.commands.train import options_from_args  # noqa: E402
from batseg.errors import BATsegError, ModelFileError  # noqa: E402
from batseg.manifest_schema import validate_manifest  # noqa: E402
from batseg.model_file import load_model, network_from_manifest, read_manifest, write_model_file  # noqa: E402
from batseg.network import build_network, topology_kwargs  # noqa: E402
from batseg.progress import parse_event  # noqa: E402
from batseg.targets import patch_diagonal, surface_distance_field  # noqa: E402
from batseg.training.field_transform import BoundaryTargetTransform, split_target  # noqa: E402
from batseg.training.options import TrainingOptions  # noqa: E402
from batseg.training.package import field_head  # noqa: E402

# Table 5's field rows: (truncation, normalised). The paper's own setting last.
ROWS = {"no_truncation_no_normalisation": (None, False), "truncation_no_normalisation": (1.0, False),
        "paper": (1.0, True)}
LINE = (3.3, 0.5, 0.5)  # z, y, x in mm; the tiny volume below varies along x only


def line_label(length: int = 12) -> np.ndarray:
    """A (1, 1, length) patch with class 1 at x = 3, 4, 5."""
    label = np.zeros((1, 1, length), np.uint8)
    label[0, 0, 3:6] = 1
    return label


# ------------------------------------------------------------------------------ targets


def test_line_fields_equal_hand_derived_values() -> None:
    # Along x at 0.5 mm: inside depths 0.5, 1.0, 0.5 (D = 1.0 mm); outside -0.5 mm per voxel away.
    signed = np.array([-1.5, -1.0, -0.5, 0.5, 1.0, 0.5, -0.5, -1.0, -1.5, -2.0, -2.5, -3.0])
    fields = {
        (1.0, True): [0, 0, 0.25, 0.75, 1.0, 0.75, 0.25, 0, 0, 0, 0, 0],  # the paper: |d| <= D kept, then Eq. 2
        (2.0, True): [0.125, 0.25, 0.375, 0.75, 1.0, 0.75, 0.375, 0.25, 0.125, 0, 0, 0],
        (1.0, False): [0, -1.0, -0.5, 0.5, 1.0, 0.5, -0.5, -1.0, 0, 0, 0, 0],  # Eq. 1 alone; |d| = D kept
        (2.0, False): [-1.5, -1.0, -0.5, 0.5, 1.0, 0.5, -0.5, -1.0, -1.5, -2.0, 0, 0],
        (None, False): signed,
    }
    for (truncation, normalise), expected in fields.items():
        field = surface_distance_field(line_label(), LINE, truncation=truncation, normalise=normalise)
        np.testing.assert_allclose(field[0, 0, 0], expected, rtol=0, atol=1e-6, err_msg=f"{truncation}, {normalise}")


def test_absent_and_filling_classes_without_a_surface() -> None:
    diagonal = math.sqrt(3.3**2 + 0.5**2 + (12 * 0.5) ** 2)
    assert patch_diagonal((1, 1, 12), LINE) == pytest.approx(diagonal)
    truncated = surface_distance_field(line_label(), LINE, truncation=1.0, normalise=False)
    untruncated = surface_distance_field(line_label(), LINE, truncation=None, normalise=False)
    assert np.all(truncated[1:] == 0)  # classes 2-4 absent: truncated everywhere, as when normalised
    np.testing.assert_allclose(untruncated[1:], -diagonal, rtol=1e-6)  # farther than the patch can show
    full = np.full((1, 1, 12), 2, np.uint8)
    for truncation in (1.0, None):
        field = surface_distance_field(full, LINE, truncation=truncation, normalise=False)
        np.testing.assert_allclose(field[1], diagonal, rtol=1e-6)  # deeper than the patch can show
    assert np.all(surface_distance_field(full, LINE)[1] == 1.0)  # the normalised field's counterpart


def test_unnormalised_distances_are_millimetres_with_the_spacing() -> None:
    label = np.zeros((3, 3, 3), np.uint8)
    label[1, 1, 1] = 3  # one voxel; spacing 3 x 1 x 2 mm: its depth is the 1 mm step along y
    spacing = (3.0, 1.0, 2.0)
    untruncated = surface_distance_field(label, spacing, truncation=None, normalise=False)[2]
    assert untruncated[1, 1, 1] == pytest.approx(1.0)
    assert untruncated[0, 0, 0] == pytest.approx(-math.sqrt(9 + 1 + 4))
    assert untruncated[1, 1, 0] == pytest.approx(-2.0)
    truncated = surface_distance_field(label, spacing, truncation=1.0, normalise=False)[2]
    kept = np.argwhere(truncated < 0)
    assert sorted(map(tuple, kept)) == [(1, 0, 1), (1, 2, 1)]  # only the y neighbours are within D = 1 mm
    assert np.all(truncated[truncated < 0] == -1.0)


@pytest.mark.parametrize("truncation, normalise, says", [
    (None, True, "cannot be normalised"), (float("nan"), False, "positive number"), (-1.0, False, "positive number"),
    (0.0, True, "positive number"), (float("inf"), True, "positive number"), ("1", True, "positive number"),
    (True, True, "positive number"), (1.0, "no", "true or false"),
])
def test_bad_field_settings_give_one_line_errors(truncation, normalise, says: str) -> None:
    with pytest.raises(BATsegError, match=says) as info:
        surface_distance_field(line_label(), LINE, truncation=truncation, normalise=normalise)
    assert "\n" not in str(info.value)


def test_transform_packs_the_ablation_fields() -> None:
    label = torch.from_numpy(line_label().astype(np.int16))[None]
    for truncation, normalise in ROWS.values():
        transform = BoundaryTargetTransform(LINE, truncation=truncation, normalise=normalise)
        _, field = split_target(transform(segmentation=label.clone())["segmentation"][None])
        expected = surface_distance_field(line_label(), LINE, truncation=truncation, normalise=normalise)
        np.testing.assert_array_equal(field[0].numpy(), expected)


# ------------------------------------------------------------------------ switches and head


def parse(*flags: str) -> TrainingOptions:
    return options_from_args(build_parser().parse_args(["train", "--data", "d", "--output", "m.batseg", *flags]))


def test_train_switches_give_each_table_5_row() -> None:
    row1 = parse("--truncation", "none", "--no-field-normalisation")
    assert (row1.truncation, row1.field_normalisation) == (None, False)
    assert row1.run_tag == "cubic-classwise-tnone-unnormalised"
    row2 = parse("--no-field-normalisation")
    assert (row2.truncation, row2.field_normalisation, row2.run_tag) == (1.0, False, "cubic-classwise-t1-unnormalised")
    paper = parse()
    assert (paper.truncation, paper.field_normalisation, paper.run_tag) == (1.0, True, "cubic-classwise-t1")
    assert parse("--truncation", "NONE", "--no-field-normalisation").truncation is None
    assert parse("--truncation", "2", "--field-normalisation").truncation == 2.0
    assert TrainingOptions.from_dict(json.loads(json.dumps(row1.to_dict()))) == row1  # through the plans JSON


@pytest.mark.parametrize("flags, says", [
    (["--truncation", "none"], "cannot be normalised"),
    (["--truncation", "-1"], "positive number"),
    (["--truncation", "nan", "--no-field-normalisation"], "positive number"),
    (["--loss", "bce", "--no-field-normalisation"], "bce needs a target in"),
    (["--loss", "focal_l1", "--truncation", "none", "--no-field-normalisation"], "SiNGR's own target"),
])
def test_impossible_switches_are_refused_in_one_line(tmp_path: Path, capsys, flags: list[str], says: str) -> None:
    code = main(["train", "--data", str(tmp_path), "--output", str(tmp_path / "m.batseg"), "--progress", "quiet", *flags])
    err = capsys.readouterr().err
    assert code == 2 and says in err and len(err.strip().splitlines()) == 1, err


def test_a_bad_truncation_word_is_an_argument_error(capsys) -> None:
    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["train", "--data", "d", "--output", "m", "--truncation", "infinite-ish"])
    assert info.value.code == 2 and "positive number or 'none'" in capsys.readouterr().err


@pytest.mark.parametrize("row", sorted(ROWS))
def test_head_fits_the_target_range_and_one_step_trains(tmp_path: Path, monkeypatch, row: str) -> None:
    from batseg.training.standalone import standalone_trainer

    monkeypatch.setenv("nnUNet_compile", "false")
    truncation, normalise = ROWS[row]
    options = TrainingOptions(truncation=truncation, field_normalisation=normalise, progress="quiet")
    torch.manual_seed(0)
    trainer = standalone_trainer(options, (8, 32, 32), batch_size=2, folder=tmp_path)
    assert trainer.network.field_activation == ("sigmoid" if normalise else "linear")
    assert trainer._boundary_transform().normalise is normalise and trainer._boundary_transform().truncation == truncation
    with torch.no_grad():
        trainer.network.field_head.weight.zero_()
        trainer.network.field_head.bias.fill_(-7.5)  # a field value a sigmoid cannot give
    with torch.no_grad():
        _, field = trainer.network(torch.zeros(1, 1, 8, 32, 32))
    assert float(field.min()) == (pytest.approx(-7.5) if not normalise else pytest.approx(1 / (1 + math.exp(7.5))))
    batch = augmented_batch(trainer)
    field_target = split_target(batch["target"])[1]
    if not normalise:
        assert float(field_target.min()) < 0 and float(field_target.max()) > 1  # signed mm, outside [0, 1]
    result = trainer.train_step(batch)
    assert math.isfinite(float(result["loss"])) and float(result["boundary_loss"]) > 0


def augmented_batch(trainer) -> dict:
    """Two samples through the trainer's real training pipeline (field transform included), collated
    like nnU-Net's loader."""
    from batseg.training.standalone import pipelines

    train, _, initial = pipelines(trainer)
    torch.manual_seed(0)
    samples = []
    for _ in range(2):
        label = torch.zeros((1, *initial), dtype=torch.int16)
        label[:, 2:-2, 10:-10, 12:-12] = 2
        samples.append(train(image=torch.randn(1, *initial) + label.float(), segmentation=label))
    target = [torch.stack([s["segmentation"][i] for s in samples]) for i in range(len(samples[0]["segmentation"]))]
    return {"data": torch.stack([s["image"] for s in samples]), "target": target}


# ------------------------------------------------------------------------------ manifest


def manifest_for(options: TrainingOptions) -> dict:
    return {
        "name": "ablation", "version": "0.1.0",
        "architecture": {"topology": "light", "arch_kwargs": topology_kwargs("light"), "num_classes": 5,
                         "input_channels": 1, "field_head": field_head(options)},
        "input": {"contrast": "T1Gd", "target_spacing": [3.3, 0.94, 0.94], "normalization": "zscore",
                  "patch_size": [16, 64, 64], "orientation": "PIR"},
        "classes": [{"value": v, "key": k} for v, k in enumerate(("meningioma", "ependymoma", "astrocytoma",
                                                                     "hemangioblastoma"), start=1)],
    }


@pytest.mark.parametrize("row", sorted(ROWS))
def test_each_variant_validates_and_round_trips(tmp_path: Path, row: str) -> None:
    truncation, normalise = ROWS[row]
    manifest = manifest_for(TrainingOptions(truncation=truncation, field_normalisation=normalise, progress="quiet"))
    head = manifest["architecture"]["field_head"]
    assert (head["truncation"], head["normalised"]) == (truncation, normalise)
    assert head["activation"] == ("sigmoid" if normalise else "linear")
    torch.manual_seed(0)
    path = write_model_file(tmp_path / f"{row}.batseg", network_from_manifest(manifest).state_dict(), manifest)
    assert read_manifest(path)["architecture"]["field_head"] == head  # null stays null through the JSON
    loaded = load_model(path)
    assert loaded.field_head == head and loaded.network.field_activation == head["activation"]


def test_a_manifest_from_before_the_switches_reads_as_the_paper() -> None:
    manifest = manifest_for(TrainingOptions(progress="quiet"))
    head = manifest["architecture"]["field_head"]
    del head["normalised"], head["truncation"]
    validate_manifest({**manifest, "weights_sha256": "0" * 64}, "old.batseg")


@pytest.fixture(scope="module")
def paper_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid model file of the paper's field, the source of the hostile copies."""
    network = build_network(topology_kwargs("light"), field_channels=4)
    folder = tmp_path_factory.mktemp("paper-model")
    return write_model_file(folder / "paper.batseg", network.state_dict(), manifest_for(TrainingOptions(progress="quiet")))


@pytest.mark.parametrize("edit, says", [
    ({"truncation": float("nan")}, "truncation must be a finite number"),
    ({"truncation": -1.0}, "truncation must be a finite number"),
    ({"truncation": 0}, "truncation must be a finite number"),
    ({"truncation": float("inf")}, "truncation must be a finite number"),
    ({"truncation": 1e9}, "truncation must be a finite number"),
    ({"truncation": "none"}, "truncation must be a finite number"),
    ({"truncation": True}, "truncation must be a finite number"),
    ({"truncation": [1]}, "truncation must be a finite number"),
    ({"normalised": "false"}, "normalised must be true or false"),
    ({"normalised": 0}, "normalised must be true or false"),
    ({"normalised": False}, "activation must be linear"),  # a sigmoid head cannot give signed mm
    ({"truncation": None}, "needs normalised false"),
    ({"activation": "relu", "normalised": False}, "not allowed"),
])
def test_hostile_field_settings_are_refused(tmp_path: Path, paper_model: Path, edit: dict, says: str) -> None:
    manifest = manifest_for(TrainingOptions(progress="quiet"))
    manifest["architecture"]["field_head"].update(edit)
    with pytest.raises(ModelFileError, match=says) as info:
        validate_manifest({**manifest, "weights_sha256": "0" * 64}, "hostile.batseg")
    assert "\n" not in str(info.value)
    # Also as a file on disk, written past the engine's writer (which validates first).
    stored, weights = read_source(paper_model)
    stored["architecture"]["field_head"].update(edit)
    hostile = write_raw(tmp_path / "hostile.batseg", json.dumps(stored), weights)
    with pytest.raises(ModelFileError, match=says):
        load_model(hostile)


# --------------------------------------------------------------------------- fine-tuning


def test_finetuning_keeps_the_parents_field_settings() -> None:
    from batseg.training.finetune import _options_from_parent

    parent = manifest_for(TrainingOptions(truncation=None, field_normalisation=False, progress="quiet"))
    options = _options_from_parent(parent, TrainingOptions(progress="quiet"), explicit=set())
    assert (options.truncation, options.field_normalisation) == (None, False)
    given = TrainingOptions(progress="quiet")
    with pytest.raises(BATsegError, match="--field-normalisation True differs from the model's"):
        _options_from_parent(parent, given, explicit={"field_normalisation"})
    with pytest.raises(BATsegError, match="--truncation 1.0 differs from the model's"):
        _options_from_parent(parent, given, explicit={"truncation"})
    old = manifest_for(TrainingOptions(progress="quiet"))
    del old["architecture"]["field_head"]["normalised"]  # written before the switch: normalised
    assert _options_from_parent(old, given, explicit=set()).field_normalisation is True


# ----------------------------------------------------------------------------- inference


def test_inference_returns_the_linear_heads_field_unclipped(tmp_path: Path) -> None:
    """`batseg predict --save-field` of a Table 5 model: signed mm, not squeezed into [0, 1]."""
    from batseg.inference.predictor import Predictor
    from inference_helpers import sagittal_image

    manifest = manifest_for(TrainingOptions(truncation=None, field_normalisation=False, progress="quiet"))
    torch.manual_seed(0)
    network = network_from_manifest(manifest)
    with torch.no_grad():
        network.field_head.weight.zero_()
        network.field_head.bias.copy_(torch.tensor([-12.0, -3.0, 2.5, 40.0]))
    path = write_model_file(tmp_path / "row1.batseg", network.state_dict(), manifest)
    prediction = Predictor(path, device="cpu", backend="torch", threads=2).predict(sagittal_image(), field=True)
    assert prediction.field.shape[0] == 4
    for channel, value in enumerate((-12.0, -3.0, 2.5, 40.0)):
        np.testing.assert_allclose(prediction.field[channel], value, rtol=1e-5)


# ------------------------------------------------------------------------- batseg train


@pytest.mark.slow
def test_batseg_train_smoke_per_table_5_row(tmp_path: Path, monkeypatch, capsys) -> None:
    """Table 5's two ablation rows, one epoch of one iteration each on 3 tiny cases, in one work dir
    (the second run reuses the preprocessed data); each model file records its row and reloads."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / "env" / name))
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    monkeypatch.setenv("nnUNet_compile", "false")
    data = make_dataset(tmp_path / "raw", n_cases=3, shape=(8, 48, 48))
    for row in ("no_truncation_no_normalisation", "truncation_no_normalisation"):
        truncation, _ = ROWS[row]
        flags = (["--truncation", "none"] if truncation is None else []) + ["--no-field-normalisation"]
        output = tmp_path / f"{row}.batseg"
        code = main(["train", "--data", str(data), "--output", str(output), "--workdir", str(tmp_path / "work"),
                     "--epochs", "1", "--iterations-per-epoch", "1", "--val-iterations", "1", "--batch-size", "2",
                     "--patch", "8", "32", "32", "--device", "cpu", "--progress", "json", *flags])
        out = capsys.readouterr()
        assert code == 0, out.err[-2000:]
        events = [e for e in map(parse_event, out.out.splitlines()) if e]
        epoch = next(e["message"] for e in events if e.get("event") == "log" and e["message"].startswith("epoch 1/1"))
        assert "boundary loss" in epoch and "nan" not in epoch, epoch
        model = load_model(output)
        head = model.field_head
        assert (head["truncation"], head["normalised"], head["activation"]) == (truncation, False, "linear")
        assert model.manifest["nnunet"]["plans"]["batseg_training"]["truncation"] == truncation
        assert model.network.field_activation == "linear"
