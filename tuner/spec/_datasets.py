"""Datasets as the spec names them: the built-ins, and user files checked without loading.

Loading (into tensors) is :mod:`tuner.tasks`' job; here a file is only looked at: its
suffix, its CSV header, or the array names inside an ``.npz`` (a zip of ``.npy`` files).
"""

from __future__ import annotations

import csv
import zipfile
from pathlib import Path

from pydantic import ValidationInfo, model_validator

from tuner.spec._dims import SpecModel, fail, resolve_file

BUILTIN_DATASETS = ("mnist-5k", "digits", "synthetic")


class DatasetFile(SpecModel):
    """A user dataset: ``.npz`` with feature array ``x`` and a label array, or ``.csv``.

    ``target`` names the label column (CSV) or array (npz). A relative ``path``
    resolves against the spec file's folder.
    """

    path: str
    target: str = "y"

    @model_validator(mode="after")
    def _check(self, info: ValidationInfo) -> DatasetFile:
        try:
            file = resolve_file(self.path, info.context)
        except ValueError as exc:
            raise fail(("path",), str(exc)) from None
        if file.suffix not in (".npz", ".csv"):
            raise fail(("path",), f"a dataset file must be .npz or .csv, got {file.name!r}")
        if not file.is_file():
            raise fail(("path",), f"dataset file not found: {file}")
        columns = _csv_header(file) if file.suffix == ".csv" else _npz_keys(file)
        if self.target not in columns:
            raise fail(("target",), f"{file.name} has no {self.target!r}; it has {columns}")
        if file.suffix == ".npz" and "x" not in columns:
            raise fail(("path",), f"{file.name} needs a feature array named 'x'; it has {columns}")
        object.__setattr__(self, "path", str(file))  # stored absolute: the spec is portable
        return self


def _csv_header(file: Path) -> list[str]:
    with file.open(newline="", encoding="utf-8") as fh:
        return [c.strip() for c in next(csv.reader(fh), [])]


def _npz_keys(file: Path) -> list[str]:
    """The arrays' names in an ``.npz``, as ``numpy.load(file).files`` lists them."""
    try:
        with zipfile.ZipFile(file) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return []
    return [n.removesuffix(".npy") for n in names]
