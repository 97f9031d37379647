"""One harness for tests and bench/: free ports, scratch databases, a served app.

* :func:`free_port` -- a loopback port nobody listens on (yet).
* :func:`scratch_postgres` -- a fresh PostgreSQL database ``<prefix><hex>`` on the server named
  by an admin DSN; yields its SQLAlchemy URL (psycopg 3 driver) and drops it afterwards.
  :class:`PostgresUnavailable` when that server does not answer (tests skip, bench exits).
* :func:`scratch_sqlite` -- the URL of a SQLite file in a folder.
* :func:`pgbouncer` -- a PgBouncer of the caller's own (transaction pooling by default) in
  front of a PostgreSQL server, on a free port; yields the port.
* :func:`serving` -- a server subprocess (:func:`tuner_serve` or :func:`uvicorn_factory` builds
  its command) on a free port: started, awaited by polling a readiness path against a deadline
  (its output in the error when it dies or never gets ready), stopped with SIGTERM to its
  process group, SIGKILL if it lingers.

Bench scripts import this module with the repository root on ``sys.path``. Heavy or optional
packages (psycopg, httpx) are imported where they are used.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

ROOT = Path(__file__).resolve().parent.parent
ADMIN_DSN_ENV = "TUNER_TEST_POSTGRES_DSN"
DEFAULT_ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
LOOPBACK = "127.0.0.1"


def default_admin_dsn() -> str:
    """The server of scratch databases: ``$TUNER_TEST_POSTGRES_DSN``, else the local one."""
    return os.environ.get(ADMIN_DSN_ENV, DEFAULT_ADMIN_DSN)


def free_port(host: str = LOOPBACK) -> int:
    """A TCP port on ``host`` that was free a moment ago (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------- databases


class PostgresUnavailable(RuntimeError):
    """The admin server did not answer; the message says where and why."""


_unreachable: dict[str, str] = {}  # DSN -> reason: a dead server is asked once per process


def _admin(dsn: str) -> psycopg.Connection[Any]:
    import psycopg

    if dsn in _unreachable:
        raise PostgresUnavailable(_unreachable[dsn])
    try:
        return psycopg.connect(dsn, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = f"PostgreSQL not reachable at {dsn}: {str(exc).strip().splitlines()[0]}"
        _unreachable[dsn] = reason
        raise PostgresUnavailable(reason) from None


def postgres_url(dsn: str, database: str) -> str:
    """The SQLAlchemy URL (``postgresql+psycopg://``) of ``database`` on ``dsn``'s server."""
    from psycopg import conninfo

    params = conninfo.conninfo_to_dict(dsn)
    auth = str(params.get("user") or "postgres")
    if params.get("password"):
        auth += f":{params['password']}"
    host, port = params.get("host") or LOOPBACK, params.get("port") or 5432
    return f"postgresql+psycopg://{auth}@{host}:{port}/{database}"


@contextlib.contextmanager
def scratch_postgres(
    admin_dsn: str | None = None, *, prefix: str = "tuner_test_", keep: bool = False
) -> Iterator[str]:
    """A fresh, empty database ``<prefix><32 hex>``; yields its URL, drops it (unless ``keep``).

    ``admin_dsn`` (libpq form) names a role that may create databases; default
    :func:`default_admin_dsn`. Raises :class:`PostgresUnavailable` when the server does not answer.
    """
    from psycopg import sql

    dsn = admin_dsn or default_admin_dsn()
    name = f"{prefix}{uuid.uuid4().hex}"
    with _admin(dsn) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = postgres_url(dsn, name)
    try:
        yield url
    finally:
        if keep:
            print(f"kept database {name}: {url}", file=sys.stderr)
        else:
            with _admin(dsn) as admin:
                drop = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)")
                admin.execute(drop.format(sql.Identifier(name)))


def scratch_sqlite(directory: Path, name: str = "tuner.db") -> str:
    """The SQLAlchemy URL of SQLite file ``name`` in ``directory`` (created on first use)."""
    return f"sqlite:///{Path(directory) / name}"


# --------------------------------------------------------------------------- served apps


class ServerFailed(AssertionError):
    """A served app died or never became ready; the message carries its output."""


def tuner_serve(port: int, *options: str) -> list[str]:
    """The command line of ``tuner serve`` on ``port`` (the venv's script beside Python)."""
    script = Path(sys.executable).with_name("tuner")
    return [str(script), "serve", "--host", LOOPBACK, "--port", str(port), *options]


def uvicorn_factory(
    app: str, port: int, *, workers: int = 1, log_level: str = "warning"
) -> list[str]:
    """The command line of uvicorn serving factory ``app`` (e.g. ``api:create_app``) on ``port``.

    The factory reads its settings from the child's ``TUNER_*`` environment: uvicorn's worker
    processes each import the app by name, so an app object cannot be handed over.
    """
    address = ["--host", LOOPBACK, "--port", str(port)]
    options = ["--workers", str(workers), "--log-level", log_level]
    return [sys.executable, "-m", "uvicorn", app, "--factory", *address, *options]


def server_env(
    variables: Mapping[str, str | None] | None = None, *, isolate: bool = True
) -> dict[str, str]:
    """A child's environment: this process's, the repository root first on ``PYTHONPATH``,
    then ``variables`` (``None`` removes one). ``isolate`` (tests) drops every ``TUNER_*``
    (a child must not inherit the caller's service settings) and sets one torch thread;
    without it (bench) the caller's settings stay in force."""
    env = dict(os.environ)
    if isolate:
        env = {k: v for k, v in env.items() if not k.startswith("TUNER_")}
        env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    for key, value in (variables or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@dataclasses.dataclass
class Server:
    """A started server subprocess, in its own process group (uvicorn's workers included)."""

    process: subprocess.Popen[bytes]
    base_url: str
    log: IO[bytes]

    def output(self, lines: int = 60) -> str:
        """The last ``lines`` lines the process wrote (stdout and stderr together)."""
        self.log.flush()
        self.log.seek(0)
        return "\n".join(self.log.read().decode(errors="replace").splitlines()[-lines:])

    def await_ready(self, path: str = "/readyz", timeout_s: float = 60.0) -> None:
        """Poll ``path`` until it answers 200; :class:`ServerFailed` if the process exits or
        ``timeout_s`` passes first (polling another process: there is no event to await)."""
        import httpx

        deadline = time.monotonic() + timeout_s
        while True:
            if self.process.poll() is not None:
                raise ServerFailed(
                    f"{self.process.args!r} exited with {self.process.returncode} before it "
                    f"was ready:\n{self.output()}"
                )
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.base_url}{path}", timeout=2.0).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise ServerFailed(
                    f"{self.base_url}{path} not ready within {timeout_s:.0f} s:\n{self.output()}"
                )
            time.sleep(0.05)

    def stop(self, timeout_s: float = 60.0) -> int:
        """SIGTERM the process group, SIGKILL it after ``timeout_s``; the exit status."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        return self.process.returncode


@contextlib.contextmanager
def serving(
    command: Sequence[str],
    port: int,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_path: str | None = "/readyz",
    timeout_s: float = 60.0,
) -> Iterator[Server]:
    """Start ``command`` (listening on ``port``), await ``ready_path`` (``None``: do not), yield
    the :class:`Server`; stop it on exit. ``env`` defaults to :func:`server_env`."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(
            list(command),
            cwd=cwd or ROOT,
            env=dict(env) if env is not None else server_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stop() reaches uvicorn's workers too
        )
        server = Server(process, f"http://{LOOPBACK}:{port}", log)
        try:
            if ready_path is not None:
                server.await_ready(ready_path, timeout_s)
            yield server
        finally:
            server.stop()


# --------------------------------------------------------------------------- a private cluster


@dataclasses.dataclass
class PrivatePostgres:
    """A PostgreSQL cluster of the test's own (``initdb`` + ``pg_ctl`` as ``nobody``, on its
    own port under a temporary folder): one a test may stop, restart and kill."""

    data: Path
    port: int
    bindir: Path

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@{LOOPBACK}:{self.port}/postgres"

    def _ctl(self, *args: str) -> None:
        subprocess.run(
            ["runuser", "-u", "nobody", "--", str(self.bindir / "pg_ctl"), "-D", str(self.data),
             *args],
            check=True, capture_output=True, timeout=120,
        )  # fmt: skip

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses={LOOPBACK} -c fsync=off"
        self._ctl("-o", options, "-l", str(self.data / "server.log"), "-w", "start")

    def stop(self) -> None:
        self._ctl("-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


def postgres_bindir() -> Path | None:
    """Where ``initdb`` and ``pg_ctl`` are (Debian keeps them off the PATH), if anywhere."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


@contextlib.contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A started private cluster, removed afterwards; needs root (to run as ``nobody``)."""
    bindir = postgres_bindir()
    if bindir is None or os.geteuid() != 0:
        raise PostgresUnavailable("initdb and root are needed for a private cluster")
    home = Path(tempfile.mkdtemp(prefix="tuner-pg-", dir="/tmp"))
    home.chmod(0o755)
    data = home / "data"
    data.mkdir()
    shutil.chown(data, "nobody")
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    subprocess.run(
        ["runuser", "-u", "nobody", "--", *initdb, "--no-sync", "-E", "UTF8"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    cluster = PrivatePostgres(data, free_port(), bindir)
    cluster.start()
    try:
        yield cluster
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            cluster.stop()
        shutil.rmtree(home, ignore_errors=True)


# --------------------------------------------------------------------------- PgBouncer


def pgbouncer_url(url: str, port: int) -> str:
    """``url`` (a scratch database's) through the PgBouncer on ``port``, flagged as such."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url).set(host=LOOPBACK, port=port)
    return parsed.update_query_dict({"pgbouncer": "true"}).render_as_string(hide_password=False)


@contextlib.contextmanager
def pgbouncer(
    admin_dsn: str | None = None, *, pool_mode: str = "transaction", pool_size: int = 4
) -> Iterator[int]:
    """A PgBouncer (``pool_mode``, ``pool_size`` server connections per database and user)
    forwarding every database to ``admin_dsn``'s server, as ``nobody`` (it refuses to run as
    root) from a temporary folder; yields its port, stops it afterwards. Trust auth: the
    server's own does the checking. :class:`PostgresUnavailable` without the binary."""
    from psycopg import conninfo

    binary = shutil.which("pgbouncer") or "/usr/sbin/pgbouncer"
    if not Path(binary).exists():
        raise PostgresUnavailable("pgbouncer is not installed (apt-get install -y pgbouncer)")
    server = conninfo.conninfo_to_dict(admin_dsn or default_admin_dsn())
    home = Path(tempfile.mkdtemp(prefix="tuner-pgbouncer-", dir="/tmp"))
    home.chmod(0o755)
    port = free_port()
    user = str(server.get("user") or "postgres")
    (home / "users.txt").write_text(f'"{user}" ""\n')
    (home / "pgbouncer.ini").write_text(
        "[databases]\n"
        f"* = host={server.get('host') or LOOPBACK} port={server.get('port') or 5432}\n"
        "[pgbouncer]\n"
        f"listen_addr = {LOOPBACK}\nlisten_port = {port}\nunix_socket_dir =\n"
        f"auth_type = trust\nauth_file = {home / 'users.txt'}\n"
        f"pool_mode = {pool_mode}\ndefault_pool_size = {pool_size}\n"
        "max_client_conn = 1000\nmax_db_connections = 0\n"
        f"admin_users = {user}\nstats_users = {user}\n"
        "ignore_startup_parameters = extra_float_digits\n"
    )
    command = [binary, str(home / "pgbouncer.ini")]
    if os.geteuid() == 0:
        command = ["runuser", "-u", "nobody", "--", *command]
    with (home / "pgbouncer.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        _await_listening(process, port, home / "pgbouncer.log")
        yield port
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        shutil.rmtree(home, ignore_errors=True)


def _await_listening(process: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Wait until ``process`` accepts connections on ``port`` (polling another process:
    there is no event to await), or fail with its log."""
    deadline = time.monotonic() + 30.0
    while True:
        if process.poll() is not None:
            raise PostgresUnavailable(f"pgbouncer exited: {log.read_text(errors='replace')}")
        with contextlib.suppress(OSError), socket.create_connection((LOOPBACK, port), 0.5):
            return
        if time.monotonic() > deadline:
            raise PostgresUnavailable(f"pgbouncer not listening: {log.read_text(errors='replace')}")
        time.sleep(0.02)


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """A Dockerfile's ``(INSTRUCTION, arguments)`` in order, continuation lines joined,
    comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, args = (pending + line).partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        pending = ""
    return instructions
