"""Signal propagation at t=0: the Jacobian's spectrum and the mean field, measured on models."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn

import storage
from tuner.inits import apply_initializer
from tuner.spec import parse_spec
from tuner.studies import run_study
from tuner.tasks import cnn, mlp
from tuner.training import JACOBIAN_SAMPLES, measure_signal
from tuner.training._signal import JACOBIAN_MAX_OUTPUTS

GAUSSIAN = {"scale": 1.0, "mode": "fan_in", "distribution": "untruncated_normal"}


def _initialized(model: nn.Module, name: str, params: dict[str, Any], seed: int = 0) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    apply_initializer(model, name, params, activation="tanh", generator=generator)
    return model


def _inputs(rows: int, *shape: int, scale: float = 1.0) -> torch.Tensor:
    return scale * torch.randn(rows, *shape, generator=torch.Generator().manual_seed(1))


def test_orthogonal_weights_are_near_isometric_at_criticality_gaussian_ones_are_not() -> None:
    """Pennington, Schoenholz & Ganguli (2017): a deep tanh net at criticality (sigma_w^2 = 1,
    no bias) with orthogonal weights keeps every singular value of its Jacobian near 1; Gaussian
    weights of the same variance spread them out, more so with depth. Inputs of variance 0.01
    keep the pre-activations small (q* = 0 is approached from there)."""
    width, depth = 128, 30
    x = _inputs(64, width, scale=0.1)
    spread = {}
    for name, params in (("orthogonal", {"gain": 1.0}), ("variance_scaling", GAUSSIAN)):
        model = _initialized(mlp((width,), width, [width] * (depth - 1), "tanh"), name, params)
        signal = measure_signal(model, x)
        assert signal.jacobian_samples == JACOBIAN_SAMPLES and signal.jacobian_skipped is None
        assert signal.sigma_w2 == pytest.approx(1.0, rel=0.05) and signal.depth == depth
        assert signal.warning is None  # critical: xi_c is (near) infinite
        spread[name] = signal.jacobian_spread
    # measured (seed 0): orthogonal 0.018, Gaussian 37.5
    assert spread["orthogonal"] < 0.05 and spread["variance_scaling"] > 10
    assert spread["variance_scaling"] > 100 * spread["orthogonal"]


@pytest.mark.parametrize(("outputs", "inputs"), [(5, 12), (12, 5)])
def test_jacobian_figures_are_those_of_the_singular_values(outputs: int, inputs: int) -> None:
    """A Linear layer's Jacobian is its weight, for every sample: m_JJT and the spread are the
    mean and normalized variance of the weight's squared singular values."""
    layer = nn.Linear(inputs, outputs)
    with torch.no_grad():
        layer.weight.copy_(torch.randn(outputs, inputs, generator=torch.Generator().manual_seed(2)))
    s2 = torch.linalg.svdvals(layer.weight.detach().double()) ** 2
    signal = measure_signal(layer, _inputs(8, inputs), max_samples=4)
    assert signal.jacobian_samples == 4
    assert signal.jacobian_mean_sq == pytest.approx(float(s2.mean()), rel=1e-5)
    var = float(s2.var(correction=0))
    assert signal.jacobian_spread == pytest.approx(var / float(s2.mean()) ** 2, rel=1e-4)
    assert "no tanh or sigmoid" in (signal.mean_field_skipped or "")


def test_measuring_changes_nothing() -> None:
    model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Dropout(0.5), nn.Linear(32, 4))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    first = measure_signal(model, _inputs(40, 16))
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)  # eval mode: dropout drew nothing
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert measure_signal(model, _inputs(40, 16)) == first


class _BatchCentered(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=0, keepdim=True)


def test_every_model_is_measured_or_skipped_with_its_reason() -> None:
    images = _inputs(16, 1, 8, 8)
    conv = measure_signal(
        _initialized(cnn((1, 8, 8), 10, [4, 8], 3, "relu"), "kaiming_normal", {}), images
    )
    assert conv.jacobian_samples == 16 and conv.jacobian_spread is not None
    assert conv.chi_1 is None and "Conv2d" in (conv.mean_field_skipped or "")

    lstm = nn.LSTM(6, 8, batch_first=True)  # 5 steps x 8 units out: 40 outputs per sample
    recurrent = measure_signal(lstm, _inputs(8, 5, 6))
    assert recurrent.jacobian_mean_sq is not None and recurrent.jacobian_mean_sq > 0
    assert "LSTM" in (recurrent.mean_field_skipped or "")

    relu = measure_signal(mlp((16,), 4, [32, 32], "relu"), _inputs(8, 16))
    assert relu.jacobian_spread is not None and "ReLU" in (relu.mean_field_skipped or "")

    coupled = measure_signal(nn.Sequential(nn.Linear(6, 6), _BatchCentered()), _inputs(8, 6))
    assert coupled.jacobian_mean_sq is None
    assert "depends on the rest of the batch" in (coupled.jacobian_skipped or "")

    wide = measure_signal(nn.Linear(4, JACOBIAN_MAX_OUTPUTS + 1), _inputs(8, 4))
    assert wide.jacobian_mean_sq is None and "outputs per sample" in (wide.jacobian_skipped or "")

    tokens = measure_signal(
        nn.Sequential(nn.Embedding(20, 4), nn.Flatten()), torch.ones(8, 3).long()
    )
    assert "not continuous" in (tokens.jacobian_skipped or "")

    nothing = measure_signal(mlp((16,), 4, [32], "tanh"), None)
    assert nothing.jacobian_skipped == "no calibration batch" and nothing.chi_1 is not None


def test_mean_field_is_measured_on_the_hidden_layers() -> None:
    """variance_scaling(scale s, fan_in, untruncated normal) has Var(W) = s / fan_in exactly:
    the measured sigma_w^2 is s (up to sampling), sigma_b^2 0 (zeroed biases)."""
    for scale, warned in ((0.5, True), (1.0, False), (1.5, False)):
        params = {**GAUSSIAN, "scale": scale}
        model = _initialized(mlp((64,), 10, [64] * 19, "tanh"), "variance_scaling", params)
        signal = measure_signal(model, _inputs(32, 64))
        assert signal.depth == 20 and signal.sigma_b2 == 0.0
        assert signal.sigma_w2 == pytest.approx(scale, rel=0.03)
        assert signal.xi_c is not None and signal.chi_1 is not None
        assert (signal.warning is not None) is warned
        if warned:  # ordered, q* = 0: xi_c = -1 / ln(sigma_w^2) = 1.44, 6 xi_c = 8.7 < 20
            assert signal.warning.startswith("signal cannot cross the network: depth 20 > 6 xi_c")
            assert signal.xi_c == pytest.approx(-1 / math.log(signal.sigma_w2), rel=1e-9)
    sigmoid = _initialized(mlp((8,), 2, [16, 16], "sigmoid"), "xavier_normal", {"gain": 1.0})
    assert measure_signal(sigmoid, _inputs(4, 8)).q_star is not None


def _grid_spec(depth: int) -> Any:
    return parse_spec(
        {
            "name": f"critical-{depth}",
            "task": {
                "model": "mlp",
                "hidden": [64] * (depth - 1),
                "activation": "tanh",
                "dataset": "digits",
            },
            "search": {
                "initializer": [
                    {"name": "variance_scaling", **GAUSSIAN, "scale": s} for s in (0.5, 1.0)
                ],
                "lr": 0.01,
                "weight_decay": 0.0,
                "batch_size": 64,
                "patience": 5,
            },
            "budget": {"n_trials": 2, "max_epochs": 5},
            "sampler": "grid",
            "pruner": "none",
            "seed": 0,
        }
    )


def test_the_depth_scale_predicts_which_deep_tanh_nets_train(tmp_path: Any) -> None:
    """Schoenholz et al. (2017): a tanh net deeper than 6 xi_c does not train. sigma_w^2 0.5
    (xi_c 1.44) at depth 40 is warned and stays at chance (0.1) on digits; the critical
    sigma_w^2 1 at depth 40, and both at depth 5, are not warned and train (measured, 5
    epochs of SGD: 0.09 warned; 0.72, 0.92, 0.97 trained). The stored signal is the one
    judged: each trial's, written with its results row."""
    url = f"sqlite:///{tmp_path / 'grid.db'}"
    cells: dict[tuple[float, int], tuple[storage.TrialSignalData, float | None]] = {}
    for depth in (5, 40):
        spec = _grid_spec(depth)
        run_study(spec, database_url=url, device="cpu")
        db = storage.Database(url)
        try:
            with db.session() as session:
                signals = storage.signal_by_trial(session, spec.name)
                for row in storage.list_trial_results(session, spec.name):
                    scale = row.params_json["init_params"]["scale"]
                    cells[(scale, depth)] = (signals[row.trial_number], row.value)
        finally:
            db.dispose()
    assert len(cells) == 4
    for (scale, depth), (signal, value) in cells.items():
        assert signal.depth == depth and signal.sigma_w2 == pytest.approx(scale, rel=0.05)
        assert value is not None
        if (scale, depth) == (0.5, 40):
            assert signal.warning is not None and "cannot cross" in signal.warning
            assert value < 0.2  # chance: 10 classes
        else:
            assert signal.warning is None, signal.warning
            assert value > 0.5
