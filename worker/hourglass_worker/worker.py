"""A worker: owns shards, reads their fires ahead, prepares (claims) them before they are due,
and runs each at its due time from an in-memory timer.

Preparing ahead takes the store's round trips (job read, claim, next fire) off the path from
"due" to "running", so lateness is the timer's, not Cassandra's.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hourglass_core import wire
from hourglass_core.config import Settings
from hourglass_core.errors import JobNotFound, RunNotFound, StaleOwner
from hourglass_core.firing import Action, plan_fire, retry_fire, run_id_for, stable_jitter
from hourglass_core.leases.base import Lease, Leases, Membership
from hourglass_core.models import Fire, Job, JobState, OverlapPolicy, Run, RunStatus
from hourglass_core.store.base import Checkpoint, Store
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_worker.book import ShardBook
from hourglass_worker.executors import Executor, RunContext
from hourglass_worker.link import CoordinatorLink
from hourglass_worker.runner import Runner
from hourglass_worker.shards import ShardKeeper
from hourglass_worker.timer import FireKey, FireTimer, fire_key

log = logging.getLogger(__name__)
READ_LIMIT = 10_000
CHECKPOINT_EVERY_S = 2.0
PREPARE_CONCURRENCY = 64
LIVE_CACHE_S = 1.0
# A prepared fire whose shard lease cannot be confirmed right now waits this long, then looks
# again: either the lease is confirmed (run) or lost (the new owner recovers the fire).
LEASE_WAIT = timedelta(milliseconds=100)
JobRef = tuple[str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


class _RetryLater(enum.Enum):
    TOKEN = enum.auto()


RETRY_LATER = _RetryLater.TOKEN
WATCH_INTERVAL_S = 1.0


@dataclass(frozen=True, slots=True)
class Watch:
    """Another live worker claimed the fire and has not finished its run: keep an eye on it."""

    job: Job


@dataclass(frozen=True, slots=True)
class Prepared:
    """A fire this worker claimed, waiting in the timer for its due time."""

    job: Job
    fire: Fire
    run_id: str


class Worker:
    def __init__(
        self,
        worker_id: str,
        settings: Settings,
        store: Store,
        leases: Leases,
        membership: Membership,
        executors: dict[str, Executor],
    ) -> None:
        self.worker_id = worker_id
        self._settings = settings
        self._store = store
        self._membership = membership
        self._executors = executors
        self._runner = Runner(settings.capacity)
        self._run_slots = asyncio.Semaphore(settings.capacity)
        self._prepare_slots = asyncio.Semaphore(PREPARE_CONCURRENCY)
        self._timer = FireTimer()
        self._book = ShardBook()
        self._keeper = ShardKeeper(
            leases, worker_id, settings.shard_lease_ttl, self._shard_gained, self._shard_lost
        )
        self._readers: dict[int, asyncio.Task[None]] = {}
        self._prepared: dict[FireKey, Prepared] = {}
        # Shards released on purpose: their prepared fires are claimed by us and still run.
        self._released: set[int] = set()
        self._running: dict[JobRef, list[RunContext]] = defaultdict(list)
        self._queued: dict[JobRef, Prepared] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._live: tuple[float, set[str]] = (0.0, set())
        self._accepting = True
        self.link = CoordinatorLink(
            settings.coordinator.split(","),
            wpb.Register(worker_id=worker_id, executors=sorted(executors), capacity=settings.capacity),
            self._on_message,
            self._heartbeat,
            settings.heartbeat_interval,
        )

    def _spawn(self, coro: object, name: str) -> None:
        task: asyncio.Task[None] = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- coordinator messages -------------------------------------------------------------
    def _heartbeat(self) -> wpb.Heartbeat:
        return wpb.Heartbeat(
            shards_held=sorted(self._keeper.held),
            runs_in_progress=sum(len(v) for v in self._running.values()),
            leaving=not self._accepting,
        )

    def _on_message(self, message: wpb.CoordinatorMessage) -> None:
        kind = message.WhichOneof("kind")
        if kind == "assignment" and self._accepting:
            self._keeper.assign(set(message.assignment.shards))
        elif kind == "fire_hint":
            fire = wire.fire_from_hint(message.fire_hint)
            if self._keeper.lease(fire.shard) is not None:
                self._take(fire)
        elif kind == "job_halted":
            self._halt(message.job_halted.namespace, message.job_halted.job_id)

    def _halt(self, namespace: str, job_id: str) -> None:
        """The job was paused or cancelled: its prepared fires do not run."""
        for key, prepared in list(self._prepared.items()):
            if prepared.fire.namespace == namespace and prepared.fire.job_id == job_id:
                del self._prepared[key]
                self._book.handled(prepared.fire)
        self._queued.pop((namespace, job_id), None)
        if self._running.get((namespace, job_id)):
            self._spawn(self._cancel_if_cancelled(namespace, job_id), f"halt-{job_id}")

    async def _cancel_if_cancelled(self, namespace: str, job_id: str) -> None:
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.CANCELLED:
            for ctx in self._running.get((namespace, job_id), []):
                ctx.cancelled.set()

    # -- shards ---------------------------------------------------------------------------
    def _shard_gained(self, shard: int, lease: Lease) -> None:
        log.info("worker %s owns shard %d (token %d)", self.worker_id, shard, lease.token)
        self._released.discard(shard)
        self._readers[shard] = asyncio.create_task(self._read_shard(shard), name=f"read-shard-{shard}")

    def _shard_lost(self, shard: int, graceful: bool) -> None:
        log.info("worker %s %s shard %d", self.worker_id, "released" if graceful else "lost", shard)
        reader = self._readers.pop(shard, None)
        if reader is not None:
            reader.cancel()
        if graceful:
            self._released.add(shard)  # what we claimed still runs here
            return
        # Lost, not released: a newer owner may already be recovering these fires.
        for key, prepared in list(self._prepared.items()):
            if prepared.fire.shard == shard:
                del self._prepared[key]
        self._book.drop_shard(shard)

    def _take(self, fire: Fire) -> None:
        if self._accepting and self._book.take(fire):
            self._spawn(self._prepare(fire), "prepare")

    async def _read_shard(self, shard: int) -> None:
        """Reads the shard's fires from its checkpoint to `lookahead` ahead, forever. The cursor
        (and checkpoint) trails real time by read_margin and never passes an unfinished fire."""
        checkpoint = await self._store.load_checkpoint(shard)
        cursor = checkpoint.at if checkpoint else utcnow() - self._settings.read_margin
        saved_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            lease = self._keeper.lease(shard)
            if lease is not None:
                now = utcnow()
                after, until = cursor, now + self._settings.lookahead
                while True:
                    batch = await self._store.due_fires(shard, after, until, READ_LIMIT)
                    for fire in batch:
                        self._take(fire)
                    if len(batch) < READ_LIMIT:
                        break
                    after = batch[-1].due
                cursor = max(cursor, self._book.handled_through(shard, now - self._settings.read_margin))
                self._book.passed(shard, cursor)
                if loop.time() - saved_at >= CHECKPOINT_EVERY_S:
                    try:
                        await self._store.save_checkpoint(Checkpoint(shard, cursor, lease.token))
                        saved_at = loop.time()
                    except StaleOwner:
                        log.warning("shard %d has a newer owner; stopping its reader", shard)
                        return
            await asyncio.sleep(self._settings.poll_interval.total_seconds())

    # -- preparing ------------------------------------------------------------------------
    async def _prepare(self, fire: Fire) -> None:
        async with self._prepare_slots:
            try:
                prepared = await self._claim(fire)
            except Exception as error:  # noqa: BLE001 - the next read offers the fire again
                log.warning("preparing fire of job %s at %s failed: %s", fire.job_id, fire.due, error)
                self._book.retry_later(fire)
                return
        if prepared is RETRY_LATER:
            return
        if isinstance(prepared, Watch):
            self._spawn(self._watch(prepared.job, fire), "watch")
            return
        if prepared is None:
            self._book.handled(fire)
            return
        self._prepared[fire_key(fire)] = prepared
        self._timer.add(fire)

    async def _claim(self, fire: Fire) -> Prepared | None | _RetryLater | Watch:
        """Reads the job, decides, claims the fire and moves the schedule on. None when there
        is nothing to run (stale, paused, claimed elsewhere, skipped as misfired)."""
        lease = self._keeper.lease(fire.shard)
        if lease is None:
            return None  # the shard moved: its new owner reads the fire from the checkpoint
        try:
            job = await self._store.get_job(fire.namespace, fire.job_id)
        except JobNotFound:
            # A submit writes the fire before the job row: the job is being written right now.
            # Jobs are never deleted, so look again at the next read (until the cursor passes).
            self._book.retry_later(fire)
            return RETRY_LATER
        plan = plan_fire(job, fire, max(utcnow(), fire.due))
        if plan.action is Action.DROP:
            if job.state in (JobState.ACTIVE, JobState.COMPLETED):
                # Not the job's next fire any more: either a leftover, or a fire a previous
                # owner claimed (and so moved the schedule on) and then died with.
                return await self._recover_if_orphaned(job, fire)
            return None
        if not await self._store.claim_fire(fire, self.worker_id, lease.token):
            return await self._after_lost_claim(job, fire, plan.advance, plan.next_fire)
        if plan.advance:
            await self._store.advance_schedule(job, plan.next_fire)
            nxt = plan.next_fire
            if nxt is not None and nxt.due <= utcnow() + self._settings.lookahead and self._keeper.lease(nxt.shard):
                self._take(nxt)
        run_id = run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)
        if plan.action is Action.SKIP_MISFIRE:
            self._report_skipped(fire, run_id, plan.reason)
            return None
        return Prepared(job, fire, run_id)

    async def _live_workers(self) -> set[str]:
        at, live = self._live
        if time.monotonic() - at > LIVE_CACHE_S:
            live = {w.worker_id for w in await self._membership.live_workers()}
            self._live = (time.monotonic(), live)
        return live

    async def _after_lost_claim(
        self, job: Job, fire: Fire, advance: bool, nxt: Fire | None
    ) -> Prepared | None | Watch:
        """Someone claimed this fire before us: most often the shard's previous owner."""
        if advance:
            await self._store.advance_schedule(job, nxt)  # no-op unless the claimer died first
        return await self._recover_if_orphaned(job, fire)

    async def _recover_if_orphaned(self, job: Job, fire: Fire) -> Prepared | None | Watch:
        """A fire claimed by a worker that is no longer alive, whose run never finished, is
        taken over (one taker wins the claim): if its run never started, it runs here as the
        same attempt; if it was cut off mid-run, it is recorded LOST and retried under the
        job's retry policy. Watch: its claimer is alive and the run unfinished, so look again."""
        claimer = await self._store.claim_owner(fire)
        if claimer in (None, self.worker_id):
            return None
        run_id = run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)
        try:
            run: Run | None = await self._store.get_run(run_id)
        except RunNotFound:
            run = None
        if run is not None and run.status.finished:
            return None
        if claimer in await self._live_workers():
            return Watch(job)
        lease = self._keeper.lease(fire.shard)
        if lease is None or not await self._store.steal_claim(fire, claimer, self.worker_id, lease.token):
            return None
        if run is None:
            log.info("fire of job %s at %s claimed by dead worker %s runs here", job.id, fire.due, claimer)
            return Prepared(job, fire, run_id)
        log.warning("run %s of job %s was cut off on dead worker %s", run_id, job.id, claimer)
        now = utcnow()
        self.link.run_finished(replace(run, status=RunStatus.LOST, ended_at=now, error=f"worker {claimer} died mid-run"))
        await self._schedule_retry(job, fire, run_id, now)
        return None

    async def _watch(self, job: Job, fire: Fire) -> None:
        """Follows a fire another live worker is running until its run finishes or its worker
        dies (then it is recovered). The fire stays pending, so the checkpoint waits for it."""
        try:
            while self._keeper.lease(fire.shard) is not None and self._accepting:
                await asyncio.sleep(WATCH_INTERVAL_S)
                outcome = await self._recover_if_orphaned(job, fire)
                if isinstance(outcome, Watch):
                    continue
                if isinstance(outcome, Prepared):
                    self._prepared[fire_key(fire)] = outcome
                    self._timer.add(fire, at=utcnow())
                    return
                break
        except Exception as error:  # noqa: BLE001 - the next owner (or read) looks again
            log.warning("watching fire of job %s at %s: %s", fire.job_id, fire.due, error)
        self._book.handled(fire)

    # -- running --------------------------------------------------------------------------
    def _may_run(self, fire: Fire) -> bool | None:
        """True: run now. None: the lease is not confirmed right now; ask again shortly.
        False: the lease was lost (a newer owner recovers the fire)."""
        if fire.shard in self._keeper.held:
            return True if self._keeper.lease(fire.shard) is not None else None
        return fire.shard in self._released

    async def _dispatch(self) -> None:
        while True:
            for fire in await self._timer.next_due():
                key = fire_key(fire)
                if key not in self._prepared:
                    continue  # halted, or its shard was lost
                verdict = self._may_run(fire)
                if verdict is None:
                    self._timer.add(fire, at=utcnow() + LEASE_WAIT)
                    continue
                prepared = self._prepared.pop(key)
                if not verdict:
                    continue
                await self._run_slots.acquire()
                self._spawn(self._run(prepared), f"run-{prepared.run_id}")

    async def _run(self, prepared: Prepared) -> None:
        try:
            await self._run_with_overlap(prepared)
        except Exception:  # noqa: BLE001 - one bad run must not stop the worker
            log.exception("run %s failed unexpectedly", prepared.run_id)
        finally:
            self._run_slots.release()
            self._book.handled(prepared.fire)

    async def _run_with_overlap(self, prepared: Prepared) -> None:
        job, fire = prepared.job, prepared.fire
        ref = (job.namespace, job.id)
        if self._running.get(ref) and fire.attempt == 1:
            policy = job.options.overlap_policy
            if policy is OverlapPolicy.SKIP:
                self._report_skipped(fire, prepared.run_id, "previous run still in progress")
                return
            if policy is OverlapPolicy.QUEUE_ONE:
                if ref in self._queued:
                    self._report_skipped(fire, prepared.run_id, "a fire is already queued")
                else:
                    self._queued[ref] = prepared
                return
        await self._execute(prepared)
        queued = self._queued.pop(ref, None)
        if queued is not None:
            await self._execute(queued)
            self._book.handled(queued.fire)

    async def _execute(self, prepared: Prepared) -> None:
        job, fire = prepared.job, prepared.fire
        ref = (job.namespace, job.id)
        run = Run(job.namespace, job.id, prepared.run_id, fire.due, fire.attempt, RunStatus.RUNNING,
                  self.worker_id, utcnow())  # fmt: skip
        self.link.run_started(run, fire.shard)
        ctx = RunContext(job.namespace, job.id, prepared.run_id, fire.attempt, fire.due, job.params)
        self._running[ref].append(ctx)
        try:
            executor = self._executors.get(job.executor)
            if executor is None:
                status, result, error = RunStatus.FAILED, run.result, f"executor {job.executor!r} is not on worker {self.worker_id}"
            else:
                outcome = await self._runner.run(executor, ctx, job.options.timeout)
                status, result, error = outcome.status, outcome.result, outcome.error
                if ctx.cancelled.is_set() and status is RunStatus.FAILED:
                    status = RunStatus.CANCELLED
        finally:
            self._running[ref].remove(ctx)
            if not self._running[ref]:
                del self._running[ref]
        ended = utcnow()
        if status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            await self._schedule_retry(job, fire, prepared.run_id, ended)
        self.link.run_finished(replace(run, status=status, ended_at=ended, result=result, error=error))

    async def _schedule_retry(self, job: Job, fire: Fire, run_id: str, now: datetime) -> None:
        retry = retry_fire(job, fire, now, stable_jitter(run_id) * 0.5 + random.random() * 0.5)
        if retry is None:
            return
        await self._store.put_fire(retry)
        if self._keeper.lease(retry.shard) is not None:
            self._take(retry)

    def _report_skipped(self, fire: Fire, run_id: str, reason: str) -> None:
        self.link.run_finished(
            Run(fire.namespace, fire.job_id, run_id, fire.due, fire.attempt, RunStatus.SKIPPED,
                self.worker_id, ended_at=utcnow(), error=reason)  # fmt: skip
        )

    # -- life cycle -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Runs until `stop` is set, then shuts down gracefully: leases released at once (the
        leader moves the shards), fires already claimed here run, results are flushed."""
        link = asyncio.create_task(self.link.run(), name="link")
        keeper = asyncio.create_task(self._keeper.run(), name="shard-keeper")
        dispatch = asyncio.create_task(self._dispatch(), name="dispatch")
        try:
            await stop.wait()
        finally:
            log.info("worker %s stopping", self.worker_id)
            self._accepting = False
            await self.link.send_heartbeat()  # says we are leaving: the leader moves our shards
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)  # releases every lease
            deadline = time.monotonic() + self._settings.lookahead.total_seconds() + 1
            while (self._prepared or self._tasks) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            dispatch.cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=30)
            await self.link.flush(timeout=10)
            link.cancel()
            await asyncio.gather(link, dispatch, return_exceptions=True)
            self._runner.close()
            log.info("worker %s stopped", self.worker_id)
