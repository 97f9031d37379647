"""Prometheus metrics, read from the database at scrape time (any API replica answers alike)."""

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

import storage

log = logging.getLogger("api")

#: Upper bounds (seconds) of the trial duration histogram's buckets (+Inf is added).
DURATION_BUCKETS: tuple[float, ...] = (1, 5, 15, 60, 300, 900, 3600)


class DatabaseCollector(Collector):
    """Trials by study and state, queue depth, trial durations and live workers."""

    def __init__(self, db: storage.Database, *, stale_after_s: float) -> None:
        self._db = db
        self._stale_after_s = stale_after_s

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("tuner_database_up", "1 when the database answered this scrape")
        try:
            metrics = self._read()
        except storage.StorageError as exc:
            log.warning("metrics: database unavailable: %s", exc)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from metrics

    def _read(self) -> list[Metric]:
        trials = GaugeMetricFamily(
            "tuner_trials", "Trials by study and state", labels=["study", "state"]
        )
        durations: list[float] = []
        with self._db.session() as session:
            for record in storage.list_study_records(session):
                for state in storage.TRIAL_STATES:
                    count = storage.count_trial_results(session, record.name, state=state)
                    trials.add_metric([record.name, state], count)
                runs = storage.count_runs_by_state(session, record.name)
                for state in ("running", "pending"):
                    trials.add_metric([record.name, state], runs.get(state, 0))
                durations.extend(
                    row.duration_s for row in storage.list_trial_results(session, record.name)
                )
            depth = storage.queue_depth(session)
            alive = len(storage.list_workers(session, alive_within_s=self._stale_after_s))
        queue = GaugeMetricFamily(
            "tuner_queue_depth", "Trials waiting for a worker (unclaimed budget plus retries)"
        )
        queue.add_metric([], depth)
        workers = GaugeMetricFamily("tuner_workers_alive", "Workers with a recent heartbeat")
        workers.add_metric([], alive)
        histogram = HistogramMetricFamily(
            "tuner_trial_duration_seconds", "Wall-clock duration of finished trials"
        )
        histogram.add_metric([], _buckets(durations), sum_value=sum(durations))
        return [trials, queue, histogram, workers]


def _buckets(values: list[float]) -> list[tuple[str, float]]:
    """Cumulative bucket counts in Prometheus' shape, ending with ``+Inf``."""
    out = [
        (str(float(bound)), float(sum(1 for v in values if v <= bound)))
        for bound in DURATION_BUCKETS
    ]
    out.append(("+Inf", float(len(values))))
    return out


def make_registry(db: storage.Database, *, stale_after_s: float) -> CollectorRegistry:
    """A registry of this app's own (not the global one: several apps may share a process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(db, stale_after_s=stale_after_s))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
