"""Search dimensions: a fixed scalar, a list of choices, or a ``{low, high, log}`` range.

A dimension is written the same way everywhere in a spec (the five top-level
dimensions and every initializer parameter), so it is parsed by one tagged union.
The tags are wrapped in ``<...>`` so they can be dropped from error paths.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

FIXED, CHOICES, RANGE = "<fixed>", "<choices>", "<range>"
#: The largest integer a results column (PostgreSQL int4) holds.
INT32_MAX = 2**31 - 1
#: The most choices one dimension may list.
MAX_CHOICES = 1000
Int32 = Annotated[int, Field(ge=-INT32_MAX, le=INT32_MAX)]


class SpecModel(BaseModel):
    """A part of a study definition: unknown fields refused, immutable, floats finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class FloatRange(SpecModel):
    """A continuous range; ``log`` samples uniformly in log space."""

    low: float
    high: float
    log: bool = False
    step: float | None = None

    @model_validator(mode="after")
    def _check(self) -> FloatRange:
        if not (math.isfinite(self.low) and math.isfinite(self.high)):
            raise ValueError("low and high must be finite numbers")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) must be <= high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError(
                f"a log range cannot touch 0 or go below it (low is {self.low:g}); "
                "use a positive low, or list 0 as a separate choice"
            )
        if self.log and self.step is not None:
            raise ValueError("step cannot be combined with log")
        if self.step is not None and self.step <= 0:
            raise ValueError(f"step must be > 0, got {self.step:g}")
        return self


class IntRange(SpecModel):
    """An integer range, both ends included."""

    low: Int32
    high: Int32
    log: bool = False
    step: Int32 = 1

    @model_validator(mode="after")
    def _check(self) -> IntRange:
        if self.low > self.high:
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"a log range needs low >= 1, got {self.low}")
        if self.step < 1:
            raise ValueError(f"step must be >= 1, got {self.step}")
        if self.log and self.step != 1:
            raise ValueError("step cannot be combined with log")
        return self


def _kind(value: Any) -> str:
    if isinstance(value, dict | FloatRange | IntRange):
        return RANGE
    if isinstance(value, list | tuple):
        return CHOICES
    return FIXED


FloatDim = Annotated[
    Annotated[float, Tag(FIXED)]
    | Annotated[list[float], Field(max_length=MAX_CHOICES), Tag(CHOICES)]
    | Annotated[FloatRange, Tag(RANGE)],
    Discriminator(_kind),
]
IntDim = Annotated[
    Annotated[Int32, Tag(FIXED)]
    | Annotated[list[Int32], Field(max_length=MAX_CHOICES), Tag(CHOICES)]
    | Annotated[IntRange, Tag(RANGE)],
    Discriminator(_kind),
]
# An initializer parameter: numbers may be searched, strings and booleans only chosen.
ParamDim = Annotated[
    Annotated[float | int | str | bool, Tag(FIXED)]
    | Annotated[list[float | int | str | bool], Field(max_length=MAX_CHOICES), Tag(CHOICES)]
    | Annotated[FloatRange, Tag(RANGE)],
    Discriminator(_kind),
]


def dim_values(dim: Any) -> list[Any]:
    """The concrete values a dimension names (ranges give their two ends)."""
    if isinstance(dim, FloatRange | IntRange):
        return [dim.low, dim.high]
    if isinstance(dim, list | tuple):
        return list(dim)
    return [dim]


def check_bound(dim: Any, *, minimum: float, inclusive: bool, what: str) -> None:
    """Raise ValueError with a sentence when any value of ``dim`` is below ``minimum``."""
    if isinstance(dim, list) and not dim:
        raise ValueError("a list of choices cannot be empty")
    if isinstance(dim, list) and len(set(dim)) != len(dim):
        raise ValueError(f"choices must be distinct, got {dim}")
    for value in dim_values(dim):
        bad = value < minimum if inclusive else value <= minimum
        if bad or (isinstance(value, float) and not math.isfinite(value)):
            sign = ">=" if inclusive else ">"
            raise ValueError(f"{what} must be {sign} {minimum:g}, got {value!r}")


def is_searched(dim: Any) -> bool:
    return isinstance(dim, list | FloatRange | IntRange)


def fail(loc: tuple[str | int, ...], message: str, value: Any = None) -> ValidationError:
    """A validation error at ``loc`` relative to the validating model.

    Raised inside a validator, pydantic nests it under the model's own path, so
    cross-field checks still name the exact field that is wrong.
    """
    error = PydanticCustomError("spec", "{message}", {"message": message})
    return ValidationError.from_exception_data(
        "StudySpec", [InitErrorDetails(type=error, loc=loc, input=value)]
    )


def resolve_file(value: str, context: dict[str, Any] | None) -> Path:
    """A user-given file path, resolved against the spec's folder.

    With ``confine`` in the context (definitions that arrive over the network) the path
    must stay inside ``base_dir``; that is checked before anything about the file is
    looked at, so a refusal reveals nothing about what exists elsewhere.
    """
    context = context or {}
    base = Path(context.get("base_dir") or Path.cwd()).resolve()
    path = (base / value).resolve()
    if context.get("confine"):
        if context.get("base_dir") is None:
            raise ValueError("this server takes no file paths (its TUNER_DATA_DIR is not set)")
        if not path.is_relative_to(base):
            raise ValueError(f"file paths must stay inside the server's data folder {base}")
    return path
