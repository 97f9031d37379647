"""bench/gpu_check.sh --dry: the whole GPU verification, end to end, on this CPU.

Every step runs on the current environment (no carried wheels, no CUDA): each prints JSON
lines, the checks that need no CUDA pass, and each line names what it left out for want of
CUDA. On 2 busy cores this takes a few minutes; select it with ``-m gpu_check_dry``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
NO_CUDA = "skipped: no CUDA"
IEEE = json.dumps(dict.fromkeys(("cudnn_conv", "cudnn_rnn", "matmul"), "ieee"))
TF32 = json.dumps(dict.fromkeys(("cudnn_conv", "cudnn_rnn", "matmul"), "tf32"))


@pytest.fixture(scope="module")
def lines(tmp_path_factory: pytest.TempPathFactory) -> list[dict[str, Any]]:
    work = tmp_path_factory.mktemp("gpu_check")
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "GPU_CHECK_DRY")}
    env.update(GPU_CHECK_WORK=str(work), PYTHON=sys.executable)
    done = subprocess.run(
        ["bash", "bench/gpu_check.sh", "--dry"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip(), done.stderr[-2000:]
    parsed = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    # the same lines went to the JSONL file beside the log
    copied = (work / "gpu_check.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in copied] == parsed
    return parsed


def _one(lines: list[dict[str, Any]], check: str, **match: Any) -> dict[str, Any]:
    found = [
        line
        for line in lines
        if line["check"] == check and all(line.get(k) == v for k, v in match.items())
    ]
    assert len(found) == 1, (check, match, [line["check"] for line in lines])
    return found[0]


pytestmark = pytest.mark.gpu_check_dry


def test_every_step_ran_on_the_cpu_and_passed(lines: list[dict[str, Any]]) -> None:
    failed = [(line["check"], line.get("error")) for line in lines if line.get("ok") is not True]
    assert failed == []
    counts = Counter(line["check"] for line in lines)
    assert counts["initializer"] > 10  # one line per initializer and model
    expected = {
        "install": 1,
        "environment": 1,
        "matmul_peaks": 1,
        "initializers": 1,
        "tuner_run_exact": 1,
        "tuner_run_fast": 1,
        "tuner_replay": 2,
        "tuner_check": 1,
        "tuner_run_slots": 1,
        "throughput": 4,
        "done": 1,
    }
    assert {check: counts[check] for check in expected} == expected
    assert set(counts) == {*expected, "initializer"}
    assert all(line["device"] == "cpu" and line["dry"] is True for line in lines)
    assert _one(lines, "done")["failed"] == ""
    assert _one(lines, "install")["wheels"] == 0  # the current environment, nothing carried


def test_what_needs_cuda_says_it_was_skipped(lines: list[dict[str, Any]]) -> None:
    steps = [line for line in lines if line["check"] not in ("install", "initializer", "done")]
    assert [line["check"] for line in steps if not line.get("dry_skipped")] == []
    assert all(line["dry_skipped"].startswith(NO_CUDA) for line in steps)
    env = _one(lines, "environment")
    assert env["cuda_available"] is False and env["device_name"] is None


def test_the_numeric_flags_are_recorded(lines: list[dict[str, Any]]) -> None:
    env = _one(lines, "environment")
    assert set(env["fp32_precision_default"]) == {"matmul", "cudnn_conv", "cudnn_rnn"}
    peaks = _one(lines, "matmul_peaks")
    assert [peaks[k]["fp32_precision"] for k in ("fp32", "tf32", "bf16")] == [
        "ieee",
        "tf32",
        "ieee",
    ]
    # what each worker held, in every trial's manifest: the CLI's default on a CPU is exact
    for variant, flags in (("exact", IEEE), ("fast", TF32), ("slots", IEEE)):
        run = _one(lines, f"tuner_run_{variant}")
        assert run["manifest_fp32_precision"] == {flags: run["trials"]}
    for variant in ("exact", "fast"):
        assert _one(lines, "tuner_replay", variant=variant)["exact"] is True
    for variant in ("fast", "sweep", "exact", "compile"):
        result = _one(lines, "throughput", variant=variant)["result"]
        assert result["mode"] == ("exact" if variant == "exact" else "fast")
        assert result["compiled"] is (variant == "compile")
        runs = result["sweep"] if variant in ("sweep", "exact") else [result["project"]]
        assert all(run["trained_in"] in result["peak_tflops"] for run in runs)
        assert result["peer"]["trained_in"] == "fp32"
