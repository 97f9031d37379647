"""A built-in model in muP, and what its trials' manifests record of the parametrization.

Under ``parametrization: mup`` the model's head is :class:`~tuner.mup.MuReadout` and every
parameter carries its base shape: the widths (hidden sizes, channels) are the dimensions
that change when the widths double (a reference model built on the meta device), each
``m = width / base_width`` times its base. Every width grows alike, so one multiplier m
describes the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from tuner.mup import MuReadout, set_width_multiplier
from tuner.spec import BuiltinTask

#: A built-in model's builder at the given widths, with the given head class.
Maker = Callable[[list[int], type[nn.Linear]], Callable[..., nn.Module]]


def mup_builder(make: Maker, widths: list[int], multiplier: float) -> Callable[..., nn.Module]:
    """Fresh models at ``widths`` in muP (base shapes set, parameters rescaled as
    ``mup.set_base_shapes`` does); they take the same knobs as the standard builder."""
    build = make(widths, MuReadout)
    reference = make([2 * w for w in widths], MuReadout)

    def build_mup(*args: Any, **knobs: Any) -> nn.Module:
        model = build(*args, **knobs)
        with torch.device("meta"):  # shapes only: nothing allocated, no random draw
            delta = reference(*args, **knobs)
        return set_width_multiplier(model, delta, multiplier)

    return build_mup


def width_records(spec: BuiltinTask) -> dict[str, Any]:
    """The manifest entries of the task's trials: ``parametrization`` (under mup: width,
    base width, multiplier) and ``transfer`` (a transferred study: where from, and the
    widths)."""
    records: dict[str, Any] = {}
    width = spec.width
    if spec.parametrization == "mup":
        records["parametrization"] = {
            "name": "mup",
            "width": width,
            "base_width": spec.base_width or width,
            "multiplier": spec.width_multiplier,
        }
    source = spec.transferred_from
    if source is not None:
        base = (spec.base_width or width) if spec.parametrization == "mup" else source.width
        records["transfer"] = {
            "source_study": source.study,
            "source_trial": source.trial,
            "source_width": source.width,
            "parametrization": spec.parametrization,
            "base_width": base,
            "width": width,
            "multiplier": width / base,
        }
    return records
