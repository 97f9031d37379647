"""Claiming runs: one at a time, or as many of one study as a population takes.

Each claim is atomic against the study's budget (:func:`storage.claim_run`). A study's
spec, task and data on this worker's device are read once and kept (:class:`StudyContext`),
with the size of the populations its trials train in, decided on its first claim.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import torch

import storage
from tuner.population import (
    MEMORY_SHARE,
    PopulationConfig,
    largest_batch,
    population_size,
    sampler_cap,
    stacks_search,
)
from tuner.spec import StudySpec, parse_spec
from tuner.tasks import DataSplit, Task, build_task, check_output_width
from tuner.training import (
    TrialOutcome,
    free_memory,
    settle_stream,
    survive_out_of_memory,
)
from tuner.worker._asking import asks_in_memory
from tuner.worker._config import WorkerConfig

log = logging.getLogger("tuner.worker")


@dataclass
class StudyContext:
    spec: StudySpec
    task: Task
    data: DataSplit | None  # None: the task's training function loads its own
    population: int | None = None  # trials a slot claims at once; None: not decided yet


class Claims:
    """Claims of worker ``worker`` on ``device``, and the contexts of the studies claimed."""

    def __init__(
        self,
        db: storage.Database,
        worker: str,
        device: torch.device,
        config: WorkerConfig,
        tasks: dict[str, Task] | None = None,
    ) -> None:
        self.db, self.worker, self.device, self.config = db, worker, device, config
        self._tasks = dict(tasks or {})
        for name, task in self._tasks.items():  # a hand-made Task skipped build_task's check
            if task.build_model is not None and task.data is not None:
                check_output_width(name, task.build_model, task.data)
        self._contexts: dict[str, StudyContext] = {}

    def claim(self) -> storage.Claim | None:
        """A run of any study this worker serves, or None when nothing is claimable."""
        with self.db.session() as session:
            return storage.claim_run(
                session, worker=self.worker, device=str(self.device), studies=self.config.studies
            )

    def idle(self) -> bool:
        """Whether the studies this worker serves (without ``studies``: every queued or
        running study) have no trial left to claim, none pending or running, and no lost
        run left to settle (a run held elsewhere may still be lost: its retry needs a worker)."""
        studies = self.config.studies
        with self.db.session() as session:
            if studies is None:
                names = [
                    r.name
                    for s in storage.ACTIVE_STATUSES
                    for r in storage.list_study_records(session, status=s)
                ]
            else:
                names = list(studies)
            budget = storage.claimable(session, studies)
            counts = [storage.count_runs_by_state(session, n) for n in names]
            unsettled = storage.unsettled_runs(session, names)  # retries that may still come
        live = any(c.get("running", 0) or c.get("pending", 0) for c in counts)
        return not budget and not live and unsettled == 0

    def forget(self, name: str) -> None:
        """Drop study ``name``'s context (it failed: nothing of it is kept)."""
        self._contexts.pop(name, None)

    def context(self, name: str, spec_json: dict[str, object]) -> StudyContext:
        """Study ``name``'s spec, task and data on this device (built on its first claim)."""
        if name not in self._contexts:
            spec = parse_spec(spec_json)
            task = self._tasks.get(name) or build_task(spec.task)
            data = None if task.data is None else self._on_device(name, task.data)
            self._contexts[name] = StudyContext(spec, task, data)
        return self._contexts[name]

    def _on_device(self, name: str, data: DataSplit) -> DataSplit:
        """The study's data on this device, for all its trials; where it does not fit, left
        where it is: each trial then moves it itself, and records running out of memory."""
        try:
            moved = data.to(self.device)
            settle_stream(self.device)  # every slot's stream reads it
            return moved
        except Exception as exc:
            survive_out_of_memory(exc, self.device)
            log.warning("study %s: its data does not fit on %s; each trial moves it", name, exc)
        free_memory(self.device)
        return data

    def after_population(self, ctx: StudyContext, name: str, outcome: TrialOutcome) -> None:
        """Claim smaller populations of study ``name`` once one of them ran out of memory."""
        facts = outcome.manifest.get("population") or {}
        smaller: int | None = None
        if facts.get("out_of_memory"):
            smaller = int(facts["size"])
        if (outcome.error or "").startswith("out of memory"):
            smaller = 1  # even alone, or its build ran out: one trial at a time
        if smaller is not None and (ctx.population is None or smaller < ctx.population):
            log.warning("study %s: populations of %d from now on (out of memory)", name, smaller)
            ctx.population = smaller

    def population(self, ctx: StudyContext) -> int:
        """Trials of this study to claim at once: 1 unless they can train as one stack."""
        if ctx.population is None:
            spec, wanted = ctx.spec, self.config.population
            lone = spec.n_replicates > 1 or not asks_in_memory(spec)  # lockstep, asked one by one
            if wanted == 1 or lone or not stacks_search(spec.search):  # or a per-trial knob
                ctx.population = 1
                if (wanted or 0) > 1 and spec.n_replicates > 1:
                    log.warning(
                        "study %s: %d replicates train in lockstep, one trial at a time (not "
                        "in populations of %d)",
                        spec.name,
                        spec.n_replicates,
                        wanted,
                    )
            else:
                batch = largest_batch(spec.search.batch_size)
                share = MEMORY_SHARE / self.config.slots  # slots on one device share it
                config = PopulationConfig(size=wanted or None, share=share)
                size = population_size(ctx.task, batch, self.device, config)
                cap = None if wanted else sampler_cap(spec.sampler.name, spec.budget.n_trials)
                ctx.population = size if cap is None else min(size, cap)
        return ctx.population

    def claim_more(self, claim: storage.Claim) -> list[storage.Claim]:
        """The claim, plus as many more runs of its study as one population takes."""
        k = self.population(self.context(claim.study_name, claim.spec_json))
        claims = [claim]
        if k > 1:
            try:
                with self.db.session() as session:  # each claim checks the budget on its own
                    for _ in range(k - 1):
                        more = storage.claim_run(
                            session,
                            worker=self.worker,
                            device=str(self.device),
                            studies=[claim.study_name],
                        )
                        if more is None:
                            break
                        claims.append(more)
            except storage.StorageError as exc:  # rolled back: train the one claim alone
                log.warning("claiming a population failed: %s", exc)
                claims = [claim]
        return claims
