"""Training BATseg on nnU-Net v2: field transform, trainer loss, splits, data checks, and the
end-to-end `batseg train` -> model file -> `batseg package` -> fine-tuning path on tiny data."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from training_data import make_dataset  # noqa: E402

from batseg.cli import build_parser, main  # noqa: E402
from batseg.commands.train import options_from_args  # noqa: E402
from batseg.errors import BATsegError  # noqa: E402
from batseg.losses import boundary_loss  # noqa: E402
from batseg.model_file import load_model, network_from_manifest, read_manifest, sha256_file, write_model_file  # noqa: E402
from batseg.network import BATsegNet, DEFAULT_SPACING  # noqa: E402
from batseg.training.package import DEFAULT_VERSION  # noqa: E402
from batseg.progress import parse_event  # noqa: E402
from batseg.targets import sing_target, surface_distance_field  # noqa: E402
from batseg.training.datasets import read_raw_dataset  # noqa: E402
from batseg.training.field_transform import BoundaryTargetTransform, split_target  # noqa: E402
from batseg.training.options import TrainingOptions  # noqa: E402
from batseg.training.plans import target_spacing_for  # noqa: E402
from batseg.training.splits import stratified_splits  # noqa: E402
from batseg.training.standalone import pipelines, standalone_trainer  # noqa: E402
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss  # noqa: E402
from nnunetv2.utilities.helpers import softmax_helper_dim1  # noqa: E402

PATCH = (8, 32, 32)
SPACING = DEFAULT_SPACING["light"]


@pytest.fixture()
def nnunet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """nnU-Net's variables for this test only, small worker counts, no compile."""
    for name in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results"):
        monkeypatch.setenv(name, str(tmp_path / "env" / name))
    monkeypatch.setenv("nnUNet_n_proc_DA", "1")
    monkeypatch.setenv("nnUNet_def_n_proc", "1")
    monkeypatch.setenv("nnUNet_compile", "false")
    return tmp_path


def tumour_label(shape=(12, 40, 40)) -> np.ndarray:
    label = np.zeros(shape, dtype=np.int16)
    label[3:9, 10:26, 12:30] = 2
    label[5:8, 28:36, 5:12] = 4
    return label


def trainer_for(loss: str, variant: str = "classwise", folder: Path | None = None, batch_dice: bool | None = None):
    torch.manual_seed(0)
    options = TrainingOptions(loss=loss, variant=variant, topology="light", progress="quiet", batch_dice=batch_dice)
    return standalone_trainer(options, PATCH, batch_size=2, device="cpu", folder=folder)


def augmented_batch(trainer, seed: int = 0) -> dict:
    """Two samples through the trainer's real training pipeline, collated like nnU-Net's loader."""
    train, _, initial = pipelines(trainer)
    torch.manual_seed(seed)
    samples = []
    for _ in range(2):
        label = torch.from_numpy(tumour_label(tuple(initial)))[None]
        image = torch.randn(1, *initial) + label.float()
        samples.append(train(image=image, segmentation=label))
    target = [torch.stack([s["segmentation"][i] for s in samples]) for i in range(len(samples[0]["segmentation"]))]
    return {"data": torch.stack([s["image"] for s in samples]), "target": target}


# ------------------------------------------------------------------ field transform


@pytest.mark.parametrize("loss, variant", [("cubic", "classwise"), ("cubic", "agnostic"), ("focal_l1", "classwise")])
def test_field_transform_equals_targets_on_augmented_label(nnunet_env: Path, loss: str, variant: str) -> None:
    trainer = trainer_for(loss, variant, nnunet_env)
    batch = augmented_batch(trainer)
    full = batch["target"][0]
    expected_channels = {"classwise": 4, "agnostic": 1}[variant]
    assert full.shape == (2, 1 + expected_channels, *PATCH) and full.dtype == torch.float32
    for sample in full:
        label = sample[0].numpy().astype(np.int16)
        assert set(np.unique(label)) <= {0, 2, 4}  # nnU-Net's -1 padding already removed
        if loss == "focal_l1":
            expected = sing_target(label, SPACING)
        else:
            expected = surface_distance_field(label, SPACING, variant=variant)
        np.testing.assert_array_equal(sample[1:].numpy(), expected)
    # Deep-supervision targets stay label-only (the field is full resolution only).
    assert all(t.shape[1] == 1 for t in batch["target"][1:])


def test_transform_leaves_bare_targets_packed_too() -> None:
    transform = BoundaryTargetTransform(SPACING)
    label = torch.from_numpy(tumour_label())[None]
    out = transform(segmentation=label.clone())
    assert out["segmentation"].shape == (5, *label.shape[1:])
    seg, field = split_target(out["segmentation"][None])
    assert torch.equal(seg[0], label) and seg.dtype == torch.int16
    np.testing.assert_array_equal(field[0].numpy(), surface_distance_field(label[0].numpy(), SPACING))


# ------------------------------------------------------------------------ trainer loss


def test_loss_is_nnunet_loss_plus_boundary_term(nnunet_env: Path) -> None:
    batseg = trainer_for("cubic", folder=nnunet_env)
    plain = trainer_for("none", folder=nnunet_env)
    assert isinstance(batseg.network, BATsegNet) and not isinstance(plain.network, BATsegNet)
    plain.network.load_state_dict(batseg.network.unet.state_dict())  # same backbone weights
    batch = augmented_batch(batseg)
    seg_target, field_target = split_target(batch["target"])
    batseg.network.train(), plain.network.train()
    with torch.no_grad():
        seg_out, field_out = batseg.network(batch["data"])
        total = batseg.loss((seg_out, field_out), batch["target"])
        plain_loss = plain.loss(plain.network(batch["data"]), seg_target)
        expected_boundary = boundary_loss("cubic")(field_out, field_target)
    assert float(expected_boundary) > 0
    assert float(total) == pytest.approx(float(plain_loss) + float(expected_boundary), rel=1e-5)
    # nnU-Net's own train_step runs around it and reports the boundary term separately.
    result = batseg.train_step(batch)
    assert set(result) == {"loss", "boundary_loss"} and float(result["boundary_loss"]) > 0
    assert float(result["loss"]) > float(result["boundary_loss"])


def test_dice_term_gives_absent_classes_no_reward(nnunet_env: Path) -> None:
    """Predicting no tumour must not outscore segmenting the one present (the collapse the
    smoothing term caused: see trainer.without_dice_smoothing)."""
    for loss in ("cubic", "none"):
        modules = [m for m in trainer_for(loss, folder=nnunet_env).loss.modules()
                   if isinstance(m, MemoryEfficientSoftDiceLoss)]
        assert modules and all(m.smooth == 0 for m in modules), loss
    target = torch.zeros(1, 1, 8, 8, 8)
    target[..., 2:6, 2:6, 2:6] = 2  # one tumour type present, three absent
    inside = target[:, 0] == 2
    segments = torch.full((1, 5, 8, 8, 8), -6.0)  # absent classes keep a little probability
    segments[:, 0][~inside], segments[:, 2][inside] = 6.0, 6.0
    empty = torch.full((1, 5, 8, 8, 8), -30.0)
    empty[:, 0] = 30.0  # confident background everywhere
    ours = MemoryEfficientSoftDiceLoss(softmax_helper_dim1, batch_dice=False, do_bg=False, smooth=0.0, ddp=False)
    smoothed = MemoryEfficientSoftDiceLoss(softmax_helper_dim1, batch_dice=False, do_bg=False, smooth=1e-5, ddp=False)
    assert float(ours(segments, target)) < float(ours(empty, target))
    assert float(smoothed(segments, target)) > float(smoothed(empty, target))  # nnU-Net's default


def test_batch_dice_option_reaches_nnunet_loss(nnunet_env: Path) -> None:
    """--batch-dice / --no-batch-dice override the plan's setting; by default the plan decides."""
    def dice_modes(batch_dice: bool | None) -> set[bool]:
        trainer = trainer_for("cubic", folder=nnunet_env, batch_dice=batch_dice)
        return {m.batch_dice for m in trainer.loss.modules() if isinstance(m, MemoryEfficientSoftDiceLoss)}

    assert dice_modes(None) == {False}  # the synthetic plan's value, as nnU-Net plans sagittal spine data
    assert dice_modes(True) == {True}
    assert dice_modes(False) == {False}
    parser = build_parser()
    for flags, expected in (([], None), (["--batch-dice"], True), (["--no-batch-dice"], False)):
        args = parser.parse_args(["train", "--data", "d", "--output", "m.batseg", *flags])
        assert options_from_args(args).batch_dice is expected


def test_baseline_pipeline_and_step_are_plain_nnunet(nnunet_env: Path) -> None:
    plain = trainer_for("none", folder=nnunet_env)
    train, val, _ = pipelines(plain)
    assert not any(isinstance(t, BoundaryTargetTransform) for t in train.transforms + val.transforms)
    result = plain.train_step(augmented_batch(plain))
    assert set(result) == {"loss"}


def test_validation_step_uses_segmentation_and_adds_boundary(nnunet_env: Path) -> None:
    trainer = trainer_for("cubic", folder=nnunet_env)
    batch = augmented_batch(trainer)
    trainer.network.eval()
    with torch.no_grad():
        result = trainer.validation_step(batch)
    assert result["tp_hard"].shape == (4,)  # pseudo-Dice counts for the four tumour classes
    assert float(result["boundary_loss"]) > 0
    assert isinstance(trainer.network, BATsegNet)  # the tap is removed again


# ------------------------------------------------------------------ splits, data, plans


def test_stratified_splits_balance_tumour_types() -> None:
    types = {f"c{i:02d}": 1 + i % 4 for i in range(20)}
    splits, stratified = stratified_splits(types)
    assert stratified and len(splits) == 5
    all_val = [k for s in splits for k in s["val"]]
    assert sorted(all_val) == sorted(types)  # every case validated exactly once
    for split in splits:
        assert not set(split["train"]) & set(split["val"])
        assert sorted(types[k] for k in split["val"]) == [1, 2, 3, 4]  # one case of each type per fold
    with pytest.raises(BATsegError):
        stratified_splits({"a": 1, "b": 2, "c": 3})


def test_target_spacing_follows_the_slice_axis() -> None:
    assert target_spacing_for([[0.5, 0.5, 4.0], [0.6, 0.6, 3.5]], (3.3, 0.47, 0.47)) == [0.47, 0.47, 3.3]
    with pytest.raises(BATsegError):
        target_spacing_for([[0.5, 0.5, 4.0], [4.0, 0.5, 0.5], [0.5, 0.5, 4.0]], (3.3, 0.47, 0.47))


def test_bad_datasets_give_one_line_errors(tmp_path: Path) -> None:
    def error(folder: Path) -> str:
        with pytest.raises(BATsegError) as info:
            read_raw_dataset(folder)
        assert "\n" not in str(info.value)
        return str(info.value)

    assert "dataset.json" in error(tmp_path)
    good = make_dataset(tmp_path / "good", n_cases=2, shape=(4, 16, 16))
    assert len(read_raw_dataset(good).cases) == 2
    wrong = make_dataset(tmp_path / "wrong", n_cases=1, shape=(4, 16, 16))
    data = json.loads((wrong / "dataset.json").read_text())
    data["labels"] = {"background": 0, "liver": 1}
    (wrong / "dataset.json").write_text(json.dumps(data))
    assert "do not match BATseg" in error(wrong)
    empty = make_dataset(tmp_path / "empty", n_cases=1, shape=(4, 16, 16))
    for f in (empty / "imagesTr").iterdir():
        f.unlink()
    assert "no training cases" in error(empty)
    unlabelled = make_dataset(tmp_path / "unlabelled", n_cases=1, shape=(4, 16, 16))
    next((unlabelled / "labelsTr").iterdir()).unlink()
    assert "missing" in error(unlabelled)


# ------------------------------------------------------------------------- end to end


def run_cli(args: list[str], capsys: pytest.CaptureFixture) -> list[dict]:
    status = main(args)
    out = capsys.readouterr()
    assert status == 0, out.err[-2000:]
    return [e for e in map(parse_event, out.out.splitlines()) if e]


def mean_abs_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    return float(np.mean([(sa[k].float() - sb[k].float()).abs().mean() for k in sa if sa[k].is_floating_point()]))


def check_packaging_of_plain_nnunet(results: Path, tmp: Path, capsys: pytest.CaptureFixture) -> None:
    """A results folder as plain nnUNetv2_train leaves it (no BATseg keys, PlainConvUNet weights)."""
    plain = tmp / "plain_results"
    (plain / "fold_all").mkdir(parents=True)
    plans = json.loads((results / "plans.json").read_text())
    for key in ("batseg_training", "batseg_topology"):
        plans.pop(key)
    (plain / "plans.json").write_text(json.dumps(plans))
    (plain / "dataset.json").write_text((results / "dataset.json").read_text())
    unet = network_from_manifest({"architecture": {
        "arch_kwargs": plans["configurations"]["3d_fullres"]["architecture"]["arch_kwargs"],
        "num_classes": 5, "input_channels": 1, "field_head": None}})
    torch.save({"network_weights": unet.state_dict(), "trainer_name": "nnUNetTrainer", "current_epoch": 1},
               plain / "fold_all" / "checkpoint_final.pth")
    out = tmp / "plain.batseg"
    run_cli(["package", "--results", str(plain), "--output", str(out), "--progress", "quiet"], capsys)
    loaded = load_model(out)
    assert loaded.field_head is None and loaded.manifest["architecture"]["topology"] == "light"
    x = torch.randn(1, 1, *PATCH)
    with torch.no_grad():
        assert torch.equal(loaded.network.eval()(x), unet.eval()(x))


def test_cv_summary_averages_folds(tmp_path: Path) -> None:
    from batseg.training.package import write_cv_summary
    from test_model_file import manifest as base_manifest

    net = network_from_manifest(base_manifest())
    paths = []
    for fold, dice in enumerate((0.2, 0.4)):
        m = base_manifest()
        m["metrics"] = {"validation": {"dice_per_class": {"meningioma": dice, "ependymoma": float("nan")},
                                       "mean_foreground_dice": dice}}
        paths.append(write_model_file(tmp_path / f"m{fold}.batseg", net.state_dict(), m))
    summary = write_cv_summary(paths, tmp_path / "cv.json")
    assert summary["dice_per_class"]["meningioma"] == pytest.approx(0.3)
    assert summary["dice_per_class"]["ependymoma"] is None  # NaN (class absent) is not averaged
    assert json.loads((tmp_path / "cv.json").read_text())["mean_foreground_dice"] == pytest.approx(0.3)


@pytest.mark.slow
def test_train_package_reload_and_finetune(nnunet_env: Path, capsys: pytest.CaptureFixture) -> None:
    tmp = nnunet_env
    data = make_dataset(tmp / "raw", n_cases=6, shape=(8, 64, 64))
    work, first = tmp / "work", tmp / "first.batseg"
    common = ["--workdir", str(work), "--patch", *map(str, PATCH), "--iterations-per-epoch", "3",
              "--val-iterations", "2", "--device", "cpu", "--progress", "json"]
    events = run_cli(["train", "--data", str(data), "--output", str(first), "--fold", "0", "--epochs", "2",
                      "--batch-dice", *common], capsys)
    epochs = [e["message"] for e in events if e.get("event") == "log" and e["message"].startswith("epoch")]
    assert len(epochs) == 2 and "boundary loss" in epochs[0] and "pseudo-Dice" in epochs[0]
    assert events[-1]["event"] == "result" and events[-1]["outputs"]["models"] == [str(first)]

    model = load_model(first)
    manifest = model.manifest
    assert manifest["architecture"]["field_head"]["loss"] == "cubic"
    assert manifest["input"]["target_spacing"] == list(SPACING)
    assert manifest["training"]["epochs_completed"] == 2
    assert manifest["training"]["data"]["num_cases"] == 6
    assert sum(manifest["training"]["data"]["cases_per_type"].values()) == 6
    assert manifest["metrics"]["validation"]["num_cases"] == 2  # fold 0 of 6 cases: held-out validation ran
    paper = manifest["metrics"]["validation"]["paper_protocol"]  # and was scored with batseg.metrics (issue 16, 7)
    assert paper["n_cases"] == 2 and 0.0 <= paper["mean_hd95"] <= 450.0
    assert manifest["nnunet"]["plans"]["configurations"]["3d_fullres"]["patch_size"] == list(PATCH)
    # nnU-Net plans per-sample Dice for these small volumes; --batch-dice overrode it, and the file says so
    assert manifest["nnunet"]["plans"]["configurations"]["3d_fullres"]["batch_dice"] is True
    assert manifest["training"]["batch_dice"] is True
    with torch.no_grad():
        seg, field = model.network(torch.randn(1, 1, *PATCH))
    assert seg.shape == (1, 5, *PATCH) and field.shape == (1, 4, *PATCH)

    # `batseg package` on nnU-Net's results folder gives the same weights.
    results = next((work / "results").glob("Dataset*/nnUNetTrainerBATseg__*"))
    packaged = tmp / "packaged.batseg"
    run_cli(["package", "--results", str(results), "--output", str(packaged), "--progress", "json"], capsys)
    assert read_manifest(packaged)["weights_sha256"] == manifest["weights_sha256"]
    check_packaging_of_plain_nnunet(results, tmp, capsys)

    # Fine-tuning on 2 new cases, replaying the original data named in the manifest, from a parent
    # with a tuned minimum volume; no budget given: the parent's (issue 16, items 2-4).
    parent = tmp / "parent.batseg"
    tuned = {"fill_holes": True, "min_volume_mm3": 500.0, "one_type_per_lesion": False, "chosen_on": "3 cases"}
    write_model_file(parent, model.network.state_dict(), {**manifest, "postprocessing": tuned})
    new = make_dataset(tmp / "new", n_cases=2, shape=(8, 64, 64), seed=7, prefix="new")
    second = tmp / "second.batseg"
    finetune = ["--epochs", "1", "--workdir", str(work), "--device", "cpu", "--progress", "json"]
    events = run_cli(["train", "--data", str(new), "--finetune-from", str(parent), "--output", str(second), *finetune],
                     capsys)
    assert any("replaying" in e.get("message", "") for e in events)
    assert any("of training" in e.get("message", "") for e in events)  # the expected duration, before training
    child = read_manifest(second)
    assert child["parent"]["sha256"] == sha256_file(parent)
    assert child["parent"]["name"] == manifest["name"] and child["parent"]["version"] == DEFAULT_VERSION == "0.1.0"
    assert child["version"] == "0.2.0" and child["training"]["learning_rate"] == pytest.approx(1e-3)  # 0.1.0 bumped
    assert child["parent"]["new_cases"] == 2 and child["parent"]["replay_cases"] == 6
    # The parent's tuned postprocessing, through the real path (the Slicer button runs this command).
    assert child["postprocessing"]["min_volume_mm3"] == 500.0
    assert child["postprocessing"]["chosen_on"].startswith(f"inherited from the parent {manifest['name']} {DEFAULT_VERSION}")
    # The parent's budget: 3 iterations, 2 validation iterations, its patch and oversampling.
    options = child["nnunet"]["plans"]["batseg_training"]
    assert (options["iterations_per_epoch"], options["val_iterations"], options["patch_size"]) == (3, 2, list(PATCH))
    assert options["foreground_oversampling"] == 0.33 and child["training"]["iterations_per_epoch"] == 3
    # Each case preprocessed once; the 2 new cases drawn 2x as often as the 6 replayed ones.
    assert options["case_repeats"] == {"new_new000": 2, "new_new001": 2} and child["parent"]["new_case_repeats"] == 2
    merged = work / "preprocessed" / child["training"]["data"]["dataset_name"]
    assert len([p for p in merged.rglob("*.pkl")]) == 8
    # Started from the parent's weights: much closer to them than a fresh initialisation is.
    torch.manual_seed(99)
    fresh = network_from_manifest(manifest)
    tuned_network = load_model(second).network
    assert mean_abs_difference(tuned_network, model.network) < 0.1 * mean_abs_difference(fresh, model.network)

    # A second round on other new cases replays the ORIGINAL 6 cases (and round 1's), not round 1's alone.
    newer = make_dataset(tmp / "newer", n_cases=1, shape=(8, 64, 64), seed=8, prefix="newer")
    third = tmp / "third.batseg"
    run_cli(["train", "--data", str(newer), "--finetune-from", str(second), "--output", str(third), *finetune], capsys)
    grandchild = read_manifest(third)
    assert grandchild["version"] == "0.3.0"
    assert grandchild["parent"]["replay_cases"] == 6 and grandchild["parent"]["earlier_round_cases"] == 2
    assert grandchild["training"]["data"]["original"]["sources"] == [str(data)]
    assert [r["num_cases"] for r in grandchild["training"]["data"]["rounds"]] == [2, 1]
    assert grandchild["postprocessing"]["min_volume_mm3"] == 500.0
    assert grandchild["postprocessing"]["chosen_on"].count("inherited from") == 1
    assert grandchild["nnunet"]["plans"]["batseg_training"]["iterations_per_epoch"] == 3

    # --resume continues the first run from nnU-Net's checkpoint: one more epoch, not three.
    resumed = tmp / "resumed.batseg"
    events = run_cli(["train", "--data", str(data), "--output", str(resumed), "--fold", "0", "--epochs", "3",
                      "--resume", *common], capsys)
    assert len([e for e in events if e.get("event") == "log" and e["message"].startswith("epoch")]) == 1
    assert read_manifest(resumed)["training"]["epochs_completed"] == 3


def test_no_replay_trains_on_the_given_cases_alone(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """`--no-replay` skips the parent's original data even where it exists; it contradicts --replay-data."""
    from batseg.progress import Progress
    from batseg.training.replay import replay_dataset

    original = make_dataset(tmp_path / "orig", n_cases=2)
    manifest = {"training": {"data": {"sources": [str(original)]}}}
    said: list[str] = []
    progress = Progress("quiet")
    progress.log = said.append  # type: ignore[method-assign]
    assert replay_dataset(manifest, None, tmp_path, progress, replay=False) is None
    assert "no replay" in said[-1]
    assert replay_dataset(manifest, None, tmp_path, progress).folder == original
    assert main(["train", "--finetune-from", "m.batseg", "--no-replay", "--replay-data", str(original),
                 "--data", str(original), "--output", str(tmp_path / "o.batseg"), "--progress", "quiet"]) == 2
    assert "contradict" in capsys.readouterr().err
    assert main(["train", "--no-replay", "--data", str(original), "--output", str(tmp_path / "o.batseg"),
                 "--progress", "quiet"]) == 2


def test_package_accepts_a_fold_folder_or_the_trainer_folder(tmp_path: Path) -> None:
    from batseg.commands.package import trainer_folder_and_fold

    trainer = tmp_path / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (trainer / "fold_0").mkdir(parents=True)
    assert trainer_folder_and_fold(trainer / "fold_0", None) == (trainer, "0")
    assert trainer_folder_and_fold(trainer, None) == (trainer, "0")
    (trainer / "fold_1").mkdir()
    with pytest.raises(BATsegError, match="choose one with --fold"):
        trainer_folder_and_fold(trainer, None)
    with pytest.raises(BATsegError, match="disagree"):
        trainer_folder_and_fold(trainer / "fold_1", "0")
