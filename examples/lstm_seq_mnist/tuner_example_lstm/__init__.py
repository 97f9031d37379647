"""Sequential MNIST: an LSTM reads each 28x28 digit one pixel row per time step.

The task trains with its own loop (``train(ctx)``). Only the LSTM gets the trial's
initializer: ``ctx.init(model.lstm, ...)`` covers its input-to-hidden and hidden-to-hidden
weights, gate by gate; the readout Linear keeps PyTorch's default initialization.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from tuner.tasks import TrialContext, load_dataset

STEPS, FEATURES, CLASSES = 28, 28, 10
CALIBRATION_ROWS = 256


class SeqClassifier(nn.Module):
    """LSTM over the rows of an image, then a Linear readout of the last hidden state."""

    def __init__(self, hidden_size: int, num_layers: int = 1) -> None:
        super().__init__()
        self.lstm = nn.LSTM(FEATURES, hidden_size, num_layers=num_layers, batch_first=True)
        self.readout = nn.Linear(hidden_size, CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (batch, steps, features)
        out, _ = self.lstm(x)
        logits: torch.Tensor = self.readout(out[:, -1])
        return logits


def sequences(images: torch.Tensor) -> torch.Tensor:
    """(N, 1, 28, 28) images -> (N, 28 steps, 28 features): one pixel row per time step."""
    return images.reshape(-1, STEPS, FEATURES)


class LstmSeqMnist:
    """The ``lstm-seq-mnist`` task. Options (the spec's ``task:`` fields): ``train_rows`` and
    ``val_rows`` cap the 4,000/1,000 rows of mnist-5k, ``hidden_size`` is used when the search
    has no ``hidden_size`` dimension, ``num_layers`` stacks LSTMs, ``clip_norm`` clips the
    gradient norm (0: off). Reports ``val_accuracy``, ``val_loss`` and ``train_loss``."""

    activation = "tanh"

    def __init__(
        self,
        train_rows: int | None = None,
        val_rows: int | None = None,
        hidden_size: int = 64,
        num_layers: int = 1,
        clip_norm: float = 1.0,
    ) -> None:
        self.train_rows, self.val_rows = train_rows, val_rows
        self.hidden_size, self.num_layers, self.clip_norm = hidden_size, num_layers, clip_norm

    def train(self, ctx: TrialContext) -> None:
        data = load_dataset("mnist-5k")  # normalized on the training rows, fixed split
        device = ctx.device
        x_train = sequences(data.x_train[: self.train_rows]).to(device)
        y_train = data.y_train[: self.train_rows].to(device)
        x_val = sequences(data.x_val[: self.val_rows]).to(device)
        y_val = data.y_val[: self.val_rows].to(device)

        hidden = int(ctx.params.get("hidden_size", self.hidden_size))
        model = SeqClassifier(hidden, self.num_layers).to(device)

        def loss(output: Any, target: torch.Tensor) -> torch.Tensor:
            # The t=0 probe runs the LSTM alone; its output (sequence, state) goes through
            # the readout, so the gradients it measures are the real loss's.
            return F.cross_entropy(model.readout(output[0][:, -1]), target)

        calibration = (x_train[:CALIBRATION_ROWS], y_train[:CALIBRATION_ROWS])
        ctx.init(model.lstm, calibration=calibration, loss=loss)  # the readout keeps its default
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
                batch_loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
                batch_loss.backward()
                if self.clip_norm > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), self.clip_norm)
                optimizer.step()
                total += batch_loss.item() * len(idx)
            model.eval()
            with torch.no_grad():
                logits = model(x_val)
                val_loss = float(F.cross_entropy(logits, y_val))
                accuracy = float((logits.argmax(1) == y_val).float().mean())
            metrics = {"train_loss": total / len(x_train), "val_loss": val_loss}
            if ctx.report(epoch, val_accuracy=accuracy, **metrics):
                return
