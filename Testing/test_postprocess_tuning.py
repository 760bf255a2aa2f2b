"""`batseg tune-postprocess`: the criterion, the choice on hand-made cases, and the model file it writes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from batseg.cli import main
from batseg.errors import BATsegError
from batseg.model_file import read_manifest, sha256_file
from batseg.postprocess_settings import (
    DEFAULT_MIN_VOLUME_MM3, recommended_min_tumour_probability, recommended_min_volume, recommended_one_type_per_lesion,
)
from batseg.postprocess_tuning import detection_f1, tune_postprocessing, validation_pairs
from inference_helpers import light_model


def _image(array: np.ndarray, spacing=(1.0, 1.0, 1.0)) -> sitk.Image:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing)
    return image


def _dataset(folder: Path, cases: dict[str, np.ndarray]) -> Path:
    """An nnU-Net raw dataset folder whose labels are the given arrays (images: noise)."""
    (folder / "imagesTr").mkdir(parents=True)
    (folder / "labelsTr").mkdir()
    rng = np.random.default_rng(0)
    for name, labels in cases.items():
        sitk.WriteImage(_image(rng.normal(100, 10, labels.shape).astype(np.float32)), str(folder / "imagesTr" / f"{name}_0000.nii.gz"))
        sitk.WriteImage(_image(labels.astype(np.uint8)), str(folder / "labelsTr" / f"{name}.nii.gz"))
    return folder


def _lesion_case() -> np.ndarray:
    labels = np.zeros((12, 24, 24), dtype=np.uint8)
    labels[2:7, 3:8, 3:8] = 2  # 125 mm3 ependymoma
    return labels


def test_detection_f1_from_pooled_rates() -> None:
    assert detection_f1({"true_positive_detection_rate": 1.0, "false_positive_detection_rate": 0.5}) == pytest.approx(2 / 3)
    assert detection_f1({"true_positive_detection_rate": 0.0, "false_positive_detection_rate": None}) == 0.0
    assert detection_f1({"true_positive_detection_rate": None, "false_positive_detection_rate": None}) is None


def test_the_smallest_volume_that_removes_specks_but_keeps_lesions_is_chosen(tmp_path: Path) -> None:
    truth = _lesion_case()
    # "b_0000": a case whose own name ends like nnU-Net's channel suffix must still find its label.
    pairs = validation_pairs(_dataset(tmp_path / "val", {"a": truth, "b_0000": truth}))
    assert sorted(case.name for case, _ in pairs) == ["a", "b_0000"]

    def predict_raw(case, image: sitk.Image) -> tuple[sitk.Image, None, None]:
        raw = truth.copy()
        raw[9:10, 18:21, 18:21] = 2  # a 9 mm3 speck far from the lesion: a false positive
        return _image(raw), None, None

    # No probabilities: only the probability minimum 0 can be tried (the others are refused, below).
    tuning = tune_postprocessing(predict_raw, pairs, (0.0, 5.0, 10.0, 50.0, 200.0), probability_candidates=(0.0,))
    by_volume = {c.min_volume_mm3: c for c in tuning.candidates if not c.one_type_per_lesion}
    assert tuning.cases == 2
    assert by_volume[0.0].false_positive_rate == pytest.approx(0.5)
    assert by_volume[10.0].false_positive_rate == 0.0 and by_volume[10.0].true_positive_rate == 1.0
    assert by_volume[200.0].true_positive_rate == 0.0  # the 125 mm3 lesion is gone too
    assert by_volume[10.0].score == pytest.approx(by_volume[50.0].score)  # tie: the smaller volume wins
    assert (tuning.chosen.min_volume_mm3, tuning.chosen.one_type_per_lesion) == (10.0, False)  # one type: a tie


def test_a_probability_minimum_removes_the_false_lesion_the_network_doubts(tmp_path: Path) -> None:
    """A large false lesion no volume removes without the true one, at a mean tumour probability of
    0.6 against the true lesion's 0.95: the smallest minimum above 0.6 is chosen."""
    truth = _lesion_case()
    pairs = validation_pairs(_dataset(tmp_path / "val", {"a": truth}))

    def predict_raw(case, image: sitk.Image) -> tuple[sitk.Image, np.ndarray]:
        raw = truth.copy()
        raw[8:11, 15:21, 15:21] = 1  # 108 mm3 false meningioma, smaller than the 125 mm3 truth
        probabilities = np.zeros((5, *raw.shape), dtype=np.float32)
        probabilities[0] = 1.0
        probabilities[0][raw == 2], probabilities[2][raw == 2] = 0.05, 0.95
        probabilities[0][raw == 1], probabilities[1][raw == 1] = 0.4, 0.6
        return _image(raw), probabilities, None

    tuning = tune_postprocessing(predict_raw, pairs, (0.0, 200.0), probability_candidates=(0.0, 0.5, 0.7, 0.9))
    chosen = tuning.chosen
    assert (chosen.min_volume_mm3, chosen.min_tumour_probability) == (0.0, 0.7)  # 0.9 ties it: the lower wins
    assert chosen.false_positive_rate == 0.0 and chosen.true_positive_rate == 1.0
    kept_both = next(c for c in tuning.candidates if (c.min_volume_mm3, c.min_tumour_probability) == (0.0, 0.5))
    assert kept_both.false_positive_rate == pytest.approx(0.5)


def test_probability_minimums_need_probabilities(tmp_path: Path) -> None:
    pairs = validation_pairs(_dataset(tmp_path / "val", {"a": _lesion_case()}))
    with pytest.raises(BATsegError, match="no class probabilities"):
        tune_postprocessing(lambda case, image: (_image(_lesion_case()), None, None), pairs, (0.0,))
    for bad in ((), (1.0,), (float("nan"),), (-0.1,)):
        with pytest.raises(BATsegError, match="probability"):
            tune_postprocessing(lambda case, image: (_image(_lesion_case()), None, None), pairs, (0.0,),
                                probability_candidates=bad)


def test_one_type_per_lesion_is_chosen_when_the_model_splits_lesions(tmp_path: Path) -> None:
    truth = _lesion_case()
    pairs = validation_pairs(_dataset(tmp_path / "val", {"a": truth}))

    def predict_raw(case, image: sitk.Image) -> tuple[sitk.Image, np.ndarray]:
        raw = truth.copy()
        raw[2:7, 3:8, 7] = 3  # one slab of the ependymoma typed astrocytoma
        probabilities = np.zeros((5, *raw.shape), dtype=np.float32)
        probabilities[0][raw == 0] = 1.0
        probabilities[2][raw > 0], probabilities[3][raw > 0] = 0.6, 0.4
        return _image(raw), probabilities, None

    tuning = tune_postprocessing(predict_raw, pairs, (0.0, 20.0))
    split, whole = (next(c for c in tuning.candidates if c.min_volume_mm3 == 0.0 and c.one_type_per_lesion is one)
                    for one in (False, True))
    assert whole.mean_dice == pytest.approx(1.0) and split.mean_dice < whole.mean_dice
    assert (tuning.chosen.min_volume_mm3, tuning.chosen.one_type_per_lesion) == (0.0, True)


def test_a_folder_without_labels_is_refused(tmp_path: Path) -> None:
    (tmp_path / "imagesTr").mkdir()
    with pytest.raises(BATsegError, match="imagesTr/ and labelsTr/"):
        validation_pairs(tmp_path)


def test_command_writes_a_tuned_copy_and_leaves_the_model_alone(tmp_path: Path, capsys) -> None:
    data = _dataset(tmp_path / "Dataset900_Val", {"a": _lesion_case()})
    model = light_model()
    before = sha256_file(model)
    tuned, table = tmp_path / "tuned.batseg", tmp_path / "table.json"
    assert main(["tune-postprocess", "--model", str(model), "--data", str(data), "--output", str(tuned),
                 "--json", str(table), "--candidates", "0", "20", "--device", "cpu", "--progress", "quiet"]) == 0
    assert "<- chosen" in capsys.readouterr().out
    chosen = json.loads(table.read_text())["postprocessing"]["min_volume_mm3"]
    assert chosen in (0.0, 20.0)
    assert recommended_min_volume(read_manifest(tuned)) == chosen
    assert recommended_one_type_per_lesion(read_manifest(tuned)) == json.loads(table.read_text())["postprocessing"]["one_type_per_lesion"]
    least = json.loads(table.read_text())["postprocessing"]["min_tumour_probability"]
    assert least in (0.0, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85, 0.9)  # the default candidates
    assert recommended_min_tumour_probability(read_manifest(tuned)) == least
    assert sha256_file(model) == before  # the given model file is never modified
    assert recommended_min_volume(read_manifest(model)) == DEFAULT_MIN_VOLUME_MM3
    assert main(["tune-postprocess", "--model", str(model), "--data", str(data), "--output", str(model),
                 "--overwrite", "--progress", "quiet"]) == 2


def test_the_cases_are_predicted_along_predicts_path(tmp_path: Path, monkeypatch) -> None:
    """The cascade crop around the user's cord mask by default, the whole volume with --no-crop;
    the tuned file records which (a volume chosen on one path is not the right one for the other)."""
    from batseg.inference.predictor import Predictor

    data = _dataset(tmp_path / "Dataset900_Val", {"a": _lesion_case()})
    masks = tmp_path / "cords"
    masks.mkdir()
    cord = np.zeros((12, 24, 24), dtype=np.uint8)
    cord[:, :, 10:14] = 1
    sitk.WriteImage(_image(cord), str(masks / "a.nii.gz"))
    calls: list[dict] = []
    original = Predictor.predict

    def spy(self, image, **kwargs):
        calls.append(kwargs)
        return original(self, image, **kwargs)

    monkeypatch.setattr(Predictor, "predict", spy)
    recorded = {}
    for name, extra in (("crop", ["--crop-to-cord", "10"]), ("whole", ["--no-crop"])):
        tuned = tmp_path / f"{name}.batseg"
        assert main(["tune-postprocess", "--model", str(light_model()), "--data", str(data), "--output", str(tuned),
                     "--candidates", "0", "--cord-masks", str(masks), "--device", "cpu", "--progress", "quiet",
                     *extra]) == 0
        recorded[name] = read_manifest(tuned)["postprocessing"]["predicted_with"]
    assert calls[0]["crop_margin_mm"] == 10.0 and np.array_equal(calls[0]["roi"], cord > 0)
    two = _dataset(tmp_path / "Dataset901_Val", {"a": _lesion_case(), "b": _lesion_case()})
    assert main(["tune-postprocess", "--model", str(light_model()), "--data", str(two), "--cord-masks",
                 str(masks / "a.nii.gz"), "--device", "cpu", "--progress", "quiet"]) == 2  # one mask, two cases
    assert "roi" not in calls[1]
    assert recorded == {"crop": {"crop_margin_mm": 10.0, "cord_locator": True, "cord_masks": True},
                        "whole": {"crop_margin_mm": None, "cord_locator": True, "cord_masks": True}}


def test_predict_uses_the_models_volume_unless_told_otherwise(tmp_path: Path) -> None:
    """A model recommending a huge minimum volume keeps no lesion; --min-volume 0 overrides it."""
    from batseg.model_file import with_manifest_updates
    from inference_helpers import sagittal_image

    # 1e6 mm3 (a litre) is more than the whole image; manifests hold at most 1e7 (batseg.manifest_schema).
    strict = with_manifest_updates(light_model(), {"postprocessing": {"min_volume_mm3": 1e6}}, tmp_path / "strict.batseg")
    source = tmp_path / "scan.nii.gz"
    sitk.WriteImage(sagittal_image(), str(source))
    counts = {}
    for name, extra in (("default", []), ("override", ["--min-volume", "0"])):
        out = tmp_path / name
        assert main(["predict", "-i", str(source), "-o", str(out), "--model", str(strict), "--device", "cpu",
                     "--progress", "quiet", *extra]) == 0
        counts[name] = int(np.count_nonzero(sitk.GetArrayFromImage(sitk.ReadImage(str(out / "scan.nii.gz")))))
    assert counts["default"] == 0 < counts["override"]


def test_predict_uses_the_models_one_type_choice_unless_told_otherwise(tmp_path: Path) -> None:
    """A model recommending one type per lesion gets it by default; --no-one-type-per-lesion turns it off."""
    from batseg.lesions import class_counts_per_lesion, label_lesions
    from batseg.model_file import with_manifest_updates
    from inference_helpers import sagittal_image

    typed = with_manifest_updates(light_model(), {"postprocessing": {"min_volume_mm3": 0.0, "one_type_per_lesion": True}},
                                  tmp_path / "typed.batseg")
    source = tmp_path / "scan.nii.gz"
    sitk.WriteImage(sagittal_image(), str(source))
    mixed = {}
    for name, extra in (("default", []), ("off", ["--no-one-type-per-lesion"])):
        out = tmp_path / name
        assert main(["predict", "-i", str(source), "-o", str(out), "--model", str(typed), "--device", "cpu",
                     "--progress", "quiet", *extra]) == 0
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(out / "scan.nii.gz")))
        lesions, count = label_lesions(labels > 0)
        counts = class_counts_per_lesion(labels, lesions, count)
        mixed[name] = int(np.sum(np.count_nonzero(counts, axis=1) > 1))
    assert mixed["default"] == 0 < mixed["off"]  # the random-weights model splits lesions between types


def test_an_enhancement_minimum_removes_the_false_lesion_that_is_the_cords_own_signal(tmp_path: Path) -> None:
    """A false lesion as bright as the cord (1.0 times) beside a true one at 2 times: the smallest
    enhancement minimum above 1.0 is chosen; without a cord signal nothing is judged by it."""
    truth = _lesion_case()
    folder = _dataset(tmp_path / "val", {"a": truth})
    scan = np.full(truth.shape, 100.0, np.float32)
    scan[truth == 2] = 200.0  # the true lesion enhances
    sitk.WriteImage(_image(scan), str(folder / "imagesTr" / "a_0000.nii.gz"))
    pairs = validation_pairs(folder)
    raw = truth.copy()
    raw[8:11, 15:21, 15:21] = 2  # 108 mm3 false lesion of the cord's signal

    tuning = tune_postprocessing(lambda case, image: (_image(raw), None, 100.0), pairs, (0.0, 200.0),
                                 probability_candidates=(0.0,), enhancement_candidates=(0.0, 1.1, 1.5))
    assert (tuning.chosen.min_volume_mm3, tuning.chosen.min_enhancement) == (0.0, 1.1)  # 1.5 ties: the lower wins
    assert tuning.chosen.false_positive_rate == 0.0 and tuning.chosen.true_positive_rate == 1.0
    no_cord = tune_postprocessing(lambda case, image: (_image(raw), None, None), pairs, (0.0,),
                                  probability_candidates=(0.0,), enhancement_candidates=(0.0, 1.1))
    assert [c.false_positive_rate for c in no_cord.candidates] == pytest.approx([0.5] * len(no_cord.candidates))


def test_enhancement_candidates_are_checked(tmp_path: Path) -> None:
    pairs = validation_pairs(_dataset(tmp_path / "val", {"a": _lesion_case()}))
    for bad in ((), (5.5,), (float("nan"),), (-0.1,)):
        with pytest.raises(BATsegError, match="enhancement"):
            tune_postprocessing(lambda case, image: (_image(_lesion_case()), None, None), pairs, (0.0,),
                                probability_candidates=(0.0,), enhancement_candidates=bad)
