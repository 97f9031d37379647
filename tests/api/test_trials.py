"""A study's trials: ordering per direction, filters, pages, one trial, best, summary."""

from __future__ import annotations

import math

import optuna
import pytest
from fastapi.testclient import TestClient

import storage
from api.schemas import TRIAL_COLUMNS, OrderBy
from tests.api.api_helpers import add_results, add_study, db_of, result
from tuner.client import TrialDetail


def numbers(page: dict[str, object]) -> list[int]:
    items = page["items"]
    assert isinstance(items, list)
    return [item["trial_number"] for item in items]


@pytest.fixture
def seeded(client: TestClient) -> TestClient:
    """Study ``max`` (maximize) and ``min`` (minimize) with the same six rows each."""
    for name, direction in (("max", "maximize"), ("min", "minimize")):
        add_study(client, name, direction)
        add_results(
            client,
            [
                result(name, 0, value=0.5, initializer="xavier_uniform", lr=0.1),
                result(name, 1, value=0.9, initializer="kaiming_normal", lr=0.01),
                result(name, 2, value=0.2, initializer="kaiming_normal", lr=0.3),
                result(name, 3, value=0.7, initializer="xavier_uniform", lr=0.2),
                result(name, 4, state="pruned", stop_reason="pruned", value=0.3, lr=0.05),
                result(name, 5, state="fail", stop_reason="error", value=None, error="x"),
            ],
        )
    return client


def test_orderable_columns_match_storage() -> None:
    assert OrderBy.__args__ == storage.ORDERABLE_COLUMNS  # type: ignore[attr-defined]


def test_best_first_per_direction_and_rows_without_value_last(seeded: TestClient) -> None:
    page = seeded.get("/v1/studies/max/trials").json()
    assert numbers(page) == [1, 3, 0, 4, 2, 5]
    assert page["total"] == 6 and page["limit"] == 100 and page["offset"] == 0
    assert list(page["items"][0]) == list(TRIAL_COLUMNS)
    assert numbers(seeded.get("/v1/studies/min/trials").json()) == [2, 4, 0, 3, 1, 5]
    worst_first = seeded.get("/v1/studies/max/trials", params={"descending": False}).json()
    assert numbers(worst_first) == [2, 4, 0, 3, 1, 5]


def test_order_by_another_column(seeded: TestClient) -> None:
    by_lr = seeded.get("/v1/studies/max/trials", params={"order_by": "lr"}).json()
    assert numbers(by_lr) == [1, 5, 4, 0, 3, 2]  # 1 and 5 tie at lr 0.01: by number
    desc = seeded.get("/v1/studies/max/trials", params={"order_by": "lr", "descending": True})
    assert numbers(desc.json())[0] == 2
    bad = seeded.get("/v1/studies/max/trials", params={"order_by": "id"})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "order_by"]


def test_filters(seeded: TestClient) -> None:
    complete = seeded.get("/v1/studies/max/trials", params={"state": "complete"}).json()
    assert numbers(complete) == [1, 3, 0, 2] and complete["total"] == 4
    kaiming = seeded.get("/v1/studies/max/trials", params={"initializer": "Kaiming_Normal"}).json()
    assert numbers(kaiming) == [1, 2] and kaiming["total"] == 2
    both = seeded.get(
        "/v1/studies/max/trials", params={"state": "pruned", "initializer": "xavier_uniform"}
    ).json()
    assert numbers(both) == [4]
    none = seeded.get("/v1/studies/max/trials", params={"initializer": "unheard_of"}).json()
    assert none == {"items": [], "total": 0, "limit": 100, "offset": 0}
    assert seeded.get("/v1/studies/max/trials", params={"state": "running"}).status_code == 422


def test_pages_carry_the_total(seeded: TestClient) -> None:
    pages = [
        seeded.get("/v1/studies/max/trials", params={"limit": 4, "offset": o}).json()
        for o in (0, 4, 8)
    ]
    assert [numbers(p) for p in pages] == [[1, 3, 0, 4], [2, 5], []]
    assert [p["total"] for p in pages] == [6, 6, 6]
    assert seeded.get("/v1/studies/max/trials", params={"limit": 1001}).status_code == 422
    assert seeded.get("/v1/studies/max/trials", params={"offset": -1}).status_code == 422


def test_trial_and_best(seeded: TestClient) -> None:
    trial = seeded.get("/v1/studies/max/trials/5").json()
    assert trial["state"] == "fail" and trial["value"] is None and trial["error"] == "x"
    assert trial["started_at"].startswith("2025-01-02T03:09:05")
    assert seeded.get("/v1/studies/max/best").json()["trial_number"] == 1
    assert seeded.get("/v1/studies/min/best").json()["trial_number"] == 2
    # the list's fast path and the single-row schema agree
    listed = seeded.get("/v1/studies/max/trials", params={"state": "fail"}).json()["items"][0]
    details = {
        "n_replicates",
        "value_std",
        "manifest",
        "diagnostics",
        "signal",
        "replicates",
        "seed_variance",
    }
    assert set(trial) - set(listed) == details  # one trial adds its details to the item
    assert listed == {k: v for k, v in trial.items() if k not in details}


def test_not_found(client: TestClient) -> None:
    add_study(client, "empty")
    for path in (
        "/v1/studies/nope/trials",
        "/v1/studies/nope/trials/0",
        "/v1/studies/nope/best",
        "/v1/studies/nope/summary",
    ):
        response = client.get(path)
        assert response.status_code == 404, path
        assert response.json()["detail"] == "study 'nope' does not exist"
    missing = client.get("/v1/studies/empty/trials/7")
    assert missing.status_code == 404
    assert missing.json()["detail"] == "study 'empty' has no finished trial 7"
    best = client.get("/v1/studies/empty/best")
    assert best.status_code == 404
    assert best.json()["detail"] == "study 'empty' has no complete trial yet"
    assert client.get("/v1/studies/empty/trials").json()["total"] == 0


def test_summary_per_initializer(client: TestClient) -> None:
    add_study(client, "s")
    add_results(
        client,
        [
            result("s", 0, initializer="xavier_uniform", value=0.1),
            result("s", 1, initializer="xavier_uniform", value=0.5),
            result("s", 2, initializer="xavier_uniform", value=0.9),
            result("s", 3, initializer="xavier_uniform", value=0.3),
            result("s", 4, initializer="xavier_uniform", state="pruned", stop_reason="pruned"),
            result("s", 5, state="fail", stop_reason="error", value=None),
            result("s", 6, initializer="orthogonal", value=0.7),
            result("s", 7, initializer="lsuv", state="fail", stop_reason="diverged", value=None),
        ],
    )
    summary = client.get("/v1/studies/s/summary").json()
    assert summary["study"] == "s" and summary["direction"] == "maximize"
    stats = {row["initializer"]: row for row in summary["initializers"]}
    assert [row["initializer"] for row in summary["initializers"]] == [
        "xavier_uniform",
        "orthogonal",
        "lsuv",
    ]
    xavier = stats["xavier_uniform"]
    assert (xavier["count"], xavier["complete"], xavier["best"]) == (6, 4, 0.9)
    assert xavier["mean"] == pytest.approx(0.45) and xavier["median"] == pytest.approx(0.4)
    assert stats["orthogonal"]["median"] == 0.7 and stats["orthogonal"]["count"] == 1
    assert stats["lsuv"] == {
        "initializer": "lsuv",
        "count": 1,
        "complete": 0,
        "best": None,
        "mean": None,
        "median": None,
    }
    # no Optuna trials behind these rows: no importances, and a sentence why
    assert summary["importances"] is None and summary["importances_note"]


def test_summary_importances_from_optuna(sqlite_client: TestClient) -> None:
    spec = {"name": "imp", "task": {"model": "mlp", "hidden": [8], "dataset": "digits"}}
    assert sqlite_client.post("/v1/studies", json=spec).status_code == 201
    study = optuna.load_study(study_name="imp", storage=db_of(sqlite_client).optuna_storage())
    lr = optuna.distributions.FloatDistribution(1e-4, 1.0, log=True)
    bs = optuna.distributions.CategoricalDistribution([32, 64])
    rows = []
    for i in range(8):
        params = {"lr": 10 ** -(i % 4), "batch_size": [32, 64][i % 2]}
        value = 0.1 * (i % 4)
        study.add_trial(
            optuna.trial.create_trial(
                params=params, distributions={"lr": lr, "batch_size": bs}, value=value
            )
        )
        rows.append(result("imp", i, value=value))
    add_results(sqlite_client, rows)
    summary = sqlite_client.get("/v1/studies/imp/summary").json()
    assert summary["importances_note"] is None
    assert set(summary["importances"]) == {"lr", "batch_size"}
    assert sum(summary["importances"].values()) == pytest.approx(1.0)


def test_importance_cache_recomputes_on_new_trials_at_most_every_min_age() -> None:
    from api.summary import ImportanceCache

    cache = ImportanceCache(min_age_s=60)
    assert cache.get("s", 5) is None
    cache.put("s", 5, (None, "too few"))
    assert cache.get("s", 5) == (None, "too few")
    assert cache.get("s", 6) is None  # a note is cheap to redo: new trials, new answer
    cache.put("s", 6, ({"lr": 1.0}, None))
    assert cache.get("s", 7) == ({"lr": 1.0}, None)  # fitting is not: reuse for a while
    assert ImportanceCache(min_age_s=0).get("s", 7) is None
    stale = ImportanceCache(min_age_s=0)
    stale.put("s", 6, ({"lr": 1.0}, None))
    assert stale.get("s", 7) is None and stale.get("s", 6) == ({"lr": 1.0}, None)


def _layers(*stds: float) -> list[storage.LayerDiagnosticsData]:
    return [
        storage.LayerDiagnosticsData(
            index=i,
            name=str(2 * i + 1),
            kind="Linear",
            fan_in=64,
            fan_out=64,
            act_mean=0.1,
            act_std=s,
            preact_std=s,
            dead_frac=0.0,
            saturated_frac=None,
            weight_std=0.1,
            grad_std=0.01,
        )
        for i, s in enumerate(stds)
    ]


def test_one_trial_carries_its_diagnostics_replicates_and_manifest(client: TestClient) -> None:
    add_study(client, "d")
    replicate = storage.ReplicateData(
        replicate=1,
        init_seed=4_000_000_001,
        data_seed=5,
        value=0.8,
        best_value=0.85,
        best_epoch=2,
        epochs_run=3,
    )
    add_results(
        client,
        [
            result(
                "d",
                0,
                initializer="xavier_normal",
                diagnostics=_layers(1.0, 0.5),
                replicates=[replicate],
                n_replicates=2,
                value_std=0.05,
                manifest_json={"seeds": [{"replicate": 0, "init": 1, "data": 2}]},
            ),
            result("d", 1, initializer="kaiming_normal", diagnostics=_layers(1.0, 1.0)),
            result("d", 2, initializer="kaiming_normal", diagnostics=_layers(1.0, 0.8)),
        ],
    )
    one = client.get("/v1/studies/d/trials/0").json()
    assert [d["act_std"] for d in one["diagnostics"]] == [1.0, 0.5]
    assert one["diagnostics"][1]["name"] == "3" and one["n_replicates"] == 2
    assert one["replicates"][0]["init_seed"] == 4_000_000_001 and one["value_std"] == 0.05
    assert one["manifest"]["seeds"][0]["init"] == 1
    summary = client.get("/v1/studies/d/summary").json()
    profile = {(p["initializer"], p["layer_index"]): p for p in summary["diagnostics"]}
    assert profile["kaiming_normal", 1]["act_std"] == pytest.approx(0.9)
    assert profile["kaiming_normal", 1]["n_trials"] == 2
    assert profile["xavier_normal", 1]["act_std"] == 0.5
    assert one["seed_variance"] is None and summary["seed_variance"] == []  # not crossed


def _crossed(table: list[list[float]], first_seed: int) -> list[storage.ReplicateData]:
    """A crossed design's replicate rows: row i has init seed first_seed + i, column j data
    seed 100 + j."""
    cols = len(table[0])
    return [
        storage.ReplicateData(
            replicate=i * cols + j,
            init_seed=first_seed + i,
            data_seed=100 + j,
            value=value,
            best_value=value,
            best_epoch=2,
            epochs_run=3,
        )
        for i, row in enumerate(table)
        for j, value in enumerate(row)
    ]


def test_a_crossed_trial_splits_its_spread_into_init_data_and_residual(
    client: TestClient,
) -> None:
    add_study(client, "x")
    # by hand (tests/tuner/variance): SS 78 / 54 / 10 on df 2 / 2 / 4; components 73/6, 49/6,
    # 2.5. [[0, 2], [2, 4]]: SS 4 / 4 / 0 on df 1 / 1 / 1.
    first = _crossed([[1.0, 3.0, 5.0], [2.0, 6.0, 7.0], [6.0, 9.0, 15.0]], 10)
    second = _crossed([[0.0, 2.0], [2.0, 4.0]], 20)
    add_results(
        client,
        [
            result("x", 0, initializer="lsuv", replicates=first, n_replicates=9),
            result("x", 1, initializer="orthogonal", replicates=second, n_replicates=4),
            result("x", 2, initializer="orthogonal"),  # no replicates: left out
        ],
    )
    one = client.get("/v1/studies/x/trials/0").json()["seed_variance"]
    assert (one["init"]["ss"], one["data"]["ss"], one["residual"]["ss"]) == pytest.approx(
        (78, 54, 10)
    )
    assert (one["init"]["df"], one["residual"]["ms"]) == (2, pytest.approx(2.5))
    assert one["init"]["variance"] == pytest.approx(73 / 6)
    assert one["data"]["share"] == pytest.approx(49 / 137)
    assert one["residual"]["std"] == pytest.approx(2.5**0.5) and one["n_values"] == 9
    groups = client.get("/v1/studies/x/summary").json()["seed_variance"]
    assert [g["initializer"] for g in groups] == [None, "lsuv", "orthogonal"]
    assert [g["n_tables"] for g in groups] == [2, 1, 1]
    assert groups[0]["init"]["ss"] == pytest.approx(82) and groups[0]["init"]["df"] == 3
    assert groups[2]["residual"]["ss"] == pytest.approx(0, abs=1e-12)


def test_one_trial_carries_its_signal_at_t0(client: TestClient) -> None:
    """The t=0 signal of a trial; xi_c is infinite at criticality, which JSON writes as null
    (chi_c 1 tells it from an unmeasured one)."""
    add_study(client, "sig")
    critical = storage.TrialSignalData(
        jacobian_mean_sq=0.9,
        jacobian_spread=0.02,
        jacobian_samples=32,
        depth=30,
        sigma_w2=1.0,
        sigma_b2=0.0,
        q_star=0.0,
        chi_1=1.0,
        c_star=1.0,
        chi_c=1.0,
    )
    ordered = storage.TrialSignalData(
        jacobian_skipped="the Jacobian has 1792 outputs per sample",
        depth=30,
        sigma_w2=0.5,
        sigma_b2=0.0,
        q_star=0.0,
        chi_1=0.5,
        c_star=1.0,
        chi_c=0.5,
        warning="signal cannot cross the network: depth 30 > 6 xi_c = 8.66",
    )
    add_results(
        client,
        [result("sig", 0, signal=critical), result("sig", 1, signal=ordered), result("sig", 2)],
    )
    first = client.get("/v1/studies/sig/trials/0").json()["signal"]
    assert first["jacobian_spread"] == 0.02 and first["chi_1"] == 1.0
    assert first["xi_c"] is None and first["warning"] is None
    second = TrialDetail.model_validate(client.get("/v1/studies/sig/trials/1").json())
    assert second.signal is not None and second.signal.jacobian_mean_sq is None
    assert second.signal.xi_c == pytest.approx(1 / math.log(2))
    assert second.signal.warning == ordered.warning
    assert client.get("/v1/studies/sig/trials/2").json()["signal"] is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/studies/s/trials/18446744073709551616",  # beyond 64 bits: once a 500
        "/v1/studies/s/trials/2147483648",
        "/v1/studies/s/trials?offset=18446744073709551616",
        "/v1/studies?offset=99999999999999999999",
    ],
)
def test_numbers_beyond_the_columns_are_422(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 422, response.text
