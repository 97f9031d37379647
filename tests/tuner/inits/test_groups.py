"""Layer groups: which group each weight belongs to, and a group's own initializer applied."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

from tuner.errors import InitializerError
from tuner.inits import LayerRecord, apply_initializer, layer_groups, mark_group


class TextModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.rnn = nn.LSTM(16, 32, num_layers=2)
        self.head = nn.Linear(32, 4)


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3)
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = mark_group(nn.Conv2d(8, 8, 3, padding=1), "residual_last")
        self.head = nn.Linear(8, 10)


def init(model: nn.Module, name: str, groups: dict[str, Any], **params: Any) -> list[LayerRecord]:
    return apply_initializer(
        model,
        name,
        params,
        activation="tanh",
        generator=torch.Generator().manual_seed(0),
        groups={g: (n, p) for g, (n, p) in groups.items()},
    )


def test_every_weight_has_one_group() -> None:
    mlp = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    assert layer_groups(mlp) == {
        ("0", "weight"): "input",
        ("2", "weight"): "hidden",
        ("4", "weight"): "output",
    }
    assert layer_groups(TextModel()) == {
        ("embed", "weight"): "embedding",
        ("rnn", "weight_ih_l0"): "hidden",  # the embedding is the first layer the input reaches
        ("rnn", "weight_hh_l0"): "recurrent",
        ("rnn", "weight_ih_l1"): "hidden",
        ("rnn", "weight_hh_l1"): "recurrent",
        ("head", "weight"): "output",
    }
    lstm_first = nn.ModuleList([nn.LSTM(8, 16, bidirectional=True), nn.Linear(32, 2)])
    assert layer_groups(lstm_first) == {
        ("0", "weight_ih_l0"): "input",
        ("0", "weight_hh_l0"): "recurrent",
        ("0", "weight_ih_l0_reverse"): "input",
        ("0", "weight_hh_l0_reverse"): "recurrent",
        ("1", "weight"): "output",
    }
    alone = nn.Linear(4, 2)  # one layer: the output layer
    assert layer_groups(alone) == {("", "weight"): "output"}
    assert layer_groups(Residual())["conv2", "weight"] == "residual_last"


def assert_orthogonal_blocks(weight: torch.Tensor, gates: int) -> None:
    for block in weight.detach().double().chunk(gates, dim=0):
        eye = torch.eye(block.shape[1], dtype=torch.float64)
        torch.testing.assert_close(block.T @ block, eye, atol=1e-6, rtol=0)


def test_classic_lstm_recipe_orthogonal_recurrent_xavier_input() -> None:
    model = nn.Sequential()
    model.add_module("rnn", nn.LSTM(64, 128))
    model.add_module("head", nn.Linear(128, 10))
    records = init(
        model, "zeros", {"recurrent": ("orthogonal", {}), "input": ("xavier_uniform", {})}
    )
    by_param = {(r.layer, r.param): r for r in records}
    assert_orthogonal_blocks(model.rnn.weight_hh_l0, 4)  # each gate block orthogonal
    ih = model.rnn.weight_ih_l0.detach()
    limit = math.sqrt(6 / (64 + 128))  # per gate block: fan_in 64, fan_out 128
    assert ih.abs().max().item() <= limit and ih.abs().max().item() > 0.95 * limit
    assert not model.head.weight.any()  # the rest: the model-wide choice
    assert [(by_param[k].initializer, by_param[k].group) for k in sorted(by_param)] == [
        ("zeros", "output"),
        ("orthogonal", "recurrent"),
        ("xavier_uniform", "input"),
    ]


def test_group_choice_replaces_the_model_wide_one_only_there() -> None:
    model = Residual()
    before_bias = model.conv2.bias.detach().clone()
    records = init(model, "kaiming_normal", {"residual_last": ("zeros", {})})
    assert not model.conv2.weight.any()
    assert model.conv1.weight.std().item() > 0
    assert torch.equal(model.conv2.bias, torch.zeros_like(before_bias))  # the model-wide rule
    assert {r.layer: r.group for r in records} == {
        "stem": "input",
        "conv1": "hidden",
        "conv2": "residual_last",
        "head": "output",
    }


def test_groups_on_top_of_a_whole_model_initializer() -> None:
    model = TextModel()
    records = init(model, "default", {"recurrent": ("orthogonal", {"gain": "auto"})})
    assert_orthogonal_blocks(model.rnn.weight_hh_l0 / (5 / 3), 4)
    recurrent = [r for r in records if r.group == "recurrent"]
    assert {r.initializer for r in recurrent} == {"orthogonal"}
    assert {r.initializer for r in records if r.group != "recurrent"} == {"default"}


def test_same_seed_same_weights_with_groups() -> None:
    a, b = TextModel(), TextModel()
    init(a, "xavier_normal", {"recurrent": ("orthogonal", {})})
    init(b, "xavier_normal", {"recurrent": ("orthogonal", {})})
    for (name, pa), pb in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb), name


@pytest.mark.parametrize(
    ("groups", "match"),
    [
        ({"recurrent": ("orthogonal", {})}, "group 'recurrent' matches no layer"),
        ({"output": ("lsuv", {})}, "lsuv applies to the whole model"),
        ({"output": ("normal", {"std": -1.0})}, "'std' of initializer 'normal'"),
        ({"output": ("nope", {})}, "unknown initializer 'nope'"),
    ],
)
def test_bad_groups_are_refused_before_any_weight_changes(
    groups: dict[str, Any], match: str
) -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Tanh(), nn.Linear(4, 2))
    before = [p.detach().clone() for p in model.parameters()]
    with pytest.raises(InitializerError, match=match):
        init(model, "zeros", groups)
    assert all(torch.equal(p, q) for p, q in zip(model.parameters(), before, strict=True))


def test_unknown_group_tag_is_an_error() -> None:
    with pytest.raises(InitializerError, match="unknown layer group 'tail'"):
        mark_group(nn.Linear(2, 2), "tail")
    model = nn.Sequential(nn.Linear(2, 2))
    model[0].init_group = "tail"
    with pytest.raises(InitializerError, match="init_group is 'tail'"):
        layer_groups(model)
