"""The model card's target verdicts (scripts/make_model_card.py): what reads "met", "NOT met" and
"not measured", so that a comparison with nothing behind it never reads "met"."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "make_model_card.py"
spec = importlib.util.spec_from_file_location("make_model_card", SCRIPT)
card = importlib.util.module_from_spec(spec)
spec.loader.exec_module(card)

FINDS = {**card.EMPTY_SUMMARY, "mean_dice": 0.7, "mean_hd95_mm": 40.0, "type_accuracy": 0.95, "detection_tpr": 0.85}
SILENT = {**card.EMPTY_SUMMARY, "mean_dice": 0.0, "mean_hd95_mm": 450.0, "detection_tpr": 0.0}


def verdict(lines: str) -> str:
    return lines.splitlines()[-1]


def test_hd95_comparison_met_and_not_met() -> None:
    assert "**met**" in verdict(card.target_lines(FINDS, {**FINDS, "mean_hd95_mm": 45.0}))
    assert "**NOT met**" in verdict(card.target_lines(FINDS, {**FINDS, "mean_hd95_mm": 35.0}))
    lines = card.target_lines(FINDS, None).splitlines()
    assert "**NOT met**" in lines[0] and "**NOT met**" in lines[1] and "**met**" in lines[2]


def test_no_baseline_or_a_silent_model_is_not_measured() -> None:
    assert "not measured" in verdict(card.target_lines(FINDS, None))
    # Both models find nothing: 450 mm on both sides is not "no worse".
    both = verdict(card.target_lines(SILENT, SILENT))
    assert "not measured" in both and "BATseg and the baseline detect no lesion" in both
    assert "the baseline detects no lesion" in verdict(card.target_lines(FINDS, SILENT))


def test_a_fine_tune_takes_the_comparison_from_its_ablation_pair() -> None:
    pair = {"batseg": FINDS, "baseline": {**FINDS, "mean_hd95_mm": 60.0}}
    line = verdict(card.target_lines(FINDS, None, pair))
    assert "**met**" in line and "from-scratch pair" in line
    assert "not measured" in verdict(card.target_lines(FINDS, None, {"batseg": SILENT, "baseline": FINDS}))


def test_the_budget_names_batch_dice_only_when_it_was_used() -> None:
    assert "--batch-dice" in card.dice_mode_text({"batch_dice": True})
    assert card.dice_mode_text({"batch_dice": False}) == card.dice_mode_text({}) == ""  # the plan's per-sample Dice


def test_the_pair_section_quotes_the_work_dirs_note() -> None:
    pair = {"batseg": FINDS, "baseline": FINDS, "cases": 200, "budget": "50 epochs", "command": "batseg train",
            "commit": None, "note": "Trained by hand: the recipe's arguments plus --batch-dice."}
    assert pair["note"] in card.ablation_section(pair)
    assert "Trained by hand" not in card.ablation_section({**pair, "note": ""})


def test_a_graded_tuning_table_shows_the_lines_through_the_choice(tmp_path: Path) -> None:
    """With probability minimums the card shows every volume at the chosen probability and every
    probability at the chosen volume (chosen type switch), not the whole grid."""
    import json

    def row(volume: float, one: bool, least: float) -> dict:
        return {"min_volume_mm3": volume, "one_type_per_lesion": one, "min_tumour_probability": least,
                "mean_dice": 0.5, "detection_f1": 0.5, "false_positive_rate": 0.2, "healthy_with_lesion": 0, "score": 0.5}

    grid = [row(v, one, p) for one in (False, True) for p in (0.0, 0.85) for v in (20.0, 200.0)]
    chosen = {"min_volume_mm3": 200.0, "one_type_per_lesion": True, "min_tumour_probability": 0.85}
    (tmp_path / "tune_m.json").write_text(json.dumps({"cases": 3, "candidates": grid, "postprocessing": chosen}))
    text = card.tuning_section(tmp_path, "m")
    rows = [line for line in text.splitlines() if line.startswith("| 2")]
    assert rows == ["| 200 | 0 | 0 | yes | 50.0 | 50.0 | 20.0 | 0 | 0.500 |",
                    "| 20 | 0.85 | 0 | yes | 50.0 | 50.0 | 20.0 | 0 | 0.500 |",
                    "| 200 (chosen) | 0.85 | 0 | yes | 50.0 | 50.0 | 20.0 | 0 | 0.500 |"]
    assert "minimum mean tumour probability **0.85**" in text and "Of the 8 settings scored" in text


def test_an_enhancement_graded_table_shows_its_line_through_the_choice(tmp_path: Path) -> None:
    import json

    def row(volume: float, least: float, enhancement: float) -> dict:
        return {"min_volume_mm3": volume, "one_type_per_lesion": True, "min_tumour_probability": least,
                "min_enhancement": enhancement, "mean_dice": 0.5, "detection_f1": 0.5, "false_positive_rate": 0.2,
                "healthy_with_lesion": 0, "score": 0.5}

    grid = [row(v, p, e) for e in (0.0, 1.2) for p in (0.0, 0.85) for v in (20.0, 200.0)]
    chosen = {"min_volume_mm3": 200.0, "one_type_per_lesion": True, "min_tumour_probability": 0.0,
              "min_enhancement": 1.2}
    (tmp_path / "tune_m.json").write_text(json.dumps({"cases": 3, "candidates": grid, "postprocessing": chosen}))
    text = card.tuning_section(tmp_path, "m")
    rows = [line for line in text.splitlines() if line.startswith("| 2")]
    assert rows == ["| 200 | 0 | 0 | yes | 50.0 | 50.0 | 20.0 | 0 | 0.500 |",
                    "| 20 | 0 | 1.2 | yes | 50.0 | 50.0 | 20.0 | 0 | 0.500 |",
                    "| 200 (chosen) | 0 | 1.2 | yes | 50.0 | 50.0 | 20.0 | 0 | 0.500 |",
                    "| 200 | 0.85 | 1.2 | yes | 50.0 | 50.0 | 20.0 | 0 | 0.500 |"]
    assert "minimum enhancement **1.2** times the cord" in text
