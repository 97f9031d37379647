"""Populations: K trials of one architecture trained as one stacked model, each recorded
exactly as a single trial would be.
"""

from tuner.population._optim import StackedOptimizer
from tuner.population._run import (
    CPU_CAP,
    CUDA_CAP,
    MEMORY_SHARE,
    STACKED_KNOBS,
    PopulationConfig,
    execute_population,
    largest_batch,
    population_groups,
    population_size,
    sampler_cap,
    stackable,
    stacks_search,
)
from tuner.population._stack import StackedMLP, stack_plan
from tuner.population._train import (
    Member,
    bf16_matmuls,
    population_matmuls,
    resolve_fast,
)

__all__ = [
    "CPU_CAP",
    "CUDA_CAP",
    "MEMORY_SHARE",
    "STACKED_KNOBS",
    "Member",
    "PopulationConfig",
    "StackedMLP",
    "StackedOptimizer",
    "bf16_matmuls",
    "execute_population",
    "largest_batch",
    "population_groups",
    "population_matmuls",
    "population_size",
    "resolve_fast",
    "sampler_cap",
    "stack_plan",
    "stackable",
    "stacks_search",
]
