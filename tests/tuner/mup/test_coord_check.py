"""muP's coordinate check (``mup.get_coord_data``) on the built-in MLP.

After a few steps at a fixed lr, the mean |x| of each Linear's output (per-coordinate size)
is measured at widths 64 to 1024. Under ``standard`` it grows with the width (the update
``lr * dW x`` sums over the width); under ``mup`` (base width 64) it stays flat.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tuner.search import TrialParams
from tuner.spec import BuiltinTask
from tuner.tasks import build_task
from tuner.training import TrainConfig, initialize, make_optimizer

WIDTHS = (64, 128, 256, 512, 1024)
BATCH, STEPS = 64, 4


def _coords(parametrization: str, width: int, optimizer: str, lr: float) -> list[float]:
    """Mean |output| of each Linear (two hidden, the readout) after ``STEPS`` steps."""
    base = {"base_width": WIDTHS[0]} if parametrization == "mup" else {}
    spec = BuiltinTask(
        model="mlp",
        hidden=[width, width],
        dataset="digits",
        parametrization=parametrization,  # type: ignore[arg-type]
        **base,
    )
    task = build_task(spec)
    assert task.build_model is not None and task.data is not None
    torch.manual_seed(0)
    model = task.build_model()
    params = TrialParams("kaiming_normal", "kaiming_normal", lr, 0.0, BATCH, 3)
    x, y = task.data.x_train[:BATCH], task.data.y_train[:BATCH]
    initialize(model, task, params, 0, x)
    config = TrainConfig(lr=lr, weight_decay=0.0, batch_size=BATCH, patience=3, max_epochs=1)
    opt = make_optimizer(optimizer, model.parameters(), config)
    for _ in range(STEPS):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    sizes: list[float] = []
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.register_forward_hook(lambda m, i, out: sizes.append(out.abs().mean().item()))
    with torch.no_grad():
        model(x)
    return sizes


def _slope(values: list[float]) -> float:
    """Least-squares slope of log2(value) against log2(width): 0 flat, 1 linear growth.

    Measured (torch 2.13, CPU): standard's output 0.85 (Adam) and 0.48 (SGD), its second
    hidden layer 0.43 (Adam); muP's layers between -0.03 and 0.09."""
    xs = [math.log2(w) for w in WIDTHS]
    ys = [math.log2(v) for v in values]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((a - mx) * (b - my) for a, b in zip(xs, ys, strict=True)) / sum(
        (a - mx) ** 2 for a in xs
    )


@pytest.mark.parametrize(("optimizer", "lr"), [("adam", 1e-2), ("sgd", 0.1)])
def test_activations_stay_flat_with_width_under_mup_and_grow_under_standard(
    optimizer: str, lr: float
) -> None:
    table = {p: [_coords(p, w, optimizer, lr) for w in WIDTHS] for p in ("standard", "mup")}
    layers = len(table["mup"][0])
    assert layers == 3
    # at the base width muP is the standard parametrization, to the bit
    assert table["mup"][0] == table["standard"][0]
    output = {p: [row[-1] for row in rows] for p, rows in table.items()}
    assert _slope(output["standard"]) > 0.3, output["standard"]
    assert output["standard"][-1] > 3 * output["standard"][0], output["standard"]
    for layer in range(layers):
        column = [row[layer] for row in table["mup"]]
        assert abs(_slope(column)) < 0.15, (layer, column)  # measured: 0.09 at most
        assert max(column) < 1.6 * min(column), (layer, column)
    if optimizer == "adam":  # Adam's update is lr-sized per coordinate: hidden ones grow too
        hidden = [row[1] for row in table["standard"]]
        assert _slope(hidden) > 0.3, hidden
