"""Catch-up pacing and the schedule options of plan_fire (catch-up window, jitter, max fires)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from hourglass_core.firing import Action, plan_fire, scheduled_fire
from hourglass_core.models import IntervalTrigger, Job, JobOptions, JobState, Payload
from hourglass_worker.catchup import CatchupPacer

T0 = datetime(2026, 12, 6, tzinfo=UTC)
LATE = timedelta(seconds=30)


def test_fires_on_time_never_wait_and_a_backlog_drains_at_the_rate_per_shard() -> None:
    pacer = CatchupPacer(per_second=10)
    assert [pacer.delay(1, timedelta(seconds=1), 0.0) for _ in range(100)] == [0.0] * 100
    started = [pacer.delay(1, LATE, 0.0) for _ in range(12)]
    assert started[:10] == [0.0] * 10 and started[10] > 0  # a burst of one second's worth
    assert pacer.delay(2, LATE, 0.0) == 0.0  # each shard has its own budget
    assert pacer.delay(1, LATE, 0.05) > 0 and pacer.delay(1, LATE, 0.2) == 0.0
    assert CatchupPacer(per_second=0).delay(1, LATE, 0.0) == 0.0


def _job(**options: object) -> Job:
    trigger = IntervalTrigger(every=timedelta(minutes=1), start=T0)
    return Job("ns", "j", "n", "echo", trigger, 0, Payload(), replace(JobOptions(), **options), {}, "",  # type: ignore[arg-type]
               JobState.ACTIVE, created_at=T0, shard=3, next_fire_time=T0)  # fmt: skip


def test_jitter_delays_each_fire_by_a_fixed_amount_and_keeps_its_time_as_identity() -> None:
    job = _job(jitter=timedelta(seconds=20))
    fires = [scheduled_fire(job, T0 + timedelta(minutes=i)) for i in range(20)]
    delays = {f.due - f.at for f in fires}
    assert all(timedelta(0) <= d <= timedelta(seconds=20) for d in delays) and len(delays) > 10
    assert [f.at for f in fires] == [T0 + timedelta(minutes=i) for i in range(20)]
    assert scheduled_fire(job, T0) == fires[0]  # the same on every replica and worker
    plan = plan_fire(job, fires[0], fires[0].due)
    assert plan.action is Action.RUN and plan.next_fire == fires[1]
    assert scheduled_fire(_job(), T0).nominal is None


def test_a_fire_beyond_the_catch_up_window_is_skipped_and_the_schedule_goes_on_from_now() -> None:
    job = _job(catchup_window=timedelta(minutes=10))
    now = T0 + timedelta(minutes=30)
    plan = plan_fire(job, scheduled_fire(job, T0), now)
    assert plan.action is Action.SKIP_CATCHUP and plan.next_fire is not None and plan.next_fire.at == T0 + timedelta(minutes=31)
    assert plan_fire(job, scheduled_fire(job, T0), T0 + timedelta(minutes=5)).action is Action.RUN


def test_max_fires_ends_the_schedule_after_that_many_fires() -> None:
    job = _job(max_fires=3)
    assert plan_fire(replace(job, fired=1), scheduled_fire(job, T0), T0).next_fire is not None
    last = plan_fire(replace(job, fired=2), scheduled_fire(job, T0), T0)
    assert last.action is Action.RUN and last.next_fire is None and last.advance
