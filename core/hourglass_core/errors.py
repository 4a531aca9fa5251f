"""The error hierarchy. Each error maps to one gRPC status code (see `hourglass_core.wire`)."""

from __future__ import annotations


class HourglassError(Exception):
    """Base of every error Hourglass raises on purpose."""


class InvalidArgument(HourglassError):
    """A request field is wrong; `field` names it (dotted path, e.g. `trigger.cron.timezone`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class InvalidTrigger(InvalidArgument):
    """A trigger that can never be evaluated (bad cron, unknown time zone, end before start)."""


class NotFound(HourglassError):
    """Base of the look-ups that found nothing."""


class JobNotFound(NotFound):
    def __init__(self, namespace: str, job_id: str) -> None:
        super().__init__(f"job {job_id!r} not found in namespace {namespace!r}")


class RunNotFound(NotFound):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"run {run_id!r} not found")


class WorkerNotFound(NotFound):
    def __init__(self, worker_id: str) -> None:
        super().__init__(f"worker {worker_id!r} not found (not live, nor dead or left lately)")


class FailedPrecondition(HourglassError):
    """The request is valid but the job's state does not allow it (e.g. resume a cancelled job)."""


class Unauthenticated(HourglassError):
    """The coordinator could not identify the caller: no bearer token, or a bad or expired one."""


class PermissionDenied(HourglassError):
    """The caller is known but has no permission for this call in this namespace."""


class ExecutorNotAllowed(PermissionDenied):
    """A job names an executor its namespace's policy does not allow; `field` names where
    (e.g. `jobs[3].executor`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


class Unavailable(HourglassError):
    """A backend (Cassandra, Redis) cannot be reached, or the coordinator is busy; the request
    may be retried. `retry_after`: seconds the coordinator asked callers to wait first (its
    RetryInfo), None if it did not say."""

    retry_after: float | None = None


class StaleOwner(HourglassError):
    """A write carried a fencing token older than the newest one seen: its lease is gone."""
