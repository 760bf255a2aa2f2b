"""`batseg train`'s checks of the validation pseudo-Dice curve: collapsed to 0, or never learnt."""

from __future__ import annotations

import math
from pathlib import Path

import torch

from batseg.training.learning_check import collapse_warning, fold_learning_warning, learning_warning, not_learnt_warning

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


def test_a_run_that_never_learnt_is_reported_with_its_best_value() -> None:
    # The from-scratch BATseg run of the 0.6.0 card's pair (50 x 50 iterations, CPU): 0 until epoch 49.
    stalled = [0.0] * 48 + [math.nan, 0.0139]
    warning = not_learnt_warning(stalled)
    assert warning is not None and "best 0.01 in 50 epochs" in warning and "train longer" in warning
    assert learning_warning(stalled) == warning
    assert not_learnt_warning(COLLAPSED) is None  # it had learnt: a collapse, reported as one
    assert learning_warning(COLLAPSED) == collapse_warning(COLLAPSED)
    assert not_learnt_warning([0.1, 0.25]) is None
    assert not_learnt_warning([]) is None and not_learnt_warning([math.nan]) is None  # nothing logged


def test_reads_the_history_from_the_fold_checkpoint(tmp_path: Path) -> None:
    assert fold_learning_warning(tmp_path) is None  # no checkpoint: nothing to say
    torch.save({"logging": {"mean_fg_dice": COLLAPSED}}, tmp_path / "checkpoint_latest.pth")
    assert "collapsed" in fold_learning_warning(tmp_path)
    torch.save({"logging": {"mean_fg_dice": COLLAPSED[:10]}}, tmp_path / "checkpoint_final.pth")
    assert fold_learning_warning(tmp_path) is None  # the final checkpoint wins
    torch.save({"logging": {"mean_fg_dice": [0.0, 0.02]}}, tmp_path / "checkpoint_final.pth")
    assert "not learnt" in fold_learning_warning(tmp_path)
