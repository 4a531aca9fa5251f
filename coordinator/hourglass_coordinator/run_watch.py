"""WatchRuns: runs streamed to their watchers as they finish, from whichever replica recorded
them. Free while nobody watches: a replica with watchers announces its interest (a WATCH
hint, again every ANNOUNCE_S), and only then do the replicas recording runs of those jobs
publish a pointer to each (a RAN hint) once it is durable; the watchers' replica reads the run
and hands it to them. A slow watcher never slows anything: its buffer is bounded, and what it
could not take is counted and reported with the next run it gets."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from hourglass_core.errors import RunNotFound
from hourglass_core.firing import run_id_for
from hourglass_core.models import Fire, FireKind, Run

log = logging.getLogger(__name__)
ANNOUNCE_S = 5.0
INTEREST_S = 3 * ANNOUNCE_S  # an interest not announced again for this long is over
BUFFER = 1000

Publish = Callable[[Fire], Awaitable[None]]
ReadRun = Callable[[str], Awaitable[Run]]
Key = tuple[str, str]  # (namespace, job id or "" for the whole namespace)


@dataclass(eq=False)
class _Watcher:
    key: Key
    # Each run with the number dropped just before it (the buffer was full then).
    queue: asyncio.Queue[tuple[Run, int]] = field(default_factory=lambda: asyncio.Queue(BUFFER))
    dropped: int = 0

    def wants(self, run: Run) -> bool:
        namespace, job_id = self.key
        return run.namespace == namespace and job_id in ("", run.job_id)

    def offer(self, run: Run) -> None:
        try:
            self.queue.put_nowait((run, self.dropped))
            self.dropped = 0
        except asyncio.QueueFull:
            self.dropped += 1


class RunWatch:
    def __init__(self, publish: Publish, read_run: ReadRun) -> None:
        self._publish = publish
        self._read_run = read_run
        self._watchers: set[_Watcher] = set()
        self._interests: dict[Key, float] = {}  # anywhere in the cluster -> until (monotonic)
        self._tasks: set[asyncio.Task[None]] = set()

    async def watch(self, namespace: str, job_id: str) -> AsyncGenerator[tuple[Run, int], None]:
        """Each run of the job (job_id "": of the namespace) finishing from now on, with the
        number of runs dropped before it because this watcher fell behind."""
        watcher = _Watcher((namespace, job_id))
        self._watchers.add(watcher)
        announcer = asyncio.create_task(self._announce(watcher.key), name=f"watch-{namespace}/{job_id}")
        try:
            while True:
                yield await watcher.queue.get()
        finally:
            announcer.cancel()
            self._watchers.discard(watcher)

    async def _announce(self, key: Key) -> None:
        namespace, job_id = key
        while True:
            try:
                await self._publish(Fire(due=datetime.now(UTC), namespace=namespace, job_id=job_id, shard=0,
                                         kind=FireKind.WATCH))  # fmt: skip
            except Exception as error:  # noqa: BLE001 - announced again shortly
                log.warning("watch of %s/%s not announced: %s", namespace, job_id or "*", error)
            await asyncio.sleep(ANNOUNCE_S)

    def heard(self, fire: Fire) -> None:
        """A WATCH or RAN hint from any replica (this one included)."""
        if fire.kind is FireKind.WATCH:
            self._interests[(fire.namespace, fire.job_id)] = time.monotonic() + INTEREST_S
        elif fire.kind is FireKind.RAN and any(w.key[0] == fire.namespace for w in self._watchers):
            task = asyncio.create_task(self._deliver(run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, run_id: str) -> None:
        try:
            run = await self._read_run(run_id)
        except RunNotFound:
            return
        except Exception as error:  # noqa: BLE001 - the watcher misses this one
            log.warning("run %s not read for its watchers: %s", run_id, error)
            return
        for watcher in self._watchers:
            if watcher.wants(run):
                watcher.offer(run)

    @property
    def watched(self) -> bool:
        """Whether any replica announced watchers lately (else recorded() has nothing to do)."""
        return bool(self._interests)

    async def recorded(self, runs: Sequence[Run]) -> None:
        """Runs just made durable by this replica: a pointer to each that someone watches."""
        now = time.monotonic()
        self._interests = {k: until for k, until in self._interests.items() if until > now}
        for run in runs:
            if (run.namespace, "") in self._interests or (run.namespace, run.job_id) in self._interests:
                pointer = Fire(due=run.due, namespace=run.namespace, job_id=run.job_id, shard=0, attempt=run.attempt,
                               kind=FireKind.RAN)  # fmt: skip
                try:
                    await self._publish(pointer)
                except Exception as error:  # noqa: BLE001 - watching is best effort
                    log.debug("run %s not published to its watchers: %s", run.run_id, error)
