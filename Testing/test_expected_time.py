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
    cascade, whole = MEASURED_CPU_SECONDS[topology]
    assert cascade == pytest.approx(_warm_median(topology), abs=0.5)
    assert whole == pytest.approx(_warm_median(f"{topology}_whole"), abs=0.5)


@pytest.mark.parametrize("topology", sorted(MEASURED_CPU_SECONDS))
def test_the_benchmark_files_say_what_they_timed(topology: str) -> None:
    cascade = json.loads((FIGURES / BENCHMARK_FILES[topology]).read_text())
    assert cascade["crop_to_cord_mm"] == 25.0 and cascade["cord_source"] == "locator" and cascade["threads"] == 2
    assert topology in cascade["model"] or (topology == "light" and "light" in cascade["model"])
    whole = json.loads((FIGURES / BENCHMARK_FILES[f"{topology}_whole"]).read_text())
    assert whole.get("crop_to_cord_mm") is None and whole["threads"] == 2


def test_the_text_names_both_times() -> None:
    paper = expected_text({"architecture": {"topology": "paper"}})
    assert paper.startswith("About ") and "around the spinal cord" in paper and "whole volume" in paper
    assert paper.endswith("faster on a GPU.")
    assert expected_text({"architecture": {"topology": "custom"}}) == ""
    assert expected_text({}) == ""
