"""Study definitions and tokens for tests against a served app (tests/harness.py serves it)."""

from __future__ import annotations

ADMIN, READ = "admin-secret", "read-secret"
TOKENS = f"admin:{ADMIN},read:{READ}"


def tiny_spec(name: str, **overrides: object) -> dict[str, object]:
    """A study that trains in about a second: an MLP on digits, 2 epochs."""
    spec: dict[str, object] = {
        "name": name,
        "task": {"model": "mlp", "hidden": [16], "dataset": "digits"},
        "search": {
            "initializer": ["xavier_uniform", "kaiming_normal"],
            "lr": {"low": 0.01, "high": 0.1, "log": True},
            "batch_size": 64,
        },
        "budget": {"n_trials": 2, "max_epochs": 2},
        "pruner": "none",
    }
    spec.update(overrides)
    return spec


def endless_spec(name: str) -> dict[str, object]:
    """A study that cannot finish during a test (cancel it when done with it)."""
    spec = tiny_spec(name, budget={"n_trials": 50, "max_epochs": 400})
    spec["search"] = {
        "initializer": "xavier_uniform",
        "lr": 0.05,
        "batch_size": 64,
        "patience": 400,
    }
    return spec
