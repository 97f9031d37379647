"""SIGTERM and SIGINT to `tuner run`: the running trial is handed back and recorded, the
exit says how to resume, and no run is left running."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

import storage
from tests.harness import server_env
from tests.tuner.specs import endless_spec

DEADLINE_S = 120.0


def _running_runs(url: str) -> int:
    if not Path(url.removeprefix("sqlite:///")).exists():
        return 0
    db = storage.Database(url)
    try:
        if db.current_revision() is None:  # the run has not migrated it yet
            return 0
        with db.session() as session:
            if storage.get_study_record(session, "sig") is None:
                return 0
            return int(storage.count_runs_by_state(session, "sig").get("running", 0))
    finally:
        db.dispose()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
@pytest.mark.parametrize("slots", [1, 2])
def test_a_signal_hands_the_trial_back_and_says_how_to_resume(
    tmp_path: Path, signum: signal.Signals, slots: int
) -> None:
    spec = tmp_path / "sig.yaml"
    spec.write_text(yaml.safe_dump(endless_spec("sig")), encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'sig.db'}"
    script = Path(sys.executable).with_name("tuner")
    command = [str(script), "run", str(spec), "--database-url", url, "--slots", str(slots)]
    proc = subprocess.Popen(command, env=server_env(), stderr=subprocess.PIPE, text=True)
    try:
        end = time.monotonic() + DEADLINE_S
        while _running_runs(url) < slots:  # an event in the database: trials are training
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < end, "no trial started"
            time.sleep(0.05)
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=DEADLINE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, stderr
    assert f"Resume with: tuner run {spec} --database-url {url}" in " ".join(stderr.split())
    assert _running_runs(url) == 0, stderr
    study = optuna.load_study(study_name="sig", storage=url)
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
