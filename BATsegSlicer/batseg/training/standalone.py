"""A BATseg trainer set up without a dataset: for the training-step benchmark and the tests.

`standalone_trainer` builds `nnUNetTrainerBATseg` from a synthetic plans dict (BATseg's
topology, spacing and patch; nnU-Net's plan format) and sets up the network, optimizer and
loss with the trainer's own methods, exactly as `nnUNetTrainer.initialize` does, but without
the data-set lookup that `initialize` also performs. `train_step`, `validation_step` and the
data-augmentation pipelines are then nnU-Net's / BATseg's real ones.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Sequence

import torch

from batseg.labels import NNUNET_LABELS
from batseg import nnunet_plans
from batseg.network import DEFAULT_SPACING, topology_kwargs
from batseg.nnunet_plans import CONFIGURATION
from batseg.training.options import TrainingOptions
from batseg.training.plans import check_patch

DATASET_NAME = "Dataset999_Standalone"


def synthetic_plans(topology: str, patch_size: Sequence[int], batch_size: int) -> dict[str, Any]:
    """A plans dict in nnU-Net's format for BATseg's topology, spacing and the given patch."""
    arch = topology_kwargs(topology)
    return nnunet_plans.synthetic_plans(
        arch, DEFAULT_SPACING[topology], check_patch(patch_size, arch), batch_size,
        dataset_name=DATASET_NAME, plans_name="BATsegPlans_standalone", planner="batseg.training.standalone",
    )


def standalone_trainer(
    options: TrainingOptions,
    patch_size: Sequence[int],
    batch_size: int = 2,
    device: str | torch.device = "cpu",
    folder: str | Path | None = None,
) -> Any:
    """A ready-to-step `nnUNetTrainerBATseg` (network, optimizer, loss) without training data."""
    import os

    from batseg.training.trainer import nnUNetTrainerBATseg

    root = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="batseg-standalone-"))
    for name in ("nnUNet_preprocessed", "nnUNet_results"):
        os.environ.setdefault(name, str(root / name))
    plans = options.into_plans(synthetic_plans(options.topology, patch_size, batch_size))
    plans["continue_training"] = False
    dataset_json = {"channel_names": {"0": "T1Gd"}, "labels": dict(NNUNET_LABELS), "numTraining": 0, "file_ending": ".nii.gz"}
    trainer = nnUNetTrainerBATseg(plans, CONFIGURATION, 0, dataset_json, device=torch.device(device))
    trainer._set_batch_size_and_oversample()
    trainer.num_input_channels = 1
    trainer.network = trainer.build_network_architecture(
        trainer.plans_manager, trainer.configuration_manager, 1,
        trainer.label_manager.num_segmentation_heads, trainer.enable_deep_supervision,
    ).to(trainer.device)
    trainer.optimizer, trainer.lr_scheduler = trainer.configure_optimizers()
    trainer.loss = trainer._build_loss()
    trainer.was_initialized = True
    return trainer


def pipelines(trainer: Any) -> tuple[Any, Any, list[int]]:
    """(training transforms, validation transforms, initial patch size) as nnU-Net builds them."""
    rotation, dummy_2d, initial_patch, mirror_axes = trainer.configure_rotation_dummyDA_mirroring_and_inital_patch_size()
    scales = trainer._get_deep_supervision_scales()
    labels = trainer.label_manager
    train = trainer.get_training_transforms(
        trainer.configuration_manager.patch_size, rotation, scales, mirror_axes, dummy_2d,
        use_mask_for_norm=trainer.configuration_manager.use_mask_for_norm, is_cascaded=False,
        foreground_labels=labels.foreground_labels, regions=None, ignore_label=labels.ignore_label,
    )
    val = trainer.get_validation_transforms(
        scales, is_cascaded=False, foreground_labels=labels.foreground_labels, regions=None,
        ignore_label=labels.ignore_label,
    )
    return train, val, [int(p) for p in initial_patch]
