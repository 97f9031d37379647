"""bench/scale.py: its layouts, and one tiny run end to end (its figures are not judged)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from bench.scale import layout
from tests.harness import ROOT, default_admin_dsn, server_env


def test_claimers_split_into_processes_of_one_slot_then_four() -> None:
    assert [layout(n) for n in (1, 4, 8, 16, 64)] == [(1, 1), (4, 1), (8, 1), (4, 4), (16, 4)]
    with pytest.raises(ValueError, match="do not split"):
        layout(18)


@pytest.mark.postgres
def test_a_tiny_run_prints_its_tables_and_one_json_line(postgres_url: str) -> None:
    """``postgres_url``: skipped where no server answers (the run makes its own databases)."""
    command = [sys.executable, "bench/scale.py", "--claimers", "2", "--min-trials", "6",
               "--asks-at", "30", "--asks", "3", "--admin-dsn", default_admin_dsn()]  # fmt: skip
    done = subprocess.run(command, cwd=ROOT, env=server_env(), capture_output=True, text=True,
                          timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("$ ") and "| claimers |" in done.stdout
    figures = json.loads(lines[-1])
    (claimers,) = figures["claimers"]
    assert claimers["exact"] and claimers["rows"] == claimers["trials"] == 16
    assert claimers["connections_peak"] <= claimers["connections_bound"] == 4
    (asked,) = figures["asks"]
    assert asked["finished_trials"] == 30 and asked["window"]["ask_ms_p50"] > 0
