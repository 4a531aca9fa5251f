"""Pure rules for fires: first fire, staleness, misfire, retries, run ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

from hourglass_core.firing import (
    Action,
    RunKey,
    first_fire,
    first_fire_time,
    plan_fire,
    retry_fire,
    run_id_for,
    run_key_of,
    schedule_row_due,
)
from hourglass_core.models import (
    Fire,
    FireKind,
    IntervalTrigger,
    Job,
    JobOptions,
    JobState,
    MisfirePolicy,
    OnceTrigger,
    Payload,
    RetryPolicy,
)

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def job(**changes: object) -> Job:
    base = Job(
        namespace="default", id="j1", name="n", executor="echo",
        trigger=IntervalTrigger(every=timedelta(seconds=10), start=T0), priority=0, params=Payload(),
        options=JobOptions(), labels={}, idempotency_key="", state=JobState.ACTIVE, created_at=T0,
        shard=3, next_fire_time=T0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def fire(due: datetime = T0, **changes: object) -> Fire:
    return replace(Fire(due=due, namespace="default", job_id="j1", shard=3), **changes)  # type: ignore[arg-type]


def test_on_time_fire_runs_and_schedules_the_next_occurrence() -> None:
    plan = plan_fire(job(), fire(), T0 + timedelta(milliseconds=3))
    assert plan.action is Action.RUN and plan.advance
    assert plan.next_fire is not None and plan.next_fire.due == T0 + timedelta(seconds=10)


def test_fire_that_is_not_the_jobs_next_fire_is_dropped_as_stale() -> None:
    plan = plan_fire(job(next_fire_time=T0 + timedelta(seconds=10)), fire(), T0)
    assert plan.action is Action.DROP and not plan.advance


def test_paused_and_cancelled_jobs_do_not_fire() -> None:
    for state in (JobState.PAUSED, JobState.CANCELLED, JobState.COMPLETED):
        assert plan_fire(job(state=state), fire(), T0).action is Action.DROP


def test_misfire_run_once_runs_now_and_coalesces_missed_occurrences() -> None:
    now = T0 + timedelta(minutes=5)
    plan = plan_fire(job(), fire(), now)
    assert plan.action is Action.RUN
    assert plan.next_fire is not None and plan.next_fire.due == now + timedelta(seconds=10)


def test_misfire_skip_records_a_skip_and_moves_on() -> None:
    options = JobOptions(misfire_policy=MisfirePolicy.SKIP, misfire_grace=timedelta(seconds=1))
    plan = plan_fire(job(options=options), fire(), T0 + timedelta(seconds=2))
    assert plan.action is Action.SKIP_MISFIRE and plan.advance and plan.next_fire is not None


def test_once_job_has_no_next_fire() -> None:
    once = job(trigger=OnceTrigger(at=T0))
    assert plan_fire(once, fire(), T0).next_fire is None


def test_retry_fire_runs_unless_the_job_was_cancelled() -> None:
    retry = fire(attempt=2, kind=FireKind.RETRY)
    assert plan_fire(job(next_fire_time=None, state=JobState.COMPLETED), retry, T0).action is Action.RUN
    assert plan_fire(job(state=JobState.CANCELLED), retry, T0).action is Action.DROP


def test_retries_stop_after_max_attempts_with_growing_backoff() -> None:
    j = job(options=JobOptions(retry=RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=1))))
    second = retry_fire(j, fire(), T0, jitter=0.999)
    assert second is not None and second.attempt == 2 and second.kind is FireKind.RETRY
    third = retry_fire(j, second, T0, jitter=0.999)
    assert third is not None and third.due - T0 > second.due - T0
    assert retry_fire(j, third, T0, jitter=0.5) is None


def test_run_id_is_the_same_for_the_same_attempt_of_the_same_fire() -> None:
    assert run_id_for("ns", "j", T0, 1) == run_id_for("ns", "j", T0, 1)
    assert len({run_id_for("ns", "j", T0, 1), run_id_for("ns", "j", T0, 2), run_id_for("ns", "k", T0, 1)}) == 3


def test_a_run_id_spells_out_the_fire_it_runs_to_the_microsecond() -> None:
    due = T0 + timedelta(microseconds=123_457)
    run_id = run_id_for("team-a.prod", "0b5e2c7e-3f4a-4d21-9a0e-6c1f7d2b8e54", due, 3)
    assert run_id == "team-a.prod:0b5e2c7e-3f4a-4d21-9a0e-6c1f7d2b8e54:20260601T120000.123457Z:3"
    assert run_key_of(run_id) == RunKey("team-a.prod", "0b5e2c7e-3f4a-4d21-9a0e-6c1f7d2b8e54", due, 3)
    # a due given in another zone names the same instant, hence the same run
    assert run_id_for("ns", "j", due.astimezone(timezone(timedelta(hours=-5))), 1) == run_id_for("ns", "j", due, 1)


def test_strings_that_are_no_run_id_name_no_run() -> None:
    for other in ("", "6f1d2a52-8c4e-4f0b-9a57-5b8c1e0d7a11", "ns:j:20261301T000000.000000Z:1",
                  "ns:j:20260601T120000.000000Z:x", "bad ns:j:20260601T120000.000000Z:1", "ns:a:b:20260601T120000.000000Z:1"):
        assert run_key_of(other) is None, other


def test_first_fire_of_a_past_once_trigger_is_written_for_now() -> None:
    past = T0 - timedelta(minutes=1)
    assert first_fire_time(OnceTrigger(at=past), T0) == past
    assert schedule_row_due(past, T0) == T0
    assert first_fire_time(IntervalTrigger(every=timedelta(seconds=10), start=T0), T0) == T0


def test_a_manual_fire_runs_beside_the_schedule_while_paused_or_completed_but_not_cancelled() -> None:
    manual = Fire(T0 + timedelta(seconds=3), "default", "j1", 3, kind=FireKind.MANUAL)
    for state in (JobState.ACTIVE, JobState.PAUSED, JobState.COMPLETED):
        plan = plan_fire(job(state=state), manual, T0 + timedelta(seconds=3))
        assert (plan.action, plan.advance, plan.next_fire) == (Action.RUN, False, None), state
    assert plan_fire(job(state=JobState.CANCELLED), manual, T0).action is Action.DROP
    retry = retry_fire(job(options=JobOptions(retry=RetryPolicy(max_attempts=2))), manual, T0, jitter=0.5)
    assert retry is not None and (retry.kind, retry.attempt) == (FireKind.MANUAL, 2)  # still manual


def test_a_first_fire_in_the_past_is_due_now_and_keeps_the_identity_of_the_time_asked_for() -> None:
    """Two submits of one key made at different times (a retry racing the first attempt after
    an outage) write first fires of the same identity: one claim, one run, one run id."""
    past = job(trigger=OnceTrigger(at=T0), next_fire_time=T0)
    first, retried = first_fire(past, T0 + timedelta(seconds=3)), first_fire(past, T0 + timedelta(seconds=15))
    assert first is not None and retried is not None
    assert (first.due, retried.due) == (T0 + timedelta(seconds=3), T0 + timedelta(seconds=15))  # never behind now
    assert first.at == retried.at == T0
    assert plan_fire(past, retried, retried.due).action is Action.RUN
    ahead = first_fire(job(next_fire_time=T0 + timedelta(hours=1)), T0)
    assert ahead is not None and ahead.due == ahead.at == T0 + timedelta(hours=1) and ahead.nominal is None
    assert first_fire(job(next_fire_time=None, state=JobState.COMPLETED), T0) is None
