"""examples/lstm_seq_mnist: the LSTM alone gets the trial's initializer, gate by gate."""

from __future__ import annotations

import math
from pathlib import Path

import torch

import storage
from tests.examples import diagnostics, require, rows, signal, study
from tuner.studies import replay_trial, run_study

require("tuner_example_lstm", "lstm_seq_mnist")


def test_lstm_study_runs_end_to_end_and_initializes_only_the_lstm(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lstm.db'}"
    spec = study(
        "lstm_seq_mnist",
        name="lstm-tiny",
        task={"train_rows": 1000, "val_rows": 500},
        search={"lr": 0.01, "hidden_size": [32]},
        budget={"n_trials": 3, "max_epochs": 2},
        sampler="grid",  # each of the three initializers exactly once
    )
    summary = run_study(spec, database_url=url, device="cpu")
    assert summary.finished == 3 and summary.complete

    found = rows(url, "lstm-tiny")
    assert sorted(r.initializer for r in found) == ["default", "orthogonal", "xavier_uniform"]
    for row in found:
        assert row.state == "complete", row.error
        assert row.value is not None and 0.1 < row.value <= 1.0  # better than chance (0.1)
        assert row.epochs_run == 2 and row.params_json["extra"] == {"hidden_size": 32}
        assert row.manifest_json is not None
        layers = row.manifest_json["layers"]
        # One covered module, the LSTM (the root of what ctx.init was given); the readout
        # Linear is not in the manifest: it keeps PyTorch's default.
        assert {(r["layer"], r["kind"]) for r in layers} == {("", "LSTM")}
        assert sorted(r["param"] for r in layers) == ["weight_hh_l0", "weight_ih_l0"]
        for record in layers:
            assert record["initializer"] == row.initializer
            assert record["fan_out"] == 32  # per gate block: 4 blocks of 32 rows
            if row.initializer != "default":
                assert record["params"]["gain"] == 1.0  # torch's default
        (probe,) = diagnostics(url, "lstm-tiny", row.trial_number)
        assert probe.kind == "LSTM" and probe.grad_std > 0 and math.isfinite(probe.act_std)
        # The LSTM's Jacobian (28 steps x 32 units out, 28 x 28 in) on the calibration rows;
        # the mean field is of fully connected nets only, and says so.
        probed = signal(url, "lstm-tiny", row.trial_number)
        assert probed is not None and probed.jacobian_samples is not None, probed
        assert probed.jacobian_mean_sq is not None and probed.jacobian_mean_sq > 0
        assert probed.chi_1 is None and "LSTM" in (probed.mean_field_skipped or "")

    orthogonal = next(r for r in found if r.initializer == "orthogonal")
    assert orthogonal.manifest_json is not None
    hh = next(r for r in orthogonal.manifest_json["layers"] if r["param"] == "weight_hh_l0")
    assert math.isclose(hh["std"], 1 / math.sqrt(32), rel_tol=1e-3)  # square orthogonal blocks

    db = storage.Database(url)
    try:
        replay = replay_trial(db, "lstm-tiny", orthogonal.trial_number)
    finally:
        db.dispose()
    assert replay.stored_value is not None and replay.matches


def test_the_lstm_blocks_are_orthogonal_per_gate() -> None:
    module = require("tuner_example_lstm", "lstm_seq_mnist")
    from tuner.inits import apply_initializer

    model = module.SeqClassifier(16)
    readout = model.readout.weight.detach().clone()
    apply_initializer(
        model.lstm, "orthogonal", {}, activation="tanh", generator=torch.Generator().manual_seed(0)
    )
    for gate in model.lstm.weight_hh_l0.detach().chunk(4):
        assert torch.allclose(gate @ gate.T, torch.eye(16), atol=1e-5)
    for gate in model.lstm.weight_ih_l0.detach().chunk(4):  # 16 x 28: orthonormal rows
        assert torch.allclose(gate @ gate.T, torch.eye(16), atol=1e-5)
    assert not model.lstm.bias_ih_l0.any() and not model.lstm.bias_hh_l0.any()
    assert torch.equal(model.readout.weight, readout)


def test_recurrent_and_input_weights_get_their_own_searched_initializers(tmp_path: Path) -> None:
    """The classic LSTM recipe as a search: orthogonal or eye recurrent weights, each with
    xavier_uniform or he_normal input weights; every trial's manifest shows each on its own
    weights, and its row a readable label of both."""
    url = f"sqlite:///{tmp_path / 'groups.db'}"
    spec = study(
        "lstm_seq_mnist",
        name="lstm-groups",
        task={"train_rows": 300, "val_rows": 200},
        search={
            "initializer": "default",
            "initializer_groups": {
                "recurrent": ["orthogonal", "eye"],
                "input": ["xavier_uniform", "he_normal"],
            },
            "lr": 0.01,
            "hidden_size": [32],
        },
        budget={"n_trials": 4, "max_epochs": 1},
        sampler="grid",  # each pair exactly once
    )
    summary = run_study(spec, database_url=url, device="cpu")
    assert summary.finished == 4 and summary.complete
    found = rows(url, "lstm-groups")
    pairs = set()
    for row in found:
        assert row.state == "complete", row.error
        groups = row.params_json["groups"]
        recurrent, input_ = groups["recurrent"]["name"], groups["input"]["name"]
        pairs.add((recurrent, input_))
        assert row.initializer == f"default; recurrent={recurrent}; input={input_}"
        assert row.manifest_json is not None
        layers = {r["param"]: r for r in row.manifest_json["layers"]}
        assert (layers["weight_hh_l0"]["initializer"], layers["weight_hh_l0"]["group"]) == (
            recurrent,
            "recurrent",
        )
        assert (layers["weight_ih_l0"]["initializer"], layers["weight_ih_l0"]["group"]) == (
            input_,
            "input",
        )
        assert row.manifest_json["init_groups"] == groups
    assert pairs == {(r, i) for r in ("orthogonal", "eye") for i in ("xavier_uniform", "he_normal")}
