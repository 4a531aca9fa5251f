"""What decides the fate of a dead worker's fires, without processes: the begun watermark's
writer, the attempt that follows a cut-off run, dropped claims, and the wire form of reasons
and policies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hourglass_core import claims, errors, wire
from hourglass_core.firing import WORKER_LOST_EXTRA_ATTEMPTS, after_worker_lost
from hourglass_core.models import (
    CronTrigger,
    DstGap,
    DstRepeat,
    Fire,
    FireKind,
    IntervalTrigger,
    Job,
    JobOptions,
    JobState,
    Payload,
    RetryPolicy,
    Run,
    RunReason,
    RunStatus,
    WorkerLostPolicy,
)
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_worker import begun
from hourglass_worker.begun import BegunMark

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


class SlowStore:
    """Records every watermark written; each write takes `delay` and may be made to fail.
    `elapsed` adds up the delays: a timer that sees only the writes, whatever else the box does."""

    def __init__(self, delay: float = 0.01) -> None:
        self.delay = delay
        self.written: list[datetime] = []
        self.failures = 0
        self.elapsed = 0.0

    def timer(self) -> float:
        return self.elapsed

    async def save(self, through: datetime) -> None:
        await asyncio.sleep(self.delay)
        self.elapsed += self.delay
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store away")
        self.written.append(through)


@pytest.fixture
async def mark_and_store() -> AsyncIterator[tuple[BegunMark, SlowStore]]:
    store = SlowStore()
    mark = BegunMark(store.save)
    task = asyncio.create_task(mark.run())
    yield mark, store
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_cover_returns_only_once_a_watermark_at_or_past_the_due_time_is_durable(
    mark_and_store: tuple[BegunMark, SlowStore],
) -> None:
    mark, store = mark_and_store
    due = datetime.now(UTC) + timedelta(seconds=5)
    await mark.cover(due)
    assert store.written and store.written[-1] >= due and mark.durable == store.written[-1]


async def test_fires_asking_together_share_one_write(mark_and_store: tuple[BegunMark, SlowStore]) -> None:
    mark, store = mark_and_store
    now = datetime.now(UTC)
    await asyncio.gather(*(mark.cover(now + timedelta(milliseconds=i)) for i in range(50)))
    assert len(store.written) <= 2  # the first ask writes at once; the others wait for one more
    written = len(store.written)
    await mark.cover(now + timedelta(milliseconds=5))  # covered already: no write
    assert len(store.written) == written


async def test_a_failed_write_is_retried_and_no_fire_is_covered_meanwhile(
    mark_and_store: tuple[BegunMark, SlowStore],
) -> None:
    mark, store = mark_and_store
    store.failures = 2
    due = datetime.now(UTC)
    waiter = asyncio.create_task(mark.cover(due))
    await asyncio.sleep(0.05)
    assert not waiter.done() and mark.durable < due
    await asyncio.wait_for(waiter, 5)
    assert mark.durable >= due and store.failures == 0


async def test_the_watermark_never_moves_back_and_reaches_only_a_few_leads_ahead(
    mark_and_store: tuple[BegunMark, SlowStore],
) -> None:
    mark, store = mark_and_store
    for _ in range(5):
        asked = datetime.now(UTC)
        await mark.cover(asked)
        assert mark.durable - asked <= begun.REACH * begun.MAX_LEAD + timedelta(milliseconds=50)
    assert store.written == sorted(store.written)


async def test_the_lead_follows_the_slowest_recent_write_within_its_bounds() -> None:
    store = SlowStore(delay=0.04)
    mark = BegunMark(store.save, timer=store.timer)
    assert mark.lead == begun.FIRST_LEAD
    task = asyncio.create_task(mark.run())
    try:
        await mark.cover(datetime.now(UTC) + timedelta(seconds=1))
        assert mark.lead == timedelta(milliseconds=60)  # 1.5 times the 40 ms write
        store.delay = 0.001
        for _ in range(40):  # the slow write ages out of the window
            await mark.cover(mark.durable + timedelta(seconds=1))
        assert mark.lead == begun.MIN_LEAD
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _job(max_attempts: int, policy: WorkerLostPolicy) -> Job:
    options = JobOptions(retry=RetryPolicy(max_attempts=max_attempts), on_worker_lost=policy)
    return Job("default", "j1", "n", "echo", IntervalTrigger(timedelta(seconds=10), T0), 0, Payload(), options, {}, "",
               JobState.ACTIVE, T0, 3, T0)  # fmt: skip


def test_a_cut_off_run_is_retried_beyond_max_attempts_by_default_up_to_the_poison_limit() -> None:
    job = _job(1, WorkerLostPolicy.RETRY)
    fire = Fire(T0, "default", "j1", 3)
    retry = after_worker_lost(job, fire, jitter=0.5)
    assert retry is not None and (retry.attempt, retry.kind, retry.shard) == (2, FireKind.RETRY, 3)
    assert retry.due > fire.due  # the retry policy's backoff, from the fire's due time
    assert after_worker_lost(job, fire, 0.5) == retry  # the same for every worker that recovers it
    last = replace(fire, attempt=1 + WORKER_LOST_EXTRA_ATTEMPTS)
    assert after_worker_lost(job, last, 0.5) is None


def test_record_retries_a_cut_off_run_only_as_the_retry_policy_allows() -> None:
    fire = Fire(T0, "default", "j1", 3)
    assert after_worker_lost(_job(1, WorkerLostPolicy.RECORD), fire, 0.5) is None
    retry = after_worker_lost(_job(2, WorkerLostPolicy.RECORD), fire, 0.5)
    assert retry is not None and retry.attempt == 2


def test_dropped_claims_parse_back_and_differ_from_abandoned_ones() -> None:
    holder = claims.holder_id("w1", 7)
    assert claims.parse(claims.dropped(holder)) == claims.Holder("w1", 7, dropped=True)
    assert claims.parse(claims.abandoned(holder)) == claims.Holder("w1", 7, abandoned=True)


@pytest.mark.parametrize("field", ["on_worker_lost", "misfire_policy", "overlap_policy"])
def test_an_unknown_policy_number_is_invalid_argument_naming_the_field(field: str) -> None:
    spec = pb.JobSpec(name="n", executor="echo", trigger=pb.Trigger(once=pb.OnceTrigger(at=wire.ts(T0))))
    setattr(spec.options, field, 42)
    with pytest.raises(errors.InvalidArgument) as raised:
        wire.spec_from_pb(spec, T0, "jobs[3]")
    assert raised.value.field == f"jobs[3].options.{field}"


def test_policies_and_reasons_round_trip_through_the_wire() -> None:
    options = JobOptions(on_worker_lost=WorkerLostPolicy.RECORD)
    assert wire.options_from_pb(wire.options_to_pb(options)) == options
    assert wire.options_from_pb(pb.JobOptions()).on_worker_lost is WorkerLostPolicy.RETRY  # unset: the default
    for reason in [*RunReason, None]:
        run = Run("d", "j", "r", T0, 1, RunStatus.SKIPPED, "w1", ended_at=T0, error="why", reason=reason)
        assert wire.run_from_pb(wire.run_to_pb(run)) == run
        assert wire.run_from_event(wire.run_finished_to_pb(run, 1), "sender") == run


def test_manual_fires_and_runs_keep_their_mark_on_the_wire() -> None:
    fire = Fire(T0, "default", "j1", 3, kind=FireKind.MANUAL)
    assert wire.fire_from_hint(wire.fire_to_hint(fire)).kind is FireKind.MANUAL
    assert wire.fire_from_hint(wire.fire_to_hint(replace(fire, kind=FireKind.SCHEDULED))).kind is FireKind.SCHEDULED
    run = Run("default", "j1", "r", T0, 1, RunStatus.SUCCEEDED, "w", T0, T0, manual=True)
    assert wire.run_from_pb(wire.run_to_pb(run)) == run
    assert wire.run_from_event(wire.run_finished_to_pb(run, 7), "w") == run



def test_cron_dst_policies_cross_the_wire_and_unknown_values_name_their_field() -> None:
    trigger = CronTrigger("30 1 * * *", "Europe/London", dst_gap=DstGap.SKIP, dst_repeat=DstRepeat.TWICE)
    assert wire.trigger_from_pb(wire.trigger_to_pb(trigger), T0) == trigger
    message = wire.trigger_to_pb(trigger)
    message.cron.dst_repeat = 9  # type: ignore[assignment]
    with pytest.raises(errors.InvalidArgument) as caught:
        wire.trigger_from_pb(message, T0, "job.trigger")
    assert caught.value.field == "job.trigger.cron.dst_repeat"
