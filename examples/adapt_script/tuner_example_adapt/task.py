"""An MLP on scikit-learn's digits, with its own DataLoader and training loop.

plain_train.py as a tuner task, fewest changes. Run: tuner run examples/adapt_script/study.yaml
"""

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from tuner.tasks import TrialContext


def main(ctx: TrialContext) -> None:
    hidden, batch_size, epochs = ctx.params["hidden"], ctx.params["batch_size"], ctx.max_epochs
    device = ctx.device
    x, y = load_digits(return_X_y=True)
    x, y = torch.tensor(x / 16.0, dtype=torch.float32), torch.tensor(y)
    x_train, y_train, x_val, y_val = x[:1400], y[:1400], x[1400:], y[1400:]
    dataset = TensorDataset(x_train, y_train)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=ctx.generator())
    model = nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, 10)).to(device)
    ctx.init(model, calibration=(x_train[:256].to(device), y_train[:256].to(device)))
    optimizer = ctx.optimizer(model.parameters())
    for epoch in range(1, epochs + 1):
        model.train()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb.to(device)), yb.to(device))
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            logits = model(x_val.to(device))
            val_loss = F.cross_entropy(logits, y_val.to(device)).item()
            val_accuracy = (logits.argmax(1).cpu() == y_val).float().mean().item()
        if ctx.report(epoch, val_loss=val_loss, val_accuracy=val_accuracy):
            return


class Task:  # what the tuner.tasks entry point makes: the tuner calls train(ctx) per trial
    train = staticmethod(main)
