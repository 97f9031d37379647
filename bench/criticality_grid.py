"""Does the mean-field depth scale predict which deep tanh nets train? A sigma_w^2 x depth grid.

For every depth, one study (the product path: a spec run by ``tuner.run_study`` into SQLite in
a temporary folder): a tanh MLP on digits whose hidden layers all have width ``--width``,
initialized with ``variance_scaling`` (``scale = sigma_w^2``, ``mode: fan_in``,
``distribution: untruncated_normal``: exactly ``Var(W) = sigma_w^2 / fan_in``; biases zero),
one trial per sigma_w^2 (grid sampler), SGD with momentum for ``--epochs`` epochs. Each trial's
stored t=0 signal gives the measured ``sigma_w^2``, ``chi_1`` and ``xi_c``; the prediction is
"trainable" when ``depth <= 6 xi_c`` (Schoenholz et al. 2017), and the trial counts as trained
when its best validation accuracy reaches ``--trained-at`` (chance is 0.1).

    python bench/criticality_grid.py                      # 7 x 5 cells, 5 epochs
    python bench/criticality_grid.py --png grid.png --epochs 10

Prints the command line, a table (one row per cell), then ONE JSON line; writes a heatmap of
the accuracies with the line ``depth = 6 xi_c`` over it (``--png``, matplotlib; skipped with a
note when matplotlib is missing).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository root

import storage
from tuner.spec import StudySpec, parse_spec
from tuner.studies import run_study
from tuner.training import DEPTH_FACTOR, mean_field

SIGMA_W2 = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0)
DEPTHS = (5, 10, 20, 40, 64)  # Linear layers; a spec takes at most 64 hidden layers


def grid_spec(
    depth: int, sigma_w2: list[float], *, width: int, epochs: int, lr: float, batch_size: int
) -> StudySpec:
    """The study of one depth: ``depth`` Linear layers, one trial per sigma_w^2."""
    return parse_spec(
        {
            "name": f"criticality-depth-{depth}",
            "task": {
                "model": "mlp",
                "hidden": [width] * (depth - 1),
                "activation": "tanh",
                "dataset": "digits",
            },
            "search": {
                "initializer": [
                    {
                        "name": "variance_scaling",
                        "scale": s,
                        "mode": "fan_in",
                        "distribution": "untruncated_normal",
                    }
                    for s in sigma_w2
                ],
                "lr": lr,
                "weight_decay": 0.0,
                "batch_size": batch_size,
                "patience": epochs,
            },
            "budget": {"n_trials": len(sigma_w2), "max_epochs": epochs},
            "sampler": "grid",
            "pruner": "none",
            "seed": 0,
        }
    )


def run_depth(url: str, spec: StudySpec) -> list[dict[str, Any]]:
    """Train one depth's study; a cell per trial: its measured signal and its accuracy."""
    run_study(spec, database_url=url, device="cpu")
    db = storage.Database(url)
    try:
        with db.session() as session:
            rows = storage.list_trial_results(session, spec.name, order_by="trial_number")
            signals = storage.signal_by_trial(session, spec.name)
    finally:
        db.dispose()
    cells = []
    for row in rows:
        signal = signals[row.trial_number]
        xi = signal.xi_c
        cells.append(
            {
                "scale": row.params_json["init_params"]["scale"],
                "depth": signal.depth,
                "sigma_w2": signal.sigma_w2,
                "chi_1": signal.chi_1,
                "xi_c": None if xi is None or math.isinf(xi) else xi,
                "predicted": signal.warning is None,
                "accuracy": row.value,
                "jacobian_spread": signal.jacobian_spread,
            }
        )
    return cells


def table(cells: list[dict[str, Any]], trained_at: float) -> str:
    head = (
        "| sigma_w^2 | depth | measured sigma_w^2 | chi_1 | xi_c | 6 xi_c | predicted "
        "| val acc | trained | agree |"
    )
    lines = [head, "|" + "---|" * 10]
    for c in cells:
        xi, accuracy = c["xi_c"], c["accuracy"]
        trained = accuracy is not None and accuracy >= trained_at
        shown = "-" if accuracy is None else f"{accuracy:.3f}"
        scale = "inf" if xi is None else f"{xi:.2f} | {DEPTH_FACTOR * xi:.1f}"
        lines.append(
            f"| {c['scale']:g} | {c['depth']} | {c['sigma_w2']:.3f} | {c['chi_1']:.3f} | "
            f"{'inf | inf' if xi is None else scale} | "
            f"{'trains' if c['predicted'] else 'cannot cross'} | {shown} | "
            f"{'yes' if trained else 'no'} | {'yes' if trained == c['predicted'] else 'NO'} |"
        )
    return "\n".join(lines)


def heatmap(cells: list[dict[str, Any]], path: Path, epochs: int) -> str | None:
    """The accuracies as a sigma_w^2 x depth heatmap, the line depth = 6 xi_c over it."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no heatmap"
    scales = sorted({c["scale"] for c in cells})
    depths = sorted({c["depth"] for c in cells})
    grid = [[math.nan] * len(scales) for _ in depths]
    for c in cells:
        grid[depths.index(c["depth"])][scales.index(c["scale"])] = c["accuracy"] or 0.0
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    image = ax.imshow(grid, origin="lower", cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    for c in cells:
        x, y = scales.index(c["scale"]), depths.index(c["depth"])
        mark = "" if c["predicted"] else "x"
        ax.text(x, y, f"{c['accuracy'] or 0:.2f}{mark}", ha="center", va="center", color="w")
    if len(scales) > 1 and len(depths) > 1:  # the theory's boundary, in cell coordinates
        fine = [scales[0] + (scales[-1] - scales[0]) * i / 200 for i in range(201)]
        bound = [mean_field("tanh", s, 0.0).trainable_depth() for s in fine]

        def to_cell(value: float, axis: list[float]) -> float:
            for i in range(len(axis) - 1):
                if value <= axis[i + 1]:
                    return i + (value - axis[i]) / (axis[i + 1] - axis[i])
            return len(axis) - 1 + (value - axis[-1]) / (axis[-1] - axis[-2])

        xs = [to_cell(s, scales) for s in fine]
        ys = [to_cell(min(b, depths[-1] * 4), [float(d) for d in depths]) for b in bound]
        ax.plot(xs, ys, color="red", linewidth=2)
    ax.set_ylim(-0.5, len(depths) - 0.5)
    ax.set_xticks(range(len(scales)), [f"{s:g}" for s in scales])
    ax.set_yticks(range(len(depths)), [str(d) for d in depths])
    ax.set_xlabel("sigma_w^2 (variance_scaling scale, fan_in)")
    ax.set_ylabel("depth (Linear layers)")
    ax.set_title(
        f"tanh MLP on digits: val accuracy after {epochs} epochs\n"
        "red: depth = 6 xi_c (theory, zero bias); x: warned from the measured weights"
    )
    fig.colorbar(image, ax=ax, label="val accuracy")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sigma-w2", default=",".join(f"{s:g}" for s in SIGMA_W2))
    parser.add_argument("--depths", default=",".join(map(str, DEPTHS)))
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--trained-at", type=float, default=0.5, help="val accuracy: trained")
    parser.add_argument("--png", type=Path, default=Path("criticality_grid.png"))
    args = parser.parse_args()
    sigma_w2 = [float(s) for s in args.sigma_w2.split(",")]
    depths = [int(d) for d in args.depths.split(",")]
    t0 = time.perf_counter()
    cells: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite:///{Path(folder) / 'grid.db'}"
        for depth in depths:
            spec = grid_spec(
                depth,
                sigma_w2,
                width=args.width,
                epochs=args.epochs,
                lr=args.lr,
                batch_size=args.batch_size,
            )
            cells += run_depth(url, spec)
    wall = time.perf_counter() - t0
    trained = [c["accuracy"] is not None and c["accuracy"] >= args.trained_at for c in cells]
    agree = sum(t == c["predicted"] for t, c in zip(trained, cells, strict=True))
    print("$ " + shlex.join([Path(sys.executable).name, *sys.argv]))
    print(table(cells, args.trained_at), flush=True)
    note = heatmap(cells, args.png, args.epochs)
    result = {
        "cells": len(cells),
        "agree": agree,
        "wall_s": round(wall, 1),
        "png": None if note else str(args.png),
        "note": note,
        "grid": cells,
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
