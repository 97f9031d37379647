"""A trial's seeds: one (init, data-order) pair per replicate, derived from the study's seed.

``replicates: k`` gives replicate ``r`` the pair of :func:`trial_seeds` ``(seed, root, r)``:
both seeds change together. A crossed design ``{init: a, data: b}`` gives replicate
``r = i * b + j`` the init seed of pair ``i`` and the data-order seed of pair ``j``, so every
init seed meets every data-order seed; its cell ``(i, i)`` is the plain replicate ``i``.
"""

from __future__ import annotations

import numpy as np

from tuner.spec import SeedDesign


def trial_seeds(study_seed: int, number: int, replicate: int = 0) -> tuple[int, int]:
    """Independent (init, data-order) seeds for a trial, stable across runs and machines."""
    entropy = [study_seed, number] if replicate == 0 else [study_seed, number, replicate]
    init_seed, data_seed = np.random.SeedSequence(entropy).generate_state(2)
    return int(init_seed), int(data_seed)


def replicate_seeds(
    study_seed: int, root: int, replicates: int | SeedDesign = 1
) -> list[dict[str, int]]:
    """``{"replicate", "init", "data"}`` per replicate of trial ``root``, replicate order."""
    if not isinstance(replicates, SeedDesign):
        pairs = [trial_seeds(study_seed, root, r) for r in range(replicates)]
        return [{"replicate": r, "init": i, "data": d} for r, (i, d) in enumerate(pairs)]
    inits = [trial_seeds(study_seed, root, i)[0] for i in range(replicates.init)]
    datas = [trial_seeds(study_seed, root, j)[1] for j in range(replicates.data)]
    return [
        {"replicate": i * replicates.data + j, "init": init, "data": data}
        for i, init in enumerate(inits)
        for j, data in enumerate(datas)
    ]
