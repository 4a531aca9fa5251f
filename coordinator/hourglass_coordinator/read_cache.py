"""A coordinator's cache of recent reads: GetJob, ListRuns and GetRun answered from memory.

Hourglass serves far more reads than writes, and a read from Cassandra costs it about half a
millisecond of CPU and the caller a few milliseconds. What is cached, and for how long:

- a finished run, a settled job (cancelled or completed, no run going, no retry to come) and
  the pages of a settled job's runs (`finished_ttl`, 60 s by default): they no longer change;
- any other job, and a page of its runs (`ttl`, 1 s by default): they change as the job's runs
  start and end and its schedule moves (written by workers), so a read may be that much behind.

A job's state changed through the API (cancel, pause, resume) is never served stale: the
replica that changes it forgets the job at once and announces the change to the others (see
`WorkerStreams.announce_change`), which forget it as they hear of it. Announcements go through
Redis pub/sub, at most once: one missed (Redis away) leaves a copy stale until it expires.

A RUNNING run is never cached, so a caller waiting for a result sees it as soon as it is written.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Hashable
from typing import TypeVar

from cachetools import TTLCache

from hourglass_core.models import Job, JobState, Page, Run, RunStatus

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
JobKey = tuple[str, str]
PageKey = tuple[str, str, int, str]
FINISHED_RUN_TTL_S = 60.0
MAX_JOBS = 10_000
MAX_RUNS = 20_000  # finished runs, and runs in cached pages, each


# A retry may follow a run that ended so; a job whose last run did is not settled yet.
_RETRIED = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST})


def settled(job: Job) -> bool:
    """Nothing more will happen to the job: no fire, no run, no retry (a cancelled job's
    retries are dropped before they run)."""
    if job.running or job.state in (JobState.ACTIVE, JobState.PAUSED):
        return False
    return job.state is JobState.CANCELLED or (job.last_status is not None and job.last_status not in _RETRIED)


class ReadCache:
    def __init__(
        self,
        ttl: float,
        *,
        finished_ttl: float = FINISHED_RUN_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = ttl > 0
        short, pages = max(ttl, 1e-9), lambda page: len(page.items) + 1
        self._jobs: TTLCache[JobKey, Job] = TTLCache(MAX_JOBS, short, timer=clock)
        self._settled_jobs: TTLCache[JobKey, Job] = TTLCache(MAX_JOBS, finished_ttl, timer=clock)
        self._pages: TTLCache[PageKey, Page[Run]] = TTLCache(MAX_RUNS, short, timer=clock, getsizeof=pages)
        self._settled_pages: TTLCache[PageKey, Page[Run]] = TTLCache(MAX_RUNS, finished_ttl, timer=clock, getsizeof=pages)
        self._runs: TTLCache[str, Run] = TTLCache(MAX_RUNS, finished_ttl, timer=clock)
        # Bumped by every forget: a read that began before it may have read the old state,
        # so its answer is returned but not cached.
        self._epoch = 0

    async def job(self, namespace: str, job_id: str, load: Callable[[], Awaitable[Job]]) -> Job:
        key = (namespace, job_id)
        return await self._through(
            key, load, (self._settled_jobs, self._jobs), lambda job: self._settled_jobs if settled(job) else self._jobs
        )

    async def runs_page(
        self, namespace: str, job_id: str, size: int, token: str, load: Callable[[], Awaitable[Page[Run]]]
    ) -> Page[Run]:
        done = (namespace, job_id) in self._settled_jobs  # then no run of it will change or be added

        def where(page: Page[Run]) -> TTLCache[PageKey, Page[Run]]:
            finished = all(run.status.finished for run in page.items)
            return self._settled_pages if done and finished else self._pages

        return await self._through((namespace, job_id, size, token), load, (self._settled_pages, self._pages), where)

    async def run(self, run_id: str, load: Callable[[], Awaitable[Run]]) -> Run:
        return await self._through(run_id, load, (self._runs,), lambda run: self._runs if run.status.finished else None)

    async def _through(
        self,
        key: K,
        load: Callable[[], Awaitable[T]],
        caches: tuple[TTLCache[K, T], ...],
        where: Callable[[T], TTLCache[K, T] | None],
    ) -> T:
        """The cached value from the first of `caches` holding `key`; otherwise loads it and
        keeps it where `where` says (None: nowhere)."""
        if not self.enabled:
            return await load()
        for cache in caches:
            cached = cache.get(key)
            if cached is not None:
                return cached
        epoch = self._epoch
        value = await load()
        target = where(value)
        if target is not None and epoch == self._epoch:
            target[key] = value
        return value

    def forget_job(self, namespace: str, job_id: str) -> None:
        """The job changed: its entries and its pages of runs go."""
        self._epoch += 1
        for jobs in (self._jobs, self._settled_jobs):
            jobs.pop((namespace, job_id), None)
        for pages in (self._pages, self._settled_pages):
            for key in [k for k in pages if k[0] == namespace and k[1] == job_id]:
                pages.pop(key, None)

    def clear(self) -> None:
        self._epoch += 1
        for cache in (self._jobs, self._settled_jobs, self._pages, self._settled_pages, self._runs):
            cache.clear()
