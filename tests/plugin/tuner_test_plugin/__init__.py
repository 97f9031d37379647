"""Task plugins for the test suite, registered under the ``tuner.tasks`` entry points."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset


class TinyTanhTask:
    """A user model on a built-in dataset: a tanh MLP whose width comes from the spec."""

    activation = "tanh"

    def __init__(self, width: int = 32) -> None:
        self.width = width

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        return nn.Sequential(
            nn.Flatten(),
            nn.Linear(int(np.prod(input_shape)), self.width),
            nn.Tanh(),
            nn.Linear(self.width, n_classes),
        )


class XorBlobs:
    """A user model with its own data: four Gaussian blobs labelled by XOR of their quadrant."""

    def __init__(self, n: int = 800, noise: float = 0.3) -> None:
        self.n, self.noise = n, noise

    def load_data(self) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(7)
        corners = rng.integers(0, 2, size=(self.n, 2))
        x = corners * 2.0 - 1.0 + rng.normal(0, self.noise, size=(self.n, 2))
        return x.astype(np.float32), (corners[:, 0] ^ corners[:, 1])

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        return nn.Sequential(nn.Linear(input_shape[0], 16), nn.ReLU(), nn.Linear(16, n_classes))


class FrozenMlp:
    """A broken user model: every parameter has requires_grad False, so nothing can train it."""

    def build_model(self, input_shape: tuple[int, ...], n_classes: int) -> nn.Module:
        model = nn.Sequential(
            nn.Flatten(),
            nn.Linear(int(np.prod(input_shape)), 32),
            nn.ReLU(),
            nn.Linear(32, n_classes),
        )
        return model.requires_grad_(False)


class OwnLoop:
    """A task with its own training: scikit-learn's digits through a DataLoader, an MLP whose
    width and dropout are the search's extra hyperparameters, and its own metric
    (``val_error``). Its seeds come from the context, so a replay reproduces it."""

    activation = "relu"

    def train(self, ctx: Any) -> None:
        x, y = load_digits(return_X_y=True)
        x = torch.tensor(x / 16.0, dtype=torch.float32)
        y = torch.tensor(y)
        x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]
        loader = DataLoader(
            TensorDataset(x_train, y_train),
            batch_size=int(ctx.params["batch_size"]),
            shuffle=True,
            generator=ctx.generator(),
        )
        width, dropout = int(ctx.params.get("width", 32)), float(ctx.params.get("dropout", 0.0))
        model = nn.Sequential(
            nn.Linear(64, width), nn.ReLU(), nn.Dropout(dropout), nn.Linear(width, 10)
        ).to(ctx.device)
        ctx.init(model, calibration=(x_train[:256].to(ctx.device), y_train[:256].to(ctx.device)))
        optimizer = ctx.optimizer(model.parameters())
        for epoch in range(1, ctx.max_epochs + 1):
            model.train()
            total = 0.0
            for xb, yb in loader:
                optimizer.zero_grad()
                loss = F.cross_entropy(model(xb.to(ctx.device)), yb.to(ctx.device))
                loss.backward()
                optimizer.step()
                total += loss.item() * len(xb)
            model.eval()
            with torch.no_grad():
                logits = model(x_val.to(ctx.device))
                val_loss = float(F.cross_entropy(logits, y_val.to(ctx.device)))
                error = float((logits.argmax(1).cpu() != y_val).float().mean())
            if ctx.report(
                epoch, train_loss=total / len(x_train), val_loss=val_loss, val_error=error
            ):
                return


class Scripted:
    """A task whose metric follows a script (``values``; ``nan`` diverges, ``raise`` fails):
    a real model is built and initialized each trial, then each epoch reports the next value."""

    def __init__(self, values: list[Any], metric: str = "score") -> None:
        self.values, self.metric = values, metric

    def train(self, ctx: Any) -> None:
        model = nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 2))
        x = torch.randn(64, 8, generator=ctx.generator())
        ctx.init(model, calibration=(x, (x[:, 0] > 0).long()))
        ctx.optimizer(model.parameters())
        for epoch, value in enumerate(self.values, start=1):
            if value == "raise":
                raise RuntimeError(f"scripted failure at epoch {epoch}")
            number = math.nan if value == "nan" else float(value)
            if ctx.report(epoch, **{self.metric: number}):
                return


class Gated(OwnLoop):
    """:class:`OwnLoop` whose trials from number ``open_trials`` on wait until the file
    ``gate`` exists before training: a test decides when the rest of the study may run."""

    def __init__(self, gate: str, open_trials: int = 2, wait_s: float = 600.0) -> None:
        self.gate, self.open_trials, self.wait_s = Path(gate), open_trials, wait_s

    def train(self, ctx: Any) -> None:
        end = time.monotonic() + self.wait_s
        while ctx.number >= self.open_trials and not self.gate.exists():
            if time.monotonic() > end:
                raise TimeoutError(f"the gate {self.gate} never opened")
            time.sleep(0.05)
        super().train(ctx)
