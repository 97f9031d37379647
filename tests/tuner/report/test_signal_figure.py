"""The report's t=0 signal-propagation figure and table, from a real tanh study."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

import storage
from tests.tuner.report.test_report import _parse
from tuner.report import build_report, collect_report
from tuner.spec import parse_spec
from tuner.studies import run_study


def test_signal_figure_shows_each_trials_spread_and_chi_1(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/signal.db"
    spec = parse_spec(
        {
            "name": "signal-report",
            "task": {"model": "mlp", "hidden": [32] * 5, "activation": "tanh", "dataset": "digits"},
            "search": {
                "initializer": [
                    {"name": "orthogonal", "gain": 1.0},
                    {"name": "normal", "std": 0.05},
                ],
                "lr": 0.05,
                "batch_size": 128,
            },
            "budget": {"n_trials": 2, "max_epochs": 1},
            "sampler": "grid",
            "pruner": "none",
        }
    )
    run_study(spec, database_url=url, device="cpu")
    db = storage.Database(url)
    try:
        data = collect_report(db, "signal-report")
        page = build_report(db, "signal-report")
    finally:
        db.dispose()
    by_init = {r.initializer: data.signals[r.trial_number] for r in data.rows}
    assert set(by_init) == {"orthogonal", "normal"}
    # normal(std 0.05) on 32 inputs: sigma_w^2 = 32 * 0.0025 = 0.08, deep in the ordered phase
    assert by_init["normal"].chi_1 == pytest.approx(0.08, rel=0.3)
    assert by_init["normal"].warning is not None and by_init["orthogonal"].warning is None

    fig = _parse(page).figures["signal-propagation"]
    spread = [t for t in fig["data"] if t.get("xaxis", "x") == "x"]
    chi = [t for t in fig["data"] if t.get("xaxis") == "x2"]
    assert sorted(t["name"] for t in spread) == sorted(t["name"] for t in chi) == sorted(by_init)
    for t in spread:
        assert t["x"] == [pytest.approx(by_init[t["name"]].jacobian_spread)]
    for t in chi:
        assert t["y"] == [pytest.approx(by_init[t["name"]].chi_1)]
        warned = by_init[t["name"]].warning is not None
        assert t["marker"]["symbol"] == ["x" if warned else "circle"]
    assert fig["layout"]["xaxis"]["type"] == "log"
    section = page.split('id="signal-propagation"')[1].split("</section>")[0]
    xi = by_init["normal"].xi_c
    assert xi is not None and math.isfinite(xi)
    assert f"<td>{xi:.3g}</td>" in section  # the table: its median xi_c (one trial)
