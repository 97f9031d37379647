"""Task plugins for the test suite, registered under the ``tuner.tasks`` entry points."""

from __future__ import annotations

import numpy as np
from torch import nn


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
