"""The regression gate beyond seed noise, judged on made-up outcomes: both verdicts, both
directions, the numbers in the reason, and what it refuses."""

from __future__ import annotations

import datetime

import pytest

from tuner.client import Leaderboard, Study, Trial
from tuner.sweep import Gates, SweepError, SweepOutcome, judge, make_gates
from tuner.sweep._sweep import Baseline

T0 = datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC)
# mean 0.88; deviations -0.01, 0, 0.01: sample std sqrt((1e-4 + 0 + 1e-4) / 2) = 0.01
REPLICATES = (0.87, 0.88, 0.89)


def _outcome(
    best: float, replicates: tuple[float | None, ...], *, direction: str = "maximize"
) -> SweepOutcome:
    metric = "val_accuracy" if direction == "maximize" else "val_loss"
    trial = Trial(
        study_name="s",
        trial_number=3,
        state="complete",
        stop_reason="patience",
        initializer="orthogonal",
        lr=0.1,
        weight_decay=0.0,
        batch_size=64,
        patience=2,
        value=best,
        best_epoch=2,
        epochs_run=3,
        duration_s=1.0,
        started_at=T0,
        finished_at=T0,
    )
    study = Study.model_validate(
        {
            "name": "s",
            "status": "completed",
            "metric": metric,
            "direction": direction,
            "n_trials": 4,
            "created_at": T0,
            "counts": {"complete": 4},
            "best": trial,
        }
    )
    board = Leaderboard(study, [trial], 4, [])
    return SweepOutcome(board, timed_out=False, finished=4, best_replicates=replicates)


def _gates(
    baseline: float, k: float | None, *, d: float = 0.0, direction: str = "maximize"
) -> Gates:
    metric = "val_accuracy" if direction == "maximize" else "val_loss"
    base = Baseline(baseline, metric, direction, "last.json (study s)")
    return Gates(baseline=base, max_regression=d, beyond_seed_noise=k)


def test_a_drop_within_the_seed_noise_passes() -> None:
    (gate,) = judge(_outcome(0.88, REPLICATES), _gates(0.90, 3.0))  # 0.02 < 3 x 0.01
    assert gate.status == "pass", gate.reason
    assert gate.reason == (
        "best val_accuracy 0.88 vs 0.9 in last.json (study s): 0.02 worse (allowed: 0.03 "
        "worse: the larger of --max-regression 0 and 3 x seed std 0.01 (of trial 3's 3 "
        "replicates) = 0.03)"
    )


def test_a_drop_beyond_the_seed_noise_fails() -> None:
    (gate,) = judge(_outcome(0.88, REPLICATES), _gates(0.90, 1.5))  # 0.02 > 1.5 x 0.01
    assert gate.status == "fail"
    assert "0.02 worse" in gate.reason and "1.5 x seed std 0.01" in gate.reason
    assert "= 0.015)" in gate.reason
    (plain,) = judge(_outcome(0.88, REPLICATES), _gates(0.90, None))  # without: fails too
    assert plain.status == "fail" and "seed" not in plain.reason


def test_the_larger_allowance_wins() -> None:
    (gate,) = judge(_outcome(0.88, REPLICATES), _gates(0.90, 1.0, d=0.025))
    assert gate.status == "pass" and "allowed: 0.025 worse" in gate.reason


def test_a_minimized_metric_drops_upwards() -> None:
    losses = (0.49, 0.5, 0.51)  # std 0.01 again
    within = judge(
        _outcome(0.5, losses, direction="minimize"), _gates(0.48, 2.5, direction="minimize")
    )
    assert within[0].status == "pass" and "0.02 worse" in within[0].reason
    beyond = judge(
        _outcome(0.5, losses, direction="minimize"), _gates(0.48, 1.0, direction="minimize")
    )
    assert beyond[0].status == "fail"
    better = judge(
        _outcome(0.47, losses, direction="minimize"), _gates(0.48, 0.5, direction="minimize")
    )
    assert better[0].status == "pass" and "better" in better[0].reason


def test_diverged_replicates_are_left_out_of_the_std() -> None:
    (gate,) = judge(_outcome(0.88, (*REPLICATES, None)), _gates(0.90, 3.0))
    assert "3 replicates" in gate.reason and gate.status == "pass"


@pytest.mark.parametrize("replicates", [(), (0.88,), (0.88, None)])
def test_without_two_replicate_values_the_sweep_cannot_be_judged(
    replicates: tuple[float | None, ...],
) -> None:
    with pytest.raises(SweepError, match="--beyond-seed-noise needs the best trial's replicates"):
        judge(_outcome(0.88, replicates), _gates(0.90, 2.0))


def test_k_must_be_positive() -> None:
    with pytest.raises(SweepError, match="--beyond-seed-noise must be > 0, got -1"):
        make_gates(beyond_seed_noise=-1.0)
    assert make_gates(beyond_seed_noise=2.0).beyond_seed_noise == 2.0
