"""Taking over claims (worker `Claimer`) on the embedded store and in-process leases: what the
shard's new owner does with a fire an earlier holder claimed, by what that holder left behind."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from hourglass_coordinator.jobs import JobsApi
from hourglass_core import claims
from hourglass_core.firing import run_id_for
from hourglass_core.leases.base import WorkerInfo
from hourglass_core.leases.memory import MemoryLeases, MemoryMembership
from hourglass_core.models import (
    Fire,
    FireKind,
    IntervalTrigger,
    Job,
    JobSpec,
    JobState,
    OnceTrigger,
    Run,
    RunReason,
    RunStatus,
)
from hourglass_core.store.base import Store
from hourglass_worker.claiming import Claimer, Later, Prepared
from hourglass_worker.shards import ShardKeeper


class _Link:
    """Stands in for the coordinator stream: records what would be reported."""

    def __init__(self) -> None:
        self.reported: list[Run] = []

    def run_finished(self, run: Run, token: int = 0) -> asyncio.Future[None]:
        self.reported.append(run)
        acknowledged: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        acknowledged.set_result(None)
        return acknowledged


async def _claimed_fire(store: Store, holder: str) -> Fire:
    """A once-job due a second ago whose fire `holder` claimed (moving its schedule on)."""

    async def no_hint(fires: Any) -> None:
        return None

    api = JobsApi(store, num_shards=1, max_params_bytes=1024, hint=no_hint)
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    [created] = await api.submit([JobSpec(name="j", executor="echo", trigger=OnceTrigger(at=due))])
    job = created.job
    assert job.next_fire_time is not None
    fire = Fire(due=job.next_fire_time, namespace=job.namespace, job_id=job.id, shard=job.shard)
    assert await store.claim_fire(fire, holder, 5)
    await store.advance_schedule(job, None)
    return fire


async def _new_owner(store: Store, link: _Link, taken: list[Fire] | None = None, *, held_for: float = 10.0,
                     worker: str = "w2", membership: MemoryMembership | None = None) -> Claimer:
    """`worker` (w2), holding shard 0 for `held_for` seconds already."""
    keeper = ShardKeeper(MemoryLeases(), worker, timedelta(seconds=3), lambda s, lease: None, lambda s, g: None)
    keeper.assign({0})
    await keeper._step()
    take = (taken if taken is not None else []).append
    gained = datetime.now(UTC) - timedelta(seconds=held_for)
    return Claimer(worker, store, membership or MemoryMembership(), keeper, link,  # type: ignore[arg-type]
                   take=take, skipped=lambda *a: None, lookahead=timedelta(seconds=3),
                   gained_at=lambda shard: gained, lease_ttl=timedelta(seconds=3))


async def test_reading_a_job_takes_its_next_fire_whoever_moved_the_schedule(fresh_sqlite_store: Store) -> None:
    """w1 claimed a fire and moved the schedule on, but never took the next fire (its write
    timed out, or it died): the shard's owner, reading the job for the claimed fire, takes it."""
    w1 = claims.holder_id("w1", 5)
    fire = await _claimed_fire(fresh_sqlite_store, w1)  # a once-job: give it a next fire by hand
    job = await fresh_sqlite_store.get_job(fire.namespace, fire.job_id)
    nxt = Fire(due=datetime.now(UTC) + timedelta(seconds=1), namespace=job.namespace, job_id=job.id, shard=job.shard)
    await fresh_sqlite_store.set_job_state(job.namespace, job.id, JobState.ACTIVE, nxt)
    taken: list[Fire] = []
    claimer = await _new_owner(fresh_sqlite_store, _Link(), taken)

    await claimer.claim(fire, backlog=True)

    assert [(f.job_id, f.due, f.attempt) for f in taken] == [(job.id, nxt.due, 1)]


@pytest.mark.parametrize(
    ("left", "same_attempt"),
    [("abandoned", True), ("watermark before the due time", True), ("watermark at the due time", False),
     ("start record", False)],
)
async def test_what_a_dead_holder_left_decides_between_the_same_attempt_and_a_cut_off_run(
    fresh_sqlite_store: Store, left: str, same_attempt: bool
) -> None:
    """w1 claimed a fire and then died (or gave the claim up). It called no executor of a fire
    due after its begun watermark, and gave up only fires it did not call: the new owner runs
    those as the same attempt. Otherwise the run may have been under way: it is recorded LOST
    with reason worker_lost, and (on_worker_lost RETRY, the default) attempt 2 follows even
    though max_attempts is 1."""
    store = fresh_sqlite_store
    w1 = claims.holder_id("w1", 5)
    fire = await _claimed_fire(store, w1)
    run_id = run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)
    if left == "abandoned":
        await store.save_begun("w1", fire.due + timedelta(seconds=1))  # irrelevant: it gave the claim up
        assert await store.steal_claim(fire, w1, claims.abandoned(w1), 5)
    elif left == "watermark before the due time":
        await store.save_begun("w1", fire.due - timedelta(microseconds=1))
    elif left == "watermark at the due time":
        await store.save_begun("w1", fire.due)
    else:
        await store.record_run(Run(fire.namespace, fire.job_id, run_id, fire.due, 1, RunStatus.RUNNING, "w1", fire.due))
    link, taken = _Link(), list[Fire]()
    claimer = await _new_owner(store, link, taken)

    outcome = await claimer.claim(fire, backlog=True)

    if same_attempt:
        assert isinstance(outcome, Prepared) and outcome.run_id == run_id and outcome.fire.attempt == 1
        assert link.reported == [] and taken == []
        assert claims.parse(await store.claim_owner(fire) or "").worker_id == "w2"
    else:
        assert outcome is None
        [lost] = link.reported
        assert (lost.run_id, lost.status, lost.reason, lost.worker_id) == (run_id, RunStatus.LOST, RunReason.WORKER_LOST, "w1")
        assert [(f.attempt, f.kind) for f in taken] == [(2, FireKind.RETRY)]


async def test_another_workers_claim_is_not_taken_over_before_the_shard_was_held_for_a_lease_ttl(
    fresh_sqlite_store: Store,
) -> None:
    """After the lease backend lost its data a shard is leased again at once, while its earlier
    owner may still trust its lease (and call executors) for up to a ttl: its claims wait."""
    w1 = claims.holder_id("w1", 5)
    fire = await _claimed_fire(fresh_sqlite_store, w1)
    claimer = await _new_owner(fresh_sqlite_store, _Link(), held_for=1.0)

    assert await claimer.claim(fire, backlog=True) is Later.WATCH
    assert await fresh_sqlite_store.claim_owner(fire) == w1


async def test_a_dropped_claim_is_left_alone(fresh_sqlite_store: Store) -> None:
    """w1 dropped the fire (its job was paused before it was due) and then died."""
    w1 = claims.holder_id("w1", 5)
    fire = await _claimed_fire(fresh_sqlite_store, w1)
    assert await fresh_sqlite_store.steal_claim(fire, w1, claims.dropped(w1), 5)
    link = _Link()
    claimer = await _new_owner(fresh_sqlite_store, link)

    assert await claimer.claim(fire, backlog=True) is None
    assert link.reported == []
    assert await fresh_sqlite_store.claim_owner(fire) == claims.dropped(w1)


async def test_a_result_landing_after_the_holder_was_read_is_not_taken_for_a_cut_off(
    fresh_sqlite_store: Store,
) -> None:
    """w1 was read holding the claim with its run under way; then it finished the run and
    left (a graceful shutdown). The new owner must not record a finished run LOST and retry it."""
    w1 = claims.holder_id("w1", 5)
    fire = await _claimed_fire(fresh_sqlite_store, w1)
    job = await fresh_sqlite_store.get_job(fire.namespace, fire.job_id)
    run_id = run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)
    running = Run(fire.namespace, fire.job_id, run_id, fire.due, 1, RunStatus.RUNNING, "w1", datetime.now(UTC))
    await fresh_sqlite_store.record_run(replace(running, status=RunStatus.SUCCEEDED, ended_at=datetime.now(UTC)))
    link = _Link()
    claimer = await _new_owner(fresh_sqlite_store, link)

    outcome = await claimer.settle_claimed(job, fire, may_run=True, known=(w1, running))

    assert outcome is None
    assert link.reported == []
    assert (await fresh_sqlite_store.get_run(run_id)).status is RunStatus.SUCCEEDED


class _TimesOutOnce:
    """The store, but the first call of `failing` (the claims, or the schedule moves after won
    claims) lands and then times out (as a coalesced batch does: every claim in it fails)."""

    def __init__(self, store: Store, failing: str) -> None:
        self._store = store
        self._failing = failing
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def _fail_once(self, call: str) -> None:
        if call == self._failing and not self.failed:
            self.failed = True
            raise TimeoutError(f"{call} timed out (but applied)")

    async def claim_fires(self, claims: Sequence[tuple[Fire, str, int]]) -> list[bool]:
        won = await self._store.claim_fires(claims)
        self._fail_once("claim_fires")
        return won

    async def advance_schedules(self, moves: Sequence[tuple[Job, Fire | None, datetime]]) -> None:
        await self._store.advance_schedules(moves)
        self._fail_once("advance_schedules")


_FAILING = pytest.mark.parametrize("failing", ["advance_schedules", "claim_fires"])


async def _recurring_fire(store: Store) -> Fire:
    """An hourly job's fire due a second ago, claimed by nobody yet."""

    async def no_hint(fires: Any) -> None:
        return None

    api = JobsApi(store, num_shards=1, max_params_bytes=1024, hint=no_hint)
    due = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    trigger = IntervalTrigger(every=timedelta(hours=1), start=due)
    [created] = await api.submit([JobSpec(name="j", executor="echo", trigger=trigger)])
    job = created.job
    assert job.next_fire_time is not None
    return Fire(due=job.next_fire_time, namespace=job.namespace, job_id=job.id, shard=job.shard)


@_FAILING
async def test_a_claim_whose_schedule_move_failed_runs_as_the_same_attempt_when_tried_again(
    fresh_sqlite_store: Store, failing: str
) -> None:
    """w2 claims a fire, and the schedule move after it (or the claim's answer) lands but times
    out: claim() fails, and
    the fire is tried again. The claim is w2's own and its executor never ran, although w2, busy
    with other fires, has a begun watermark past the due time: the same attempt runs, nothing
    is recorded LOST, no retry follows."""
    flaky = _TimesOutOnce(fresh_sqlite_store, failing)
    fire = await _recurring_fire(fresh_sqlite_store)
    await fresh_sqlite_store.save_begun("w2", fire.due + timedelta(seconds=1))
    link, taken = _Link(), list[Fire]()
    claimer = await _new_owner(cast(Store, flaky), link, taken)

    with pytest.raises(TimeoutError):
        await claimer.claim(fire)
    assert flaky.failed and claims.parse(await fresh_sqlite_store.claim_owner(fire) or "").worker_id == "w2"
    outcome = await claimer.claim(fire)

    run_id = run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)
    assert isinstance(outcome, Prepared) and outcome.run_id == run_id and outcome.fire.attempt == 1
    assert outcome.holder == await fresh_sqlite_store.claim_owner(fire)
    assert link.reported == [] and [f for f in taken if f.kind is FireKind.RETRY] == []
    assert claimer.unsettled == {}


@_FAILING
async def test_a_claim_whose_schedule_move_failed_is_handed_over_when_the_shard_life_ends(
    fresh_sqlite_store: Store, failing: str
) -> None:
    """w1 claims a fire, the schedule move after it (or the claim's answer) times out, and the shard is released (a
    graceful handover) before the fire is tried again: the claim is marked abandoned, so the
    shard's new owner runs the fire as the same attempt, although w1 is still alive, rather
    than watch w1's claim forever."""
    flaky = _TimesOutOnce(fresh_sqlite_store, failing)
    fire = await _recurring_fire(fresh_sqlite_store)
    old = await _new_owner(cast(Store, flaky), _Link(), worker="w1")
    with pytest.raises(TimeoutError):
        await old.claim(fire)
    holder = await fresh_sqlite_store.claim_owner(fire)
    assert holder is not None and claims.parse(holder).worker_id == "w1"

    assert old.abandon_unsettled(fire)  # what the worker does when it finds the shard's life over
    await old.drain(timeout=5)
    assert await fresh_sqlite_store.claim_owner(fire) == claims.abandoned(holder)
    membership = MemoryMembership()
    await membership.heartbeat(WorkerInfo("w1"), timedelta(seconds=30))
    link, taken = _Link(), list[Fire]()
    new = await _new_owner(fresh_sqlite_store, link, taken, membership=membership)

    outcome = await new.claim(fire, backlog=True)

    run_id = run_id_for(fire.namespace, fire.job_id, fire.due, fire.attempt)
    assert isinstance(outcome, Prepared) and outcome.run_id == run_id and outcome.fire.attempt == 1
    assert link.reported == [] and [f for f in taken if f.kind is FireKind.RETRY] == []
    assert claims.parse(await fresh_sqlite_store.claim_owner(fire) or "").worker_id == "w2"
