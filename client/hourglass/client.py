"""`Client`: the blocking Python client of a Hourglass cluster (one gRPC channel)."""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc

from hourglass import _common as rpcs
from hourglass._common import DEFAULT_TIMEOUT_S, Attempts, CallRetry, Rpc
from hourglass_core.cluster import CoordinatorStatus, ShardMapStatus, WorkerStatus
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
from hourglass_core.tls import channel_credentials_from_env
from hourglass_core.tracing import traced_channel
from hourglass_pb.v1 import jobs_pb2_grpc

T = TypeVar("T")
JobList = list[Job]
WorkerList = list[WorkerStatus]
CoordinatorList = list[CoordinatorStatus]
TimeList = list[datetime]


class Client:
    """A blocking client of the JobService; safe to share between threads.

    `address`: "host:port", several comma-separated (calls are balanced round-robin over the
    replicas that are up), or any gRPC target; default $HOURGLASS_COORDINATOR or
    "127.0.0.1:7070". `timeout`: deadline in seconds of each attempt of a call, unless the
    call passes its own. `retry`: how UNAVAILABLE (and, for reads, DEADLINE_EXCEEDED) is retried;
    `CallRetry(max_attempts=1)` disables retries. `credentials`: TLS (`hourglass.tls_credentials(ca, cert, key)`);
    default from $HOURGLASS_TLS_CA_FILE, _CLIENT_CERT_FILE and _CLIENT_KEY_FILE; plaintext
    when none is set.
    `token`: the bearer token sent with every call (default $HOURGLASS_TOKEN; none if empty).

    Every method raises the domain errors: InvalidArgument (its `field` names the bad field),
    JobNotFound / RunNotFound / WorkerNotFound (all NotFound), FailedPrecondition, Unauthenticated,
    PermissionDenied (ExecutorNotAllowed: a namespace's policy), Unavailable (also after the
    retries ran out; DeadlineExceeded is one), HourglassError for anything else.
    """

    def __init__(
        self,
        address: str | None = None,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retry: CallRetry | None = None,
        credentials: grpc.ChannelCredentials | None = None,
        options: Sequence[tuple[str, Any]] = (),
        token: str | None = None,
    ) -> None:
        target, channel_options = rpcs.channel_target(address)
        self._metadata = rpcs.call_metadata(token)
        channel_options.extend(options)
        credentials = credentials if credentials is not None else channel_credentials_from_env()
        self.target = target
        self._timeout = timeout
        self._retry = retry or CallRetry()
        self._channel = traced_channel(  # a client span per call when the OTEL_* variables turn tracing on
            grpc.secure_channel(target, credentials, options=channel_options)
            if credentials is not None
            else grpc.insecure_channel(target, options=channel_options)
        )
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)

    # -- plumbing -----------------------------------------------------------------------------

    def _call(self, rpc: Rpc[T], timeout: float | None) -> T:
        attempts = Attempts(self._retry, timeout or self._timeout, rpc.retry_on)
        method = getattr(self._stub, rpc.method)
        while True:
            try:
                response = method(rpc.request, timeout=attempts.start(), metadata=self._metadata)
            except grpc.RpcError as error:
                delay = attempts.failed(error.code(), rpcs.retry_after(error))
                if delay is None:
                    raise rpcs.error_from_rpc(
                        error, rpc.not_found, target=self.target, attempts=attempts.count
                    ) from error
                time.sleep(delay)
                continue
            return rpc.parse(response)

    def close(self) -> None:
        """Closes the channel; calls in flight are cancelled. Idempotent."""
        self._channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- jobs -------------------------------------------------------------------------------

    def submit(self, spec: JobSpec, *, idempotent: bool = True, timeout: float | None = None) -> Job:
        """Stores the job and its first fire durably; returns the job.

        A spec without an idempotency key gets a random one (unless `idempotent=False`), so a
        retry after a lost response returns the job created then instead of a second job. The
        call is retried on UNAVAILABLE only when the spec as sent carries a key. A key used
        before in the namespace returns the job created with it.
        """
        return self._call(rpcs.submit(spec, idempotent), timeout)

    def submit_many(
        self, specs: Sequence[JobSpec], *, idempotent: bool = True, timeout: float | None = None
    ) -> JobList:
        """Submits all specs in one call, all or nothing: one invalid spec fails the batch with
        InvalidArgument naming "jobs[i].field". Returns the jobs in input order. Keys and
        retries as for `submit`."""
        return self._call(rpcs.submit_many(specs, idempotent), timeout)

    def get(self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, timeout: float | None = None) -> Job:
        """Raises JobNotFound."""
        return self._call(rpcs.get_job(job_id, namespace), timeout)

    def list(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        state: JobState | None = None,
        name_prefix: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        page_token: str = "",
        *,
        timeout: float | None = None,
    ) -> Page[Job]:
        """One page of the namespace's jobs matching every filter given (order stable but
        unspecified); `next_page_token` is empty on the last page. page_size at most 1000."""
        rpc = rpcs.list_jobs(namespace, state, name_prefix, labels, page_size, page_token)
        return self._call(rpc, timeout)

    def iter_jobs(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        state: JobState | None = None,
        name_prefix: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        *,
        timeout: float | None = None,
    ) -> Iterator[Job]:
        """Every matching job, fetching page after page as the iteration goes on."""
        token = ""
        while True:
            page = self.list(namespace, state, name_prefix, labels, page_size, token, timeout=timeout)
            yield from page.items
            token = page.next_page_token
            if not token:
                return

    def cancel(self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, timeout: float | None = None) -> Job:
        """Stops all future fires and asks a run in progress to stop. Final; cancelling a
        cancelled or completed job returns it unchanged. Raises JobNotFound."""
        return self._call(rpcs.control("cancel", job_id, namespace), timeout)

    def pause(
        self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, note: str = "", timeout: float | None = None
    ) -> Job:
        """Stops future fires until `resume`; a run in progress finishes. `note`: why, kept as
        Job.note until resumed. Raises JobNotFound, FailedPrecondition for a cancelled or
        completed job."""
        return self._call(rpcs.control("pause", job_id, namespace, note), timeout)

    def resume(self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, timeout: float | None = None) -> Job:
        """Schedules the next fire after now (fires missed while paused do not run). Raises
        JobNotFound, FailedPrecondition for a cancelled or completed job."""
        return self._call(rpcs.control("resume", job_id, namespace), timeout)

    def preview_schedule(
        self,
        job_id: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        trigger: Trigger | None = None,
        count: int = 10,
        after: datetime | None = None,
        timeout: float | None = None,
    ) -> SchedulePreview:
        """The next `count` (1-1000) fire times of the stored job `job_id`, or of `trigger`
        before it is submitted (a bad one raises InvalidArgument naming the field), strictly
        after `after` (default now), each with its wall-clock time in the trigger's zone and a
        note where a daylight-saving change moves or doubles it. An active job's preview
        starts at its next fire; a paused job's as if resumed now; a cancelled or completed
        job has none. Raises JobNotFound."""
        return self._call(rpcs.preview_schedule(job_id, namespace, trigger, count, after), timeout)

    def delete(self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, timeout: float | None = None) -> None:
        """Removes a cancelled or completed job (its runs stay readable until their retention
        ends). Raises JobNotFound (also on a retry after a delete whose answer was lost: the
        job is gone either way), FailedPrecondition for an active or paused job."""
        self._call(rpcs.delete_job(job_id, namespace), timeout)

    def trigger(
        self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, overlap: OverlapPolicy | None = None,
        timeout: float | None = None,
    ) -> tuple[str, datetime]:  # fmt: skip
        """Runs the job once now, beside its schedule (left as it is), also while paused or
        after it completed; the run is marked manual and follows the job's options (`overlap`
        in place of its overlap policy, if given). Returns the run's id (get_run finds it once
        it started or ended) and due time. Not retried when the answer is lost (that could run
        it twice). Raises JobNotFound, FailedPrecondition for a cancelled job."""
        return self._call(rpcs.trigger_job(job_id, namespace, overlap), timeout)

    def update(
        self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, version: int, changes: JobChanges,
        timeout: float | None = None,
    ) -> Job:  # fmt: skip
        """Changes the fields `changes` gives (name, trigger, priority, params, options,
        labels) if the job is still at `version` (Job.version as read). Fires prepared under
        the old spec do not run; the next fire follows the new trigger. Returns the job at
        version + 1. Raises FailedPrecondition for a stale version or a cancelled job,
        InvalidArgument naming the field, JobNotFound."""
        return self._call(rpcs.update_job(job_id, namespace, version, changes), timeout)

    def backfill(
        self, job_id: str, since: datetime, until: datetime, namespace: str = DEFAULT_NAMESPACE, *,
        per_second: float = 0.0, timeout: float | None = None,
    ) -> TimeList:  # fmt: skip
        """Runs the fires the job's trigger would have produced in [since, until), released
        `per_second` a second (0: the server's rate); returns their times. Idempotent: a time
        that ran already, or that an earlier backfill covered, runs no more."""
        return self._call(rpcs.backfill_job(job_id, namespace, since, until, per_second), timeout)

    def explain(
        self, job_id: str, since: datetime, until: datetime | None = None, namespace: str = DEFAULT_NAMESPACE, *,
        max_fires: int = 100, timeout: float | None = None,
    ) -> Explanation:  # fmt: skip
        """Every fire the job's trigger expected in [since, until) (default until now) and what
        became of it (ran, skipped, missed, pending, with the cause), its manual runs, and the
        job's events (pause, resume, update, ...)."""
        return self._call(rpcs.explain_job(job_id, namespace, since, until, max_fires), timeout)

    # -- namespaces -------------------------------------------------------------------------

    def set_namespace_policy(
        self, namespace: str, allowed_executors: Sequence[str], *, timeout: float | None = None
    ) -> NamespacePolicy:
        """Limits the executors the namespace's jobs may use to `allowed_executors` (the whole
        set; empty: no limit); needs the admin role in the namespace. Submits naming another
        executor then raise ExecutorNotAllowed; fires of jobs accepted before end FAILED.
        Returns the policy as stored. Raises PermissionDenied, InvalidArgument naming
        `allowed_executors[i]` for a name outside the executor-name format."""
        return self._call(rpcs.set_namespace_policy(namespace, allowed_executors), timeout)

    def get_namespace_policy(self, namespace: str, *, timeout: float | None = None) -> NamespacePolicy:
        """The namespace's policy (no allowed executors: no limit)."""
        return self._call(rpcs.get_namespace_policy(namespace), timeout)

    # -- the cluster (each needs read in every namespace) ----------------------------------

    def workers(self, *, timeout: float | None = None) -> WorkerList:
        """The workers, sorted by id: live ones (alive or leaving), and those dead or left
        within the coordinators' dead-worker retention; each with its last heartbeat, state
        and since when, and the shard leases it holds with their fencing tokens."""
        return self._call(rpcs.list_workers(), timeout)

    def worker(self, worker_id: str, *, timeout: float | None = None) -> WorkerStatus:
        """One worker as `workers` lists it. Raises WorkerNotFound."""
        return self._call(rpcs.get_worker(worker_id), timeout)

    def shard_map(self, *, timeout: float | None = None) -> ShardMapStatus:
        """The published shard map: its version, the leader replica and its token, and each
        shard's owner, lease holder, token, lease expiry and checkpoint lag."""
        return self._call(rpcs.get_shard_map(), timeout)

    def coordinators(self, *, timeout: float | None = None) -> CoordinatorList:
        """The coordinator replicas that are up, and which one leads since when."""
        return self._call(rpcs.list_coordinators(), timeout)

    # -- runs -------------------------------------------------------------------------------

    def get_run(self, run_id: str, *, timeout: float | None = None) -> Run:
        """Raises RunNotFound."""
        return self._call(rpcs.get_run(run_id), timeout)

    def runs(
        self,
        job_id: str,
        namespace: str = DEFAULT_NAMESPACE,
        page_size: int = 100,
        page_token: str = "",
        *,
        timeout: float | None = None,
    ) -> Page[Run]:
        """One page of the job's runs, newest first. Raises JobNotFound."""
        return self._call(rpcs.list_runs(job_id, namespace, page_size, page_token), timeout)

    def watch_runs(self, job_id: str = "", namespace: str = DEFAULT_NAMESPACE) -> Generator[tuple[Run, int], None, None]:
        """Each run of the job (every job of the namespace when `job_id` is empty) as it
        finishes, from now on, with how many runs the server dropped just before it because
        this reader fell behind; until the iterator is closed. Not retried: on UNAVAILABLE,
        watch again (runs finished meanwhile are in runs()). Raises JobNotFound."""
        stream = self._stub.WatchRuns(rpcs.watch_request(job_id, namespace), metadata=self._metadata)
        try:
            for message in stream:
                yield rpcs.run_event(message)
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.CANCELLED:
                return
            raise rpcs.error_from_rpc(error, rpcs.watch_not_found(job_id, namespace), target=self.target) from error
        finally:
            stream.cancel()

    def iter_runs(
        self, job_id: str, namespace: str = DEFAULT_NAMESPACE, page_size: int = 100, *, timeout: float | None = None
    ) -> Iterator[Run]:
        """Every run of the job, newest first, page after page."""
        token = ""
        while True:
            page = self.runs(job_id, namespace, page_size, token, timeout=timeout)
            yield from page.items
            token = page.next_page_token
            if not token:
                return


__all__ = ["Client"]
