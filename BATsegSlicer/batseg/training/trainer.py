"""`nnUNetTrainerBATseg`: nnU-Net v2's trainer with BATseg's field head and boundary loss.

What changes relative to `nnUNetTrainer` (everything else is nnU-Net's own code, called):
- options (loss, field variant, truncation, normalisation, epochs, iterations, batch, lr, seed) come from
  `plans["batseg_training"]` (see `options.py`: this is what works in DDP children and in
  checkpoints);
- `build_network_architecture` wraps nnU-Net's planned PlainConvUNet in `BATsegNet`
  (field channels from `targets.field_channels`, activation from `losses.head_activation`);
  with loss "none" it returns nnU-Net's network untouched: the plain nnU-Net baseline;
- the training and validation pipelines end with `BoundaryTargetTransform`, so the field is
  computed in the augmentation workers (see `field_transform.py`);
- fine-tuning's new cases are drawn more often than replayed ones (`options.case_repeats`,
  applied to the training dataset's case list), each stored once;
- the loss is `BoundaryAwareLoss`: nnU-Net's CE+Dice with deep supervision on the
  segmentation outputs (Dice without its smoothing term, see `without_dice_smoothing`; the
  baseline too), plus the boundary loss on the full-resolution field, equal weights.
  nnU-Net's own `train_step` runs unchanged around it, so its autocast, gradient scaler and
  gradient clipping apply as they are;
- validation: nnU-Net's `validation_step` runs on the segmentation output (its online
  pseudo-Dice), while the field output is tapped and its loss added to the validation loss;
- the boundary loss is logged separately (`train_boundary_losses`, `val_boundary_losses`
  in nnU-Net's logger and checkpoints) and each epoch is reported as Progress events;
- final validation and nnU-Net's predictor see the inner PlainConvUNet (`BATsegNet.unet`),
  which returns a tensor as they expect.

Decisions: torch.compile follows nnU-Net's `_do_i_compile`, inherited unchanged: on by default
on CUDA, off on the CPU, on MPS and on Windows, `nnUNet_compile=false` turns it off
(BATsegNet's forward hook compiles without graph breaks, see Testing/test_gpu_settings.py and
docs/method.md). cuDNN autotuning is on for CUDA training, as in nnU-Net's `run_training`
(`enable_cudnn_autotuning`). The seed fixes weight initialisation and the main process's random state; nnU-Net's
augmentation workers draw their own seeds, so two runs are not bit-identical.
"""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Any, Iterator

import numpy as np
import torch
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
from torch import distributed as dist
from torch import nn
from torch._dynamo import OptimizedModule

from batseg.labels import NUM_CLASSES
from batseg.losses import boundary_loss, head_activation, target_kind
from batseg.network import BATsegNet
from batseg.progress import Progress
from batseg.training.field_transform import BoundaryTargetTransform, boundary_channels, split_target
from batseg.training.options import TrainingOptions

BOUNDARY_LOG_KEYS = ("train_boundary_losses", "val_boundary_losses")


class BoundaryAwareLoss(nn.Module):
    """nnU-Net's segmentation loss + weight * boundary loss; remembers the last boundary term.

    Called with the network's (segmentation, field) output and a packed target (see
    `field_transform.split_target`). Called with a segmentation output alone (nnU-Net's
    validation path), it is the segmentation loss alone.
    """

    def __init__(self, segmentation_loss: nn.Module, boundary: Any, weight: float = 1.0) -> None:
        super().__init__()
        self.segmentation_loss = segmentation_loss
        self.boundary = boundary
        self.weight = weight
        self.last_boundary: torch.Tensor | None = None

    def forward(self, output: Any, target: Any) -> torch.Tensor:
        if not isinstance(output, tuple):
            return self.segmentation_loss(output, target)
        segmentation, field = output
        seg_target, field_target = split_target(target)
        boundary = self.boundary(field, field_target)
        self.last_boundary = boundary.detach()
        return self.segmentation_loss(segmentation, seg_target) + self.weight * boundary


class _SegmentationOnly(nn.Module):
    """Runs the BATseg network, keeps the field aside and returns the segmentation output."""

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network
        self.field: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> Any:
        segmentation, self.field = self.network(x)
        return segmentation


def without_dice_smoothing(loss: nn.Module) -> nn.Module:
    """nnU-Net's loss with its soft Dice's smoothing term set to 0 (its own
    `nnUNetTrainerDiceCELoss_noSmooth`, the fix its authors give for Dice collapsing to 0).

    Why: with smooth 1e-5 and per-sample Dice (batch_dice is False here), a tumour class absent
    from a patch scores Dice 1 when the network gives it almost no probability mass. Each phantom
    holds one tumour type, so three or four of the four classes are absent from every patch, and
    predicting no tumour at all outscores segmenting the one present (0.75-1.0 against about
    0.15 per patch): a 0.4.0 fine-tune fell into it at epoch 10 (train loss -0.17 -> -0.52,
    validation pseudo-Dice 0 for every class). With smooth 0 an absent class scores 0 whatever
    is predicted, so only present classes drive the Dice term; CE still penalises false tumour.
    """
    for module in loss.modules():
        if isinstance(module, MemoryEfficientSoftDiceLoss):
            module.smooth = 0.0
    return loss


def unwrap(network: nn.Module) -> nn.Module:
    """The module under DDP and torch.compile wrappers."""
    if isinstance(network, nn.parallel.DistributedDataParallel):
        network = network.module
    if isinstance(network, OptimizedModule):
        network = network._orig_mod
    return network


def repeated_identifiers(identifiers: list[str], repeats: dict[str, int]) -> list[str]:
    """The case list nnU-Net's loader draws from, each case named as often as `repeats` says (else once).

    nnU-Net's `nnUNetDataLoader` draws `np.random.choice(dataset.identifiers)`: a case listed r
    times is drawn r times as often, while its data is preprocessed and stored once."""
    return [identifier for identifier in identifiers for _ in range(int(repeats.get(identifier, 1)))]


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch in this process."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def enable_cudnn_autotuning(device: torch.device) -> None:
    """On CUDA, what nnU-Net's `run_training` sets before training: cuDNN's autotuner picks the
    fastest convolution algorithms for the fixed patch shape; non-deterministic ones allowed.
    On another device nothing changes. Used by the single-device path (`run.train_fold`) and
    by each DDP process (`ddp._worker`)."""
    if torch.device(device).type == "cuda":
        torch.backends.cudnn.deterministic = False
        torch.backends.cudnn.benchmark = True


class nnUNetTrainerBATseg(nnUNetTrainer):
    """nnU-Net's trainer + the surface-distance-field head (see the module docstring)."""

    def __init__(
        self,
        plans: dict,
        configuration: str,
        fold: int,
        dataset_json: dict,
        device: torch.device = torch.device("cuda"),
    ) -> None:
        # Set before nnU-Net's __init__, which already logs through print_to_log_file.
        self.options = TrainingOptions.from_plans(plans)
        if self.options.batch_dice is not None:
            # nnU-Net's loss reads the setting from the plan's configuration; set there (in the
            # dict nnU-Net also saves as plans.json), every trainer of the run uses it.
            plans["configurations"][configuration]["batch_dice"] = bool(self.options.batch_dice)
        seed_everything(self.options.seed)
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.num_epochs = int(self.options.epochs)
        self.num_iterations_per_epoch = int(self.options.iterations_per_epoch)
        self.num_val_iterations_per_epoch = int(self.options.val_iterations)
        self.initial_lr = float(self.options.lr)
        self.oversample_foreground_percent = float(self.options.foreground_oversampling)
        self.save_every = int(self.options.save_every)
        self.progress = Progress(self.options.progress if self.local_rank == 0 else "quiet")
        self._add_log_keys()

    # ----------------------------------------------------------------- network

    @staticmethod
    def build_network_architecture(
        plans_manager: Any,
        configuration_manager: Any,
        num_input_channels: int,
        num_output_channels: int,
        enable_deep_supervision: bool = True,
    ) -> nn.Module:
        options = TrainingOptions.from_plans(plans_manager.plans)
        unet = nnUNetTrainer.build_network_architecture(
            plans_manager, configuration_manager, num_input_channels, num_output_channels, enable_deep_supervision
        )
        if not options.has_field_head:
            return unet
        channels = boundary_channels(target_kind(options.loss), options.variant, NUM_CLASSES)
        return BATsegNet(unet, channels, head_activation(options.loss, options.field_normalisation))

    def set_deep_supervision_enabled(self, enabled: bool) -> None:
        unwrap(self.network).decoder.deep_supervision = enabled

    # ------------------------------------------------------------- transforms

    def _boundary_transform(self) -> BoundaryTargetTransform:
        return BoundaryTargetTransform(
            self.configuration_manager.spacing,
            target_kind(self.options.loss),
            self.options.variant,
            self.options.truncation,
            NUM_CLASSES,
            self.options.field_normalisation,
        )

    def _with_boundary_target(self, pipeline: Any) -> Any:
        if self.options.has_field_head:
            pipeline.transforms.append(self._boundary_transform())
        return pipeline

    def get_training_transforms(self, *args: Any, **kwargs: Any) -> Any:  # nnU-Net calls it on self
        return self._with_boundary_target(nnUNetTrainer.get_training_transforms(*args, **kwargs))

    def get_validation_transforms(self, *args: Any, **kwargs: Any) -> Any:
        return self._with_boundary_target(nnUNetTrainer.get_validation_transforms(*args, **kwargs))

    # ------------------------------------------------------------------- data

    def get_tr_and_val_datasets(self) -> tuple[Any, Any]:
        """nnU-Net's datasets, the training one drawing fine-tuning's new cases more often.

        A new list, not the one nnU-Net gives both datasets with fold "all": validation draws each case once."""
        dataset_tr, dataset_val = super().get_tr_and_val_datasets()
        if self.options.case_repeats:
            dataset_tr.identifiers = repeated_identifiers(list(dataset_tr.identifiers), self.options.case_repeats)
        return dataset_tr, dataset_val

    # ------------------------------------------------------------------- loss

    def _build_loss(self) -> nn.Module:
        loss = without_dice_smoothing(super()._build_loss())
        if not self.options.has_field_head:
            return loss
        return BoundaryAwareLoss(loss, boundary_loss(self.options.loss), self.options.boundary_weight)

    def train_step(self, batch: dict) -> dict:
        result = super().train_step(batch)
        if self.options.has_field_head:
            result["boundary_loss"] = self.loss.last_boundary.cpu().numpy()
        return result

    @contextmanager
    def _field_tap(self) -> Iterator[_SegmentationOnly]:
        full = self.network
        tap = _SegmentationOnly(full)
        self.network = tap
        try:
            yield tap
        finally:
            self.network = full

    def validation_step(self, batch: dict) -> dict:
        if not self.options.has_field_head:
            return super().validation_step(batch)
        seg_target, field_target = split_target(batch["target"])
        with self._field_tap() as tap:
            result = super().validation_step({**batch, "target": seg_target})
        boundary = self.loss.boundary(tap.field, field_target.to(self.device, non_blocking=True)).detach()
        result["loss"] = result["loss"] + self.options.boundary_weight * boundary.cpu().numpy()
        result["boundary_loss"] = boundary.cpu().numpy()
        return result

    # ---------------------------------------------------------------- logging

    def _add_log_keys(self) -> None:
        logged = self.logger.local_logger.my_fantastic_logging
        for key in BOUNDARY_LOG_KEYS:
            logged.setdefault(key, [])

    def load_checkpoint(self, filename_or_checkpoint: Any) -> None:
        super().load_checkpoint(filename_or_checkpoint)
        self._add_log_keys()  # a checkpoint of a run without the field head lacks them

    def _mean_over_ranks(self, outputs: list[dict], key: str) -> float:
        values = np.array([float(o[key]) for o in outputs]) if key in outputs[0] else np.array([np.nan])
        if self.is_ddp:
            gathered: list[Any] = [None] * dist.get_world_size()
            dist.all_gather_object(gathered, values)
            values = np.concatenate(gathered)
        return float(np.mean(values))

    def on_train_epoch_end(self, train_outputs: list[dict]) -> None:
        super().on_train_epoch_end(train_outputs)
        value = self._mean_over_ranks(train_outputs, "boundary_loss")
        self.logger.log("train_boundary_losses", value, self.current_epoch)

    def on_validation_epoch_end(self, val_outputs: list[dict]) -> None:
        super().on_validation_epoch_end(val_outputs)
        value = self._mean_over_ranks(val_outputs, "boundary_loss")
        self.logger.log("val_boundary_losses", value, self.current_epoch)

    def epoch_summary(self, epoch: int) -> dict[str, float]:
        """The logged figures of one epoch (losses, pseudo-Dice, seconds)."""
        get = self.logger.get_value
        return {
            "epoch": epoch + 1,
            "epochs": self.num_epochs,
            "train_loss": float(get("train_losses", epoch)),
            "boundary_loss": float(get("train_boundary_losses", epoch)),
            "val_loss": float(get("val_losses", epoch)),
            "val_boundary_loss": float(get("val_boundary_losses", epoch)),
            "pseudo_dice": float(get("mean_fg_dice", epoch)),
            "pseudo_dice_per_class": [float(d) for d in get("dice_per_class_or_region", epoch)],
            "seconds": float(get("epoch_end_timestamps", epoch) - get("epoch_start_timestamps", epoch)),
        }

    def on_epoch_end(self) -> None:
        epoch = self.current_epoch
        super().on_epoch_end()
        s = self.epoch_summary(epoch)
        boundary = "" if np.isnan(s["boundary_loss"]) else f", boundary loss {s['boundary_loss']:.4f}"
        if self.progress.mode == "json":  # in the terminal the log line below says the same
            self.progress.update("train", s["epoch"], s["epochs"])
        self.progress.log(
            f"epoch {s['epoch']}/{s['epochs']}: train loss {s['train_loss']:.4f}{boundary}, "
            f"val pseudo-Dice {s['pseudo_dice']:.4f}, {s['seconds']:.1f} s"
        )

    def print_to_log_file(self, *args: Any, also_print_to_console: bool = True, add_timestamp: bool = True) -> None:
        # nnU-Net's console chatter would drown BATseg's progress output: keep it in the log file.
        super().print_to_log_file(*args, also_print_to_console=False, add_timestamp=add_timestamp)

    # ------------------------------------------------------------- validation

    def perform_actual_validation(self, save_probabilities: bool = False) -> None:
        if not self.options.has_field_head:
            return super().perform_actual_validation(save_probabilities)
        full = self.network
        self.network = unwrap(full).unet  # nnU-Net's predictor expects a tensor output
        try:
            super().perform_actual_validation(save_probabilities)
        finally:
            self.network = full
