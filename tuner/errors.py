"""The engine's exceptions: one root, so callers can catch everything the engine raises."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class TunerError(Exception):
    """Root of every error the tuning engine raises on purpose."""


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a study definition: where it is and what is wrong."""

    loc: tuple[str | int, ...]
    msg: str

    @property
    def path(self) -> str:
        """The field path as a user writes it, e.g. ``search.initializer[2].std``."""
        out = ""
        for part in self.loc:
            if isinstance(part, int):
                out += f"[{part}]"
            else:
                out += f".{part}" if out else part
        return out or "<root>"

    def __str__(self) -> str:
        return f"{self.path}: {self.msg}"


class SpecError(TunerError):
    """A study definition is invalid; ``issues`` names every field that is wrong."""

    def __init__(self, issues: Sequence[SpecIssue]) -> None:
        self.issues = list(issues)
        lines = "\n".join(f"  {issue}" for issue in self.issues)
        super().__init__(f"invalid study definition ({len(self.issues)} problem(s)):\n{lines}")


class InitializerError(TunerError):
    """An initializer cannot be applied to a model (wrong layer kinds, bad parameters)."""


class TaskError(TunerError):
    """A task (model + data) cannot be built: unknown plugin, unreadable data file, ..."""


class StudyStateError(TunerError):
    """The study's state does not allow the request (e.g. cancelling a completed study)."""


class DeviceLost(TunerError):
    """The worker's device can no longer be trusted (a CUDA error such as a device-side
    assert poisons the whole CUDA context): every later computation on it would fail.

    Not a trial's failure: the trials running on the device are handed back unfinished,
    and the worker stops using the device (its process exits non-zero).
    """

    def __init__(self, device: str, reason: str) -> None:
        self.device, self.reason = device, reason
        super().__init__(f"device {device} lost, worker stops: {reason}")
