"""A worker: owns shards, reads their due fires ahead into a timer, claims and runs them."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hourglass_core import wire
from hourglass_core.config import Settings
from hourglass_core.errors import JobNotFound, RunNotFound, StaleOwner
from hourglass_core.firing import Action, plan_fire, retry_fire, run_id_for, stable_jitter
from hourglass_core.leases.base import Lease, Leases, Membership
from hourglass_core.models import Fire, Job, OverlapPolicy, Run, RunStatus
from hourglass_core.store.base import Checkpoint, Store
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_worker.executors import Executor, RunContext
from hourglass_worker.link import CoordinatorLink
from hourglass_worker.runner import Runner
from hourglass_worker.shards import ShardKeeper
from hourglass_worker.timer import FireKey, FireTimer, fire_key

log = logging.getLogger(__name__)
READ_LIMIT = 10_000
CHECKPOINT_EVERY_S = 2.0
EPSILON = timedelta(microseconds=1)
JobRef = tuple[str, str]


def utcnow() -> datetime:
    return datetime.now(UTC)


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
        self._slots = asyncio.Semaphore(settings.capacity)
        self._timer = FireTimer()
        self._keeper = ShardKeeper(
            leases, worker_id, settings.shard_lease_ttl, self._shard_gained, self._shard_lost
        )
        self._readers: dict[int, asyncio.Task[None]] = {}
        # Fires taken into the timer and not yet fully handled (run finished), per shard: the
        # shard's checkpoint never passes them, so a new owner sees them again after a crash.
        self._pending: dict[int, dict[FireKey, datetime]] = defaultdict(dict)
        self._running: dict[JobRef, list[RunContext]] = defaultdict(list)
        self._queued: dict[JobRef, tuple[Job, Fire, Lease]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True
        self.link = CoordinatorLink(
            settings.coordinator.split(","),
            wpb.Register(worker_id=worker_id, executors=sorted(executors), capacity=settings.capacity),
            self._on_message,
            self._heartbeat,
            settings.heartbeat_interval,
        )

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
        elif kind == "cancel_runs":
            for ref in message.cancel_runs.jobs:
                for ctx in self._running.get((ref.namespace, ref.id), []):
                    ctx.cancelled.set()

    # -- shards ---------------------------------------------------------------------------
    def _shard_gained(self, shard: int, lease: Lease) -> None:
        log.info("worker %s owns shard %d (token %d)", self.worker_id, shard, lease.token)
        self._readers[shard] = asyncio.create_task(self._read_shard(shard), name=f"read-shard-{shard}")

    def _shard_lost(self, shard: int) -> None:
        log.info("worker %s gave up shard %d", self.worker_id, shard)
        reader = self._readers.pop(shard, None)
        if reader is not None:
            reader.cancel()
        self._timer.drop_shard(shard)
        self._pending.pop(shard, None)

    def _take(self, fire: Fire) -> None:
        if self._timer.add(fire):
            self._pending[fire.shard][fire_key(fire)] = fire.due

    def _handled(self, fire: Fire) -> None:
        self._pending.get(fire.shard, {}).pop(fire_key(fire), None)

    def _handled_through(self, shard: int, now: datetime) -> datetime:
        """Every fire of the shard due at or before this instant is handled."""
        bound = now - self._settings.read_margin
        pending = self._pending.get(shard)
        if pending:
            bound = min(bound, min(pending.values()) - EPSILON)
        return bound

    async def _read_shard(self, shard: int) -> None:
        """Reads the shard's fires from the checkpoint on, a little ahead of time, forever."""
        checkpoint = await self._store.load_checkpoint(shard)
        cursor = checkpoint.at if checkpoint else utcnow() - self._settings.read_margin
        saved_at = 0.0
        loop = asyncio.get_running_loop()
        while True:
            lease = self._keeper.lease(shard)
            if lease is None:
                await asyncio.sleep(self._settings.poll_interval.total_seconds())
                continue
            now = utcnow()
            until = now + self._settings.lookahead
            after = cursor
            while True:
                batch = await self._store.due_fires(shard, after, until, READ_LIMIT)
                for fire in batch:
                    self._take(fire)
                if len(batch) < READ_LIMIT:
                    break
                after = batch[-1].due
            # Forget fires the cursor has passed: they will not be read again.
            cursor = max(cursor, self._handled_through(shard, now))
            if loop.time() - saved_at >= CHECKPOINT_EVERY_S:
                try:
                    await self._store.save_checkpoint(Checkpoint(shard, cursor, lease.token))
                    saved_at = loop.time()
                except StaleOwner:
                    log.warning("shard %d: a newer owner exists; stopping", shard)
                    return
            await asyncio.sleep(self._settings.poll_interval.total_seconds())

    # -- firing ---------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            for fire in await self._timer.next_due():
                await self._slots.acquire()
                task = asyncio.create_task(self._fire(fire))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _fire(self, fire: Fire) -> None:
        try:
            await self._process(fire)
        except Exception:  # noqa: BLE001 - one bad fire must not stop the worker
            log.exception("fire %s of job %s failed", fire.due, fire.job_id)
            self._timer.forget(fire)  # allow a later read to retry it
        finally:
            self._slots.release()
            self._handled(fire)

    async def _process(self, fire: Fire) -> None:
        lease = self._keeper.lease(fire.shard)
        if lease is None or not self._accepting:
            return  # the shard moved: its new owner reads the fire from the checkpoint
        try:
            job = await self._store.get_job(fire.namespace, fire.job_id)
        except JobNotFound:
            return
        now = utcnow()
        plan = plan_fire(job, fire, now)
        if plan.action is Action.DROP:
            return
        if not await self._store.claim_fire(fire, self.worker_id, lease.token):
            await self._after_lost_claim(job, fire, plan.advance, plan.next_fire)
            return
        if plan.advance:
            await self._store.advance_schedule(job, plan.next_fire)
            if plan.next_fire is not None and plan.next_fire.due <= utcnow() + self._settings.lookahead:
                self._take(plan.next_fire)
        run_id = run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)
        if plan.action is Action.SKIP_MISFIRE:
            self._report_skipped(fire, run_id, plan.reason)
            return
        await self._run_with_overlap(job, fire, lease, run_id)

    async def _after_lost_claim(self, job: Job, fire: Fire, advance: bool, nxt: Fire | None) -> None:
        """Someone claimed this fire before us: most often the shard's previous owner. If that
        owner died before finishing the run, the run is lost: record it and retry it."""
        if advance:
            await self._store.advance_schedule(job, nxt)  # idempotent; the claimer may have died first
        claimer = await self._store.claim_owner(fire)
        if claimer in (None, self.worker_id):
            return
        live = {w.worker_id for w in await self._membership.live_workers()}
        if claimer in live:
            return
        run_id = run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)
        try:
            run = await self._store.get_run(run_id)
            if run.status.finished:
                return
        except RunNotFound:
            run = Run(fire.namespace, fire.job_id, run_id, fire.due, fire.attempt, RunStatus.RUNNING, claimer)
        log.warning("run %s of job %s was cut off on dead worker %s", run_id, job.id, claimer)
        now = utcnow()
        self.link.run_finished(replace(run, status=RunStatus.LOST, ended_at=now, error=f"worker {claimer} died"))
        await self._schedule_retry(job, fire, run_id, now)

    async def _run_with_overlap(self, job: Job, fire: Fire, lease: Lease, run_id: str) -> None:
        ref = (job.namespace, job.id)
        if self._running.get(ref) and fire.attempt == 1:
            policy = job.options.overlap_policy
            if policy is OverlapPolicy.SKIP:
                self._report_skipped(fire, run_id, "previous run still in progress")
                return
            if policy is OverlapPolicy.QUEUE_ONE:
                if ref in self._queued:
                    self._report_skipped(fire, run_id, "a fire is already queued")
                    return
                self._queued[ref] = (job, fire, lease)
                return
        await self._execute(job, fire, run_id)
        queued = self._queued.pop(ref, None)
        if queued is not None:
            qjob, qfire, _ = queued
            await self._execute(qjob, qfire, run_id_for(qfire.namespace, qfire.job_id, qfire.due, qfire.attempt))

    async def _execute(self, job: Job, fire: Fire, run_id: str) -> None:
        ref = (job.namespace, job.id)
        started = utcnow()
        run = Run(job.namespace, job.id, run_id, fire.due, fire.attempt, RunStatus.RUNNING, self.worker_id, started)
        self.link.run_started(run, fire.shard)
        executor = self._executors.get(job.executor)
        ctx = RunContext(job.namespace, job.id, run_id, fire.attempt, fire.due, job.params)
        self._running[ref].append(ctx)
        try:
            if executor is None:
                outcome_status, result, error = RunStatus.FAILED, run.result, f"executor {job.executor!r} is not registered on worker {self.worker_id}"
            else:
                outcome = await self._runner.run(executor, ctx, job.options.timeout)
                outcome_status, result, error = outcome.status, outcome.result, outcome.error
                if ctx.cancelled.is_set() and outcome_status is RunStatus.FAILED:
                    outcome_status = RunStatus.CANCELLED
        finally:
            self._running[ref].remove(ctx)
            if not self._running[ref]:
                del self._running[ref]
        ended = utcnow()
        if outcome_status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            await self._schedule_retry(job, fire, run_id, ended)
        self.link.run_finished(replace(run, status=outcome_status, ended_at=ended, result=result, error=error))

    async def _schedule_retry(self, job: Job, fire: Fire, run_id: str, now: datetime) -> None:
        retry = retry_fire(job, fire, now, stable_jitter(run_id) * 0.5 + random.random() * 0.5)
        if retry is None:
            return
        await self._store.put_fire(retry)
        if self._keeper.lease(retry.shard) is not None:
            self._take(retry)

    def _report_skipped(self, fire: Fire, run_id: str, reason: str) -> None:
        self.link.run_finished(
            Run(
                fire.namespace, fire.job_id, run_id, fire.due, fire.attempt, RunStatus.SKIPPED,
                self.worker_id, ended_at=utcnow(), error=reason,
            )
        )

    # -- life cycle -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Runs until `stop` is set, then shuts down gracefully: no new fires, running ones
        finish, leases are released, results flushed to the coordinator."""
        loops = [
            asyncio.create_task(self.link.run(), name="link"),
            asyncio.create_task(self._keeper.run(), name="shard-keeper"),
            asyncio.create_task(self._dispatch(), name="dispatch"),
        ]
        try:
            await stop.wait()
        finally:
            log.info("worker %s stopping", self.worker_id)
            self._accepting = False
            loops[2].cancel()  # no new fires
            await self.link.send_heartbeat()  # tells the leader to move our shards now
            for reader in self._readers.values():
                reader.cancel()
            await self._keeper.release_all()
            loops[1].cancel()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=30)
            await self.link.flush(timeout=10)
            loops[0].cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            self._runner.close()
            log.info("worker %s stopped", self.worker_id)
