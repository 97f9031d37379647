"""Diagnostics at t=0: theory shows in the stored figures; measuring changes nothing."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import storage
from tuner.inits import apply_initializer
from tuner.spec import parse_spec
from tuner.studies import run_study
from tuner.tasks import mlp
from tuner.training import diagnose, signal_problems, trial_seeds

DEPTH = 20


def _stored(url: str, name: str) -> dict[str, list[storage.LayerDiagnosticsData]]:
    db = storage.Database(url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, name, order_by="trial_number")
            return {
                r.initializer: storage.get_layer_diagnostics(session, name, r.trial_number)
                for r in rows
            }
    finally:
        db.dispose()


def test_deep_relu_mlp_xavier_halves_the_variance_kaiming_keeps_it(database_url: str) -> None:
    """Glorot's 1/fan_avg variance halves a ReLU net's signal per layer; He's 2/fan_in keeps it."""
    spec = parse_spec(
        {
            "name": "deep-relu",
            "task": {"model": "mlp", "hidden": [64] * DEPTH, "dataset": "digits"},
            "search": {
                # gain 1 is Glorot's original; left out, the gain would follow the activation.
                "initializer": [{"name": "xavier_normal", "gain": 1.0}, "kaiming_normal"],
                "lr": 0.01,
                "weight_decay": 0.0,
                "batch_size": 256,
                "patience": 1,
            },
            "budget": {"n_trials": 2, "max_epochs": 1},
            "sampler": "grid",
            "pruner": "none",
        }
    )
    run_study(spec, database_url=database_url, device="cpu")
    stored = _stored(database_url, "deep-relu")
    assert set(stored) == {"xavier_normal", "kaiming_normal"}
    for layers in stored.values():
        assert [d.index for d in layers] == list(range(DEPTH + 1))  # every Linear, in order
        assert all(d.dead_frac is not None for d in layers[:-1])
    xavier, kaiming = stored["xavier_normal"], stored["kaiming_normal"]
    assert xavier[-1].act_std < 0.01 * xavier[0].act_std
    assert 0.5 * kaiming[0].act_std <= kaiming[-1].act_std <= 2 * kaiming[0].act_std


def _deep(activation: str, init: str, params: dict[str, Any] | None = None) -> torch.nn.Module:
    model = mlp((32,), 10, [64] * DEPTH, activation)
    apply_initializer(
        model,
        init,
        params or {},
        activation=activation,
        generator=torch.Generator().manual_seed(0),
    )
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(256, 32, generator=g), torch.randint(0, 10, (256,), generator=g)


def test_measuring_changes_nothing() -> None:
    model = _deep("relu", "kaiming_normal")
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    diagnose(model, *_batch(), activation="relu")
    assert model.training
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_xavier_loses_signal_under_relu_unless_its_gain_is_derived() -> None:
    layers = diagnose(
        _deep("relu", "xavier_normal", {"gain": "auto"}), *_batch(), activation="relu"
    )
    last_hidden = layers[-2]
    assert 0.5 < last_hidden.act_std / layers[0].act_std < 2
    assert signal_problems(layers) == []
    # torch's xavier_normal_ (gain 1) halves the variance at every ReLU: Glorot's scaling
    # loses the signal with depth where He's keeps it
    plain = diagnose(_deep("relu", "xavier_normal"), *_batch(), activation="relu")
    assert plain[-2].act_std / plain[0].act_std < 0.5 ** ((DEPTH - 1) / 2) * 2
    assert any(p.startswith("vanishing signal") for p in signal_problems(plain))


def test_problems_are_named() -> None:
    tiny = diagnose(_deep("relu", "normal", {"std": 1e-3}), *_batch(), activation="relu")
    assert any(p.startswith("vanishing signal") for p in signal_problems(tiny))
    huge = diagnose(_deep("relu", "normal", {"std": 1.0}), *_batch(), activation="relu")
    assert any(p.startswith("exploding signal") for p in signal_problems(huge))
    tanh = diagnose(_deep("tanh", "normal", {"std": 1.0}), *_batch(), activation="tanh")
    assert tanh[3].saturated_frac is not None and tanh[3].saturated_frac > 0.5
    assert tanh[3].dead_frac is None
    assert any("saturated" in p for p in signal_problems(tanh))


def test_replicates_are_kept_and_judged_on_their_mean(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'rep.db'}"
    spec = parse_spec(
        {
            "name": "rep",
            "task": {"model": "mlp", "hidden": [16], "dataset": "digits"},
            "search": {"initializer": ["kaiming_normal"], "lr": 0.05, "batch_size": 128},
            "budget": {"n_trials": 1, "max_epochs": 3},
            "replicates": 3,
            "seed": 7,
            "pruner": "none",
        }
    )
    run_study(spec, database_url=url, device="cpu")
    db = storage.Database(url)
    try:
        with db.session() as session:
            (row,) = storage.list_trial_results(session, "rep")
            reps = storage.get_trial_replicates(session, "rep", row.trial_number)
    finally:
        db.dispose()
    assert row.n_replicates == 3 and [r.replicate for r in reps] == [0, 1, 2]
    values = [r.value for r in reps]
    assert all(v is not None for v in values)
    assert row.value == pytest.approx(sum(values) / 3)  # type: ignore[arg-type]
    assert row.value_std is not None and row.value_std >= 0
    assert (reps[0].init_seed, reps[0].data_seed) == trial_seeds(7, row.trial_number)
    assert len({(r.init_seed, r.data_seed) for r in reps}) == 3
    assert row.manifest_json is not None
    assert [s["init"] for s in row.manifest_json["seeds"]] == [r.init_seed for r in reps]
