"""Schedule previews: the next fire times of a trigger, as a user checks them before saving
a job or to see what a stored one will do. Pure: `after` is passed in."""

from __future__ import annotations

from datetime import datetime

from hourglass_core.errors import InvalidArgument
from hourglass_core.models import ScheduledFire, SchedulePreview, Trigger
from hourglass_core.triggers import dst_note, local_zone, next_fire

DEFAULT_COUNT = 10
MAX_COUNT = 1000


def preview_count(count: int, field: str = "count") -> int:
    """The number of fires asked for: 0 means DEFAULT_COUNT; outside 0..MAX_COUNT is refused."""
    if count == 0:
        return DEFAULT_COUNT
    if not 1 <= count <= MAX_COUNT:
        raise InvalidArgument(field, f"must be between 1 and {MAX_COUNT} (0 means {DEFAULT_COUNT}), not {count}")
    return count


def preview(trigger: Trigger, after: datetime, count: int, *, first: datetime | None = None) -> SchedulePreview:
    """Up to `count` fire times of `trigger` strictly after `after`, ascending; from `first`
    on (included) instead where the schedule already stands at a fire (a stored job's next)."""
    zone = local_zone(trigger)
    times: list[datetime] = [] if first is None else [first]
    cursor = after if first is None else first
    while len(times) < count and (found := next_fire(trigger, cursor)) is not None:
        times.append(found)
        cursor = found
    fires = [ScheduledFire(t, t.astimezone(zone).isoformat(), dst_note(trigger, t)) for t in times[:count]]
    return SchedulePreview(fires, zone.key)
