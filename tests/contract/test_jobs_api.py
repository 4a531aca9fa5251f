"""The client API's logic (JobsApi) over both stores: which fires it hints to workers, and
schedule previews of stored jobs."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from hourglass_coordinator.jobs import JobsApi
from hourglass_core.errors import FailedPrecondition, InvalidArgument, JobNotFound
from hourglass_core.models import CronTrigger, Fire, FireKind, IntervalTrigger, JobSpec, OnceTrigger
from hourglass_core.store.base import Store

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


async def test_only_fires_due_within_the_workers_lookahead_are_hinted(fresh_sqlite_store: Store) -> None:
    hinted: list[Fire] = []

    async def hint(fires: Sequence[Fire]) -> None:
        hinted.extend(fires)

    api = JobsApi(fresh_sqlite_store, num_shards=4, max_params_bytes=1024, hint=hint,
                  clock=lambda: NOW, hint_within=timedelta(seconds=3))  # fmt: skip
    soon, later = NOW + timedelta(seconds=2), NOW + timedelta(hours=1)
    created = await api.submit(
        [JobSpec(name="soon", executor="echo", trigger=OnceTrigger(at=soon)),
         JobSpec(name="later", executor="echo", trigger=OnceTrigger(at=later))]
    )
    assert [c.job.next_fire_time for c in created] == [soon, later]
    # The far one is read by its shard's owner in time; hinted, it would be claimed an hour early.
    assert [(f.job_id, f.due) for f in hinted] == [(created[0].job.id, soon)]


def _api(store: Store, now: datetime) -> JobsApi:
    async def hint(fires: Sequence[Fire]) -> None:
        return None

    return JobsApi(store, num_shards=4, max_params_bytes=1024, hint=hint, clock=lambda: now,
                   hint_within=timedelta(seconds=3))  # fmt: skip


async def test_a_job_previews_from_its_next_fire_as_if_resumed_when_paused_and_none_when_cancelled(
    store: Store, ns: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api = _api(store, now)
    await store.register_executors(frozenset({"echo"}))
    trigger = CronTrigger(expression="30 2 * * *", timezone="America/New_York", start=now + timedelta(days=2))
    [created] = await api.submit([JobSpec(name="nightly", executor="echo", trigger=trigger, namespace=ns)])
    job = created.job
    active = await api.preview_job(ns, job.id, 3, None)
    assert active.timezone == "America/New_York" and len(active.fires) == 3
    assert active.fires[0].at == job.next_fire_time and active.fires[0].at >= now + timedelta(days=2)
    later = await api.preview_job(ns, job.id, 2, active.fires[1].at)
    assert [f.at for f in later.fires] == [f.at for f in active.fires[2:]] + [later.fires[1].at]
    await api.pause(ns, job.id)
    assert [f.at for f in (await api.preview_job(ns, job.id, 3, None)).fires] == [f.at for f in active.fires]
    await api.cancel(ns, job.id)
    assert (await api.preview_job(ns, job.id, 3, None)).fires == []
    with pytest.raises(JobNotFound):
        await api.preview_job(ns, "no-such-job", 3, None)


async def test_a_trigger_that_never_fires_again_is_refused_naming_it(store: Store) -> None:
    api = _api(store, NOW)
    assert len(api.preview_trigger(IntervalTrigger(every=timedelta(hours=1), start=NOW), 5, None).fires) == 5
    with pytest.raises(InvalidArgument) as caught:
        api.preview_trigger(OnceTrigger(at=NOW - timedelta(hours=1)), 5, None)
    assert caught.value.field == "trigger"


async def test_only_a_cancelled_or_completed_job_can_be_deleted(store: Store, ns: str) -> None:
    now = datetime.now(UTC)
    api = _api(store, now)
    await store.register_executors(frozenset({"echo"}))
    [created] = await api.submit([JobSpec(name="d", executor="echo", trigger=OnceTrigger(at=now + timedelta(hours=1)),
                                          namespace=ns)])  # fmt: skip
    job = created.job
    with pytest.raises(FailedPrecondition):
        await api.delete(ns, job.id)
    await api.pause(ns, job.id)
    with pytest.raises(FailedPrecondition):
        await api.delete(ns, job.id)
    await api.cancel(ns, job.id)
    await api.delete(ns, job.id)
    with pytest.raises(JobNotFound):
        await api.get(ns, job.id)


async def test_trigger_writes_a_manual_fire_due_now_and_leaves_the_schedule(store: Store, ns: str) -> None:
    now = datetime.now(UTC)
    api = _api(store, now)
    await store.register_executors(frozenset({"echo"}))
    [created] = await api.submit([JobSpec(name="t", executor="echo", trigger=IntervalTrigger(every=timedelta(hours=1), start=now),
                                          namespace=ns)])  # fmt: skip
    job = created.job
    paused = await api.pause(ns, job.id)
    fire = await api.trigger(ns, job.id)
    assert (fire.kind, fire.due, fire.attempt, fire.shard) == (FireKind.MANUAL, now, 1, job.shard)
    assert fire in await store.due_fires(job.shard, now - timedelta(seconds=1), now, 100)
    assert await store.get_job(ns, job.id) == paused  # the schedule is as it was
    await api.cancel(ns, job.id)
    with pytest.raises(FailedPrecondition):
        await api.trigger(ns, job.id)
