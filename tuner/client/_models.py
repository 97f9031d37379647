"""What the REST API answers, as the client reads it: typed, immutable, tolerant of new fields.

These mirror the service's response bodies without importing :mod:`api` (the engine never
does). Unknown fields are ignored, so a newer server does not break an older client. The
embedded path builds the same models from storage rows (``from_attributes``), so a report or
a leaderboard reads one shape whether the study ran here or on a service.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

Direction = Literal["maximize", "minimize"]
#: Study statuses after which nothing changes any more.
FINAL_STATUSES = frozenset({"completed", "cancelled", "failed"})


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, from_attributes=True)


class Trial(_Model):
    """One finished trial: a ``tuner_trial_results`` row."""

    study_name: str
    trial_number: int
    state: str  # complete, pruned, fail
    stop_reason: str
    initializer: str
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    value: float | None
    best_epoch: int | None
    epochs_run: int
    duration_s: float
    worker: str | None = None
    device: str | None = None
    started_at: datetime.datetime
    finished_at: datetime.datetime
    params_json: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class LayerDiagnostics(_Model):
    """One layer's signal at initialization (t=0), first layer first."""

    index: int
    name: str
    kind: str
    fan_in: int
    fan_out: int
    act_mean: float
    act_std: float
    preact_std: float
    dead_frac: float | None = None
    saturated_frac: float | None = None
    weight_std: float
    grad_std: float


class TrialSignal(_Model):
    """How a signal crosses the model at t=0: the input-output Jacobian's spectrum (mean and
    normalized variance of its squared singular values) and, for a fully connected tanh/sigmoid
    net, the mean-field figures; ``xi_c`` None when infinite (``chi_c`` 1) or not measured."""

    jacobian_mean_sq: float | None = None
    jacobian_spread: float | None = None
    jacobian_samples: int | None = None
    jacobian_skipped: str | None = None
    depth: int | None = None
    sigma_w2: float | None = None
    sigma_b2: float | None = None
    q_star: float | None = None
    chi_1: float | None = None
    c_star: float | None = None
    chi_c: float | None = None
    xi_c: float | None = None
    mean_field_skipped: str | None = None
    warning: str | None = None


class Replicate(_Model):
    """One seed pair's run of a trial trained with replicates."""

    replicate: int
    init_seed: int
    data_seed: int
    value: float | None
    best_value: float | None
    best_epoch: int | None
    epochs_run: int


class VarianceSource(_Model):
    """One source of variation across replicates: its ANOVA line and variance component."""

    ss: float
    df: int
    ms: float
    variance: float  # the variance component, truncated at 0 (over trials: averaged)
    std: float  # sqrt(variance), in the metric's units
    share: float | None = None  # of the components' sum (over trials: averaged)


class SeedVariance(_Model):
    """A crossed design's replicate values split into init seed, data order and residual."""

    init: VarianceSource
    data: VarianceSource
    residual: VarianceSource
    n_tables: int  # trials pooled
    n_values: int


class SeedVarianceGroup(SeedVariance):
    """Pooled over one initializer's complete trials, or over all of them (None)."""

    initializer: str | None = None


class TrialDetail(Trial):
    """A trial with what it ran under and its signal at t=0 (``GET .../trials/{number}``)."""

    n_replicates: int = 1
    value_std: float | None = None
    manifest: dict[str, Any] | None = None
    diagnostics: list[LayerDiagnostics] = Field(default_factory=list)
    signal: TrialSignal | None = None
    replicates: list[Replicate] = Field(default_factory=list)
    seed_variance: SeedVariance | None = None  # with replicates: {init, data}


class DepthProfile(_Model):
    """Mean t=0 signal per layer depth of one initializer's trials."""

    initializer: str
    layer_index: int
    n_trials: int
    act_std: float | None = None
    preact_std: float | None = None
    grad_std: float | None = None
    weight_std: float | None = None
    dead_frac: float | None = None
    saturated_frac: float | None = None


class TrialCounts(_Model):
    """Trials of a study by state: finished ones (results) and live ones (runs)."""

    complete: int = 0
    pruned: int = 0
    fail: int = 0
    running: int = 0
    pending: int = 0

    @property
    def finished(self) -> int:
        """Trials with a recorded result (a retried attempt counts as one too)."""
        return self.complete + self.pruned + self.fail


class Study(_Model):
    """A study: its status, trial counts, best trial so far and stored definition."""

    name: str
    status: str  # queued, running, completed, cancelled, failed
    metric: str
    direction: Direction
    n_trials: int
    created_at: datetime.datetime
    counts: TrialCounts = Field(default_factory=TrialCounts)
    best: Trial | None = None
    spec: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None  # why a failed study could not run
    links: dict[str, str] = Field(default_factory=dict)

    @property
    def done(self) -> bool:
        """True once the study is completed, cancelled or failed."""
        return self.status in FINAL_STATUSES


class StudyBrief(_Model):
    """A study as listed by ``GET /v1/studies``."""

    name: str
    status: str
    metric: str
    direction: Direction
    n_trials: int
    created_at: datetime.datetime
    links: dict[str, str] = Field(default_factory=dict)


class _Page(_Model):
    total: int
    limit: int
    offset: int


class StudyPage(_Page):
    items: list[StudyBrief]


class TrialPage(_Page):
    items: list[Trial]


class InitializerStats(_Model):
    """One initializer's trials: counts, and value statistics over the complete ones."""

    initializer: str
    count: int
    complete: int
    best: float | None
    mean: float | None
    median: float | None = None


class Summary(_Model):
    study: str
    metric: str
    direction: Direction
    initializers: list[InitializerStats]  # best initializer first
    importances: dict[str, float] | None = None
    importances_note: str | None = None
    diagnostics: list[DepthProfile] = Field(default_factory=list)
    seed_variance: list[SeedVarianceGroup] = Field(default_factory=list)  # every trial first


class CurrentTrial(_Model):
    study: str
    trial_number: int | None


class Worker(_Model):
    name: str
    host: str
    pid: int
    device: str
    slots: int
    started_at: datetime.datetime
    heartbeat_at: datetime.datetime
    current: list[CurrentTrial] = Field(default_factory=list)


class WorkerList(_Model):
    items: list[Worker]
    stale_after_s: float


@dataclass(frozen=True)
class Leaderboard:
    """A study with its best trials and per-initializer results: what reports show."""

    study: Study
    top: list[Trial]  # best first
    total: int  # finished trials, of which ``top`` are the first
    initializers: list[InitializerStats]  # best first
    seed_variance: list[SeedVarianceGroup] = field(default_factory=list)  # a crossed design
