"""A study's summary: per-initializer aggregates and Optuna's parameter importances."""

import statistics
import threading
import time
from collections import OrderedDict, defaultdict

import storage
from api.schemas import DepthProfile, InitializerStats, SeedVarianceGroup, Summary
from tuner.report import param_importances
from tuner.variance import by_initializer

Importances = tuple[dict[str, float] | None, str | None]


class ImportanceCache:
    """Importances per study, recomputed when trials were added, at most every ``min_age_s``
    once there are some.

    Loading every trial from Optuna and fitting fANOVA takes seconds on a large study; a
    running study gains trials all the time, so without a floor every call would pay it.
    """

    def __init__(self, *, min_age_s: float = 30.0, size: int = 64) -> None:
        self._min_age_s = min_age_s
        self._size = size
        self._items: OrderedDict[str, tuple[int, float, Importances]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, study: str, n_complete: int) -> Importances | None:
        with self._lock:
            entry = self._items.get(study)
            if entry is None:
                return None
            n, at, value = entry
            fresh = time.monotonic() - at < self._min_age_s and value[0] is not None
            if n != n_complete and not fresh:
                return None
            self._items.move_to_end(study)
            return value

    def put(self, study: str, n_complete: int, value: Importances) -> None:
        with self._lock:
            self._items[study] = (n_complete, time.monotonic(), value)
            self._items.move_to_end(study)
            while len(self._items) > self._size:
                self._items.popitem(last=False)


def summarize(db: storage.Database, name: str, *, cache: ImportanceCache) -> Summary:
    """The summary of study ``name``; :class:`storage.StudyNotFoundError` if it is unknown."""
    with db.session() as session:
        record = storage.get_study_record(session, name)
        if record is None:
            raise storage.StudyNotFoundError(f"study {name!r} does not exist")
        groups = storage.summarize_by_initializer(session, name)
        complete = storage.list_trial_results(session, name, state="complete")
        depth = storage.diagnostics_by_initializer(session, name)
        replicated = storage.replicates_by_trial(session, name)
    values: dict[str, list[float]] = defaultdict(list)
    for row in complete:
        if row.value is not None:
            values[row.initializer].append(row.value)
    stats = [
        InitializerStats(
            initializer=g.initializer,
            count=g.n_trials,
            complete=g.n_complete,
            best=g.best_value,
            mean=g.mean_value,
            median=statistics.median(values[g.initializer]) if values[g.initializer] else None,
        )
        for g in groups
    ]
    n_complete = sum(len(v) for v in values.values())
    cached = cache.get(name, n_complete)
    if cached is None:
        cached = param_importances(db, name)
        cache.put(name, n_complete, cached)
    return Summary(
        study=name,
        metric=record.metric,
        direction="maximize" if record.direction == "maximize" else "minimize",
        initializers=stats,
        importances=cached[0],
        importances_note=cached[1],
        diagnostics=[DepthProfile.model_validate(d, from_attributes=True) for d in depth],
        seed_variance=[
            SeedVarianceGroup.model_validate({"initializer": label, **split.to_json()})
            for label, split in by_initializer((init, reps) for _, init, reps in replicated)
        ],
    )
