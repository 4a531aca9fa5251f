"""The client API's logic (JobsApi) over both stores: which fires it hints to workers, and
schedule previews of stored jobs."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from hourglass_coordinator import jobs
from hourglass_coordinator.jobs import JobsApi
from hourglass_core.errors import ExecutorNotAllowed, FailedPrecondition, InvalidArgument, JobNotFound
from hourglass_core.firing import run_id_for, scheduled_fire
from hourglass_core.models import (
    CronTrigger,
    Fire,
    FireFate,
    FireKind,
    IntervalTrigger,
    JobChanges,
    JobEvent,
    JobEventKind,
    JobFilter,
    JobOptions,
    JobSpec,
    JobState,
    NamespacePolicy,
    OnceTrigger,
    Payload,
    Run,
    RunReason,
    RunStatus,
)
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


def _halts(api_store: Store, now: datetime) -> tuple[JobsApi, list[tuple[int, str, str]], list[Fire]]:
    halted: list[tuple[int, str, str]] = []
    hinted: list[Fire] = []

    async def halt(shard: int, namespace: str, job_id: str) -> None:
        halted.append((shard, namespace, job_id))

    async def hint(fires: Sequence[Fire]) -> None:
        hinted.extend(fires)

    api = JobsApi(api_store, num_shards=4, max_params_bytes=1024, hint=hint, halt=halt, clock=lambda: now,
                  hint_within=timedelta(seconds=3))  # fmt: skip
    return api, halted, hinted


async def test_update_needs_the_current_version_and_moves_the_schedule_to_the_new_trigger(store: Store, ns: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api, halted, hinted = _halts(store, now)
    await store.register_executors(frozenset({"echo"}))
    every_hour = IntervalTrigger(every=timedelta(hours=1), start=now + timedelta(minutes=30))
    [created] = await api.submit([JobSpec(name="u", executor="echo", trigger=every_hour, namespace=ns)])
    job = created.job
    assert job.version == 1
    with pytest.raises(InvalidArgument) as caught:
        await api.update(ns, job.id, 0, JobChanges(name="x"))
    assert caught.value.field == "version"
    with pytest.raises(InvalidArgument) as caught:
        await api.update(ns, job.id, 1, JobChanges())
    assert caught.value.field == "update_mask"
    with pytest.raises(InvalidArgument) as caught:
        await api.update(ns, job.id, 1, JobChanges(trigger=OnceTrigger(at=now - timedelta(hours=1)), name=""))
    assert caught.value.field == "job.name"
    assert await store.get_job(ns, job.id) == job  # nothing written by a refused update

    soon = IntervalTrigger(every=timedelta(seconds=10), start=now + timedelta(seconds=2))
    updated = await api.update(ns, job.id, 1, JobChanges(trigger=soon, params=Payload(b'{"v": 2}', "application/json")))
    assert updated.version == 2 and updated.trigger == soon and updated.params.data == b'{"v": 2}'
    assert updated.next_fire_time == now + timedelta(seconds=2) and updated.state is JobState.ACTIVE
    assert halted == [(job.shard, ns, job.id)]  # prepared fires of the old spec are dropped
    assert [f.due for f in hinted] == [now + timedelta(seconds=2)]
    with pytest.raises(FailedPrecondition, match="stale"):
        await api.update(ns, job.id, 1, JobChanges(name="late"))
    assert (await store.get_job(ns, job.id)).name == "u"
    events = await store.job_events(ns, job.id, now - timedelta(minutes=1), now + timedelta(minutes=1))
    assert [(e.kind, e.version, e.previous_trigger) for e in events] == [(JobEventKind.UPDATED, 2, every_hour)]

    paused = await api.pause(ns, job.id)
    renamed = await api.update(ns, job.id, 2, JobChanges(name="renamed", trigger=every_hour))
    assert (renamed.state, renamed.next_fire_time, renamed.name) == (JobState.PAUSED, None, "renamed")
    assert paused.version == 2 and renamed.version == 3
    await api.cancel(ns, job.id)
    with pytest.raises(FailedPrecondition, match="cancelled"):
        await api.update(ns, job.id, 3, JobChanges(name="no"))


async def test_the_store_refuses_an_update_over_a_version_or_state_that_moved_on(store: Store, ns: str) -> None:
    now = datetime.now(UTC)
    api = _api(store, now)
    await store.register_executors(frozenset({"echo"}))
    [created] = await api.submit([JobSpec(name="s", executor="echo", trigger=OnceTrigger(at=now + timedelta(hours=1)),
                                          namespace=ns)])  # fmt: skip
    job = created.job
    first = await store.update_job(replace(job, name="one", version=2), job, None)
    assert (first.name, first.version) == ("one", 2)
    with pytest.raises(FailedPrecondition):  # a second writer that read version 1
        await store.update_job(replace(job, name="two", version=2), job, None)
    await store.set_job_state(ns, job.id, JobState.PAUSED, None)
    with pytest.raises(FailedPrecondition):  # right version, but paused since it was read
        await store.update_job(replace(first, name="three", version=3), first, None)
    assert (await store.get_job(ns, job.id)).name == "one"
    with pytest.raises(JobNotFound):
        await store.update_job(replace(job, id="missing"), replace(job, id="missing"), None)


async def test_backfill_writes_one_manual_fire_per_occurrence_at_a_bounded_rate(store: Store, ns: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api = _api(store, now)
    await store.register_executors(frozenset({"echo"}))
    start = now - timedelta(hours=2)
    [created] = await api.submit([JobSpec(name="b", executor="echo", namespace=ns,
                                          trigger=IntervalTrigger(every=timedelta(minutes=10), start=start))])  # fmt: skip
    job = created.job
    fires = await api.backfill(ns, job.id, start, start + timedelta(hours=1), per_second=4)
    assert [f.nominal for f in fires] == [start + timedelta(minutes=10 * i) for i in range(6)]
    assert all(f.kind is FireKind.MANUAL for f in fires)
    assert [f.due - fires[0].due for f in fires] == [timedelta(seconds=i / 4) for i in range(6)]
    stored = await store.due_fires(job.shard, now, now + timedelta(seconds=5), 100)
    assert [f for f in stored if f.job_id == job.id] == fires  # nominal kept
    for args, field in (((start, start), "until"), ((start, now + timedelta(hours=1)), "until"),
                        ((now - timedelta(days=8), now), "until")):  # fmt: skip
        with pytest.raises(InvalidArgument) as caught:
            await api.backfill(ns, job.id, *args)
        assert caught.value.field == field
    with pytest.raises(InvalidArgument) as caught:
        await api.backfill(ns, job.id, start, now, per_second=1000)
    assert caught.value.field == "per_second"
    small = JobsApi(store, num_shards=4, max_params_bytes=1024, hint=_api(store, now)._hint, clock=lambda: now,
                    backfill_max_fires=5)  # fmt: skip
    with pytest.raises(InvalidArgument, match="more than 5 fires"):
        await small.backfill(ns, job.id, start, start + timedelta(hours=1))


async def test_explain_tells_what_became_of_each_expected_fire(store: Store, ns: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api = _api(store, now)
    await store.register_executors(frozenset({"echo"}))
    start = now - timedelta(minutes=5)
    [created] = await _api(store, start - timedelta(seconds=1)).submit(  # five minutes ago
        [JobSpec(name="e", executor="echo", namespace=ns, trigger=IntervalTrigger(every=timedelta(minutes=1), start=start))]
    )
    job = created.job

    def run(minute: int, status: RunStatus, late_s: float = 0.5, **kw: object) -> Run:
        due = start + timedelta(minutes=minute)
        return Run(ns, job.id, run_id_for(ns, job.id, due, 1), due, 1, status, "w1",
                   started_at=due + timedelta(seconds=late_s), ended_at=due + timedelta(seconds=late_s + 1), **kw)  # type: ignore[arg-type]  # fmt: skip

    await store.record_runs([run(0, RunStatus.SUCCEEDED), run(1, RunStatus.FAILED, late_s=70),
                             run(3, RunStatus.SKIPPED, reason=RunReason.OVERLAP)])  # fmt: skip
    following = Fire(due=now + timedelta(minutes=1), namespace=ns, job_id=job.id, shard=job.shard)
    await store.set_job_state(ns, job.id, JobState.ACTIVE, following)  # the schedule went on
    await store.record_job_event(JobEvent(ns, job.id, start + timedelta(minutes=3, seconds=30), JobEventKind.PAUSED, 2))
    found = await api.explain(ns, job.id, start, now + timedelta(minutes=1), 100)
    fates = [(f.at - start, f.fate) for f in found.fires]
    m = timedelta(minutes=1)
    assert fates == [(0 * m, FireFate.RAN), (1 * m, FireFate.RAN), (2 * m, FireFate.MISSED),
                     (3 * m, FireFate.SKIPPED), (4 * m, FireFate.SKIPPED), (5 * m, FireFate.SKIPPED)]  # fmt: skip
    assert found.fires[1].lateness == timedelta(seconds=70) and "failed" in found.fires[1].why
    assert "caught up" in found.fires[2].why and "overlap" in found.fires[3].why and "paused" in found.fires[4].why
    assert [e.kind for e in found.events] == [JobEventKind.PAUSED]
    assert len((await api.explain(ns, job.id, start, now, 2)).fires) == 2
    with pytest.raises(InvalidArgument) as caught:
        await api.explain(ns, job.id, now, now - m, 10)
    assert caught.value.field == "until"


async def test_pause_keeps_a_note_until_resumed_and_moves_count_the_fires(store: Store, ns: str) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    api = _api(store, now)
    await store.register_executors(frozenset({"echo"}))
    options = JobOptions(max_fires=2, jitter=timedelta(seconds=5), catchup_window=timedelta(minutes=5),
                         lateness_slo=timedelta(milliseconds=250))
    [created] = await api.submit([JobSpec(name="n", executor="echo", namespace=ns, options=options,
                                          trigger=IntervalTrigger(every=timedelta(hours=1), start=now))])  # fmt: skip
    job = created.job
    assert job.options == options and job.fired == 0
    assert (await store.get_job(ns, job.id)).options == options  # stored and read back whole
    with pytest.raises(InvalidArgument) as caught:
        await api.pause(ns, job.id, "x" * 2000)
    assert caught.value.field == "note"
    assert (await api.pause(ns, job.id, "vendor outage")).note == "vendor outage"
    assert (await store.get_job(ns, job.id)).note == "vendor outage"
    resumed = await api.resume(ns, job.id)
    assert resumed.note == "" and resumed.state is JobState.ACTIVE
    assert resumed.next_fire_time is not None
    following = scheduled_fire(resumed, resumed.next_fire_time + timedelta(hours=1))
    await store.advance_schedules([(resumed, following, datetime.now(UTC))])
    moved = await store.get_job(ns, job.id)
    assert (moved.fired, moved.next_fire_time) == (1, following.at)
    await store.advance_schedules([(moved, None, datetime.now(UTC))])
    done = await store.get_job(ns, job.id)
    assert (done.fired, done.state) == (2, JobState.COMPLETED)
    relabelled = await api.update(ns, job.id, done.version, JobChanges(labels={"k": "v"}))
    assert (relabelled.state, relabelled.next_fire_time) == (JobState.COMPLETED, None)  # its fires are used up
    for bad, field in ((JobOptions(jitter=timedelta(hours=2)), "job.options.jitter"),
                       (JobOptions(catchup_window=timedelta(0)), "job.options.catchup_window"),
                       (JobOptions(max_fires=-1), "job.options.max_fires"),
                       (JobOptions(lateness_slo=timedelta(0)), "job.options.lateness_slo"),
                       (JobOptions(lateness_slo=timedelta(days=2)), "job.options.lateness_slo")):  # fmt: skip
        with pytest.raises(InvalidArgument) as caught:
            await api.submit([JobSpec(name="b", executor="echo", namespace=ns, options=bad, trigger=OnceTrigger(at=now))],
                             field="job")  # fmt: skip
        assert caught.value.field == field


async def test_a_submit_naming_an_executor_its_namespaces_policy_does_not_allow_is_refused_and_stores_nothing(
    store: Store, ns: str
) -> None:
    now = datetime.now(UTC)
    api = _api(store, now)
    await store.register_executors(frozenset({"echo", "sleep"}))
    at = OnceTrigger(at=now + timedelta(hours=1))
    [before] = await api.submit([JobSpec(name="before", executor="sleep", trigger=at, namespace=ns)])
    assert await api.set_policy(ns, ["echo", "echo"]) == NamespacePolicy(ns, frozenset({"echo"}))
    assert await api.get_policy(ns) == NamespacePolicy(ns, frozenset({"echo"}))
    with pytest.raises(ExecutorNotAllowed) as refused:  # at once on the replica that set it
        await api.submit([JobSpec(name="s", executor="sleep", trigger=at, namespace=ns)], field="job")
    assert refused.value.field == "job.executor"
    assert str(refused.value) == (
        f"job.executor: the policy of namespace {ns!r} does not allow executor 'sleep' (allowed: echo)"
    )
    other = f"{ns}-open"
    batch = [JobSpec(name="a", executor="echo", trigger=at, namespace=ns),
             JobSpec(name="b", executor="sleep", trigger=at, namespace=other),
             JobSpec(name="c", executor="sleep", trigger=at, namespace=ns)]  # fmt: skip
    with pytest.raises(ExecutorNotAllowed) as refused:
        await api.submit(batch)
    assert refused.value.field == "jobs[2].executor"
    for namespace in (ns, other):  # nothing of the batch was stored
        assert [j.id for j in (await store.list_jobs(namespace, JobFilter(), 100, "")).items] == (
            [before.job.id] if namespace == ns else [])
    [echo] = await api.submit([JobSpec(name="e", executor="echo", trigger=at, namespace=ns)])
    assert echo.created
    with pytest.raises(InvalidArgument) as caught:  # an invalid spec is INVALID_ARGUMENT first
        await api.submit([JobSpec(name="", executor="sleep", trigger=at, namespace=ns)], field="job")
    assert caught.value.field == "job.name"

    assert await api.set_policy(ns, []) == NamespacePolicy(ns)  # cleared: no limit
    assert (await api.submit([JobSpec(name="s", executor="sleep", trigger=at, namespace=ns)]))[0].created


async def test_a_policy_set_through_another_replica_applies_once_this_ones_copy_expired(
    store: Store, ns: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jobs, "POLICY_CACHE_S", 0.5)
    now = datetime.now(UTC)
    here, there = _api(store, now), _api(store, now)
    await store.register_executors(frozenset({"echo", "sleep"}))
    spec = JobSpec(name="s", executor="sleep", trigger=OnceTrigger(at=now + timedelta(hours=1)), namespace=ns)
    await here.submit([spec])  # reads (and keeps) the namespace's policy: none
    await there.set_policy(ns, ["echo"])
    await here.submit([spec])  # within POLICY_CACHE_S: the copy it read
    await asyncio.sleep(0.6)
    with pytest.raises(ExecutorNotAllowed):
        await here.submit([spec])


async def test_a_policy_names_executors_of_the_name_format_and_a_valid_namespace(store: Store, ns: str) -> None:
    api = _api(store, NOW)
    with pytest.raises(InvalidArgument) as caught:
        await api.set_policy(ns, ["echo", "pkg.mod:fn"])
    assert caught.value.field == "allowed_executors[1]"
    with pytest.raises(InvalidArgument) as caught:
        await api.set_policy("*", ["echo"])
    assert caught.value.field == "namespace"
    with pytest.raises(InvalidArgument) as caught:
        await api.get_policy("a/b")
    assert caught.value.field == "namespace"
    assert await store.get_namespace_policy(ns) == NamespacePolicy(ns)  # nothing was stored


async def test_submit_each_stores_the_valid_specs_and_answers_each_refused_one_with_its_error(store: Store, ns: str) -> None:
    api = _api(store, datetime.now(UTC))
    await store.register_executors(frozenset({"echo"}))
    await api.set_policy(f"{ns}-locked", ["nothing-else"])
    at = datetime.now(UTC) + timedelta(hours=1)
    specs = [
        JobSpec(name="ok", executor="echo", trigger=OnceTrigger(at=at), namespace=ns, idempotency_key="t/0/1"),
        JobSpec(name="bad", executor="echo", trigger=CronTrigger(expression="99 * * * *"), namespace=ns),
        JobSpec(name="refused", executor="echo", trigger=OnceTrigger(at=at), namespace=f"{ns}-locked"),
        JobSpec(name="again", executor="echo", trigger=OnceTrigger(at=at), namespace=ns, idempotency_key="t/0/1"),
    ]
    ok, bad, refused, again = await api.submit_each(specs)
    assert not isinstance(ok, Exception) and ok.created and ok.job.name == "ok"
    assert isinstance(bad, InvalidArgument) and bad.field == "job.trigger.cron.expression"
    assert isinstance(refused, ExecutorNotAllowed) and refused.field == "job.executor"
    # The same key is the same job, in one batch as across batches.
    assert not isinstance(again, Exception) and again.job.id == ok.job.id and again.job.name == "ok"
    [redone] = await api.submit_each(specs[:1])
    assert not isinstance(redone, Exception) and not redone.created and redone.job.id == ok.job.id


async def test_executors_are_read_once_and_again_only_for_a_name_not_among_them(
    fresh_sqlite_store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Submits do not scan the executors table on a timer (a scan waits 10 s for a Cassandra
    node just killed): the names read stand until a spec names one not among them."""
    reads = 0
    read = fresh_sqlite_store.known_executors

    async def counted() -> set[str]:
        nonlocal reads
        reads += 1
        return await read()

    monkeypatch.setattr(fresh_sqlite_store, "known_executors", counted)
    monotonic = [1000.0]
    monkeypatch.setattr(jobs, "time", SimpleNamespace(monotonic=lambda: monotonic[0]))
    api = _api(fresh_sqlite_store, NOW)
    spec = JobSpec(name="a", executor="echo", trigger=OnceTrigger(at=NOW + timedelta(hours=1)))
    await api.submit([spec])
    monotonic[0] += 60
    await api.submit([replace(spec, name="b")])
    assert reads == 1
    with pytest.raises(InvalidArgument, match="executor"):
        await api.submit([replace(spec, name="c", executor="unheard-of")])
    assert reads == 2
    await fresh_sqlite_store.register_executors(["new-one"])
    await api.submit([replace(spec, name="d", executor="new-one")])  # a miss reads them again
    assert reads == 3
