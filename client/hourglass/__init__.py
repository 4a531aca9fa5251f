"""Hourglass: a distributed job scheduler. This is its Python SDK.

    import hourglass

    with hourglass.Client("127.0.0.1:7070") as client:
        job = client.submit(hourglass.JobSpec(
            name="report", executor="http", trigger=hourglass.cron("30 2 * * *", tz="Europe/London"),
            params=hourglass.json_params({"url": "http://reports.internal/run"}),
        ))
        for run in client.iter_runs(job.id):
            print(run.status, run.lateness)

`AsyncClient` has the same methods as coroutines. Importing this package needs only grpcio,
grpcio-status, protobuf and the shared models: none of the server dependencies.
"""

from __future__ import annotations

from hourglass._common import CallRetry, DeadlineExceeded
from hourglass.aio import AsyncClient
from hourglass.client import Client
from hourglass.triggers import cron, every, json_params, once
from hourglass_core.cluster import CoordinatorStatus, ShardMapStatus, ShardStatus, WorkerState, WorkerStatus
from hourglass_core.errors import (
    ExecutorNotAllowed,
    FailedPrecondition,
    HourglassError,
    InvalidArgument,
    JobNotFound,
    NotFound,
    PermissionDenied,
    RunNotFound,
    Unauthenticated,
    Unavailable,
    WorkerNotFound,
)
from hourglass_core.models import (
    CronTrigger,
    DstGap,
    DstRepeat,
    ExplainedFire,
    Explanation,
    FireFate,
    IntervalTrigger,
    Job,
    JobChanges,
    JobEvent,
    JobEventKind,
    JobFilter,
    JobOptions,
    JobSpec,
    JobState,
    LatenessReport,
    MisfirePolicy,
    NamespacePolicy,
    OnceTrigger,
    OverlapPolicy,
    Page,
    Payload,
    RetryPolicy,
    Run,
    RunReason,
    RunStatus,
    ScheduledFire,
    SchedulePreview,
    Trigger,
    WorkerLostPolicy,
)
from hourglass_core.tls import channel_credentials as tls_credentials

__version__ = "0.1.0"

__all__ = [
    "AsyncClient",
    "CallRetry",
    "Client",
    "CoordinatorStatus",
    "CronTrigger",
    "DeadlineExceeded",
    "DstGap",
    "DstRepeat",
    "ExecutorNotAllowed",
    "ExplainedFire",
    "Explanation",
    "FailedPrecondition",
    "FireFate",
    "HourglassError",
    "IntervalTrigger",
    "InvalidArgument",
    "Job",
    "JobChanges",
    "JobEvent",
    "JobEventKind",
    "JobFilter",
    "JobNotFound",
    "JobOptions",
    "JobSpec",
    "JobState",
    "LatenessReport",
    "MisfirePolicy",
    "NamespacePolicy",
    "NotFound",
    "OnceTrigger",
    "OverlapPolicy",
    "Page",
    "Payload",
    "PermissionDenied",
    "RetryPolicy",
    "Run",
    "RunNotFound",
    "RunReason",
    "RunStatus",
    "SchedulePreview",
    "ScheduledFire",
    "ShardMapStatus",
    "ShardStatus",
    "Trigger",
    "Unauthenticated",
    "Unavailable",
    "WorkerLostPolicy",
    "WorkerNotFound",
    "WorkerState",
    "WorkerStatus",
    "cron",
    "every",
    "json_params",
    "once",
    "tls_credentials",
]
