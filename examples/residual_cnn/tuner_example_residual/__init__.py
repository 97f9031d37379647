"""A small residual CNN with BatchNorm, and an identity-preserving option for its blocks.

The trial's initializer goes to every convolution and the Linear head (``ctx.init(model)``).
Then the extra searched dimension ``residual_init`` may make each residual block start
close to (or exactly) the identity:

* ``none``: nothing more;
* ``dirac``: ``torch.nn.init.dirac_`` on both 3x3 convolutions of every block, so each
  branch starts as a per-channel identity map (before its BatchNorm);
* ``zero_last``: the weight (gamma) of every block's last BatchNorm set to zero, so each
  block's residual branch outputs zero and the block is the identity at t=0 (Goyal et al.
  2017, "Accurate, Large Minibatch SGD").
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from tuner.inits import mark_group
from tuner.tasks import TrialContext, load_dataset

RESIDUAL_INITS = ("none", "dirac", "zero_last")
CALIBRATION_ROWS = 256


class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the identity shortcut, then ReLU (He et al. 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        # the branch's last layer: a study may search its own initializer for it
        # (search.initializer_groups.residual_last, e.g. zeros, as Fixup does)
        self.conv2 = mark_group(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), "residual_last"
        )
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class ResidualNet(nn.Module):
    """Stem conv (+ 2x2 max-pool on images of 16 pixels or more), ``blocks`` basic blocks of
    ``channels`` channels, global average pooling and a Linear head."""

    def __init__(self, image: tuple[int, ...], channels: int, blocks: int, classes: int) -> None:
        super().__init__()
        in_ch, height = image[0], image[1]
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(),
            nn.MaxPool2d(2) if height >= 16 else nn.Identity(),
        )
        self.blocks = nn.Sequential(*(BasicBlock(channels) for _ in range(blocks)))
        self.head = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(self.blocks(self.stem(x)))
        return logits


def identity_init(model: ResidualNet, option: str) -> list[str]:
    """Apply ``residual_init`` ``option`` to every block in place; the parameters it set."""
    if option not in RESIDUAL_INITS:
        raise ValueError(f"residual_init must be one of {RESIDUAL_INITS}, got {option!r}")
    changed: list[str] = []
    with torch.no_grad():
        for name, block in model.blocks.named_children():
            assert isinstance(block, BasicBlock)
            if option == "dirac":
                nn.init.dirac_(block.conv1.weight)
                nn.init.dirac_(block.conv2.weight)
                changed += [f"blocks.{name}.conv1.weight", f"blocks.{name}.conv2.weight"]
            elif option == "zero_last":
                nn.init.zeros_(block.bn2.weight)
                changed.append(f"blocks.{name}.bn2.weight")
    return changed


class ResidualCnn:
    """The ``residual-cnn`` task. Options (the spec's ``task:`` fields): ``data`` (``digits``,
    scikit-learn's 8x8 digits, or ``mnist-5k``), ``train_rows``, ``channels``, ``blocks`` and
    ``residual_init`` (each used when the search has no dimension of that name). Reports
    ``val_loss``, ``val_accuracy`` and ``train_loss``."""

    activation = "relu"

    def __init__(
        self,
        data: str = "digits",
        train_rows: int | None = None,
        channels: int = 16,
        blocks: int = 2,
        residual_init: str = "none",
    ) -> None:
        if data not in ("digits", "mnist-5k"):
            raise ValueError(f"data must be 'digits' or 'mnist-5k', got {data!r}")
        self.data, self.train_rows = data, train_rows
        self.channels, self.blocks, self.residual_init = channels, blocks, residual_init

    def train(self, ctx: TrialContext) -> None:
        split = load_dataset(self.data)  # (N, 1, H, W), normalized, fixed split
        device = ctx.device
        x_train = split.x_train[: self.train_rows].to(device)
        y_train = split.y_train[: self.train_rows].to(device)
        x_val, y_val = split.x_val.to(device), split.y_val.to(device)

        channels = int(ctx.params.get("channels", self.channels))
        blocks = int(ctx.params.get("blocks", self.blocks))
        option = str(ctx.params.get("residual_init", self.residual_init))
        model = ResidualNet(split.input_shape, channels, blocks, split.n_classes).to(device)
        calibration = (x_train[:CALIBRATION_ROWS], y_train[:CALIBRATION_ROWS])
        ctx.init(model, calibration=calibration)  # every conv and the head: the trial's init
        identity_init(model, option)  # then the blocks' identity option, on top
        optimizer = ctx.optimizer(model.parameters())
        batch_size = int(ctx.params["batch_size"])
        generator = ctx.generator()

        for epoch in range(1, ctx.max_epochs + 1):
            model.train()
            total = 0.0
            order = torch.randperm(len(x_train), generator=generator).to(device)
            for start in range(0, len(order), batch_size):
                idx = order[start : start + batch_size]
                optimizer.zero_grad()
                loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
                loss.backward()
                optimizer.step()
                total += loss.item() * len(idx)
            model.eval()
            with torch.no_grad():
                logits = model(x_val)
                val_loss = float(F.cross_entropy(logits, y_val))
                accuracy = float((logits.argmax(1) == y_val).float().mean())
            metrics = {"val_accuracy": accuracy, "train_loss": total / len(x_train)}
            if ctx.report(epoch, val_loss=val_loss, **metrics):
                return
