"""The pieces of ``tuner worker --ray`` that need no cluster: the device an actor trains on
from what Ray assigned it, the options, and the error without Ray installed."""

from __future__ import annotations

import sys

import pytest
from typer.testing import CliRunner

from tuner.cli import app
from tuner.errors import TunerError
from tuner.scale import RAY_EXTRA, RayPool, RayWorkers, assigned_device, gpu_share, import_ray
from tuner.scale import worker_device as device_for
from tuner.worker import WorkerConfig


def test_the_first_gpu_ray_made_visible_is_cuda_0() -> None:
    assert assigned_device((), None) == "cpu"  # no GPU reserved: the CPU
    assert assigned_device(("3",), "3") == "cuda:0"  # Ray set CUDA_VISIBLE_DEVICES=3
    assert assigned_device(("1",), "1,2") == "cuda:0"
    assert assigned_device(("2",), "1,2") == "cuda:1"  # its place among the visible ones
    assert assigned_device(("2",), None) == "cuda:2"  # Ray told not to set the variable
    with pytest.raises(TunerError, match="hides it"):
        assigned_device(("2",), "0,1")


def test_a_worker_on_ray_trains_where_ray_says_or_on_the_cpu() -> None:
    assert device_for("auto", "cuda:0") == "cuda:0"
    assert device_for("cpu", "cuda:0") == "cpu"
    with pytest.raises(TunerError, match="Ray assigns each worker its GPU"):
        device_for("cuda:1", "cuda:0")
    with pytest.raises(TunerError, match="Ray assigns"):  # refused before Ray starts
        RayPool(RayWorkers(), "sqlite://", WorkerConfig(device="cuda:1"))


def test_pool_settings_are_checked() -> None:
    with pytest.raises(TunerError) as caught:
        RayWorkers(replicas=0, gpus_per_worker=1.5, max_restarts=-2).check()
    message = str(caught.value)
    assert "--replicas" in message and "--gpus-per-worker" in message
    assert "--max-restarts" in message
    assert [gpu_share(f) for f in (0, 1, 0.5, 0.25, 0.3)] == [
        "no GPU", "1 GPU", "1/2 GPU", "1/4 GPU", "0.3 GPU"
    ]  # fmt: skip


def test_without_ray_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    with pytest.raises(TunerError, match="workers on Ray need Ray") as caught:
        import_ray()
    assert RAY_EXTRA in str(caught.value) and "init-tuner[ray]" in RAY_EXTRA
    result = CliRunner().invoke(
        app, ["worker", "--ray", "--database-url", "sqlite://", "--device", "cpu"]
    )
    assert result.exit_code == 1 and isinstance(result.exception, TunerError)
    assert "init-tuner[ray]" in str(result.exception)


def test_ray_options_need_ray() -> None:
    result = CliRunner().invoke(app, ["worker", "--replicas", "4", "--gpus-per-worker", "0.5"])
    assert result.exit_code == 2
    assert "--replicas, --gpus-per-worker: only with --ray" in result.output
