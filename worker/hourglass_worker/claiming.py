"""Claiming fires before they are due, and deciding about fires someone else claimed.

One claim per fire, ever (a lightweight transaction); the claim row names its holder as
"worker#token" (see `claims`). A fire found claimed by another holder is:
- left alone once its run finished;
- watched (kept pending, so the shard's checkpoint waits for it) while its holder is a live
  worker, which runs it or is running it;
- left alone when its holder dropped it (the job was halted before the fire was due);
- taken over when its holder died (once this worker has held the shard for a lease ttl, see
  `settle_claimed`), gave the claim up, or is an earlier life of this worker:
  run here as the same attempt if its executor never began, else (cut off mid-run) recorded
  LOST and followed by what the job's on_worker_lost asks. "Never began" is known, not
  guessed: a worker calls no executor of a fire due after its begun watermark (see `begun`),
  so an attempt never runs twice.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import random
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hourglass_core import claims, logs
from hourglass_core.backoff import Backoff, RateLimitedLog, until_done
from hourglass_core.coalesce import Coalescer, coalesced_writes
from hourglass_core.errors import JobNotFound, RunNotFound
from hourglass_core.firing import (
    Action,
    after_worker_lost,
    as_run_by,
    plan_fire,
    retry_fire,
    run_id_for,
    scheduled_fire,
    stable_jitter,
)
from hourglass_core.leases.base import Membership
from hourglass_core.models import Fire, FireKind, Job, JobCompletion, JobState, Run, RunReason, RunStatus
from hourglass_core.store.base import Store
from hourglass_worker.link import CoordinatorLink
from hourglass_worker.metrics import RUNS_LOST, RUNS_RECOVERED, RUNS_RETRIED
from hourglass_worker.shards import SAFE_FRACTION, ShardKeeper
from hourglass_worker.timer import FireKey, fire_key

log = logging.getLogger(__name__)
warn = RateLimitedLog(log)
# Short: a claimer that just died must not look alive to its shard's new owner for long.
LIVE_CACHE_S = 0.25
LOST_ACK_WAIT_S = 10.0
# A fire row whose job row is still missing this long after its due time belongs to a submit
# that never completed (a job row is written last): it is dropped.
ORPHAN_ROW = timedelta(seconds=30)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class Prepared:
    """A fire this worker claimed, waiting in the timer for its due time."""

    job: Job
    fire: Fire
    run_id: str
    holder: str  # the claim row's holder: this worker and `token`
    token: int  # the shard lease (and shard life) the claim was taken under
    read_at: datetime  # when the job was read (a halt after it drops the fire)
    completes: JobCompletion | None = None  # the job's last fire: completed with its run record


class Later(enum.Enum):
    """Look at the fire again shortly: WATCH while another holder runs it, RETRY after an
    error or while the shard's lease is not confirmed, MOVING (a few times, then drop it) while
    the job's schedule may be moving to this fire right now."""

    WATCH = enum.auto()
    RETRY = enum.auto()
    MOVING = enum.auto()


Outcome = Prepared | Later | None  # None: nothing (more) to do here
_SKIPS = {Action.SKIP_MISFIRE: RunReason.MISFIRE, Action.SKIP_CATCHUP: RunReason.CATCHUP}


def _ahead_of_schedule(job: Job, fire: Fire) -> bool:
    return (
        fire.kind is FireKind.SCHEDULED
        and job.state in (JobState.ACTIVE, JobState.PAUSED)  # a resume moves it too
        and (job.next_fire_time is None or fire.at > job.next_fire_time)
    )


class Claimer:
    def __init__(
        self,
        worker_id: str,
        store: Store,
        membership: Membership,
        keeper: ShardKeeper,
        link: CoordinatorLink,
        *,
        take: Callable[[Fire], None],
        skipped: Callable[[Fire, str, str, RunReason, str, None, int], object],  # fire, executor, run id, reason, why, -, token
        lookahead: timedelta,
        gained_at: Callable[[int], datetime | None],
        lease_ttl: timedelta,
    ) -> None:
        self._worker_id = worker_id
        self._store = store
        self._membership = membership
        self._keeper = keeper
        self._link = link
        self._take = take
        self._skipped = skipped
        self._lookahead = lookahead
        self._gained_at = gained_at
        self._lease_ttl = lease_ttl
        # Claims this process will run, is running, or ran without the result acknowledged yet.
        self.mine: dict[FireKey, str] = {}
        # Claims being given up or dropped right now (their fire is watched until that is durable).
        self.abandoning: dict[FireKey, str] = {}
        # Claims this process asked for (as this holder) whose claim() then failed: the claim or
        # the schedule move after it may have landed. Its executor was never called, so a retry
        # that finds the claim runs it as the same attempt, and a life that ends first gives the
        # claim up (see `abandon_unsettled`) rather than leave a live holder's claim behind.
        self.unsettled: dict[FireKey, tuple[str, Fire]] = {}  # holder, fire
        self._live: tuple[float, set[str]] = (float("-inf"), set())
        self._tasks: set[asyncio.Task[None]] = set()
        # Claims of one shard made together go as one conditional batch per time bucket (see
        # Store.claim_fires); one flush per shard at a time, so they never contend.
        self._claims: Coalescer[int, tuple[Fire, str, int], bool] = Coalescer(
            lambda _shard, claims: store.claim_fires(claims), max_items=64, name="claims"
        )
        # The claim winners' schedule moves go to the store together (see advance_schedules).
        self._moves = coalesced_writes(store.advance_schedules, max_items=32, max_flushing=4, name="moves")
        # Jobs of fires prepared together are read together (one read per namespace).
        self._jobs: Coalescer[str, str, Job | None] = Coalescer(self._read_jobs, max_items=32, max_flushing=4, name="job-reads")
        # A dead worker's begun watermark, read once for all its fires being taken over at once
        # (never cached longer: only a read made after its lease expired is final).
        self._begun: Coalescer[str, None, datetime | None] = Coalescer(
            self._read_begun, max_items=1024, name="begun-reads"
        )

    async def claim(self, fire: Fire, *, backlog: bool = False) -> Outcome:
        """See `_claim`. A claim asked for stays in `unsettled` while claim() raises or answers
        Later (the fire is looked at again); a Prepared or None outcome settles it."""
        outcome = await self._claim(fire, backlog=backlog)
        if outcome is None or isinstance(outcome, Prepared):
            self.unsettled.pop(fire_key(fire), None)
        return outcome

    async def _claim(self, fire: Fire, *, backlog: bool = False) -> Outcome:
        """Reads the job, decides, claims the fire and moves the schedule on. `backlog`: the
        fire was due before this worker took its shard over, so its previous owner most likely
        claimed it, and ran it or died with it: its claim and run are read along with the job,
        in one round trip (a shard taken over from a dead worker comes with seconds of such
        fires, and the lateness of those it left undone is the time it takes to find them)."""
        lease = self._keeper.lease(fire.shard)
        if lease is None:
            return Later.RETRY  # not confirmed right now; if the shard is lost, so is the fire here
        run_id = run_id_for(fire.namespace, fire.job_id, fire.at, fire.attempt)
        known: tuple[str | None, Run | None] | None = None
        try:
            if backlog:
                job, holder, run = await asyncio.gather(
                    self._read_job(fire), self._store.claim_owner(fire), self._find_run(run_id)
                )
                if run is not None and run.status.finished:
                    return None
                known = (holder, run)
            else:
                job = await self._read_job(fire)
            job = as_run_by(job, fire)
        except JobNotFound:
            # A submit writes the fire before the job row: the job is being written right now.
            return Later.RETRY if utcnow() - fire.due < ORPHAN_ROW else None
        # After the read: every write it saw is older, so a schedule move decided on it wins
        # over them, and loses to any move made later (a worker frozen from here on cannot
        # put the schedule back).
        read_at = utcnow()
        self._take_next_of(job, fire, read_at)
        plan = plan_fire(job, fire, max(read_at, fire.due))
        if plan.action is Action.DROP and _ahead_of_schedule(job, fire):
            # The schedule moves by writing the next fire's row first and pointing the job at
            # it second (so the job never points at a missing row): a row just ahead of the
            # job's next fire may be one the job is about to point at, not a stale one.
            return Later.MOVING
        if plan.action is Action.DROP:
            # Stale, or a fire a previous owner claimed (and so moved the schedule on): a paused
            # or cancelled job's fire is not run, but a run of it that was cut off is closed.
            may_run = job.state in (JobState.ACTIVE, JobState.COMPLETED)
            return await self.settle_claimed(job, fire, may_run=may_run, known=known)
        holder = claims.holder_id(self._worker_id, lease.token)
        # Kept if already there: a claim an earlier try may have written under an earlier life.
        key = fire_key(fire)
        fresh = key not in self.unsettled
        if fresh:
            self.unsettled[key] = (holder, fire)
        claimed = await self._claims.call(fire.shard, (fire, holder, lease.token))
        if not claimed and fresh:
            self.unsettled.pop(key, None)  # someone else's claim: nothing of ours to settle
        if not claimed and key in self.abandoning:
            return Later.WATCH  # ours, being dropped right now: looked at again once marked
        if not claimed:
            # Read now for settle_claimed below. Dropped by its holder (the job was halted) and
            # wanted again since (resumed or updated back to this very fire): not a claimer that
            # died before moving the schedule on, so the schedule is not moved past it here.
            known = await asyncio.gather(self._store.claim_owner(fire), self._find_run(run_id))
            held_by = known[0]
            if held_by is not None and claims.parse(held_by).dropped:
                return await self._wanted_again(fire, held_by, run_id, may_run=True)
        completes = None
        if plan.advance:
            # After a lost claim this is a no-op unless the claimer died before moving on (the
            # store reads the job again then); after a won one it is ours alone to move. The
            # last fire to run completes its job with its run record: a write less, and the
            # job is not COMPLETED before that fire ran (if it never runs here, whoever takes
            # the claim over completes it as a claimer that died before moving on).
            if claimed and plan.next_fire is None and plan.action is Action.RUN:
                completes = JobCompletion(read_at, job.fired + 1)
            elif claimed:
                await self._moves.call(None, (job, plan.next_fire, read_at))
            else:
                await self._store.advance_schedule(job, plan.next_fire)
            nxt = plan.next_fire
            if nxt is not None and nxt.due <= utcnow() + self._lookahead:
                self._take(nxt)  # at once: when catching up, its due time is behind the read cursor
        if not claimed:
            return await self.settle_claimed(job, fire, may_run=True, known=known)
        if plan.action in _SKIPS:
            self._skipped(fire, job.executor, run_id, _SKIPS[plan.action], plan.reason, None, lease.token)
            return None
        return Prepared(job, fire, run_id, holder, lease.token, read_at, completes)

    async def _read_begun(self, worker_id: str, items: list[None]) -> list[datetime | None]:
        return [await self._store.load_begun(worker_id)] * len(items)

    async def _read_jobs(self, namespace: str, job_ids: list[str]) -> list[Job | None]:
        found = await self._store.get_jobs(namespace, job_ids)
        return [found.get(i) for i in job_ids]

    async def _read_job(self, fire: Fire) -> Job:
        job = await self._jobs.call(fire.namespace, fire.job_id)
        if job is None:
            raise JobNotFound(fire.namespace, fire.job_id)
        return job

    def _take_next_of(self, job: Job, fire: Fire, now: datetime) -> None:
        """Takes the job's current next fire when it is due within the lookahead. Whoever moves
        a schedule takes the new fire at once, but a move whose write timed out (it may land
        later: the worker tries the fire again, finds the job moved on, and never takes the
        new one) or whose mover died leaves the new fire to the shard's reads, which do not
        look far behind real time: every read of the job repairs that."""
        nxt = job.next_fire_time
        if job.state is JobState.ACTIVE and nxt is not None and nxt != fire.at:
            following = scheduled_fire(job, nxt)
            if following.due <= now + self._lookahead:
                self._take(following)

    async def settle_claimed(
        self, job: Job, fire: Fire, *, may_run: bool, known: tuple[str | None, Run | None] | None = None
    ) -> Outcome:
        """For a fire someone (perhaps an earlier life of this worker) claimed; see the module.
        `known`: its claim holder and run, if just read."""
        key = fire_key(fire)
        run_id = run_id_for(fire.namespace, fire.job_id, fire.at, fire.attempt)
        if known is None:
            # Both at once: taking over a dead worker's fires is on the path of their lateness.
            holder, run = await asyncio.gather(self._store.claim_owner(fire), self._find_run(run_id))
        else:
            holder, run = known
        if holder is None:
            return None  # never claimed: a leftover row
        if holder == self.mine.get(key) or key in self.abandoning:
            return Later.WATCH  # ours: running here, or being given up right now
        if run is not None and run.status.finished:
            return None
        if holder == self.unsettled.get(key, ("", fire))[0]:
            return await self._own_unsettled(job, fire, holder, run_id, may_run)
        claimer = claims.parse(holder)
        if claimer.dropped:
            return await self._wanted_again(fire, holder, run_id, may_run)
        others = not claimer.abandoned and claimer.worker_id != self._worker_id
        if others and (not self._held_for_a_ttl(fire.shard) or claimer.worker_id in await self._live_workers()):
            return Later.WATCH
        lease = self._keeper.lease(fire.shard)
        if lease is None:
            return Later.RETRY
        mine = claims.holder_id(self._worker_id, lease.token)
        if not await self._store.steal_claim(fire, holder, mine, lease.token):
            return Later.WATCH  # the claim moved meanwhile: look again
        # A holder that gave its claim up never called the executor (it gives up only fires it
        # did not run); one that died called none due after its begun watermark, read now that
        # its lease is over. A start record is written only once the executor was called.
        if claimer.abandoned or (run is None and not await self._may_have_begun(claimer.worker_id, fire.due)):
            if not may_run:
                return None
            log.info("fire of job %s at %s claimed by %s never began: it runs here", job.id, fire.due, holder,
                     extra=logs.of_fire(fire, self._worker_id, lease.token, run_id))  # fmt: skip
            RUNS_RECOVERED.labels(fire.namespace).inc()
            return Prepared(job, fire, run_id, mine, lease.token, utcnow())
        # Its result may have landed since the read above (a leaving worker finishes what it
        # claimed, then says goodbye): only a run still unfinished now was cut off.
        latest = await self._find_run(run_id)
        if latest is not None and latest.status.finished:
            return None
        log.warning("run %s of job %s was cut off (claimed by %s)", run_id, job.id, holder,
                    extra={**logs.of_fire(fire, self._worker_id, lease.token, run_id), "cut_off_worker": claimer.worker_id})
        if run is None:  # it may have begun just before its holder died: no start record yet
            run = Run(job.namespace, job.id, run_id, fire.at, fire.attempt, RunStatus.RUNNING, claimer.worker_id,
                      manual=fire.manual)  # fmt: skip
        await self._close_cut_off(job, fire, run, claimer.worker_id, lease.token)
        return None

    async def _own_unsettled(self, job: Job, fire: Fire, holder: str, run_id: str, may_run: bool) -> Outcome:
        """A claim this process took but whose claim() failed after (the schedule move timed
        out, or the claim's answer did): no executor of it was called here, so it runs as the
        same attempt, whatever the begun watermark says (a busy worker's is past its due time)."""
        lease = self._keeper.lease(fire.shard)
        if lease is None:
            return Later.RETRY
        mine = claims.holder_id(self._worker_id, lease.token)
        if not may_run:  # its job was halted meanwhile: dropped, as a prepared fire would be
            await self._store.steal_claim(fire, holder, claims.dropped(holder), lease.token)
            return None
        if holder != mine and not await self._store.steal_claim(fire, holder, mine, lease.token):
            return Later.WATCH  # the claim moved meanwhile: look again
        return Prepared(job, fire, run_id, mine, lease.token, utcnow())

    def abandon_unsettled(self, fire: Fire) -> bool:
        """The fire's shard life ended before a claim of it, whose claim() failed, was settled:
        marks the claim abandoned (a no-op if it never landed), so the shard's owner runs the
        fire as the same attempt instead of watching a live worker's claim forever."""
        entry = self.unsettled.pop(fire_key(fire), None)
        if entry is None:
            return False
        holder, claimed = entry
        run_id = run_id_for(fire.namespace, fire.job_id, fire.at, fire.attempt)
        self._spawn_mark(claimed, holder, claims.parse(holder).token or 0, run_id, claims.abandoned(holder), "abandon")
        return True

    def abandon_all_unsettled(self) -> None:
        """On shutdown, once every lease is released: see `abandon_unsettled`."""
        for _holder, fire in list(self.unsettled.values()):
            self.abandon_unsettled(fire)

    async def _wanted_again(self, fire: Fire, holder: str, run_id: str, may_run: bool) -> Outcome:
        """A fire whose claim was dropped (its job was paused, cancelled or updated before
        it was due) runs after all only if the job, read after that drop was seen, wants it
        again: it was resumed or updated meanwhile, and this fire is its next one (or a
        manual one of a job not cancelled). The job's first read may predate the halt, so it
        is read again now; the drop was written after the halt's own write, so this read
        sees the halt and whatever followed it."""
        if not may_run:
            return None
        try:
            job = as_run_by(await self._store.get_job(fire.namespace, fire.job_id), fire)
        except JobNotFound:
            return None
        read_at = utcnow()
        plan = plan_fire(job, fire, max(read_at, fire.due))
        if plan.action is not Action.RUN:
            return None
        lease = self._keeper.lease(fire.shard)
        if lease is None:
            return Later.RETRY
        mine = claims.holder_id(self._worker_id, lease.token)
        if not await self._store.steal_claim(fire, holder, mine, lease.token):
            return Later.WATCH  # someone else took it again meanwhile: look again
        if plan.advance:  # the claim is ours now, and so is moving the schedule on from it
            await self._moves.call(None, (job, plan.next_fire, read_at))
            nxt = plan.next_fire
            if nxt is not None and nxt.due <= utcnow() + self._lookahead:
                self._take(nxt)
        log.info("fire of job %s at %s, dropped by %s, is wanted again: it runs here", job.id, fire.at, holder,
                 extra=logs.of_fire(fire, self._worker_id, lease.token, run_id))  # fmt: skip
        return Prepared(job, fire, run_id, mine, lease.token, read_at)

    def _held_for_a_ttl(self, shard: int) -> bool:
        """Whether this worker has held the shard as long as any earlier owner may have
        trusted its own lease. Only then may it take another worker's claims over: a worker
        trusts its lease for SAFE_FRACTION of a ttl after its last renewal, which came before
        this worker got the lease, so from then on the other calls no executor of the shard
        and its begun watermark is final. (Normally its lease had expired before this worker
        got it; not when the lease backend lost its data and the shard was leased again at
        once.)"""
        since = self._gained_at(shard)
        return since is not None and utcnow() - since >= self._lease_ttl * SAFE_FRACTION

    async def _may_have_begun(self, worker_id: str, due: datetime) -> bool:
        through = await self._begun.call(worker_id, None)
        return through is not None and due <= through

    async def _close_cut_off(self, job: Job, fire: Fire, run: Run, worker_id: str, token: int) -> None:
        """Retry first, then LOST: dying in between leaves the run RUNNING, and whoever
        recovers it next writes the very same retry (its due time is derived from the fire
        and the run id, not from the clock), so the retry exists once."""
        retry = after_worker_lost(job, fire, stable_jitter(run.run_id))
        if retry is not None:
            RUNS_RETRIED.labels(fire.namespace, "lost").inc()
            await self._store.put_fire(retry)
            self._take(retry)  # at once: its due time may be behind the shard's read cursor
        then = f"attempt {retry.attempt} follows" if retry is not None else "not retried"
        why = f"{worker_id} died or lost the shard after the executor may have begun; {then}"
        lost = replace(run, status=RunStatus.LOST, ended_at=utcnow(), error=why, reason=RunReason.WORKER_LOST)
        RUNS_LOST.labels(fire.namespace).inc()
        durable = self._link.run_finished(lost, token)
        # The fire counts as handled (and the checkpoint may pass it) once LOST is recorded;
        # if no replica acknowledges it for long, the retry goes on regardless.
        with suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(durable), LOST_ACK_WAIT_S)

    async def schedule_retry(self, job: Job, fire: Fire, run_id: str, now: datetime) -> None:
        """After a run failed or timed out: the next attempt, after an exponential backoff
        with jitter. Written before the failure is reported (see `_close_cut_off`)."""
        retry = retry_fire(job, fire, now, stable_jitter(run_id) * 0.5 + random.random() * 0.5)
        if retry is None:
            return
        RUNS_RETRIED.labels(fire.namespace, "failed").inc()
        await until_done(lambda: self._store.put_fire(retry), warn, "retry", f"writing the retry of run {run_id}", cap=2.0)
        self._take(retry)

    def give_up(self, prepared: Prepared) -> None:
        """This worker will not run a fire it claimed (it lost the shard's lease): marks the
        claim abandoned, so the shard's owner takes it over without waiting for us to die."""
        self._release(prepared, claims.abandoned(prepared.holder), "abandon")

    def drop(self, prepared: Prepared) -> None:
        """The fire's job was halted before the fire was due: marks the claim dropped, so
        nobody runs the fire or records a run of it."""
        self._release(prepared, claims.dropped(prepared.holder), "drop")

    def _release(self, prepared: Prepared, marked: str, what: str) -> None:
        key = fire_key(prepared.fire)
        if self.mine.get(key) == prepared.holder:
            del self.mine[key]
        self._spawn_mark(prepared.fire, prepared.holder, prepared.token, prepared.run_id, marked, what)

    def _spawn_mark(self, fire: Fire, holder: str, token: int, run_id: str, marked: str, what: str) -> None:
        key = fire_key(fire)
        self.abandoning[key] = holder
        task = asyncio.create_task(self._mark(key, fire, holder, token, run_id, marked), name=f"{what}-{run_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _mark(self, key: FireKey, fire: Fire, holder: str, token: int, run_id: str, marked: str) -> None:
        backoff = Backoff(0.1, 2.0)
        try:
            for _ in range(100):
                try:
                    # Moves only the claim this holder has: no-op if the new owner took it.
                    await self._store.steal_claim(fire, holder, marked, token)
                    return
                except Exception as error:  # noqa: BLE001
                    warn.warning("mark", "marking the claim of run %s %s failed: %s", run_id, marked, error,
                                 fields=lambda: logs.of_fire(fire, self._worker_id, token, run_id))
                    await asyncio.sleep(backoff.next_delay())
        finally:
            if self.abandoning.get(key) == holder:
                del self.abandoning[key]

    def forget_live_workers(self) -> None:
        """The shard map just changed, perhaps because a worker died: look again before
        trusting that any worker is alive."""
        self._live = (float("-inf"), set())

    async def drain(self, timeout: float) -> None:
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=timeout)

    async def _find_run(self, run_id: str) -> Run | None:
        try:
            return await self._store.get_run(run_id)
        except RunNotFound:
            return None

    async def _live_workers(self) -> set[str]:
        at, live = self._live
        if time.monotonic() - at > LIVE_CACHE_S:
            live = {w.worker_id for w in await self._membership.live_workers()}
            self._live = (time.monotonic(), live)
        return live
