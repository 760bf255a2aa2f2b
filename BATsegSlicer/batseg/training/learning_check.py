"""After training: did the network learn to segment tumour? (warnings, not errors).

nnU-Net logs a validation pseudo-Dice per epoch (`mean_fg_dice` in its checkpoint's logging).
Two learning curves give a model file that finds little or nothing, and `batseg train` says so
in one line for each fold:
- collapsed: the pseudo-Dice reached a useful level, then sits at 0 for the last epochs. This
  happened to a fine-tune of the shipped model before the Dice term lost its smoothing (see
  `trainer.without_dice_smoothing`); a learning rate too high for the data remains possible.
- not learnt: the pseudo-Dice never reached a useful level. Measured on phantoms: from scratch
  on a 2-core CPU, 50 epochs x 50 iterations stayed at 0 until epoch 49 (0.01 at epoch 50) and
  found 2 of 44 held-out lesions; the budget, not the data, was short. The same run with
  `--batch-dice` left 0 at epoch 25 and found 23 of 44 (docs/method.md).

Decisions: "useful" = a pseudo-Dice of at least `REACHED`; "collapsed" = the last `WINDOW` logged
values all below `FLOOR` after an earlier useful one; NaN epochs (no tumour in that validation
sample) are skipped; a run with no logged value says nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

WINDOW = 3
FLOOR = 0.01
REACHED = 0.2
LOG_KEY = "mean_fg_dice"


def logged(pseudo_dice: Sequence[float]) -> list[tuple[int, float]]:
    """(epoch from 1, value) of the epochs with a value (NaN: no tumour in that validation sample)."""
    return [(epoch, float(v)) for epoch, v in enumerate(pseudo_dice, start=1) if not math.isnan(float(v))]


def collapse_warning(pseudo_dice: Sequence[float]) -> str | None:
    """The warning for a per-epoch pseudo-Dice history that ends collapsed, else None."""
    values = logged(pseudo_dice)
    if len(values) <= WINDOW:
        return None
    earlier, last = values[:-WINDOW], values[-WINDOW:]
    best_epoch, best = max(earlier, key=lambda item: item[1])
    if best < REACHED or any(v >= FLOOR for _, v in last):
        return None
    return (
        f"validation pseudo-Dice fell from {best:.2f} (epoch {best_epoch}) to 0 over the last {WINDOW} epochs: "
        "the network has probably collapsed to predicting no tumour; check the model with `batseg evaluate` "
        "and retrain with a lower --lr"
    )


def not_learnt_warning(pseudo_dice: Sequence[float]) -> str | None:
    """The warning for a per-epoch pseudo-Dice history that never reached `REACHED`, else None."""
    values = [v for _, v in logged(pseudo_dice)]
    if not values or max(values) >= REACHED:
        return None
    return (
        f"validation pseudo-Dice stayed below {REACHED:g} (best {max(values):.2f} in {len(pseudo_dice)} epochs): the "
        "network has not learnt to segment tumour yet; train longer (nnU-Net's default is 1000 epochs x 250 "
        "iterations, best on a GPU), try --batch-dice, or raise --foreground-oversampling"
    )


def learning_warning(pseudo_dice: Sequence[float]) -> str | None:
    """The collapse or not-learnt warning for a pseudo-Dice history, else None."""
    return collapse_warning(pseudo_dice) or not_learnt_warning(pseudo_dice)


def fold_learning_warning(fold_dir: Path) -> str | None:
    """`learning_warning` for nnU-Net's fold folder, read from the checkpoint `batseg package`
    takes (`package.find_checkpoint`); None when the fold has no checkpoint."""
    import torch

    from batseg.errors import BATsegError
    from batseg.training.package import find_checkpoint

    try:
        path = find_checkpoint(fold_dir)
    except BATsegError:
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return learning_warning(checkpoint.get("logging", {}).get(LOG_KEY) or [])
