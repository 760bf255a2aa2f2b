"""After training: did the network collapse to predicting no tumour? (a warning, not an error).

nnU-Net logs a validation pseudo-Dice per epoch (`mean_fg_dice` in its checkpoint's logging).
A run whose pseudo-Dice reached a useful level and then sits at 0 for its last epochs has most
likely learnt to predict background everywhere: its model file would find nothing. Such a
collapse happened to a fine-tune of the shipped model before the Dice term lost its smoothing
(see `trainer.without_dice_smoothing`); other causes (a learning rate too high for the data)
remain possible on users' data, so `batseg train` checks every run and says so in one line.

Decisions: "collapsed" = the last `WINDOW` logged values all below `FLOOR` after an earlier value
of at least `REACHED` (a run that never learnt is not a collapse, and its low figures are in
the manifest anyway); NaN epochs (no tumour in that validation sample) are skipped.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

WINDOW = 3
FLOOR = 0.01
REACHED = 0.2
LOG_KEY = "mean_fg_dice"


def collapse_warning(pseudo_dice: Sequence[float]) -> str | None:
    """The warning for a per-epoch pseudo-Dice history that ends collapsed, else None."""
    values = [(epoch, float(v)) for epoch, v in enumerate(pseudo_dice, start=1) if not math.isnan(float(v))]
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


def fold_collapse_warning(fold_dir: Path) -> str | None:
    """`collapse_warning` for nnU-Net's fold folder, read from the checkpoint `batseg package`
    takes (`package.find_checkpoint`); None when the fold has no checkpoint."""
    import torch

    from batseg.errors import BATsegError
    from batseg.training.package import find_checkpoint

    try:
        path = find_checkpoint(fold_dir)
    except BATsegError:
        return None
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    return collapse_warning(checkpoint.get("logging", {}).get(LOG_KEY) or [])
