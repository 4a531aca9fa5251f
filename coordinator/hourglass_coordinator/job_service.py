"""The JobService servicer: protobuf in, JobsApi call, protobuf out. No logic of its own."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import grpc

from hourglass_coordinator.cluster_api import ClusterApi
from hourglass_coordinator.jobs import JobsApi, utcnow
from hourglass_coordinator.run_watch import RunWatch
from hourglass_core import cluster_wire, rich_status, wire
from hourglass_core.errors import HourglassError, InvalidArgument
from hourglass_core.firing import run_id_for
from hourglass_core.models import DEFAULT_NAMESPACE, JobFilter
from hourglass_core.preview import preview_count
from hourglass_core.store.base import Created
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_pb.v1 import jobs_pb2_grpc

log = logging.getLogger(__name__)
R = TypeVar("R")
Handler = Callable[[Any, Any, grpc.aio.ServicerContext], Awaitable[R]]


def grpc_errors(handler: Handler[R]) -> Handler[R]:
    """Turns domain errors into their status (with details: see rich_status); unexpected ones
    into INTERNAL, logged."""

    @functools.wraps(handler)
    async def wrapped(self: Any, request: Any, context: grpc.aio.ServicerContext) -> R:
        try:
            return await handler(self, request, context)
        except HourglassError as error:
            await context.abort_with_status(rich_status.for_error(error))
        except Exception:
            log.exception("%s failed", handler.__name__)
            await context.abort(grpc.StatusCode.INTERNAL, f"{handler.__name__} failed; see server log")
        raise AssertionError("unreachable: abort raises")

    return wrapped


def _namespace(value: str) -> str:
    return value or DEFAULT_NAMESPACE


def _created(c: Created) -> pb.SubmitJobResponse:
    return pb.SubmitJobResponse(job=wire.job_to_pb(c.job), created=c.created)


class JobService(jobs_pb2_grpc.JobServiceServicer):  # type: ignore[misc]  # generated, untyped
    def __init__(self, api: JobsApi, cluster: ClusterApi, watch: RunWatch | None = None) -> None:
        self._api = api
        self._cluster = cluster
        self._watch = watch

    async def WatchRuns(self, request: pb.WatchRunsRequest, context: grpc.aio.ServicerContext) -> AsyncIterator[pb.RunEvent]:
        namespace = _namespace(request.namespace)
        if self._watch is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "WatchRuns is not served here")
            return
        try:
            if request.job_id:
                await self._api.get(namespace, request.job_id)  # NOT_FOUND for an unknown job
        except HourglassError as error:
            await context.abort_with_status(rich_status.for_error(error))
        async for run, dropped in self._watch.watch(namespace, request.job_id):
            yield pb.RunEvent(run=wire.run_to_pb(run), dropped_before=dropped)

    @grpc_errors
    async def SubmitJob(self, request: pb.SubmitJobRequest, context: grpc.aio.ServicerContext) -> pb.SubmitJobResponse:
        if not request.HasField("job"):
            raise InvalidArgument("job", "is required")
        spec = wire.spec_from_pb(request.job, utcnow(), "job")
        [created] = await self._api.submit([spec], field="job")
        return _created(created)

    @grpc_errors
    async def SubmitJobs(self, request: pb.SubmitJobsRequest, context: grpc.aio.ServicerContext) -> pb.SubmitJobsResponse:
        now = utcnow()
        specs = [wire.spec_from_pb(job, now, f"jobs[{i}]") for i, job in enumerate(request.jobs)]
        created = await self._api.submit(specs, field="jobs")
        return pb.SubmitJobsResponse(results=[_created(c) for c in created])

    @grpc_errors
    async def GetJob(self, request: pb.GetJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        return wire.job_to_pb(await self._api.get_reported(_namespace(request.namespace), request.id))

    @grpc_errors
    async def ListJobs(self, request: pb.ListJobsRequest, context: grpc.aio.ServicerContext) -> pb.ListJobsResponse:
        flt = JobFilter(
            state=wire.job_state_from_pb(request.state),
            name_prefix=request.name_prefix,
            labels=dict(request.labels),
        )
        page = await self._api.list(_namespace(request.namespace), flt, request.page_size, request.page_token)
        return pb.ListJobsResponse(
            jobs=[wire.job_to_pb(job) for job in page.items], next_page_token=page.next_page_token
        )

    @grpc_errors
    async def CancelJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.Job:
        return wire.job_to_pb(await self._api.cancel(_namespace(request.namespace), request.id))

    @grpc_errors
    async def PauseJob(self, request: pb.PauseJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        return wire.job_to_pb(await self._api.pause(_namespace(request.namespace), request.id, request.note))

    @grpc_errors
    async def ResumeJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.Job:
        return wire.job_to_pb(await self._api.resume(_namespace(request.namespace), request.id))

    @grpc_errors
    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        if not request.run_id:
            raise InvalidArgument("run_id", "must not be empty")
        return wire.run_to_pb(await self._api.get_run(request.run_id))

    @grpc_errors
    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        if not request.job_id:
            raise InvalidArgument("job_id", "must not be empty")
        page = await self._api.list_runs(
            _namespace(request.namespace), request.job_id, request.page_size, request.page_token
        )
        return pb.ListRunsResponse(
            runs=[wire.run_to_pb(run) for run in page.items], next_page_token=page.next_page_token
        )

    @grpc_errors
    async def PreviewSchedule(
        self, request: pb.PreviewScheduleRequest, context: grpc.aio.ServicerContext
    ) -> pb.PreviewScheduleResponse:
        count = preview_count(request.count)
        after = wire.from_ts(request.after, request.HasField("after"))
        target = request.WhichOneof("target")
        if target == "job":
            if not request.job.id:
                raise InvalidArgument("job.id", "must not be empty")
            found = await self._api.preview_job(_namespace(request.job.namespace), request.job.id, count, after)
        elif target == "trigger":
            found = self._api.preview_trigger(wire.trigger_from_pb(request.trigger, utcnow()), count, after)
        else:
            raise InvalidArgument("target", "one of job or trigger is required")
        return pb.PreviewScheduleResponse(
            fires=[wire.scheduled_fire_to_pb(f) for f in found.fires], timezone=found.timezone
        )

    @grpc_errors
    async def DeleteJob(self, request: pb.JobRef, context: grpc.aio.ServicerContext) -> pb.DeleteJobResponse:
        _require_id(request.id)
        await self._api.delete(_namespace(request.namespace), request.id)
        return pb.DeleteJobResponse()

    @grpc_errors
    async def TriggerJob(self, request: pb.TriggerJobRequest, context: grpc.aio.ServicerContext) -> pb.TriggerJobResponse:
        _require_id(request.id)
        overlap = wire.overlap_from_pb(request.overlap_policy)
        fire = await self._api.trigger(_namespace(request.namespace), request.id, overlap)
        run_id = run_id_for(fire.namespace, fire.job_id, fire.at, fire.attempt)
        return pb.TriggerJobResponse(run_id=run_id, due=wire.ts(fire.due))

    @grpc_errors
    async def UpdateJob(self, request: pb.UpdateJobRequest, context: grpc.aio.ServicerContext) -> pb.Job:
        _require_id(request.id)
        spec = request.job
        fixed = {"namespace": spec.namespace, "executor": spec.executor, "idempotency_key": spec.idempotency_key}
        changes = wire.changes_from_pb(request, utcnow())
        job = await self._api.update(_namespace(request.namespace), request.id, request.version, changes, fixed)
        return wire.job_to_pb(job)

    @grpc_errors
    async def BackfillJob(self, request: pb.BackfillJobRequest, context: grpc.aio.ServicerContext) -> pb.BackfillJobResponse:
        _require_id(request.id)
        since, until = _range(request)
        if until is None:
            raise InvalidArgument("until", "is required")
        fires = await self._api.backfill(_namespace(request.namespace), request.id, since, until, request.per_second)
        out = pb.BackfillJobResponse(occurrences=[wire.ts(f.at) for f in fires])
        if fires:
            out.last_release.CopyFrom(wire.ts(fires[-1].due))
        return out

    @grpc_errors
    async def ExplainJob(self, request: pb.ExplainJobRequest, context: grpc.aio.ServicerContext) -> pb.ExplainJobResponse:
        _require_id(request.id)
        since, until = _range(request)
        limit = preview_count(request.max_fires or EXPLAIN_DEFAULT, "max_fires")
        found = await self._api.explain(_namespace(request.namespace), request.id, since, until, limit)
        return pb.ExplainJobResponse(
            fires=[wire.explained_fire_to_pb(f) for f in found.fires],
            events=[wire.job_event_to_pb(e) for e in found.events],
            truncated=found.truncated,
        )


    @grpc_errors
    async def SetNamespacePolicy(
        self, request: pb.SetNamespacePolicyRequest, context: grpc.aio.ServicerContext
    ) -> pb.NamespacePolicy:
        policy = await self._api.set_policy(_namespace(request.namespace), list(request.allowed_executors))
        return wire.policy_to_pb(policy)

    @grpc_errors
    async def GetNamespacePolicy(
        self, request: pb.GetNamespacePolicyRequest, context: grpc.aio.ServicerContext
    ) -> pb.NamespacePolicy:
        return wire.policy_to_pb(await self._api.get_policy(_namespace(request.namespace)))

    @grpc_errors
    async def ListWorkers(self, request: pb.ListWorkersRequest, context: grpc.aio.ServicerContext) -> pb.ListWorkersResponse:
        return pb.ListWorkersResponse(workers=[cluster_wire.worker_to_pb(w) for w in await self._cluster.workers()])

    @grpc_errors
    async def GetWorker(self, request: pb.GetWorkerRequest, context: grpc.aio.ServicerContext) -> pb.Worker:
        return cluster_wire.worker_to_pb(await self._cluster.worker(request.id))

    @grpc_errors
    async def GetShardMap(self, request: pb.GetShardMapRequest, context: grpc.aio.ServicerContext) -> pb.ShardMapStatus:
        return cluster_wire.shard_map_to_pb(await self._cluster.shard_map())

    @grpc_errors
    async def ListCoordinators(
        self, request: pb.ListCoordinatorsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListCoordinatorsResponse:
        coordinators = await self._cluster.coordinators()
        return pb.ListCoordinatorsResponse(coordinators=[cluster_wire.coordinator_to_pb(c) for c in coordinators])


EXPLAIN_DEFAULT = 100


def _require_id(job_id: str) -> None:
    if not job_id:
        raise InvalidArgument("id", "must not be empty")


def _range(request: pb.BackfillJobRequest | pb.ExplainJobRequest) -> tuple[datetime, datetime | None]:
    since = wire.from_ts(request.since, request.HasField("since"))
    if since is None:
        raise InvalidArgument("since", "is required")
    return since, wire.from_ts(request.until, request.HasField("until"))
