"""The knobs a trial trains under: its TrainConfig, lr schedule, gradient clipping, model knobs.

A knob searched in the spec (``tuner.spec.KNOBS``) arrives in the trial's extra
hyperparameters; a knob left out keeps the task's setting (optimizer, momentum) or the
default (constant lr, no clipping, no dropout, the task's activation).
"""

from __future__ import annotations

from typing import Any

from tuner.search import TrialParams
from tuner.spec import MODEL_KNOBS, StudySpec
from tuner.tasks import Task
from tuner.training._loop import TrainConfig


def train_config(params: TrialParams, task: Task, spec: StudySpec) -> TrainConfig:
    """What one trial trains under: its five dimensions, its knobs, the study's budget."""
    knobs = params.extra
    clip = knobs.get("clip_norm")
    return TrainConfig(
        lr=params.lr,
        weight_decay=params.weight_decay,
        batch_size=params.batch_size,
        patience=params.patience,
        max_epochs=spec.budget.max_epochs,
        optimizer=str(knobs.get("optimizer", task.optimizer)),
        momentum=float(knobs.get("momentum", task.momentum)),
        min_delta=spec.budget.min_delta,
        metric=spec.metric,
        direction=spec.resolved_direction,
        schedule=str(knobs.get("schedule", "constant")),
        step_size=int(knobs.get("step_size", 10)),
        step_factor=float(knobs.get("step_factor", 0.1)),
        warmup_epochs=int(knobs.get("warmup_epochs", 0)),
        clip_norm=None if clip is None else float(clip),
    )


def model_knobs(params: TrialParams) -> dict[str, Any]:
    """The trial's knobs that shape a built-in model (``dropout``, ``activation``)."""
    return {k: params.extra[k] for k in MODEL_KNOBS if k in params.extra}


def activation_of(task: Task, params: TrialParams) -> str:
    """The activation the trial's model uses (a searched one, else the task's)."""
    return str(params.extra.get("activation", task.activation))
