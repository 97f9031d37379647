"""tuner.client against a real `tuner serve` on a real port; failures of the transport against
a server that is not there yet, and against a scripted HTTP peer (dropped answers, 503s, which
the real service cannot be made to produce on demand)."""

from __future__ import annotations

import contextlib
import datetime
import json
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import uvicorn
import yaml
from click.testing import Result
from typer.testing import CliRunner

from api import Settings, create_app
from tests.harness import free_port, server_env, serving, tuner_serve
from tests.tuner.specs import ADMIN, READ, TOKENS, endless_spec, tiny_spec
from tuner.cli import app, main
from tuner.client import (
    AuthError,
    ClientError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    NotFound,
    Retry,
    ServerError,
    Study,
    Trial,
    TunerClient,
    WaitTimeout,
)
from tuner.errors import SpecError, TunerError
from tuner.spec import parse_spec

DEADLINE_S = 180.0  # bound of every wait for the service's worker: an event, never a sleep


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `tuner serve` (API + one embedded worker, SQLite in a temporary folder)."""
    port, env = free_port(), server_env({"TUNER_API_TOKENS": TOKENS})
    command = tuner_serve(port, "--no-dashboard")
    with serving(command, port, env=env, cwd=tmp_path_factory.mktemp("serve")) as server:
        yield server.base_url


@pytest.fixture
def client(base: str) -> Iterator[TunerClient]:
    with TunerClient(base, ADMIN, retries=0) as c:
        yield c


def test_submit_wait_and_read_everything_back(client: TunerClient) -> None:
    queued = client.submit(tiny_spec("c-run"))
    assert isinstance(queued, Study) and queued.n_trials == 2 and not queued.done
    seen: list[Study] = []
    done = client.wait("c-run", timeout=DEADLINE_S, poll_interval=0.05, on_progress=seen.append)
    assert done.status == "completed" and done.counts.complete == 2
    assert seen[-1] == done and all(not s.done for s in seen[:-1])
    finished = [s.counts.finished for s in seen]
    assert finished == sorted(finished)  # progress never goes back
    assert client.get("c-run") == done

    page = client.trials("c-run")
    assert page.total == 2 and [type(t) for t in page.items] == [Trial, Trial]
    best = page.items[0]
    assert isinstance(best.started_at, datetime.datetime) and best.value is not None
    assert best.value >= (page.items[1].value or 0.0)  # best first
    assert client.best("c-run") == best == done.best
    detail = client.trial("c-run", best.trial_number)
    assert Trial.model_validate(detail.model_dump(include=set(Trial.model_fields))) == best
    assert detail.manifest is not None and detail.manifest["seeds"]  # what it ran under
    assert detail.diagnostics and detail.diagnostics[0].index == 0  # its t=0 signal
    assert [t.trial_number for t in client.iter_trials("c-run", page_size=1)] == [0, 1]
    assert client.trials("c-run", initializer="KAIMING_normal").total == sum(
        t.initializer == "kaiming_normal" for t in page.items
    )
    summary = client.summary("c-run")
    assert sum(s.count for s in summary.initializers) == 2
    assert summary.initializers[0].best == best.value
    board = client.leaderboard("c-run", top=1)
    assert (board.total, board.top, board.study) == (2, [best], done)
    assert [s.name for s in client.studies(status="completed").items] == ["c-run"]
    (worker,) = client.workers().items  # the embedded worker of `tuner serve`
    assert worker.slots == 1


def test_submit_takes_a_file_or_a_studyspec(client: TunerClient, tmp_path: Path) -> None:
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(endless_spec("c-file")))
    assert client.submit(path).name == "c-file"
    spec = parse_spec(endless_spec("c-model"))
    assert client.submit(spec).name == "c-model"
    for name in ("c-file", "c-model"):
        assert client.cancel(name).status == "cancelled"


def test_wait_times_out_and_cancel_is_idempotent(client: TunerClient) -> None:
    client.submit(endless_spec("c-long"))
    with pytest.raises(WaitTimeout) as timed_out:
        client.wait("c-long", timeout=0)
    assert timed_out.value.study.name == "c-long" and not timed_out.value.study.done
    assert client.cancel("c-long").status == "cancelled"
    assert client.cancel("c-long").status == "cancelled"  # again: no error
    assert client.wait("c-long", timeout=DEADLINE_S).status == "cancelled"


def test_errors_carry_the_servers_detail(client: TunerClient, base: str) -> None:
    with pytest.raises(NotFound) as missing:
        client.get("nope")
    assert missing.value.status == 404 and "'nope' does not exist" in str(missing.value)

    client.submit(endless_spec("c-twice"))
    with pytest.raises(Conflict) as taken:
        client.submit(endless_spec("c-twice"))
    assert taken.value.status == 409 and "already exists" in str(taken.value)
    client.cancel("c-twice")
    bad = tiny_spec("c-bad", search={"lr": {"low": 1, "high": 0.1}, "batch_size": 0})
    with pytest.raises(InvalidRequest) as invalid:
        client.submit(bad)
    paths = {issue.path for issue in invalid.value.issues}
    assert {"search.lr", "search.batch_size"} <= paths  # field paths, without "body"
    assert isinstance(invalid.value, SpecError)  # the CLI shows it like a local one
    with pytest.raises(InvalidRequest) as query:
        client.trials("c-twice", limit=0)
    assert [i.path for i in query.value.issues] == ["query.limit"]

    with TunerClient(base) as anonymous, pytest.raises(AuthError) as no_token:
        anonymous.get("c-twice")
    assert no_token.value.status == 401
    with TunerClient(base, "wrong") as stranger, pytest.raises(AuthError) as unknown:
        stranger.get("c-twice")
    assert unknown.value.status == 401
    with TunerClient(base, READ) as reader:
        assert reader.get("c-twice").status == "cancelled"  # a read token may look
        with pytest.raises(AuthError) as forbidden:
            reader.submit(tiny_spec("c-reader"))
        assert forbidden.value.status == 403
    with pytest.raises(NotFound):
        client.get("c-reader")  # nothing was written


def test_a_read_retries_until_the_server_listens(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here yet
    base = f"http://127.0.0.1:{port}"
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'late.db'}", api_tokens=TOKENS)
    server = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    retries: list[Retry] = []

    def start_server(retry: Retry) -> None:  # the failed attempt brings the server up
        retries.append(retry)
        if not thread.is_alive():
            thread.start()
            end = time.monotonic() + 60
            while not server.started:  # bounded wait for the event "listening"
                assert thread.is_alive() and time.monotonic() < end, "uvicorn did not start"
                time.sleep(0.01)

    try:
        with TunerClient(base, ADMIN, retries=3, backoff=0.01, on_retry=start_server) as c:
            assert c.workers().items == []
    finally:
        server.should_exit = True
        if thread.is_alive():
            thread.join(timeout=60)
    assert [(r.method, r.path, r.attempt) for r in retries] == [("GET", "/v1/workers", 1)]
    assert "ConnectError" in retries[0].reason


def test_retries_run_out_with_connection_failed() -> None:
    retries: list[Retry] = []
    base = f"http://127.0.0.1:{free_port()}"
    with TunerClient(base, retries=2, backoff=0.001, on_retry=retries.append) as client:
        with pytest.raises(ConnectionFailed) as failed:
            client.get("x")
        assert "after 2 retries" in str(failed.value) and failed.value.status is None
        assert isinstance(failed.value, ClientError) and isinstance(failed.value, TunerError)
        assert [r.attempt for r in retries] == [1, 2]
        # A submission that could not even connect was never sent: retried as well.
        with pytest.raises(ConnectionFailed):
            client.submit(tiny_spec("x"))
        assert len(retries) == 4


@contextlib.contextmanager
def scripted_peer(answers: list[str]) -> Iterator[tuple[str, list[str]]]:
    """An HTTP server answering each request as told: "drop" (close, no answer), "503",
    "html" (200, not JSON) or "ok" (an empty worker list); yields its URL and what it saw."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            seen.append(f"{self.command} {self.path}")
            kind = answers.pop(0) if answers else "ok"
            if kind == "drop":
                self.close_connection = True
                return
            status = 503 if kind == "503" else 200
            body = {"detail": "try again"} if status == 503 else {"items": [], "stale_after_s": 1}
            data = b"<html>a login page</html>" if kind == "html" else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 503:
                self.send_header("Retry-After", "0")
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_reads_are_retried_on_a_dropped_answer_and_on_503() -> None:
    with scripted_peer(["drop", "503", "ok"]) as (url, seen):
        with TunerClient(url, retries=3, backoff=0.001) as client:
            assert client.workers().items == []
        assert seen == ["GET /v1/workers"] * 3


def test_a_sent_submission_is_never_retried() -> None:
    with scripted_peer(["drop"]) as (url, seen):
        with (
            TunerClient(url, retries=3, backoff=0.001) as client,
            pytest.raises(ConnectionFailed) as lost,
        ):
            client.submit(tiny_spec("once"))
        assert "may or may not have been applied" in str(lost.value)
        assert seen == ["POST /v1/studies"]
    with scripted_peer(["503"]) as (url, seen):
        with (
            TunerClient(url, retries=3, backoff=0.001) as client,
            pytest.raises(ServerError) as refused,
        ):
            client.submit(tiny_spec("once"))
        assert refused.value.status == 503 and "try again" in str(refused.value)
        assert seen == ["POST /v1/studies"]


def _cli(args: list[str], base: str, **env: str | None) -> Result:
    variables = {"TUNER_URL": base, "TUNER_TOKEN": ADMIN, "GITHUB_STEP_SUMMARY": None}
    return CliRunner().invoke(app, args, env={**variables, "TUNER_DATABASE_URL": None, **env})


def test_sweep_submit_status_and_results_over_the_service(
    client: TunerClient, base: str, tmp_path: Path
) -> None:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("cli-sweep")))
    report = tmp_path / "report.json"
    fast = ["--poll-interval", "0.05", "--timeout", str(DEADLINE_S)]
    swept = _cli(["sweep", str(spec), "--fail-under", "0.1", "--json", str(report), *fast], base)
    assert swept.exit_code == 0, swept.output
    summary = json.loads(report.read_text())
    assert (summary["mode"], summary["source"], summary["status"]) == ("service", base, "completed")
    assert summary["trials"]["complete"] == 2 and summary["best"]["value"] >= 0.1

    again = _cli(["sweep", str(spec), *fast], base)
    assert again.exit_code == 2 and "--name" in again.output  # the name is taken
    crossed = tmp_path / "crossed.yaml"  # every init seed with every data order
    crossed.write_text(yaml.safe_dump(tiny_spec("cli-sweep", replicates={"init": 2, "data": 2})))
    baseline = ["--baseline", "cli-sweep", "--max-regression", "1", "--beyond-seed-noise", "2"]
    named = ["sweep", str(crossed), "--name", "cli-sweep-2", "--json", str(report)]
    compared = _cli([*named, *baseline, *fast], base)
    assert compared.exit_code == 0, compared.output
    (gate,) = json.loads(report.read_text())["gates"]
    assert gate["status"] == "pass" and "study cli-sweep" in gate["reason"]
    assert "2 x seed std" in gate["reason"] and "4 replicates" in gate["reason"]
    board = client.leaderboard("cli-sweep-2")
    every = board.seed_variance[0]  # pooled over both trials, then one group per initializer
    assert every.initializer is None and every.n_tables == 2 and every.init.df == 2
    remote = _cli(["results", "cli-sweep-2", "--url", base], base, TUNER_URL=None)
    assert remote.exit_code == 0 and "seed variance:" in remote.output

    status = _cli(["status", "cli-sweep"], base)
    assert status.exit_code == 0 and "cli-sweep: completed" in status.output
    as_json = _cli(["status", "cli-sweep", "--json"], base)
    assert Study.model_validate_json(as_json.output) == client.get("cli-sweep")
    results = _cli(["results", "cli-sweep", "--url", base], base, TUNER_URL=None)
    assert results.exit_code == 0 and "top 2 of 2 trials" in results.output


def test_a_sweep_that_runs_out_of_time_cancels_its_study(
    client: TunerClient, base: str, tmp_path: Path
) -> None:
    spec = tmp_path / "slow.yaml"
    spec.write_text(yaml.safe_dump(endless_spec("cli-slow")))
    slow = _cli(["sweep", str(spec), "--timeout", "0.5", "--poll-interval", "0.05"], base)
    assert slow.exit_code == 2 and "time limit" in slow.output
    assert client.get("cli-slow").status == "cancelled"  # it does not go on running there
    submitted = _cli(["submit", str(spec), "--name", "cli-later"], base)
    assert submitted.exit_code == 0 and "submitted cli-later" in submitted.output
    assert client.cancel("cli-later").status == "cancelled"


def test_cli_errors_from_the_service(
    base: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(tiny_spec("cli-bad", search={"batch_size": 0})))
    monkeypatch.setenv("TUNER_TOKEN", ADMIN)
    monkeypatch.setattr(sys, "argv", ["tuner", "submit", str(bad), "--url", base])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2  # as for a local definition: the field is named
    down = f"http://127.0.0.1:{free_port()}"
    spec = tmp_path / "ok.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec("cli-down")))
    unreachable = _cli(["sweep", str(spec), "--url", down], base)
    assert unreachable.exit_code == 2 and "ConnectError" in unreachable.output


def test_an_answer_that_is_not_the_api_is_a_client_error() -> None:
    with scripted_peer(["html", "ok"]) as (url, _), TunerClient(url, retries=0) as client:
        with pytest.raises(ClientError) as wrong:
            client.workers()
        assert "not a WorkerList" in str(wrong.value) and "a login page" in str(wrong.value)
        with pytest.raises(ClientError, match="not a Study"):
            client.get("x")  # an empty worker list is not a study either
