"""A trial's seeds: k pairs varying together, or a crossed design; both replay exactly."""

from __future__ import annotations

from pathlib import Path

import storage
from tuner.spec import SeedDesign, parse_spec
from tuner.studies import replay_trial, run_study
from tuner.training import replicate_seeds, trial_seeds
from tuner.variance import seed_table, seed_variance


def test_a_count_gives_each_replicate_its_own_pair() -> None:
    seeds = replicate_seeds(7, 4, 3)
    assert [s["replicate"] for s in seeds] == [0, 1, 2]
    assert [(s["init"], s["data"]) for s in seeds] == [trial_seeds(7, 4, r) for r in range(3)]
    assert (seeds[0]["init"], seeds[0]["data"]) == trial_seeds(7, 4)  # as without replicates
    assert len({s["init"] for s in seeds}) == 3 and len({s["data"] for s in seeds}) == 3


def test_a_design_crosses_every_init_seed_with_every_data_seed() -> None:
    seeds = replicate_seeds(7, 4, SeedDesign(init=3, data=2))
    assert [s["replicate"] for s in seeds] == list(range(6))
    inits = [trial_seeds(7, 4, i)[0] for i in range(3)]
    datas = [trial_seeds(7, 4, j)[1] for j in range(2)]
    assert [(s["init"], s["data"]) for s in seeds] == [(i, d) for i in inits for d in datas]
    plain = replicate_seeds(7, 4, 2)
    assert [seeds[0], seeds[3]] == [plain[0], {**plain[1], "replicate": 3}]  # the diagonal
    assert replicate_seeds(7, 4, SeedDesign(init=3, data=2)) == seeds  # deterministic
    other = replicate_seeds(7, 5, SeedDesign(init=3, data=2))
    assert not {s["init"] for s in other} & set(inits)  # another trial, other seeds


def test_a_crossed_trial_is_recorded_as_a_table_and_replays_each_replicate(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    spec = parse_spec(
        {
            "name": "crossed",
            "task": {"model": "mlp", "hidden": [16], "dataset": "digits"},
            "search": {"initializer": ["kaiming_normal"], "lr": 0.05, "batch_size": 128},
            "budget": {"n_trials": 1, "max_epochs": 2},
            "replicates": {"init": 2, "data": 2},
            "seed": 11,
            "pruner": "none",
        }
    )
    run_study(spec, database_url=url, device="cpu")
    db = storage.Database(url)
    try:
        with db.session() as session:
            (row,) = storage.list_trial_results(session, "crossed")
            reps = storage.get_trial_replicates(session, "crossed", row.trial_number)
        replayed = replay_trial(db, "crossed", row.trial_number)
    finally:
        db.dispose()
    assert row.n_replicates == 4 and row.manifest_json is not None
    assert [(s["init"], s["data"]) for s in row.manifest_json["seeds"]] == [
        (r.init_seed, r.data_seed) for r in reps
    ]
    assert [(r.init_seed, r.data_seed) for r in reps] == [
        (s["init"], s["data"]) for s in replicate_seeds(11, row.trial_number, spec.replicates)
    ]
    table = seed_table(reps)
    assert table is not None and len(table) == 2 and len(table[0]) == 2
    assert seed_variance(reps) is not None
    assert replayed.matches
    assert [r.value for r in replayed.outcome.replicates] == [r.value for r in reps]  # exact
