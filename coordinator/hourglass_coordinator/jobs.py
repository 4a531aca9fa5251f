"""The client API's logic, free of protobuf: validate, build, store, hint."""

from __future__ import annotations

import asyncio
import builtins
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hourglass_coordinator.read_cache import ReadCache
from hourglass_core import tracing
from hourglass_core.backfill import backfill_fires, occurrences
from hourglass_core.coalesce import Coalescer
from hourglass_core.errors import ExecutorNotAllowed, FailedPrecondition, HourglassError, InvalidArgument
from hourglass_core.explain import explain
from hourglass_core.firing import first_fire, first_fire_time, job_id_for_key, run_id_for, schedule_row_due, scheduled_fire
from hourglass_core.models import (
    Explanation,
    Fire,
    FireKind,
    Job,
    JobChanges,
    JobEvent,
    JobEventKind,
    JobFilter,
    JobSpec,
    JobState,
    NamespacePolicy,
    OverlapPolicy,
    Page,
    Run,
    SchedulePreview,
    Trigger,
)
from hourglass_core.preview import preview
from hourglass_core.sharding import shard_of
from hourglass_core.slo import RUNS_CHECKED, lateness_report
from hourglass_core.store.base import Created, Store
from hourglass_core.triggers import iso_utc, local_zone, next_fire
from hourglass_core.validation import validate_namespace, validate_policy, validate_spec

log = logging.getLogger(__name__)
MAX_PAGE = 1000
DEFAULT_PAGE = 100
MAX_BATCH = 10_000
EXPLAIN_MAX_RUNS = 20_000
MAX_NOTE = 1024
# How long a replica trusts a namespace policy it read. Submits are the hot path: reading the
# policy from the store on each would add a round trip to every submit. A policy narrowed
# through another replica may so let a submit through here for this long after; that job's
# fires are refused by the workers, which check the policy before every call (see
# hourglass_worker.policies). A policy set through this replica applies here at once.
POLICY_CACHE_S = 2.0
POLICY_CACHE_MAX = 10_000  # namespaces: past this many the cache starts again

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


def _fired_out(job: Job) -> bool:
    """Whether the job has had all the scheduled fires its max_fires allows."""
    return 0 < job.options.max_fires <= job.fired


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
        backfill_max_range: timedelta = timedelta(days=7),
        backfill_max_fires: int = 1000,
        backfill_rate: float = 10.0,
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
        self._backfill_max_range = backfill_max_range
        self._backfill_max_fires = backfill_max_fires
        self._backfill_rate = backfill_rate
        self._executors: set[str] | None = None  # as last read; the store only ever adds to them
        self._policies: dict[str, tuple[float, NamespacePolicy]] = {}  # by namespace, with when read
        self._policy_sets = 0  # policies set through this replica: a read begun before one is not cached
        # Single submits arriving while others are being written go to the store together.
        self._creates: Coalescer[None, tuple[Job, Fire | None], Created] = Coalescer(
            lambda _, jobs: store.create_jobs(jobs), max_items=32, max_flushing=16, name="creates"
        )

    async def _known_executors(self, force: bool = False) -> set[str]:
        """The executors workers have registered, read once and again only when `force`d (a
        spec names one not among them). Names are never removed, so the set read is never too
        wide; reading it on a timer put a table scan on the submit path every 2 s, and a scan
        waits out its whole timeout (10 s) for a node just killed and not yet convicted."""
        if force or self._executors is None:
            self._executors = await self._store.known_executors()
        return self._executors

    async def submit(self, specs: Sequence[JobSpec], field: str = "jobs") -> list[Created]:
        """Validates every spec first (one bad spec writes nothing), then stores them all."""
        if len(specs) > MAX_BATCH:
            raise InvalidArgument(field, f"at most {MAX_BATCH} jobs per batch")
        names = [field if len(specs) == 1 and field == "job" else f"{field}[{i}]" for i in range(len(specs))]
        refusals = [error for error in await self._refusals(specs, names) if error is not None]
        if refusals:  # an invalid spec before a refused executor, as the checks run
            raise min(refusals, key=lambda error: isinstance(error, ExecutorNotAllowed))
        if len(specs) == 1:
            now = self._clock()
            created = [await self._creates.call(None, self._new_job(specs[0], now))]
            await self._hint_created(created, now)
            return created
        return await self._store_new(specs)

    async def submit_each(self, specs: Sequence[JobSpec], field: str = "job") -> list[Created | HourglassError]:
        """Judges each spec alone (errors name `field`): the valid ones are stored together,
        the refused ones answer their error, in the order given. What SubmitJob would do to
        each, for callers that cannot refuse a whole batch for one bad spec (Kafka ingest).
        Raises what the store raises (Unavailable: nothing or some of the valid ones written)."""
        if len(specs) > MAX_BATCH:
            raise InvalidArgument(field, f"at most {MAX_BATCH} jobs per batch")
        refused = await self._refusals(specs, [field] * len(specs))
        valid = [spec for spec, error in zip(specs, refused, strict=True) if error is None]
        created = iter(await self._store_new(valid) if valid else [])
        return [next(created) if error is None else error for error in refused]

    async def _store_new(self, specs: Sequence[JobSpec]) -> list[Created]:
        now = self._clock()
        created = await self._store.create_jobs([self._new_job(spec, now) for spec in specs])
        await self._hint_created(created, now)
        return created

    async def _hint_created(self, created: Sequence[Created], now: datetime) -> None:
        fires = [
            scheduled_fire(c.job, c.job.next_fire_time)
            for c in created
            if c.created and c.job.next_fire_time is not None
        ]
        await self._hint_soon(fires, now)

    async def _refusals(self, specs: Sequence[JobSpec], names: Sequence[str]) -> list[HourglassError | None]:
        """Why each spec (`names`: their fields) would be refused: invalid, or an executor its
        namespace's policy does not allow; None where it would not. Policies are read only for
        the namespaces of valid specs."""
        executors = await self._known_executors()
        if any(spec.executor not in executors for spec in specs):
            executors = await self._known_executors(force=True)
        refused: list[HourglassError | None] = []
        for spec, name in zip(specs, names, strict=True):
            try:
                validate_spec(spec, known_executors=executors, max_params_bytes=self._max_params_bytes, field=name)
            except InvalidArgument as error:
                refused.append(error)
            else:
                refused.append(None)
        namespaces = sorted({spec.namespace for spec, error in zip(specs, refused, strict=True) if error is None})
        policies = dict(zip(namespaces, await asyncio.gather(*map(self._policy, namespaces)), strict=True))
        for i, (spec, name) in enumerate(zip(specs, names, strict=True)):
            why = policies[spec.namespace].refusal(spec.executor) if refused[i] is None else None
            if why is not None:
                refused[i] = ExecutorNotAllowed(f"{name}.executor", why)
        return refused

    async def _policy(self, namespace: str) -> NamespacePolicy:
        """The namespace's policy, as read at most POLICY_CACHE_S ago."""
        cached = self._policies.get(namespace)
        if cached is not None and time.monotonic() - cached[0] <= POLICY_CACHE_S:
            return cached[1]
        sets, read_at = self._policy_sets, time.monotonic()
        policy = await self._store.get_namespace_policy(namespace)
        if sets == self._policy_sets:  # else it may be older than the one set meanwhile
            if len(self._policies) >= POLICY_CACHE_MAX:
                self._policies.clear()
            self._policies[namespace] = (read_at, policy)
        return policy

    async def set_policy(self, namespace: str, allowed_executors: Sequence[str]) -> NamespacePolicy:
        """Limits the executors the namespace's jobs may use (none: no limit); returns the
        policy as stored. Applies to this replica's next submit at once; to the others' and
        the workers' within a few seconds."""
        policy = validate_policy(namespace, allowed_executors)
        try:
            await self._store.set_namespace_policy(policy)
        finally:  # also if the write failed: it may have landed
            self._policy_sets += 1
            self._policies.pop(namespace, None)
        return policy

    async def get_policy(self, namespace: str) -> NamespacePolicy:
        """The namespace's policy as stored (not cached: what an admin set is what they see)."""
        validate_namespace(namespace)
        return await self._store.get_namespace_policy(namespace)

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
            next_fire_time=due,
            traceparent=tracing.traceparent(),  # its runs join the submit's trace
        )
        return job, first_fire(job, now)

    async def get(self, namespace: str, job_id: str) -> Job:
        return await self._cache.job(namespace, job_id, lambda: self._store.get_job(namespace, job_id))

    async def get_reported(self, namespace: str, job_id: str) -> Job:
        """get, with a lateness SLO report for a job that has an SLO (its latest runs read)."""
        job = await self.get(namespace, job_id)
        slo = job.options.lateness_slo
        if slo is None:
            return job
        runs = await self.list_runs(namespace, job_id, RUNS_CHECKED, "")
        return replace(job, slo_report=lateness_report(runs.items, slo))

    async def list(self, namespace: str, flt: JobFilter, size: int, token: str, *, newest: bool = False) -> Page[Job]:
        """A page of the namespace's jobs: by id (ListJobs), or newest first (the dashboard)."""
        listing = self._store.list_jobs_newest if newest else self._store.list_jobs
        return await listing(namespace, flt, page_size(size), token)

    async def cancel(self, namespace: str, job_id: str) -> Job:
        job = await self._store.get_job(namespace, job_id)
        if job.state in (JobState.CANCELLED, JobState.COMPLETED):
            return job  # cancelling twice is harmless; a completed job has nothing to stop
        cancelled = await self._changed(job, JobState.CANCELLED, None)
        await self._halt(job.shard, namespace, job_id)
        await self._event(cancelled, JobEventKind.CANCELLED, self._clock())
        return cancelled

    async def pause(self, namespace: str, job_id: str, note: str = "") -> Job:
        """`note`: why, kept on the job (Job.note) until it is resumed."""
        if len(note) > MAX_NOTE:
            raise InvalidArgument("note", f"is longer than {MAX_NOTE} characters")
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.PAUSED:
            return job
        if job.state is not JobState.ACTIVE:
            raise FailedPrecondition(f"job {job_id} is {job.state.value} and cannot be paused")
        paused = await self._changed(job, JobState.PAUSED, None, note)
        await self._halt(job.shard, namespace, job_id)
        await self._event(paused, JobEventKind.PAUSED, self._clock(), note)
        return paused

    async def resume(self, namespace: str, job_id: str) -> Job:
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.ACTIVE:
            return job
        if job.state is not JobState.PAUSED:
            raise FailedPrecondition(f"job {job_id} is {job.state.value} and cannot be resumed")
        now = self._clock()
        due = next_fire(job.trigger, now - timedelta(microseconds=1))
        if due is None or _fired_out(job):
            return await self._changed(job, JobState.COMPLETED, None)
        fire = scheduled_fire(job, schedule_row_due(due, now))
        resumed = await self._changed(job, JobState.ACTIVE, fire)
        await self._event(resumed, JobEventKind.RESUMED, now)
        await self._hint_soon([fire], now)
        return resumed

    async def trigger(self, namespace: str, job_id: str, overlap: OverlapPolicy | None = None) -> Fire:
        """Writes a manual fire of the job due now (beside its schedule, which stays as it is)
        and hints it to its shard's owner; returns it. `overlap`: for this run in place of the
        job's policy. Refused for a cancelled job."""
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.CANCELLED:
            raise FailedPrecondition(f"job {job_id} is cancelled and cannot be triggered")
        now = self._clock()
        fire = Fire(due=now, namespace=namespace, job_id=job_id, shard=job.shard, kind=FireKind.MANUAL,
                    priority=job.priority, overlap=overlap)  # fmt: skip
        await self._store.put_fire(fire)
        await self._event(job, JobEventKind.TRIGGERED, now, run_id_for(namespace, job_id, fire.at, fire.attempt))
        await self._hint_soon([fire], now)
        return fire

    async def update(self, namespace: str, job_id: str, version: int, changes: JobChanges,
                     fixed: Mapping[str, str] | None = None) -> Job:  # fmt: skip
        """Changes the job's given fields if it is still at `version` (see UpdateJob in
        jobs.proto). `fixed`: values the caller gave for fields no update changes (namespace,
        executor, idempotency key): each must be empty or the job's. Validated as a submit
        is; nothing is written by a refused update."""
        if version <= 0:
            raise InvalidArgument("version", "is required: the version of the job as you read it (Job.version)")
        given = changes.given()
        if not given:
            raise InvalidArgument("update_mask", "names no field to change")
        job = await self._store.get_job(namespace, job_id)
        for field, value in (fixed or {}).items():
            if value and value != getattr(job, field):
                raise InvalidArgument(f"job.{field}", "cannot be changed by an update")
        if job.state is JobState.CANCELLED:
            raise FailedPrecondition(f"job {job_id} is cancelled and cannot be updated")
        if version != job.version:
            raise FailedPrecondition(f"version {version} is stale: job {job_id} is at version {job.version}; read it again")
        updated = replace(job, **given, version=job.version + 1)  # type: ignore[arg-type]
        # The executor is not updatable, so the namespace's policy is not checked again here:
        # a job whose executor the policy no longer allows has its fires refused by the workers.
        validate_spec(updated.spec, known_executors=await self._known_executors(), max_params_bytes=self._max_params_bytes)
        now = self._clock()
        # The next fire, from the trigger (new or not) after now: a fire workers prepared
        # under the old spec is dropped by the halt below, and this one (perhaps at the very
        # same time) runs under the new spec. A paused job stays paused: resume computes it.
        if changes.trigger is not None:
            due = first_fire_time(changes.trigger, now)
            if due is None:
                raise InvalidArgument("job.trigger", f"never fires after {now.isoformat()}")
        else:
            due = next_fire(job.trigger, now - timedelta(microseconds=1))
        fire: Fire | None = None
        if due is not None and job.state is not JobState.PAUSED and not _fired_out(updated):
            updated = replace(updated, state=JobState.ACTIVE, next_fire_time=schedule_row_due(due, now))
            fire = scheduled_fire(updated, schedule_row_due(due, now))
        try:
            stored = await self._store.update_job(updated, job, fire)
        finally:
            self._cache.forget_job(namespace, job_id)
            await self._announce_change(job.shard, namespace, job_id)
        await self._halt(job.shard, namespace, job_id)  # fires prepared under the old spec do not run
        await self._event(stored, JobEventKind.UPDATED, now, ", ".join(given), previous_trigger=job.trigger)
        if fire is not None:
            await self._hint_soon([fire], now)
        return stored

    async def backfill(self, namespace: str, job_id: str, since: datetime, until: datetime,
                       per_second: float = 0.0) -> builtins.list[Fire]:  # fmt: skip
        """Writes a manual fire for each time the job's trigger fires in [since, until),
        released `per_second` a second (0: the configured rate, also its maximum); returns
        them. A time that ran already, or that another backfill covered, runs no more (see
        backfill.backfill_fires). Refused for a cancelled job and a range in the future."""
        if until <= since:
            raise InvalidArgument("until", "must be after since")
        now = self._clock()
        if until > now:
            raise InvalidArgument("until", "must not be in the future: the schedule runs those fires")
        if until - since > self._backfill_max_range:
            raise InvalidArgument("until", f"the range is longer than the maximum of {self._backfill_max_range}")
        if not 0 <= per_second <= self._backfill_rate:
            raise InvalidArgument("per_second", f"must be between 0 and {self._backfill_rate:g} (0: {self._backfill_rate:g})")
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.CANCELLED:
            raise FailedPrecondition(f"job {job_id} is cancelled and cannot be backfilled")
        times = occurrences(job, since, until, self._backfill_max_fires)
        fires = backfill_fires(job, times, now, per_second or self._backfill_rate)
        await self._store.put_fires(fires)
        detail = f"{len(fires)} fires in [{iso_utc(since)}, {iso_utc(until)})"
        await self._event(job, JobEventKind.BACKFILLED, now, detail)
        await self._hint_soon(fires, now)
        return fires

    async def explain(self, namespace: str, job_id: str, since: datetime, until: datetime | None,
                      limit: int) -> Explanation:  # fmt: skip
        """What became of every fire the job's trigger expected in [since, until) (default:
        until now): see explain.explain. Reads only."""
        now = self._clock()
        until = until or now
        if until <= since:
            raise InvalidArgument("until", "must be after since")
        job = await self._store.get_job(namespace, job_id)
        events = await self._store.job_events(namespace, job_id, job.created_at - timedelta(seconds=1), until)
        runs: builtins.list[Run] = []
        token = ""
        while len(runs) < EXPLAIN_MAX_RUNS:  # newest first: stop once past `since`
            page = await self._store.list_runs(namespace, job_id, MAX_PAGE, token)
            runs.extend(r for r in page.items if r.due < until)
            token = page.next_page_token
            if not token or not page.items or page.items[-1].due < since:
                break
        return explain(job, runs, events, since, until, now, limit)

    async def _event(self, job: Job, kind: JobEventKind, at: datetime, detail: str = "",
                     previous_trigger: Trigger | None = None) -> None:  # fmt: skip
        """Keeps what was done to the job, for ExplainJob (best effort: the change itself is
        durable already, and a lost event only makes an explanation vaguer)."""
        event = JobEvent(job.namespace, job.id, at, kind, job.version, detail, previous_trigger)
        try:
            await self._store.record_job_event(event)
        except HourglassError as error:
            log.warning("job %s: its %s event was not kept: %s", job.id, kind.value, error)

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

    async def _changed(self, job: Job, state: JobState, fire: Fire | None, note: str = "") -> Job:
        """Stores the job's new state (and note, cleared unless given); this replica forgets
        its cached copy at once (also if the write failed: it may have landed), the others
        when they hear of the change."""
        try:
            return await self._store.set_job_state(job.namespace, job.id, state, fire, note)
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
