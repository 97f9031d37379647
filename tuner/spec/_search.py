"""The search space as written: the five dimensions and the initializer entries.

Optuna parameter names are the contract's dimension names (``initializer``, ``lr``,
``weight_decay``, ``batch_size``, ``patience``); an initializer's own searched parameters
are conditional on it and named ``<label>.<param>``. Sampling lives in :mod:`tuner.search`.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from tuner.errors import InitializerError
from tuner.spec._dims import (
    FloatDim,
    FloatRange,
    IntDim,
    IntRange,
    ParamDim,
    check_bound,
    dim_values,
    fail,
    is_searched,
    resolve_file,
)
from tuner.spec._initializers import INITIALIZERS, LAYER_GROUPS, WHOLE_MODEL, canonical_name
from tuner.spec._knobs import knob_problem

_PARAM_DIM: TypeAdapter[Any] = TypeAdapter(ParamDim)


class InitializerEntry(BaseModel):
    """One initializer choice: a name (aliases accepted) and its parameters.

    Parameters sit beside the name (``{name: normal, std: {low: .., high: ..}}``);
    each is fixed, a list of choices, or a range, and is checked against the
    initializer's own parameter table.
    """

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    name: str

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any, info: ValidationInfo) -> Any:
        if isinstance(data, InitializerEntry):
            return data
        if isinstance(data, str):
            data = {"name": data}
        if not isinstance(data, dict) or not isinstance(data.get("name"), str):
            raise fail((), "an initializer is a name or a mapping with a 'name' field", data)
        try:
            name = canonical_name(data["name"])
        except InitializerError as exc:
            raise fail(("name",), str(exc), data["name"]) from None
        info_ = INITIALIZERS[name]
        parsed: dict[str, Any] = {"name": name}
        for key, raw in data.items():
            if key == "name":
                continue
            if key not in info_.params:
                takes = ", ".join(info_.params) or "no parameters"
                raise fail((key,), f"{name} has no parameter {key!r} (it takes {takes})", raw)
            try:
                dim = _PARAM_DIM.validate_python(raw)
            except ValidationError as exc:
                raise fail((key,), exc.errors()[0]["msg"], raw) from None
            parsed[key] = _check_param(name, key, dim, info)
        return parsed

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _check_param(init: str, key: str, dim: Any, info: ValidationInfo) -> Any:
    param = INITIALIZERS[init].params[key]
    if isinstance(dim, FloatRange) and param.kind not in ("float", "int"):
        raise fail((key,), f"{init}.{key} is a {param.kind} and cannot be a range", None)
    if isinstance(dim, list) and not dim:
        raise fail((key,), "a list of choices cannot be empty", dim)
    if param.kind == "path":
        try:
            resolved = [str(resolve_file(str(v), info.context)) for v in dim_values(dim)]
        except ValueError as exc:
            raise fail((key,), str(exc), None) from None
        for value in resolved:
            if not Path(value).is_file():
                raise fail((key,), f"file not found: {value}", value)
        return resolved if isinstance(dim, list) else resolved[0]
    for value in dim_values(dim):
        problem = param.check(value)
        if problem:
            raise fail((key,), problem, value)
    return dim


def label_entries(entries: list[InitializerEntry]) -> list[tuple[str, InitializerEntry]]:
    """A distinct, readable label per entry: the name, or name(fixed params) when repeated."""
    names = [e.name for e in entries]
    labels: list[str] = []
    for index, entry in enumerate(entries):
        label = entry.name
        if names.count(entry.name) > 1:
            fixed = [f"{k}={v}" for k, v in entry.params.items() if not is_searched(v)]
            label = f"{entry.name}({', '.join(fixed)})" if fixed else f"{entry.name}#{index}"
        if label in labels:
            label = f"{label}#{index}"
        labels.append(label)
    return list(zip(labels, entries, strict=True))


def builtin_applicability(name: str, model: str) -> str | None:
    """Why an initializer cannot apply to a built-in model, or None."""
    needs = INITIALIZERS[name].needs
    if needs == "conv" and model == "mlp":
        return f"{name} needs a convolutional layer; model 'mlp' has none"
    return None


def check_grid_compatible(search: SearchSpec) -> None:
    """Grid search enumerates lists only: ranges have no grid."""
    for dim_name in ("lr", "weight_decay", "batch_size", "patience"):
        if isinstance(getattr(search, dim_name), FloatRange | IntRange):
            raise fail((), f"sampler grid needs search.{dim_name} to be a list, not a range")
    for entry in [*search.initializer, *itertools.chain(*search.initializer_groups.values())]:
        for key, dim in entry.params.items():
            if is_searched(dim):
                raise fail((), f"sampler grid needs initializer {entry.name}'s {key} to be fixed")
    for name, dim in search.extras.items():
        if isinstance(dim, FloatRange | IntRange):
            raise fail((), f"sampler grid needs search.{name} to be a list, not a range")
    if not grid_space(search):
        raise fail((), "sampler grid needs at least one search dimension given as a list")


def grid_space(search: SearchSpec) -> dict[str, list[Any]]:
    """The GridSampler search space: every searched dimension's choices."""
    space: dict[str, list[Any]] = {}
    if len(search.initializer) > 1:
        space["initializer"] = [label for label, _ in label_entries(search.initializer)]
    for group, entries in search.initializer_groups.items():
        if len(entries) > 1:
            space[f"initializer.{group}"] = [label for label, _ in label_entries(entries)]
    for dim_name in ("lr", "weight_decay", "batch_size", "patience"):
        dim = getattr(search, dim_name)
        if isinstance(dim, list) and len(dim) > 1:
            space[dim_name] = list(dim)
    for name, dim in search.extras.items():
        if isinstance(dim, list) and len(dim) > 1:
            space[name] = list(dim)
    return space


#: The five dimensions every study searches; any other name in ``search:`` is an extra one.
DIMENSIONS = ("initializer", "lr", "weight_decay", "batch_size", "patience")
_EXTRA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


def _extra_dim(name: str, raw: Any) -> Any:
    """An extra hyperparameter: fixed, a list of choices, or an int or float range (a range
    whose bounds are both integers is an int range)."""
    if not _EXTRA_NAME.match(name):
        message = "an extra hyperparameter's name holds letters, digits and '_' (at most 64)"
        raise fail((name,), message, name)
    try:
        if isinstance(raw, dict) and all(
            isinstance(raw.get(k), int) and not isinstance(raw.get(k), bool)
            for k in ("low", "high")
        ):
            return IntRange.model_validate(raw)
        dim = _PARAM_DIM.validate_python(raw)
    except ValidationError as exc:
        raise fail((name,), exc.errors()[0]["msg"], raw) from None
    if isinstance(dim, list) and not dim:
        raise fail((name,), "a list of choices cannot be empty", dim)
    bounds = [dim.low, dim.high] if isinstance(dim, FloatRange | IntRange) else dim_values(dim)
    for value in bounds:
        problem = knob_problem(name, value)
        if problem:
            raise fail((name,), problem, value)
    return dim


class SearchSpec(BaseModel):
    """The five searched dimensions, and any extra named hyperparameters a task takes."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    initializer: list[InitializerEntry] = Field(
        default_factory=lambda: [InitializerEntry(name="kaiming_normal")], max_length=100
    )
    #: Per layer group, its own initializer choices, searched on their own (``initializer``
    #: covers every layer no group here claims).
    initializer_groups: dict[str, list[InitializerEntry]] = Field(default_factory=dict)
    lr: FloatDim = Field(0.01, description="learning rate")
    weight_decay: FloatDim = Field(0.0, description="L2 lambda")
    batch_size: IntDim = 128
    patience: IntDim = Field(5, description="epochs without improvement before stopping")

    @field_validator("initializer", mode="before")
    @classmethod
    def _as_list(cls, v: Any) -> Any:
        return v if isinstance(v, list) else [v]

    @field_validator("initializer")
    @classmethod
    def _not_empty(cls, v: list[InitializerEntry]) -> list[InitializerEntry]:
        if not v:
            raise ValueError("list at least one initializer")
        return v

    @field_validator("initializer_groups", mode="before")
    @classmethod
    def _groups_as_lists(cls, v: Any) -> Any:
        if not isinstance(v, dict):
            return v
        for group in v:
            if group not in LAYER_GROUPS:
                known = ", ".join(LAYER_GROUPS)
                raise fail((group,), f"unknown layer group {group!r}; the groups: {known}", group)
        return {g: entries if isinstance(entries, list) else [entries] for g, entries in v.items()}

    @field_validator("initializer_groups")
    @classmethod
    def _groups_fill_weights(
        cls, v: dict[str, list[InitializerEntry]]
    ) -> dict[str, list[InitializerEntry]]:
        for group, entries in v.items():
            if not entries:
                raise fail((group,), "list at least one initializer for the group")
            for index, entry in enumerate(entries):
                if entry.name in WHOLE_MODEL:
                    message = (
                        f"{entry.name} applies to the whole model, not to a layer group; "
                        "give it in search.initializer"
                    )
                    raise fail((group, index, "name"), message, entry.name)
        return v

    @field_validator("lr")
    @classmethod
    def _lr(cls, v: Any) -> Any:
        check_bound(v, minimum=0.0, inclusive=False, what="lr")
        return v

    @field_validator("weight_decay")
    @classmethod
    def _wd(cls, v: Any) -> Any:
        check_bound(v, minimum=0.0, inclusive=True, what="weight_decay")
        return v

    @field_validator("batch_size")
    @classmethod
    def _bs(cls, v: Any) -> Any:
        check_bound(v, minimum=1, inclusive=True, what="batch_size")
        return v

    @field_validator("patience")
    @classmethod
    def _patience(cls, v: Any) -> Any:
        check_bound(v, minimum=1, inclusive=True, what="patience")
        return v

    @model_validator(mode="after")
    def _extras_parsed(self) -> SearchSpec:
        extra = self.__pydantic_extra__
        if extra:
            for name, raw in list(extra.items()):
                extra[name] = _extra_dim(name, raw)
        return self

    @property
    def extras(self) -> dict[str, Any]:
        """The extra hyperparameters by name (each fixed, a list of choices, or a range)."""
        return dict(self.__pydantic_extra__ or {})
