"""A training run that starts from a model file's weights (fine-tuning), on one device or in DDP.

One rule for both paths (`run.train_fold` and `ddp._worker`): after nnU-Net's
`maybe_load_checkpoint`, the parent's weights are loaded unless a checkpoint was loaded, i.e.
unless the trainer is past epoch 0. `--resume` without a checkpoint to resume from (nnU-Net then
starts afresh, with a warning in its log) therefore still starts from the parent's weights, not
from a random initialisation.

This module depends on the trainer only; `run` and `ddp` use it, and `finetune` uses `run`, so the
training modules import each other in one direction (finetune -> run -> ddp -> initial_weights).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from batseg.errors import BATsegError


def load_initial_weights(trainer: Any, model_path: str | Path) -> None:
    """Load a model file's weights into a trainer's network (strict: every tensor must fit)."""
    from batseg.model_file import load_model
    from batseg.training.trainer import unwrap

    if not trainer.was_initialized:
        trainer.initialize()
    source = load_model(model_path).network.state_dict()
    try:
        unwrap(trainer.network).load_state_dict(source, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise BATsegError(f"{Path(model_path).name}: its weights do not fit the network being trained ({first})") from None


def start_from(trainer: Any, initial_weights: str | Path | None) -> bool:
    """Load `initial_weights` unless nnU-Net resumed a checkpoint; True if they were loaded.

    Call after nnU-Net's `maybe_load_checkpoint`: a loaded checkpoint sets `current_epoch` past 0
    (nnU-Net saves a checkpoint at the end of an epoch), a missing one leaves it at 0.
    """
    if not initial_weights or trainer.current_epoch > 0:
        return False
    load_initial_weights(trainer, initial_weights)
    return True
