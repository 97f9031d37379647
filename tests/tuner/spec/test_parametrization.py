"""The parametrization fields of a built-in task: standard or mup, base_width, the source."""

from __future__ import annotations

from typing import Any

import pytest

from tuner.errors import SpecError
from tuner.spec import BuiltinTask, parse_spec


def _issues(task: dict[str, Any]) -> list[tuple[str, str]]:
    with pytest.raises(SpecError) as caught:
        parse_spec({"name": "s", "task": task})
    return [(issue.path, issue.msg) for issue in caught.value.issues]


@pytest.mark.parametrize(
    ("task", "path", "fragment"),
    [
        ({"parametrization": "mu-p"}, "task.parametrization", "'standard' or 'mup'"),
        (
            {"parametrization": "mup", "base_width": 0},
            "task.base_width",
            "greater than or equal to 1",
        ),
        ({"parametrization": "mup", "base_width": "wide"}, "task.base_width", "integer"),
        ({"base_width": 64}, "task.base_width", "only with parametrization: mup"),
        ({"parametrization": "mup", "hidden": []}, "task.hidden", "at least one hidden layer"),
        (
            {"model": "cnn", "channels": [], "parametrization": "mup"},
            "task.channels",
            "at least one convolution",
        ),
        (
            {"transferred_from": {"study": "a", "trial": -1, "width": 8}},
            "task.transferred_from.trial",
            "greater than or equal to 0",
        ),
    ],
)
def test_bad_parametrization_fields_are_named(
    task: dict[str, Any], path: str, fragment: str
) -> None:
    issues = _issues(task)
    assert any(p.startswith(path) and fragment in m for p, m in issues), issues


def test_mup_fields_parse_and_give_the_multiplier() -> None:
    spec = parse_spec(
        {
            "name": "s",
            "task": {
                "hidden": [512, 256],
                "parametrization": "mup",
                "base_width": 128,
                "transferred_from": {"study": "small", "trial": 3, "width": 128},
            },
        }
    )
    task = spec.task
    assert isinstance(task, BuiltinTask)
    assert (task.width, task.width_multiplier) == (512, 4.0)
    assert task.transferred_from is not None and task.transferred_from.trial == 3
    assert parse_spec(spec.to_json()) == spec  # round trip through JSON


def test_standard_is_the_default_and_has_multiplier_one() -> None:
    task = BuiltinTask(hidden=[64])
    assert (task.parametrization, task.base_width, task.width_multiplier) == ("standard", None, 1)
    assert BuiltinTask(hidden=[64], parametrization="mup").width_multiplier == 1.0  # at its base
