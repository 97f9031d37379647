"""Width transfer: a study's best configuration, run at another width.

Tune at a small width, then train the best trial's hyperparameters at a large one. The new
study is the source's definition with every hidden width (mlp) or channel count (cnn)
scaled alike so the widest is the new width, the search fixed to the best trial's values,
and ``task.transferred_from`` naming the source study, trial and width; each of its trials'
manifests records the transfer (:func:`tuner.tasks.build_task`'s records).

* ``mup``: the new model is in muP with base width = the width the source tuned at (or the
  source's own ``base_width`` when it was already in muP at another one): its hyperparameters
  are the tuned ones, and muP rescales what must change with the width. At its base width
  muP trains exactly as the standard parametrization, so a standard study transfers as well.
* ``standard``: the hyperparameters copied unchanged into a standard model (the baseline
  muP is measured against).
"""

from __future__ import annotations

from typing import Any, Literal

import storage
from tuner.errors import TunerError
from tuner.search import TrialParams
from tuner.spec import BuiltinTask, StudySpec, parse_spec

Parametrization = Literal["standard", "mup"]


def scaled_widths(widths: list[int], tuned: int, width: int) -> list[int]:
    """``widths`` scaled by ``width / tuned``: the widest becomes ``width``, the others in
    proportion (rounded, at least 1)."""
    return [max(1, round(w * width / tuned)) for w in widths]


def transferred_definition(
    source: StudySpec,
    best: TrialParams,
    trial: int,
    *,
    width: int,
    parametrization: Parametrization = "mup",
    name: str | None = None,
    n_trials: int = 1,
) -> dict[str, Any]:
    """The definition of the study that runs trial ``trial`` of ``source`` (its
    hyperparameters ``best``) at ``width``; not yet validated (:func:`parse_spec` does)."""
    task = source.task
    if not isinstance(task, BuiltinTask):
        raise TunerError(
            f"study {source.name!r} trains task plugin {task.plugin!r}: transfer scales a "
            "built-in model's widths (mlp, cnn); a task's own code takes tuner.mup itself"
        )
    tuned = task.width
    if tuned == 0:
        raise TunerError(f"study {source.name!r}: its model has no hidden width to scale")
    field = "hidden" if task.model == "mlp" else "channels"
    new_task = task.model_dump(mode="json", exclude_none=True)
    new_task[field] = scaled_widths(getattr(task, field), tuned, width)
    new_task.pop("base_width", None)
    new_task["parametrization"] = parametrization
    if parametrization == "mup":
        from_mup = task.parametrization == "mup" and task.base_width is not None
        new_task["base_width"] = task.base_width if from_mup else tuned
    new_task["transferred_from"] = {"study": source.name, "trial": trial, "width": tuned}
    definition = source.to_json()
    definition.update(
        name=name or f"{source.name}-w{width}-{parametrization}",
        task=new_task,
        search={
            "initializer": [{"name": best.initializer_name, **best.init_params}],
            "lr": best.lr,
            "weight_decay": best.weight_decay,
            "batch_size": best.batch_size,
            "patience": best.patience,
            **best.extra,
        },
        budget={**definition["budget"], "n_trials": n_trials},
        sampler={"name": "random"},  # nothing is searched: no sampler to learn
        pruner={"name": "none"},  # every trial is the same configuration: none to prune
    )
    return definition


def transfer_study(
    db: storage.Database,
    source_name: str,
    *,
    width: int,
    parametrization: Parametrization = "mup",
    name: str | None = None,
    n_trials: int = 1,
) -> tuple[StudySpec, storage.TrialResult]:
    """The transferred study's definition, validated, and the source's best trial it runs.

    TunerError when the source does not exist, has no complete trial, or trains a plugin."""
    if db.current_revision() is None:
        raise TunerError(f"no study named {source_name!r}: {db.shown_url} holds no results yet")
    with db.session() as session:
        record = storage.get_study_record(session, source_name)
        if record is None:
            raise TunerError(f"no study named {source_name!r} in {db.shown_url}")
        spec_json = dict(record.spec_json)
        rows = storage.list_trial_results(session, source_name, state="complete", limit=1)
        session.expunge_all()
    if not rows or rows[0].value is None:
        raise TunerError(f"study {source_name!r} has no complete trial to transfer yet")
    best = rows[0]
    source = parse_spec(spec_json)
    definition = transferred_definition(
        source,
        TrialParams.from_json(dict(best.params_json)),
        best.trial_number,
        width=width,
        parametrization=parametrization,
        name=name,
        n_trials=n_trials,
    )
    return parse_spec(definition), best
