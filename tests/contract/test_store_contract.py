"""The `Store` contract suite (README of tests/contract).

Every test here runs against each implementation of `hourglass_core.store.base.Store` --
SQLite (a temporary file) and Cassandra (a fresh keyspace on the node that
`scripts/services.sh start` runs) -- and checks one documented guarantee of the protocol.
A new backend joins by adding a parameter to the `store` fixture in conftest.py; it is done
when this whole file passes unchanged. Tests share one store per backend per session and stay
apart by using their own namespace (`ns`) and shard (`shard`) fixtures.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hourglass_core.backoff import RateLimitedLog
from hourglass_core.errors import (
    InvalidArgument,
    JobNotFound,
    RunNotFound,
    StaleOwner,
    Unavailable,
)
from hourglass_core.firing import job_id_for_key, run_id_for
from hourglass_core.models import (
    CronTrigger,
    DstGap,
    DstRepeat,
    Fire,
    FireKind,
    IntervalTrigger,
    Job,
    JobCompletion,
    JobFilter,
    JobOptions,
    JobState,
    MisfirePolicy,
    NamespacePolicy,
    OnceTrigger,
    OverlapPolicy,
    Payload,
    RetryPolicy,
    Run,
    RunReason,
    RunStatus,
    Trigger,
    WorkerLostPolicy,
)
from hourglass_core.store import cassandra_io, codec
from hourglass_core.store.base import Checkpoint, Store
from hourglass_core.store.cassandra_io import unset_none
from hourglass_core.store.factory import open_store

US = timedelta(microseconds=1)


def now() -> datetime:
    return datetime.now(UTC)


def make_job(
    ns: str,
    shard: int,
    *,
    due: datetime | None = None,
    trigger: Trigger | None = None,
    **fields: object,
) -> tuple[Job, Fire | None]:
    """A job and its first fire at `due` (default: a few seconds from now, odd microseconds)."""
    due = due or now() + timedelta(seconds=5, microseconds=7)
    job = Job(
        namespace=ns,
        id=str(uuid.uuid4()),
        name="job",
        executor="echo",
        trigger=trigger or OnceTrigger(at=due),
        priority=0,
        params=Payload(),
        options=JobOptions(),
        labels={},
        idempotency_key="",
        state=JobState.ACTIVE,
        created_at=now(),
        shard=shard,
        next_fire_time=due,
    )
    job = replace(job, **fields)  # type: ignore[arg-type]
    if job.idempotency_key:  # as every submit names a keyed job (see Store.create_jobs)
        job = replace(job, id=job_id_for_key(ns, job.idempotency_key))
    fire = None
    if job.next_fire_time is not None:
        fire = Fire(job.next_fire_time, ns, job.id, shard, priority=job.priority)
    return job, fire


async def create(store: Store, ns: str, shard: int, **fields: object) -> tuple[Job, Fire]:
    job, fire = make_job(ns, shard, **fields)  # type: ignore[arg-type]
    assert fire is not None
    [created] = await store.create_jobs([(job, fire)])
    assert created.created
    return job, fire


async def all_jobs(store: Store, ns: str, flt: JobFilter, size: int, *, newest: bool = False) -> list[Job]:
    """Every page of list_jobs (list_jobs_newest if `newest`), in order."""
    listing = store.list_jobs_newest if newest else store.list_jobs
    found: list[Job] = []
    token = ""
    for _ in range(1000):
        page = await listing(ns, flt, size, token)
        assert len(page.items) <= size
        found.extend(page.items)
        token = page.next_page_token
        if not token:
            return found
    raise AssertionError("the listing never returned an empty page token")


async def fires_at(store: Store, fire: Fire) -> list[Fire]:
    return await store.due_fires(fire.shard, fire.due - US, fire.due, 100)


# -- jobs ---------------------------------------------------------------------------------
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
TRIGGERS: dict[str, Trigger] = {
    "once": OnceTrigger(at=datetime(2031, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)),
    "interval": IntervalTrigger(
        every=timedelta(minutes=90, microseconds=5),
        start=datetime(2030, 1, 1, 0, 0, 0, 1, tzinfo=UTC),
        end=datetime(2032, 1, 1, tzinfo=UTC),
    ),
    "interval_open": IntervalTrigger(
        every=timedelta(seconds=1), start=datetime(2030, 1, 1, tzinfo=UTC)
    ),
    "cron": CronTrigger(
        expression="0 30 2 * * 1-5",
        timezone="Europe/Berlin",
        start=datetime(2030, 3, 1, tzinfo=UTC),
        end=datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
    ),
    "cron_plain": CronTrigger(expression="*/5 * * * *"),
}


@pytest.mark.parametrize("kind", TRIGGERS)
async def test_created_job_reads_back_with_every_field(
    store: Store, ns: str, shard: int, kind: str
) -> None:
    job, fire = make_job(
        ns,
        shard,
        trigger=TRIGGERS[kind],
        name="nightly-report",
        executor="reports.build",
        priority=-7,
        params=Payload(b"\x00\xff binary \x10", "application/x-test"),
        options=JobOptions(
            timeout=timedelta(seconds=42, microseconds=3),
            retry=RetryPolicy(
                max_attempts=5,
                initial_backoff=timedelta(milliseconds=250),
                max_backoff=timedelta(minutes=3),
                multiplier=1.5,
            ),
            misfire_policy=MisfirePolicy.SKIP,
            misfire_grace=timedelta(seconds=9),
            overlap_policy=OverlapPolicy.QUEUE_ONE,
            on_worker_lost=WorkerLostPolicy.RECORD,
        ),
        labels={"team": "billing", "tier": "gold", "empty": ""},
        idempotency_key=f"key-{kind}",
        traceparent=TRACEPARENT,
    )
    [created] = await store.create_jobs([(job, fire)])
    assert created.created and created.job == job
    assert await store.get_job(ns, job.id) == job
    assert fire is not None and await fires_at(store, fire) == [fire]


async def test_an_update_right_after_the_insert_is_what_the_job_then_says(store: Store, ns: str, shard: int) -> None:
    """On Cassandra the insert is a plain write the client stamps to the microsecond, the update
    a lightweight transaction the server stamps to the millisecond: in the same millisecond the
    update's cells could sort under the insert's, reported applied yet lost (2 in 300 before)."""
    for _ in range(300):
        job, _ = await create(store, ns, shard)
        assert (await store.update_job(replace(job, name="renamed", version=2), job, None)).name == "renamed"
        assert (await store.get_job(ns, job.id)).version == 2


async def test_an_update_keeps_the_traceparent_of_the_submit(store: Store, ns: str, shard: int) -> None:
    job, _ = await create(store, ns, shard, traceparent=TRACEPARENT)
    changed = replace(job, name="renamed", version=2, traceparent="")
    await store.update_job(changed, job, None)
    stored = await store.get_job(ns, job.id)
    assert stored.name == "renamed" and stored.traceparent == TRACEPARENT
    untraced, _ = await create(store, ns, shard)
    assert (await store.get_job(ns, untraced.id)).traceparent == ""


async def test_job_without_first_fire_is_stored_without_schedule_row(
    store: Store, ns: str, shard: int
) -> None:
    job, _ = make_job(ns, shard, state=JobState.COMPLETED, next_fire_time=None)
    [created] = await store.create_jobs([(job, None)])
    stored = await store.get_job(ns, job.id)
    assert created.created and stored == job and stored.next_fire_time is None


async def test_batch_results_are_in_input_order(store: Store, ns: str, shard: int) -> None:
    first, _ = await create(store, ns, shard, idempotency_key="k0")
    batch = [make_job(ns, shard, name=f"j{i}") for i in range(5)]
    batch.insert(2, make_job(ns, shard, idempotency_key="k0"))
    results = await store.create_jobs(batch)
    assert [r.created for r in results] == [True, True, False, True, True, True]
    assert results[2].job == first
    assert [r.job.name for i, r in enumerate(results) if i != 2] == [f"j{i}" for i in range(5)]


async def test_idempotency_key_returns_first_job_and_writes_nothing_else(
    store: Store, ns: str, shard: int
) -> None:
    first, _ = await create(store, ns, shard, idempotency_key="submit-1", name="first")
    again, again_fire = make_job(ns, shard, idempotency_key="submit-1", name="second")
    again_fire = again_fire and replace(again_fire, due=again_fire.due + timedelta(seconds=1))
    [created] = await store.create_jobs([(again, again_fire)])
    assert not created.created
    assert created.job == first and await store.get_job(ns, first.id) == first
    assert again_fire is not None and await fires_at(store, again_fire) == []
    assert [j.id for j in await all_jobs(store, ns, JobFilter(), 10)] == [first.id]


async def test_same_idempotency_key_twice_in_one_batch_creates_one_job(
    store: Store, ns: str, shard: int
) -> None:
    batch = [make_job(ns, shard, idempotency_key="dup") for _ in range(2)]
    results = await store.create_jobs(batch)
    assert sorted(r.created for r in results) == [False, True]
    assert results[0].job.id == results[1].job.id
    assert len(await all_jobs(store, ns, JobFilter(), 10)) == 1


async def test_submits_racing_on_one_key_store_one_job(store: Store, ns: str, shard: int) -> None:
    job_id = job_id_for_key(ns, "raced")
    racers = [make_job(ns, shard, idempotency_key="raced", name=f"racer-{i}") for i in range(4)]
    results = await asyncio.gather(*(store.create_jobs([racer]) for racer in racers))
    assert {r.job.id for [r] in results} == {job_id}
    stored = await all_jobs(store, ns, JobFilter(), 10)
    assert [j.id for j in stored] == [job_id] and stored[0].name.startswith("racer-")
    [again] = await store.create_jobs([make_job(ns, shard, idempotency_key="raced")])
    assert not again.created and again.job == stored[0]


async def test_a_large_batch_of_jobs_is_stored_whole_and_read_back_together(store: Store, ns: str, shard: int) -> None:
    """More jobs than one write carries, keyed and unkeyed, one with params too large for a
    batch, a key stored before; get_jobs reads them back and leaves unknown ids out."""
    made = [make_job(ns, shard, labels={"n": str(i)}) for i in range(60)]
    made = [make_job(ns, shard, labels={"n": str(i)}, idempotency_key=f"k{i}") if i % 3 == 0 else m
            for i, m in enumerate(made)]  # fmt: skip
    made[7] = (replace(made[7][0], params=Payload(b"p" * 9000)), made[7][1])
    [_] = await store.create_jobs([made[3]])
    created = await store.create_jobs(made)
    assert [c.created for c in created] == [i != 3 for i in range(60)]
    ids = [j.id for j, _ in made]
    found = await store.get_jobs(ns, [*ids, "no-such-job"])
    assert set(found) == set(ids)
    assert found[made[7][0].id].params.data == b"p" * 9000
    assert found[made[30][0].id].labels == {"n": "30"}
    assert await store.get_jobs(ns, []) == {}
    assert {j.id for j in await all_jobs(store, ns, JobFilter(), 100)} >= set(ids)


async def test_idempotency_keys_are_per_namespace(store: Store, ns: str, shard: int) -> None:
    await create(store, ns, shard, idempotency_key="shared")
    await create(store, ns + "x", shard, idempotency_key="shared")  # create() asserts created


async def test_get_unknown_job_raises_job_not_found(store: Store, ns: str) -> None:
    with pytest.raises(JobNotFound):
        await store.get_job(ns, str(uuid.uuid4()))


async def test_list_jobs_pages_visit_every_job_exactly_once(
    store: Store, ns: str, shard: int
) -> None:
    batch = [make_job(ns, shard, name=f"job-{i:03}") for i in range(250)]
    await store.create_jobs(batch)
    seen = await all_jobs(store, ns, JobFilter(), 37)
    ids = [j.id for j in seen]
    assert len(ids) == len(set(ids)) == 250
    assert set(ids) == {job.id for job, _ in batch}
    assert await all_jobs(store, ns + "other", JobFilter(), 37) == []


async def test_list_jobs_filters_by_state_name_prefix_and_labels(
    store: Store, ns: str, shard: int
) -> None:
    specs = [
        ("etl-a", {"team": "data"}, JobState.ACTIVE),
        ("etl-b", {"team": "data", "env": "prod"}, JobState.PAUSED),
        ("etl-c", {"team": "web", "env": "prod"}, JobState.ACTIVE),
        ("web-a", {"team": "data", "env": "prod"}, JobState.ACTIVE),
        ("ETL-d", {"team": "data"}, JobState.ACTIVE),
    ]
    await store.create_jobs(
        [make_job(ns, shard, name=n, labels=lb, state=st) for n, lb, st in specs]
    )

    async def names(flt: JobFilter) -> list[str]:
        return sorted(j.name for j in await all_jobs(store, ns, flt, 2))

    assert await names(JobFilter(state=JobState.PAUSED)) == ["etl-b"]
    assert await names(JobFilter(name_prefix="etl-")) == ["etl-a", "etl-b", "etl-c"]
    assert await names(JobFilter(labels={"env": "prod"})) == ["etl-b", "etl-c", "web-a"]
    assert await names(
        JobFilter(state=JobState.ACTIVE, name_prefix="etl", labels={"team": "data"})
    ) == ["etl-a"]
    assert await names(JobFilter(labels={"team": "nobody"})) == []


async def test_list_jobs_newest_pages_newest_first_across_days_and_skip_deleted_jobs(
    store: Store, ns: str, shard: int
) -> None:
    start = now()
    # Days apart (the Cassandra index is partitioned by day), and two jobs created together.
    ages = [timedelta(days=3), timedelta(days=1, hours=2), timedelta(days=1), timedelta(hours=1), timedelta(0),
            timedelta(0), timedelta(seconds=1)]  # fmt: skip
    batch = [make_job(ns, shard, name=f"n{i}", created_at=start - age) for i, age in enumerate(ages)]
    await store.create_jobs(batch)
    gone = batch[3][0]
    await store.delete_job(ns, gone.id)
    expected = sorted((job for job, _ in batch if job.id != gone.id), key=lambda j: (j.created_at, j.id), reverse=True)
    for size in (1, 2, 50):
        assert [j.id for j in await all_jobs(store, ns, JobFilter(), size, newest=True)] == [j.id for j in expected]
    assert await all_jobs(store, ns + "other", JobFilter(), 5, newest=True) == []


async def test_list_jobs_newest_filters_as_list_jobs_does(store: Store, ns: str, shard: int) -> None:
    start = now()
    specs = [("etl-a", JobState.ACTIVE), ("etl-b", JobState.PAUSED), ("web-a", JobState.ACTIVE), ("etl-c", JobState.ACTIVE)]
    await store.create_jobs([make_job(ns, shard, name=n, state=st, labels={"i": str(i)}, created_at=start + i * US)
                             for i, (n, st) in enumerate(specs)])  # fmt: skip

    async def names(flt: JobFilter) -> list[str]:
        return [j.name for j in await all_jobs(store, ns, flt, 1, newest=True)]

    assert await names(JobFilter(name_prefix="etl-")) == ["etl-c", "etl-b", "etl-a"]
    assert await names(JobFilter(state=JobState.ACTIVE)) == ["etl-c", "web-a", "etl-a"]
    assert await names(JobFilter(labels={"i": "2"})) == ["web-a"]
    with pytest.raises(InvalidArgument) as info:
        await store.list_jobs_newest(ns, JobFilter(), 10, "bm9wZQ")
    assert info.value.field == "page_token"


async def test_list_jobs_rejects_a_token_it_did_not_hand_out(store: Store, ns: str) -> None:
    for token in ("not base64 !", "eyJ4IjoxfQ", "bm9wZQ"):
        with pytest.raises(InvalidArgument) as info:
            await store.list_jobs(ns, JobFilter(), 10, token)
        assert info.value.field == "page_token"


async def test_pause_resume_and_cancel_set_state_and_next_fire(
    store: Store, ns: str, shard: int
) -> None:
    job, _ = await create(store, ns, shard)
    paused = await store.set_job_state(ns, job.id, JobState.PAUSED, None)
    assert paused.state is JobState.PAUSED and paused.next_fire_time is None
    assert await store.get_job(ns, job.id) == paused

    resume_fire = Fire(now() + timedelta(minutes=3, microseconds=11), ns, job.id, shard)
    resumed = await store.set_job_state(ns, job.id, JobState.ACTIVE, resume_fire)
    assert resumed.state is JobState.ACTIVE and resumed.next_fire_time == resume_fire.due
    assert await fires_at(store, resume_fire) == [resume_fire]

    cancelled = await store.set_job_state(ns, job.id, JobState.CANCELLED, None)
    assert cancelled.state is JobState.CANCELLED and cancelled.next_fire_time is None
    assert replace(cancelled, state=job.state, next_fire_time=job.next_fire_time) == job


async def test_set_state_of_unknown_job_raises_job_not_found(store: Store, ns: str) -> None:
    with pytest.raises(JobNotFound):
        await store.set_job_state(ns, "missing", JobState.PAUSED, None)


async def test_advance_schedule_moves_next_fire_and_is_idempotent(
    store: Store, ns: str, shard: int
) -> None:
    job, fire = await create(store, ns, shard, trigger=TRIGGERS["interval"])
    nxt = Fire(fire.due + timedelta(minutes=90), ns, job.id, shard)
    await store.advance_schedule(job, nxt)
    await store.advance_schedule(job, nxt)
    assert (await store.get_job(ns, job.id)).next_fire_time == nxt.due
    assert await fires_at(store, nxt) == [nxt]
    # A repeat with a different next fire (a stale caller) does not move the schedule again.
    await store.advance_schedule(job, replace(nxt, due=nxt.due + timedelta(hours=1)))
    assert (await store.get_job(ns, job.id)).next_fire_time == nxt.due


async def test_advance_schedule_without_next_fire_completes_an_active_job(
    store: Store, ns: str, shard: int
) -> None:
    job, _ = await create(store, ns, shard)
    await store.advance_schedule(job, None)
    await store.advance_schedule(job, None)
    stored = await store.get_job(ns, job.id)
    assert stored.state is JobState.COMPLETED and stored.next_fire_time is None


@pytest.mark.parametrize("keep_next_fire", [False, True], ids=["unscheduled", "scheduled"])
@pytest.mark.parametrize("state", [JobState.PAUSED, JobState.CANCELLED])
async def test_advance_schedule_never_resurrects_or_completes_a_stopped_job(
    store: Store, ns: str, shard: int, state: JobState, keep_next_fire: bool
) -> None:
    job, fire = await create(store, ns, shard)
    await store.set_job_state(ns, job.id, state, fire if keep_next_fire else None)
    before = await store.get_job(ns, job.id)
    nxt = Fire(fire.due + timedelta(minutes=1), ns, job.id, shard)
    await store.advance_schedule(job, nxt)
    await store.advance_schedule(job, None)
    assert await store.get_job(ns, job.id) == before
    assert before.state is state
    assert await fires_at(store, nxt) == []


async def test_advance_schedule_after_resume_moved_the_schedule_changes_nothing(
    store: Store, ns: str, shard: int
) -> None:
    job, fire = await create(store, ns, shard)  # a worker holds this copy of the job
    await store.set_job_state(ns, job.id, JobState.PAUSED, None)
    resumed = Fire(fire.due + timedelta(minutes=5), ns, job.id, shard)
    await store.set_job_state(ns, job.id, JobState.ACTIVE, resumed)
    await store.advance_schedule(job, None)  # stale: must not complete the resumed job
    stored = await store.get_job(ns, job.id)
    assert stored.state is JobState.ACTIVE and stored.next_fire_time == resumed.due


async def test_advance_schedule_by_the_claim_winner_moves_on_without_undoing_a_later_move(
    store: Store, ns: str, shard: int
) -> None:
    job, fire = await create(store, ns, shard, trigger=TRIGGERS["interval"])
    read_at = datetime.now(UTC)  # when the claim winner's read of the job returned
    nxt = Fire(fire.due + timedelta(minutes=90), ns, job.id, shard)
    await store.advance_schedule(job, nxt, read_at=read_at)
    assert (await store.get_job(ns, job.id)).next_fire_time == nxt.due
    assert await fires_at(store, nxt) == [nxt]
    # A pause and resume after that read move the schedule; the winner's move, written late
    # (it was frozen in between), must not put it back.
    await asyncio.sleep(0.01)
    await store.set_job_state(ns, job.id, JobState.PAUSED, None)
    resumed = Fire(fire.due + timedelta(minutes=5), ns, job.id, shard)
    await store.set_job_state(ns, job.id, JobState.ACTIVE, resumed)
    await store.advance_schedule(job, replace(nxt, due=nxt.due + timedelta(hours=1)), read_at=read_at)
    stored = await store.get_job(ns, job.id)
    assert stored.state is JobState.ACTIVE and stored.next_fire_time == resumed.due


async def test_completion_by_the_claim_winner_loses_to_a_later_cancel(store: Store, ns: str, shard: int) -> None:
    job, _ = await create(store, ns, shard)
    other, _ = await create(store, ns, shard)
    read_at = datetime.now(UTC)
    await store.advance_schedule(job, None, read_at=read_at)
    completed = await store.get_job(ns, job.id)
    assert completed.state is JobState.COMPLETED and completed.next_fire_time is None
    # The winner, frozen after its read, completes only after a cancel: the cancel stands.
    await asyncio.sleep(0.01)
    await store.set_job_state(ns, other.id, JobState.CANCELLED, None)
    await store.advance_schedule(other, None, read_at=read_at)
    assert (await store.get_job(ns, other.id)).state is JobState.CANCELLED


async def test_a_run_that_completes_its_job_completes_it_with_its_record(store: Store, ns: str, shard: int) -> None:
    """A once-job's last fire completes the job with its run record (not when it is claimed),
    as the claim winner's move would: idempotently, and never over a later cancel."""
    job, fire = await create(store, ns, shard)
    other, other_fire = await create(store, ns, shard)
    read_at = datetime.now(UTC)
    run = make_run(job, fire.due, RunStatus.SUCCEEDED, started_at=fire.due, ended_at=fire.due + US,
                   completes=JobCompletion(read_at, 1))  # fmt: skip
    await store.record_runs([run])
    await store.record_runs([run])  # sent again: the worker re-sends what was not acknowledged
    completed = await store.get_job(ns, job.id)
    assert (completed.state, completed.next_fire_time, completed.fired) == (JobState.COMPLETED, None, 1)
    assert completed.last_status is RunStatus.SUCCEEDED
    # Cancelled after the claimer's read, before its run was recorded: the cancel stands.
    await asyncio.sleep(0.01)
    await store.set_job_state(ns, other.id, JobState.CANCELLED, None)
    await store.record_runs([replace(make_run(other, other_fire.due, RunStatus.RUNNING, started_at=other_fire.due),
                                     completes=JobCompletion(read_at, 1))])  # fmt: skip
    assert (await store.get_job(ns, other.id)).state is JobState.CANCELLED


# -- schedule -----------------------------------------------------------------------------
async def test_due_fires_are_ordered_bounded_and_limited_across_buckets(
    store: Store, ns: str, shard: int
) -> None:
    # 14 fires 23 s apart starting mid-minute: they span six 60-second buckets.
    base = now().replace(second=30, microsecond=123) + timedelta(minutes=2)
    fires = [Fire(base + i * timedelta(seconds=23), ns, f"job-{i:02}", shard) for i in range(14)]
    retry = Fire(fires[4].due, ns, "job-04", shard, attempt=2, kind=FireKind.RETRY, priority=9)
    other = Fire(fires[5].due, ns, "elsewhere", shard + 1)
    for f in reversed([*fires, retry, other]):
        await store.put_fire(f)

    got = await store.due_fires(shard, fires[2].due, fires[9].due, 100)
    assert got == [fires[3], fires[4], retry, *fires[5:10]]  # after exclusive, until inclusive
    assert await store.due_fires(shard, fires[2].due, fires[9].due, 3) == [
        fires[3], fires[4], retry
    ]  # fmt: skip
    assert await store.due_fires(shard, base - timedelta(hours=1), base + timedelta(hours=1), 100) == [
        *fires[:5], retry, *fires[5:]
    ]  # fmt: skip
    assert await store.due_fires(shard, fires[13].due, fires[13].due + timedelta(days=1), 10) == []
    assert await store.due_fires(shard, fires[9].due, fires[2].due, 10) == []
    assert await store.due_fires(shard, fires[2].due, fires[9].due, 0) == []


async def test_fires_far_in_the_future_are_found(store: Store, ns: str, shard: int) -> None:
    soon = Fire(now() + timedelta(days=400, microseconds=1), ns, "next-year", shard)
    later = Fire(now() + timedelta(days=365 * 30), ns, "in-30-years", shard)
    await store.put_fire(soon)
    await store.put_fire(later)
    assert await fires_at(store, soon) == [soon]
    assert await fires_at(store, later) == [later]


async def test_put_fire_twice_keeps_one_row(store: Store, ns: str, shard: int) -> None:
    fire = Fire(now() + timedelta(minutes=1), ns, "j", shard)
    await store.put_fire(fire)
    await store.put_fire(fire)
    assert await fires_at(store, fire) == [fire]


async def test_exactly_one_of_concurrent_claims_wins(store: Store, ns: str, shard: int) -> None:
    fire = Fire(now(), ns, "contested", shard)
    wins = await asyncio.gather(*(store.claim_fire(fire, f"worker-{i}", 7) for i in range(20)))
    assert wins.count(True) == 1
    winner = f"worker-{wins.index(True)}"
    assert not await store.claim_fire(fire, "latecomer", 8)
    # Its own maker may retry a claim whose answer it lost; nobody else ever wins.
    assert await store.claim_fire(fire, winner, 7)
    assert not await store.claim_fire(fire, winner, 9)


async def test_claim_owner_names_the_winner_or_none(store: Store, ns: str, shard: int) -> None:
    fire = Fire(now(), ns, "j", shard)
    assert await store.claim_owner(fire) is None
    await store.claim_fire(fire, "first", 3)
    await store.claim_fire(fire, "second", 4)
    assert await store.claim_owner(fire) == "first"
    assert await store.claim_owner(replace(fire, attempt=2)) is None


async def test_exactly_one_taker_steals_a_dead_workers_claim(store: Store, ns: str, shard: int) -> None:
    fire = Fire(now(), ns, "orphan", shard)
    assert not await store.steal_claim(fire, "dead", "taker", 9)  # nothing to steal yet
    await store.claim_fire(fire, "dead", 3)
    wins = await asyncio.gather(*(store.steal_claim(fire, "dead", f"taker-{i}", 9) for i in range(10)))
    assert wins.count(True) == 1
    assert await store.claim_owner(fire) == f"taker-{wins.index(True)}"
    assert not await store.steal_claim(fire, "dead", "late", 10)


async def test_claims_are_per_fire_and_attempt(store: Store, ns: str, shard: int) -> None:
    fire = Fire(now(), ns, "j", shard)
    assert await store.claim_fire(fire, "a", 1)
    assert await store.claim_fire(replace(fire, attempt=2, kind=FireKind.RETRY), "b", 1)
    assert await store.claim_fire(replace(fire, due=fire.due + US), "c", 1)
    assert await store.claim_fire(replace(fire, job_id="k"), "d", 1)


async def test_claim_fires_decides_each_fire_of_a_group_as_claim_fire_would(store: Store, ns: str, shard: int) -> None:
    """Many fires of one shard and time bucket (one conditional batch), some claimed already
    by others, one already by the same holder, one given twice, more than a batch carries."""
    base = now()
    fires = [Fire(base + i * US, ns, f"g{i}", shard) for i in range(40)]
    assert await store.claim_fire(fires[3], "other", 1)
    assert await store.claim_fire(fires[35], "other", 1)
    assert await store.claim_fire(fires[7], "me", 5)  # an earlier try whose answer was lost
    elsewhere = Fire(base, ns, "g-next-shard", shard + 1)
    claims = [(f, "me", 5) for f in fires] + [(fires[10], "me", 5), (elsewhere, "me", 5)]
    won = await store.claim_fires(claims)
    assert won == [i not in (3, 35) for i in range(40)] + [True, True]
    assert await store.claim_owner(fires[3]) == "other"
    assert await store.claim_owner(fires[20]) == "me"
    assert await store.claim_fires([(fires[20], "late", 6)]) == [False]
    assert await store.claim_fires([]) == []


async def test_concurrent_group_claims_have_one_winner_per_fire(store: Store, ns: str, shard: int) -> None:
    base = now()
    fires = [Fire(base + i * US, ns, f"c{i}", shard) for i in range(10)]
    results = await asyncio.gather(*(store.claim_fires([(f, f"w{w}", 1) for f in fires]) for w in range(4)))
    for i in range(len(fires)):
        assert [r[i] for r in results].count(True) == 1


async def test_checkpoint_round_trip(store: Store, shard: int) -> None:
    assert await store.load_checkpoint(shard) is None
    checkpoint = Checkpoint(shard, now(), 41)
    await store.save_checkpoint(checkpoint)
    assert await store.load_checkpoint(shard) == checkpoint
    moved = Checkpoint(shard, checkpoint.at + timedelta(seconds=3), 41)
    await store.save_checkpoint(moved)  # the same owner moves on
    assert await store.load_checkpoint(shard) == moved
    taken = Checkpoint(shard, moved.at + timedelta(seconds=1), 42)
    await store.save_checkpoint(taken)  # a newer owner takes over
    assert await store.load_checkpoint(shard) == taken


async def test_checkpoint_with_older_token_raises_stale_owner(store: Store, shard: int) -> None:
    current = Checkpoint(shard, now(), 100)
    await store.save_checkpoint(current)
    with pytest.raises(StaleOwner):
        await store.save_checkpoint(Checkpoint(shard, now() + timedelta(minutes=1), 99))
    assert await store.load_checkpoint(shard) == current


async def test_max_fencing_token_is_the_largest_saved(store: Store, shard: int) -> None:
    top = 10**15 + shard
    assert await store.max_fencing_token() < top
    await store.save_checkpoint(Checkpoint(shard, now(), top))
    await store.save_checkpoint(Checkpoint(shard + 1, now(), 5))
    assert await store.max_fencing_token() == top


# -- runs ---------------------------------------------------------------------------------
def make_run(job: Job, due: datetime, status: RunStatus, **fields: object) -> Run:
    run = replace(Run(job.namespace, job.id, "", due, 1, status), **fields)  # type: ignore[arg-type]
    return replace(run, run_id=run_id_for(run.namespace, run.job_id, run.due, run.attempt))


async def test_record_run_running_then_succeeded_mirrors_on_job(
    store: Store, ns: str, shard: int
) -> None:
    job, fire = await create(store, ns, shard)
    start = fire.due + timedelta(milliseconds=3, microseconds=1)
    running = make_run(job, fire.due, RunStatus.RUNNING, worker_id="w-1", started_at=start)
    await store.record_run(running)
    assert await store.get_run(running.run_id) == running
    stored = await store.get_job(ns, job.id)
    assert (stored.running, stored.last_start_time, stored.last_executor) == (True, start, "w-1")
    assert stored.last_status is None and stored.last_end_time is None

    end = start + timedelta(seconds=2)
    done = replace(running, status=RunStatus.SUCCEEDED, ended_at=end,
                   result=Payload(b"ok", "text/plain"))  # fmt: skip
    await store.record_run(done)
    assert await store.get_run(running.run_id) == done
    stored = await store.get_job(ns, job.id)
    assert not stored.running
    assert (stored.last_end_time, stored.last_status) == (end, RunStatus.SUCCEEDED)
    assert (stored.last_start_time, stored.last_executor) == (start, "w-1")
    assert replace(stored, running=False, last_start_time=None, last_end_time=None,
                   last_executor="", last_status=None) == job  # fmt: skip


async def test_late_running_event_does_not_revert_a_finished_run(
    store: Store, ns: str, shard: int
) -> None:
    job, fire = await create(store, ns, shard)
    start = fire.due + timedelta(milliseconds=1)
    running = make_run(job, fire.due, RunStatus.RUNNING, worker_id="w", started_at=start)
    failed = replace(running, status=RunStatus.FAILED, ended_at=start + timedelta(seconds=1),
                     error="boom")  # fmt: skip
    await store.record_run(failed)  # the RUNNING event arrives only afterwards, twice
    await store.record_run(running)
    await store.record_run(running)
    assert await store.get_run(running.run_id) == failed
    stored = await store.get_job(ns, job.id)
    assert not stored.running and stored.last_status is RunStatus.FAILED
    [listed] = (await store.list_runs(ns, job.id, 10, "")).items
    assert listed == failed


async def test_a_finished_run_without_a_running_event_still_sets_the_jobs_last_start(
    store: Store, ns: str, shard: int
) -> None:
    """Short runs send no RUNNING event; the job shows the start of the run that started last,
    even when an earlier, longer run finishes after it."""
    job, fire = await create(store, ns, shard)
    long_start, short_start = fire.due, fire.due + timedelta(seconds=5)
    short = make_run(job, fire.due, RunStatus.SUCCEEDED, attempt=2, worker_id="w-short", started_at=short_start,
                     ended_at=short_start + timedelta(milliseconds=3))
    long = make_run(job, fire.due, RunStatus.SUCCEEDED, worker_id="w-long", started_at=long_start,
                    ended_at=long_start + timedelta(seconds=10))
    await store.record_run(short)
    stored = await store.get_job(ns, job.id)
    assert (stored.last_start_time, stored.last_executor, stored.running) == (short_start, "w-short", False)
    await store.record_run(long)
    stored = await store.get_job(ns, job.id)
    assert (stored.last_start_time, stored.last_executor) == (short_start, "w-short")
    assert (stored.last_end_time, stored.last_status) == (long.ended_at, RunStatus.SUCCEEDED)


async def test_a_skipped_or_lost_run_keeps_its_reason_beside_its_text(store: Store, ns: str, shard: int) -> None:
    job, fire = await create(store, ns, shard)
    for attempt, (status, reason) in enumerate([(RunStatus.SKIPPED, RunReason.OVERLAP),
                                               (RunStatus.LOST, RunReason.WORKER_LOST)], start=1):  # fmt: skip
        run = make_run(job, fire.due, status, attempt=attempt, worker_id="w", ended_at=fire.due, error="why", reason=reason)
        await store.record_run(run)
        assert await store.get_run(run.run_id) == run
    listed = (await store.list_runs(ns, job.id, 10, "")).items
    assert [(r.attempt, r.reason) for r in listed] == [(2, RunReason.WORKER_LOST), (1, RunReason.OVERLAP)]


async def test_a_begun_watermark_is_durable_and_never_moves_back(store: Store) -> None:
    worker = f"w-{uuid.uuid4().hex[:8]}"
    assert await store.load_begun(worker) is None
    t = now()
    await store.save_begun(worker, t + US)
    await asyncio.gather(*(store.save_begun(worker, t - timedelta(seconds=i)) for i in range(5)))
    assert await store.load_begun(worker) == t + US
    await store.save_begun(worker, t + timedelta(seconds=1))
    assert await store.load_begun(worker) == t + timedelta(seconds=1)
    assert await store.load_begun(worker + "-other") is None


async def test_next_run_sets_running_again(store: Store, ns: str, shard: int) -> None:
    job, fire = await create(store, ns, shard)
    first = make_run(job, fire.due, RunStatus.SUCCEEDED, started_at=fire.due,
                     ended_at=fire.due + timedelta(seconds=1))  # fmt: skip
    second_due = fire.due + timedelta(minutes=1)
    second = make_run(job, second_due, RunStatus.RUNNING, worker_id="w-2",
                      started_at=second_due)  # fmt: skip
    await store.record_run(first)
    await store.record_run(second)
    stored = await store.get_job(ns, job.id)
    assert stored.running and stored.last_executor == "w-2"
    assert stored.last_status is RunStatus.SUCCEEDED


async def test_large_run_result_is_stored_whole(store: Store, ns: str, shard: int) -> None:
    job, fire = await create(store, ns, shard)
    result = Payload(bytes(range(256)) * 400, "application/octet-stream")  # 100 KiB
    run = make_run(job, fire.due, RunStatus.SUCCEEDED, started_at=fire.due,
                   ended_at=fire.due + US, result=result, error="e" * 5000)  # fmt: skip
    await store.record_run(run)
    assert await store.get_run(run.run_id) == run
    assert (await store.get_job(ns, job.id)).last_status is RunStatus.SUCCEEDED


async def test_record_runs_writes_many_runs_of_many_jobs_at_once(store: Store, ns: str, shard: int) -> None:
    """More runs than one batch carries, a large one among them, and a start and a finish
    of the same run in one call (the finish wins, whatever the order)."""
    made = [await create(store, ns, shard) for _ in range(3)]
    runs = [
        make_run(job, fire.due + i * timedelta(seconds=1), RunStatus.SUCCEEDED,
                 started_at=fire.due, ended_at=fire.due + US)
        for job, fire in made
        for i in range(20)
    ]  # fmt: skip
    big = Payload(b"x" * 4000, "application/octet-stream")
    runs[5] = replace(runs[5], result=big)
    late_start = replace(runs[0], status=RunStatus.RUNNING, ended_at=None)
    await store.record_runs([runs[0], late_start, *runs[1:]])
    for run in runs:
        assert await store.get_run(run.run_id) == run
    for job, _ in made:
        stored = await store.get_job(ns, job.id)
        assert stored.last_status is RunStatus.SUCCEEDED and not stored.running
    assert len((await store.list_runs(ns, made[1][0].id, 100, "")).items) == 20


async def test_get_unknown_run_raises_run_not_found(store: Store) -> None:
    with pytest.raises(RunNotFound):
        await store.get_run(str(uuid.uuid4()))


async def test_list_runs_is_newest_first_with_paging(store: Store, ns: str, shard: int) -> None:
    job, fire = await create(store, ns, shard)
    runs = [
        make_run(job, fire.due + i * timedelta(seconds=10), RunStatus.FAILED, attempt=a,
                 started_at=fire.due + i * timedelta(seconds=10), ended_at=fire.due + timedelta(hours=1))
        for i in range(4)
        for a in (1, 2)
    ]  # fmt: skip
    await asyncio.gather(*(store.record_run(r) for r in runs))
    expected = sorted(runs, key=lambda r: (r.due, r.attempt), reverse=True)
    pages: list[list[Run]] = []
    token = ""
    while True:
        page = await store.list_runs(ns, job.id, 3, token)
        pages.append(page.items)
        token = page.next_page_token
        if not token:
            break
    assert [len(p) for p in pages] == [3, 3, 2]
    assert [r for p in pages for r in p] == expected
    assert (await store.list_runs(ns, "no-such-job", 3, "")).items == []
    with pytest.raises(InvalidArgument):
        await store.list_runs(ns, job.id, 3, "garbage!")


# -- executors and schema -----------------------------------------------------------------
async def test_registered_executors_are_known(store: Store) -> None:
    a, b, c = (f"exec-{uuid.uuid4().hex[:8]}" for _ in range(3))
    await store.register_executors([a, b])
    await store.register_executors([b, c])
    assert {a, b, c} <= await store.known_executors()


# -- namespace policies ---------------------------------------------------------------------
async def test_a_namespace_without_a_policy_allows_every_executor(store: Store, ns: str) -> None:
    policy = await store.get_namespace_policy(ns)
    assert policy == NamespacePolicy(ns) and policy.allows("anything")
    assert ns not in await store.namespace_policies()


async def test_a_namespace_policy_is_set_replaced_and_cleared(store: Store, ns: str) -> None:
    other = f"{ns}-other"
    await store.set_namespace_policy(NamespacePolicy(ns, frozenset({"http", "echo"})))
    await store.set_namespace_policy(NamespacePolicy(other, frozenset({"sleep"})))
    assert await store.get_namespace_policy(ns) == NamespacePolicy(ns, frozenset({"echo", "http"}))
    every = await store.namespace_policies()
    assert every[ns].allowed_executors == {"echo", "http"} and every[other].allowed_executors == {"sleep"}

    await store.set_namespace_policy(NamespacePolicy(ns, frozenset({"echo"})))  # the whole set, not added to
    assert await store.get_namespace_policy(ns) == NamespacePolicy(ns, frozenset({"echo"}))
    assert (await store.namespace_policies())[ns].allowed_executors == {"echo"}

    await store.set_namespace_policy(NamespacePolicy(ns))  # cleared: no limit
    assert await store.get_namespace_policy(ns) == NamespacePolicy(ns)
    every = await store.namespace_policies()
    assert ns not in every and every[other].allowed_executors == {"sleep"}
    await store.set_namespace_policy(NamespacePolicy(ns))  # clearing twice is harmless
    assert await store.get_namespace_policy(ns) == NamespacePolicy(ns)


async def test_migrate_is_idempotent(store: Store) -> None:
    first = await store.migrate()
    second = await store.migrate()
    assert first == second >= 1


# -- opening stores -----------------------------------------------------------------------
async def test_open_store_sqlite_memory_works_after_migrate() -> None:
    store = await open_store("sqlite://:memory:", migrate=True)
    try:
        job, fire = make_job("default", 0)
        await store.create_jobs([(job, fire)])
        assert await store.get_job("default", job.id) == job
    finally:
        await store.close()


@pytest.mark.cassandra
async def test_grouped_run_records_stay_under_cassandras_batch_warning(
    cassandra_store: Store, ns: str, shard: int, caplog: pytest.LogCaptureFixture
) -> None:
    """Once-job runs, each completing its job, recorded together as under load: grouped into
    batches Cassandra does not warn about (past batch_size_warn_threshold, 5 KiB by default, it
    logs every batch, and the driver logs its warning again in our process)."""
    made = [await create(cassandra_store, ns, shard) for _ in range(24)]
    runs = [make_run(job, fire.due, RunStatus.SUCCEEDED, started_at=fire.due, ended_at=fire.due + US,
                     completes=JobCompletion(datetime.now(UTC), 1)) for job, fire in made]  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="cassandra"):
        await cassandra_store.record_runs(runs)
    assert [r.getMessage() for r in caplog.records if "Batch for" in r.getMessage()] == []
    states = {(await cassandra_store.get_job(ns, job.id)).state for job, _ in made}
    assert states == {JobState.COMPLETED}


@pytest.mark.cassandra
async def test_a_slow_request_is_logged_with_its_node_and_its_cql(
    cassandra_store: Store, ns: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every request counts as slow here: the line names the node it was sent to, both times
    (to the driver's thread, to the caller) and the statement."""
    monkeypatch.setattr(cassandra_io, "SLOW_REQUEST_S", 0.0)
    monkeypatch.setattr(cassandra_io, "warn", RateLimitedLog(cassandra_io.log))
    with caplog.at_level(logging.WARNING, logger=cassandra_io.__name__), pytest.raises(JobNotFound):
        await cassandra_store.get_job(ns, "no-such-job")
    lines = [r.getMessage() for r in caplog.records if r.name == cassandra_io.__name__]
    assert len(lines) == 1, lines
    pattern = (r"slow cassandra request: \d+\.\d\d s to the driver, \d+\.\d\d s to the caller; "
               r"sent to [\d.]+:\d+: SELECT .* FROM \S*jobs.*")
    assert re.fullmatch(pattern, lines[0]), lines[0]


@pytest.mark.cassandra
async def test_open_store_cassandra_url_reaches_the_same_data(
    cassandra_store: Store, cassandra_url: str, ns: str, shard: int
) -> None:
    job, _ = await create(cassandra_store, ns, shard)
    other = await open_store(cassandra_url)
    try:
        assert await other.get_job(ns, job.id) == job
    finally:
        await other.close()


@pytest.mark.cassandra
async def test_a_job_row_of_the_flat_form_reads_and_updates_as_before(
    cassandra_store: Store, ns: str, shard: int
) -> None:
    """Jobs stored before the spec cell (codec.NARROW_COLUMNS) keep their flat columns."""
    job, _ = make_job(ns, shard, trigger=TRIGGERS["cron"], labels={"team": "billing"}, priority=3,
                      options=JobOptions(timeout=timedelta(seconds=5), overlap_policy=OverlapPolicy.SKIP))  # fmt: skip
    cols = codec.job_columns(job)
    flat = f"INSERT INTO jobs ({', '.join(codec.JOB_COLUMNS)}) VALUES ({', '.join('?' for _ in codec.JOB_COLUMNS)})"
    cql = cassandra_store._cql  # type: ignore[attr-defined]  # the flat form is no longer written
    await cql.execute(cql.session.prepare(flat), unset_none([cols[c] for c in codec.JOB_COLUMNS]))
    assert await cassandra_store.get_job(ns, job.id) == job
    assert (await cassandra_store.get_jobs(ns, [job.id])) == {job.id: job}
    changed = replace(job, priority=4, labels={"team": "ops"}, version=2)
    assert await cassandra_store.update_job(changed, job, None) == changed


@pytest.mark.parametrize(
    "url",
    [
        "mysql://localhost/db",
        "cassandra://",
        "cassandra://127.0.0.1:9042/",
        "cassandra://127.0.0.1:port/ks",
        "cassandra://127.0.0.1/Bad-Keyspace",
        "cassandra://127.0.0.1/ks?replicas=3",
        "sqlite://",
        "no-scheme",
    ],
)
async def test_open_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(ValueError):
        await open_store(url)


async def test_ping_answers_while_the_store_is_up(store: Store) -> None:
    await store.ping()


async def test_unreachable_cassandra_raises_unavailable() -> None:
    with pytest.raises(Unavailable):
        await open_store("cassandra://127.0.0.1:1/hourglass")


async def test_a_deleted_job_is_gone_from_reads_and_listings_and_its_runs_stay(
    store: Store, ns: str, shard: int
) -> None:
    job, fire = await create(store, ns, shard)
    kept, _ = await create(store, ns, shard, name="kept")
    run = make_run(job, fire.due, RunStatus.SUCCEEDED, worker_id="w-1", started_at=fire.due, ended_at=fire.due)
    await store.record_run(run)
    await store.set_job_state(ns, job.id, JobState.CANCELLED, None)
    await store.delete_job(ns, job.id)
    with pytest.raises(JobNotFound):
        await store.get_job(ns, job.id)
    assert await store.get_jobs(ns, [job.id, kept.id]) == {kept.id: kept}
    assert [j.id for j in await all_jobs(store, ns, JobFilter(), 10)] == [kept.id]
    assert await store.get_run(run.run_id) == run
    # A run's mirror cells written late (older than the deletion) do not bring it back.
    await store.record_run(replace(run, attempt=2, run_id=run_id_for(ns, job.id, fire.due, 2)))
    with pytest.raises(JobNotFound):
        await store.get_job(ns, job.id)
    with pytest.raises(JobNotFound):
        await store.delete_job(ns, job.id)


async def test_a_manual_run_reads_back_marked(store: Store, ns: str, shard: int) -> None:
    job, fire = await create(store, ns, shard)
    run = make_run(job, fire.due, RunStatus.SUCCEEDED, worker_id="w-1", started_at=fire.due, ended_at=fire.due,
                   manual=True)  # fmt: skip
    await store.record_run(run)
    assert (await store.get_run(run.run_id)).manual
    assert [r.manual for r in (await store.list_runs(ns, job.id, 10, "")).items] == [True]


async def test_a_cron_jobs_dst_policies_read_back(store: Store, ns: str, shard: int) -> None:
    trigger = CronTrigger("30 1 * * *", "Europe/London", dst_gap=DstGap.SKIP, dst_repeat=DstRepeat.TWICE)
    job, _ = await create(store, ns, shard, trigger=trigger)
    assert (await store.get_job(ns, job.id)).trigger == trigger
    plain, _ = await create(store, ns, shard, trigger=CronTrigger("30 1 * * *", "Europe/London"))
    stored = await store.get_job(ns, plain.id)
    assert isinstance(stored.trigger, CronTrigger)
    assert (stored.trigger.dst_gap, stored.trigger.dst_repeat) == (DstGap.SHIFT_FORWARD, DstRepeat.ONCE)


@pytest.mark.cassandra
async def test_migrate_creates_the_keyspace_with_the_replication_asked_for(cassandra_url: str) -> None:
    """NetworkTopologyStrategy on the single node (datacenter1, as on the ring), and an existing
    keyspace keeps what it has: raising a factor without a repair would lose reads."""
    keyspace = f"hg_repl_{uuid.uuid4().hex[:10]}"
    base, _, query = cassandra_url.partition("?")
    url = f"{base.rpartition('/')[0]}/{keyspace}?{query.replace('rf=1', '')}"
    store = await open_store(url, migrate=True, replication="NetworkTopologyStrategy:datacenter1=1")
    try:
        again = await open_store(url, migrate=True, replication="SimpleStrategy:1")
        await again.close()
        cql = store._cql  # type: ignore[attr-defined]
        rows = await cql.execute("SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = %s", [keyspace])
        assert dict(rows[0]["replication"]) == {
            "class": "org.apache.cassandra.locator.NetworkTopologyStrategy", "datacenter1": "1"}  # fmt: skip
        job, fire = make_job("default", 0)
        await store.create_jobs([(job, fire)])
        assert await store.get_job("default", job.id) == job
    finally:
        await store._cql.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")  # type: ignore[attr-defined]
        await store.close()
