"""What a trial trains: datasets loaded into tensors, built-in models and task plugins."""

from tuner.tasks._context import LossFn, TrainFunction, TrialContext
from tuner.tasks._data import DataSplit, load_dataset, split_and_normalize
from tuner.tasks._tasks import (
    Task,
    TaskPlugin,
    TrainingPlugin,
    activation_module,
    build_task,
    cnn,
    mlp,
)
from tuner.tasks._width import check_output_width, output_width_error

__all__ = [
    "DataSplit",
    "LossFn",
    "Task",
    "TaskPlugin",
    "TrainFunction",
    "TrainingPlugin",
    "TrialContext",
    "activation_module",
    "build_task",
    "check_output_width",
    "cnn",
    "load_dataset",
    "mlp",
    "output_width_error",
    "split_and_normalize",
]
