"""The model list: shipped + user-added files, validated by the engine's manifest and checksum checks.

Model files here are tiny archives with a minimal manifest (no network weights): the list,
adding, duplicate detection, tampering and removal are what is tested, not inference, and the
model description the panel shows (minimum volume, held-out figures).
"""

from __future__ import annotations

import os
import zipfile

import pytest

from batseg.errors import BATsegError, ModelFileError
from BATsegSlicerLib.models import ModelLibrary

from slicer_test_support import make_model_file


@pytest.fixture
def library(tmp_path):
    shipped = tmp_path / "shipped"
    shipped.mkdir()
    make_model_file(shipped / "batseg-phantoms.batseg", name="batseg-phantoms", title="BATseg phantoms",
                    weights=b"shipped weights")
    return ModelLibrary(user_dir=str(tmp_path / "user"), shipped_dir=str(shipped))


def test_lists_shipped_model_first_with_manifest_fields(library):
    entries, problems = library.entries()
    assert problems == []
    assert [(e.name, e.shipped) for e in entries] == [("batseg-phantoms", True)]
    assert entries[0].label == "BATseg phantoms 0.0.1 (shipped)"


def test_add_verifies_copies_and_never_overwrites(library, tmp_path):
    source = make_model_file(tmp_path / "mine.batseg", name="mine", title="My model", weights=b"my weights")
    entry = library.add(str(source))
    assert not entry.shipped and os.path.dirname(entry.path) == library.user_dir
    assert open(entry.path, "rb").read() == source.read_bytes()
    # Same weights again: the existing entry, no second copy.
    again = library.add(str(source))
    assert again.path == entry.path
    assert len(os.listdir(library.user_dir)) == 1
    # Different weights, same file name: a new name, the first file untouched.
    (tmp_path / "other").mkdir()
    other = make_model_file(tmp_path / "other" / "mine.batseg", name="mine", weights=b"other weights")
    second = library.add(str(other))
    assert second.path != entry.path and os.path.basename(second.path) == "mine-2.batseg"
    names = [e.name for e in library.entries()[0]]
    assert names == ["batseg-phantoms", "mine", "mine"]


def test_tampered_file_is_refused_and_not_copied(library, tmp_path):
    source = make_model_file(tmp_path / "bad.batseg", weights=b"original")
    with zipfile.ZipFile(source) as archive:
        manifest = archive.read("manifest.json")
    with zipfile.ZipFile(source, "w") as archive:  # same manifest, other weights
        archive.writestr("manifest.json", manifest)
        archive.writestr("weights.safetensors", b"tampered")
    with pytest.raises(ModelFileError, match="do not match the checksum"):
        library.add(str(source))
    assert not os.path.exists(library.user_dir) or os.listdir(library.user_dir) == []


def test_model_for_other_classes_is_refused(library, tmp_path):
    source = make_model_file(tmp_path / "liver.batseg", classes=[{"value": 1, "key": "liver"}])
    with pytest.raises(ModelFileError, match="other classes"):
        library.add(str(source))


def test_broken_user_file_is_reported_not_listed(library, tmp_path):
    os.makedirs(library.user_dir)
    with open(os.path.join(library.user_dir, "truncated.batseg"), "wb") as handle:
        handle.write(b"PK\x03\x04 not a zip")
    entries, problems = library.entries()
    assert [e.name for e in entries] == ["batseg-phantoms"]
    assert len(problems) == 1 and problems[0].startswith("truncated.batseg: ")


def test_only_user_models_can_be_removed(library, tmp_path):
    shipped = library.entries()[0][0]
    with pytest.raises(BATsegError, match="cannot be removed"):
        library.remove(shipped)
    added = library.add(str(make_model_file(tmp_path / "x.batseg", weights=b"x")))
    library.remove(added)
    assert not os.path.exists(added.path)


def test_new_model_path_is_free_and_in_the_user_folder(library):
    path = library.new_model_path("batseg phantoms/v1")
    assert os.path.dirname(path) == library.user_dir
    assert os.path.basename(path).startswith("batseg-phantoms-v1-finetuned-") and path.endswith(".batseg")
    assert not os.path.exists(path)


def test_panel_text_says_which_minimum_volume_apply_uses(library):
    from BATsegSlicerLib.models import ModelEntry

    entry = library.entries()[0][0]
    assert entry.postprocessing_summary == "Lesions under 20 mm3 are dropped (default)."
    tuned = ModelEntry(entry.path, {**entry.manifest, "postprocessing": {"min_volume_mm3": 50.0}}, shipped=True)
    assert tuned.postprocessing_summary == "Lesions under 50 mm3 are dropped (chosen on validation data)."
    doubted = ModelEntry(entry.path, {**entry.manifest, "postprocessing": {"min_volume_mm3": 200.0,
                                                                          "min_tumour_probability": 0.8}}, shipped=True)
    assert doubted.postprocessing_summary == ("Lesions under 200 mm3, and those whose mean tumour probability is under "
                                              "0.8 are dropped (chosen on validation data).")
    flat = ModelEntry(entry.path, {**entry.manifest, "postprocessing": {"min_volume_mm3": 200.0,
                                                                       "min_enhancement": 1.15}}, shipped=True)
    assert flat.postprocessing_summary == (
        "Lesions under 200 mm3, and those whose median signal is under 1.15 times the spinal cord's (so non-enhancing "
        "tumours are missed) are dropped (chosen on validation data).")
    both = ModelEntry(entry.path, {**entry.manifest, "postprocessing": {
        "min_volume_mm3": 200.0, "min_tumour_probability": 0.8, "min_enhancement": 1.2}}, shipped=True)
    assert both.postprocessing_summary == (
        "Lesions under 200 mm3, those whose mean tumour probability is under 0.8, and those whose median signal is "
        "under 1.2 times the spinal cord's (so non-enhancing tumours are missed) are dropped (chosen on validation "
        "data).")
    off = ModelEntry(entry.path, {**entry.manifest, "postprocessing": {"min_volume_mm3": 50.0, "min_enhancement": 0.0}},
                     shipped=True)
    assert off.postprocessing_summary == "Lesions under 50 mm3 are dropped (chosen on validation data)."


HELD_OUT = {"n_cases": 40, "mean_dice": 0.23001275, "detection_tpr": 0.63636364, "type_accuracy": 0.39285714,
            "per_class": {}}


def test_panel_text_gives_the_held_out_figures_or_nothing(library):
    from BATsegSlicerLib.models import ModelEntry

    entry = library.entries()[0][0]
    assert entry.held_out_summary == ""  # the test model has no metrics

    def summary(metrics) -> str:
        return ModelEntry(entry.path, {**entry.manifest, "metrics": metrics}, shipped=True).held_out_summary

    assert summary({"held_out_phantoms": HELD_OUT}) == (
        "On 40 held-out phantoms: mean Dice 23.0 %, lesion detection 63.6 %, type accuracy 39.3 %.")
    assert summary({"held_out_phantoms": {"mean_dice": 0.5, "type_accuracy": "n/a", "detection_tpr": True}}) == (
        "On held-out phantoms: mean Dice 50.0 %.")
    for no_figures in ({}, {"validation": {"mean_dice": 0.9}}, {"held_out_phantoms": "not evaluated"},
                       {"held_out_phantoms": {"n_cases": 3}}, "broken"):
        assert summary(no_figures) == ""


def test_shipped_models_state_their_held_out_figures(tmp_path):
    from BATsegSlicerLib.models import SHIPPED_MODELS_DIR

    shipped = [e for e in ModelLibrary(str(tmp_path / "user"), SHIPPED_MODELS_DIR).entries()[0] if e.shipped]
    if not shipped:
        pytest.skip("no shipped model in BATsegSlicer/Resources/Models")
    for entry in shipped:  # the panel must show the measured weakness of what it ships
        assert entry.held_out_summary.startswith("On ") and "mean Dice" in entry.held_out_summary, entry.path


def test_slicer_and_the_cli_share_the_user_models_folder(tmp_path, monkeypatch):
    from batseg.models import user_models_dir
    from BATsegSlicerLib.models import default_user_models_dir

    monkeypatch.setenv("BATSEG_MODELS_DIR", str(tmp_path / "mine"))
    assert default_user_models_dir() == str(user_models_dir()) == str(tmp_path / "mine")
