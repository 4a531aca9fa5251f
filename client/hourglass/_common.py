"""What the sync and async clients share: channel target, call retries, error mapping, and the
request/response plumbing of every RPC (an `Rpc` says what to send, how to read the answer,
which failures are safe to retry and what NOT_FOUND means).

Nothing here performs I/O: `Client` and `AsyncClient` execute an `Rpc` with their own channel,
clock and sleep, so the retry rules and the error mapping exist once.
"""

from __future__ import annotations

import ipaddress
import os
import random
import re
import socket
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Generic, TypeVar

import grpc

from hourglass_core import cluster_wire, rich_status, wire
from hourglass_core.cluster import CoordinatorStatus, ShardMapStatus, WorkerStatus
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
    DEFAULT_NAMESPACE,
    Explanation,
    Job,
    JobChanges,
    JobSpec,
    JobState,
    NamespacePolicy,
    OverlapPolicy,
    Page,
    Run,
    SchedulePreview,
    Trigger,
)
from hourglass_pb.v1 import jobs_pb2 as pb

T = TypeVar("T")

ENV_ADDRESS = "HOURGLASS_COORDINATOR"
DEFAULT_ADDRESS = "127.0.0.1:7070"
DEFAULT_TIMEOUT_S = 10.0
# The coordinator accepts up to 64 MiB; a page of jobs with large params exceeds gRPC's 4 MiB default.
MAX_MESSAGE = 64 * 1024 * 1024
USER_AGENT = "hourglass-python/0.1"

Options = list[tuple[str, Any]]


class DeadlineExceeded(Unavailable):
    """The call did not finish within its deadline. For a write the outcome is unknown: the
    request may or may not have been applied (a submit with an idempotency key is safe to repeat)."""


# -- channel target ------------------------------------------------------------------------


def channel_target(address: str | None = None) -> tuple[str, Options]:
    """The gRPC target and channel options for `address`.

    `address` defaults to $HOURGLASS_COORDINATOR, then "127.0.0.1:7070". One address is used as
    given (any gRPC target works, e.g. "dns:///coord.internal:7070"). Several comma-separated
    "host:port" addresses become one multi-address target with round-robin load balancing, so a
    call goes to a replica that is up: IP literals as `ipv4:`/`ipv6:` targets; host names are
    resolved once, here (if one does not resolve, the first address is used through DNS).
    Raises ValueError for an empty address.
    """
    text = address if address is not None else os.environ.get(ENV_ADDRESS) or DEFAULT_ADDRESS
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError(f"no coordinator address in {text!r}")
    options: Options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.primary_user_agent", USER_AGENT),
    ]
    if len(parts) == 1:
        return parts[0], options
    options.append(("grpc.lb_policy_name", "round_robin"))
    resolved = [_ip_address(p) for p in parts]
    if all(r is not None and r[0] == 4 for r in resolved):
        return "ipv4:" + ",".join(r[1] for r in resolved if r is not None), options
    if all(r is not None and r[0] == 6 for r in resolved):
        return "ipv6:" + ",".join(r[1] for r in resolved if r is not None), options
    return f"dns:///{parts[0]}", options


def _ip_address(hostport: str) -> tuple[int, str] | None:
    """(4 or 6, "ip:port") for "host:port" / "[v6]:port"; names resolved; None if unresolvable."""
    host, sep, port = hostport.rpartition(":")
    if not sep or not port.isdigit():
        return None
    host = host.strip("[]")
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        infos = []
        for family in (socket.AF_INET, socket.AF_UNSPEC):  # prefer IPv4: "localhost" -> 127.0.0.1
            try:
                infos = socket.getaddrinfo(host, int(port), family, socket.SOCK_STREAM)
                break
            except OSError:
                continue
        if not infos:
            return None
        ip = ipaddress.ip_address(str(infos[0][4][0]).split("%", 1)[0])
    return (4, f"{ip}:{port}") if ip.version == 4 else (6, f"[{ip}]:{port}")


# -- retries -------------------------------------------------------------------------------

# Which failures each kind of call retries. UNAVAILABLE means the request was not processed or
# the backend could not be reached; RESOURCE_EXHAUSTED that the coordinator refused it unread,
# being at its limit of calls at once; DEADLINE_EXCEEDED means nothing is known, so only reads
# (which change nothing) retry it.
READ = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.DEADLINE_EXCEEDED})
IDEMPOTENT_WRITE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
NO_RETRY: frozenset[grpc.StatusCode] = frozenset()
REFUSED_UNREAD = frozenset({grpc.StatusCode.RESOURCE_EXHAUSTED})


@dataclass(frozen=True, slots=True)
class CallRetry:
    """How a client retries a call that failed with a retryable status.

    At most `max_attempts` attempts (the first included). The delay before attempt n+1 is
    `initial_backoff * multiplier**(n-1)` capped at `max_backoff`, with jitter (between half
    and all of it). No attempt starts, and no attempt's deadline reaches, beyond
    max(timeout, max_elapsed) seconds after the call began. Times are in seconds.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 3.0
    multiplier: float = 2.0
    max_elapsed: float = 30.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < self.initial_backoff or self.multiplier < 1:
            raise ValueError("need 0 <= initial_backoff <= max_backoff and multiplier >= 1")

    def backoff(self, retry: int, rng: Callable[[], float] = random.random) -> float:
        """Delay in seconds before retry number `retry` (1 for the second attempt)."""
        cap = min(self.max_backoff, self.initial_backoff * self.multiplier ** (retry - 1))
        return cap * (0.5 + rng() / 2)


NO_RETRIES = CallRetry(max_attempts=1)


class Attempts:
    """The retry state of one call. Usage:

        attempts = Attempts(policy, timeout, rpc.retry_on)
        while True:
            try: return call(timeout=attempts.start())
            except grpc.RpcError as e:
                delay = attempts.failed(e.code())   # None: give up and raise
    """

    def __init__(
        self,
        policy: CallRetry,
        timeout: float,
        retry_on: frozenset[grpc.StatusCode],
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: Callable[[], float] = random.random,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, not {timeout}")
        self._policy, self._timeout, self._retry_on = policy, timeout, retry_on
        self._clock, self._rng = clock, rng
        self._started = clock()
        self._budget = max(timeout, policy.max_elapsed)
        self.count = 0

    def _remaining(self) -> float:
        return self._budget - (self._clock() - self._started)

    def start(self) -> float:
        """Counts an attempt; returns its deadline in seconds from now."""
        self.count += 1
        return max(0.001, min(self._timeout, self._remaining()))

    def failed(self, code: grpc.StatusCode | None, retry_after: float | None = None) -> float | None:
        """Seconds to wait before the next attempt, or None when the call must give up: the
        status is not retryable for this call, attempts are used up, or time is. The wait is
        the backoff, or `retry_after` (what the coordinator asked for) where that is longer."""
        if code not in self._retry_on or self.count >= self._policy.max_attempts:
            return None
        delay = self._policy.backoff(self.count, self._rng)
        if retry_after is not None:
            delay = max(delay, retry_after)
        if self._remaining() - delay < 0.001:
            return None
        return delay


# -- errors --------------------------------------------------------------------------------

_FIELD = re.compile(r"^([A-Za-z_][\w.]*(?:\[[^\]]*\][\w.]*)*): (.*)$", re.DOTALL)


def error_from_status(
    code: grpc.StatusCode | None,
    details: str,
    not_found: Callable[[], NotFound] | None = None,
    rich: rich_status.Details = rich_status.NONE,
) -> HourglassError:
    """The domain error for a gRPC status (the inverse of `hourglass_core.wire.status_code`),
    and what its google.rpc details say (`rich`).

    INVALID_ARGUMENT -> InvalidArgument, with `field` that of the BadRequest's first field
    violation, else parsed from "field: message" ("" if the message names none); NOT_FOUND ->
    `not_found()` (JobNotFound / RunNotFound for calls about one job or run) or NotFound;
    FAILED_PRECONDITION -> FailedPrecondition; UNAVAILABLE and RESOURCE_EXHAUSTED (overloaded)
    -> Unavailable, its `retry_after` the RetryInfo's delay; DEADLINE_EXCEEDED ->
    DeadlineExceeded (an Unavailable); UNAUTHENTICATED -> Unauthenticated; PERMISSION_DENIED ->
    PermissionDenied (ExecutorNotAllowed, with its `field`, for a job whose executor its
    namespace's policy does not allow); anything else -> HourglassError whose message starts
    with the code's name.
    """
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        if rich.field:
            return InvalidArgument(rich.field, details.removeprefix(f"{rich.field}: "))
        match = _FIELD.match(details)
        if match:
            return InvalidArgument(match.group(1), match.group(2))
        error = InvalidArgument("", details)
        error.args = (details,)  # no "field: " prefix to show
        return error
    if code == grpc.StatusCode.NOT_FOUND:
        return not_found() if not_found is not None else NotFound(details)
    if code == grpc.StatusCode.FAILED_PRECONDITION:
        return FailedPrecondition(details)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            away = Unavailable(f"coordinator overloaded: {details}" if details else "coordinator overloaded")
        else:
            away = Unavailable(details or "coordinator unavailable")
        away.retry_after = rich.retry_after
        return away
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(details or "deadline exceeded")
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return Unauthenticated(details or "unauthenticated")
    if code == grpc.StatusCode.PERMISSION_DENIED:
        match = _FIELD.match(details)
        if match and match.group(1).endswith("executor"):
            return ExecutorNotAllowed(match.group(1), match.group(2))
        return PermissionDenied(details or "permission denied")
    name = code.name if code is not None else "UNKNOWN"
    return HourglassError(f"{name}: {details}" if details else name)


def error_from_rpc(
    error: grpc.RpcError, not_found: Callable[[], NotFound] | None = None, *, target: str = "", attempts: int = 1
) -> HourglassError:
    """`error_from_status` for a failed call (sync `grpc.RpcError` or `grpc.aio.AioRpcError`).
    An Unavailable's message also names the target and how many attempts were made."""
    code = error.code() if hasattr(error, "code") else None
    details = error.details() if hasattr(error, "details") else str(error)
    mapped = error_from_status(code, details or "", not_found, rich_status.read(error))
    if isinstance(mapped, Unavailable) and target:
        mapped.args = (f"{mapped} (coordinator {target}, {attempts} attempt{'s' if attempts > 1 else ''})",)
    return mapped


def retry_after(error: grpc.RpcError) -> float | None:
    """Seconds the coordinator asked the caller to wait before trying again (its RetryInfo)."""
    return rich_status.read(error).retry_after


def call_metadata(token: str | None) -> tuple[tuple[str, str], ...] | None:
    """The metadata every call carries: the bearer token (`token`, else $HOURGLASS_TOKEN)."""
    token = token if token is not None else os.environ.get("HOURGLASS_TOKEN", "")
    return (("authorization", f"Bearer {token}"),) if token else None


# -- RPCs ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rpc(Generic[T]):
    """One call to make: the stub method's name, the request, how to read the response, the
    statuses it may retry, and the error NOT_FOUND means for it."""

    method: str
    request: Any
    parse: Callable[[Any], T]
    retry_on: frozenset[grpc.StatusCode]
    not_found: Callable[[], NotFound] | None = None


def with_idempotency_key(spec: JobSpec, idempotent: bool) -> JobSpec:
    """`spec` with a fresh random idempotency key when it has none and `idempotent` is set.

    Why: a submit whose response is lost (connection dropped, deadline hit) may have created
    the job. Retrying it without a key would create a second job; with the key the server
    returns the first one instead. The key is made once per `submit` call, so every retry of
    that call carries the same key.
    """
    if spec.idempotency_key or not idempotent:
        return spec
    return replace(spec, idempotency_key=uuid.uuid4().hex)


def submit(spec: JobSpec, idempotent: bool = True) -> Rpc[Job]:
    """Retried on UNAVAILABLE only if the spec as sent carries an idempotency key."""
    sent = with_idempotency_key(spec, idempotent)
    return Rpc(
        "SubmitJob",
        pb.SubmitJobRequest(job=wire.spec_to_pb(sent)),
        lambda r: wire.job_from_pb(r.job),
        IDEMPOTENT_WRITE if sent.idempotency_key else NO_RETRY,
    )


def submit_many(specs: Sequence[JobSpec], idempotent: bool = True) -> Rpc[list[Job]]:
    """Retried on UNAVAILABLE only if every spec as sent carries an idempotency key."""
    sent = [with_idempotency_key(s, idempotent) for s in specs]
    return Rpc(
        "SubmitJobs",
        pb.SubmitJobsRequest(jobs=[wire.spec_to_pb(s) for s in sent]),
        lambda r: [wire.job_from_pb(c.job) for c in r.results],
        IDEMPOTENT_WRITE if all(s.idempotency_key for s in sent) else NO_RETRY,
    )


def _job_not_found(namespace: str, job_id: str) -> Callable[[], NotFound]:
    return lambda: JobNotFound(namespace or DEFAULT_NAMESPACE, job_id)


def get_job(job_id: str, namespace: str) -> Rpc[Job]:
    return Rpc(
        "GetJob",
        pb.GetJobRequest(namespace=namespace, id=job_id),
        wire.job_from_pb,
        READ,
        _job_not_found(namespace, job_id),
    )


def list_jobs(
    namespace: str,
    state: JobState | None,
    name_prefix: str,
    labels: Mapping[str, str] | None,
    page_size: int,
    page_token: str,
) -> Rpc[Page[Job]]:
    request = pb.ListJobsRequest(
        namespace=namespace,
        page_size=page_size,
        page_token=page_token,
        name_prefix=name_prefix,
        labels=dict(labels or {}),
    )
    if state is not None:
        request.state = wire.job_state_to_pb(state)
    return Rpc(
        "ListJobs",
        request,
        lambda r: Page([wire.job_from_pb(j) for j in r.jobs], r.next_page_token),
        READ,
    )


_CONTROL = {"cancel": "CancelJob", "pause": "PauseJob", "resume": "ResumeJob"}


def control(action: str, job_id: str, namespace: str, note: str = "") -> Rpc[Job]:
    """Cancel, pause (with its note) or resume: each is idempotent on the server (cancelling a
    cancelled job, pausing a paused one, resuming an active one return the job unchanged), so
    UNAVAILABLE is retried."""
    return Rpc(
        _CONTROL[action],
        pb.PauseJobRequest(namespace=namespace, id=job_id, note=note) if action == "pause"
        else pb.JobRef(namespace=namespace, id=job_id),
        wire.job_from_pb,
        IDEMPOTENT_WRITE,
        _job_not_found(namespace, job_id),
    )


def get_run(run_id: str) -> Rpc[Run]:
    return Rpc("GetRun", pb.GetRunRequest(run_id=run_id), wire.run_from_pb, READ, lambda: RunNotFound(run_id))


def list_runs(job_id: str, namespace: str, page_size: int, page_token: str) -> Rpc[Page[Run]]:
    return Rpc(
        "ListRuns",
        pb.ListRunsRequest(namespace=namespace, job_id=job_id, page_size=page_size, page_token=page_token),
        lambda r: Page([wire.run_from_pb(x) for x in r.runs], r.next_page_token),
        READ,
        _job_not_found(namespace, job_id),
    )


def preview_schedule(
    job_id: str | None, namespace: str, trigger: Trigger | None, count: int, after: datetime | None
) -> Rpc[SchedulePreview]:
    """Of a stored job (`job_id`) or of a trigger not yet submitted: exactly one is given."""
    if (job_id is None) == (trigger is None):
        raise ValueError("give a job id or a trigger, not both")
    request = pb.PreviewScheduleRequest(count=count)
    if trigger is not None:
        request.trigger.CopyFrom(wire.trigger_to_pb(trigger))
    else:
        request.job.CopyFrom(pb.JobRef(namespace=namespace, id=job_id or ""))
    if after is not None:
        request.after.CopyFrom(wire.ts(after))

    def answer(response: pb.PreviewScheduleResponse) -> SchedulePreview:
        return SchedulePreview([wire.scheduled_fire_from_pb(f) for f in response.fires], response.timezone)

    return Rpc("PreviewSchedule", request, answer, READ, _job_not_found(namespace, job_id or ""))


def delete_job(job_id: str, namespace: str) -> Rpc[None]:
    """Retried as other control calls; a retry after a delete whose answer was lost raises
    JobNotFound: the job is gone either way."""
    ref = pb.JobRef(namespace=namespace, id=job_id)
    return Rpc("DeleteJob", ref, lambda _: None, IDEMPOTENT_WRITE, _job_not_found(namespace, job_id))


def trigger_job(job_id: str, namespace: str, overlap: OverlapPolicy | None = None) -> Rpc[tuple[str, datetime]]:
    """Not retried on UNAVAILABLE: a trigger that landed but whose answer was lost would run
    the job twice."""
    ref = pb.TriggerJobRequest(namespace=namespace, id=job_id, overlap_policy=wire.overlap_to_pb(overlap))

    def answer(response: pb.TriggerJobResponse) -> tuple[str, datetime]:
        return response.run_id, wire.from_ts(response.due) or datetime.now().astimezone()

    return Rpc("TriggerJob", ref, answer, REFUSED_UNREAD, _job_not_found(namespace, job_id))


def update_job(job_id: str, namespace: str, version: int, changes: JobChanges) -> Rpc[Job]:
    """Retried on UNAVAILABLE: a retry of an update that landed names a version now stale, and
    fails with FailedPrecondition instead of applying twice."""
    spec, paths = wire.changes_to_pb(changes)
    request = pb.UpdateJobRequest(namespace=namespace, id=job_id, version=version, job=spec)
    request.update_mask.paths.extend(paths)
    return Rpc("UpdateJob", request, wire.job_from_pb, IDEMPOTENT_WRITE, _job_not_found(namespace, job_id))


def backfill_job(job_id: str, namespace: str, since: datetime, until: datetime, per_second: float) -> Rpc[list[datetime]]:
    """Retried on UNAVAILABLE: a backfill is idempotent per (job, occurrence)."""
    request = pb.BackfillJobRequest(namespace=namespace, id=job_id, since=wire.ts(since), until=wire.ts(until),
                                    per_second=per_second)  # fmt: skip

    def answer(response: pb.BackfillJobResponse) -> list[datetime]:
        return [wire.from_ts(t) or since for t in response.occurrences]

    return Rpc("BackfillJob", request, answer, IDEMPOTENT_WRITE, _job_not_found(namespace, job_id))


def explain_job(job_id: str, namespace: str, since: datetime, until: datetime | None, max_fires: int) -> Rpc[Explanation]:
    request = pb.ExplainJobRequest(namespace=namespace, id=job_id, since=wire.ts(since), max_fires=max_fires)
    if until is not None:
        request.until.CopyFrom(wire.ts(until))

    def answer(response: pb.ExplainJobResponse) -> Explanation:
        return Explanation(
            [wire.explained_fire_from_pb(f) for f in response.fires],
            [wire.job_event_from_pb(e, namespace or DEFAULT_NAMESPACE, job_id) for e in response.events],
            response.truncated,
        )

    return Rpc("ExplainJob", request, answer, READ, _job_not_found(namespace, job_id))


def watch_request(job_id: str, namespace: str) -> pb.WatchRunsRequest:
    return pb.WatchRunsRequest(namespace=namespace, job_id=job_id)


def run_event(message: pb.RunEvent) -> tuple[Run, int]:
    return wire.run_from_pb(message.run), message.dropped_before


def watch_not_found(job_id: str, namespace: str) -> Callable[[], NotFound] | None:
    return _job_not_found(namespace, job_id) if job_id else None


def set_namespace_policy(namespace: str, allowed_executors: Sequence[str]) -> Rpc[NamespacePolicy]:
    """Retried on UNAVAILABLE: setting a policy again leaves it as setting it once did."""
    if isinstance(allowed_executors, str):
        raise TypeError("allowed_executors: a list of executor names, not one string")
    request = pb.SetNamespacePolicyRequest(namespace=namespace, allowed_executors=list(allowed_executors))
    return Rpc("SetNamespacePolicy", request, wire.policy_from_pb, IDEMPOTENT_WRITE)


def get_namespace_policy(namespace: str) -> Rpc[NamespacePolicy]:
    return Rpc("GetNamespacePolicy", pb.GetNamespacePolicyRequest(namespace=namespace), wire.policy_from_pb, READ)


def list_workers() -> Rpc[list[WorkerStatus]]:
    return Rpc("ListWorkers", pb.ListWorkersRequest(), lambda r: [cluster_wire.worker_from_pb(w) for w in r.workers], READ)


def get_worker(worker_id: str) -> Rpc[WorkerStatus]:
    request = pb.GetWorkerRequest(id=worker_id)
    return Rpc("GetWorker", request, cluster_wire.worker_from_pb, READ, lambda: WorkerNotFound(worker_id))


def get_shard_map() -> Rpc[ShardMapStatus]:
    return Rpc("GetShardMap", pb.GetShardMapRequest(), cluster_wire.shard_map_from_pb, READ)


def list_coordinators() -> Rpc[list[CoordinatorStatus]]:
    def answer(response: pb.ListCoordinatorsResponse) -> list[CoordinatorStatus]:
        return [cluster_wire.coordinator_from_pb(c) for c in response.coordinators]

    return Rpc("ListCoordinators", pb.ListCoordinatorsRequest(), answer, READ)
