"""Backfills: the fires a trigger would have produced over a past range, released to run at a
bounded rate. Pure: `now` is passed in."""

from __future__ import annotations

from datetime import datetime, timedelta

from hourglass_core.errors import InvalidArgument
from hourglass_core.models import Fire, FireKind, Job
from hourglass_core.triggers import fire_times

# The first backfilled fire is released this long after the call: its row is durable by then
# and ahead of the workers' read cursor.
RELEASE_LEAD = timedelta(milliseconds=500)


def occurrences(job: Job, since: datetime, until: datetime, limit: int) -> list[datetime]:
    """The job's fire times in [since, until) (also before it was created: a backfill is asked
    for), at most `limit`; InvalidArgument naming "until" when there are more."""
    times, more = fire_times(job.trigger, since, until, limit)
    if more:
        raise InvalidArgument("until", f"the range holds more than {limit} fires; backfill it in parts")
    return times


def backfill_fires(job: Job, times: list[datetime], now: datetime, per_second: float) -> list[Fire]:
    """A manual fire standing for each of `times` (its `nominal`), released one every
    1/per_second seconds from now on. A fire's claim and run id are those of its nominal
    instant, so a time that ran already, or that another backfill released, runs no more."""
    start = now + RELEASE_LEAD
    return [
        Fire(due=start + timedelta(seconds=i / per_second), namespace=job.namespace, job_id=job.id, shard=job.shard,
             kind=FireKind.MANUAL, priority=job.priority, nominal=at)
        for i, at in enumerate(times)
    ]
