"""Request and response bodies of the REST API, separate from the ORM models.

Routes build these from :mod:`storage` rows; an ORM object is never returned as-is.
"""

import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

import storage

StudyStatus = Literal["queued", "running", "completed", "cancelled", "failed"]
TrialState = Literal["complete", "pruned", "fail"]
#: Columns the trial list can be ordered by (``storage.ORDERABLE_COLUMNS``; a test keeps
#: the two in step).
OrderBy = Literal[
    "value",
    "trial_number",
    "started_at",
    "finished_at",
    "duration_s",
    "epochs_run",
    "best_epoch",
    "lr",
    "weight_decay",
    "batch_size",
    "patience",
    "initializer",
]
#: The contract columns of ``tuner_trial_results`` (the public contract), in the order served.
TRIAL_COLUMNS: tuple[str, ...] = storage.CONTRACT_COLUMNS


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Trial(_Out):
    """One finished trial: a ``tuner_trial_results`` row."""

    study_name: str
    trial_number: int
    state: TrialState
    stop_reason: str = Field(
        description="patience, pruned, diverged, max_epochs, timeout, error or cancelled"
    )
    initializer: str
    lr: float
    weight_decay: float
    batch_size: int
    patience: int
    value: float | None = Field(description="the best epoch's metric; null when there is none")
    best_epoch: int | None
    epochs_run: int
    duration_s: float
    worker: str | None
    device: str | None
    started_at: datetime.datetime
    finished_at: datetime.datetime
    params_json: dict[str, Any] = Field(description="the trial's parameters, Optuna's names")
    error: str | None = Field(description="the error message of a trial that ended in error")


class LayerDiagnostics(BaseModel):
    """One layer's signal at initialization (one forward/backward on the calibration batch)."""

    index: int = Field(description="depth: 0 is the first parameterized layer")
    name: str
    kind: str
    fan_in: int
    fan_out: int
    act_mean: float = Field(description="after the activation (last layer: raw output)")
    act_std: float
    preact_std: float
    dead_frac: float | None = Field(description="ReLU family: units never active on the batch")
    saturated_frac: float | None = Field(description="tanh/sigmoid: outputs within 1% of a bound")
    weight_std: float
    grad_std: float


class TrialSignal(BaseModel):
    """How a signal crosses the model at t=0, from theory; null figures were not measured (the
    ``*_skipped`` sentence says why)."""

    jacobian_mean_sq: float | None = Field(
        description="m_JJT: the mean squared singular value of the input-output Jacobian, "
        "pooled over the calibration samples (Pennington et al. 2017)"
    )
    jacobian_spread: float | None = Field(
        description="sigma^2_JJT / m_JJT^2: their normalized variance (0: dynamical isometry)"
    )
    jacobian_samples: int | None = Field(description="calibration samples pooled")
    jacobian_skipped: str | None
    depth: int | None = Field(description="Linear layers of the fully connected net")
    sigma_w2: float | None = Field(description="fan_in Var(W) of the hidden layers, measured")
    sigma_b2: float | None = Field(description="Var(b) of the hidden layers, measured")
    q_star: float | None = Field(description="the length map's fixed point (Schoenholz 2017)")
    chi_1: float | None = Field(description="< 1 ordered, 1 critical, > 1 chaotic")
    c_star: float | None = Field(description="the correlation map's fixed point")
    chi_c: float | None = Field(description="the correlation map's slope at c*")
    xi_c: float | None = Field(
        description="the depth scale -1/ln(chi_c); null when infinite (chi_c = 1) or unmeasured"
    )
    mean_field_skipped: str | None
    warning: str | None = Field(description="set when the depth exceeds 6 xi_c")


class Replicate(BaseModel):
    replicate: int
    init_seed: int
    data_seed: int
    value: float | None = Field(description="at the trial's best epoch (of the mean curve)")
    best_value: float | None
    best_epoch: int | None
    epochs_run: int


class VarianceSource(BaseModel):
    """One source of variation across replicates: its ANOVA line and variance component."""

    ss: float = Field(description="sum of squares")
    df: int = Field(description="degrees of freedom")
    ms: float = Field(description="mean square, ss / df")
    variance: float = Field(
        description="the variance component, truncated at 0 (over trials: each trial's, averaged)"
    )
    std: float = Field(description="sqrt(variance), in the metric's units")
    share: float | None = Field(
        description="variance over the three components' sum (over trials: each trial's, "
        "averaged); null when there is no spread"
    )


class SeedVariance(BaseModel):
    """A crossed design's replicate values split by two-way ANOVA without replication: init
    seed (rows), data order (columns), and the residual (their interaction and the rest).
    Over several trials sums of squares and df add; components and shares are averaged."""

    init: VarianceSource
    data: VarianceSource
    residual: VarianceSource
    n_tables: int = Field(description="trials pooled")
    n_values: int = Field(description="replicate values in them")


class SeedVarianceGroup(SeedVariance):
    """The decomposition pooled over one initializer's complete trials, or over all of them."""

    initializer: str | None = Field(description="null: every complete trial")


class TrialDetail(Trial):
    """One trial with its details: t=0 diagnostics, replicates and the replay manifest."""

    n_replicates: int
    value_std: float | None = Field(description="std of the replicates' values")
    manifest: dict[str, Any] | None = Field(
        description="seeds, package versions, device, deterministic flags, init per layer"
    )
    diagnostics: list[LayerDiagnostics]
    signal: TrialSignal | None = Field(description="signal propagation at t=0, if measured")
    replicates: list[Replicate] = Field(description="one per seed when replicates > 1")
    seed_variance: SeedVariance | None = Field(
        None, description="init vs data order vs residual, when replicates: {init, data}"
    )


class Page(BaseModel):
    total: int = Field(description="how many items match, over all pages")
    limit: int
    offset: int


class TrialPage(Page):
    items: list[Trial]


class TrialCounts(BaseModel):
    """Trials of a study by state: finished ones from the results, live ones from the runs."""

    complete: int = 0
    pruned: int = 0
    fail: int = 0
    running: int = 0
    pending: int = 0


class StudyLinks(BaseModel):
    self: str
    trials: str
    best: str
    summary: str
    cancel: str


class StudyBrief(BaseModel):
    """A study as listed: what it is and where to look further."""

    name: str
    status: StudyStatus
    metric: str
    direction: Literal["maximize", "minimize"]
    n_trials: int = Field(description="finished trials the study ends with")
    created_at: datetime.datetime
    links: StudyLinks


class Study(StudyBrief):
    """A study with its progress, its best trial so far and its definition."""

    counts: TrialCounts
    best: Trial | None = Field(description="the best complete trial so far, if any")
    spec: dict[str, Any] = Field(description="the stored study definition")
    error: str | None = Field(None, description="why a failed study could not run")


class StudyPage(Page):
    items: list[StudyBrief]


class InitializerStats(BaseModel):
    """Aggregates of one initializer's trials; value statistics cover complete trials."""

    initializer: str
    count: int = Field(description="finished trials (any state)")
    complete: int
    best: float | None
    mean: float | None
    median: float | None


class DepthProfile(BaseModel):
    """Mean t=0 figures of one layer depth over one initializer's trials."""

    initializer: str
    layer_index: int
    n_trials: int
    act_std: float | None
    preact_std: float | None
    grad_std: float | None
    weight_std: float | None
    dead_frac: float | None
    saturated_frac: float | None


class Summary(BaseModel):
    study: str
    metric: str
    direction: Literal["maximize", "minimize"]
    initializers: list[InitializerStats] = Field(description="best initializer first")
    importances: dict[str, float] | None = Field(
        description="Optuna's parameter importances (sum to 1), most important first"
    )
    importances_note: str | None = Field(
        None, description="why importances are null, when they are"
    )
    diagnostics: list[DepthProfile] = Field(
        default_factory=list,
        description="mean t=0 figures per initializer and layer depth",
    )
    seed_variance: list[SeedVarianceGroup] = Field(
        default_factory=list,
        description="init vs data order vs residual over complete trials with a crossed "
        "design: every trial first, then each initializer",
    )


class CurrentTrial(BaseModel):
    study: str
    trial_number: int | None = Field(description="null until the run has asked Optuna")


class Worker(BaseModel):
    name: str
    host: str
    pid: int
    device: str
    slots: int
    started_at: datetime.datetime
    heartbeat_at: datetime.datetime
    current: list[CurrentTrial]


class WorkerList(BaseModel):
    items: list[Worker]
    stale_after_s: float = Field(description="workers silent for longer are not listed")


class Health(BaseModel):
    status: Literal["ok"]
    initializers: int


class Readiness(BaseModel):
    status: Literal["ready", "unavailable"]
    revision: str | None = None
    detail: str | None = None


class Message(BaseModel):
    """An error: one sentence."""

    detail: str
