"""Claims against a budget stay exact under many concurrent claimers.

``bench/scale.py`` races 64 claimers (worker processes x slots); here 32 threads, each on a
connection of its own, race for the 100 trials of a study, then for a waiting retry.
"""

from __future__ import annotations

import threading

import storage
from storage import Claim, Database, claim_run, create_study_record

CLAIMERS = 32
BUDGET = 100


def _race(db: Database, worker: str) -> list[list[Claim]]:
    """Every claimer claims until nothing is left; each one's claims."""
    barrier = threading.Barrier(CLAIMERS)
    taken: list[list[Claim]] = [[] for _ in range(CLAIMERS)]
    errors: list[BaseException] = []

    def claimer(i: int) -> None:
        try:
            barrier.wait()
            while True:
                with db.session() as session:
                    claim = claim_run(session, worker=f"{worker}-{i}", device="cpu")
                if claim is None:
                    return
                taken[i].append(claim)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(CLAIMERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    return taken


def test_concurrent_claimers_never_over_claim_the_budget(database_url: str) -> None:
    db = Database(database_url, connections=CLAIMERS)
    db.upgrade()
    try:
        with db.session() as session:
            create_study_record(
                session, name="race", spec_json={"name": "race"}, metric="val_accuracy",
                direction="maximize", n_trials=BUDGET,
            )  # fmt: skip
        taken = _race(db, "new")
        claims = [claim for mine in taken for claim in mine]
        assert sorted(c.seq for c in claims) == list(range(1, BUDGET + 1))  # each once
        assert len({c.run_id for c in claims}) == BUDGET
        assert sum(1 for mine in taken if mine) > 1  # the claimers really raced
        with db.session() as session:
            record = storage.get_study_record(session, "race")
            assert record is not None and record.n_claimed == BUDGET
            assert storage.count_runs_by_state(session, "race") == {"running": BUDGET}

            # One retry waiting: exactly one of the claimers gets it.
            storage.finish_run(session, claims[0].run_id, "retried")
            storage.queue_retry(
                session, study_name="race", attempt=1, retry_of=0, params_json={"lr": 0.1}
            )
        retried = [c for mine in _race(db, "retry") for c in mine]
        assert [(c.attempt, c.retry_of, c.params_json) for c in retried] == [(1, 0, {"lr": 0.1})]
    finally:
        db.dispose()
