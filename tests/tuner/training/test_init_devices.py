"""One seed gives the same weights whatever device the model starts on: every initializer
draws on the CPU from the trial's seeded generator and copies to the model's device."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tuner.inits import applicability_error
from tuner.search import TrialParams
from tuner.spec import INITIALIZERS
from tuner.tasks import Task
from tuner.training import initialize

SEED = 20240611


class Sequence(nn.Module):
    """Embedding, LSTM and a Linear head: the recurrent and embedding initializations."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(12, 6, padding_idx=0)
        self.rnn = nn.LSTM(6, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(x))
        return self.head(out[:, -1])


def conv_net() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(64, 8),
        nn.ReLU(),
        nn.Linear(8, 3),
    )


MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[], torch.Tensor]]] = {
    "conv": (
        conv_net,
        lambda: torch.randn(16, 1, 4, 4, generator=torch.Generator().manual_seed(1)),
    ),
    "sequence": (
        Sequence,
        lambda: torch.randint(0, 12, (16, 7), generator=torch.Generator().manual_seed(1)),
    ),
}
DETERMINISTIC = {"zeros", "constant", "eye", "identity", "dirac"}  # no draws: no seed to tell apart
TASK = Task("t", "relu", None, None, "sgd", 0.9)


def _params(name: str, tmp_path: Path, build: Callable[[], nn.Module]) -> dict[str, Any]:
    if name != "pretrained":
        return {}
    # the file holds the head only: the rest takes the default init, from the seed
    donor = build()
    head = {k: v for k, v in donor.state_dict().items() if k.startswith(("head.", "5."))}
    path = tmp_path / "head.pt"
    torch.save(head, path)
    return {"path": str(path), "strict": False}


def _initialized(
    build: Callable[[], nn.Module],
    name: str,
    init_params: dict[str, Any],
    calibration: torch.Tensor,
    *,
    meta: bool,
) -> dict[str, torch.Tensor]:
    if meta:
        with torch.device("meta"):
            model = build()
        model = model.to_empty(device="cpu")
    else:
        torch.manual_seed(999)  # construction-time weights the initializer must overwrite
        model = build()
    params = TrialParams(name, name, 0.1, 0.0, 32, 1, init_params)
    initialize(model, TASK, params, SEED, calibration)
    return model.state_dict()


@pytest.mark.parametrize("model_name", sorted(MODELS))
@pytest.mark.parametrize("name", sorted(INITIALIZERS))
def test_one_seed_gives_the_same_weights_whatever_the_starting_device(
    name: str, model_name: str, tmp_path: Path
) -> None:
    build, calibration = MODELS[model_name]
    problem = applicability_error(build(), name)
    if problem is not None:  # e.g. dirac on a model without convolutions
        pytest.skip(f"{name} does not apply to the {model_name} model: {problem}")
    init_params = _params(name, tmp_path, build)
    on_cpu = _initialized(build, name, init_params, calibration(), meta=False)
    from_meta = _initialized(build, name, init_params, calibration(), meta=True)
    assert on_cpu.keys() == from_meta.keys()
    for key, value in on_cpu.items():
        assert torch.equal(value, from_meta[key]), (name, key)
    if name not in DETERMINISTIC:  # the seed is what decides: another gives others
        params = TrialParams(name, name, 0.1, 0.0, 32, 1, init_params)
        other = build()
        initialize(other, TASK, params, SEED + 1, calibration())
        assert any(
            not torch.equal(v, other.state_dict()[k])
            for k, v in on_cpu.items()
            if not k.startswith(("head.", "5.")) or name != "pretrained"
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device to compare")
@pytest.mark.parametrize("name", sorted(set(INITIALIZERS) - {"lsuv"}))
def test_a_gpu_model_gets_the_cpu_weights(name: str, tmp_path: Path) -> None:
    # lsuv is left out: its rescaling measures the model's outputs on its own device
    init_params = _params(name, tmp_path, conv_net)
    params = TrialParams(name, name, 0.1, 0.0, 32, 1, init_params)
    cpu, gpu = conv_net(), conv_net().cuda()
    initialize(cpu, TASK, params, SEED, None)
    initialize(gpu, TASK, params, SEED, None)
    for key, value in cpu.state_dict().items():
        assert torch.equal(value, gpu.state_dict()[key].cpu()), (name, key)
