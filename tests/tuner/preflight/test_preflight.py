"""Preflight: a healthy task passes; shuffled labels, a frozen model and a bad init are flagged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_digits

from tuner.preflight import LR_DECADES, PreflightReport, middle, prune_initializers, run_preflight
from tuner.spec import FloatRange, IntRange, StudySpec, parse_spec


def spec(task: dict[str, Any], sampler: str = "tpe", **search: Any) -> StudySpec:
    return parse_spec({"name": "pre", "task": task, "search": search, "sampler": sampler})


def strict_json(report: PreflightReport) -> dict[str, Any]:
    """The report's JSON, refusing NaN/inf as an HTTP response would."""
    data: dict[str, Any] = json.loads(json.dumps(report.to_json(), allow_nan=False))
    return data


DIGITS_MLP = {"model": "mlp", "hidden": [32], "dataset": "digits"}


def test_a_healthy_task_passes_every_check_and_proposes_an_lr_range() -> None:
    healthy = spec(DIGITS_MLP, initializer=["kaiming_normal", "xavier_uniform"], lr=[1e-3, 10.0])
    report = run_preflight(healthy)
    assert report.ok and report.verdict == "ok" and report.problems == []
    assert report.overfit.status == "pass"
    assert report.overfit.final_loss is not None and report.overfit.target_loss is not None
    assert report.overfit.final_loss <= report.overfit.target_loss
    lr_test = report.lr_test
    assert lr_test.status == "pass" and lr_test.optimizer == "sgd"
    assert [d.lr for d in lr_test.decades] == list(LR_DECADES)
    assert lr_test.decades[-1].status == "diverged"  # SGD at lr 10 blows up
    assert lr_test.diverges_at is not None and lr_test.best_lr is not None
    assert lr_test.best_lr < lr_test.diverges_at
    proposed = lr_test.proposed_lr
    assert proposed is not None and proposed["log"] is True
    assert proposed["low"] == pytest.approx(lr_test.best_lr / 10)
    assert lr_test.best_lr <= proposed["high"] < lr_test.diverges_at
    assert report.generalization.status == "pass"
    assert report.generalization.val_accuracy is not None
    assert report.generalization.val_accuracy > 0.5
    assert [c.label for c in report.initializers] == ["kaiming_normal", "xavier_uniform"]
    assert all(c.layers and not c.flagged and c.error is None for c in report.initializers)
    assert report.reference_initializer == "kaiming_normal"
    # search.lr lists 10, where the range test diverged: a note, not a problem
    assert any(n.startswith("search.lr reaches 10") for n in report.notes)
    data = strict_json(report)
    assert data["verdict"] == "ok" and data["pruned_spec"] is None
    # deterministic: the same spec gives the same figures
    again = strict_json(run_preflight(healthy))
    assert {**again, "duration_s": 0} == {**data, "duration_s": 0}


def test_labels_shuffled_against_inputs_are_flagged_by_the_generalization_check(
    tmp_path: Path,
) -> None:
    digits = load_digits()
    labels = np.random.default_rng(0).permutation(digits.target)
    np.savez(tmp_path / "shuffled.npz", x=digits.data, y=labels)
    task = {"model": "mlp", "hidden": [32], "dataset": {"path": str(tmp_path / "shuffled.npz")}}
    report = run_preflight(spec(task))
    assert not report.ok and report.verdict == "problems"
    assert report.overfit.status == "pass"  # one batch of noise can still be memorized
    assert report.generalization.status == "fail"
    assert report.generalization.val_accuracy is not None
    assert report.generalization.chance_accuracy is not None
    assert report.generalization.accuracy_margin is not None
    assert (
        report.generalization.val_accuracy
        <= report.generalization.chance_accuracy + report.generalization.accuracy_margin
    )
    assert report.problems == [f"generalization: {report.generalization.reason}"]
    assert "labels may not match inputs" in report.problems[0]
    assert strict_json(report)["verdict"] == "problems"


def test_a_frozen_model_is_flagged_by_the_overfit_check() -> None:
    frozen = spec({"plugin": "frozen-mlp", "dataset": "digits"}, initializer=["kaiming_normal"])
    report = run_preflight(frozen)
    assert report.overfit.status == "fail"
    assert report.overfit.reason is not None and "no trainable parameters" in report.overfit.reason
    assert report.lr_test.status == "skipped" and report.lr_test.decades == []
    assert report.generalization.status == "skipped"
    assert report.problems == [f"overfit one batch: {report.overfit.reason}"]
    # the t=0 probe needs a gradient: its failure is noted, not blamed on the initializer
    assert report.initializers[0].error is not None and not report.initializers[0].flagged
    assert any("could not be measured" in note for note in report.notes)
    strict_json(report)


def test_a_vanishing_initializer_is_flagged_and_pruned() -> None:
    deep = spec(
        {"model": "mlp", "hidden": [32] * 8, "dataset": "digits"},
        initializer=["kaiming_normal", {"name": "normal", "std": 1e-4}],
        sampler="random",
    )
    report = run_preflight(deep, prune_inits=True)
    by_label = {c.label: c for c in report.initializers}
    assert not by_label["kaiming_normal"].flagged
    assert by_label["normal"].params == {"std": 1e-4}
    assert by_label["normal"].problems[0].startswith("vanishing signal")
    assert report.problems == [f"initializer normal: {by_label['normal'].problems[0]}"]
    assert report.reference_initializer == "kaiming_normal"
    assert report.pruned == ["normal"] and report.pruned_spec is not None
    pruned = parse_spec(report.pruned_spec)
    assert [e.name for e in pruned.search.initializer] == ["kaiming_normal"]
    assert pruned.task == deep.task and pruned.sampler == deep.sampler


def test_pruning_never_drops_every_initializer() -> None:
    two = spec(DIGITS_MLP, initializer=["zeros", {"name": "normal", "std": 1e-4}])
    kept, dropped, note = prune_initializers(two, {"zeros", "normal"})
    assert kept == two and dropped == [] and "every initializer was flagged" in note
    kept, dropped, _ = prune_initializers(two, {"zeros"})
    assert dropped == ["zeros"] and [e.name for e in kept.search.initializer] == ["normal"]
    kept, dropped, _ = prune_initializers(two, set())
    assert kept == two and dropped == []


def test_searched_values_are_measured_at_the_middle_of_their_range() -> None:
    assert middle(FloatRange(low=1e-4, high=1.0, log=True)) == pytest.approx(1e-2)
    assert middle(FloatRange(low=0.0, high=1.0, step=0.3)) == pytest.approx(0.6)
    assert middle(IntRange(low=16, high=256, log=True)) == 64
    assert middle([256, 32, 64]) == 64
    assert middle(["fan_out", "fan_in"]) == "fan_out"
    assert middle(0.5) == 0.5


def test_layer_groups_are_measured_with_their_first_choice() -> None:
    """A group's own initializer changes what the check measures: an output layer of zeros
    under a healthy hidden stack shows as a dead last layer, with the group named."""
    grouped = spec(
        {"model": "mlp", "hidden": [32, 32], "dataset": "digits"},
        initializer=["kaiming_normal"],
        initializer_groups={"output": ["zeros", "xavier_normal"]},
    )
    (check,) = run_preflight(grouped).initializers
    assert check.groups == {"output": "zeros"}
    assert check.layers[-1].weight_std == 0.0 and check.layers[0].weight_std > 0


def _variance_scaling(scale: float) -> dict[str, Any]:
    return {
        "name": "variance_scaling",
        "scale": scale,
        "mode": "fan_in",
        "distribution": "untruncated_normal",
    }


def test_a_tanh_net_deeper_than_its_depth_scale_is_flagged_and_pruned() -> None:
    """sigma_w^2 0.5 is ordered (xi_c = 1.44): 12 layers are more than 6 xi_c = 8.7; the
    critical sigma_w^2 1 is not flagged. The two entries share a name, so their labels carry
    their parameters, and the healthy one is the training checks' reference."""
    deep = spec(
        {"model": "mlp", "hidden": [32] * 11, "activation": "tanh", "dataset": "digits"},
        initializer=[_variance_scaling(0.5), _variance_scaling(1.0)],
        sampler="random",
    )
    report = run_preflight(deep, prune_inits=True)
    ordered, critical = report.initializers
    assert ordered.signal is not None and critical.signal is not None
    assert ordered.signal.depth == 12 and ordered.signal.chi_1 == pytest.approx(0.5, rel=0.1)
    warning = ordered.signal.warning
    assert warning is not None and warning.startswith(
        "signal cannot cross the network: depth 12 > 6 xi_c"
    )
    assert f"initializer {ordered.label}: {warning}" in report.problems
    assert critical.signal.warning is None and not critical.flagged
    assert critical.signal.chi_1 == pytest.approx(1.0, rel=0.1)
    assert critical.signal.jacobian_samples == 32 and critical.signal.jacobian_spread is not None
    assert report.reference_initializer == critical.label
    assert report.pruned == [ordered.label]
    assert strict_json(report)["initializers"][0]["signal"]["warning"] == warning
