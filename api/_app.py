"""The FastAPI app factory."""

import contextlib
import gc
import logging
import threading
from collections.abc import AsyncIterator
from typing import Any

import anyio
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

import storage
import tuner
from api.config import Settings, get_settings
from api.dashboard import DashboardApp
from api.deps import COMMON_RESPONSES, Authorized
from api.errors import add_exception_handlers
from api.limits import BodyLimit
from api.metrics import make_registry
from api.routes import ops, preflight, report, studies, trials, workers
from api.summary import ImportanceCache
from tuner.spec import StudySpec

log = logging.getLogger("api")

API_PREFIX = "/v1"
#: ``application_name`` of an API process's connections.
API_ROLE = "tuner-api"


def create_app(settings: Settings | None = None) -> FastAPI:
    """A fresh application over the database named by ``settings`` (default: the environment).

    The lifespan handler opens one :class:`storage.Database`, migrates the ``tuner_`` tables
    and disposes of it at shutdown. Routes see ``settings`` through ``api.deps.SettingsDep``.
    """
    if settings is None:
        settings = get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = storage.Database(
            settings.database_url, connections=settings.connections, role=API_ROLE
        )
        migrated = threading.Event()

        def migrate() -> None:
            if not migrated.is_set():
                db.upgrade()
                migrated.set()

        app.state.db = db
        app.state.migrate = migrate
        app.state.metrics_registry = make_registry(db, stale_after_s=settings.stale_after_s)
        app.state.importance_cache = ImportanceCache()
        app.state.trials_limiter = anyio.CapacityLimiter(settings.trials_threads)
        try:
            await run_in_threadpool(migrate)
        except storage.StorageError as exc:
            # Serve anyway: /healthz answers, /readyz says 503 (and retries) until it works.
            log.error("cannot migrate %r at startup: %s", db, exc)
        # Everything alive now (torch, optuna, the app) lives as long as the process: keep
        # the collector from rescanning it. A full collection otherwise takes ~200 ms and
        # stalls every request of this process when it strikes.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()
            db.dispose()

    app = FastAPI(
        title="init-tuner",
        summary="Hyperparameter tuning with weight initialization as a search dimension",
        version=tuner.__version__,
        lifespan=lifespan,
    )

    app.state.settings = settings  # what SettingsDep answers
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    add_exception_handlers(app)
    app.include_router(ops.router)
    for router in (studies.router, trials.router, report.router, workers.router, preflight.router):
        app.include_router(
            router, prefix=API_PREFIX, dependencies=[Authorized], responses=COMMON_RESPONSES
        )
    _document_study_body(app)
    if settings.dashboard:
        app.mount("/", DashboardApp(settings, lambda: app.state.db), name="dashboard")
    return app


def _document_study_body(app: FastAPI) -> None:
    """Show the study definition's JSON schema as ``POST /v1/studies``' request body.

    The route takes a plain mapping (``parse_spec`` validates it, so errors carry the
    spec's own field paths); the schema documents what it accepts.
    """

    generate = app.openapi

    def openapi() -> dict[str, Any]:
        schema = generate()  # FastAPI's own, cached on the app
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        if "StudySpec" not in components:
            spec = StudySpec.model_json_schema(ref_template="#/components/schemas/{model}")
            for name, definition in spec.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components["StudySpec"] = spec
            for route in ("studies", "preflight"):
                body = schema["paths"][f"{API_PREFIX}/{route}"]["post"]["requestBody"]
                body["content"]["application/json"]["schema"] = {
                    "$ref": "#/components/schemas/StudySpec"
                }
                body["content"]["application/json"]["example"] = _EXAMPLE_STUDY
            _link_study_routes(schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


#: A small study that runs in seconds: the request bodies' documented example.
_EXAMPLE_STUDY: dict[str, Any] = {
    "name": "example-digits",
    "task": {"model": "mlp", "hidden": [32], "dataset": "digits"},
    "search": {
        "initializer": ["xavier_uniform", "kaiming_normal"],
        "lr": {"low": 0.01, "high": 0.3, "log": True},
    },
    "budget": {"n_trials": 4, "max_epochs": 5},
}

#: Where a created study leads: each per-study route, by the name the 201 answer carries.
_STUDY_ROUTES = ("", "/trials", "/best", "/summary", "/report", "/cancel")


def _link_study_routes(schema: dict[str, Any]) -> None:
    """OpenAPI links from ``POST /v1/studies`` to every per-study route (``name`` from the
    answer's body): clients and fuzzers can follow them to the study just created."""
    paths = schema["paths"]
    links: dict[str, Any] = {}
    for suffix in _STUDY_ROUTES:
        item = paths.get(f"{API_PREFIX}/studies/{{name}}{suffix}", {})
        for operation in item.values():
            links[operation["operationId"]] = {
                "operationId": operation["operationId"],
                "parameters": {"name": "$response.body#/name"},
            }
    created = paths[f"{API_PREFIX}/studies"]["post"]["responses"]["201"]
    created["links"] = links
