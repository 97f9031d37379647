"""Trials per minute of a real study against plain Optuna, same workload, same device.

The workload is the peer's (``../shared/bench/baseline_optuna_loop.py``): MNIST-5k (4,000
train / 1,000 validation rows), an MLP 784-256-256-10 with ReLU, SGD with momentum 0.9, and
the five dimensions (7 initializers, lr 1e-4..1 log, L2 lambda 1e-6..1e-1 log, batch size
32/64/128/256, patience 2..10), TPE, no pruner, the same trials and max epochs.
The project runs through its product path: a study spec run by ``run_study`` (the
embedded worker, SQLite in a temporary folder), with population training on or off.
The peer runs as a subprocess of this script. Both sides time their study only (data
loading excluded). The project's achieved FLOP/s counts the model FLOPs it executed
(forward and backward of every training epoch, forward of every validation pass, from the
epochs recorded in its results rows) over its wall time; the peak is that of the precision
its matmuls ran in, as its trials' manifests record it (:func:`trained_in`: bf16 for a
population that multiplied in bf16, TF32 when the process held TF32 on CUDA, else fp32),
timed as the best of a few rounds of K square matmuls (CUDA events on CUDA; the warm-up is
one more round of the same K). The peer (torch's defaults) counts against the fp32 peak.
Timings on a shared machine drift: ``--repeat N`` alternates who runs first and reports
medians.

    python bench/throughput.py --trials 20 --max-epochs 20
    python bench/throughput.py --trials 20 --max-epochs 20 --fast
    python bench/throughput.py --trials 20 --max-epochs 20 --exact --device cuda
    python bench/throughput.py --trials 20 --max-epochs 20 --sweep-k 1,2,4,8
    python bench/throughput.py --trials 20 --max-epochs 20 --population 8 --compile

Prints the command line and one JSON line.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch

import storage
from tuner.population import resolve_fast
from tuner.spec import StudySpec, parse_spec
from tuner.studies import run_study
from tuner.training import fp32_precision, resolve_device

PEER = Path(__file__).resolve().parents[2] / "shared/bench/baseline_optuna_loop.py"
LAYERS = [784, 256, 256, 10]
N_TRAIN, N_VAL = 4000, 1000


def spec(name: str, trials: int, max_epochs: int, seed: int) -> StudySpec:
    return parse_spec(
        {
            "name": name,
            "task": {"model": "mlp", "hidden": LAYERS[1:-1], "dataset": "mnist-5k"},
            "metric": "val_accuracy",
            "search": {  # the peer's choices: gain 1 for xavier, relu gains for the rest
                "initializer": [
                    {"name": "xavier_uniform", "gain": 1.0},
                    {"name": "xavier_normal", "gain": 1.0},
                    "kaiming_uniform",
                    "kaiming_normal",
                    "orthogonal",
                    {"name": "normal", "std": 0.01},
                    {"name": "normal", "std": 1.0},
                ],
                "lr": {"low": 1e-4, "high": 1.0, "log": True},
                "weight_decay": {"low": 1e-6, "high": 1e-1, "log": True},
                "batch_size": [32, 64, 128, 256],
                "patience": {"low": 2, "high": 10},
            },
            "budget": {"n_trials": trials, "max_epochs": max_epochs},
            "sampler": "tpe",
            "pruner": "none",
            "seed": seed,
        }
    )


def epoch_flops() -> float:
    """Model FLOPs of one epoch: forward+backward over the train rows, forward over val."""
    forward = sum(2 * a * b for a, b in itertools.pairwise(LAYERS))
    first_input_grad = 2 * LAYERS[0] * LAYERS[1]  # the input needs no gradient
    return N_TRAIN * (3 * forward - first_input_grad) + N_VAL * forward


#: A peak's kind: the dtype its matmuls multiply in and the fp32 precision they run at.
PEAK_KINDS: dict[str, tuple[torch.dtype, str]] = {
    "fp32": (torch.float32, "ieee"),
    "tf32": (torch.float32, "tf32"),
    "bf16": (torch.bfloat16, "ieee"),
}
FASTEST_FIRST = ("bf16", "tf32", "fp32")


def trained_in(manifest: Mapping[str, Any]) -> str:
    """The peak kind a trial's matmuls ran in, from what its manifest records: bf16 when its
    population multiplied in bf16, tf32 when the CUDA process held TF32 matmuls, else fp32
    (TF32 flags do nothing on a CPU)."""
    if (manifest.get("population") or {}).get("matmuls") == "bfloat16":
        return "bf16"
    flags = (manifest.get("deterministic") or {}).get("fp32_precision") or {}
    on_cuda = str(manifest.get("device", "")).startswith("cuda")
    return "tf32" if on_cuda and flags.get("matmul") == "tf32" else "fp32"


def peak_kind(manifests: Iterable[Mapping[str, Any]]) -> str:
    """The kind a run's FLOP/s count against: the fastest any of its trials ran in (a mixed
    run is not flattered); fp32 when no trial recorded a manifest."""
    kinds = {trained_in(m) for m in manifests}
    return next((k for k in FASTEST_FIRST if k in kinds), "fp32")


@dataclass(frozen=True)
class PeakPlan:
    n: int  # square matmul size
    k: int  # matmuls per timed round (and in the warm-up round)
    rounds: int  # timed rounds; the best counts


def peak_plan(device: torch.device) -> PeakPlan:
    """Big enough to saturate the device, small enough for 2 shared CPU cores."""
    return PeakPlan(8192, 10, 5) if device.type == "cuda" else PeakPlan(2048, 4, 5)


def peak_flops(device: torch.device, kind: str, plan: PeakPlan | None = None) -> float:
    """FLOP/s of the best round of ``plan.k`` square matmuls of ``kind`` on ``device``."""
    dtype, precision = PEAK_KINDS[kind]
    plan = plan or peak_plan(device)
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(plan.n, plan.n, device=device, dtype=dtype, generator=gen)
    b = torch.randn(plan.n, plan.n, device=device, dtype=dtype, generator=gen)
    out = torch.empty_like(a)

    def round_s() -> float:
        if device.type == "cuda":
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(plan.k):
                torch.matmul(a, b, out=out)
            end.record()
            end.synchronize()
            return start.elapsed_time(end) / 1e3
        t = time.perf_counter()  # CPU matmuls return when done
        for _ in range(plan.k):
            torch.matmul(a, b, out=out)
        return time.perf_counter() - t

    with fp32_precision({"matmul": precision}):
        round_s()  # the warm-up: the same K as every timed round
        best = min(round_s() for _ in range(plan.rounds))
    return 2 * plan.n**3 * plan.k / best


def run_project(args: argparse.Namespace, population: int) -> dict[str, Any]:
    name = f"throughput-{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{folder}/bench.db"
        t0 = time.perf_counter()
        run_study(
            spec(name, args.trials, args.max_epochs, args.seed),
            database_url=url,
            device=args.device,
            population=population,
            fast=args.fast,
            compile=args.compile,
            slots=args.slots,
        )
        wall = time.perf_counter() - t0
        db = storage.Database(url)
        try:
            with db.session() as session:
                rows = storage.list_trial_results(session, name, order_by="trial_number")
                figures = [(r.state, r.value, r.epochs_run, r.stop_reason) for r in rows]
                manifests = [r.manifest_json for r in rows if r.manifest_json]
        finally:
            db.dispose()
    values = [v for state, v, _, _ in figures if state == "complete" and v is not None]
    epochs = sum(e for _, _, e, _ in figures)
    return {
        "trials": len(figures),
        "wall_s": round(wall, 2),
        "trials_per_min": round(60 * len(figures) / wall, 2),
        "epochs_total": epochs,
        "samples_per_s": round(epochs * N_TRAIN / wall, 1),
        "best_val_acc": round(max(values), 4) if values else None,
        "stop_reasons": {r: sum(1 for *_, s in figures if s == r) for _, _, _, r in figures},
        "flops_per_s": epochs * epoch_flops() / wall,
        "trained_in": peak_kind(manifests),  # what its trials recorded, not what was asked
    }


def run_peer(args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, str(args.peer), "--trials", str(args.trials)]
    command += ["--max-epochs", str(args.max_epochs), "--device", args.device]
    command += ["--seed", str(args.seed)]
    env = dict(os.environ)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"the peer failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result.pop("best_params", None)
    result["flops_per_s"] = result["epochs_total"] * epoch_flops() / result["wall_s"]
    return result


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median trials/min, with every run's figure beside it."""
    middle = sorted(runs, key=lambda r: r["trials_per_min"])[(len(runs) - 1) // 2]
    return {**middle, "trials_per_min_runs": [r["trials_per_min"] for r in runs]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--max-epochs", type=int, default=20)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--population", type=int, default=0, help="K; 0: auto, 1: off")
    mode = parser.add_mutually_exclusive_group()  # neither: the device's default (CUDA fast)
    mode.add_argument("--fast", dest="fast", action="store_const", const=True, default=None)
    mode.add_argument("--exact", dest="fast", action="store_const", const=False)
    parser.add_argument(
        "--compile", action="store_true", help="populations' step through torch.compile"
    )
    parser.add_argument(
        "--slots", type=int, default=1, help="project slots; the threads are shared out"
    )
    parser.add_argument("--sweep-k", default=None, help="e.g. 1,2,4,8: the project per K")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads, both")
    parser.add_argument("--repeat", type=int, default=1, help="alternate runs; medians")
    parser.add_argument("--peer", type=Path, default=PEER)
    parser.add_argument("--peak-size", type=int, default=None, help="peak matmuls' size")
    args = parser.parse_args()
    if not args.peer.is_file():
        sys.exit(f"peer script not found: {args.peer} (give --peer PATH)")
    if args.threads:
        torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    device = resolve_device(args.device)
    # Data loading and imports stay outside the timing, as the peer's (its clock starts after
    # `import optuna, torch` and its data): a one-trial study fills the data cache and imports
    # what a study's first run imports (the migrations, the SQL dialect).
    run_project(argparse.Namespace(**{**vars(args), "trials": 1, "max_epochs": 1}), 1)
    ks = [int(k) for k in args.sweep_k.split(",")] if args.sweep_k else [args.population]
    peers: list[dict[str, Any]] = []
    ours: dict[int, list[dict[str, Any]]] = {k: [] for k in ks}
    for r in range(args.repeat):  # alternate who goes first: the machine's load drifts
        if r % 2 == 0:
            peers.append(run_peer(args))
        for k in ks:
            ours[k].append(run_project(args, k))
        if r % 2 == 1:
            peers.append(run_peer(args))
    peer = median_run(peers)
    runs = {k: median_run(v) for k, v in ours.items()}
    plan = peak_plan(device)
    if args.peak_size:
        plan = PeakPlan(args.peak_size, plan.k, plan.rounds)
    kinds = sorted({"fp32", *(run["trained_in"] for run in runs.values())}, key=FASTEST_FIRST.index)
    peaks = {kind: peak_flops(device, kind, plan) for kind in kinds}
    peer["trained_in"] = "fp32"  # plain torch: no population, torch's default flags
    peer["peak_fraction"] = round(peer.pop("flops_per_s") / peaks["fp32"], 4)
    for run in runs.values():  # against the peak of the precision its matmuls ran in
        run["peak_fraction"] = round(run.pop("flops_per_s") / peaks[run["trained_in"]], 4)
    result: dict[str, Any] = {
        "bench": "throughput",
        "device": str(device),
        "threads": torch.get_num_threads(),
        "slots": args.slots,
        "trials": args.trials,
        "max_epochs": args.max_epochs,
        "repeat": args.repeat,
        "mode": "fast" if resolve_fast(device, args.fast) else "exact",
        "compiled": args.compile,  # compile time is inside the project's wall time
        "peak_tflops": {kind: round(flops / 1e12, 3) for kind, flops in peaks.items()},
        "peak_method": (
            f"best of {plan.rounds} rounds of {plan.k} square {plan.n} matmuls on {device} "
            f"(one more round to warm up; {'CUDA events' if device.type == 'cuda' else 'wall'}"
            " time), this process's threads"
        ),
        "peer": peer,
    }
    if args.sweep_k:
        result["sweep"] = [
            {"k": k or "auto", **r, "ratio": round(r["trials_per_min"] / peer["trials_per_min"], 2)}
            for k, r in runs.items()
        ]
    else:
        project = runs[args.population]
        result["project"] = {"population": args.population or "auto", **project}
        result["ratio"] = round(project["trials_per_min"] / peer["trials_per_min"], 2)
        best, peer_best = project["best_val_acc"], peer["best_val_acc"]
        result["best_gap_points"] = round(100 * (best - peer_best), 2) if best else None
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
