"""`batseg train`'s check for a run whose validation pseudo-Dice collapsed to 0."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from batseg.training.collapse_check import collapse_warning, fold_collapse_warning

# The fine-tune of 0.4.0 that collapsed (smoothed Dice): its logged epochs 1-13, plus a made-up 14th at 0
# (the run was stopped at 13).
COLLAPSED = [0.4792, 0.5594, 0.5701, 0.6670, 0.6311, 0.5805, 0.6786, 0.5467, 0.4764, 0.5778, 0.1415, 0.0, 0.0, 0.0]


def test_a_collapsed_run_is_reported_with_its_best_epoch() -> None:
    warning = collapse_warning(COLLAPSED)
    assert warning is not None and "0.68 (epoch 7)" in warning and "--lr" in warning


def test_healthy_dips_nan_epochs_and_runs_that_never_learnt_are_not_collapses() -> None:
    assert collapse_warning(COLLAPSED[:-1]) is None  # two zero epochs are a dip, not yet a collapse
    assert collapse_warning([0.3, 0.5, 0.0, 0.0, 0.4]) is None
    assert collapse_warning(COLLAPSED[:-1] + [math.nan]) is None  # a NaN epoch says nothing
    assert collapse_warning(COLLAPSED + [math.nan]) is not None
    assert collapse_warning([0.05, 0.1, 0.0, 0.0, 0.0]) is None  # never reached a useful level
    assert collapse_warning([]) is None


def test_reads_the_history_from_the_fold_checkpoint(tmp_path: Path) -> None:
    assert fold_collapse_warning(tmp_path) is None  # no checkpoint: nothing to say
    torch.save({"logging": {"mean_fg_dice": COLLAPSED}}, tmp_path / "checkpoint_latest.pth")
    assert fold_collapse_warning(tmp_path) is not None
    torch.save({"logging": {"mean_fg_dice": COLLAPSED[:10]}}, tmp_path / "checkpoint_final.pth")
    assert fold_collapse_warning(tmp_path) is None  # the final checkpoint wins
