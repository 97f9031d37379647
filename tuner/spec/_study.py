"""The study definition: one pydantic model, loaded from YAML or JSON.

Every check a definition needs runs here, before anything is written: a spec
that parses is one the engine can run. Errors come out as :class:`SpecError`
with the field path (``search.initializer[2].std``) and a sentence.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tuner.errors import SpecError, SpecIssue, TunerError
from tuner.spec._dims import SpecModel, dim_values, fail
from tuner.spec._knobs import KNOBS
from tuner.spec._options import PrunerConfig, SamplerConfig
from tuner.spec._replicates import Replicates, SeedDesign, replicate_count
from tuner.spec._search import SearchSpec, builtin_applicability, check_grid_compatible
from tuner.spec._task import (
    BUILTIN_GROUPS,
    SEED_MAX,
    BuiltinTask,
    TaskSpec,
)

METRICS: dict[str, Literal["maximize", "minimize"]] = {
    "val_accuracy": "maximize",
    "val_loss": "minimize",
    "val_mse": "minimize",
    "val_mae": "minimize",
    "val_r2": "maximize",
}
#: What the built-in models report, per objective (val_loss: cross-entropy, or the MSE).
BUILTIN_METRICS = {
    "classification": ("val_accuracy", "val_loss"),
    "regression": ("val_loss", "val_mse", "val_mae", "val_r2"),
}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
#: Bounds on what a spec may ask (ints fit the results columns; seeds fit numpy's).
MAX_TRIALS = 1_000_000
MAX_EPOCHS = 100_000
MAX_TIMEOUT_S = 366 * 24 * 3600.0
_METRIC = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")


class Budget(SpecModel):
    n_trials: int = Field(
        20, ge=1, le=MAX_TRIALS, description="finished trials the study ends with"
    )
    max_epochs: int = Field(20, ge=1, le=MAX_EPOCHS)
    timeout_s: float | None = Field(
        None, gt=0, le=MAX_TIMEOUT_S, description="wall-clock limit of a run"
    )
    max_retries: int = Field(2, ge=0, le=100)
    min_delta: float = Field(0.0, ge=0.0, description="smallest change that counts as better")


class StudySpec(SpecModel):
    """A whole study definition, as the README's "What a study looks like" shows it."""

    name: str
    task: TaskSpec = Field(default_factory=BuiltinTask)
    metric: str = Field(
        "val_accuracy",
        description="val_accuracy or val_loss for built-in models; any name a plugin reports",
    )
    direction: Literal["maximize", "minimize"] | None = Field(
        None, description="which way the metric is better; inferred for val_accuracy/val_loss"
    )
    search: SearchSpec = Field(default_factory=SearchSpec)
    budget: Budget = Field(default_factory=Budget)
    sampler: SamplerConfig = Field(default_factory=lambda: SamplerConfig(name="tpe"))
    pruner: PrunerConfig = Field(default_factory=lambda: PrunerConfig(name="median"))
    seed: int = Field(0, ge=0, le=SEED_MAX)
    #: Seeds per configuration: each trial trains this many replicates (init and data-order
    #: seeds separate) in lockstep and is judged on their mean; a design {init, data} crosses
    #: every init seed with every data-order seed.
    replicates: Replicates = 1

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "must start with a letter or digit and hold only letters, digits, '.', '_' "
                f"or '-' (at most 128 characters), got {value!r}"
            )
        return value

    @field_validator("metric")
    @classmethod
    def _metric(cls, metric: str, info: ValidationInfo) -> str:
        task = info.data.get("task")
        if isinstance(task, BuiltinTask) and metric not in BUILTIN_METRICS[task.objective]:
            known = ", ".join(BUILTIN_METRICS[task.objective])
            raise ValueError(f"built-in models report {known} ({task.objective}); got {metric!r}")
        if not _METRIC.match(metric):
            raise ValueError(
                "a metric name starts with a letter or '_' and holds letters, digits, '_' or "
                f"'.' (at most 64 characters), got {metric!r}"
            )
        return metric

    @model_validator(mode="after")
    def _direction_given(self) -> StudySpec:
        if self.direction is None and self.metric not in METRICS:  # direction left out
            message = f"say which way {self.metric!r} is better: maximize or minimize"
            raise fail(("direction",), message)
        return self

    @field_validator("search")
    @classmethod
    def _search_fits_task(cls, search: SearchSpec, info: ValidationInfo) -> SearchSpec:
        task = info.data.get("task")
        if isinstance(task, BuiltinTask):
            choices: dict[tuple[str, ...], list[Any]] = {("initializer",): search.initializer}
            for group, entries in search.initializer_groups.items():
                if group not in BUILTIN_GROUPS:
                    message = (
                        f"model {task.model!r} has no {group} layers; its groups: "
                        + ", ".join(BUILTIN_GROUPS)
                    )
                    raise fail(("initializer_groups", group), message, group)
                choices[("initializer_groups", group)] = entries
            for where, entries in choices.items():
                for index, entry in enumerate(entries):
                    reason = builtin_applicability(entry.name, task.model)
                    if reason:
                        raise fail((*where, index), reason, entry.name)
            for name in search.extras:
                if name not in KNOBS:
                    known = ", ".join(KNOBS)
                    message = f"built-in models take the five dimensions and {known}; "
                    raise fail((name,), message + "other names go to a task plugin")
        return search

    @field_validator("sampler", "pruner", mode="before")
    @classmethod
    def _bare_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("sampler")
    @classmethod
    def _sampler_fits_search(cls, sampler: SamplerConfig, info: ValidationInfo) -> SamplerConfig:
        search = info.data.get("search")
        if sampler.name == "grid" and isinstance(search, SearchSpec):
            check_grid_compatible(search)
        return sampler

    @property
    def n_replicates(self) -> int:
        """Replicates each trial trains: ``replicates``, or init x data for a design."""
        return replicate_count(self.replicates)

    @property
    def seed_design(self) -> SeedDesign | None:
        """The crossed design, when ``replicates`` is one."""
        return self.replicates if isinstance(self.replicates, SeedDesign) else None

    @property
    def resolved_direction(self) -> Literal["maximize", "minimize"]:
        return self.direction or METRICS.get(self.metric, "maximize")

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`parse_spec` turns back into an equal spec."""
        return self.model_dump(mode="json", exclude_none=True)


def _issue(error: Mapping[str, Any]) -> SpecIssue:
    loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("<")))
    msg = str(error["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    return SpecIssue(loc=loc, msg=msg)


def parse_spec(data: Any, *, base_dir: Path | None = None, confine: bool = False) -> StudySpec:
    """Validate a spec given as a mapping; relative data paths resolve against ``base_dir``.

    ``confine`` (for definitions from the network) keeps every file path inside
    ``base_dir``, and refuses file paths altogether when there is none.
    """
    if not isinstance(data, Mapping):
        raise SpecError([SpecIssue((), "a study definition must be a mapping of fields")])
    try:
        context = {
            "base_dir": base_dir if confine else (base_dir or Path.cwd()),
            "confine": confine,
        }
        return StudySpec.model_validate(dict(data), context=context)
    except ValidationError as exc:
        raise SpecError([_issue(e) for e in exc.errors()]) from None


def read_definition(path: str | Path) -> dict[str, Any]:
    """A study definition file (YAML, or JSON by suffix) as a mapping, not yet validated."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise TunerError(f"cannot read study definition {file}: {exc.strerror}") from None
    try:
        data = json.loads(text) if file.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise SpecError([SpecIssue((), f"{file} is not valid YAML/JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise SpecError([SpecIssue((), "a study definition must be a mapping of fields")])
    return data


def load_spec(path: str | Path) -> StudySpec:
    """Read a YAML or JSON study definition from a file."""
    return parse_spec(read_definition(path), base_dir=Path(path).resolve().parent)


__all__ = [
    "METRICS",
    "Budget",
    "SearchSpec",
    "StudySpec",
    "dim_values",
    "load_spec",
    "parse_spec",
]


def with_overrides(
    definition: Mapping[str, Any], *, name: str | None = None, timeout: float | None = None
) -> dict[str, Any]:
    """The definition with another study name and/or ``budget.timeout_s``."""
    data = dict(definition)
    if name:
        data["name"] = name
    budget = data.get("budget")
    if timeout is not None and (budget is None or isinstance(budget, Mapping)):
        data["budget"] = {**(budget or {}), "timeout_s": timeout}
    return data
