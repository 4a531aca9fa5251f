"""The coordinator's read cache: what it keeps, for how long, and what makes it forget."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime

from hourglass_coordinator.read_cache import ReadCache, settled
from hourglass_core.models import Job, JobState, OnceTrigger, Page, Run, RunStatus

T0 = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
JOB = Job(namespace="ns", id="j1", name="n", executor="echo", trigger=OnceTrigger(at=T0), priority=0,
          params=None, options=None, labels={}, idempotency_key="", state=JobState.ACTIVE,  # type: ignore[arg-type]
          created_at=T0, shard=0)  # fmt: skip
RUN = Run("ns", "j1", "r1", T0, 1, RunStatus.RUNNING)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Store:
    """Counts loads; answers what it currently holds."""

    def __init__(self) -> None:
        self.job, self.run, self.loads = JOB, RUN, 0

    async def get_job(self) -> Job:
        self.loads += 1
        return self.job

    async def get_run(self) -> Run:
        self.loads += 1
        return self.run

    async def list_runs(self) -> Page[Run]:
        self.loads += 1
        return Page([self.run], "")


async def test_a_job_is_served_from_memory_for_the_ttl_then_read_again() -> None:
    clock, store = Clock(), Store()
    cache = ReadCache(1.0, clock=clock)
    assert await cache.job("ns", "j1", store.get_job) == JOB
    store.job = replace(JOB, running=True)
    clock.now = 0.9
    assert (await cache.job("ns", "j1", store.get_job)).running is False  # cached
    clock.now = 1.1
    assert (await cache.job("ns", "j1", store.get_job)).running is True
    assert store.loads == 2


async def test_forgetting_a_job_drops_it_and_its_pages_of_runs() -> None:
    store = Store()
    cache = ReadCache(60.0, clock=Clock())
    await cache.job("ns", "j1", store.get_job)
    await cache.runs_page("ns", "j1", 100, "", store.list_runs)
    await cache.runs_page("ns", "j2", 100, "", store.list_runs)
    cache.forget_job("ns", "j1")
    store.job = replace(JOB, state=JobState.CANCELLED)
    assert (await cache.job("ns", "j1", store.get_job)).state is JobState.CANCELLED
    await cache.runs_page("ns", "j1", 100, "", store.list_runs)
    await cache.runs_page("ns", "j2", 100, "", store.list_runs)  # another job's page stays
    assert store.loads == 5


async def test_only_finished_runs_are_cached_and_for_their_own_ttl() -> None:
    clock, store = Clock(), Store()
    cache = ReadCache(1.0, finished_ttl=60.0, clock=clock)
    await cache.run("r1", store.get_run)
    await cache.run("r1", store.get_run)
    assert store.loads == 2  # RUNNING: read each time, so a result shows as soon as it is written
    store.run = replace(RUN, status=RunStatus.SUCCEEDED)
    assert (await cache.run("r1", store.get_run)).status is RunStatus.SUCCEEDED
    clock.now = 59.0
    assert (await cache.run("r1", store.get_run)).status is RunStatus.SUCCEEDED
    assert store.loads == 3


async def test_a_read_under_way_when_the_job_changes_is_not_cached() -> None:
    store, started, release = Store(), asyncio.Event(), asyncio.Event()

    async def slow_old_read() -> Job:
        started.set()
        await release.wait()
        return JOB  # read before the change landed

    cache = ReadCache(60.0, clock=Clock())
    reading = asyncio.create_task(cache.job("ns", "j1", slow_old_read))
    await started.wait()
    store.job = replace(JOB, state=JobState.PAUSED)
    cache.forget_job("ns", "j1")
    release.set()
    assert (await reading).state is JobState.ACTIVE
    assert (await cache.job("ns", "j1", store.get_job)).state is JobState.PAUSED


async def test_a_ttl_of_zero_turns_the_cache_off() -> None:
    store = Store()
    cache = ReadCache(0, clock=Clock())
    store.run = replace(RUN, status=RunStatus.SUCCEEDED)
    for _ in range(2):
        await cache.job("ns", "j1", store.get_job)
        await cache.run("r1", store.get_run)
        await cache.runs_page("ns", "j1", 10, "", store.list_runs)
    assert store.loads == 6


def test_a_job_is_settled_once_nothing_more_can_happen_to_it() -> None:
    done = replace(JOB, state=JobState.COMPLETED, last_status=RunStatus.SUCCEEDED)
    assert settled(done)
    assert settled(replace(JOB, state=JobState.CANCELLED, last_status=RunStatus.FAILED))  # retries dropped
    assert not settled(replace(done, running=True))
    assert not settled(replace(done, last_status=RunStatus.FAILED))  # a retry may follow
    assert not settled(replace(done, last_status=None))  # its run has not ended yet
    assert not settled(replace(done, state=JobState.ACTIVE))
    assert not settled(replace(done, state=JobState.PAUSED))


async def test_a_settled_job_and_its_pages_of_runs_are_kept_as_long_as_finished_runs() -> None:
    clock, store = Clock(), Store()
    cache = ReadCache(1.0, finished_ttl=60.0, clock=clock)
    store.job = replace(JOB, state=JobState.COMPLETED, last_status=RunStatus.SUCCEEDED)
    store.run = replace(RUN, status=RunStatus.SUCCEEDED)
    await cache.job("ns", "j1", store.get_job)
    await cache.runs_page("ns", "j1", 100, "", store.list_runs)
    clock.now = 59.0
    await cache.job("ns", "j1", store.get_job)
    await cache.runs_page("ns", "j1", 100, "", store.list_runs)
    assert store.loads == 2
    clock.now = 61.0
    await cache.job("ns", "j1", store.get_job)
    assert store.loads == 3


async def test_pages_of_a_job_not_known_to_be_settled_are_kept_for_the_short_ttl() -> None:
    clock, store = Clock(), Store()
    cache = ReadCache(1.0, finished_ttl=60.0, clock=clock)
    store.run = replace(RUN, status=RunStatus.SUCCEEDED)
    await cache.runs_page("ns", "j1", 100, "", store.list_runs)  # the job was not read: maybe more runs come
    clock.now = 1.5
    await cache.runs_page("ns", "j1", 100, "", store.list_runs)
    assert store.loads == 2
