"""The real-anatomy card's target verdicts (scripts/make_real_anatomy_card.py): a real T2 scan with a
lesion passes only when it was warned (as T2-weighted, or that its contrast could not be checked; the two
are counted apart), and a T1 false lesion always fails."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"
sys.path.insert(0, str(SCRIPTS))  # the card script imports make_model_card beside it
spec = importlib.util.spec_from_file_location("make_real_anatomy_card", SCRIPTS / "make_real_anatomy_card.py")
card = importlib.util.module_from_spec(spec)
spec.loader.exec_module(card)

PHANTOMS = {"version": "0.7.0", "mean_dice": 0.69, "detection_tpr": 0.84, "type_accuracy": 0.97,
            "detection_fpr": 0.40}
SUMMARY = {"large_detected": 0.95, "large_type_accuracy": 0.85}


def real(t1_lesions: int, t2_lesions: int, t2_warned: bool, unchecked: bool = False) -> dict:
    t2 = {"lesions": t2_lesions, "contrast_warning": t2_warned, "contrast_unchecked": unchecked}
    return {"insertions": {"summary": SUMMARY},
            "unaltered": {"sct_t1w": {"distributed": {"lesions": t1_lesions, "contrast_warning": False},
                                      "resliced": {"lesions": 0, "contrast_warning": False}},
                          "errsm_11_t2": {"distributed": t2, "resliced": {"lesions": 0, "contrast_warning": True}}}}


def line(lines: str, start: str) -> str:
    return next(text for text in lines.splitlines() if text.startswith(start))


def test_a_warned_t2_lesion_meets_the_target_and_an_unwarned_one_does_not() -> None:
    warned = card.target_lines(PHANTOMS, PHANTOMS, real(0, 1, True))
    assert line(warned, "- 0 lesions or a contrast warning").endswith(", met")
    silent = card.target_lines(PHANTOMS, PHANTOMS, real(0, 1, False))
    assert "1 with a lesion and neither warning" in silent and "**NOT met**" in line(silent, "- 0 lesions or a contrast")


def test_a_t2_lesion_told_its_contrast_was_not_checked_is_counted_apart() -> None:
    lines = card.target_lines(PHANTOMS, PHANTOMS, real(0, 1, False, unchecked=True))
    target = line(lines, "- 0 lesions or a contrast warning")
    assert "1 of them warned as T2-weighted" in target  # the resliced version, not this one
    assert "1 told that the contrast could not be checked" in target and target.endswith(", met")


def test_a_false_lesion_on_a_real_t1_scan_fails_its_target() -> None:
    lines = card.target_lines(PHANTOMS, PHANTOMS, real(1, 0, False))
    assert "**NOT met**" in line(lines, "- 0 lesions on the unaltered real T1 scans")
    assert line(lines, "- >= 90%").endswith(", met")


def test_the_phantom_target_is_0_6_0s_figures_with_fewer_false_lesions() -> None:
    lines = card.target_lines(PHANTOMS, PHANTOMS, real(0, 0, False))
    target = line(lines, "- held-out phantoms no worse than 0.6.0")
    assert "mean Dice 69.3 -> 69.0 %" in target and "**NOT met**" in target  # Dice and detection below 0.6.0
    better = {**PHANTOMS, "mean_dice": 0.70, "detection_tpr": 0.87, "detection_fpr": 0.30}
    assert card.target_lines(PHANTOMS, better, real(0, 0, False)).count(", met") >= 2
    assert line(card.target_lines(PHANTOMS, better, real(0, 0, False)), "- held-out phantoms").endswith(", met")
    assert "met" not in line(lines, "- and against the parent 0.7.0").split("%")[-1]


def test_no_machine_folder_survives_in_the_lineage(tmp_path: Path) -> None:
    work = tmp_path / "r20"
    data = {"sources": [f"{work.resolve()}/real_train/D511", "WORK_DIR/phantoms/D501"], "num_cases": 380,
            "original": {"sources": [f"{work.resolve()}/phantoms/D501"], "phantoms": {"seed": 2026}},
            "rounds": [{"model": "m 0.8.0", "sources": [f"{work.resolve()}/real_train/D511"], "num_cases": 240}]}
    portable = card.portable_paths(data, work)
    assert str(tmp_path) not in json.dumps(portable)
    assert portable["rounds"][0]["sources"] == ["WORK_DIR/real_train/D511"] and portable["num_cases"] == 380


def test_the_card_reads_the_type_pairing_and_the_phantom_count_from_the_data(tmp_path: Path) -> None:
    for split, record in (("real_train", {"cases": {}}), ("real_test", {"types_by_background": False, "cases": {}})):
        (tmp_path / split / "D51x").mkdir(parents=True)
        (tmp_path / split / "D51x" / "insertions.json").write_text(json.dumps(record))
    (tmp_path / "phantoms" / "D501").mkdir(parents=True)
    (tmp_path / "phantoms" / "D501" / "dataset.json").write_text(json.dumps({"numTraining": 280}))
    # A record written before the option existed tied types to backgrounds.
    assert card.split_pairing(tmp_path, "real_train") is True
    assert card.split_pairing(tmp_path, "real_test") is False
    assert card.phantom_cases(tmp_path) == 280
    assert "sct_t1w` only meningiomas and astrocytomas" in card.pairing_words(True)
    assert card.pairing_words(False) == "every background carrying every type in equal numbers"


def test_the_per_background_type_table_compares_parent_and_child() -> None:
    def figures(detected: float, dice: float) -> dict:
        kinds = {"astrocytoma": {"lesions": 6, "large_lesions": 5, "large_detected": detected, "dice": dice},
                 "meningioma": {"lesions": 0, "large_lesions": 0, "large_detected": None, "dice": None}}
        return {"insertions": {"summary": {"by_background": {"sct_t1w": {"per_type": kinds}}}}}

    table = card.background_type_table(figures(0.2, 0.03), figures(0.6, 0.31))
    assert "| sct_t1w | astrocytoma | 6 (5) | 20.0 / 60.0 % | 3.0 / 31.0 % |" in table
    assert "meningioma" not in table  # a type the background does not carry gets no row


def test_the_recipe_line_names_every_knob_that_differs_from_the_defaults() -> None:
    import argparse

    draw = {"seed": 6, "real_cases": 240, "phantom_cases": 280, "pairing": False, "opts": "--t1-tissue-share 0.7"}
    args = argparse.Namespace(parent_phantoms_only=False, parent="x/batseg-light-synthetic-0.8.0.batseg",
                              version="0.9.0", members=[], draw=draw)
    assert card.recipe_line(args) == (
        "PARENT=BATsegSlicer/Resources/Models/batseg-light-synthetic-0.8.0.batseg VERSION=0.9.0 TRAIN_SEED=6 "
        'PHANTOM_CASES=280 TRAIN_OPTS="--t1-tissue-share 0.7" bash scripts/train_real_anatomy_model.sh WORK_DIR')
    old = argparse.Namespace(**{**vars(args), "parent_phantoms_only": True, "draw": {
        **draw, "phantom_cases": 140, "real_cases": 300, "pairing": True, "opts": ""}})
    assert card.recipe_line(old) == ("VERSION=0.9.0 TRAIN_SEED=6 TRAIN_CASES=300 TYPES_BY_BACKGROUND=1 "
                                     "bash scripts/train_real_anatomy_model.sh WORK_DIR")


def test_a_soup_member_is_rebuilt_from_its_recorded_knobs(tmp_path: Path) -> None:
    member = tmp_path / "r31"
    member.mkdir()
    (member / "RECIPE").write_text("VERSION=0.9.0\nTRAIN_SEED=7\nTRAIN_CASES=300\nPHANTOM_CASES=280\n"
                                   "TYPES_BY_BACKGROUND=\nTRAIN_OPTS=--t1-tissue-share 0.7 --healthy-fraction 0.25\nMEMBERS=\n")
    one = card.soup.Member(member, "MEMBER_2", card.soup.read_recipe(member), "65bfad9", {})
    assert card.soup.member_recipe(one) == (
        'CARD=0 PARENT=PARENT_FILE VERSION=0.9.0 TRAIN_SEED=7 TRAIN_CASES=300 PHANTOM_CASES=280 '
        'TRAIN_OPTS="--t1-tissue-share 0.7 --healthy-fraction 0.25" bash scripts/train_real_anatomy_model.sh MEMBER_2')
    # Every member's folder gets its own placeholder, the soup's own folder WORK_DIR, even when nested.
    folders = card.soup.folder_names([one], tmp_path)
    command = ["--data", f"{member.resolve()}/real_train/D511", "--output", f"{tmp_path}/soup.batseg"]
    assert card.portable_command(command, folders) == ["--data", "MEMBER_2/real_train/D511", "--output",
                                                       "WORK_DIR/soup.batseg"]
    (member / "RECIPE").unlink()
    try:
        card.soup.read_recipe(member)
    except SystemExit as exc:
        assert "RECIPE is missing" in str(exc)
    else:
        raise AssertionError("a member without RECIPE was accepted")


def test_more_lesions_on_a_healthy_real_scan_are_said_plainly() -> None:
    parent = {"unaltered": {"sct_t1w": {"distributed": {"lesions": 1, "volumes_mm3": [754.0]},
                                        "resliced": {"lesions": 0, "volumes_mm3": []}}}}
    child = {"unaltered": {"sct_t1w": {"distributed": {"lesions": 1, "volumes_mm3": [2547.0]},
                                       "resliced": {"lesions": 1, "volumes_mm3": [381.6], "contrast_warning": False}}}}
    said = card.unaltered_regressions(parent, child)
    assert said.endswith("`sct_t1w` resliced 0 -> 1 (0.38 cm3; no contrast warning).")
    assert "distributed" not in said  # as many lesions as before there
    assert card.unaltered_regressions(child, parent).startswith("On the unaltered real scans it reports no more")
