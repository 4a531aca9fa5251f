"""A coordinator's cache of recent reads: GetJob, ListRuns and GetRun answered from memory.

Hourglass serves far more reads than writes, and a read from Cassandra costs it about half a
millisecond of CPU and the caller a few milliseconds. What is cached, and for how long:

- a finished run (`finished_ttl`, 60 s by default): its record no longer changes;
- a job, and a page of a job's runs (`ttl`, 1 s by default): they change as the job's runs
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

from hourglass_core.models import Job, Page, Run

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)
FINISHED_RUN_TTL_S = 60.0
MAX_JOBS = 10_000
MAX_RUNS = 20_000  # finished runs, and runs in cached pages, each


class ReadCache:
    def __init__(
        self,
        ttl: float,
        *,
        finished_ttl: float = FINISHED_RUN_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.enabled = ttl > 0
        self._jobs: TTLCache[tuple[str, str], Job] = TTLCache(MAX_JOBS, max(ttl, 1e-9), timer=clock)
        self._pages: TTLCache[tuple[str, str, int, str], Page[Run]] = TTLCache(
            MAX_RUNS, max(ttl, 1e-9), timer=clock, getsizeof=lambda page: len(page.items) + 1
        )
        self._runs: TTLCache[str, Run] = TTLCache(MAX_RUNS, finished_ttl, timer=clock)
        # Bumped by every forget: a read that began before it may have read the old state,
        # so its answer is returned but not cached.
        self._epoch = 0

    async def job(self, namespace: str, job_id: str, load: Callable[[], Awaitable[Job]]) -> Job:
        return await self._through(self._jobs, (namespace, job_id), load)

    async def runs_page(
        self, namespace: str, job_id: str, size: int, token: str, load: Callable[[], Awaitable[Page[Run]]]
    ) -> Page[Run]:
        return await self._through(self._pages, (namespace, job_id, size, token), load)

    async def run(self, run_id: str, load: Callable[[], Awaitable[Run]]) -> Run:
        cached = self._runs.get(run_id) if self.enabled else None
        if cached is not None:
            return cached
        epoch = self._epoch
        run = await load()
        if self.enabled and run.status.finished and epoch == self._epoch:
            self._runs[run_id] = run
        return run

    async def _through(self, cache: TTLCache[K, T], key: K, load: Callable[[], Awaitable[T]]) -> T:
        if not self.enabled:
            return await load()
        cached = cache.get(key)
        if cached is not None:
            return cached
        epoch = self._epoch
        value = await load()
        if epoch == self._epoch:
            cache[key] = value
        return value

    def forget_job(self, namespace: str, job_id: str) -> None:
        """The job changed: its entry and its pages of runs go."""
        self._epoch += 1
        self._jobs.pop((namespace, job_id), None)
        for key in [k for k in self._pages if k[0] == namespace and k[1] == job_id]:
            self._pages.pop(key, None)

    def clear(self) -> None:
        self._epoch += 1
        self._jobs.clear()
        self._pages.clear()
        self._runs.clear()

