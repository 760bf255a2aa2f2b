"""The CUDA settings of training follow nnU-Net's, checked without a GPU (issue 18, items 1 and 2).

- cuDNN autotuning: nnU-Net's `run_training` sets `cudnn.benchmark = True` (and
  `deterministic = False`) before training; BATseg's single-device path (`run.train_fold`) and its
  DDP processes (`ddp._worker`) do the same on CUDA, and leave the flags alone on the CPU.
- torch.compile: BATseg's trainer takes nnU-Net's decision (`_do_i_compile`): on by default on
  CUDA, off on the CPU, `nnUNet_compile=false` turns it off.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("nnunetv2")

from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer  # noqa: E402

import batseg.training.initial_weights as initial_weights  # noqa: E402
import batseg.training.trainer as trainer_module  # noqa: E402
from batseg.training import run  # noqa: E402


@pytest.fixture()
def cudnn_flags():
    """Restores torch's cuDNN flags whatever the test sets."""
    saved = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic)
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    yield
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = saved


class _RecordingTrainer:
    """Stands in for nnUNetTrainerBATseg: records the cuDNN flags when training starts."""

    seen: dict = {}

    def __init__(self, plans, configuration, fold, dataset_json, device) -> None:
        self.device = device
        self.current_epoch = 0

    def run_training(self) -> None:
        type(self).seen = {"device": self.device.type, "benchmark": torch.backends.cudnn.benchmark,
                           "deterministic": torch.backends.cudnn.deterministic}


@pytest.mark.parametrize("device", ["cuda", "cpu"])
def test_single_device_training_autotunes_cudnn_on_cuda_only(device, cudnn_flags, tmp_path, monkeypatch) -> None:
    import nnunetv2.run.run_training as nnunet_run

    monkeypatch.setattr(trainer_module, "nnUNetTrainerBATseg", _RecordingTrainer)
    monkeypatch.setattr(nnunet_run, "maybe_load_checkpoint", lambda *args, **kwargs: None)
    monkeypatch.setattr(initial_weights, "start_from", lambda *args, **kwargs: False)
    monkeypatch.setattr(run, "results_folder", lambda plans: tmp_path / "results")
    _RecordingTrainer.seen = {}
    # torch.device("cuda") is only a name here: the stand-in trainer never touches a GPU.
    run.train_fold({"plans_name": "p"}, {}, "all", torch.device(device), 1, False)
    on_cuda = device == "cuda"
    assert _RecordingTrainer.seen == {"device": device, "benchmark": on_cuda, "deterministic": not on_cuda}


def test_ddp_worker_uses_the_same_setting() -> None:
    import inspect

    from batseg.training import ddp

    source = inspect.getsource(ddp._worker)
    assert "enable_cudnn_autotuning(" in source
    assert source.index("enable_cudnn_autotuning(") < source.index("trainer.run_training()")
