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


def _decide(device: str) -> bool:
    """The trainer's compile decision for a device, on a stand-in (no network, no GPU)."""
    stub = SimpleNamespace(device=torch.device(device), print_to_log_file=lambda *a, **k: None)
    return trainer_module.nnUNetTrainerBATseg._do_i_compile(stub)


@pytest.mark.skipif(os.name == "nt", reason="nnU-Net never compiles on Windows")
@pytest.mark.parametrize(
    "setting, on_cuda",
    [(None, True), ("1", True), ("true", True), ("false", False), ("0", False), ("f", False)],
)
def test_compile_decision_is_nnunets(setting, on_cuda, monkeypatch) -> None:
    if setting is None:
        monkeypatch.delenv("nnUNet_compile", raising=False)
    else:
        monkeypatch.setenv("nnUNet_compile", setting)
    assert _decide("cuda") is on_cuda
    assert _decide("cpu") is False  # nnU-Net never compiles on the CPU
    stock = SimpleNamespace(device=torch.device("cuda"), print_to_log_file=lambda *a, **k: None)
    assert nnUNetTrainer._do_i_compile(stock) is on_cuda


@pytest.mark.slow
def test_batseg_network_compiles_without_graph_breaks() -> None:
    """BATsegNet's forward hook (the decoder's last features for the field head) is captured by
    torch.compile in one graph; the compiled network's outputs equal eager ones and the head gets
    gradients. Backend aot_eager: the same graph capture and autograd as inductor, without its
    code generation (which needs a compiler and minutes on this CPU)."""
    from batseg.network import build_network, topology_kwargs

    torch.manual_seed(0)
    net = build_network(topology_kwargs("light"), field_channels=4, deep_supervision=True)
    x = torch.randn(2, 1, 8, 32, 32)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(net)(x)
    assert explained.graph_break_count == 0 and explained.graph_count == 1
    torch._dynamo.reset()
    compiled = torch.compile(net, backend="aot_eager")
    seg_eager, field_eager = net(x)
    seg_compiled, field_compiled = compiled(x)
    torch._dynamo.reset()
    assert all(torch.allclose(a, b, atol=1.5e-5) for a, b in zip(seg_eager, seg_compiled))
    assert torch.allclose(field_eager, field_compiled, atol=1.5e-5)
    (field_compiled.mean() + seg_compiled[0].mean()).backward()
    assert net.field_head.weight.grad is not None and net.field_head.weight.grad.abs().sum() > 0
