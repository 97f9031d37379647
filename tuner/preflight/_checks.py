"""The training checks of a preflight: overfit one batch, the lr range test, generalization.

Each trains briefly with fixed seeds and returns a typed result with a status (``pass``,
``fail`` or ``skipped``) and, unless it passed, the reason in one sentence. The thresholds
are the module constants below.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

from tuner.tasks import DataSplit
from tuner.training import TrainConfig, evaluate, make_optimizer, train

Status = Literal["pass", "fail", "skipped"]

#: Overfit one batch: Adam on the first OVERFIT_ROWS training rows, checked every few steps;
#: it passes once the batch's loss is below OVERFIT_RATIO times its initial loss.
OVERFIT_ROWS = 32
OVERFIT_LR = 1e-3
OVERFIT_MAX_STEPS = 1000
OVERFIT_CHECK_EVERY = 25
OVERFIT_RATIO = 0.1
#: The lr range test: each lr for LR_STEPS mini-batches from the same initial weights, the
#: loss measured on the first LR_PROBE_ROWS training rows before and after. A decade
#: "improved" when that loss ends below IMPROVED_RATIO of its start, "diverged" when it is
#: not finite or ends above its start.
LR_DECADES = tuple(10.0**k for k in range(-5, 2))
LR_STEPS = 50
LR_PROBE_ROWS = 512
IMPROVED_RATIO = 0.95
#: Generalization: GENERALIZATION_EPOCHS on at most GENERALIZATION_ROWS train/validation rows;
#: flagged when the best validation accuracy is within the chance margin (at least
#: CHANCE_ACCURACY_MARGIN, else three binomial standard errors) and the validation loss is not
#: CHANCE_LOSS_MARGIN below the loss of predicting the training class frequencies.
GENERALIZATION_EPOCHS = 3
GENERALIZATION_ROWS = 2048
CHANCE_ACCURACY_MARGIN = 0.05
CHANCE_LOSS_MARGIN = 0.02


@dataclass(frozen=True)
class OverfitCheck:
    status: Status
    reason: str | None = None
    rows: int = 0
    steps: int = 0
    lr: float = OVERFIT_LR
    initial_loss: float | None = None  # None: not finite (or not measured)
    final_loss: float | None = None
    final_accuracy: float | None = None
    target_loss: float | None = None  # OVERFIT_RATIO x the initial loss


@dataclass(frozen=True)
class LrDecade:
    lr: float
    final_loss: float | None  # None: the loss became NaN/inf
    change: float | None  # final - initial probe loss
    status: Literal["improved", "flat", "diverged"]


@dataclass(frozen=True)
class LrRangeTest:
    status: Status
    reason: str | None = None
    optimizer: str = ""
    batch_size: int = 0
    steps: int = LR_STEPS
    initial_loss: float | None = None
    decades: list[LrDecade] = field(default_factory=list)
    best_lr: float | None = None  # the lowest final loss among the decades that improved
    diverges_at: float | None = None  # the smallest lr that diverged
    proposed_lr: dict[str, float | bool] | None = None  # {low, high, log: True} for search.lr


@dataclass(frozen=True)
class GeneralizationCheck:
    status: Status
    reason: str | None = None
    lr: float | None = None
    epochs: int = 0
    val_accuracy: float | None = None  # the best epoch's
    val_loss: float | None = None
    chance_accuracy: float | None = None  # the most frequent class's validation share
    accuracy_margin: float | None = None
    chance_loss: float | None = None  # of predicting the training class frequencies


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def trainable(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]


def gradient_block(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> str | None:
    """Why no training can change ``model`` (no trainable parameter, no gradient), or None."""
    params = trainable(model)
    if not params:
        return "the model has no trainable parameters (requires_grad is False on all of them)"
    model.eval()
    loss = F.cross_entropy(model(x), y)
    if not loss.requires_grad:
        return "no gradient flows: the loss does not depend on any trainable parameter"
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    if all(g is None or not bool(g.ne(0).any()) for g in grads):
        return "no gradient flows: every trainable parameter's gradient is zero"
    return None


def overfit_one_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> OverfitCheck:
    """Adam on one fixed batch: a model that can learn drives its loss near zero."""
    initial = _finite(evaluate(model, x, y)[0])
    blocked = gradient_block(model, x, y)
    if blocked or initial is None:
        why = blocked or "the loss at initialization is not finite"
        return OverfitCheck("fail", why, len(x), initial_loss=initial)
    target = OVERFIT_RATIO * initial
    steps, accuracy = 0, None
    final: float | None = initial
    opt = torch.optim.Adam(trainable(model), lr=OVERFIT_LR)
    while steps < OVERFIT_MAX_STEPS and final is not None and final > target:
        model.train()
        for _ in range(OVERFIT_CHECK_EVERY):
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        steps += OVERFIT_CHECK_EVERY
        loss_now, accuracy = evaluate(model, x, y)
        final = _finite(loss_now)
    reason = None
    if final is None or final > target:
        reached = "a non-finite value" if final is None else f"{final:.3g}"
        reason = (
            f"the loss of one {len(x)}-row batch went from {initial:.3g} to {reached} in "
            f"{steps} Adam steps (lr {OVERFIT_LR:g}), not below {target:.3g} "
            f"({OVERFIT_RATIO:.0%} of the start): the model cannot fit even one batch"
        )
    status: Status = "fail" if reason else "pass"
    return OverfitCheck(status, reason, len(x), steps, OVERFIT_LR, initial, final, accuracy, target)


def _batches(n: int, batch_size: int, steps: int, seed: int) -> list[torch.Tensor]:
    """``steps`` mini-batches of row indices: seeded permutations of ``n`` rows, in chunks."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    size = min(batch_size, n)
    out: list[torch.Tensor] = []
    while len(out) < steps:
        order = torch.randperm(n, generator=generator)
        out += [order[i : i + size] for i in range(0, n - size + 1, size)]
    return out[:steps]


def _decade(lr: float, initial: float, final: float | None) -> LrDecade:
    if final is None or final > initial:
        return LrDecade(lr, final, None if final is None else final - initial, "diverged")
    improved = final <= IMPROVED_RATIO * initial
    return LrDecade(lr, final, final - initial, "improved" if improved else "flat")


def _proposal(decades: list[LrDecade]) -> tuple[float, dict[str, float | bool]] | None:
    """The best lr, and a range from a decade below it up to the last decade, counting up
    from the best, that still improved."""
    improved = [i for i, d in enumerate(decades) if d.status == "improved"]
    if not improved:
        return None
    best = min(improved, key=lambda i: decades[i].final_loss or 0.0)
    last = best
    while last + 1 < len(decades) and decades[last + 1].status == "improved":
        last += 1
    best_lr = decades[best].lr
    low = 10.0 ** (round(math.log10(best_lr)) - 1)
    return best_lr, {"low": low, "high": decades[last].lr, "log": True}


def lr_range_test(
    fresh: Callable[[], nn.Module],
    data: DataSplit,
    *,
    optimizer: str,
    momentum: float,
    batch_size: int,
    seed: int,
) -> LrRangeTest:
    """Each decade's lr for LR_STEPS mini-batches from the same weights; propose search.lr."""
    probe_x, probe_y = data.x_train[:LR_PROBE_ROWS], data.y_train[:LR_PROBE_ROWS]
    blocked = gradient_block(fresh(), probe_x, probe_y)
    if blocked:
        return LrRangeTest("skipped", blocked, optimizer, batch_size, steps=0)
    initial = _finite(evaluate(fresh(), probe_x, probe_y)[0])
    if initial is None:
        why = "the loss at initialization is not finite"
        return LrRangeTest("fail", why, optimizer, batch_size)
    batches = _batches(len(data.x_train), batch_size, LR_STEPS, seed)

    def final_loss(lr: float) -> float | None:
        model = fresh()
        config = TrainConfig(lr, 0.0, batch_size, 1, 1, optimizer=optimizer, momentum=momentum)
        opt = make_optimizer(optimizer, iter(trainable(model)), config)
        model.train()
        for idx in batches:
            idx = idx.to(data.x_train.device)
            loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            if not torch.isfinite(loss):
                return None
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        return _finite(evaluate(model, probe_x, probe_y)[0])

    decades = [_decade(lr, initial, final_loss(lr)) for lr in LR_DECADES]
    diverged = [d.lr for d in decades if d.status == "diverged"]
    found = _proposal(decades)
    reason = None
    if found is None:
        reason = (
            f"no learning rate from {LR_DECADES[0]:g} to {LR_DECADES[-1]:g} lowered the "
            f"training loss by {1 - IMPROVED_RATIO:.0%} in {LR_STEPS} {optimizer} steps"
        )
    return LrRangeTest(
        status="fail" if reason else "pass",
        reason=reason,
        optimizer=optimizer,
        batch_size=batch_size,
        initial_loss=initial,
        decades=decades,
        best_lr=found[0] if found else None,
        diverges_at=diverged[0] if diverged else None,
        proposed_lr=found[1] if found else None,
    )


def chance_levels(data: DataSplit) -> tuple[float, float, float]:
    """(accuracy, its margin, loss) on validation of predictions that ignore the inputs.

    No such prediction's expected accuracy beats the most frequent validation class's share;
    the loss is the cross-entropy of predicting the training class frequencies.
    """
    y_val = data.y_val.cpu()
    shares = torch.bincount(y_val, minlength=data.n_classes).double() / len(y_val)
    accuracy = float(shares.max())
    margin = max(CHANCE_ACCURACY_MARGIN, 3 * math.sqrt(accuracy * (1 - accuracy) / len(y_val)))
    priors = torch.bincount(data.y_train.cpu(), minlength=data.n_classes).double()
    loss = float(-(priors / priors.sum()).clamp_min(1e-12).log()[y_val].mean())
    return accuracy, margin, loss


def generalization_check(
    model: nn.Module,
    data: DataSplit,
    *,
    lr: float | None,
    optimizer: str,
    momentum: float,
    batch_size: int,
    seed: int,
) -> GeneralizationCheck:
    """Train briefly; validation figures that stay at chance mean nothing general was learned.

    Shuffled labels pass the overfit check (one batch can be memorized) but not this one.
    """
    rows = GENERALIZATION_ROWS
    part = replace(
        data,
        x_train=data.x_train[:rows],
        y_train=data.y_train[:rows],
        x_val=data.x_val[:rows],
        y_val=data.y_val[:rows],
    )
    chance, margin, chance_loss = chance_levels(part)
    blocked = gradient_block(model, part.x_train[:batch_size], part.y_train[:batch_size])
    if lr is None or blocked:
        why = blocked or "the lr range test found no learning rate that lowers the loss"
        return GeneralizationCheck(
            "skipped",
            why,
            lr,
            chance_accuracy=chance,
            accuracy_margin=margin,
            chance_loss=chance_loss,
        )
    epochs = GENERALIZATION_EPOCHS
    config = TrainConfig(
        lr, 0.0, batch_size, epochs, epochs, optimizer=optimizer, momentum=momentum
    )
    history = train(model, part, config, generator=torch.Generator().manual_seed(seed)).history
    finite = [s for s in history if math.isfinite(s.val_loss)]
    accuracy = max((s.val_accuracy for s in finite), default=None)
    loss = min((s.val_loss for s in finite), default=None)
    reason = None
    if accuracy is None or loss is None:
        reason = f"the loss diverged in the first epoch at lr {lr:g}"
    elif accuracy <= chance + margin and loss >= (1 - CHANCE_LOSS_MARGIN) * chance_loss:
        reason = (
            f"does not generalize: labels may not match inputs (after {len(history)} epochs at "
            f"lr {lr:g}, validation accuracy {accuracy:.3f} is within {margin:.3f} of chance "
            f"{chance:.3f}, and validation loss {loss:.3f} is not below chance {chance_loss:.3f})"
        )
    status: Status = "fail" if reason else "pass"
    return GeneralizationCheck(
        status, reason, lr, len(history), accuracy, loss, chance, margin, chance_loss
    )
