"""What a study trains: a built-in model or a plugin's task, as a definition gives it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    field_validator,
    model_validator,
)

from tuner.spec._datasets import BUILTIN_DATASETS, DatasetFile
from tuner.spec._dims import SpecModel, fail
from tuner.spec._initializers import ACTIVATIONS
from tuner.spec._plugins import installed_plugins

#: Bounds on what a spec may ask (seeds fit numpy's).
SEED_MAX = 2**32 - 1
MAX_LAYERS = 64
MAX_WIDTH = 1 << 20
#: The layer groups of the built-in models (Linear and Conv layers only).
BUILTIN_GROUPS = ("input", "hidden", "output")


def _dataset_kind(value: Any) -> str:
    return "<file>" if isinstance(value, dict | DatasetFile) else "<builtin>"


DatasetRef = Annotated[
    Annotated[str, Tag("<builtin>")] | Annotated[DatasetFile, Tag("<file>")],
    Discriminator(_dataset_kind),
]


class _TaskCommon(SpecModel):
    dataset: DatasetRef = "mnist-5k"
    optimizer: Literal["sgd", "adam", "adamw"] = "sgd"
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum")
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    split_seed: int = Field(0, ge=0, le=SEED_MAX, description="seed of the train/validation split")

    @field_validator("dataset")
    @classmethod
    def _known_dataset(cls, value: str | DatasetFile) -> str | DatasetFile:
        if isinstance(value, str) and value not in BUILTIN_DATASETS:
            raise ValueError(
                f"unknown dataset {value!r}; built-ins are {', '.join(BUILTIN_DATASETS)}, "
                "or give {path: file.npz|file.csv, target: column}"
            )
        return value


class TransferSource(SpecModel):
    """Where a transferred study's hyperparameters come from (``tuner transfer`` writes it):
    the best trial of another study, tuned at another width."""

    study: str = Field(
        min_length=1, max_length=128, description="the study the hyperparameters were tuned in"
    )
    trial: int = Field(ge=0, description="its trial whose hyperparameters these are")
    width: int = Field(ge=1, le=MAX_WIDTH, description="the width that study tuned at")


class BuiltinTask(_TaskCommon):
    """One of the built-in models on a built-in or file dataset."""

    model: Literal["mlp", "cnn"] = "mlp"
    hidden: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(
        default_factory=lambda: [256, 256], max_length=MAX_LAYERS
    )
    channels: list[Annotated[int, Field(ge=1, le=MAX_WIDTH)]] = Field(
        default_factory=lambda: [16, 32], max_length=MAX_LAYERS
    )
    kernel_size: int = Field(3, ge=1, le=15)
    activation: Literal["relu", "leaky_relu", "tanh", "sigmoid", "gelu", "selu"] = "relu"
    objective: Literal["classification", "regression"] = Field(
        "classification", description="regression: a data file's continuous target, MSE loss"
    )
    parametrization: Literal["standard", "mup"] = Field(
        "standard",
        description="mup: muP (Tensor Programs V), hyperparameters that transfer across widths",
    )
    base_width: int | None = Field(
        None,
        ge=1,
        le=MAX_WIDTH,
        description="mup: the width the hyperparameters are tuned for; default: the model's",
    )
    transferred_from: TransferSource | None = Field(
        None, description="the tuned study and trial these hyperparameters come from"
    )

    @property
    def width(self) -> int:
        """The model's width: its widest hidden layer (mlp) or convolution (cnn); 0: none."""
        return max(self.hidden if self.model == "mlp" else self.channels, default=0)

    @property
    def width_multiplier(self) -> float:
        """m = width / base_width (1 under the standard parametrization)."""
        if self.parametrization != "mup" or self.base_width is None:
            return 1.0
        return self.width / self.base_width

    @model_validator(mode="after")
    def _mup_needs_widths(self) -> BuiltinTask:
        if self.parametrization == "standard" and self.base_width is not None:
            raise fail(("base_width",), "base_width applies only with parametrization: mup")
        if self.parametrization == "mup" and self.width == 0:
            field, layer = (
                ("hidden", "hidden layer") if self.model == "mlp" else ("channels", "convolution")
            )
            raise fail((field,), f"parametrization mup needs a width: at least one {layer}")
        return self

    @model_validator(mode="after")
    def _cnn_needs_images(self) -> BuiltinTask:
        if self.model == "cnn" and self.dataset == "synthetic":
            raise ValueError("model 'cnn' needs an image dataset; 'synthetic' is tabular")
        if self.objective == "regression" and isinstance(self.dataset, str):
            raise fail(
                ("objective",),
                "regression needs a data file with a continuous target ({path, target}); "
                f"{self.dataset!r} is a classification dataset",
            )
        return self


class PluginTask(_TaskCommon):
    """A task registered by an installed package under the ``tuner.tasks`` entry points.

    Fields other than the common ones are passed to the plugin as its options.
    """

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)
    plugin: str
    activation: str | None = None

    @field_validator("plugin")
    @classmethod
    def _installed(cls, value: str) -> str:
        names = sorted(installed_plugins())
        if value not in names:
            known = ", ".join(names) or "none"
            raise ValueError(f"no task plugin named {value!r} is installed (installed: {known})")
        return value

    @field_validator("activation")
    @classmethod
    def _activation(cls, value: str | None) -> str | None:
        if value is not None and value not in ACTIVATIONS:
            raise ValueError(f"unknown activation {value!r}; expected one of {ACTIVATIONS}")
        return value

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


def _task_kind(value: Any) -> str:
    if isinstance(value, PluginTask) or (isinstance(value, dict) and "plugin" in value):
        return "<plugin>"
    return "<builtin>"


TaskSpec = Annotated[
    Annotated[BuiltinTask, Tag("<builtin>")] | Annotated[PluginTask, Tag("<plugin>")],
    Discriminator(_task_kind),
]
