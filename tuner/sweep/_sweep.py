"""``tuner sweep``: run a study within a time limit, embedded or on a service, then judge it.

The verdict is an exit code: 0 every gate passed, 1 a quality gate failed, 2 the sweep could
not run or cannot be judged (:class:`SweepError`: a bad definition, the service down, a time
limit hit with too few trials, a baseline that does not compare). Gates follow the metric's
direction: "reach X" means ``>= X`` for a maximized metric and ``<= X`` for a minimized one.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from tuner.client import Conflict, TunerClient, WaitTimeout
from tuner.client._models import Leaderboard, Study
from tuner.errors import InitializerError, TunerError
from tuner.spec import canonical_name
from tuner.sweep._noise import SeedNoise, seed_noise

EXIT_PASSED, EXIT_GATE_FAILED, EXIT_NOT_RUN = 0, 1, 2
GateStatus = Literal["pass", "fail", "skip"]


class SweepError(TunerError):
    """The sweep could not run, or its result cannot be judged (exit code 2)."""


@dataclass(frozen=True)
class Baseline:
    """The best value of an earlier sweep, and what it measured."""

    value: float
    metric: str
    direction: str
    source: str  # where it came from, for reports


@dataclass(frozen=True)
class Gates:
    """What the sweep is judged on; a gate left at None/empty is not checked."""

    fail_under: float | None = None
    baseline: Baseline | None = None
    baseline_missing: str | None = None  # why the baseline gate is skipped
    max_regression: float = 0.0
    expect_initializers: tuple[str, ...] = ()  # canonical names
    min_trials: int | None = None  # finished trials needed after a timeout; None: the budget
    beyond_seed_noise: float | None = None  # K: a regression must exceed K x the seed std


@dataclass(frozen=True)
class GateResult:
    name: str  # fail-under, max-regression, expect-initializer
    status: GateStatus
    reason: str


@dataclass(frozen=True)
class SweepOutcome:
    """What ran: the study's leaderboard, and whether the time limit cut it short."""

    board: Leaderboard
    timed_out: bool
    finished: int  # trials that finished (the budget's count)
    best_replicates: tuple[float | None, ...] = ()  # the best trial's replicate values


@dataclass(frozen=True)
class SweepReport:
    """Everything the reports show; ``error`` set means the sweep could not run."""

    study: str
    mode: Literal["embedded", "service"]
    source: str  # database URL (password hidden) or service URL
    duration_s: float
    outcome: SweepOutcome | None = None
    gates: tuple[GateResult, ...] = ()
    error: str | None = None

    @property
    def exit_code(self) -> int:
        if self.error is not None or self.outcome is None:
            return EXIT_NOT_RUN
        return EXIT_GATE_FAILED if any(g.status == "fail" for g in self.gates) else EXIT_PASSED

    @property
    def passed(self) -> bool:
        return self.exit_code == EXIT_PASSED


# -- baselines -----------------------------------------------------------------------------------


def baseline_from_file(path: Path) -> Baseline:
    """The best value recorded in an earlier sweep's ``--json`` report."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SweepError(f"cannot read baseline {path}: {exc}") from None
    if not isinstance(data, dict):
        raise SweepError(f"baseline {path} is not a `tuner sweep --json` report")
    if data.get("exit_code") == EXIT_NOT_RUN:
        raise SweepError(f"baseline {path} comes from a sweep that could not run")
    best = data.get("best")
    value = best.get("value") if isinstance(best, dict) else None
    if not isinstance(value, int | float) or not math.isfinite(value):
        raise SweepError(f"baseline {path} has no best value (is it a `tuner sweep --json` file?)")
    source = f"{path} (study {data.get('study', '?')})"
    return Baseline(float(value), str(data.get("metric")), str(data.get("direction")), source)


def baseline_from_study(study: Study) -> Baseline:
    """The best value of a stored study."""
    if study.best is None or study.best.value is None:
        raise SweepError(f"baseline study {study.name!r} has no complete trial")
    return Baseline(study.best.value, study.metric, study.direction, f"study {study.name}")


def resolve_baseline(
    ref: str, find_study: Callable[[str], Study | None], *, allow_missing: bool
) -> tuple[Baseline | None, str | None]:
    """``ref`` is a report file if such a file exists, else a study name (``find_study``).

    Returns (baseline, None), or (None, why) when neither exists and ``allow_missing``.
    """
    path = Path(ref)
    if path.is_file():
        return baseline_from_file(path), None
    study = find_study(ref)
    if study is not None:
        return baseline_from_study(study), None
    why = f"no baseline: no file and no study named {ref!r}"
    if allow_missing:
        return None, why
    raise SweepError(f"{why} (pass --allow-missing-baseline to skip the comparison then)")


def make_gates(
    *,
    fail_under: float | None = None,
    baseline: str | None = None,
    find_study: Callable[[str], Study | None] = lambda name: None,
    allow_missing_baseline: bool = False,
    max_regression: float = 0.0,
    expect_initializers: Sequence[str] = (),
    min_trials: int | None = None,
    beyond_seed_noise: float | None = None,
) -> Gates:
    """The gates from the command line's values: initializer names checked (in any case),
    the baseline read. Bad values raise before anything runs."""
    if max_regression < 0:
        raise SweepError(f"--max-regression must be >= 0, got {max_regression:g}")
    if beyond_seed_noise is not None and not beyond_seed_noise > 0:
        raise SweepError(f"--beyond-seed-noise must be > 0, got {beyond_seed_noise:g}")
    try:
        expected = tuple(dict.fromkeys(canonical_name(n) for n in expect_initializers))
    except InitializerError as exc:
        raise SweepError(f"--expect-initializer: {exc}") from None
    found, missing = (None, None)
    if baseline is not None:
        found, missing = resolve_baseline(
            baseline, find_study, allow_missing=allow_missing_baseline
        )
    return Gates(
        fail_under, found, missing, max_regression, expected, min_trials, beyond_seed_noise
    )


# -- judging -------------------------------------------------------------------------------------


def _reaches(value: float, target: float, maximize: bool) -> bool:
    slack = 1e-12 * max(1.0, abs(target))  # float noise at exactly the threshold passes
    return value >= target - slack if maximize else value <= target + slack


def _check_judgeable(outcome: SweepOutcome, gates: Gates) -> float:
    study = outcome.board.study
    if not outcome.timed_out and study.status in ("cancelled", "failed"):
        raise SweepError(f"study {study.name!r} was {study.status} before it finished")
    need = gates.min_trials if gates.min_trials is not None else study.n_trials
    if outcome.timed_out and outcome.finished < need:
        raise SweepError(
            f"the time limit stopped study {study.name!r} at {outcome.finished} of "
            f"{study.n_trials} trials; judging needs {need} (--min-trials)"
        )
    if study.best is None or study.best.value is None:
        raise SweepError(f"study {study.name!r} has no complete trial with a value to judge")
    baseline = gates.baseline
    if baseline is not None and (baseline.metric, baseline.direction) != (
        study.metric,
        study.direction,
    ):
        raise SweepError(
            f"baseline {baseline.source} measures {baseline.metric} ({baseline.direction}); "
            f"this sweep measures {study.metric} ({study.direction})"
        )
    return study.best.value


def _noise(outcome: SweepOutcome) -> SeedNoise:
    best = outcome.board.study.best
    assert best is not None  # judged only with a best trial
    noise = seed_noise(best.trial_number, outcome.best_replicates)
    if noise is None:
        raise SweepError(
            f"--beyond-seed-noise needs the best trial's replicates; trial {best.trial_number} "
            f"has {len(outcome.best_replicates)} with a value (set replicates: k or "
            "{init: a, data: b} in the definition)"
        )
    return noise


def judge(outcome: SweepOutcome, gates: Gates) -> tuple[GateResult, ...]:
    """Each requested gate, passed or failed with its reason; SweepError if not judgeable."""
    best = _check_judgeable(outcome, gates)
    study = outcome.board.study
    maximize = study.direction == "maximize"
    word = ">=" if maximize else "<="
    label = f"best {study.metric} {best:.4g}"
    results = []
    if gates.fail_under is not None:
        target = gates.fail_under
        ok = _reaches(best, target, maximize)
        verdict = f"{word} {target:g}" if ok else f"misses {target:g}: must be {word} {target:g}"
        reason = f"{label} {verdict} ({study.direction})"
        results.append(GateResult("fail-under", "pass" if ok else "fail", reason))
    if gates.baseline is not None:
        base, allowed = gates.baseline, gates.max_regression
        allowance = f"{allowed:g} worse"
        if gates.beyond_seed_noise is not None:
            k, noise = gates.beyond_seed_noise, _noise(outcome)
            allowed = max(allowed, k * noise.std)
            larger = f"the larger of --max-regression {gates.max_regression:g}"
            allowance = f"{allowed:.4g} worse: {larger} and {noise.describe(k)}"
        worse = (base.value - best) if maximize else (best - base.value)
        ok = _reaches(best, base.value - allowed if maximize else base.value + allowed, maximize)
        change = f"{abs(worse):.4g} {'worse' if worse > 0 else 'better'}" if worse else "equal"
        reason = f"{label} vs {base.value:.4g} in {base.source}: {change} (allowed: {allowance})"
        results.append(GateResult("max-regression", "pass" if ok else "fail", reason))
    elif gates.baseline_missing is not None:
        results.append(GateResult("max-regression", "skip", gates.baseline_missing))
    if gates.expect_initializers:
        assert study.best is not None
        # the model-wide name the trial stored, not its label (layer groups, repeated names)
        got = study.best.params_json.get("initializer_name", study.best.initializer)
        expected = gates.expect_initializers
        ok = got in expected
        reason = (
            f"best trial {study.best.trial_number} uses {got}; expected {' or '.join(expected)}"
        )
        results.append(GateResult("expect-initializer", "pass" if ok else "fail", reason))
    return tuple(results)


# -- running -------------------------------------------------------------------------------------


def run_on_service(
    client: TunerClient,
    definition: Mapping[str, Any],
    *,
    timeout: float | None,
    poll_interval: float = 2.0,
    wait: Callable[[Study, float | None], Study] | None = None,
    top: int = 10,
) -> SweepOutcome:
    """Submit the study, wait for it (cancelling it at ``timeout``), read its leaderboard.

    ``wait(submitted, timeout)`` replaces the plain ``client.wait`` (e.g. to show progress).
    """
    try:
        submitted = client.submit(definition)
    except Conflict as exc:
        raise SweepError(f"{exc}; give this sweep a new name with --name") from None
    name = submitted.name
    timed_out = False
    try:
        if wait is None:
            client.wait(name, timeout=timeout, poll_interval=poll_interval)
        else:
            wait(submitted, timeout)
    except WaitTimeout:
        timed_out = True
        with contextlib.suppress(Conflict):  # Conflict: it finished in between
            client.cancel(name)  # else the service would go on spending on it
    board = client.leaderboard(name, top)
    timed_out = timed_out and board.study.status != "completed"
    best = board.study.best
    replicates = [] if best is None else client.trial(name, best.trial_number).replicates
    return SweepOutcome(
        board,
        timed_out=timed_out,
        finished=board.study.counts.finished,
        best_replicates=tuple(r.value for r in replicates),
    )
