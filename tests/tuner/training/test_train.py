"""The training loop: early stopping, divergence, hooks, determinism."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from torch import nn

from tuner.tasks import DataSplit, load_dataset
from tuner.training import EarlyStopping, EpochStats, StopReason, TrainConfig, train


@pytest.fixture(scope="module")
def digits() -> DataSplit:
    return load_dataset("digits")


def _mlp(data: DataSplit, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, data.n_classes))


def _cfg(**kw: object) -> TrainConfig:
    base: dict[str, object] = {
        "lr": 0.05,
        "weight_decay": 0.0,
        "batch_size": 64,
        "patience": 3,
        "max_epochs": 30,
    }
    return TrainConfig(**{**base, **kw})  # type: ignore[arg-type]


def _scripted(accuracies: list[float]) -> tuple[Iterator[float], object]:
    """An evaluator that reports a fixed sequence of validation accuracies."""
    seq = iter(accuracies)

    def evaluator(model: nn.Module, data: DataSplit) -> dict[str, float]:
        acc = next(seq)
        return {"val_loss": 1.0 - acc, "val_accuracy": acc}

    return seq, evaluator


@pytest.mark.parametrize(
    ("accuracies", "patience", "min_delta", "epochs", "best_epoch", "best"),
    [
        # improves at 1, 2, 4; then 3 epochs without improvement -> stops after epoch 7
        ([0.5, 0.6, 0.55, 0.7, 0.69, 0.7, 0.65, 0.9], 3, 0.0, 7, 4, 0.7),
        # patience 1 stops at the first non-improving epoch
        ([0.5, 0.6, 0.6, 0.9], 1, 0.0, 3, 2, 0.6),
        # min_delta: +0.005 steps are not improvements
        ([0.5, 0.505, 0.51, 0.515, 0.9], 2, 0.01, 3, 1, 0.5),
    ],
)
def test_patience_stops_at_the_right_epoch(
    digits: DataSplit,
    accuracies: list[float],
    patience: int,
    min_delta: float,
    epochs: int,
    best_epoch: int,
    best: float,
) -> None:
    _, evaluator = _scripted(accuracies)
    result = train(
        _mlp(digits),
        digits,
        _cfg(patience=patience, min_delta=min_delta),
        generator=torch.Generator().manual_seed(0),
        evaluator=evaluator,  # type: ignore[arg-type]
    )
    assert result.stop_reason == "patience"
    assert result.epochs_run == epochs
    assert result.best_epoch == best_epoch
    assert result.value == pytest.approx(best)


def test_early_stopping_minimizes_for_loss() -> None:
    stop = EarlyStopping(2, direction="minimize")
    decisions = [stop.update(e, v) for e, v in enumerate([1.0, 0.8, 0.9, 0.7, 0.75, 0.71], 1)]
    assert decisions == [False, False, False, False, False, True]
    assert (stop.best, stop.best_epoch) == (0.7, 4)


def test_max_epochs_when_always_improving(digits: DataSplit) -> None:
    _, evaluator = _scripted([0.1 * i for i in range(1, 6)])
    result = train(
        _mlp(digits), digits, _cfg(max_epochs=5), generator=torch.Generator(), evaluator=evaluator
    )  # type: ignore[arg-type]
    assert (result.stop_reason, result.epochs_run, result.best_epoch) == ("max_epochs", 5, 5)


def test_hook_can_end_training(digits: DataSplit) -> None:
    seen: list[int] = []

    def hook(stats: EpochStats) -> StopReason | None:
        seen.append(stats.epoch)
        return "pruned" if stats.epoch == 2 else None

    result = train(_mlp(digits), digits, _cfg(), generator=torch.Generator(), on_epoch=hook)
    assert (result.stop_reason, result.epochs_run, seen) == ("pruned", 2, [1, 2])


def test_real_training_learns(digits: DataSplit) -> None:
    result = train(_mlp(digits), digits, _cfg(max_epochs=15), generator=torch.Generator())
    assert result.value is not None and result.value > 0.9
    assert result.history[-1].train_loss < result.history[0].train_loss


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw"])
def test_every_optimizer_trains(digits: DataSplit, optimizer: str) -> None:
    lr = 0.05 if optimizer == "sgd" else 0.003
    result = train(
        _mlp(digits),
        digits,
        _cfg(optimizer=optimizer, lr=lr, max_epochs=5),
        generator=torch.Generator(),
    )
    assert result.value is not None and result.value > 0.8


def test_divergence_ends_the_trial_instead_of_crashing(digits: DataSplit) -> None:
    model = _mlp(digits)
    for p in model.parameters():
        nn.init.normal_(p, std=50.0)
    result = train(model, digits, _cfg(lr=1e4, max_epochs=20), generator=torch.Generator())
    assert result.stop_reason == "diverged"
    assert result.epochs_run < 20


def test_weight_decay_shrinks_weights(digits: DataSplit) -> None:
    norms = []
    for wd in (0.0, 0.05):
        model = _mlp(digits)
        train(
            model,
            digits,
            _cfg(weight_decay=wd, max_epochs=5, patience=10),
            generator=torch.Generator().manual_seed(1),
        )
        norms.append(sum(float(p.detach().norm()) for p in model.parameters()))
    assert norms[1] < 0.8 * norms[0]


def test_same_seeds_same_numbers_on_cpu(digits: DataSplit) -> None:
    runs = [
        train(
            _mlp(digits, seed=3),
            digits,
            _cfg(max_epochs=4),
            generator=torch.Generator().manual_seed(11),
        ).history
        for _ in range(2)
    ]
    assert runs[0] == runs[1]
    other = train(
        _mlp(digits, seed=3),
        digits,
        _cfg(max_epochs=4),
        generator=torch.Generator().manual_seed(12),
    ).history
    assert other != runs[0]
