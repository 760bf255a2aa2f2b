"""Multi-GPU training through nnU-Net's own DDP helpers, with BATseg's trainer built directly.

nnU-Net's `run_ddp` looks the trainer class up by name inside the nnunetv2 package, where
BATseg's trainer does not live. This module follows nnU-Net's path otherwise unchanged: the
same `mp.spawn` of one process per GPU, nnU-Net's `setup_ddp` / `cleanup_ddp`, its
`maybe_load_checkpoint` for resuming, its free-port finder; only the trainer is instantiated
from the plans dict (which carries BATseg's options, see `options.py`). nnU-Net's trainer
then splits the batch over the GPUs and wraps the network in DistributedDataParallel itself.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.multiprocessing as mp


def _worker(
    rank: int,
    plans: dict[str, Any],
    configuration: str,
    fold: Any,
    dataset_json: dict[str, Any],
    resume: bool,
    initial_weights: str | None,
    final_validation: bool,
    world_size: int,
) -> None:
    """One DDP process: nnU-Net's setup, BATseg's trainer, nnU-Net's checkpoint logic."""
    from nnunetv2.run.run_training import cleanup_ddp, maybe_load_checkpoint, setup_ddp
    from torch import distributed as dist

    from batseg.training.initial_weights import start_from
    from batseg.training.trainer import enable_cudnn_autotuning, nnUNetTrainerBATseg

    setup_ddp(rank, world_size)
    torch.cuda.set_device(torch.device("cuda", dist.get_rank()))
    trainer = nnUNetTrainerBATseg(plans, configuration, fold, dataset_json, device=torch.device("cuda"))
    maybe_load_checkpoint(trainer, resume, False, None)
    start_from(trainer, initial_weights)  # the same rule as run.train_fold's
    enable_cudnn_autotuning(torch.device("cuda"))
    trainer.run_training()
    if final_validation:
        trainer.perform_actual_validation(False)
    cleanup_ddp()


def train_ddp(
    plans: dict[str, Any],
    configuration: str,
    fold: Any,
    dataset_json: dict[str, Any],
    num_gpus: int,
    resume: bool,
    initial_weights: str | None,
    final_validation: bool,
) -> None:
    """Train one fold on `num_gpus` GPUs of this machine (nnU-Net's single-node DDP)."""
    from nnunetv2.run.run_training import find_free_network_port

    from batseg.errors import BATsegError

    available = torch.cuda.device_count()
    if num_gpus > available:
        raise BATsegError(f"--num-gpus {num_gpus} asked for, but this machine has {available} CUDA GPU(s)")
    os.environ["MASTER_ADDR"] = "localhost"
    os.environ.setdefault("MASTER_PORT", str(find_free_network_port()))
    mp.spawn(
        _worker,
        args=(plans, configuration, fold, dataset_json, resume, initial_weights, final_validation, num_gpus),
        nprocs=num_gpus,
        join=True,
    )
