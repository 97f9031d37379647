"""Each initializer against its formula, plus the registry, gains, layer coverage and errors."""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from tuner.errors import InitializerError, TunerError
from tuner.inits import LayerRecord, activation_gain, applicability_error, apply_initializer
from tuner.spec import ACTIVATIONS, INITIALIZERS, LIBRARY, ParamInfo, canonical_name

SEED = 1234
TRUNC_STD = 0.87962566103423978  # std of N(0, 1) cut at +-2
DESIGN_NAMES = {
    "default",
    "zeros",
    "constant",
    "uniform",
    "normal",
    "trunc_normal",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "lecun_uniform",
    "lecun_normal",
    "variance_scaling",
    "orthogonal",
    "sparse",
    "eye",
    "dirac",
    "lsuv",
    "pretrained",
    # Keras spellings, each with Keras 3's semantics
    "glorot_uniform",
    "glorot_normal",
    "he_uniform",
    "he_normal",
    "identity",
    "random_uniform",
    "random_normal",
    "truncated_normal",
}


def gen(seed: int = SEED) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def init(
    model: nn.Module,
    name: str,
    activation: str = "relu",
    seed: int = SEED,
    calibration: torch.Tensor | None = None,
    **params: Any,
) -> list[LayerRecord]:
    return apply_initializer(
        model, name, params, activation=activation, generator=gen(seed), calibration=calibration
    )


def mlp(*sizes: int, act: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def big() -> nn.Sequential:
    """First layer: weight (512, 1024), fan_in 1024, fan_out 512; it is not the output layer."""
    return mlp(1024, 512, 64)


def first_weight(model: nn.Sequential) -> torch.Tensor:
    weight = model[0].weight.detach()
    assert isinstance(weight, torch.Tensor)
    return weight


def cnn() -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 10)
    )


# --- registry ------------------------------------------------------------------------------


def test_registry_has_every_design_name() -> None:
    assert set(INITIALIZERS) == DESIGN_NAMES
    for name, info in INITIALIZERS.items():
        assert info.name == name and info.summary and "\n" not in info.summary
        assert info.needs == {"eye": "linear", "identity": "linear", "dirac": "conv"}.get(
            name, "any"
        )
    assert INITIALIZERS["pretrained"].params["path"].required
    assert not INITIALIZERS["xavier_uniform"].params["gain"].required
    assert INITIALIZERS["xavier_uniform"].params["gain"].default == 1.0
    assert LIBRARY["glorot_normal"] == "keras" and LIBRARY["xavier_normal"] == "torch"
    assert set(LIBRARY) == set(INITIALIZERS)


@pytest.mark.parametrize(
    ("spelled", "name"),
    [("Glorot_Uniform", "glorot_uniform"), ("He_Normal", "he_normal"), ("IDENTITY", "identity")],
)
def test_names_are_case_insensitive_and_keras_names_are_their_own(spelled: str, name: str) -> None:
    assert canonical_name(spelled) == name


def test_keras_he_normal_is_not_torch_kaiming_normal() -> None:
    """Keras draws from a truncated normal; torch from a plain one. Same std, other shape."""
    a, b = big(), big()
    records = init(a, "he_normal", activation="tanh")  # Keras: scale 2 whatever the activation
    init(b, "kaiming_normal", activation="relu")
    assert records[0].initializer == "he_normal"
    assert first_weight(a).std().item() == pytest.approx(first_weight(b).std().item(), rel=0.03)
    assert first_weight(a).abs().max() < first_weight(b).abs().max()


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(InitializerError, match="unknown initializer 'glorot'") as info:
        canonical_name("glorot")
    assert isinstance(info.value, TunerError)
    for name in ("xavier_uniform", "lsuv", "pretrained", "glorot_uniform"):
        assert name in str(info.value)
    with pytest.raises(InitializerError, match="kaiming_normal"):
        init(big(), "he")


def test_param_info_check_sentences() -> None:
    std = INITIALIZERS["normal"].params["std"]
    assert std.check(-1.0) == "must be > 0, got -1.0"
    assert std.check(0) == "must be > 0, got 0"
    assert std.check(0.5) is None
    assert std.check("x") is not None and std.check(True) is not None
    assert std.check(float("nan")) is not None
    assert INITIALIZERS["sparse"].params["sparsity"].check(1.5) == "must be <= 1, got 1.5"
    assert INITIALIZERS["lsuv"].params["max_iter"].check(2.5) == "must be an integer, got 2.5"
    assert INITIALIZERS["lsuv"].params["max_iter"].check(0) == "must be >= 1, got 0"
    mode = INITIALIZERS["variance_scaling"].params["mode"]
    assert mode.check("fan_avg") is None
    assert mode.check("avg") == "must be one of fan_in, fan_out, fan_avg, got 'avg'"
    assert ParamInfo("bool", True).check("yes") is not None
    gain = INITIALIZERS["xavier_normal"].params["gain"]
    assert gain.check("auto") is None and gain.check(None) is not None
    assert INITIALIZERS["normal"].params["mean"].check("auto") == "must be a number, got 'auto'"
    assert INITIALIZERS["pretrained"].params["path"].check(None) == "is required"


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("normal", {"std": -1.0}, "'std' of initializer 'normal' must be > 0, got -1.0"),
        ("trunc_normal", {"std": 0.0}, "'std'"),
        ("normal", {"stdev": 0.1}, "no parameter 'stdev'.*mean, std"),
        ("xavier_uniform", {"gain": "big"}, "'gain'.*a number or 'auto'"),
        ("trunc_normal", {"a": 1.0, "b": -1.0}, "'b'.*greater than a"),
        ("trunc_normal", {"mean": 9.0}, "'mean'.*within 2 std"),
        ("random_uniform", {"minval": 1.0, "maxval": 0.0}, "'maxval'.*greater than minval"),
        ("kaiming_normal", {"mode": "fan_avg"}, "'mode'.*fan_in, fan_out"),
        ("uniform", {"a": 0.1, "b": -0.1}, "'b'.*greater than a"),
        ("sparse", {"sparsity": -0.1}, "'sparsity'"),
        ("pretrained", {}, "'path'.*required"),
        ("eye", {"gain": 2.0}, "no parameter 'gain'"),
    ],
)
def test_bad_params_name_the_parameter(name: str, params: dict[str, Any], match: str) -> None:
    with pytest.raises(InitializerError, match=match):
        init(big(), name, **params)


def test_unknown_activation_is_an_error() -> None:
    with pytest.raises(InitializerError, match=r"unknown activation 'swish'.*selu"):
        init(big(), "xavier_normal", activation="swish", gain="auto")
    with pytest.raises(InitializerError, match="activation"):
        init(big(), "kaiming_uniform", activation="swish")
    # initializers that derive nothing from the activation do not care about it
    assert init(big(), "xavier_normal", activation="swish")[0].params == {"gain": 1.0}
    assert init(big(), "normal", activation="swish")[0].initializer == "normal"


# --- formulas ------------------------------------------------------------------------------

FAN_IN, FAN_OUT, RELU = 1024, 512, math.sqrt(2.0)
Case = tuple[str, dict[str, Any], float, float | None]  # name, params, std, bound on |w|
FORMULAS: list[Case] = [
    ("uniform", {"a": -0.05, "b": 0.05}, 0.1 / math.sqrt(12), 0.05),
    ("normal", {}, 1.0, None),  # torch's defaults: N(0, 1)
    ("normal", {"std": 0.2}, 0.2, None),
    ("trunc_normal", {}, TRUNC_STD, 2.0),  # torch's defaults: N(0, 1) in [-2, 2]
    ("trunc_normal", {"std": 0.1, "a": -0.2, "b": 0.2}, 0.1 * TRUNC_STD, 0.2),
    ("xavier_uniform", {}, math.sqrt(2 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    ("xavier_normal", {}, math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    ("xavier_normal", {"gain": "auto"}, RELU * math.sqrt(2 / (FAN_IN + FAN_OUT)), None),
    ("kaiming_uniform", {}, RELU / math.sqrt(FAN_IN), RELU * math.sqrt(3 / FAN_IN)),
    ("kaiming_uniform", {"mode": "fan_out"}, RELU / math.sqrt(FAN_OUT), None),
    ("kaiming_normal", {}, RELU / math.sqrt(FAN_IN), None),
    ("kaiming_normal", {"mode": "fan_out"}, RELU / math.sqrt(FAN_OUT), None),
    ("lecun_uniform", {}, math.sqrt(1 / FAN_IN), math.sqrt(3 / FAN_IN)),
    ("lecun_normal", {}, math.sqrt(1 / FAN_IN), 2 * math.sqrt(1 / FAN_IN) / TRUNC_STD),
    ("he_uniform", {}, math.sqrt(2 / FAN_IN), math.sqrt(6 / FAN_IN)),
    ("he_normal", {}, math.sqrt(2 / FAN_IN), 2 * math.sqrt(2 / FAN_IN) / TRUNC_STD),
    ("glorot_uniform", {}, math.sqrt(2 / (FAN_IN + FAN_OUT)), math.sqrt(6 / (FAN_IN + FAN_OUT))),
    (
        "glorot_normal",
        {},
        math.sqrt(2 / (FAN_IN + FAN_OUT)),
        2 * math.sqrt(2 / (FAN_IN + FAN_OUT)) / TRUNC_STD,
    ),
    ("random_uniform", {}, 0.1 / math.sqrt(12), 0.05),
    ("random_normal", {}, 0.05, None),
    ("truncated_normal", {}, 0.05 * TRUNC_STD, 0.1),
    ("orthogonal", {}, 1 / math.sqrt(FAN_IN), None),  # rows orthonormal: ||row|| = gain
    ("orthogonal", {"gain": "auto"}, RELU / math.sqrt(FAN_IN), None),
]
for _mode, _fan in (("fan_in", FAN_IN), ("fan_out", FAN_OUT), ("fan_avg", (FAN_IN + FAN_OUT) / 2)):
    _std = math.sqrt(2.0 / _fan)  # scale 2 (He) so the scale is visibly applied
    FORMULAS += [
        (
            "variance_scaling",
            {"scale": 2.0, "mode": _mode, "distribution": "truncated_normal"},
            _std,
            2 * _std / TRUNC_STD,
        ),
        (
            "variance_scaling",
            {"scale": 2.0, "mode": _mode, "distribution": "untruncated_normal"},
            _std,
            None,
        ),
        (
            "variance_scaling",
            {"scale": 2.0, "mode": _mode, "distribution": "uniform"},
            _std,
            math.sqrt(3) * _std,
        ),
    ]


@pytest.mark.parametrize(
    ("name", "params", "std", "bound"), FORMULAS, ids=[f"{c[0]}-{c[1]}" for c in FORMULAS]
)
def test_initializer_matches_its_formula(
    name: str, params: dict[str, Any], std: float, bound: float | None
) -> None:
    model = big()
    records = init(model, name, **params)
    weight = first_weight(model)
    assert weight.std().item() == pytest.approx(std, rel=0.02)
    assert abs(weight.mean().item()) < 0.02 * std
    if bound is not None:
        assert weight.abs().max().item() <= bound * (1 + 1e-6)
        assert weight.abs().max().item() >= 0.9 * bound  # the bound is reached, not undershot
    assert records[0].std == pytest.approx(weight.std().item(), rel=1e-3)
    assert (records[0].fan_in, records[0].fan_out) == (FAN_IN, FAN_OUT)


def test_uniform_and_normal_use_their_location() -> None:
    model = big()
    init(model, "uniform", a=-0.2, b=0.6)
    weight = first_weight(model)
    assert weight.min().item() >= -0.2 and weight.max().item() <= 0.6
    assert weight.mean().item() == pytest.approx(0.2, abs=0.005)
    assert weight.std().item() == pytest.approx(0.8 / math.sqrt(12), rel=0.02)
    init(model, "trunc_normal", mean=0.5, std=0.1, a=0.45, b=0.7)  # torch's a, b: absolute
    weight = first_weight(model)
    assert weight.min().item() >= 0.45 and weight.max().item() <= 0.7
    assert weight.min().item() < 0.46 and weight.max().item() > 0.69


def test_constant_and_zeros() -> None:
    model = big()
    init(model, "constant", val=0.3)
    assert torch.all(first_weight(model) == 0.3)
    assert torch.all(model[2].weight == 0.3)
    init(model, "zeros")
    assert not first_weight(model).any() and not model[2].weight.any()


def test_default_is_pytorch_init_and_reproducible() -> None:
    model = nn.Linear(FAN_IN, FAN_OUT)
    rng_before = torch.get_rng_state()
    records = init(model, "default")
    assert torch.equal(torch.get_rng_state(), rng_before)  # the global RNG was forked
    # PyTorch: kaiming_uniform(a=sqrt(5)) -> U(+-1/sqrt(fan_in)), std 1/sqrt(3 fan_in)
    assert model.weight.std().item() == pytest.approx(1 / math.sqrt(3 * FAN_IN), rel=0.02)
    assert model.weight.abs().max().item() <= 1 / math.sqrt(FAN_IN)
    assert model.bias.abs().max().item() > 0  # biases keep PyTorch's init
    assert records[0].initializer == "default"
    again, other = nn.Linear(FAN_IN, FAN_OUT), nn.Linear(FAN_IN, FAN_OUT)
    init(again, "default")
    init(other, "default", seed=SEED + 1)
    assert torch.equal(again.weight, model.weight) and torch.equal(again.bias, model.bias)
    assert not torch.equal(other.weight, model.weight)


@pytest.mark.parametrize(
    "name",
    sorted(
        DESIGN_NAMES - {"default", "zeros", "constant", "eye", "identity", "dirac", "pretrained"}
    ),
)
def test_same_seed_same_weights(name: str) -> None:
    calibration = torch.randn(64, 1024, generator=gen(0))
    a, b, c = big(), big(), big()
    init(a, name, calibration=calibration)
    init(b, name, calibration=calibration)
    init(c, name, seed=SEED + 1, calibration=calibration)
    assert torch.equal(first_weight(a), first_weight(b))
    assert not torch.equal(first_weight(a), first_weight(c))


# --- gains ---------------------------------------------------------------------------------


def test_activation_gain_values() -> None:
    assert activation_gain("relu") == pytest.approx(math.sqrt(2))
    assert activation_gain("gelu") == pytest.approx(math.sqrt(2))
    assert activation_gain("tanh") == pytest.approx(5 / 3)
    assert activation_gain("sigmoid") == 1.0
    assert activation_gain("selu") == pytest.approx(0.75)
    assert activation_gain("linear") == 1.0
    assert activation_gain("leaky_relu") == pytest.approx(math.sqrt(2 / (1 + 0.01**2)))
    assert set(ACTIVATIONS) == {"relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu"}
    with pytest.raises(InitializerError):
        activation_gain("swish")


def test_gain_auto_is_derived_from_activation_and_output_layer_is_linear() -> None:
    tanh, sigmoid = mlp(1024, 512, 512, act=nn.Tanh), mlp(1024, 512, 512, act=nn.Sigmoid)
    tanh_records = init(tanh, "xavier_normal", activation="tanh", gain="auto")
    init(sigmoid, "xavier_normal", activation="sigmoid", gain="auto")
    ratio = first_weight(tanh).std() / first_weight(sigmoid).std()
    assert ratio.item() == pytest.approx(5 / 3, rel=0.02)
    assert tanh_records[0].params == {"gain": pytest.approx(5 / 3), "gain_rule": "auto"}
    # the output layer gets the linear gain whatever the activation
    assert tanh_records[-1].params["gain"] == 1.0
    assert tanh[2].weight.std().item() == pytest.approx(math.sqrt(2 / 1024), rel=0.02)
    assert tanh[2].weight.std().item() == pytest.approx(sigmoid[2].weight.std().item(), rel=0.02)


def test_kaiming_nonlinearity_follows_activation() -> None:
    model = mlp(1024, 512, 512, act=nn.Tanh)
    records = init(model, "kaiming_normal", activation="tanh")
    assert first_weight(model).std().item() == pytest.approx(5 / 3 / math.sqrt(1024), rel=0.02)
    # as torch.nn.init: the same nonlinearity on every layer, the output layer included
    assert [r.params["nonlinearity"] for r in records] == ["tanh", "tanh"]
    assert model[2].weight.std().item() == pytest.approx(5 / 3 / math.sqrt(512), rel=0.02)
    leaky = init(big(), "kaiming_uniform", activation="leaky_relu")[0]
    assert (leaky.params["nonlinearity"], leaky.params["a"]) == ("leaky_relu", 0.01)
    gelu = init(big(), "kaiming_uniform", activation="gelu")[0]
    assert gelu.params["gain"] == pytest.approx(math.sqrt(2))
    model = big()
    explicit = init(model, "kaiming_uniform", a=math.sqrt(5))[0]  # torch's leaky default
    assert explicit.params["nonlinearity"] == "leaky_relu"
    assert first_weight(model).std().item() == pytest.approx(1 / math.sqrt(3 * 1024), rel=0.02)


def test_user_gain_overrides_everywhere() -> None:
    model = mlp(1024, 512, 512, act=nn.Tanh)
    records = init(model, "xavier_uniform", activation="tanh", gain=0.5)
    assert [r.params["gain"] for r in records] == [0.5, 0.5]
    expected = 0.5 * math.sqrt(2 / (1024 + 512))
    assert first_weight(model).std().item() == pytest.approx(expected, rel=0.02)
    assert model[2].weight.std().item() == pytest.approx(0.5 * math.sqrt(2 / 1024), rel=0.02)


# --- orthogonal, sparse, identity family ---------------------------------------------------


def assert_orthogonal(block: torch.Tensor, gain: float) -> None:
    rows, cols = block.shape[0], block[0].numel()
    matrix = block.reshape(rows, cols).double()
    gram = matrix @ matrix.T if rows <= cols else matrix.T @ matrix
    eye = torch.eye(min(rows, cols), dtype=torch.float64)
    torch.testing.assert_close(gram, gain**2 * eye, atol=1e-4, rtol=0)


def test_orthogonal_wide_and_tall() -> None:
    model = mlp(1024, 256, 512, 10, act=nn.Tanh)  # wide (256, 1024), tall (512, 256)
    plain = init(model, "orthogonal", activation="tanh")
    for index in (0, 2, 4):
        assert_orthogonal(model[index].weight.detach(), 1.0)  # torch's default gain 1
    assert [r.params["gain"] for r in plain] == [1.0, 1.0, 1.0]
    records = init(model, "orthogonal", activation="tanh", gain="auto")
    assert_orthogonal(model[0].weight.detach(), 5 / 3)
    assert_orthogonal(model[2].weight.detach(), 5 / 3)
    assert_orthogonal(model[4].weight.detach(), 1.0)
    assert [r.params["gain"] for r in records] == pytest.approx([5 / 3, 5 / 3, 1.0])


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.9])
def test_sparse_zeros_per_column(sparsity: float) -> None:
    model = big()
    init(model, "sparse", sparsity=sparsity, std=0.05)
    weight = first_weight(model)
    n_zeros = math.ceil(sparsity * weight.shape[0])
    assert torch.all((weight == 0).sum(dim=0) == n_zeros)
    assert (weight == 0).any(dim=1).sum() > n_zeros  # each column picks its own rows
    assert weight[weight != 0].std().item() == pytest.approx(0.05, rel=0.03)


def test_sparse_conv_is_flattened_and_reproducible() -> None:
    a, b = cnn(), cnn()
    init(a, "sparse", sparsity=0.5)
    init(b, "sparse", sparsity=0.5)
    weight = a[0].weight.detach().reshape(8, -1)  # (8, 27)
    assert torch.all((weight == 0).sum(dim=0) == 4)
    assert torch.equal(a[0].weight, b[0].weight)  # the zero pattern comes from the generator


def test_eye_is_identity() -> None:
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 128))
    records = init(model, "eye")
    assert torch.equal(model[0].weight, torch.eye(64))
    assert torch.equal(model[2].weight, torch.eye(128, 64))
    x = torch.rand(5, 64)
    torch.testing.assert_close(model(x)[:, :64], x)
    assert {r.initializer for r in records} == {"eye"}


def test_dirac_is_identity_convolution() -> None:
    model = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.Conv1d(4, 6, 5), nn.Conv3d(2, 2, 3))
    init(model, "dirac")
    x = torch.randn(2, 8, 10, 10)
    torch.testing.assert_close(model[0](x), x)
    x1 = torch.randn(2, 4, 12)
    out = model[1](x1)
    torch.testing.assert_close(out[:, :4], x1[:, :, 2:-2])  # center crop, matching channels
    assert not out[:, 4:].any()
    x3 = torch.randn(1, 2, 5, 5, 5)
    torch.testing.assert_close(model[2](x3), x3[:, :, 1:-1, 1:-1, 1:-1])


@pytest.mark.parametrize(
    ("name", "two_d"), [("eye", "eye"), ("identity", "identity"), ("dirac", "eye")]
)
def test_identity_family_falls_back_per_layer(name: str, two_d: str) -> None:
    model = cnn()
    records = init(model, name)
    assert [(r.layer, r.initializer) for r in records] == [("0", "dirac"), ("3", two_d)]
    x = torch.randn(2, 3, 4, 4)
    torch.testing.assert_close(model[0](x)[:, :3], x)
    assert torch.equal(model[3].weight, torch.eye(10, 128))


def test_keras_identity_takes_a_gain() -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8))
    records = init(model, "identity", activation="tanh", gain=0.5)
    assert torch.equal(model[0].weight, 0.5 * torch.eye(8))
    auto = init(model, "identity", activation="tanh", gain="auto")
    assert torch.allclose(model[0].weight, 5 / 3 * torch.eye(8))
    assert torch.equal(model[2].weight, torch.eye(8))  # the output layer: linear gain
    assert [r.params["gain"] for r in records] == [0.5, 0.5]
    assert auto[0].params["gain_rule"] == "auto"


# --- applicability -------------------------------------------------------------------------


def test_applicability_errors() -> None:
    message = applicability_error(mlp(4, 4), "dirac")
    assert message is not None and "dirac" in message and "convolutional" in message
    with pytest.raises(InitializerError, match="convolutional"):
        init(mlp(4, 4), "dirac")
    conv_only = nn.Sequential(nn.Conv2d(3, 3, 3))
    message = applicability_error(conv_only, "identity")
    assert message is not None and "2-D weight" in message
    message = applicability_error(nn.Sequential(nn.BatchNorm1d(4), nn.ReLU()), "xavier_normal")
    assert message is not None and "none" in message
    assert applicability_error(cnn(), "dirac") is None
    assert applicability_error(cnn(), "eye") is None
    assert applicability_error(nn.LSTM(4, 4), "eye") is None
    assert applicability_error(mlp(4, 4), "glorot_normal") is None
    assert "unknown initializer" in (applicability_error(mlp(4, 4), "nope") or "")


# --- layer coverage ------------------------------------------------------------------------


@pytest.mark.parametrize(("cls", "gates"), [(nn.RNN, 1), (nn.LSTM, 4), (nn.GRU, 3)])
def test_recurrent_weights_are_orthogonal_per_gate(cls: type[nn.RNNBase], gates: int) -> None:
    rnn = cls(32, 64, num_layers=2, bidirectional=True)
    records = init(rnn, "orthogonal")
    names = {r.param for r in records}
    assert names == {
        f"weight_{kind}_l{layer}{suffix}"
        for kind in ("ih", "hh")
        for layer in (0, 1)
        for suffix in ("", "_reverse")
    }
    for record in records:
        weight = getattr(rnn, record.param).detach()
        assert weight.shape[0] == gates * 64
        for block in weight.chunk(gates, dim=0):  # tall (64, 32), wide (64, 128), square
            assert_orthogonal(block, 1.0)  # the RNN is the only, hence output, layer
        assert record.fan_out == 64
        assert record.fan_in == (
            32
            if record.param.startswith("weight_ih_l0")
            else 128
            if record.param.startswith("weight_ih")
            else 64
        )
    for name, param in rnn.named_parameters():
        if name.startswith("bias"):
            assert not param.any()


def test_lstm_under_eye_is_irnn_per_gate() -> None:
    lstm = nn.LSTM(16, 16)
    init(lstm, "eye")
    for block in lstm.weight_hh_l0.detach().chunk(4, dim=0):
        assert torch.equal(block, torch.eye(16))


def test_embedding_is_covered() -> None:
    model = nn.Sequential(nn.Embedding(1000, 64, padding_idx=0), nn.Linear(64, 10))
    records = init(model, "normal", std=0.05)
    assert (records[0].layer, records[0].kind) == ("0", "Embedding")
    weight = model[0].weight.detach()
    assert not weight[0].any()  # the padding row stays zero, as in PyTorch
    assert weight[1:].std().item() == pytest.approx(0.05, rel=0.03)


def test_conv1d_and_conv3d_are_covered() -> None:
    model = nn.Sequential(nn.Conv1d(64, 128, 5), nn.Conv3d(16, 32, 3), nn.Linear(8, 8))
    records = init(model, "kaiming_normal")
    assert [(r.kind, r.fan_in, r.fan_out) for r in records] == [
        ("Conv1d", 64 * 5, 128 * 5),
        ("Conv3d", 16 * 27, 32 * 27),
        ("Linear", 8, 8),
    ]
    assert model[0].weight.std().item() == pytest.approx(math.sqrt(2 / 320), rel=0.05)
    assert model[1].weight.std().item() == pytest.approx(math.sqrt(2 / 432), rel=0.05)


def test_biases_are_zeroed_and_other_modules_untouched() -> None:
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 4), nn.GRU(4, 4)
    )
    with torch.no_grad():
        model[1].weight.fill_(2.0)
    biases = [model[0].bias, model[3].bias, model[4].bias_ih_l0, model[4].bias_hh_l0]
    assert all(b.abs().sum() > 0 for b in biases)
    init(model, "xavier_uniform")
    assert all(not b.any() for b in biases)
    assert torch.all(model[1].weight == 2.0)  # BatchNorm keeps its own parameters


def test_lazy_layers_are_refused_before_anything_changes() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.LazyLinear(2))
    before = model[0].weight.detach().clone()
    with pytest.raises(InitializerError, match="lazy"):
        init(model, "zeros")
    assert torch.equal(model[0].weight, before)


def test_records_are_json_able() -> None:
    model = cnn()
    records = init(model, "kaiming_uniform")
    payload = json.loads(json.dumps([dataclasses.asdict(r) for r in records]))
    assert payload[0]["layer"] == "0" and payload[0]["kind"] == "Conv2d"
    assert payload[0]["param"] == "weight" and payload[0]["fan_in"] == 27
    assert payload[1]["params"]["nonlinearity"] == "relu"  # the output layer too, as torch


# --- LSUV ----------------------------------------------------------------------------------


def output_variances(model: nn.Module, x: torch.Tensor) -> list[float]:
    variances: list[float] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: variances.append(out.var().item()))
        for m in model.modules()
        if isinstance(m, nn.Linear | nn.Conv2d)
    ]
    with torch.no_grad():
        model(x)
    for hook in hooks:
        hook.remove()
    return variances


@pytest.mark.parametrize(("act", "activation"), [(nn.Tanh, "tanh"), (nn.ReLU, "relu")])
def test_lsuv_gives_unit_output_variance(act: type[nn.Module], activation: str) -> None:
    model = mlp(64, *[128] * 7, 10, act=act)  # 8 Linear layers
    model.train()
    model[1].eval()  # a submodule in a different mode must keep it
    calibration = 3.0 * torch.randn(256, 64, generator=gen(7))
    before = output_variances(model, calibration)
    records = init(model, "lsuv", activation=activation, calibration=calibration, tol=0.05)
    variances = output_variances(model, calibration)
    assert len(variances) == 8
    assert all(abs(v - 1.0) < 0.05 for v in variances), variances
    assert not all(abs(v - 1.0) < 0.05 for v in before)
    assert {r.initializer for r in records} == {"lsuv"}
    assert any(r.params["iterations"] > 0 for r in records)
    assert model.training and not model[1].training and model[2].training


def test_lsuv_on_a_cnn_in_eval_mode() -> None:
    model = cnn().eval()
    calibration = torch.rand(32, 3, 4, 4, generator=gen(3))
    records = init(model, "lsuv", calibration=calibration)
    assert all(abs(v - 1.0) < 0.1 for v in output_variances(model, calibration))
    assert not model.training and not model[0].training
    assert [r.initializer for r in records] == ["lsuv", "lsuv"]


def test_lsuv_leaves_recurrent_layers_orthogonal() -> None:
    model = nn.ModuleDict({"rnn": nn.GRU(8, 8), "head": nn.Linear(8, 2)})
    calibration = torch.randn(4, 8)
    with pytest.raises(InitializerError, match="forward"):  # ModuleDict has no forward
        init(model, "lsuv", calibration=calibration)
    seq = nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 2))
    records = init(seq, "lsuv", calibration=torch.randint(0, 20, (16, 5), generator=gen()))
    assert [r.initializer for r in records] == ["orthogonal", "lsuv"]


def test_lsuv_needs_calibration() -> None:
    with pytest.raises(InitializerError, match="calibration"):
        init(big(), "lsuv")


# --- pretrained ----------------------------------------------------------------------------


def test_pretrained_round_trips_a_state_dict(tmp_path: Path) -> None:
    source = cnn()
    init(source, "xavier_normal")
    with torch.no_grad():
        source[0].bias.fill_(0.5)
    path = tmp_path / "weights.pt"
    torch.save(source.state_dict(), path)
    target = cnn()
    records = init(target, "pretrained", path=str(path))
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key
    assert [r.initializer for r in records] == ["pretrained", "pretrained"]
    assert records[0].params == {"path": str(path), "strict": True}


def test_pretrained_non_strict_fills_the_rest_by_default(tmp_path: Path) -> None:
    source = cnn()
    path = tmp_path / "partial.pt"
    torch.save({k: v for k, v in source.state_dict().items() if k.startswith("0.")}, path)
    with pytest.raises(InitializerError, match="does not fit"):
        init(cnn(), "pretrained", path=path)
    target = cnn()
    records = init(target, "pretrained", path=path, strict=False)
    assert [r.initializer for r in records] == ["pretrained", "default"]
    assert torch.equal(target[0].weight, source[0].weight)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda p: p / "missing.pt", "no such file"),
        (lambda p: (p / "junk.pt").write_text("not a checkpoint") and p / "junk.pt", "cannot load"),
    ],
)
def test_pretrained_bad_files(tmp_path: Path, make: Callable[[Path], Path], match: str) -> None:
    with pytest.raises(InitializerError, match=match):
        init(cnn(), "pretrained", path=str(make(tmp_path)))


def test_pretrained_shape_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save(mlp(4, 3).state_dict(), path)
    with pytest.raises(InitializerError, match="does not fit"):
        init(mlp(4, 5), "pretrained", path=path, strict=False)
