"""muP's rules: base shapes, the readout, the rescaling and the per-group lrs.

Checked against the formulas of Tensor Programs V as ``mup/optim.py`` and ``mup/layer.py``
write them, and, where the ``mup`` package is installed (``pip install --no-deps mup``),
against the package itself on the same model.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from tuner.errors import TaskError
from tuner.mup import (
    MuReadout,
    describe,
    param_groups,
    rescale_factors,
    set_base_shapes,
    set_width_multiplier,
    shape_of,
)

IN, CLASSES, BASE = 10, 3, 32


def _mlp(width: int, head: type[nn.Linear] = MuReadout, device: str = "cpu") -> nn.Sequential:
    with torch.device(device):
        return nn.Sequential(
            nn.Linear(IN, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), head(width, 3)
        )


def _shaped(width: int) -> nn.Sequential:
    return set_base_shapes(
        _mlp(width), _mlp(BASE, device="meta"), delta=_mlp(2 * BASE, device="meta")
    )


def _by_name(model: nn.Module, groups: list[dict[str, Any]]) -> dict[str, tuple[float, float]]:
    names = {id(p): n for n, p in model.named_parameters()}
    return {names[id(p)]: (g["lr"], g["weight_decay"]) for g in groups for p in g["params"]}


def test_shapes_mark_the_widths_against_the_base() -> None:
    model = _shaped(128)
    hidden, first, head = (shape_of(model[i].weight) for i in (2, 0, 4))
    assert hidden is not None and first is not None and head is not None
    assert (hidden.role, hidden.multiplier) == ("matrix", 4.0)
    assert [d.base for d in hidden.dims] == [32.0, 32.0]
    assert (first.role, first.fan_out_multiplier, first.fan_in_multiplier) == ("vector", 4.0, 1.0)
    assert (head.role, head.multiplier) == ("vector", 4.0)  # readout: fan_in is the width
    bias = shape_of(model[4].bias)
    assert bias is not None and bias.role == "fixed"
    assert model[4].width_mult == 4.0


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_adam_divides_the_lr_of_hidden_weights_by_m(optimizer: str) -> None:
    model, lr, wd, m = _shaped(128), 1e-3, 1e-4, 4.0
    groups = param_groups(model.parameters(), optimizer, lr, wd)
    assert groups is not None
    got = _by_name(model, groups)
    assert got.pop("2.weight") == (lr / m, wd * m)  # matrix-like: lr/m, lambda*m
    assert set(got.values()) == {(lr, wd)}  # input weight, biases, readout: unchanged
    assert len(got) == 5


def test_sgd_scales_vector_like_up_and_matrix_like_by_the_fan_ratio() -> None:
    model, lr, wd, m = _shaped(128), 0.1, 1e-4, 4.0
    groups = param_groups(model.parameters(), "sgd", lr, wd)
    assert groups is not None
    got = _by_name(model, groups)
    for vector_like in ("0.weight", "0.bias", "2.bias", "4.weight"):
        assert got[vector_like] == (lr * m, wd / m)
    assert got["2.weight"] == (lr / 1.0, wd * 1.0)  # fan_in and fan_out grew alike
    assert got["4.bias"] == (lr, wd)  # no width dimension


def test_sgd_matrix_lr_follows_fan_in_over_fan_out() -> None:
    wide_in = nn.Sequential(nn.Linear(IN, 128), nn.ReLU(), nn.Linear(128, 64), MuReadout(64, 3))

    def shapes(a: int, b: int) -> dict[str, list[int]]:
        return {"0.weight": [a, IN], "0.bias": [a], "2.weight": [b, a], "2.bias": [b]} | {
            "3.weight": [3, b],
            "3.bias": [3],
        }

    set_base_shapes(wide_in, shapes(32, 32), delta=shapes(64, 64))
    groups = param_groups(wide_in.parameters(), "sgd", 0.1, 0.0)
    assert groups is not None
    ratio = (128 / 32) / (64 / 32)  # fan_in multiplier / fan_out multiplier
    assert _by_name(wide_in, groups)["2.weight"][0] == 0.1 / ratio


def test_readout_multiplies_its_input_by_one_over_m_and_rescale_follows_mup() -> None:
    torch.manual_seed(0)
    plain = _mlp(128)
    state = {k: v.clone() for k, v in plain.state_dict().items()}
    model = _shaped(128)  # rescales on the way: the same weights loaded first
    model.load_state_dict(state)
    factors = rescale_factors(model)
    root_m = math.sqrt(4.0)
    assert factors == {"2.bias": root_m, "4.bias": root_m, "4.weight": root_m}  # not the input
    x = torch.randn(5, 128)
    head = model[4]
    expected = nn.functional.linear(x / 4.0, head.weight, head.bias)
    assert torch.equal(head(x), expected)


def test_a_plain_linear_readout_is_refused_by_name() -> None:
    with pytest.raises(TaskError, match=r"layer '4' maps a width \(128\) to a fixed size"):
        set_base_shapes(_mlp(128, nn.Linear), _mlp(BASE, nn.Linear, "meta"))


def test_a_model_partly_in_mup_is_refused() -> None:
    model = _shaped(128)
    stray = nn.Parameter(torch.zeros(2))
    with pytest.raises(TaskError, match="has no base shape while others have"):
        param_groups([*model.parameters(), stray], "adam", 1e-3, 0.0)
    assert param_groups(_mlp(128).parameters(), "adam", 1e-3, 0.0) is None  # standard


def test_base_shapes_that_do_not_fit_name_the_parameter() -> None:
    other = nn.Sequential(nn.Linear(IN, 32), nn.ReLU(), MuReadout(32, 3))
    with pytest.raises(TaskError, match=r"the base model lacks parameter '4\.bias'"):
        set_base_shapes(_mlp(128), other)


def test_width_multiplier_gives_the_same_shapes_as_a_base_model() -> None:
    by_base = _shaped(128)
    by_multiplier = set_width_multiplier(_mlp(128), _mlp(256, device="meta"), 128 / BASE)
    for (name, a), b in zip(by_base.named_parameters(), by_multiplier.parameters(), strict=True):
        assert shape_of(a) == shape_of(b), name


def test_describe_records_roles_and_factors() -> None:
    rows = {r["param"]: r for r in describe(_shaped(128), "adam")}
    assert rows["4.weight"]["role"] == "readout" and rows["4.weight"]["init_factor"] == 2.0
    assert (rows["2.weight"]["role"], rows["2.weight"]["lr_factor"]) == ("matrix", 0.25)
    assert rows["2.weight"]["base_shape"] == [32.0, 32.0]
    assert rows["0.weight"]["base_shape"] == [32.0, None]


# --- the mup package itself -------------------------------------------------------------------


def _mup_pair(width: int) -> tuple[nn.Module, nn.Module]:
    """The same MLP, initialized alike, put in muP by the mup package and by tuner.mup."""
    mup = pytest.importorskip("mup")

    def theirs(w: int, device: str = "cpu") -> nn.Sequential:
        with torch.device(device):
            return nn.Sequential(
                nn.Linear(IN, w), nn.ReLU(), nn.Linear(w, w), nn.ReLU(), mup.MuReadout(w, 3)
            )

    torch.manual_seed(0)
    reference = theirs(width)
    ours = _mlp(width)
    ours.load_state_dict(reference.state_dict())
    mup.set_base_shapes(reference, theirs(BASE, "meta"), delta=theirs(2 * BASE, "meta"))
    set_base_shapes(ours, _mlp(BASE, device="meta"), delta=_mlp(2 * BASE, device="meta"))
    return reference, ours


@pytest.mark.parametrize("width", [32, 128, 512])
def test_rescaled_weights_and_outputs_match_the_mup_package(width: int) -> None:
    reference, ours = _mup_pair(width)
    for (name, a), b in zip(reference.named_parameters(), ours.parameters(), strict=True):
        assert torch.equal(a, b), name
    x = torch.randn(7, IN)
    assert torch.equal(reference(x), ours(x))


@pytest.mark.parametrize("optimizer", ["adam", "adamw", "sgd"])
@pytest.mark.parametrize("width", [32, 128, 512])
def test_param_groups_match_mup_optimizers(optimizer: str, width: int) -> None:
    mup = pytest.importorskip("mup")
    reference, ours = _mup_pair(width)
    make = {"adam": mup.MuAdam, "adamw": mup.MuAdamW, "sgd": mup.MuSGD}[optimizer]
    lr, wd = 0.05, 1e-3
    expected = make(reference.parameters(), lr=lr, weight_decay=wd).param_groups
    groups = param_groups(ours.parameters(), optimizer, lr, wd)
    assert groups is not None
    theirs = [(g["lr"], g["weight_decay"], len(g["params"])) for g in expected if g["params"]]
    assert [(g["lr"], g["weight_decay"], len(g["params"])) for g in groups] == theirs
    names_ref = {id(p): n for n, p in reference.named_parameters()}
    names_ours = {id(p): n for n, p in ours.named_parameters()}
    assert [sorted(names_ref[id(p)] for p in g["params"]) for g in expected if g["params"]] == [
        sorted(names_ours[id(p)] for p in g["params"]) for g in groups
    ]
