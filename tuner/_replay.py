"""Replay: re-run a recorded trial from its manifest and compare with what was stored.

The manifest holds every seed, the training configuration, the thread count and the
versions the trial ran with. On CPU the same code, seeds and thread count give the same
floating-point operations in the same order, so the replayed metric equals the stored
one exactly. Stops the training loop cannot reproduce by itself (pruning, a timeout, a
cancel: decisions made outside the trial) are re-applied at the recorded epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

import storage
from tuner._errors import TunerError
from tuner._population import Member, PopulationConfig, execute_population
from tuner._search import TrialParams
from tuner._spec import parse_spec
from tuner._tasks import build_task
from tuner._train import EpochStats, StopReason, TrainConfig
from tuner._trial import TrialOutcome, execute_trial, package_versions, resolve_device

#: Stop reasons decided outside the trial; a replay stops where the original was stopped.
EXTERNAL_STOPS = frozenset({"pruned", "timeout", "cancelled"})


@dataclass(frozen=True)
class Replay:
    study_name: str
    trial_number: int
    stored_value: float | None
    stored_stop: str
    stored_epochs: int
    outcome: TrialOutcome
    version_drift: dict[str, tuple[str, str]]  # package: (recorded, now)

    @property
    def matches(self) -> bool:
        """Exactly the stored metric, stop reason and epoch count."""
        return (
            self.outcome.value == self.stored_value
            and self.outcome.stop_reason == self.stored_stop
            and self.outcome.epochs_run == self.stored_epochs
        )


def _load(db: storage.Database, name: str, number: int) -> tuple[Any, storage.TrialResult]:
    with db.session() as session:
        record = storage.get_study_record(session, name)
        if record is None:
            raise TunerError(f"no study named {name!r} in {db.url}")
        row = storage.get_trial_result(session, name, number)
        if row is None:
            raise TunerError(f"study {name!r} has no recorded trial {number}")
        session.expunge_all()
    if not row.manifest_json:
        raise TunerError(
            f"trial {number} of {name!r} has no manifest (recorded before replays existed, or "
            "it failed before training started); it cannot be replayed"
        )
    return record.spec_json, row


def replay_trial(
    db: storage.Database, study_name: str, trial_number: int, *, device: str = "cpu"
) -> Replay:
    """Re-run one recorded trial with its recorded seeds and configuration."""
    spec_json, row = _load(db, study_name, trial_number)
    spec, manifest = parse_spec(spec_json), dict(row.manifest_json or {})
    params = TrialParams(
        **{k: v for k, v in row.params_json.items() if k in TrialParams.__dataclass_fields__}
    )
    dev = resolve_device(device)
    task = build_task(spec.task)
    stop_at = row.epochs_run if row.stop_reason in EXTERNAL_STOPS else None

    def on_epoch(stats: EpochStats) -> StopReason | None:
        if stop_at is not None and stats.epoch >= stop_at:
            return row.stop_reason  # type: ignore[return-value]
        return None

    threads = torch.get_num_threads()
    torch.set_num_threads(int(manifest.get("deterministic", {}).get("num_threads", threads)))
    config, data = TrainConfig(**manifest["train"]), task.data.to(dev)
    try:
        population = manifest.get("population")
        if population:
            # Trained in a stack: replay it as a stack of one. Each member's slice of the
            # stacked computation does not depend on the others, so the numbers are the same.
            member = Member(
                trial_number, params, config, on_epoch, seed_number=manifest.get("seed_number")
            )
            (outcome,) = execute_population(
                [member],
                task=task,
                data=data,
                study_seed=spec.seed,
                device=dev,
                config=PopulationConfig(size=2, fast=bool(population.get("fast"))),
            )
        else:
            outcome = execute_trial(
                number=trial_number,
                params=params,
                task=task,
                data=data,
                config=config,
                study_seed=spec.seed,
                device=dev,
                on_epoch=on_epoch,
                seeds=[dict(s) for s in manifest["seeds"]],
            )
    finally:
        torch.set_num_threads(threads)
    recorded = manifest.get("versions", {})
    now = package_versions()
    drift = {k: (v, now.get(k, "?")) for k, v in recorded.items() if now.get(k) != v}
    return Replay(
        study_name, trial_number, row.value, row.stop_reason, row.epochs_run, outcome, drift
    )
