"""Trials in muP: the built-in loop, a task's own training function, and their manifests."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tuner.mup import MuReadout, parametrize, set_base_shapes
from tuner.search import TrialParams
from tuner.spec import BuiltinTask
from tuner.tasks import Task, TrialContext, build_task
from tuner.training import TrainConfig, TrialOutcome, execute_trial

PARAMS = TrialParams("kaiming_normal", "kaiming_normal", 3e-3, 1e-4, 64, 3)
CONFIG = TrainConfig(
    lr=3e-3, weight_decay=1e-4, batch_size=64, patience=3, max_epochs=2, optimizer="adam"
)


def _trial(**task: Any) -> TrialOutcome:
    built = build_task(BuiltinTask(model="mlp", dataset="digits", optimizer="adam", **task))
    outcome = execute_trial(
        number=0,
        params=PARAMS,
        task=built,
        data=None,
        config=CONFIG,
        study_seed=7,
        device=torch.device("cpu"),
    )
    assert outcome.state == "complete", outcome.error
    return outcome


def test_at_its_base_width_mup_trains_exactly_as_standard() -> None:
    standard = _trial(hidden=[32, 32])
    mup = _trial(hidden=[32, 32], parametrization="mup")
    assert [s.val_loss for s in mup.history] == [s.val_loss for s in standard.history]
    assert mup.value == standard.value
    assert "parametrization" not in standard.manifest
    assert mup.manifest["parametrization"]["multiplier"] == 1.0


def test_a_wider_mup_trial_records_its_parametrization_and_rescaled_readout() -> None:
    standard = _trial(hidden=[128, 128])
    mup = _trial(hidden=[128, 128], parametrization="mup", base_width=32)
    entry = mup.manifest["parametrization"]
    assert {k: entry[k] for k in ("name", "width", "base_width", "multiplier")} == {
        "name": "mup",
        "width": 128,
        "base_width": 32,
        "multiplier": 4.0,
    }
    rows = {row["param"]: row for row in entry["params"]}
    assert (rows["5.weight"]["role"], rows["5.weight"]["init_factor"]) == ("readout", 2.0)
    assert (rows["3.weight"]["role"], rows["3.weight"]["lr_factor"]) == ("matrix", 0.25)
    assert rows["3.weight"]["weight_decay_factor"] == 4.0
    assert rows["1.weight"]["lr_factor"] == 1.0  # Adam: input weights keep the lr
    # the same seed draws the same weights; muP multiplies the readout's by sqrt(m) = 2
    std = {layer["layer"]: layer["std"] for layer in standard.manifest["layers"]}
    mup_std = {layer["layer"]: layer["std"] for layer in mup.manifest["layers"]}
    assert math.isclose(mup_std["5"], 2 * std["5"], rel_tol=1e-9)
    assert mup_std["3"] == std["3"] and mup_std["1"] == std["1"]
    assert mup.manifest["train"] == standard.manifest["train"]  # the lr is the searched one


def _net(width: int, device: str = "cpu") -> nn.Sequential:
    with torch.device(device):
        return nn.Sequential(nn.Linear(64, width), nn.ReLU(), MuReadout(width, 10))


def _own_training(ctx: TrialContext) -> None:
    """A task's own loop in muP: base shapes from a meta base model, then the context."""
    generator = torch.Generator().manual_seed(ctx.data_seed)
    x, y = torch.randn(128, 64, generator=generator), torch.randint(0, 10, (128,))
    if ctx.params["how"] == "parametrize":
        model = parametrize(_net, ctx.params["width"], base_width=16)
    else:
        model = _net(ctx.params["width"])
        set_base_shapes(model, _net(16, "meta"), delta=_net(32, "meta"))
    ctx.init(model, calibration=(x[:64], y[:64]))
    optimizer = ctx.optimizer(model.parameters())
    lrs = sorted({group["lr"] for group in optimizer.param_groups})
    for epoch in range(1, ctx.max_epochs + 1):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        if ctx.report(epoch, val_loss=loss.item(), lr_groups=float(len(lrs))):
            return


@pytest.mark.parametrize("how", ["parametrize", "set_base_shapes"])
def test_a_training_function_gets_mup_through_the_context(how: str) -> None:
    extra = {"width": 64, "how": how}
    params = TrialParams("kaiming_normal", "kaiming_normal", 0.1, 0.0, 32, 2, extra=extra)
    task = Task("own", "relu", None, None, "sgd", 0.9, train=_own_training)
    config = TrainConfig(lr=0.1, weight_decay=0.0, batch_size=32, patience=5, max_epochs=2)
    config = TrainConfig(**{**config.__dict__, "metric": "val_loss", "direction": "minimize"})
    outcome = execute_trial(
        number=0,
        params=params,
        task=task,
        data=None,
        config=config,
        study_seed=0,
        device=torch.device("cpu"),
    )
    assert outcome.state == "complete", outcome.error
    assert outcome.history[0].metrics["lr_groups"] == 2.0  # MuSGD: lr * m and lr
    rows = {row["param"]: row for row in outcome.manifest["parametrization"]["params"]}
    assert rows["2.weight"]["role"] == "readout"
    assert (rows["2.weight"]["lr_factor"], rows["0.weight"]["lr_factor"]) == (4.0, 4.0)
    assert (rows["2.bias"]["lr_factor"], rows["2.weight"]["init_factor"]) == (1.0, 2.0)
