"""The client API's logic, free of protobuf: validate, build, store, hint."""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta

from hourglass_coordinator.read_cache import ReadCache
from hourglass_core.coalesce import Coalescer
from hourglass_core.errors import FailedPrecondition, InvalidArgument
from hourglass_core.firing import first_fire_time, job_id_for_key, schedule_row_due
from hourglass_core.models import (
    Fire,
    FireKind,
    Job,
    JobFilter,
    JobSpec,
    JobState,
    Page,
    Run,
    SchedulePreview,
    Trigger,
)
from hourglass_core.preview import preview
from hourglass_core.sharding import shard_of
from hourglass_core.store.base import Created, Store
from hourglass_core.triggers import local_zone, next_fire
from hourglass_core.validation import validate_spec

MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_BATCH = 10_000
EXECUTORS_REFRESH_S = 2.0

Clock = Callable[[], datetime]
# Called with fires just written, so those due soon reach their shard's owner at once.
Hinter = Callable[[Sequence[Fire]], Awaitable[None]]
# Called with (shard, namespace, job id) of a job just paused or cancelled, so its shard's
# owner drops the fires it prepared ahead of time.
Halter = Callable[[int, str, str], Awaitable[None]]
# Called with (shard, namespace, job id) of a job whose state was just changed, so the other
# replicas forget what they cached of it.
Announcer = Callable[[int, str, str], Awaitable[None]]


async def _nothing(shard: int, namespace: str, job_id: str) -> None:
    return None


def utcnow() -> datetime:
    return datetime.now(UTC)


def page_size(requested: int) -> int:
    if requested > MAX_PAGE:
        raise InvalidArgument("page_size", f"must be at most {MAX_PAGE}")
    return requested or DEFAULT_PAGE


class JobsApi:
    def __init__(
        self,
        store: Store,
        *,
        num_shards: int,
        max_params_bytes: int,
        hint: Hinter,
        halt: Halter = _nothing,
        announce_change: Announcer = _nothing,
        cache: ReadCache | None = None,
        clock: Clock = utcnow,
        hint_within: timedelta = timedelta(seconds=3),
    ) -> None:
        self._store = store
        self._num_shards = num_shards
        self._max_params_bytes = max_params_bytes
        self._hint = hint
        self._halt = halt
        self._announce_change = announce_change
        self._cache = cache or ReadCache(0)
        self._clock = clock
        # Workers read `lookahead` ahead of time; only a fire due sooner than that could be
        # missed by their next read, so only those are hinted (a far-future hint would be
        # claimed and held in memory until it is due).
        self._hint_within = hint_within
        self._executors: set[str] = set()
        self._executors_at = 0.0
        # Single submits arriving while others are being written go to the store together.
        self._creates: Coalescer[None, tuple[Job, Fire | None], Created] = Coalescer(
            lambda _, jobs: store.create_jobs(jobs), max_items=32, max_flushing=16, name="creates"
        )

    async def _known_executors(self, force: bool = False) -> set[str]:
        if force or time.monotonic() - self._executors_at > EXECUTORS_REFRESH_S:
            self._executors = await self._store.known_executors()
            self._executors_at = time.monotonic()
        return self._executors

    async def submit(self, specs: Sequence[JobSpec], field: str = "jobs") -> list[Created]:
        """Validates every spec first (one bad spec writes nothing), then stores them all."""
        if len(specs) > MAX_BATCH:
            raise InvalidArgument(field, f"at most {MAX_BATCH} jobs per batch")
        executors = await self._known_executors()
        if any(spec.executor not in executors for spec in specs):
            executors = await self._known_executors(force=True)
        for i, spec in enumerate(specs):
            name = field if len(specs) == 1 and field == "job" else f"{field}[{i}]"
            validate_spec(
                spec,
                known_executors=executors,
                max_params_bytes=self._max_params_bytes,
                field=name,
            )
        now = self._clock()
        if len(specs) == 1:
            created = [await self._creates.call(None, self._new_job(specs[0], now))]
        else:
            created = await self._store.create_jobs([self._new_job(spec, now) for spec in specs])
        fires = [
            Fire(
                due=c.job.next_fire_time,
                namespace=c.job.namespace,
                job_id=c.job.id,
                shard=c.job.shard,
                priority=c.job.priority,
            )
            for c in created
            if c.created and c.job.next_fire_time is not None
        ]
        await self._hint_soon(fires, now)
        return created

    async def _hint_soon(self, fires: Sequence[Fire], now: datetime) -> None:
        """Hints the fires due within `hint_within` (see __init__)."""
        soon = [fire for fire in fires if fire.due <= now + self._hint_within]
        if soon:
            await self._hint(soon)

    def _new_job(self, spec: JobSpec, now: datetime) -> tuple[Job, Fire | None]:
        key = spec.idempotency_key
        job_id = job_id_for_key(spec.namespace, key) if key else str(uuid.uuid4())
        shard = shard_of(job_id, self._num_shards)
        due = first_fire_time(spec.trigger, now)
        row_due = None if due is None else schedule_row_due(due, now)
        job = Job(
            namespace=spec.namespace,
            id=job_id,
            name=spec.name,
            executor=spec.executor,
            trigger=spec.trigger,
            priority=spec.priority,
            params=spec.params,
            options=spec.options,
            labels=dict(spec.labels),
            idempotency_key=spec.idempotency_key,
            state=JobState.ACTIVE if due is not None else JobState.COMPLETED,
            created_at=now,
            shard=shard,
            next_fire_time=row_due,
        )
        fire = (
            None
            if row_due is None
            else Fire(due=row_due, namespace=spec.namespace, job_id=job_id, shard=shard, priority=spec.priority)
        )
        return job, fire

    async def get(self, namespace: str, job_id: str) -> Job:
        return await self._cache.job(namespace, job_id, lambda: self._store.get_job(namespace, job_id))

    async def list(self, namespace: str, flt: JobFilter, size: int, token: str) -> Page[Job]:
        return await self._store.list_jobs(namespace, flt, page_size(size), token)

    async def cancel(self, namespace: str, job_id: str) -> Job:
        job = await self._store.get_job(namespace, job_id)
        if job.state in (JobState.CANCELLED, JobState.COMPLETED):
            return job  # cancelling twice is harmless; a completed job has nothing to stop
        cancelled = await self._changed(job, JobState.CANCELLED, None)
        await self._halt(job.shard, namespace, job_id)
        return cancelled

    async def pause(self, namespace: str, job_id: str) -> Job:
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.PAUSED:
            return job
        if job.state is not JobState.ACTIVE:
            raise FailedPrecondition(f"job {job_id} is {job.state.value} and cannot be paused")
        paused = await self._changed(job, JobState.PAUSED, None)
        await self._halt(job.shard, namespace, job_id)
        return paused

    async def resume(self, namespace: str, job_id: str) -> Job:
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.ACTIVE:
            return job
        if job.state is not JobState.PAUSED:
            raise FailedPrecondition(f"job {job_id} is {job.state.value} and cannot be resumed")
        now = self._clock()
        due = next_fire(job.trigger, now - timedelta(microseconds=1))
        if due is None:
            return await self._changed(job, JobState.COMPLETED, None)
        fire = Fire(
            due=schedule_row_due(due, now),
            namespace=namespace,
            job_id=job_id,
            shard=job.shard,
            priority=job.priority,
        )
        resumed = await self._changed(job, JobState.ACTIVE, fire)
        await self._hint_soon([fire], now)
        return resumed

    async def trigger(self, namespace: str, job_id: str) -> Fire:
        """Writes a manual fire of the job due now (beside its schedule, which stays as it is)
        and hints it to its shard's owner; returns it. Refused for a cancelled job."""
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.CANCELLED:
            raise FailedPrecondition(f"job {job_id} is cancelled and cannot be triggered")
        now = self._clock()
        fire = Fire(due=now, namespace=namespace, job_id=job_id, shard=job.shard, kind=FireKind.MANUAL,
                    priority=job.priority)  # fmt: skip
        await self._store.put_fire(fire)
        await self._hint_soon([fire], now)
        return fire

    async def delete(self, namespace: str, job_id: str) -> None:
        """Removes a cancelled or completed job; an active or paused one must be cancelled first."""
        job = await self._store.get_job(namespace, job_id)
        if job.state not in (JobState.CANCELLED, JobState.COMPLETED):
            raise FailedPrecondition(f"job {job_id} is {job.state.value}: cancel it before deleting it")
        try:
            await self._store.delete_job(namespace, job_id)
        finally:
            self._cache.forget_job(namespace, job_id)
            await self._announce_change(job.shard, namespace, job_id)

    async def _changed(self, job: Job, state: JobState, fire: Fire | None) -> Job:
        """Stores the job's new state; this replica forgets its cached copy at once (also if
        the write failed: it may have landed), the others when they hear of the change."""
        try:
            return await self._store.set_job_state(job.namespace, job.id, state, fire)
        finally:
            self._cache.forget_job(job.namespace, job.id)
            await self._announce_change(job.shard, job.namespace, job.id)

    async def preview_job(self, namespace: str, job_id: str, count: int, after: datetime | None) -> SchedulePreview:
        """An active job's fires from its next one on (or after `after`, if later); a paused
        job's as if resumed now; none for a cancelled or completed job."""
        job = await self.get(namespace, job_id)
        resumed_from = self._clock() - timedelta(microseconds=1)  # as resume computes it
        nxt = job.next_fire_time
        if job.state is JobState.ACTIVE and nxt is not None and (after is None or after < nxt):
            return preview(job.trigger, nxt, count, first=nxt)
        if job.state in (JobState.ACTIVE, JobState.PAUSED):
            return preview(job.trigger, after or resumed_from, count)
        return SchedulePreview([], local_zone(job.trigger).key)

    def preview_trigger(self, trigger: Trigger, count: int, after: datetime | None) -> SchedulePreview:
        """A trigger's fires after `after` (default now); INVALID_ARGUMENT if it has none."""
        after = after or self._clock()
        found = preview(trigger, after, count)
        if not found.fires:
            raise InvalidArgument("trigger", f"never fires after {after.isoformat()}")
        return found

    async def get_run(self, run_id: str) -> Run:
        return await self._cache.run(run_id, lambda: self._store.get_run(run_id))

    async def list_runs(self, namespace: str, job_id: str, size: int, token: str) -> Page[Run]:
        size = page_size(size)
        def read() -> Awaitable[Page[Run]]:
            return self._runs_page(namespace, job_id, size, token)

        return await self._cache.runs_page(namespace, job_id, size, token, read)

    async def _runs_page(self, namespace: str, job_id: str, size: int, token: str) -> Page[Run]:
        page = await self._store.list_runs(namespace, job_id, size, token)
        if not page.items and not token:
            await self._store.get_job(namespace, job_id)  # NOT_FOUND for an unknown job
        return page
