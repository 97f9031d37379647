"""Datasets: built-ins that ship inside packages, and user files (.npz or .csv).

Everything is loaded once into tensors. The train/validation split uses a fixed
seed, and normalization statistics come from the training part only (images:
one mean/std over all pixels; tables: per column).
"""

from __future__ import annotations

import csv
import functools
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tuner.errors import TaskError
from tuner.spec import DatasetFile


@dataclass(frozen=True)
class DataSplit:
    """Train and validation tensors, already normalized."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    n_classes: int  # the model's output width: the classes, or 1 for regression
    regression: bool = False  # a continuous target (float32), not class labels

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.x_train.dim() == 4

    def to(self, device: torch.device | str) -> DataSplit:
        # Resident on the device for the whole study: batches are index slices, no copies.
        return replace(
            self,
            x_train=self.x_train.to(device),
            y_train=self.y_train.to(device),
            x_val=self.x_val.to(device),
            y_val=self.y_val.to(device),
        )


def split_and_normalize(
    x: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    *,
    name: str,
    val_fraction: float,
    seed: int,
    regression: bool = False,
) -> DataSplit:
    """Shuffle with a fixed seed, hold out ``val_fraction``, normalize from train stats.

    Classification encodes the labels as classes 0..n-1; regression keeps the target's
    values (float32), which the metrics are then reported in."""
    if len(x) != len(y):
        raise TaskError(f"{name}: {len(x)} samples but {len(y)} labels")
    if len(x) < 4:
        raise TaskError(f"{name}: needs at least 4 samples, got {len(x)}")
    if regression:
        try:
            values = np.asarray(y, dtype=np.float32).reshape(-1)
        except ValueError:
            raise TaskError(f"{name}: a regression target must be numbers") from None
        if not np.isfinite(values).all():
            raise TaskError(f"{name}: the regression target holds NaN or infinite values")
        n_outputs, targets = 1, values
    else:
        classes, labels = np.unique(y, return_inverse=True)
        n_outputs, targets = len(classes), labels.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_val = min(len(x) - 1, max(1, round(len(x) * val_fraction)))
    val, train = order[:n_val], order[n_val:]
    x = x.astype(np.float32)
    image = x.ndim == 4
    # Statistics from the training rows only, so nothing leaks from validation.
    axes = None if image else 0
    mean = x[train].mean(axis=axes, keepdims=not image)
    std = x[train].std(axis=axes, keepdims=not image)
    std = np.where(std < 1e-8, 1.0, std).astype(np.float32)
    x = (x - mean) / std
    y_t = torch.from_numpy(targets)
    x_t = torch.from_numpy(np.ascontiguousarray(x))
    return DataSplit(
        name=name,
        x_train=x_t[train],
        y_train=y_t[train],
        x_val=x_t[val],
        y_val=y_t[val],
        n_classes=n_outputs,
        regression=regression,
    )


def _raw_builtin(name: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    if name == "mnist-5k":  # shipped in the package (data/README.md says whence)
        with (resources.files("tuner.tasks") / "data" / "mnist_5k.npz").open("rb") as fh:
            archive = np.load(fh)
            x, y = archive["x"].astype(np.float64), archive["y"].astype(np.int64)
        return (x / 255.0).reshape(-1, 1, 28, 28), y
    if name == "digits":
        from sklearn.datasets import load_digits

        bunch = load_digits()
        return (bunch.data / 16.0).reshape(-1, 1, 8, 8), bunch.target
    if name == "synthetic":
        from sklearn.datasets import make_classification

        return make_classification(
            n_samples=3000,
            n_features=20,
            n_informative=10,
            n_redundant=4,
            n_classes=4,
            class_sep=1.0,
            random_state=0,
        )
    raise TaskError(f"unknown dataset {name!r}")


def _raw_file(path: str, target: str) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    file = Path(path)
    try:
        if file.suffix == ".npz":
            with np.load(file, allow_pickle=False) as archive:
                return np.asarray(archive["x"], dtype=np.float32), np.asarray(archive[target])
        with file.open(newline="", encoding="utf-8") as fh:
            reader = csv.reader(fh)
            col = [c.strip() for c in next(reader)].index(target)
            rows = [row for row in reader if row]
        labels = np.array([row[col].strip() for row in rows])  # any text: classes are encoded
        try:
            x = np.array([[float(v) for i, v in enumerate(row) if i != col] for row in rows])
        except ValueError as exc:
            raise TaskError(f"{file.name}: feature columns must be numbers ({exc})") from None
        return x, labels
    except (OSError, ValueError, KeyError) as exc:
        raise TaskError(f"cannot read dataset {file}: {exc}") from None


@functools.lru_cache(maxsize=8)
def load_dataset(
    ref: str | DatasetFile, *, val_fraction: float = 0.2, seed: int = 0, regression: bool = False
) -> DataSplit:
    """A built-in dataset by name, or a user file; CPU tensors, cached per process."""
    if isinstance(ref, DatasetFile):
        x, y = _raw_file(ref.path, ref.target)
        name = Path(ref.path).name
    else:
        x, y = _raw_builtin(ref)
        name = ref
    return split_and_normalize(
        x, y, name=name, val_fraction=val_fraction, seed=seed, regression=regression
    )
