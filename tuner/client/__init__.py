"""A Python client of the tuning service's REST API (``/v1``), over httpx.

>>> with TunerClient("http://127.0.0.1:8000", token="...") as client:  # doctest: +SKIP
...     client.submit("examples/quickstart.yaml")
...     study = client.wait("quickstart-mnist", timeout=600)
...     print(study.best.value, study.best.initializer)

Every method returns typed models (re-exported here) and raises
a :class:`ClientError` subclass on failure. Reads (GET) and ``cancel`` (idempotent) are retried
with exponential backoff on connection errors and 5xx answers; a submission is retried only
when the connection could not be opened (the request never left), never after it was sent.
"""

from tuner.client._client import TunerClient
from tuner.client._errors import (
    AuthError,
    ClientError,
    Conflict,
    ConnectionFailed,
    InvalidRequest,
    NotFound,
    RequestRejected,
    ServerError,
    WaitTimeout,
)
from tuner.client._http import Retry
from tuner.client._models import (
    CurrentTrial,
    DepthProfile,
    InitializerStats,
    LayerDiagnostics,
    Leaderboard,
    Replicate,
    SeedVariance,
    SeedVarianceGroup,
    Study,
    StudyBrief,
    StudyPage,
    Summary,
    Trial,
    TrialCounts,
    TrialDetail,
    TrialPage,
    TrialSignal,
    VarianceSource,
    Worker,
    WorkerList,
)
from tuner.spec import read_definition

__all__ = [
    "AuthError",
    "ClientError",
    "Conflict",
    "ConnectionFailed",
    "CurrentTrial",
    "DepthProfile",
    "InitializerStats",
    "InvalidRequest",
    "LayerDiagnostics",
    "Leaderboard",
    "NotFound",
    "Replicate",
    "RequestRejected",
    "Retry",
    "SeedVariance",
    "SeedVarianceGroup",
    "ServerError",
    "Study",
    "StudyBrief",
    "StudyPage",
    "Summary",
    "Trial",
    "TrialCounts",
    "TrialDetail",
    "TrialPage",
    "TrialSignal",
    "TunerClient",
    "VarianceSource",
    "WaitTimeout",
    "Worker",
    "WorkerList",
    "read_definition",
]
