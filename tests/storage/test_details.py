"""A trial's child rows (t=0 diagnostics, seed replicates) and its manifest, on every storage."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import sqlalchemy as sa

from storage import (
    Database,
    LayerDiagnostic,
    LayerDiagnosticsData,
    ReplicateData,
    TrialResultData,
    diagnostics_by_initializer,
    get_layer_diagnostics,
    get_trial_replicates,
    get_trial_result,
    replicates_by_trial,
    upsert_trial_result,
)
from storage._models import StudyRecord

MakeResult = Callable[..., TrialResultData]


def _layer(index: int, act_std: float, *, dead: float | None = 0.1) -> LayerDiagnosticsData:
    return LayerDiagnosticsData(
        index=index,
        name=str(2 * index),
        kind="Linear",
        fan_in=64,
        fan_out=64,
        act_mean=0.3,
        act_std=act_std,
        preact_std=act_std * 1.4,
        dead_frac=dead,
        saturated_frac=None,
        weight_std=0.1,
        grad_std=0.01 * (index + 1),
    )


def _replicate(r: int, value: float | None) -> ReplicateData:
    return ReplicateData(
        replicate=r,
        init_seed=4_000_000_000 + r,  # seeds are uint32: past a signed 32-bit column
        data_seed=17 + r,
        value=value,
        best_value=value,
        best_epoch=3,
        epochs_run=5,
    )


def test_children_and_manifest_round_trip(
    database: Database, study: str, make_result: MakeResult
) -> None:
    layers = [_layer(0, 1.0), _layer(1, 0.5, dead=None)]
    replicates = [_replicate(0, 0.9), _replicate(1, 0.8), _replicate(2, None)]
    manifest = {"seeds": [{"init": 1, "data": 2}], "versions": {"torch": "2.13.0"}}
    data = make_result(
        3,
        diagnostics=layers,
        replicates=replicates,
        manifest_json=manifest,
        n_replicates=3,
        value_std=0.05,
    )
    with database.session() as session:
        upsert_trial_result(session, data)
    with database.session() as session:
        assert get_layer_diagnostics(session, study, 3) == layers
        assert get_trial_replicates(session, study, 3) == replicates
        row = get_trial_result(session, study, 3)
        assert row is not None
        assert (row.manifest_json, row.n_replicates, row.value_std) == (manifest, 3, 0.05)
        assert get_layer_diagnostics(session, study, 4) == []
    # The user-attribute copy (JSON) carries the children too.
    assert TrialResultData.from_json(data.to_json()) == data


def test_a_studys_replicates_by_trial_in_one_read(
    database: Database, study: str, make_result: MakeResult
) -> None:
    first = [_replicate(0, 0.9), _replicate(1, 0.8)]
    second = [_replicate(0, 0.7), _replicate(1, 0.6), _replicate(2, 0.5)]
    with database.session() as session:
        upsert_trial_result(session, make_result(4, replicates=second, initializer="lsuv"))
        upsert_trial_result(session, make_result(1, replicates=first))
        upsert_trial_result(session, make_result(2))  # no replicates
        pruned = make_result(3, replicates=first, state="pruned", stop_reason="pruned")
        upsert_trial_result(session, pruned)
    with database.session() as session:
        found = replicates_by_trial(session, study)
        assert found == [(1, "xavier_uniform", first), (4, "lsuv", second)]
        assert replicates_by_trial(session, study, state="pruned") == [(3, "xavier_uniform", first)]
        assert replicates_by_trial(session, "another") == []


def test_rewriting_a_trial_replaces_its_children(
    database: Database, study: str, make_result: MakeResult
) -> None:
    with database.session() as session:
        upsert_trial_result(session, make_result(0, diagnostics=[_layer(0, 1.0), _layer(1, 1.0)]))
    with database.session() as session:
        upsert_trial_result(session, make_result(0, diagnostics=[_layer(0, 2.0)]))
    with database.session() as session:
        assert [d.act_std for d in get_layer_diagnostics(session, study, 0)] == [2.0]


def test_children_go_with_their_study(
    database: Database, study: str, make_result: MakeResult
) -> None:
    with database.session() as session:
        upsert_trial_result(session, make_result(0, diagnostics=[_layer(0, 1.0)]))
    with database.session() as session:
        session.execute(sa.delete(StudyRecord).where(StudyRecord.name == study))
    with database.session() as session:
        assert session.scalar(sa.select(sa.func.count(LayerDiagnostic.id))) == 0


def test_depth_profile_per_initializer(
    database: Database, study: str, make_result: MakeResult
) -> None:
    with database.session() as session:
        for number, (init, stds) in enumerate(
            [("xavier", (1.0, 0.5)), ("xavier", (1.0, 0.25)), ("kaiming", (1.0, 1.0))]
        ):
            layers = [_layer(i, s) for i, s in enumerate(stds)]
            upsert_trial_result(session, make_result(number, initializer=init, diagnostics=layers))
    with database.session() as session:
        profile = diagnostics_by_initializer(session, study)
    got = [(p.initializer, p.layer_index, p.n_trials, p.act_std) for p in profile]
    assert got == [
        ("kaiming", 0, 1, 1.0),
        ("kaiming", 1, 1, 1.0),
        ("xavier", 0, 2, 1.0),
        ("xavier", 1, 2, pytest.approx(0.375)),
    ]
    assert profile[-1].grad_std == pytest.approx(0.02)
