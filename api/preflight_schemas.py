"""The body of ``POST /v1/preflight``: :class:`tuner.PreflightReport` as JSON (its ``to_json``)."""

from typing import Any, Literal

from pydantic import BaseModel, Field

CheckStatus = Literal["pass", "fail", "skipped"]


class OverfitCheck(BaseModel):
    """Adam on one fixed batch: a model that can learn drives the loss near zero."""

    status: CheckStatus
    reason: str | None = Field(description="why it failed or was skipped")
    rows: int
    steps: int
    lr: float
    initial_loss: float | None
    final_loss: float | None
    final_accuracy: float | None
    target_loss: float | None = Field(description="the loss to get under to pass")


class LrDecade(BaseModel):
    lr: float
    final_loss: float | None = Field(description="null when the loss became NaN/inf")
    change: float | None
    status: Literal["improved", "flat", "diverged"]


class LrRange(BaseModel):
    low: float
    high: float
    log: bool


class LrRangeTest(BaseModel):
    """Each decade's lr for a few steps from the same weights."""

    status: CheckStatus
    reason: str | None
    optimizer: str
    batch_size: int
    steps: int
    initial_loss: float | None
    decades: list[LrDecade]
    best_lr: float | None
    diverges_at: float | None = Field(description="the smallest lr that diverged")
    proposed_lr: LrRange | None = Field(description="a search.lr range for the spec")


class GeneralizationCheck(BaseModel):
    """A short run: validation figures at chance mean the labels do not follow the inputs."""

    status: CheckStatus
    reason: str | None
    lr: float | None
    epochs: int
    val_accuracy: float | None
    val_loss: float | None
    chance_accuracy: float | None
    accuracy_margin: float | None
    chance_loss: float | None


class LayerSignal(BaseModel):
    """One layer's signal at initialization (the trials' t=0 diagnostics)."""

    index: int
    name: str
    kind: str
    fan_in: int
    fan_out: int
    act_mean: float
    act_std: float
    preact_std: float
    dead_frac: float | None
    saturated_frac: float | None
    weight_std: float
    grad_std: float


class SignalPropagation(BaseModel):
    """The input-output Jacobian's spectrum and the mean-field figures at t=0 (as a trial's)."""

    jacobian_mean_sq: float | None
    jacobian_spread: float | None = Field(description="sigma^2_JJT / m_JJT^2")
    jacobian_samples: int | None
    jacobian_skipped: str | None
    depth: int | None
    sigma_w2: float | None
    sigma_b2: float | None
    q_star: float | None
    chi_1: float | None
    c_star: float | None
    chi_c: float | None
    mean_field_skipped: str | None
    warning: str | None = Field(description="set when the depth exceeds 6 xi_c")


class InitializerCheck(BaseModel):
    label: str
    name: str
    params: dict[str, Any] = Field(description="the values measured (middles of ranges)")
    layers: list[LayerSignal]
    problems: list[str]
    error: str | None = Field(description="why the signal could not be measured")
    signal: SignalPropagation | None = None


class Preflight(BaseModel):
    """Every check of a preflight, and the verdict: ``ok`` or ``problems``."""

    verdict: Literal["ok", "problems"]
    spec_name: str
    task: str
    device: str
    seed: int
    reference_initializer: str = Field(description="the initializer the training checks used")
    overfit: OverfitCheck
    lr_test: LrRangeTest
    generalization: GeneralizationCheck
    initializers: list[InitializerCheck]
    problems: list[str] = Field(description="one sentence per problem, naming its check")
    notes: list[str]
    pruned: list[str] = Field(description="initializers dropped (with prune_inits)")
    pruned_spec: dict[str, Any] | None = Field(description="with prune_inits: the spec to run")
    duration_s: float
