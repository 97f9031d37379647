"""The study definition: what a user writes, parsed and checked. Pure data: no torch, no
Optuna at import (sampler options are checked against Optuna only when a spec is parsed).
"""

from tuner.spec._datasets import BUILTIN_DATASETS, DatasetFile
from tuner.spec._dims import (
    FloatDim,
    FloatRange,
    IntDim,
    IntRange,
    ParamDim,
    check_bound,
    dim_values,
    fail,
    is_searched,
    resolve_file,
)
from tuner.spec._initializers import (
    ACTIVATIONS,
    ALIASES,
    INITIALIZERS,
    InitializerInfo,
    ParamInfo,
    canonical_name,
    resolve_params,
)
from tuner.spec._options import (
    PRUNER_DEFAULTS,
    PRUNERS,
    SAMPLERS,
    PrunerConfig,
    SamplerConfig,
    optuna_class,
)
from tuner.spec._plugins import ENTRY_POINT_GROUP, installed_plugins
from tuner.spec._search import (
    InitializerEntry,
    SearchSpec,
    builtin_applicability,
    check_grid_compatible,
    grid_space,
    label_entries,
)
from tuner.spec._study import (
    METRICS,
    Budget,
    BuiltinTask,
    PluginTask,
    StudySpec,
    TaskSpec,
    load_spec,
    parse_spec,
    read_definition,
)

__all__ = [
    "ACTIVATIONS",
    "ALIASES",
    "BUILTIN_DATASETS",
    "ENTRY_POINT_GROUP",
    "INITIALIZERS",
    "METRICS",
    "PRUNERS",
    "PRUNER_DEFAULTS",
    "SAMPLERS",
    "Budget",
    "BuiltinTask",
    "DatasetFile",
    "FloatDim",
    "FloatRange",
    "InitializerEntry",
    "InitializerInfo",
    "IntDim",
    "IntRange",
    "ParamDim",
    "ParamInfo",
    "PluginTask",
    "PrunerConfig",
    "SamplerConfig",
    "SearchSpec",
    "StudySpec",
    "TaskSpec",
    "builtin_applicability",
    "canonical_name",
    "check_bound",
    "check_grid_compatible",
    "dim_values",
    "fail",
    "grid_space",
    "installed_plugins",
    "is_searched",
    "label_entries",
    "load_spec",
    "optuna_class",
    "parse_spec",
    "read_definition",
    "resolve_file",
    "resolve_params",
]
