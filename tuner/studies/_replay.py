"""Replay: re-run a recorded trial from its manifest and compare with what was stored.

The manifest holds every seed, the training configuration, the thread count, the fp32
precision (TF32 or not) and the versions the trial ran with. On CPU the same code, seeds
and thread count give the same floating-point operations in the same order, so the
replayed metric equals the stored one exactly. Stops the training loop cannot reproduce by
itself (pruning, a timeout, a cancel: decisions made outside the trial) are re-applied at
the recorded epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

import storage
from tuner.errors import TunerError
from tuner.population import Member, PopulationConfig, execute_population
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.tasks import build_task
from tuner.training import (
    EpochStats,
    StopReason,
    TrainConfig,
    TrialOutcome,
    deterministic_kernels,
    execute_trial,
    fp32_precision,
    intra_op_threads,
    package_versions,
    resolve_device,
)

#: The version from which initializer names follow their library exactly (gain: auto explicit).
NAMES_CHANGED_IN = (0, 3)
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
    recorded_device: str = "cpu"  # where the trial ran (its manifest's device)
    replayed_device: str = "cpu"

    @property
    def exact(self) -> bool:
        """Replayed on the device it was recorded on, by a version whose initializer names mean
        what they meant then: only then can it match bit for bit."""
        return self.recorded_device == self.replayed_device and not self.names_changed

    @property
    def names_changed(self) -> bool:
        """Recorded before 0.3.0, when initializer names took their gain from the activation
        (the manifest's ``layers`` hold the gain each layer really got)."""
        recorded = self.version_drift.get("init-tuner", ("",))[0]
        major_minor = tuple(int(p) for p in recorded.split(".")[:2] if p.isdigit())
        return len(major_minor) == 2 and major_minor < NAMES_CHANGED_IN

    @property
    def note(self) -> str | None:
        """One line when the replay cannot be exact, else None."""
        if self.names_changed:
            return (
                "not exact: recorded by init-tuner "
                f"{self.version_drift['init-tuner'][0]}; since 0.3.0 initializer names mean what "
                "torch.nn.init and Keras mean (the manifest's layers show what was applied then)"
            )
        if self.exact:
            return None
        return f"not exact: recorded on {self.recorded_device}, replayed on {self.replayed_device}"

    @property
    def matches(self) -> bool:
        """Exactly the stored metric, stop reason and epoch count."""
        return (
            self.outcome.value == self.stored_value
            and self.outcome.stop_reason == self.stored_stop
            and self.outcome.epochs_run == self.stored_epochs
        )


def _load_rows(
    db: storage.Database, name: str, numbers: list[int]
) -> tuple[Any, dict[int, storage.TrialResult]]:
    """The study's spec and the recorded rows of these trials (missing ones left out)."""
    with db.session() as session:
        record = storage.get_study_record(session, name)
        if record is None:
            raise TunerError(f"no study named {name!r} in {db.shown_url}")
        rows = {n: row for n in numbers if (row := storage.get_trial_result(session, name, n))}
        session.expunge_all()
    return record.spec_json, rows


def recorded_precision(manifest: Mapping[str, Any]) -> dict[str, str] | None:
    """The fp32 precision a manifest says its trial trained at; None when it does not say.

    Older manifests recorded only the legacy matmul flag, ``tf32_matmul`` (a bool).
    """
    flags = manifest.get("deterministic") or {}
    if isinstance(flags.get("fp32_precision"), Mapping):
        return {str(k): str(v) for k, v in flags["fp32_precision"].items()}
    if isinstance(flags.get("tf32_matmul"), bool):
        return {"matmul": "tf32" if flags["tf32_matmul"] else "ieee"}
    return None


def _member(row: storage.TrialResult) -> Member:
    """A recorded trial as it entered its population, stopped where it was stopped."""
    manifest = row.manifest_json or {}
    stop_at = row.epochs_run if row.stop_reason in EXTERNAL_STOPS else None

    def on_epoch(stats: EpochStats) -> StopReason | None:
        if stop_at is not None and stats.epoch >= stop_at:
            return row.stop_reason  # type: ignore[return-value]
        return None

    params = TrialParams.from_json(row.params_json)
    config = TrainConfig(**manifest["train"])
    return Member(row.trial_number, params, config, on_epoch, manifest.get("seed_number"))


def replay_device(study_name: str, trial_number: int, recorded: str, asked: str | None) -> str:
    """The device to replay on: the one asked for, else the recorded one if this host has it.

    A trial recorded on a device this host lacks is refused in one line, unless another
    device is asked for (the replay is then not exact, and says so)."""
    if asked is not None:
        return str(resolve_device(asked))
    try:
        return str(resolve_device(recorded))
    except TunerError as exc:
        raise TunerError(
            f"trial {trial_number} of {study_name!r} ran on {recorded} and cannot be replayed "
            f"exactly on this host ({exc}); pass --device cpu to replay it anyway, not exactly"
        ) from None


def replay_trial(
    db: storage.Database, study_name: str, trial_number: int, *, device: str | None = None
) -> Replay:
    """Re-run one recorded trial with its recorded seeds and configuration.

    On the device the trial ran on (its manifest's) unless ``device`` says otherwise; on
    another device the metric may differ in the last bits, so :attr:`Replay.exact` is False.

    A trial trained in a population is replayed in that population: its recorded mates
    train beside it again, in the same order. On one thread each member's slice of the
    stacked computation is independent of the others; on several, how a batched matmul is
    split among threads depends on the stack's size, so the whole stack is re-run.
    """
    spec_json, rows = _load_rows(db, study_name, [trial_number])
    row = rows.get(trial_number)
    if row is None:
        raise TunerError(f"study {study_name!r} has no recorded trial {trial_number}")
    if not row.manifest_json:
        raise TunerError(
            f"trial {trial_number} of {study_name!r} has no manifest (recorded before replays "
            "existed, or it failed before training started); it cannot be replayed"
        )
    spec, manifest = parse_spec(spec_json), dict(row.manifest_json)
    recorded_device = str(manifest.get("device", "cpu"))
    dev = torch.device(replay_device(study_name, trial_number, recorded_device, device))
    task = build_task(spec.task)
    recorded_threads = manifest.get("deterministic", {}).get("num_threads")
    data = None if task.data is None else task.data.to(dev)
    precision = recorded_precision(manifest)
    deterministic = bool(manifest.get("deterministic", {}).get("algorithms"))
    with (
        intra_op_threads(None if recorded_threads is None else int(recorded_threads)),
        contextlib.nullcontext() if precision is None else fp32_precision(precision),
        deterministic_kernels(dev, on=deterministic),
    ):
        population = manifest.get("population")
        if population:
            mates = [int(n) for n in population.get("members", [trial_number])]
            _, recorded = _load_rows(db, study_name, mates)
            if set(recorded) != set(mates):  # a mate's row is gone: the member on its own
                mates, recorded = [trial_number], {trial_number: row}
            # a mate without a manifest failed before it was built: it never joined the stack
            mates = [n for n in mates if recorded[n].manifest_json]
            _, cpu_data = task.model_and_data()
            outcomes = execute_population(
                [_member(recorded[n]) for n in mates],
                task=task,
                data=cpu_data.to(dev),
                study_seed=spec.seed,
                device=dev,
                config=PopulationConfig(
                    size=len(mates) + 1,
                    fast=bool(population.get("fast")),
                    compile=bool(population.get("compiled")),
                ),
            )
            outcome = outcomes[mates.index(trial_number)]
        else:
            member = _member(row)
            outcome = execute_trial(
                number=trial_number,
                params=member.params,
                task=task,
                data=data,
                config=member.config,
                study_seed=spec.seed,
                device=dev,
                on_epoch=member.on_epoch,
                seeds=[dict(s) for s in manifest["seeds"]],
            )
    recorded_versions = manifest.get("versions", {})
    now = package_versions()
    drift = {k: (v, now.get(k, "?")) for k, v in recorded_versions.items() if now.get(k) != v}
    return Replay(
        study_name,
        trial_number,
        row.value,
        row.stop_reason,
        row.epochs_run,
        outcome,
        drift,
        recorded_device=recorded_device,
        replayed_device=str(dev),
    )
