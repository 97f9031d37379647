"""examples/adapt_script: a plain script runs as it is, and as a task after a short diff."""

from __future__ import annotations

import difflib
import re
import subprocess
import sys
from pathlib import Path

import storage
from tests.examples import EXAMPLES, diagnostics, require, rows, study
from tuner.studies import replay_trial, run_study

require("tuner_example_adapt", "adapt_script")

PLAIN = EXAMPLES / "adapt_script" / "plain_train.py"
TASK = EXAMPLES / "adapt_script" / "tuner_example_adapt" / "task.py"


def test_the_plain_script_runs_and_prints_val_accuracy_each_epoch() -> None:
    done = subprocess.run(
        [sys.executable, str(PLAIN), "2"], capture_output=True, text=True, timeout=120, check=True
    )
    lines = done.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["epoch 1", "epoch 2"]
    accuracy = float(re.findall(r"val_accuracy (\S+)", lines[-1])[0])
    assert 0.5 < accuracy <= 1.0


def test_the_task_is_the_script_with_a_short_diff() -> None:
    plain, task = PLAIN.read_text().splitlines(), TASK.read_text().splitlines()
    diff = list(difflib.unified_diff(plain, task, lineterm="", n=0))[2:]
    changed = [line for line in diff if line[:1] in "+-"]
    assert len(changed) <= 25  # the README shows this diff and says how many lines it is
    assert (
        "+    ctx.init(model, calibration=(x_train[:256].to(device), y_train[:256].to(device)))"
        in changed
    )


def test_the_adapted_task_runs_end_to_end(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'adapt.db'}"
    spec = study(
        "adapt_script",
        name="adapt-tiny",
        search={"initializer": ["kaiming_normal", "orthogonal"], "hidden": [32, 64]},
        budget={"n_trials": 4, "max_epochs": 2},
        pruner="none",
    )
    summary = run_study(spec, database_url=url, device="cpu")
    assert summary.finished == 4 and summary.complete

    found = rows(url, "adapt-tiny")
    assert [r.trial_number for r in found] == [0, 1, 2, 3]
    for row in found:
        assert row.state == "complete", row.error
        assert row.value is not None and 0.2 < row.value <= 1.0
        assert row.params_json["extra"]["hidden"] in (32, 64)
        assert row.manifest_json is not None
        layers = row.manifest_json["layers"]
        assert [(r["layer"], r["initializer"]) for r in layers] == [
            ("0", row.initializer),
            ("2", row.initializer),
        ]
        assert layers[0]["fan_out"] == row.params_json["extra"]["hidden"]
        assert len(diagnostics(url, "adapt-tiny", row.trial_number)) == 2

    db = storage.Database(url)
    try:
        replay = replay_trial(db, "adapt-tiny", found[0].trial_number)
    finally:
        db.dispose()
    assert replay.stored_value is not None and replay.matches
