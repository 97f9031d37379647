"""A study's report: one self-contained HTML page, and the same figures in the Optuna dashboard.

The page inlines plotly.js once and embeds each figure as JSON, so it opens offline and
fetches nothing. Data comes from :mod:`storage` (results rows, t=0 diagnostics and signal
propagation) and from
Optuna's storage (per-epoch values, parameter importances).
"""

from __future__ import annotations

import datetime
import logging
from collections.abc import Mapping

import optuna
import plotly.graph_objects as go

import storage
from tuner.errors import TunerError
from tuner.report import _figures as figures
from tuner.report._data import Importances, ReportData
from tuner.report._html import complete_values, markdown_note, render
from tuner.report._seeds import MISSING as NO_SEED_DESIGN
from tuner.report._signal import signal_propagation
from tuner.variance import by_initializer, seed_variance

log = logging.getLogger(__name__)

#: Rows of the leaderboard table.
LEADERBOARD_ROWS = 20
#: Figure keys (also the page's element ids and the dashboard's graph ids), in page order.
FIGURES = (
    "values",
    "seed-variance",
    "learning-curves",
    "depth-profile",
    "signal-propagation",
    "lr-weight-decay",
    "importances",
)


def param_importances(db: storage.Database, name: str) -> Importances:
    """Optuna's parameter importances of the study, or None and a sentence saying why not."""
    try:
        study = optuna.load_study(study_name=name, storage=db.optuna_storage())
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(trials) < 2:
            return None, f"importances need at least 2 complete trials; there are {len(trials)}"
        varying = {
            param
            for param in {p for t in trials for p in t.params}
            if len({repr(t.params.get(param)) for t in trials}) > 1
        }
        if not varying:
            return None, "importances need parameters that vary between complete trials"
        found = optuna.importance.get_param_importances(study)
    except storage.StorageError:
        raise
    except KeyError:
        return None, f"Optuna has no study {name!r} in this database"
    except Exception as exc:  # Optuna's evaluators raise many kinds; a report still renders
        log.warning("importances of study %r failed: %s", name, exc)
        return None, f"importances could not be computed: {exc}"
    return {param: float(value) for param, value in found.items()}, None


def _curves(
    db: storage.Database, name: str, rows: list[storage.TrialResultData]
) -> list[figures.Curve]:
    """Every Optuna trial's per-epoch values; the initializer from its results row."""
    try:
        study = optuna.load_study(study_name=name, storage=db.optuna_storage())
    except KeyError:
        return []
    by_number = {r.trial_number: r for r in rows}
    curves = []
    for trial in study.get_trials(deepcopy=False):
        row = by_number.get(trial.number)
        initializer = row.initializer if row else trial.params.get("initializer")
        if initializer is None or not trial.intermediate_values:
            continue
        epochs = sorted(trial.intermediate_values)
        state = row.state if row else trial.state.name.lower()
        values = [trial.intermediate_values[e] for e in epochs]
        curves.append(figures.Curve(trial.number, str(initializer), state, epochs, values))
    return curves


def collect_report(db: storage.Database, study_name: str) -> ReportData:
    """Read what the report of ``study_name`` shows; StudyNotFoundError if there is none."""
    with db.session() as session:
        record = storage.get_study_record(session, study_name)
        if record is None:
            raise storage.StudyNotFoundError(f"study {study_name!r} does not exist")
        rows = [
            storage.TrialResultData.from_row(r)
            for r in storage.list_trial_results(session, study_name)
        ]
        live = storage.count_runs_by_state(session, study_name)
        profiles = storage.diagnostics_by_initializer(session, study_name)
        replicated = storage.replicates_by_trial(session, study_name)
        signals = storage.signal_by_trial(session, study_name)
    return ReportData(
        study=record.name,
        metric=record.metric,
        direction=record.direction,
        status=record.status,
        target=record.n_trials,
        spec=dict(record.spec_json),
        created_at=record.created_at,
        rows=rows,
        live={s: n for s, n in live.items() if s in ("running", "pending") and n},
        profiles=profiles,
        curves=_curves(db, study_name, rows),
        importances=param_importances(db, study_name),
        generated_at=datetime.datetime.now(datetime.UTC),
        seed_variance=by_initializer((init, reps) for _, init, reps in replicated),
        trial_seed_variance={n: v for n, _, reps in replicated if (v := seed_variance(reps))},
        signals=signals,
    )


def make_figures(data: ReportData) -> dict[str, go.Figure | str]:
    """The report's figures by key (:data:`FIGURES`), or a sentence where one cannot be drawn."""
    inits = [r.initializer for r in data.rows] + [c.initializer for c in data.curves]
    colors = figures.initializer_colors(inits + [p.initializer for p in data.profiles])
    return {
        "values": figures.values_by_initializer(
            complete_values(data), colors, data.metric, data.maximize
        ),
        "seed-variance": figures.seed_variance(data.seed_variance, NO_SEED_DESIGN),
        "learning-curves": figures.learning_curves(data.curves, colors, data.metric),
        "depth-profile": figures.depth_profile(data.profiles, colors),
        "signal-propagation": signal_propagation(data.rows, data.signals, colors, data.metric),
        "lr-weight-decay": figures.lr_weight_decay(data.rows, colors, data.metric),
        "importances": figures.importances(*data.importances),
    }


def build_report(db: storage.Database, study_name: str) -> str:
    """The study's report as one self-contained HTML page."""
    data = collect_report(db, study_name)
    return render(data, make_figures(data), top=LEADERBOARD_ROWS)


def attach_figures(
    db: storage.Database, data: ReportData, found: Mapping[str, go.Figure | str]
) -> list[str]:
    """Save the figures (and a note with the summary) to the study in the Optuna dashboard.

    Graph ids are fixed (``tuner-<key>``), so attaching again replaces them. Returns the
    ids saved.
    """
    import optuna_dashboard

    try:
        study = optuna.load_study(study_name=data.study, storage=db.optuna_storage())
    except KeyError:
        raise TunerError(f"Optuna has no study {data.study!r} in this database") from None
    saved = []
    for key in FIGURES:
        fig = found[key]
        if isinstance(fig, go.Figure):
            graph_id = f"tuner-{key}"
            optuna_dashboard.save_plotly_graph_object(study, fig, graph_object_id=graph_id)
            saved.append(graph_id)
    optuna_dashboard.save_note(study, markdown_note(data, found))
    return saved


def attach_to_dashboard(db: storage.Database, study_name: str) -> list[str]:
    """Attach the report's figures to the study in the Optuna dashboard; the ids saved."""
    data = collect_report(db, study_name)
    return attach_figures(db, data, make_figures(data))
