"""ExplainJob: every fire a job's trigger expected in a range and what became of it, from the
stored records (runs, and the job's events: pause, resume, cancel, update). Pure: the records
and `now` are passed in."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from hourglass_core.models import (
    ExplainedFire,
    Explanation,
    FireFate,
    Job,
    JobEvent,
    JobEventKind,
    Run,
    RunReason,
    RunStatus,
    Trigger,
)
from hourglass_core.triggers import fire_times, iso_utc, next_fire

# A fire due this recently with no record yet is still being run or recorded.
SETTLING = timedelta(seconds=5)
_US = timedelta(microseconds=1)
_SKIP_WHY = {
    RunReason.MISFIRE: "skipped: later than its misfire grace, and the misfire policy is skip",
    RunReason.OVERLAP: "skipped: the previous run was still going (overlap policy)",
    RunReason.HALTED: "skipped: the job was paused or cancelled while this fire waited to run",
    RunReason.CATCHUP: "skipped: found later than the job's catch-up window (after an outage)",
}


def _segments(job: Job, events: Sequence[JobEvent], since: datetime, until: datetime) -> list[tuple[datetime, datetime, Trigger]]:
    """[from, to) intervals of the range, each with the trigger in force then: an update's
    event keeps the trigger it replaced. Nothing before the job was created."""
    bounds: list[tuple[datetime, Trigger]] = []
    start = max(since, job.created_at)
    for event in events:
        if event.kind is JobEventKind.UPDATED and event.previous_trigger is not None:
            bounds.append((event.at, event.previous_trigger))
    segments = []
    for at, previous in bounds:
        if at > start:
            segments.append((start, min(at, until), previous))
            start = at
    if start < until:
        segments.append((start, until, job.trigger))
    return [s for s in segments if s[0] < s[1]]


def _expected(job: Job, events: Sequence[JobEvent], since: datetime, until: datetime, limit: int) -> tuple[list[datetime], bool]:
    times: list[datetime] = []
    for lo, hi, trigger in _segments(job, events, since, until):
        found, more = fire_times(trigger, lo, hi, limit - len(times))
        times.extend(found)
        if more:
            return times, True
    return times, False


def _halted_at(events: Sequence[JobEvent], at: datetime) -> JobEvent | None:
    """The pause or cancel in force at `at`, if any."""
    halted: JobEvent | None = None
    for event in events:
        if event.at > at:
            break
        if event.kind in (JobEventKind.PAUSED, JobEventKind.CANCELLED):
            halted = event
        elif event.kind is JobEventKind.RESUMED:
            halted = None
    return halted


def _ran(at: datetime, runs: list[Run], expected: bool, backfilled: bool = True) -> ExplainedFire:
    """From the runs of one instant, newest attempt first. `backfilled`: a manual run of an
    instant the trigger names (else TriggerJob's)."""
    last, first = runs[0], runs[-1]
    if last.status is RunStatus.SKIPPED:
        why = _SKIP_WHY.get(last.reason, "skipped") if last.reason else last.error or "skipped"
        return ExplainedFire(at, FireFate.SKIPPED, why, last.run_id, last.status, None, last.manual, expected)
    tries = f" in {last.attempt} attempts" if last.attempt > 1 else ""
    how = ("backfilled" if backfilled else "triggered") if last.manual else "ran"
    why = f"{how}{tries}: {last.status.value}" + (f" ({last.error})" if last.error else "")
    return ExplainedFire(at, FireFate.RAN, why, last.run_id, last.status, first.lateness, last.manual, expected)


def explain(job: Job, runs: Sequence[Run], events: Sequence[JobEvent], since: datetime, until: datetime,
            now: datetime, limit: int) -> Explanation:  # fmt: skip
    """Every fire the trigger(s) in force expected in [since, until), and every other run in
    it (TriggerJob's), oldest first, at most `limit`; `runs` are the job's runs due in the
    range, `events` its events up to `until`, oldest first."""
    times, truncated = _expected(job, events, since, until, limit)
    by_instant: dict[datetime, list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.due, -r.attempt)):
        if since <= run.due < until:
            by_instant.setdefault(run.due, []).append(run)
    scheduled = sorted(t for t, rs in by_instant.items() if not rs[-1].manual)
    out: list[ExplainedFire] = []
    for at in times:
        found = by_instant.get(at)
        if found:
            out.append(_ran(at, found, True))
            continue
        halted = _halted_at(events, at)
        if halted is not None:
            why = f"skipped: the job was {halted.kind.value} at {iso_utc(halted.at)}"
            out.append(ExplainedFire(at, FireFate.SKIPPED, why))
        elif at > now - SETTLING:
            out.append(ExplainedFire(at, FireFate.PENDING, "pending: not run yet"))
        elif job.next_fire_time is not None and at >= job.next_fire_time:
            why = (f"missed so far: the schedule is behind (its next fire, due {iso_utc(job.next_fire_time)}, "
                   "has not run: no worker owns its shard, or the store is away)")  # fmt: skip
            out.append(ExplainedFire(at, FireFate.MISSED, why))
        else:
            out.append(ExplainedFire(at, FireFate.MISSED, _missed_why(at, by_instant, scheduled)))
    expected = set(times)
    extra = [_ran(at, rs, False, next_fire(job.trigger, at - _US) == at)
             for at, rs in by_instant.items() if at not in expected and not truncated]  # fmt: skip
    fires = sorted(out + extra, key=lambda f: f.at)[:limit]
    return Explanation(fires, list(events), truncated or len(out) + len(extra) > limit)


def _missed_why(at: datetime, by_instant: dict[datetime, list[Run]], scheduled: list[datetime]) -> str:
    """No run and no pause: nobody ran it while it was due. A run of an earlier fire that
    began only after this one was due means the schedule was behind (no owner, or the store
    away) and caught up: the misfire policy then goes on from the time it caught up, and this
    fire is one of those it coalesced."""
    before = [t for t in scheduled if t < at]
    if before:
        run = by_instant[before[-1]][-1]
        began = run.started_at or run.ended_at
        if began is not None and began > at:
            return (f"missed: the schedule was behind (no owner, or the store away); it caught up at "
                    f"{iso_utc(began)} with the fire of {iso_utc(before[-1])} and went on from there")
    return "missed: no run recorded (no owner, or the store away, while it was due)"
