"""`AsyncClient`: the asyncio Python client of a Hourglass cluster (one `grpc.aio` channel)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import grpc
import grpc.aio

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
from hourglass_core.tracing import aio_client_interceptors
from hourglass_pb.v1 import jobs_pb2_grpc

T = TypeVar("T")
JobList = list[Job]
WorkerList = list[WorkerStatus]
CoordinatorList = list[CoordinatorStatus]
TimeList = list[datetime]


class AsyncClient:
    """The asyncio twin of `hourglass.Client`: the same methods, as coroutines (`iter_jobs` and
    `iter_runs` are async iterators), the same retries, deadlines and errors.

    Create it in the event loop that uses it (gRPC binds the channel to that loop), e.g.
    `async with hourglass.AsyncClient() as client: ...`.
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
        traced = aio_client_interceptors() or None  # a client span per call when OTEL_* turn tracing on
        self._channel = (
            grpc.aio.secure_channel(target, credentials, options=channel_options, interceptors=traced)
            if credentials is not None
            else grpc.aio.insecure_channel(target, options=channel_options, interceptors=traced)
        )
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)

    # -- plumbing -----------------------------------------------------------------------------

    async def _call(self, rpc: Rpc[T], timeout: float | None) -> T:
        attempts = Attempts(self._retry, timeout or self._timeout, rpc.retry_on)
        method = getattr(self._stub, rpc.method)
        while True:
            try:
                response = await method(rpc.request, timeout=attempts.start(), metadata=self._metadata)
            except grpc.RpcError as error:  # grpc.aio.AioRpcError is one
                delay = attempts.failed(error.code(), rpcs.retry_after(error))
                if delay is None:
                    raise rpcs.error_from_rpc(
                        error, rpc.not_found, target=self.target, attempts=attempts.count
                    ) from error
                await asyncio.sleep(delay)
                continue
            return rpc.parse(response)

    async def close(self) -> None:
        """Closes the channel; calls in flight are cancelled. Idempotent."""
        await self._channel.close()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- jobs -------------------------------------------------------------------------------

    async def submit(self, spec: JobSpec, *, idempotent: bool = True, timeout: float | None = None) -> Job:
        """As `Client.submit`: durable before it returns; a random idempotency key is added
        unless the spec has one or `idempotent=False`, and only keyed submits are retried."""
        return await self._call(rpcs.submit(spec, idempotent), timeout)

    async def submit_many(
        self, specs: Sequence[JobSpec], *, idempotent: bool = True, timeout: float | None = None
    ) -> JobList:
        """As `Client.submit_many`: all or nothing, results in input order."""
        return await self._call(rpcs.submit_many(specs, idempotent), timeout)

    async def get(self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, timeout: float | None = None) -> Job:
        """Raises JobNotFound."""
        return await self._call(rpcs.get_job(job_id, namespace), timeout)

    async def list(
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
        """One page of matching jobs; `next_page_token` is empty on the last page."""
        rpc = rpcs.list_jobs(namespace, state, name_prefix, labels, page_size, page_token)
        return await self._call(rpc, timeout)

    async def iter_jobs(
        self,
        namespace: str = DEFAULT_NAMESPACE,
        state: JobState | None = None,
        name_prefix: str = "",
        labels: Mapping[str, str] | None = None,
        page_size: int = 100,
        *,
        timeout: float | None = None,
    ) -> AsyncIterator[Job]:
        """Every matching job, fetching page after page: `async for job in client.iter_jobs()`."""
        token = ""
        while True:
            page = await self.list(namespace, state, name_prefix, labels, page_size, token, timeout=timeout)
            for job in page.items:
                yield job
            token = page.next_page_token
            if not token:
                return

    async def cancel(self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, timeout: float | None = None) -> Job:
        """As `Client.cancel`. Raises JobNotFound."""
        return await self._call(rpcs.control("cancel", job_id, namespace), timeout)

    async def pause(
        self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, note: str = "", timeout: float | None = None
    ) -> Job:
        """As `Client.pause`. Raises JobNotFound, FailedPrecondition."""
        return await self._call(rpcs.control("pause", job_id, namespace, note), timeout)

    async def resume(self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, timeout: float | None = None) -> Job:
        """As `Client.resume`. Raises JobNotFound, FailedPrecondition."""
        return await self._call(rpcs.control("resume", job_id, namespace), timeout)

    async def preview_schedule(
        self,
        job_id: str | None = None,
        namespace: str = DEFAULT_NAMESPACE,
        *,
        trigger: Trigger | None = None,
        count: int = 10,
        after: datetime | None = None,
        timeout: float | None = None,
    ) -> SchedulePreview:
        """As `Client.preview_schedule`."""
        return await self._call(rpcs.preview_schedule(job_id, namespace, trigger, count, after), timeout)

    async def delete(self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, timeout: float | None = None) -> None:
        """As `Client.delete`. Raises JobNotFound, FailedPrecondition."""
        await self._call(rpcs.delete_job(job_id, namespace), timeout)

    async def trigger(
        self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, overlap: OverlapPolicy | None = None,
        timeout: float | None = None,
    ) -> tuple[str, datetime]:  # fmt: skip
        """As `Client.trigger`. Raises JobNotFound, FailedPrecondition."""
        return await self._call(rpcs.trigger_job(job_id, namespace, overlap), timeout)

    async def update(
        self, job_id: str, namespace: str = DEFAULT_NAMESPACE, *, version: int, changes: JobChanges,
        timeout: float | None = None,
    ) -> Job:  # fmt: skip
        """As `Client.update`."""
        return await self._call(rpcs.update_job(job_id, namespace, version, changes), timeout)

    async def backfill(
        self, job_id: str, since: datetime, until: datetime, namespace: str = DEFAULT_NAMESPACE, *,
        per_second: float = 0.0, timeout: float | None = None,
    ) -> TimeList:  # fmt: skip
        """As `Client.backfill`."""
        return await self._call(rpcs.backfill_job(job_id, namespace, since, until, per_second), timeout)

    async def explain(
        self, job_id: str, since: datetime, until: datetime | None = None, namespace: str = DEFAULT_NAMESPACE, *,
        max_fires: int = 100, timeout: float | None = None,
    ) -> Explanation:  # fmt: skip
        """As `Client.explain`."""
        return await self._call(rpcs.explain_job(job_id, namespace, since, until, max_fires), timeout)

    # -- namespaces -------------------------------------------------------------------------

    async def set_namespace_policy(
        self, namespace: str, allowed_executors: Sequence[str], *, timeout: float | None = None
    ) -> NamespacePolicy:
        """As `Client.set_namespace_policy`. Raises PermissionDenied, InvalidArgument."""
        return await self._call(rpcs.set_namespace_policy(namespace, allowed_executors), timeout)

    async def get_namespace_policy(self, namespace: str, *, timeout: float | None = None) -> NamespacePolicy:
        """As `Client.get_namespace_policy`."""
        return await self._call(rpcs.get_namespace_policy(namespace), timeout)

    async def workers(self, *, timeout: float | None = None) -> WorkerList:
        """As `Client.workers`."""
        return await self._call(rpcs.list_workers(), timeout)

    async def worker(self, worker_id: str, *, timeout: float | None = None) -> WorkerStatus:
        """As `Client.worker`. Raises WorkerNotFound."""
        return await self._call(rpcs.get_worker(worker_id), timeout)

    async def shard_map(self, *, timeout: float | None = None) -> ShardMapStatus:
        """As `Client.shard_map`."""
        return await self._call(rpcs.get_shard_map(), timeout)

    async def coordinators(self, *, timeout: float | None = None) -> CoordinatorList:
        """As `Client.coordinators`."""
        return await self._call(rpcs.list_coordinators(), timeout)

    # -- runs -------------------------------------------------------------------------------

    async def get_run(self, run_id: str, *, timeout: float | None = None) -> Run:
        """Raises RunNotFound."""
        return await self._call(rpcs.get_run(run_id), timeout)

    async def watch_runs(self, job_id: str = "", namespace: str = DEFAULT_NAMESPACE) -> AsyncGenerator[tuple[Run, int], None]:
        """As `Client.watch_runs`."""
        stream = self._stub.WatchRuns(rpcs.watch_request(job_id, namespace), metadata=self._metadata)
        try:
            async for message in stream:
                yield rpcs.run_event(message)
        except grpc.RpcError as error:
            if error.code() is grpc.StatusCode.CANCELLED:
                return
            raise rpcs.error_from_rpc(error, rpcs.watch_not_found(job_id, namespace), target=self.target) from error
        finally:
            stream.cancel()

    async def runs(
        self,
        job_id: str,
        namespace: str = DEFAULT_NAMESPACE,
        page_size: int = 100,
        page_token: str = "",
        *,
        timeout: float | None = None,
    ) -> Page[Run]:
        """One page of the job's runs, newest first. Raises JobNotFound."""
        return await self._call(rpcs.list_runs(job_id, namespace, page_size, page_token), timeout)

    async def iter_runs(
        self, job_id: str, namespace: str = DEFAULT_NAMESPACE, page_size: int = 100, *, timeout: float | None = None
    ) -> AsyncIterator[Run]:
        """Every run of the job, newest first, page after page."""
        token = ""
        while True:
            page = await self.runs(job_id, namespace, page_size, token, timeout=timeout)
            for run in page.items:
                yield run
            token = page.next_page_token
            if not token:
                return


__all__ = ["AsyncClient"]
