"""Every initializer name against its reference, on every layer of a model.

Torch spellings against the ``torch.nn.init`` function of that name, called with its defaults
on a tensor of the same shape; Keras spellings against Keras 3's formulas, written out here
(``keras/src/initializers/random_initializers.py``). Compared: the std (within 5%), the shape
of the distribution (excess kurtosis: uniform -1.2, normal 0, normal cut at 2 std -0.64) and
the bounds.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

from tuner.inits import apply_initializer
from tuner.spec import ACTIVATIONS, INITIALIZERS, LIBRARY

TRUNC_STD = 0.87962566103423978  # Keras: std of N(0, 1) cut at +-2
# Excess kurtosis of N(0, 1) cut at +-2: E[x^4] = 3 - 28 phi(2) / (Phi(2) - Phi(-2)) over Var^2.
_PHI2, _MASS = math.exp(-2.0) / math.sqrt(2 * math.pi), math.erf(2 / math.sqrt(2))
TRUNC_KURTOSIS = (3 - 28 * _PHI2 / _MASS) / TRUNC_STD**4 - 3  # -0.6346
SHAPES = [(384, 768), (256, 384)]  # (out, in) of a hidden layer, then of the output layer
ACT = {"relu": nn.ReLU, "leaky_relu": nn.LeakyReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
ACT |= {"gelu": nn.GELU, "selu": nn.SELU}


def model(activation: str) -> nn.Sequential:
    (h, n_in), (out, _) = SHAPES
    return nn.Sequential(nn.Linear(n_in, h), ACT[activation](), nn.Linear(h, out))


def ours(name: str, activation: str, **params: object) -> list[torch.Tensor]:
    net = model(activation)
    apply_initializer(
        net, name, params, activation=activation, generator=torch.Generator().manual_seed(7)
    )
    return [net[0].weight.detach(), net[2].weight.detach()]


def kurtosis(t: torch.Tensor) -> float:
    x = t.double().flatten()
    x = x - x.mean()
    return float((x**4).mean() / (x**2).mean() ** 2 - 3.0)


def same_distribution(got: torch.Tensor, ref: torch.Tensor) -> None:
    assert got.shape == ref.shape
    assert got.std().item() == pytest.approx(ref.std().item(), rel=0.05)
    assert got.mean().item() == pytest.approx(ref.mean().item(), abs=0.05 * ref.std().item())
    assert kurtosis(got) == pytest.approx(kurtosis(ref), abs=0.1)
    # the bounds: the extreme 0.1% tails (a normal's max is itself random), and where the
    # reference is bounded (uniform, truncated), its bounds
    q = torch.tensor([0.001, 0.999], dtype=torch.float64)
    got_q, ref_q = got.double().flatten().quantile(q), ref.double().flatten().quantile(q)
    torch.testing.assert_close(got_q, ref_q, atol=0.05 * ref.std().item(), rtol=0.05)
    if kurtosis(ref) < -0.5:  # bounded: uniform, or a normal cut short
        span = (ref.max() - ref.min()).item()
        assert got.min().item() == pytest.approx(ref.min().item(), abs=0.01 * span)
        assert got.max().item() == pytest.approx(ref.max().item(), abs=0.01 * span)


# torch.nn.init, called as a user would: its defaults, the nonlinearity of the activation.
TorchRef = Callable[[torch.Tensor, str], object]
NONLINEARITY = {"gelu": "relu"}  # calculate_gain knows no GELU; ReLU's gain is used


def _kaiming(fill: Callable[..., object]) -> TorchRef:
    def ref(t: torch.Tensor, act: str) -> object:
        a = 0.01 if act == "leaky_relu" else 0.0
        return fill(t, a=a, mode="fan_in", nonlinearity=NONLINEARITY.get(act, act))

    return ref


TORCH_REFERENCES: dict[str, TorchRef] = {
    "uniform": lambda t, _: nn.init.uniform_(t),
    "normal": lambda t, _: nn.init.normal_(t),
    "trunc_normal": lambda t, _: nn.init.trunc_normal_(t),
    "xavier_uniform": lambda t, _: nn.init.xavier_uniform_(t),
    "xavier_normal": lambda t, _: nn.init.xavier_normal_(t),
    "kaiming_uniform": _kaiming(nn.init.kaiming_uniform_),
    "kaiming_normal": _kaiming(nn.init.kaiming_normal_),
    "orthogonal": lambda t, _: nn.init.orthogonal_(t),
}


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("name", sorted(TORCH_REFERENCES))
def test_torch_name_is_the_torch_function(name: str, activation: str) -> None:
    got = ours(name, activation)
    for weight, shape in zip(got, SHAPES, strict=True):  # the output layer included
        reference = torch.empty(shape)
        TORCH_REFERENCES[name](reference, activation)
        same_distribution(weight, reference)


def test_torch_functions_without_randomness_match_exactly() -> None:
    for name, fill in (("zeros", nn.init.zeros_), ("eye", nn.init.eye_)):
        for weight, shape in zip(ours(name, "relu"), SHAPES, strict=True):
            assert torch.equal(weight, fill(torch.empty(shape)))
    for weight in ours("constant", "relu", val=0.25):
        assert torch.all(weight == 0.25)


def test_orthogonal_is_orthogonal_with_gain_one_everywhere() -> None:
    for weight in ours("orthogonal", "tanh"):
        gram = weight.double() @ weight.double().T
        torch.testing.assert_close(
            gram, torch.eye(weight.shape[0], dtype=torch.float64), atol=1e-4, rtol=0
        )


# Keras 3, written out: VarianceScaling(scale, mode, distribution) and the named ones.
def keras_std(fan_in: int, fan_out: int, scale: float, mode: str) -> float:
    fan = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[mode]
    return math.sqrt(scale / max(1.0, fan))


KERAS_SCALING = {
    "glorot_uniform": (1.0, "fan_avg", "uniform"),
    "glorot_normal": (1.0, "fan_avg", "truncated_normal"),
    "he_uniform": (2.0, "fan_in", "uniform"),
    "he_normal": (2.0, "fan_in", "truncated_normal"),
    "lecun_uniform": (1.0, "fan_in", "uniform"),
    "lecun_normal": (1.0, "fan_in", "truncated_normal"),
}


@pytest.mark.parametrize("activation", ["relu", "tanh", "selu"])
@pytest.mark.parametrize("name", sorted(KERAS_SCALING))
def test_keras_name_follows_keras(name: str, activation: str) -> None:
    scale, mode, distribution = KERAS_SCALING[name]
    for weight, (fan_out, fan_in) in zip(ours(name, activation), SHAPES, strict=True):
        std = keras_std(fan_in, fan_out, scale, mode)  # the std the draws end up with
        assert weight.std().item() == pytest.approx(std, rel=0.05)
        if distribution == "uniform":  # limit = sqrt(3 * scale / fan)
            limit = math.sqrt(3.0) * std
            assert kurtosis(weight) == pytest.approx(-1.2, abs=0.1)
        else:  # stddev = sqrt(scale / fan) / .8796..., values beyond 2 stddev redrawn
            limit = 2 * std / TRUNC_STD
            assert kurtosis(weight) == pytest.approx(TRUNC_KURTOSIS, abs=0.1)
        assert weight.abs().max().item() <= limit * (1 + 1e-6)
        assert weight.abs().max().item() >= 0.97 * limit


def test_keras_random_initializers_use_keras_defaults() -> None:
    for weight in ours("random_uniform", "relu"):  # minval -0.05, maxval 0.05
        assert weight.min().item() >= -0.05 and weight.max().item() <= 0.05
        assert weight.std().item() == pytest.approx(0.1 / math.sqrt(12), rel=0.05)
    for weight in ours("random_normal", "relu"):  # stddev 0.05
        assert weight.std().item() == pytest.approx(0.05, rel=0.05)
        assert kurtosis(weight) == pytest.approx(0.0, abs=0.1)
    for weight in ours("truncated_normal", "relu"):  # stddev 0.05, cut at 2 stddev, no correction
        assert weight.abs().max().item() <= 0.1 * (1 + 1e-6)
        assert weight.std().item() == pytest.approx(0.05 * TRUNC_STD, rel=0.05)


def test_keras_identity_and_orthogonal_have_gain_one() -> None:
    hidden, output = ours("identity", "tanh")
    assert torch.equal(hidden, torch.eye(*SHAPES[0])) and torch.equal(output, torch.eye(*SHAPES[1]))


def test_every_name_has_a_reference_test() -> None:
    covered = {*TORCH_REFERENCES, *KERAS_SCALING, "zeros", "eye", "constant", "orthogonal"}
    covered |= {"random_uniform", "random_normal", "truncated_normal", "identity"}
    # tested in test_initializers.py: formulas, torch's own reset, files, data-driven rescaling
    covered |= {"default", "dirac", "sparse", "variance_scaling", "lsuv", "pretrained"}
    assert covered == set(INITIALIZERS)
    assert {n for n, lib in LIBRARY.items() if lib == "keras"} >= set(KERAS_SCALING)
