"""A worker: owns shards, reads their fires ahead, prepares (claims) them before they are due,
and runs each at its due time from an in-memory timer.

Preparing ahead takes the store's round trips (job read, claim, next fire) off the path from
"due" to "running", so lateness is the timer's, not Cassandra's. Claiming and taking over
other workers' claims live in `claiming`; this module runs what was claimed.

Fencing: a claimed fire runs only while the shard lease it was claimed under is safely held
(or was released on purpose, while this worker is surely still seen alive), checked right
before its executor is called, after the begun watermark covers it (see `begun`). A worker
that was frozen past its lease therefore runs nothing it no longer owns; the shard's new owner
takes its claims over, and tells from the watermark which of them never began.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import os
import signal
import socket
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from hourglass_core import logs, tracing, wire
from hourglass_core.backoff import Backoff, RateLimitedLog
from hourglass_core.config import Settings
from hourglass_core.errors import StaleOwner
from hourglass_core.leases.base import Lease, Leases, Membership
from hourglass_core.models import Fire, FireKind, JobCompletion, JobState, OverlapPolicy, Run, RunReason, RunStatus
from hourglass_core.slo import breached
from hourglass_core.store.base import Checkpoint, Store
from hourglass_core.tasks import cancel_all
from hourglass_core.tls import channel_credentials
from hourglass_pb.v1 import worker_pb2 as wpb
from hourglass_worker.begun import BegunMark
from hourglass_worker.book import EPSILON, ShardBook
from hourglass_worker.catchup import CatchupPacer
from hourglass_worker.claiming import Claimer, Later, Prepared
from hourglass_worker.executors import Executor, RunContext
from hourglass_worker.fencing import Fence
from hourglass_worker.later import BACKOFF_CAP_S, LookAgain
from hourglass_worker.link import CoordinatorLink
from hourglass_worker.metrics import PAST_DUE, SHARD_LEASES_LOST, SHARDS_OWNED, fire_metrics
from hourglass_worker.policies import Policies
from hourglass_worker.runner import Outcome, Runner
from hourglass_worker.shards import ShardKeeper
from hourglass_worker.timer import FireKey, FireTimer, fire_key

log = logging.getLogger(__name__)
# Every fire's way through the worker, at DEBUG; off unless turned on (HOURGLASS_TRACE=1).
# Each line is guarded by isEnabledFor: its fields (logs.of_fire) are a dict per fire.
trace = logging.getLogger("hourglass_worker.trace")
DEBUG = logging.DEBUG
warn = RateLimitedLog(log)
READ_LIMIT = 10_000
READS_AT_ONCE = 4
CHECKPOINT_EVERY_S = 2.0
PREPARE_CONCURRENCY = 64
# Fires due before the shard was taken (the backlog of a dead or frozen owner: seconds of fires,
# each to be checked against its claim and run) prepare under their own limit, so that fires due
# from now on do not queue behind them and run on time while the backlog is worked off.
BACKLOG_CONCURRENCY = 32
# At most this many fires in hand (taken, not yet fully handled) per worker: beyond, the shard
# reads leave fires in the store and the cursor waits before them, so an overloaded worker's
# memory stays bounded (each fire in hand is a task, its job and its claim) instead of growing
# with the backlog. Steady state needs about lookahead x fires/s (3,000 at 1,000/s).
MAX_IN_HAND = 10_000
# With less room than this a shard read is skipped (the cursor stays): each read re-reads the
# shard from its cursor, so at a backlog of 270,000 fires (5 min at 3x capacity) reads that
# could take a handful of fires re-read the whole backlog every second, and Cassandra spent
# 13 ms of CPU per fire instead of about 2.
READ_ROOM_MIN = MAX_IN_HAND // 10
# A fire whose shard lease cannot be confirmed right now waits this long, then looks again:
# either the lease is confirmed (run) or lost (the new owner takes the claim over).
LEASE_WAIT = timedelta(milliseconds=100)
# A prepared fire leaves the timer this long before it is due, to take a run slot and have the
# begun watermark cover it (asked for `BegunMark.lead` ahead, at most this), so that its
# executor is called at the due time, not a write's latency after it.
START_LEAD = timedelta(milliseconds=100)
# A run still going this long after its executor was called gets a RUNNING record, so readers
# see long runs as they go; a shorter one is written once, with its result (which carries its
# start): one write per run instead of two.
START_RECORD_AFTER_S = 1.0
# A halt is remembered this long after it came: fires prepared before it are due by then.
HALT_KEPT = timedelta(minutes=2)
# A lease check made before an executor call holds this long for a shard no longer leased
# (handed over gracefully): well within the margin a lease keeps (1 - SAFE_FRACTION of its ttl).
CALL_FRESH_S = 0.2
JobRef = tuple[str, str]
# For tests of what a successor does with the fires of a worker that died at a given point:
# "<stage>:<job name prefix>" SIGKILLs this worker when a fire of such a job reaches the stage
# ("cover": out of the timer, not yet under the begun watermark; "call": covered, lease
# checked, its executor about to be called).
DIE_ENV = "HOURGLASS_TEST_DIE"


class _Queued(enum.Enum):
    QUEUED = enum.auto()  # waits for the job's current run (overlap policy QUEUE_ONE)


def utcnow() -> datetime:
    return datetime.now(UTC)


async def _sleep_until(at: datetime) -> None:
    delay = (at - utcnow()).total_seconds()
    if delay > 0:
        await asyncio.sleep(delay)


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
        self._executors = executors
        self._runner = Runner(settings.capacity)
        self._run_slots = asyncio.Semaphore(settings.capacity)
        self._catchup = CatchupPacer(settings.catchup_rate)
        self._prepare_slots = asyncio.Semaphore(PREPARE_CONCURRENCY)
        self._backlog_slots = asyncio.Semaphore(BACKLOG_CONCURRENCY)
        # Shard reads at once: each may hold up to READ_LIMIT rows.
        self._read_slots = asyncio.Semaphore(READS_AT_ONCE)
        self._timer = FireTimer()
        # Runs going, by run id, in the order they started, until their start is recorded.
        self._unrecorded: dict[str, tuple[Run, int]] = {}  # (run, fencing token)
        # Ids of the runs among them whose executor call began (added from the call's thread).
        self._began: set[str] = set()
        self._begun = BegunMark(lambda through: store.save_begun(worker_id, through))
        self._policies = Policies(store.namespace_policies)
        self._halts: dict[JobRef, datetime] = {}  # job -> when it was paused or cancelled
        self._die_at = tuple(os.environ.get(DIE_ENV, "").partition(":")[::2])
        self._later = LookAgain(lambda fire, life: self._spawn(self._prepare(fire, life)))
        self._book = ShardBook()
        self._keeper = ShardKeeper(
            leases, worker_id, settings.shard_lease_ttl, self._shard_gained, self._shard_lost,
            fencing_floor=store.max_fencing_token,
        )  # fmt: skip
        self._readers: dict[int, asyncio.Task[None]] = {}
        self._prepared: dict[FireKey, Prepared] = {}
        self._running: dict[JobRef, list[RunContext]] = defaultdict(list)
        self._queued: dict[JobRef, Prepared] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._accepting = True
        self._fire_metrics = fire_metrics()
        self._spans = tracing.run_spans("hourglass-worker", worker_id)  # None unless OTEL_* turn tracing on
        self._past_due = 0  # this worker's part of the gauge (a process may run several)
        self.link = CoordinatorLink(
            settings.coordinator.split(","),
            wpb.Register(worker_id=worker_id, executors=sorted(executors), capacity=settings.capacity,
                         host=socket.gethostname(), started_at=wire.ts(utcnow())),
            self._on_message,
            self._heartbeat,
            settings.heartbeat_interval,
            token=settings.token,
            credentials=channel_credentials(settings.tls_ca_file, settings.tls_client_cert_file, settings.tls_client_key_file),
        )
        self._fence = Fence(self._keeper, self.link.beating_since)
        self._claimer = Claimer(
            worker_id, store, membership, self._keeper, self.link,
            take=self._take, skipped=self._report_skipped, lookahead=settings.lookahead,
            gained_at=self._fence.since.get, lease_ttl=settings.shard_lease_ttl,
        )

    def _fields(self, prepared: Prepared) -> dict[str, Any]:
        """The fields of a log line about a prepared fire (see `trace`)."""
        return logs.of_fire(prepared.fire, self.worker_id, prepared.token, prepared.run_id)

    def _spawn(self, coro: object) -> None:
        """A task per fire on the hot paths: unnamed, since naming one costs as much as a
        tenth of creating it (coroutine names tell them apart in a debugger anyway)."""
        task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
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
            log.info("worker %s assigned %d shards (map v%d)", self.worker_id, len(message.assignment.shards),
                     message.assignment.version)  # fmt: skip
            self._keeper.assign(set(message.assignment.shards))
        elif kind == "fire_hint":
            fire = wire.fire_from_hint(message.fire_hint)
            # A fire further ahead than the reads reach is read in time; taking it now would
            # claim it early and hold it in memory until it is due.
            if fire.due <= utcnow() + self._settings.lookahead and self._keeper.lease(fire.shard) is not None:
                self._take(fire)
        elif kind == "job_halted":
            halted = message.job_halted
            self._halt(halted.namespace, halted.job_id, wire.from_ts(halted.at, halted.HasField("at")) or utcnow())

    def _halt(self, namespace: str, job_id: str, at: datetime) -> None:
        """The job was paused, cancelled or updated at `at`: its scheduled fires due later do
        not run and leave no record (their claims are marked dropped, so nobody else runs them
        either, unless the job wants that very fire again); a fire due before it that waits
        behind the job's running run is recorded SKIPPED. Fires due before it that are about
        to run, run: they were due. Manual fires and retries (beside the schedule) are dropped
        only if the job was cancelled."""
        ref = (namespace, job_id)
        now = utcnow()
        self._halts = {r: t for r, t in self._halts.items() if now - t < HALT_KEPT}
        self._halts[ref] = max(at, self._halts.get(ref, at))
        beside = False  # a manual fire or retry prepared: dropped only if the job was cancelled
        for prepared in [p for p in self._prepared.values() if (p.fire.namespace, p.fire.job_id) == ref]:
            if self._halted(prepared):
                del self._prepared[fire_key(prepared.fire)]
                self._drop(prepared)
            else:
                beside = beside or prepared.fire.kind is not FireKind.SCHEDULED
        queued = self._queued.pop(ref, None)
        if queued is not None and self._prepared.pop(fire_key(queued.fire), None) is not None:
            skipped = self._report_skipped(queued.fire, queued.job.executor, queued.run_id, RunReason.HALTED,
                                           "the job was halted while this fire waited for its previous run",
                                           queued.completes, queued.token)  # fmt: skip
            self._spawn(self._finish(queued, skipped))
        if self._running.get(ref) or beside:
            self._spawn(self._cancel_if_cancelled(namespace, job_id))

    def _halted(self, prepared: Prepared) -> bool:
        """Whether a halt that came after the fire's job was read drops the fire: a scheduled
        fire due after the halt."""
        at = self._halts.get((prepared.fire.namespace, prepared.fire.job_id))
        return (prepared.fire.kind is FireKind.SCHEDULED and at is not None
                and prepared.read_at <= at < prepared.fire.due)  # fmt: skip

    def _drop(self, prepared: Prepared) -> None:
        """Forgotten, not just handled: a resume or an update may want this very fire again
        (it is then offered again, by a hint or the next read; see Claimer._wanted_again)."""
        if trace.isEnabledFor(DEBUG):
            trace.debug("drop %s at %s: job halted", prepared.fire.job_id, prepared.fire.due, extra=self._fields(prepared))
        self._claimer.drop(prepared)
        self._book.retry_later(prepared.fire, prepared.token)

    async def _cancel_if_cancelled(self, namespace: str, job_id: str) -> None:
        """A cancelled job's runs are asked to stop, and its prepared manual fires and retries
        dropped."""
        job = await self._store.get_job(namespace, job_id)
        if job.state is JobState.CANCELLED:
            for ctx in self._running.get((namespace, job_id), []):
                ctx.cancelled.set()
            for key, prepared in list(self._prepared.items()):
                if (prepared.fire.namespace, prepared.fire.job_id) == (namespace, job_id):
                    del self._prepared[key]
                    self._drop(prepared)

    # -- shards ---------------------------------------------------------------------------
    def _shard_gained(self, shard: int, lease: Lease) -> None:
        log.info("worker %s owns shard %d (token %d)", self.worker_id, shard, lease.token,
                 extra={"shard": shard, "worker": self.worker_id, "token": lease.token})  # fmt: skip
        SHARDS_OWNED.inc()
        self._fence.gained(shard, lease.token)
        self._claimer.forget_live_workers()
        self._book.open(shard)
        self._readers[shard] = asyncio.create_task(self._read_shard(shard, lease.token), name=f"read-shard-{shard}")

    def _shard_lost(self, shard: int, graceful: bool) -> None:
        log.info("worker %s %s shard %d", self.worker_id, "released" if graceful else "lost", shard,
                 extra={"shard": shard, "worker": self.worker_id})  # fmt: skip
        SHARDS_OWNED.dec()
        if not graceful:
            SHARD_LEASES_LOST.inc()
        self._fence.lost(shard, graceful)
        reader = self._readers.pop(shard, None)
        if reader is not None:
            reader.cancel()
        if graceful:
            return  # what we claimed still runs here
        # Lost, not released: a newer owner may be taking these fires over right now.
        for key, prepared in list(self._prepared.items()):
            if prepared.fire.shard == shard:
                del self._prepared[key]
                self._claimer.give_up(prepared)
        self._book.drop_shard(shard)

    def _take(self, fire: Fire) -> None:
        life = self._fence.lives.get(fire.shard)
        if self._accepting and life is not None and self._book.take(fire, life):
            if trace.isEnabledFor(DEBUG):
                trace.debug("take %s at %s (attempt %d, life %d)", fire.job_id, fire.due, fire.attempt, life,
                            extra=logs.of_fire(fire, self.worker_id, life))  # fmt: skip
            self._spawn(self._prepare(fire, life))

    async def _read_shard(self, shard: int, life: int) -> None:
        """Reads the shard's fires from its checkpoint to `lookahead` ahead, forever. The cursor
        (and checkpoint) trails real time by read_margin and never passes an unfinished fire.
        Store errors back off and retry; a stale token gives the shard up (and it is taken
        again with a newer token)."""
        cursor: datetime | None = None
        saved_at = 0.0
        backoff = Backoff(0.2, BACKOFF_CAP_S)
        loop = asyncio.get_running_loop()
        while True:
            try:
                if cursor is None:
                    checkpoint = await self._store.load_checkpoint(shard)
                    cursor = checkpoint.at if checkpoint else utcnow() - self._settings.read_margin
                    trace.debug("shard %d life %d starts at %s", shard, life, cursor,
                                extra={"shard": shard, "worker": self.worker_id, "token": life})  # fmt: skip
                lease = self._keeper.lease(shard)
                if lease is not None and lease.token == life:
                    now = utcnow()
                    # From the cursor each time: rows that landed late behind real time (a slow
                    # store) are found as long as an unfinished fire holds the cursor back.
                    async with self._read_slots:
                        left = await self._read_range(shard, cursor, now + self._settings.lookahead)
                    bound = now - self._settings.read_margin
                    if left is not None:  # not taken (too many in hand): read again from there
                        bound = min(bound, left - EPSILON)
                    cursor = max(cursor, self._book.handled_through(shard, bound))
                    self._book.passed(shard, cursor)
                    if loop.time() - saved_at >= CHECKPOINT_EVERY_S:
                        await self._store.save_checkpoint(Checkpoint(shard, cursor, life))
                        saved_at = loop.time()
                backoff.reset()
                delay = self._settings.poll_interval.total_seconds()
            except StaleOwner as error:
                log.warning("shard %d: %s; giving it up to take it again with a newer token", shard, error,
                            extra={"shard": shard, "worker": self.worker_id, "token": life})  # fmt: skip
                self._keeper.forfeit(shard)
                return
            except Exception as error:  # noqa: BLE001 - the store may be away for a while
                warn.warning("read", "reading shard %d failed: %s", shard, error)
                delay = backoff.next_delay()
            await asyncio.sleep(delay)

    def _room(self) -> int:
        """How many more fires this worker may take in hand."""
        return MAX_IN_HAND - self._book.pending_total()

    async def _read_range(self, shard: int, after: datetime, until: datetime) -> datetime | None:
        """Takes the fires of (after, until] up to MAX_IN_HAND in hand; returns the due time
        of the earliest fire left untaken for lack of room, if any."""
        if self._room() < READ_ROOM_MIN:
            return after + EPSILON  # nothing read: the cursor waits where it is
        left: datetime | None = None
        while True:
            batch = await self._store.due_fires(shard, after, until, READ_LIMIT)
            trace.debug("shard %d read %d fires in (%s, %s]", shard, len(batch), after, until)
            now = utcnow()
            room = self._room()
            # Overdue fires newest first: in a shard just taken over from a dead worker, the
            # oldest ones are mostly done already, and those due since its death are not.
            for fire in sorted(batch, key=lambda f: (1, f.due.timestamp()) if f.due > now else (0, -f.due.timestamp())):
                if self._book.has_seen(fire):
                    continue
                if room <= 0:
                    left = fire.due if left is None else min(left, fire.due)
                    continue
                self._take(fire)
                room -= 1
            if len(batch) < READ_LIMIT or (room <= 0 and left is not None):
                return left  # all read, or no room: later pages wait in the store
            after = batch[-1].due

    # -- preparing ------------------------------------------------------------------------
    async def _prepare(self, fire: Fire, life: int) -> None:
        if self._fence.lives.get(fire.shard) != life or not self._accepting:
            if trace.isEnabledFor(DEBUG):
                trace.debug("fire %s at %s: shard %d life %d over", fire.job_id, fire.due, fire.shard, life,
                            extra=logs.of_fire(fire, self.worker_id, life))  # fmt: skip
            self._book.handled(fire, life)  # the shard's next owner reads it from our checkpoint
            self._later.forget(fire)
            # A claim of it whose claim() failed may have landed: given up, so the next owner
            # runs it (as the same attempt) instead of watching our claim while we live.
            self._claimer.abandon_unsettled(fire)
            return
        backlog = fire.due < self._fence.since.get(fire.shard, fire.due)
        async with self._backlog_slots if backlog else self._prepare_slots:
            try:
                outcome = await self._claimer.claim(fire, backlog=backlog)
                self._later.store_answered()
            except Exception as error:  # noqa: BLE001 - looked at again after a backoff
                warn.warning("prepare", "preparing fire of job %s at %s failed: %s", fire.job_id, fire.due, error,
                             fields=lambda: logs.of_fire(fire, self.worker_id, life))  # fmt: skip
                self._later.store_failed()
                outcome = Later.RETRY
        if trace.isEnabledFor(DEBUG):
            trace.debug("fire %s at %s (attempt %d, life %d): %s", fire.job_id, fire.due, fire.attempt, life,
                        outcome.holder if isinstance(outcome, Prepared) else outcome,
                        extra=logs.of_fire(fire, self.worker_id, life))  # fmt: skip
        if isinstance(outcome, Later):
            if not self._later.schedule(fire, life, outcome):
                # Not a fire the schedule moves to after all: a stale row. Forgotten rather
                # than handled, so it is offered again if whoever moves the schedule to it
                # late (or the next read) finds it.
                self._book.retry_later(fire, life)
            return
        self._later.forget(fire)
        if outcome is None:
            self._book.handled(fire, life)
        elif outcome.token == life:
            self._register(outcome)
        else:  # claimed under a lease that ended meanwhile: not ours to run
            self._claimer.give_up(outcome)
            self._book.handled(fire, life)

    def _register(self, prepared: Prepared) -> None:
        key = fire_key(prepared.fire)
        if key in self._claimer.mine:
            return  # a claim of an earlier life that completed late; the registered one stands
        self._claimer.mine[key] = prepared.holder
        if self._halted(prepared):  # its job was read before a halt that came meanwhile
            self._drop(prepared)
            return
        self._prepared[key] = prepared
        self._timer.add(prepared.fire, at=prepared.fire.due - START_LEAD)

    # -- running --------------------------------------------------------------------------
    def _may_run(self, prepared: Prepared) -> bool | None:
        return self._fence.may_run(prepared.fire.shard, prepared.token)

    async def _dispatch(self) -> None:
        while True:
            for fire in await self._timer.next_due():
                key = fire_key(fire)
                prepared = self._prepared.get(key)
                if prepared is None or prepared.fire != fire:
                    continue  # halted, or its shard was lost
                verdict = self._may_run(prepared)
                if verdict is None:
                    self._timer.add(fire, at=utcnow() + LEASE_WAIT)
                    continue
                if not verdict:
                    del self._prepared[key]
                    if trace.isEnabledFor(DEBUG):
                        trace.debug("give up %s at %s: %s", fire.job_id, fire.due, prepared.holder,
                                    extra=self._fields(prepared))  # fmt: skip
                    self._claimer.give_up(prepared)
                    continue
                pause = self._catchup.delay(fire.shard, utcnow() - fire.due, time.monotonic())
                if pause > 0:  # part of a backlog: its turn comes at the shard's catch-up rate
                    self._timer.add(fire, at=utcnow() + timedelta(seconds=pause))
                    continue
                await self._run_slots.acquire()
                self._spawn(self._run(prepared))

    async def _run(self, prepared: Prepared) -> None:
        outcome: asyncio.Future[None] | _Queued | None = None
        try:
            await self._until_due(prepared)
            if fire_key(prepared.fire) in self._prepared:  # else a halt or the shard's loss took it
                outcome = await self._run_with_overlap(prepared)
        except Exception:
            log.exception("run %s failed unexpectedly", prepared.run_id, extra=self._fields(prepared))
        finally:
            self._run_slots.release()
        if not isinstance(outcome, _Queued):
            await self._finish(prepared, outcome)

    async def _until_due(self, prepared: Prepared) -> None:
        """Waits for the fire's due time, having the begun watermark cover it meanwhile (asked
        for the watermark's lead ahead). The fire stays in `_prepared` until then, so that a
        halt coming meanwhile still drops it."""
        due = prepared.fire.due
        await _sleep_until(due - self._begun.lead)
        self._die_if("cover", prepared)
        await self._begun.cover(due)
        await _sleep_until(due)

    async def _finish(self, prepared: Prepared, durable: asyncio.Future[None] | None) -> None:
        """The fire is handled once its outcome is durable: until then the checkpoint stays
        behind it, so if this worker dies now the fire's new owner still sees it."""
        if durable is not None:
            await asyncio.shield(durable)
        key = fire_key(prepared.fire)
        if self._claimer.mine.get(key) == prepared.holder:
            del self._claimer.mine[key]
        if trace.isEnabledFor(DEBUG):
            trace.debug("finished %s at %s (%s)", prepared.fire.job_id, prepared.fire.due, prepared.holder,
                        extra=self._fields(prepared))  # fmt: skip
        self._book.handled(prepared.fire, prepared.token)

    async def _run_with_overlap(self, prepared: Prepared) -> asyncio.Future[None] | _Queued | None:
        job, fire = prepared.job, prepared.fire
        ref = (job.namespace, job.id)
        if self._running.get(ref) and fire.attempt == 1:
            policy = job.options.overlap_policy
            if policy is OverlapPolicy.SKIP:
                return self._claimed_and_skipped(prepared, "the previous run was still going")
            if policy is OverlapPolicy.QUEUE_ONE:
                if ref in self._queued:
                    return self._claimed_and_skipped(prepared, "a fire was already queued behind the running one")
                self._queued[ref] = prepared
                return _Queued.QUEUED
        durable = await self._execute(prepared)
        queued = self._queued.pop(ref, None)
        if queued is not None:
            self._spawn(self._finish(queued, await self._execute(queued)))
        return durable

    def _claimed_and_skipped(self, prepared: Prepared, why: str) -> asyncio.Future[None]:
        self._prepared.pop(fire_key(prepared.fire), None)
        return self._report_skipped(prepared.fire, prepared.job.executor, prepared.run_id, RunReason.OVERLAP, why,
                                    prepared.completes, prepared.token)  # fmt: skip

    async def _ready(self, prepared: Prepared) -> bool:
        """Whether to call the executor now (nothing may be awaited between this and the
        call): the fire is still wanted (a halt or the shard's loss did not take it out of
        `_prepared`, where it stays until now), the begun watermark covers it, and its shard
        lease is held. A lease lost gives the claim up to the shard's new owner."""
        if self._prepared.pop(fire_key(prepared.fire), None) is None:
            return False
        while True:
            await self._begun.cover(prepared.fire.due)  # at once unless it was queued past it
            verdict = self._may_run(prepared)
            if verdict:
                return True
            if verdict is False:
                self._claimer.give_up(prepared)
                return False
            await asyncio.sleep(LEASE_WAIT.total_seconds())

    async def _execute(self, prepared: Prepared) -> asyncio.Future[None] | None:
        job, fire = prepared.job, prepared.fire
        if not self._policies.loaded.is_set():  # only until the first read after the start
            await self._policies.loaded.wait()
        if not await self._ready(prepared):
            return None
        refusal = self._policies.refusal(job.namespace, job.executor)
        if refusal is not None:
            return self._refused(prepared, refusal)
        self._die_if("call", prepared)
        ref = (job.namespace, job.id)
        counts = self._fire_metrics[(job.namespace, job.executor)]
        ctx = RunContext(job.namespace, job.id, prepared.run_id, fire.attempt, fire.at, job.params,
                         timeout=job.options.timeout)  # fmt: skip
        self._running[ref].append(ctx)
        started = utcnow()
        run = Run(job.namespace, job.id, prepared.run_id, fire.at, fire.attempt, RunStatus.RUNNING, self.worker_id, started,
                  manual=fire.manual, completes=prepared.completes)  # fmt: skip
        if trace.isEnabledFor(DEBUG):
            trace.debug("start %s at %s", fire.job_id, fire.due, extra=self._fields(prepared))
        try:
            executor = self._executors.get(job.executor)
            if executor is None:
                missing = f"executor {job.executor!r} is not on worker {self.worker_id}"
                status, result, error = RunStatus.FAILED, run.result, missing
            else:
                # Never a write between the due time and the call: a successor knows from the
                # begun watermark, not from a start record, whether the executor began. A start
                # record (see _record_long_runs) is for a call that began: marked from its thread.
                self._unrecorded[run.run_id] = (run, prepared.token)
                try:
                    called = await self._call(prepared, executor, ctx, functools.partial(self._began.add, run.run_id))
                finally:
                    self._unrecorded.pop(run.run_id, None)
                    self._began.discard(run.run_id)
                if called is None:
                    return None  # its lease was lost before the call could start: nothing ran
                counts.lateness.observe((started - fire.due).total_seconds())
                if breached(job.options.lateness_slo, fire.manual, fire.attempt, fire.at, started):
                    counts.slo_breaches.inc()
                status, result, error = called.status, called.result, called.error
                if ctx.cancelled.is_set() and status is RunStatus.FAILED:
                    status = RunStatus.CANCELLED
        finally:
            self._running[ref].remove(ctx)
            if not self._running[ref]:
                del self._running[ref]
        ended = utcnow()
        if status in (RunStatus.FAILED, RunStatus.TIMED_OUT):
            await self._claimer.schedule_retry(job, fire, prepared.run_id, ended)
        counts.outcomes[status].inc()
        finished = replace(run, status=status, ended_at=ended, result=result, error=error)
        if self._spans is not None:
            self._spans.record(job, finished, fire.shard, prepared.token)
        return self.link.run_finished(finished, prepared.token)

    def _refused(self, prepared: Prepared, why: str) -> asyncio.Future[None]:
        """A fire whose executor its namespace's policy does not allow (narrowed after the job
        was accepted): FAILED without a call, and not retried (a retry would be refused too)."""
        fire = prepared.fire
        if trace.isEnabledFor(DEBUG):
            trace.debug("refuse %s at %s: %s", fire.job_id, fire.due, why, extra=self._fields(prepared))
        self._fire_metrics[(fire.namespace, prepared.job.executor)].outcomes[RunStatus.FAILED].inc()
        run = Run(fire.namespace, fire.job_id, prepared.run_id, fire.at, fire.attempt, RunStatus.FAILED, self.worker_id,
                  ended_at=max(utcnow(), fire.due), error=why, manual=fire.manual, completes=prepared.completes)  # fmt: skip
        return self.link.run_finished(run, prepared.token)

    async def _call(
        self, prepared: Prepared, executor: Executor, ctx: RunContext, on_start: Callable[[], object]
    ) -> Outcome | None:
        """Calls the executor, unless the lease check made before is stale when the call
        starts (it is made again right before, in the executor's thread: the process may
        have been frozen since, SIGSTOP or a long pause, and its shards moved meanwhile). Then
        the lease is checked again; None if it is lost (the claim is given up, nothing ran)."""
        while True:
            outcome = await self._runner.run(executor, ctx, prepared.job.options.timeout, self._start_by(prepared), on_start)
            if outcome is not None:
                return outcome
            while (verdict := self._may_run(prepared)) is None:
                await asyncio.sleep(LEASE_WAIT.total_seconds())
            if not verdict:
                self._claimer.give_up(prepared)
                return None

    def _start_by(self, prepared: Prepared) -> float:
        """Until when (time.monotonic) the lease check just made holds: while the lease is
        trusted, or (a shard handed over gracefully, whose claimed fires still run here) for
        CALL_FRESH_S."""
        until = self._keeper.trusted_until(prepared.fire.shard)
        if until is None or self._fence.lives.get(prepared.fire.shard) != prepared.token:
            return time.monotonic() + CALL_FRESH_S
        return until

    def _die_if(self, stage: str, prepared: Prepared) -> None:
        name = self._die_at[1]
        if self._die_at[0] == stage and name and prepared.job.name.startswith(name):
            log.warning("worker %s dies at %s of %s (%s)", self.worker_id, stage, prepared.run_id, DIE_ENV,
                        extra=self._fields(prepared))  # fmt: skip
            os.kill(os.getpid(), signal.SIGKILL)

    async def _record_long_runs(self) -> None:
        """Forever: records the start of the runs going for START_RECORD_AFTER_S, through the
        coordinator (which makes them durable together and streams them to WatchRuns). The
        result, sent later, tells the same and more; a start's write timestamp (its start time)
        is older than the result's, so it never overwrites it."""
        while True:
            await asyncio.sleep(START_RECORD_AFTER_S / 2)
            older = utcnow() - timedelta(seconds=START_RECORD_AFTER_S)
            long: list[tuple[Run, int]] = []
            for run, token in self._unrecorded.values():  # oldest first
                if run.started_at is None or run.started_at > older:
                    break
                if run.run_id in self._began:  # else a stale lease check stopped its call so far
                    long.append((run, token))
            for run, token in long:
                del self._unrecorded[run.run_id]
                self.link.run_finished(run, token)  # a RUNNING event: acknowledged like any other

    async def _sample_past_due(self) -> None:
        """Forever, every second: how many prepared fires are past due and not yet called (a
        scan of those in hand: a few hundred microseconds at thousands of them)."""
        while True:
            now = utcnow()
            count = sum(1 for prepared in self._prepared.values() if prepared.fire.due < now)
            PAST_DUE.inc(count - self._past_due)
            self._past_due = count
            await asyncio.sleep(1.0)

    def _report_skipped(
        self, fire: Fire, executor: str, run_id: str, reason: RunReason, why: str, completes: JobCompletion | None,
        token: int,
    ) -> asyncio.Future[None]:
        self._fire_metrics[(fire.namespace, executor)].outcomes[RunStatus.SKIPPED].inc()
        ended = max(utcnow(), fire.due)
        run = Run(fire.namespace, fire.job_id, run_id, fire.at, fire.attempt, RunStatus.SKIPPED, self.worker_id,
                  ended_at=ended, error=why, reason=reason, manual=fire.manual, completes=completes)
        return self.link.run_finished(run, token)

    # -- life cycle -----------------------------------------------------------------------
    async def run(self, stop: asyncio.Event) -> None:
        """Runs until `stop` is set, then shuts down gracefully: leases released at once (the
        leader moves the shards), fires already claimed here run, results are flushed."""
        loops = [
            asyncio.create_task(self.link.run(), name="link"),
            asyncio.create_task(self._dispatch(), name="dispatch"),
            asyncio.create_task(self._later.run(), name="look-again"),
            asyncio.create_task(self._begun.run(), name="begun-watermark"),
            asyncio.create_task(self._record_long_runs(), name="long-runs"),
            asyncio.create_task(self._policies.run(), name="namespace-policies"),
            asyncio.create_task(self._sample_past_due(), name="past-due"),
        ]
        keeper = asyncio.create_task(self._keeper.run(), name="shard-keeper")
        try:
            await stop.wait()
        finally:
            log.info("worker %s stopping", self.worker_id)
            self._accepting = False
            await self.link.send_heartbeat()  # says we are leaving: the leader moves our shards
            self._keeper.stop()  # should the cancel be lost (see ShardKeeper.stop)
            keeper.cancel()
            await asyncio.gather(keeper, return_exceptions=True)  # releases every lease
            deadline = time.monotonic() + self._settings.lookahead.total_seconds() + 1
            while (self._prepared or self._running) and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            for prepared in list(self._prepared.values()):  # could not run in time: hand over
                self._claimer.give_up(prepared)
            self._prepared.clear()
            if self._tasks:
                await asyncio.wait(set(self._tasks), timeout=30)
            self._claimer.abandon_all_unsettled()  # claims whose claim() failed, not retried yet
            await self._claimer.drain(timeout=5)
            await self.link.flush(timeout=10)
            await cancel_all(loops)  # a lost cancel must not keep the process up
            PAST_DUE.dec(self._past_due)
            self._runner.close()
            log.info("worker %s stopped", self.worker_id)
