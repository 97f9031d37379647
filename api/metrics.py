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
        with self._db.session() as session:
            counts = storage.trial_counts(session)
            names = [record.name for record in storage.list_study_records(session)]
            below, total_s, n = storage.duration_histogram(session, DURATION_BUCKETS)
            depth = storage.queue_depth(session)
            alive = len(storage.list_workers(session, alive_within_s=self._stale_after_s))
        for name in names:  # every state of every study, zeros included
            for state in (*storage.TRIAL_STATES, "running", "pending"):
                trials.add_metric([name, state], counts.get((name, state), 0))
        queue = GaugeMetricFamily(
            "tuner_queue_depth", "Trials waiting for a worker (unclaimed budget plus retries)"
        )
        queue.add_metric([], depth)
        workers = GaugeMetricFamily("tuner_workers_alive", "Workers with a recent heartbeat")
        workers.add_metric([], alive)
        histogram = HistogramMetricFamily(
            "tuner_trial_duration_seconds", "Wall-clock duration of finished trials"
        )
        buckets = [(str(float(b)), float(c)) for b, c in zip(DURATION_BUCKETS, below, strict=True)]
        histogram.add_metric([], [*buckets, ("+Inf", float(n))], sum_value=total_s)
        return [trials, queue, histogram, workers]


def make_registry(db: storage.Database, *, stale_after_s: float) -> CollectorRegistry:
    """A registry of this app's own (not the global one: several apps may share a process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(db, stale_after_s=stale_after_s))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    return registry
