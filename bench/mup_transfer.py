"""Does the best learning rate stay put when the model widens? muP against standard.

For each width and parametrization, the built-in MLP (two hidden layers of the width, ReLU,
kaiming_normal, no L2) trains at every lr of a log2 grid for a few epochs; the best lr is
the one with the lowest training loss at the end (the mean over the last epoch and over the
seeds), as in Tensor Programs V's Figure 1. The transfer itself: the loss at each width
when the smallest width's best lr is used there (what ``tuner transfer`` does). Every run
goes through the product's trial path (``build_task`` with ``parametrization: standard |
mup``, ``train_model_trial``: the searched initializer, muP's rescaling and per-group lrs).
Under ``mup`` the base width is the smallest width: there both parametrizations are the
same model, to the bit.

    python bench/mup_transfer.py                                     # Adam, digits, 64 256 1024
    python bench/mup_transfer.py --optimizer sgd --lr-low -10 --lr-high 0
    python bench/mup_transfer.py --dataset mnist-5k --widths 64 256 1024 --epochs 3

Prints the command line, the table of losses and the best lr per width, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
from typing import Any

import torch

from tuner.search import TrialParams
from tuner.spec import BuiltinTask
from tuner.tasks import build_task
from tuner.training import TrainConfig, train_model_trial

PARAMETRIZATIONS = ("standard", "mup")


def final_loss(
    parametrization: str,
    width: int,
    lr: float,
    args: argparse.Namespace,
    tasks: dict[tuple[str, int], Any],
) -> tuple[float, float]:
    """(training loss of the last epoch, best validation accuracy); inf when it diverged."""
    key = (parametrization, width)
    if key not in tasks:
        base = {"base_width": args.widths[0]} if parametrization == "mup" else {}
        tasks[key] = build_task(
            BuiltinTask(
                model="mlp",
                hidden=[width] * args.depth,
                dataset=args.dataset,
                optimizer=args.optimizer,
                parametrization=parametrization,  # type: ignore[arg-type]
                **base,
            )
        )
    task = tasks[key]
    params = TrialParams("kaiming_normal", "kaiming_normal", lr, 0.0, args.batch_size, 10**6)
    config = TrainConfig(
        lr=lr,
        weight_decay=0.0,
        batch_size=args.batch_size,
        patience=10**6,  # no early stop: every run trains all its epochs
        max_epochs=args.epochs,
        optimizer=args.optimizer,
    )
    outcome = train_model_trial(
        number=0,
        params=params,
        task=task,
        data=task.data,
        config=config,
        study_seed=args.seed,
        device=torch.device("cpu"),
        replicates=args.seeds,
    )
    if outcome.stop_reason != "max_epochs" or not outcome.history:
        return math.inf, math.nan
    loss = outcome.history[-1].train_loss
    return (loss if math.isfinite(loss) else math.inf), outcome.value or math.nan


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--widths", type=int, nargs="+", default=[64, 256, 1024])
    parser.add_argument("--depth", type=int, default=2, help="hidden layers")
    parser.add_argument("--dataset", default="digits")
    parser.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"])
    parser.add_argument("--lr-low", type=int, default=-12, help="log2 of the smallest lr")
    parser.add_argument("--lr-high", type=int, default=-2, help="log2 of the largest lr")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, default=2, help="replicates per run, averaged")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    print("$ python " + shlex.join(sys.argv), flush=True)
    torch.set_num_threads(args.threads)
    exponents = list(range(args.lr_low, args.lr_high + 1))
    tasks: dict[tuple[str, int], Any] = {}
    losses: dict[str, dict[int, list[float]]] = {p: {} for p in PARAMETRIZATIONS}
    accuracy: dict[str, dict[int, list[float]]] = {p: {} for p in PARAMETRIZATIONS}
    started = time.perf_counter()
    for parametrization in PARAMETRIZATIONS:
        for width in args.widths:
            row = [final_loss(parametrization, width, 2.0**e, args, tasks) for e in exponents]
            losses[parametrization][width] = [loss for loss, _ in row]
            accuracy[parametrization][width] = [acc for _, acc in row]
            shown = " ".join(f"{loss:6.3f}" if math.isfinite(loss) else "   inf" for loss, _ in row)
            print(f"{parametrization:8} width {width:5}  {shown}", flush=True)
    wall = time.perf_counter() - started
    print("log2 lr:" + " " * 14 + " ".join(f"{e:6d}" for e in exponents))
    best: dict[str, dict[str, int]] = {}
    for parametrization in PARAMETRIZATIONS:
        best[parametrization] = {}
        for width in args.widths:
            row = losses[parametrization][width]
            index = min(range(len(row)), key=lambda i: row[i])
            best[parametrization][str(width)] = exponents[index]
        picks = ", ".join(f"{w}: 2^{e}" for w, e in best[parametrization].items())
        print(f"best lr ({parametrization}): {picks}")
    # the transfer itself: the smallest width's best lr, used at every width
    tuned = {p: exponents.index(best[p][str(args.widths[0])]) for p in PARAMETRIZATIONS}
    transferred = {
        p: {str(w): round(losses[p][w][tuned[p]], 4) for w in args.widths} for p in PARAMETRIZATIONS
    }
    for parametrization, row in transferred.items():
        shown = ", ".join(f"{w}: {loss:.4f}" for w, loss in row.items())
        print(f"loss at width {args.widths[0]}'s best lr ({parametrization}): {shown}")
    figures = {
        "optimizer": args.optimizer,
        "dataset": args.dataset,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "log2_lrs": exponents,
        "best_log2_lr": best,
        "best_shift": {p: max(best[p].values()) - min(best[p].values()) for p in PARAMETRIZATIONS},
        "transferred_train_loss": transferred,
        "best_train_loss": {
            p: {str(w): round(min(losses[p][w]), 4) for w in args.widths} for p in PARAMETRIZATIONS
        },
        "val_accuracy_at_best": {
            p: {
                str(w): round(accuracy[p][w][exponents.index(best[p][str(w)])], 4)
                for w in args.widths
            }
            for p in PARAMETRIZATIONS
        },
        "wall_s": round(wall, 1),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
