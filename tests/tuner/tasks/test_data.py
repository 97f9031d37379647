"""Datasets: built-ins from packages, user files, split and normalization."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tuner.errors import TaskError
from tuner.spec import DatasetFile, parse_spec
from tuner.tasks import load_dataset, split_and_normalize


@pytest.mark.parametrize(
    ("name", "shape", "classes", "total"),
    [
        ("mnist-5k", (1, 28, 28), 10, 5000),
        ("digits", (1, 8, 8), 10, 1797),
        ("synthetic", (20,), 4, 3000),
    ],
)
def test_builtin_datasets(name: str, shape: tuple[int, ...], classes: int, total: int) -> None:
    data = load_dataset(name)
    assert data.input_shape == shape
    assert data.n_classes == classes
    assert len(data.x_train) + len(data.x_val) == total
    assert len(data.x_val) == round(total * 0.2)
    assert data.x_train.dtype == torch.float32 and data.y_train.dtype == torch.int64


def test_normalization_uses_training_rows_only() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(5.0, 3.0, size=(1000, 4))
    data = split_and_normalize(x, rng.integers(0, 2, 1000), name="t", val_fraction=0.25, seed=1)
    train_mean = data.x_train.mean(0)
    assert torch.allclose(train_mean, torch.zeros(4), atol=1e-5)
    assert torch.allclose(data.x_train.std(0, unbiased=False), torch.ones(4), atol=1e-4)
    # validation is transformed with the training statistics, so it is not exactly centred
    assert not torch.allclose(data.x_val.mean(0), torch.zeros(4), atol=1e-5)


def test_split_is_fixed_by_seed_and_disjoint() -> None:
    x = np.arange(200, dtype=np.float64).reshape(100, 2)
    y = np.arange(100) % 3
    a = split_and_normalize(x, y, name="t", val_fraction=0.2, seed=0)
    b = split_and_normalize(x, y, name="t", val_fraction=0.2, seed=0)
    c = split_and_normalize(x, y, name="t", val_fraction=0.2, seed=1)
    assert torch.equal(a.x_val, b.x_val) and not torch.equal(a.x_val, c.x_val)
    train_rows = {tuple(r) for r in a.x_train.tolist()}
    assert not train_rows & {tuple(r) for r in a.x_val.tolist()}


def test_constant_columns_do_not_divide_by_zero() -> None:
    x = np.ones((50, 3))
    x[:, 0] = np.arange(50)
    data = split_and_normalize(x, np.arange(50) % 2, name="t", val_fraction=0.2, seed=0)
    assert torch.isfinite(data.x_train).all()


def _file(tmp_path: Path, name: str, target: str = "y") -> DatasetFile:
    spec = parse_spec(
        {"name": "f", "task": {"dataset": {"path": name, "target": target}}}, base_dir=tmp_path
    )
    assert isinstance(spec.task.dataset, DatasetFile)
    return spec.task.dataset


def test_csv_file_with_a_target_column(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["a,label,b"] + [f"{rng.normal()},{'cat' if i % 2 else 'dog'},{i}" for i in range(40)]
    (tmp_path / "d.csv").write_text("\n".join(rows))
    data = load_dataset(_file(tmp_path, "d.csv", "label"))
    assert data.input_shape == (2,) and data.n_classes == 2
    # a feature that is not a number: the reader says which file and why
    (tmp_path / "bad.csv").write_text("a,y\n1,0\nx,1\n2,0\n3,1\n")
    with pytest.raises(TaskError, match=r"bad\.csv"):
        load_dataset(_file(tmp_path, "bad.csv"))


def test_npz_file_with_images(tmp_path: Path) -> None:
    x = np.random.default_rng(0).random((30, 1, 6, 6))
    np.savez(tmp_path / "d.npz", x=x, y=np.arange(30) % 5)
    data = load_dataset(_file(tmp_path, "d.npz"))
    assert data.input_shape == (1, 6, 6) and data.is_image and data.n_classes == 5
