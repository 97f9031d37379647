"""bench/throughput.py: a run's FLOP/s count against the peak of what its trials ran in."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from bench.throughput import PeakPlan, peak_flops, peak_kind, peak_plan, trained_in
from tuner.population import Member, PopulationConfig, bf16_matmuls, execute_population
from tuner.search import TrialParams
from tuner.spec import parse_spec
from tuner.tasks import build_task
from tuner.training import TrainConfig, fp32_precision, precision_for, precision_in_effect

IEEE = precision_for(False)
TF32 = precision_for(True)


def _manifest(device: str, flags: dict[str, str], matmuls: str | None = None) -> dict[str, Any]:
    """The parts of a manifest the peak reads, shaped as tuner.training.manifest writes them."""
    manifest: dict[str, Any] = {"device": device, "deterministic": {"fp32_precision": flags}}
    if matmuls is not None:
        manifest["population"] = {"size": 4, "fast": matmuls == "bfloat16", "matmuls": matmuls}
    return manifest


@pytest.mark.parametrize(
    ("manifests", "kind"),
    [
        # CUDA with no flag: fast by default, populations in bf16 (this used to count as fp32)
        ([_manifest("cuda:0", TF32, "bfloat16")], "bf16"),
        ([_manifest("cuda:0", TF32)], "tf32"),  # --fast, one trial at a time: TF32 matmuls
        ([_manifest("cuda:0", IEEE, "float32")], "fp32"),  # --exact
        ([_manifest("cuda:0", IEEE)], "fp32"),
        ([_manifest("cpu", TF32, "bfloat16")], "bf16"),  # --fast on a CPU with bf16 dots
        ([_manifest("cpu", TF32, "float32")], "fp32"),  # TF32 flags do nothing on a CPU
        ([_manifest("cpu", IEEE)], "fp32"),
        # a run whose trials ran in different precisions counts against the fastest
        ([_manifest("cuda:0", TF32), _manifest("cuda:0", TF32, "bfloat16")], "bf16"),
        ([_manifest("cuda:0", IEEE), _manifest("cuda:0", TF32)], "tf32"),
        ([], "fp32"),
    ],
)
def test_the_peak_follows_what_the_trials_recorded(
    manifests: list[dict[str, Any]], kind: str
) -> None:
    assert peak_kind(manifests) == kind


def test_old_manifests_without_the_precision_count_as_fp32() -> None:
    assert trained_in({"device": "cuda:0", "deterministic": {"tf32_matmul": True}}) == "fp32"


@pytest.mark.parametrize("fast", [True, False], ids=["fast", "exact"])
def test_the_peak_of_a_real_population_on_this_cpu(fast: bool) -> None:
    spec = parse_spec(
        {
            "name": "tp",
            "task": {"model": "mlp", "hidden": [16], "dataset": "digits"},
            "search": {"initializer": ["xavier_uniform"], "lr": 0.1, "batch_size": 64},
        }
    )
    task = build_task(spec.task)
    assert task.data is not None
    params = TrialParams("xavier_uniform", "xavier_uniform", 0.1, 0.0, 64, 1)
    config = TrainConfig(lr=0.1, weight_decay=0.0, batch_size=64, patience=1, max_epochs=1)
    with fp32_precision(precision_for(fast)):  # as the worker holds it
        outcomes = execute_population(
            [Member(n, params, config) for n in range(2)],
            task=task,
            data=task.data,
            study_seed=0,
            device=torch.device("cpu"),
            config=PopulationConfig(size=2, fast=fast),
        )
    expected = "bf16" if fast and bf16_matmuls(torch.device("cpu")) else "fp32"
    assert peak_kind(o.manifest for o in outcomes) == expected


def test_peaks_time_several_matmuls_and_leave_the_flags_as_they_were() -> None:
    assert peak_plan(torch.device("cuda")).k > 1 and peak_plan(torch.device("cpu")).k > 1
    before = precision_in_effect()
    for kind in ("fp32", "tf32", "bf16"):
        flops = peak_flops(torch.device("cpu"), kind, PeakPlan(n=32, k=3, rounds=2))
        assert math.isfinite(flops) and flops > 0
    assert precision_in_effect() == before
