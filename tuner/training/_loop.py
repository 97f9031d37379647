"""One short training loop: resident tensors, randperm batches, per-epoch validation.

The loop knows nothing about Optuna: an ``on_epoch`` hook sees every epoch's
figures and may end training (pruning, timeout, cancel) by returning a reason.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.nn import functional as F
from torch.optim import lr_scheduler

from tuner.mup import param_groups
from tuner.tasks import DataSplit

StopReason = Literal[
    "patience", "pruned", "diverged", "max_epochs", "timeout", "error", "cancelled"
]
Direction = Literal["maximize", "minimize"]
EVAL_CHUNK = 4096  # validation rows per forward pass; bounds memory on big validation sets


@dataclass(frozen=True)
class TrainConfig:
    lr: float
    weight_decay: float  # L2 lambda: coupled for sgd/adam, decoupled for adamw
    batch_size: int
    patience: int
    max_epochs: int
    optimizer: str = "sgd"
    momentum: float = 0.9
    min_delta: float = 0.0
    metric: str = "val_accuracy"
    direction: Direction = "maximize"
    schedule: str = "constant"  # constant, step or cosine (after any warm-up)
    step_size: int = 10  # step decay: epochs between decays
    step_factor: float = 0.1  # step decay: the lr's factor at each decay
    warmup_epochs: int = 0  # linear warm-up: epoch e <= w runs at lr * e / (w + 1)
    clip_norm: float | None = None  # the gradients' global norm limit; None: no clipping

    @property
    def scheduled(self) -> bool:
        return self.schedule != "constant" or self.warmup_epochs > 0


@dataclass(frozen=True)
class EpochStats:
    epoch: int  # 1-based
    train_loss: float
    val_loss: float
    val_accuracy: float
    metrics: Mapping[str, float] = field(default_factory=dict)  # a task's own, by name

    def metric(self, name: str) -> float:
        if name == "val_accuracy":
            return self.val_accuracy
        if name == "val_loss":
            return self.val_loss
        return self.metrics[name]


@dataclass
class TrainResult:
    value: float | None  # the best epoch's metric; None if no epoch produced a finite one
    best_epoch: int | None
    epochs_run: int
    stop_reason: StopReason
    history: list[EpochStats] = field(default_factory=list)


class EarlyStopping:
    """Stop after ``patience`` epochs in a row without improving by more than ``min_delta``."""

    def __init__(self, patience: int, *, min_delta: float = 0.0, direction: Direction) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience, self.min_delta, self.direction = patience, min_delta, direction
        self.best: float | None = None
        self.best_epoch: int | None = None
        self.bad_epochs = 0

    def improved(self, value: float) -> bool:
        if self.best is None:
            return True
        if self.direction == "maximize":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def update(self, epoch: int, value: float) -> bool:
        """Record one epoch's metric; True when training should stop."""
        if self.improved(value):
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return self.bad_epochs >= self.patience


def make_optimizer(
    name: str, params: Iterable[nn.Parameter], cfg: TrainConfig
) -> torch.optim.Optimizer:
    """``name`` at ``cfg``'s lr and L2 lambda; parameters in muP (base shapes set, see
    :mod:`tuner.mup`) get muP's per-group lrs and lambdas (``MuSGD``, ``MuAdam``)."""
    if name not in ("sgd", "adam", "adamw"):
        raise ValueError(f"unknown optimizer {name!r}")
    listed = list(params)
    groups = param_groups(listed, name, cfg.lr, cfg.weight_decay)
    chosen: list[nn.Parameter] | list[dict[str, Any]] = listed if groups is None else groups
    if name == "sgd":
        return torch.optim.SGD(
            chosen, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    if name == "adam":
        return torch.optim.Adam(chosen, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.AdamW(chosen, lr=cfg.lr, weight_decay=cfg.weight_decay)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> lr_scheduler.LRScheduler:
    """torch's schedulers for ``cfg``, stepped once per epoch (after it).

    Epoch e (1-based) runs at ``lr * f(e)``: a warm-up of w epochs gives ``f(e) = e / (w+1)``
    for e <= w (``LinearLR``); after it, with ``t = e - 1 - w``, ``step`` gives
    ``step_factor ** (t // step_size)`` (``StepLR``), ``cosine`` gives
    ``(1 + cos(pi t / T)) / 2`` with ``T = max_epochs - w`` (``CosineAnnealingLR`` to 0), and
    ``constant`` gives 1.
    """
    warmup = cfg.warmup_epochs
    main: lr_scheduler.LRScheduler
    if cfg.schedule == "step":
        main = lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.step_factor)
    elif cfg.schedule == "cosine":
        main = lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, cfg.max_epochs - warmup))
    else:
        main = lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
    if warmup == 0:
        return main
    warm = lr_scheduler.LinearLR(
        optimizer, start_factor=1.0 / (warmup + 1), end_factor=1.0, total_iters=warmup
    )
    return lr_scheduler.SequentialLR(optimizer, [warm, main], milestones=[warmup])


def clip_gradients(parameters: Iterable[nn.Parameter], cfg: TrainConfig) -> None:
    """Scale the gradients so their global L2 norm is at most ``cfg.clip_norm`` (if set)."""
    if cfg.clip_norm is not None:
        nn.utils.clip_grad_norm_(list(parameters), cfg.clip_norm)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy over ``x``, in chunks."""
    model.eval()
    loss = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device)
    for start in range(0, len(x), EVAL_CHUNK):
        logits = model(x[start : start + EVAL_CHUNK])
        target = y[start : start + EVAL_CHUNK]
        loss += F.cross_entropy(logits, target, reduction="sum")
        correct += (logits.argmax(1) == target).sum()
    return (loss / len(x)).item(), (correct / len(x)).item()


@torch.no_grad()
def evaluate_regression(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
    """Mean squared and absolute error and R^2 (sklearn's ``r2_score``) over ``x``, in chunks;
    ``val_loss`` is the MSE the loop minimizes."""
    model.eval()
    pred = torch.cat(
        [model(x[s : s + EVAL_CHUNK]).reshape(-1) for s in range(0, len(x), EVAL_CHUNK)]
    ).double()
    target = y.double()
    err = pred - target
    sse, sae = (err * err).sum(), err.abs().sum()
    sst = ((target - target.mean()) ** 2).sum()
    sse_f, sae_f, sst_f = (float(v) for v in torch.stack([sse, sae, sst]).tolist())
    # a constant target has no variance to explain: sklearn's convention then
    r2 = 1.0 - sse_f / sst_f if sst_f > 0 else float(sse_f == 0)
    mse = sse_f / len(x)
    return {"val_loss": mse, "val_mse": mse, "val_mae": sae_f / len(x), "val_r2": r2}


def loss_of(out: torch.Tensor, y: torch.Tensor, regression: bool) -> torch.Tensor:
    """The training loss: MSE on a one-output model's values, else cross-entropy."""
    return F.mse_loss(out.reshape(-1), y) if regression else F.cross_entropy(out, y)


Evaluator = Callable[[nn.Module, DataSplit], dict[str, float]]
EpochHook = Callable[[EpochStats], StopReason | None]


def _validate(model: nn.Module, data: DataSplit) -> dict[str, float]:
    if data.regression:
        return evaluate_regression(model, data.x_val, data.y_val)
    val_loss, val_accuracy = evaluate(model, data.x_val, data.y_val)
    return {"val_loss": val_loss, "val_accuracy": val_accuracy}


def _stats(epoch: int, train_loss: float, metrics: dict[str, float]) -> EpochStats:
    accuracy = metrics.get("val_accuracy", math.nan)
    others = {k: v for k, v in metrics.items() if k not in ("val_loss", "val_accuracy")}
    return EpochStats(epoch, train_loss, metrics["val_loss"], accuracy, others)


def _epoch(
    model: nn.Module,
    opt: torch.optim.Optimizer,
    data: DataSplit,
    batch_size: int,
    generator: torch.Generator,
    clip_norm: float | None = None,
) -> torch.Tensor:
    """One pass over the training set; the summed loss stays on the device (no host sync)."""
    x, y = data.x_train, data.y_train
    n, device = len(x), x.device
    model.train()
    order = torch.randperm(n, generator=generator).to(device)
    loss_sum = torch.zeros((), device=device)
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        loss = loss_of(model(x[idx]), y[idx], data.regression)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip_norm is not None:  # the global norm over all parameters, as torch computes it
            nn.utils.clip_grad_norm_(model.parameters(), clip_norm)
        opt.step()
        loss_sum += loss.detach() * len(idx)
    return loss_sum / n


@dataclass
class ReplicateResult:
    """One seed's run inside a lockstep group: its own curve, its figure at the group's best."""

    history: list[EpochStats]
    value: float | None  # this replicate's metric at the group's best epoch
    best_value: float | None  # its own best epoch's metric
    best_epoch: int | None


def _mean_stats(epoch: int, losses: list[float], evals: list[dict[str, float]]) -> EpochStats:
    k = len(losses)
    mean = {name: sum(e[name] for e in evals) / k for name in evals[0]}
    return _stats(epoch, sum(losses) / k, mean)


def train_replicates(
    models: list[nn.Module],
    data: DataSplit,
    cfg: TrainConfig,
    *,
    generators: list[torch.Generator],
    on_epoch: EpochHook | None = None,
    evaluator: Evaluator = _validate,
) -> tuple[TrainResult, list[ReplicateResult]]:
    """Train replicates (same configuration, different seeds) in lockstep.

    Early stopping, the hook (reports, pruning) and the result follow the mean over the
    replicates, epoch by epoch: the configuration, not one lucky seed, is what is judged.
    With one replicate this is plain training.
    """
    opts = [make_optimizer(cfg.optimizer, m.parameters(), cfg) for m in models]
    schedules = [make_scheduler(o, cfg) for o in opts] if cfg.scheduled else []
    stopper = EarlyStopping(cfg.patience, min_delta=cfg.min_delta, direction=cfg.direction)
    history: list[EpochStats] = []
    own: list[list[EpochStats]] = [[] for _ in models]

    def done(reason: StopReason) -> tuple[TrainResult, list[ReplicateResult]]:
        result = TrainResult(stopper.best, stopper.best_epoch, len(history), reason, history)
        return result, [_replicate(h, stopper.best_epoch, cfg) for h in own]

    for epoch in range(1, cfg.max_epochs + 1):
        # The only host sync of the epoch: a NaN/inf anywhere in it shows in the sum.
        losses = [
            _epoch(m, o, data, cfg.batch_size, g, cfg.clip_norm).item()
            for m, o, g in zip(models, opts, generators, strict=True)
        ]
        for schedule in schedules:  # the next epoch's lr
            schedule.step()
        evals = [evaluator(m, data) for m in models]
        for runs, loss, metrics in zip(own, losses, evals, strict=True):
            runs.append(_stats(epoch, loss, metrics))
        stats = own[0][-1] if len(models) == 1 else _mean_stats(epoch, losses, evals)
        history.append(stats)
        if not (math.isfinite(stats.train_loss) and math.isfinite(stats.val_loss)):
            return done("diverged")
        should_stop = stopper.update(epoch, stats.metric(cfg.metric))
        reason = on_epoch(stats) if on_epoch else None
        if reason is not None:
            return done(reason)
        if should_stop:
            return done("patience")
    return done("max_epochs")


def _replicate(history: list[EpochStats], at: int | None, cfg: TrainConfig) -> ReplicateResult:
    values = [s.metric(cfg.metric) for s in history]
    finite = [(v, s.epoch) for v, s in zip(values, history, strict=True) if math.isfinite(v)]
    pick = max if cfg.direction == "maximize" else min
    best = pick(finite) if finite else None
    value = values[at - 1] if at is not None and math.isfinite(values[at - 1]) else None
    return ReplicateResult(history, value, best[0] if best else None, best[1] if best else None)


def train(
    model: nn.Module,
    data: DataSplit,
    cfg: TrainConfig,
    *,
    generator: torch.Generator,
    on_epoch: EpochHook | None = None,
    evaluator: Evaluator = _validate,
) -> TrainResult:
    """Train ``model`` on ``data`` (already on the model's device) until a stop rule fires.

    ``generator`` (CPU) draws the batch order, so a trial re-runs to the same
    numbers on CPU. ``evaluator`` returns (val_loss, val_accuracy) for an epoch.
    """
    result, _ = train_replicates(
        [model], data, cfg, generators=[generator], on_epoch=on_epoch, evaluator=evaluator
    )
    return result
