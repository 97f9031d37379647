"""examples/residual_cnn: the trial's initializer on every conv, then the identity option."""

from __future__ import annotations

import math
from pathlib import Path

import torch

import storage
from tests.examples import diagnostics, require, rows, signal, study
from tuner.inits import apply_initializer, layer_groups
from tuner.studies import replay_trial, run_study

require("tuner_example_residual", "residual_cnn")


def test_residual_study_runs_end_to_end_with_each_identity_option(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'residual.db'}"
    spec = study(
        "residual_cnn",
        name="residual-tiny",
        task={"channels": 8, "train_rows": 600},
        search={
            "initializer": ["kaiming_normal"],
            "lr": 0.05,
            "weight_decay": 0.0,
            "residual_init": ["none", "dirac", "zero_last"],
        },
        budget={"n_trials": 3, "max_epochs": 2},
        sampler="grid",  # each identity option exactly once
    )
    summary = run_study(spec, database_url=url, device="cpu")
    assert summary.finished == 3 and summary.complete

    found = rows(url, "residual-tiny")
    options = sorted(r.params_json["extra"]["residual_init"] for r in found)
    assert options == ["dirac", "none", "zero_last"]
    for row in found:
        assert row.state == "complete", row.error
        assert row.value is not None and math.isfinite(row.value) and 0 < row.value < 2.3
        assert row.epochs_run == 2
        assert row.manifest_json is not None
        layers = row.manifest_json["layers"]
        # The stem conv, both convs of each of the 2 blocks, the head: the trial's init.
        assert [r["layer"] for r in layers] == [
            "stem.0",
            "blocks.0.conv1",
            "blocks.0.conv2",
            "blocks.1.conv1",
            "blocks.1.conv2",
            "head.2",
        ]
        assert {r["initializer"] for r in layers} == {"kaiming_normal"}
        probes = diagnostics(url, "residual-tiny", row.trial_number)
        assert len(probes) == 6 and all(p.grad_std > 0 for p in probes)
        probed = signal(url, "residual-tiny", row.trial_number)  # BatchNorm in eval mode
        assert probed is not None and probed.jacobian_spread is not None, probed
        assert "Conv2d" in (probed.mean_field_skipped or "")

    zero_last = next(r for r in found if r.params_json["extra"]["residual_init"] == "zero_last")
    db = storage.Database(url)
    try:
        replay = replay_trial(db, "residual-tiny", zero_last.trial_number)
    finally:
        db.dispose()
    assert replay.stored_value is not None and replay.matches


def test_identity_options_make_each_block_start_as_the_identity() -> None:
    module = require("tuner_example_residual", "residual_cnn")
    torch.manual_seed(0)
    x = torch.rand(4, 8, 6, 6)  # non-negative, as after the stem's ReLU

    model = module.ResidualNet((1, 8, 8), 8, 2, 10)
    changed = module.identity_init(model, "zero_last")
    assert changed == ["blocks.0.bn2.weight", "blocks.1.bn2.weight"]
    for block in model.blocks:
        assert torch.equal(block(x), x)  # branch output is zero: relu(x + 0) = x

    model = module.ResidualNet((1, 8, 8), 8, 2, 10)
    assert len(module.identity_init(model, "dirac")) == 4
    block = model.blocks[0].eval()  # fresh BN statistics: (y - 0) / sqrt(1 + eps)
    with torch.no_grad():
        assert torch.equal(block.conv1(x), x) and torch.equal(block.conv2(x), x)

    model = module.ResidualNet((1, 8, 8), 8, 2, 10)
    before = [p.clone() for p in model.parameters()]
    assert module.identity_init(model, "none") == []
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_each_branch_last_conv_is_in_the_residual_last_group() -> None:
    module = require("tuner_example_residual", "residual_cnn")
    model = module.ResidualNet((1, 8, 8), 8, 2, 10)
    groups = layer_groups(model)
    assert [k for k, g in groups.items() if g == "residual_last"] == [
        ("blocks.0.conv2", "weight"),
        ("blocks.1.conv2", "weight"),
    ]
    records = apply_initializer(
        model,
        "kaiming_normal",
        {},
        activation="relu",
        generator=torch.Generator().manual_seed(0),
        groups={"residual_last": ("zeros", {})},
    )
    assert not model.blocks[0].conv2.weight.any() and model.blocks[0].conv1.weight.any()
    assert {r.layer for r in records if r.initializer == "zeros"} == {
        "blocks.0.conv2",
        "blocks.1.conv2",
    }
