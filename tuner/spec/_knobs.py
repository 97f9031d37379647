"""The tuning rules the product knows beyond the five dimensions: searchable like the rest.

Each name may stand in ``search:`` (fixed, a list of choices, or a range). The optimizer's
knobs and the learning-rate schedule act in the built-in loop and through a training
function's ``ctx.optimizer``/``ctx.scheduler``/``ctx.clip_gradients``; ``dropout`` and
``activation`` shape the built-in models. Any other extra name is a task plugin's own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from tuner.spec._initializers import ACTIVATIONS

OPTIMIZERS = ("sgd", "adam", "adamw")
SCHEDULES = ("constant", "step", "cosine")


def _one_of(choices: tuple[str, ...]) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        return None if value in choices else f"one of {', '.join(choices)}, got {value!r}"

    return check


def _number(
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = True,
    integer: bool = False,
) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        kind = int if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind):
            return f"{'an integer' if integer else 'a number'}, got {value!r}"
        too_low = value <= low if low_open else value < low
        too_high = value >= high if high_open else value > high
        if too_low or too_high or not math.isfinite(value):
            lower = f"> {low:g}" if low_open else f">= {low:g}"
            upper = "" if math.isinf(high) else f" and {'<' if high_open else '<='} {high:g}"
            return f"{lower}{upper}, got {value!r}"
        return None

    return check


#: Knob name -> (what it is, the check of one value: None when it is fine).
KNOBS: dict[str, tuple[str, Callable[[Any], str | None]]] = {
    "optimizer": ("sgd (with momentum), adam or adamw", _one_of(OPTIMIZERS)),
    "momentum": ("SGD's momentum", _number(low=0.0, high=1.0)),
    "schedule": ("the learning-rate schedule", _one_of(SCHEDULES)),
    "step_size": ("epochs between step decays", _number(low=1, integer=True)),
    "step_factor": (
        "the step decay's factor",
        _number(low=0.0, high=1.0, low_open=True, high_open=False),
    ),
    "warmup_epochs": ("epochs of linear warm-up", _number(low=0, integer=True)),
    "clip_norm": ("the gradients' global norm limit", _number(low=0.0, low_open=True)),
    "dropout": ("dropout after each hidden layer", _number(low=0.0, high=1.0)),
    "activation": ("the built-in model's activation", _one_of(ACTIVATIONS)),
}
#: Knobs that shape a built-in model (a plugin's build_model() cannot take them).
MODEL_KNOBS = ("dropout", "activation")


def knob_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be knob ``name``'s (None when it can, or ``name`` is no knob)."""
    if name not in KNOBS:
        return None
    what, check = KNOBS[name]
    problem = check(value)
    return None if problem is None else f"{name} ({what}) must be {problem}"
