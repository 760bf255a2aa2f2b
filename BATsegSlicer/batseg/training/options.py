"""The options of one training run, carried inside nnU-Net's plans dict.

nnU-Net instantiates a trainer with `(plans, configuration, fold, dataset_json, device)` only,
records exactly those arguments in its checkpoints (`my_init_kwargs`, read from the
signature of `__init__`), and re-creates trainers from them in DDP child processes. Extra
constructor arguments would break all three, so BATseg's options travel as one JSON-able
entry of the plans dict (`plans["batseg_training"]`). As a bonus the `plans.json` nnU-Net
copies into the results folder records the run's options, which `batseg package` reads.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from batseg.errors import BATsegError

PLANS_KEY = "batseg_training"
NO_BOUNDARY_LOSS = "none"


@dataclass
class TrainingOptions:
    """Everything the trainer needs beyond nnU-Net's plans (defaults: the paper's)."""

    loss: str = "cubic"  # a name in batseg.losses.BOUNDARY_LOSSES, or "none" = plain nnU-Net
    variant: str = "classwise"  # batseg.targets.FIELD_VARIANTS
    # Field truncation t (the paper's 1), or None: no truncation (Table 5's first row, which also
    # needs field_normalisation False: see targets.check_field_settings).
    truncation: float | None = 1.0
    # False: the field is the signed distance in mm (Table 5's "w/o normalization"), on a linear head.
    field_normalisation: bool = True
    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations: int = 50
    batch_size: int | None = None  # None: the plan's
    patch_size: list[int] | None = None  # None: the plan's
    lr: float = 1e-2
    # Share of each batch sampled around foreground (nnU-Net's default 0.33). Spinal tumours
    # fill ~0.1% of a sagittal volume: on short budgets (CPU) nnU-Net's default collapses to
    # all-background before the first lesion is learnt, so short runs raise it.
    foreground_oversampling: float = 0.33
    # Soft Dice over the whole batch (True) or per sample (False); None keeps the plan's choice.
    # nnU-Net's planner chooses batch Dice for 3d_fullres only when it also plans a low-resolution
    # stage (volumes much larger than the patch), per sample otherwise, as for our sagittal
    # volumes. Per-sample Dice scores each patch on its own (small) lesion; batch Dice pools the
    # lesions of the batch, a smoother signal when lesions are small and patches few.
    batch_dice: bool | None = None
    seed: int = 12345
    topology: str = "light"
    progress: str = "bar"
    boundary_weight: float = 1.0  # the paper's equal weights
    save_every: int = 10  # epochs between "latest" checkpoints (nnU-Net: 50; CPU runs need more often)
    command: list[str] = field(default_factory=list)
    # Fine-tuning: how often a case is drawn relative to the others (the new cases among replayed
    # ones, `datasets.merge_for_finetuning`); a case not named is drawn once.
    case_repeats: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """One-line BATsegError for an impossible combination of options."""
        from batseg.losses import BOUNDARY_LOSSES, target_kind
        from batseg.targets import FIELD_VARIANTS

        if self.loss != NO_BOUNDARY_LOSS and self.loss not in BOUNDARY_LOSSES:
            raise BATsegError(f"unknown --loss {self.loss!r}; choose one of {', '.join(BOUNDARY_LOSSES)}, none")
        if self.variant not in FIELD_VARIANTS:
            raise BATsegError(f"unknown --variant {self.variant!r}; choose one of {', '.join(FIELD_VARIANTS)}")
        if self.loss != NO_BOUNDARY_LOSS and target_kind(self.loss) == "sing" and self.variant != "classwise":
            raise BATsegError(f"--loss {self.loss} uses SiNGR's class-wise target; use --variant classwise")
        self._validate_field_settings()
        for name in ("epochs", "iterations_per_epoch", "val_iterations", "save_every"):
            if int(getattr(self, name)) < 1:
                raise BATsegError(f"--{name.replace('_', '-')} must be at least 1")
        if self.batch_size is not None and self.batch_size < 1:
            raise BATsegError("--batch-size must be at least 1")
        if not 0.0 <= self.foreground_oversampling <= 1.0:
            raise BATsegError(f"--foreground-oversampling must be in [0, 1]; got {self.foreground_oversampling}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise BATsegError(f"the learning rate must be positive; got {self.lr}")
        if any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in self.case_repeats.values()):
            raise BATsegError(f"case repeats must be whole numbers of at least 1; got {self.case_repeats}")

    def _validate_field_settings(self) -> None:
        """Truncation and normalisation: valid values, and a loss whose target they describe."""
        from batseg.losses import target_kind
        from batseg.targets import check_field_settings

        try:
            check_field_settings(self.truncation, self.field_normalisation)
        except BATsegError as exc:
            raise BATsegError(f"--truncation / --field-normalisation: {exc}") from None
        if not self.has_field_head or (self.truncation is not None and self.field_normalisation):
            return
        if target_kind(self.loss) == "sing":
            raise BATsegError(f"--loss {self.loss} uses SiNGR's own target; --truncation none and "
                              "--no-field-normalisation apply to BATseg's field")
        if self.loss == "bce" and not self.field_normalisation:
            raise BATsegError("--loss bce needs a target in [0, 1]; it cannot train an unnormalised field")

    @property
    def has_field_head(self) -> bool:
        return self.loss != NO_BOUNDARY_LOSS

    @property
    def run_tag(self) -> str:
        """Short name of the loss setting, used in nnU-Net's results folder name."""
        if not self.has_field_head:
            return "baseline"
        truncation = "none" if self.truncation is None else f"{self.truncation:g}"
        normalisation = "" if self.field_normalisation else "-unnormalised"
        return f"{self.loss}-{self.variant}-t{truncation}{normalisation}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TrainingOptions":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @classmethod
    def from_plans(cls, plans: dict[str, Any]) -> "TrainingOptions":
        """The options stored in a plans dict (defaults if the plans are nnU-Net's own)."""
        return cls.from_dict(plans.get(PLANS_KEY, {}))

    def into_plans(self, plans: dict[str, Any]) -> dict[str, Any]:
        """`plans` with these options stored (the dict is modified and returned)."""
        plans[PLANS_KEY] = self.to_dict()
        return plans
