"""The panel's expected time per scan (batseg.inference.expected_time): its figures are those of
the committed benchmark files, and it is said for the topologies measured only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batseg.inference.expected_time import BENCHMARK_FILES, MEASURED_CPU_SECONDS, expected_text

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures"


def _warm_median(name: str) -> float:
    summary = json.loads((FIGURES / BENCHMARK_FILES[name]).read_text())
    (row,) = [row for row in summary["rows"] if row["pipeline"] == "batseg predict, warm runs"]
    return float(row["median_s"])


@pytest.mark.parametrize("topology", sorted(MEASURED_CPU_SECONDS))
def test_the_figures_are_the_committed_benchmarks(topology: str) -> None:
    whole, cropped = MEASURED_CPU_SECONDS[topology]
    assert whole == pytest.approx(_warm_median(topology), abs=0.5)
    if cropped is not None:
        assert cropped == pytest.approx(_warm_median(f"{topology}_crop"), abs=0.5)


def test_the_benchmark_files_say_what_they_timed() -> None:
    crop = json.loads((FIGURES / BENCHMARK_FILES["paper_crop"]).read_text())
    assert crop["crop_to_cord_mm"] == 25.0 and crop["threads"] == 2 and "paper" in crop["model"]
    assert json.loads((FIGURES / BENCHMARK_FILES["paper"]).read_text()).get("crop_to_cord_mm") is None


def test_the_text_names_the_time_and_the_crop() -> None:
    paper = expected_text({"architecture": {"topology": "paper"}})
    assert paper.startswith("About ") and "--crop-to-cord" in paper and paper.endswith("faster on a GPU.")
    assert "crop" not in expected_text({"architecture": {"topology": "light"}})
    assert expected_text({"architecture": {"topology": "custom"}}) == ""
    assert expected_text({}) == ""
