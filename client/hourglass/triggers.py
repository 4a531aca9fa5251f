"""Short constructors for the parts of a `JobSpec`: triggers and JSON params.

    hourglass.once(datetime(2026, 12, 1, 9, tzinfo=UTC))   # or once(timedelta(minutes=5))
    hourglass.every(10)                                    # or every(timedelta(hours=1), start=...)
    hourglass.cron("30 2 * * *", tz="Europe/London")
    hourglass.json_params({"url": "https://example.org"})

They check what can be checked without the server (time zones present, positive intervals) and
raise InvalidArgument naming the field, as the server would; the server validates again.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from hourglass_core.errors import InvalidArgument
from hourglass_core.models import CronTrigger, DstGap, DstRepeat, IntervalTrigger, OnceTrigger, Payload

JSON = "application/json"


def _aware(value: datetime, field: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(field, "must be timezone-aware (e.g. datetime(..., tzinfo=UTC))")
    return value


def _opt_aware(value: datetime | None, field: str) -> datetime | None:
    return None if value is None else _aware(value, field)


def once(at: datetime | timedelta) -> OnceTrigger:
    """Fires once: at an aware datetime, or (a timedelta) that long after now."""
    if isinstance(at, timedelta):
        return OnceTrigger(at=datetime.now(UTC) + at)
    return OnceTrigger(at=_aware(at, "trigger.once.at"))


def every(
    interval: float | timedelta, start: datetime | None = None, end: datetime | None = None
) -> IntervalTrigger:
    """Fires at start, start + interval, start + 2*interval, ... up to end (inclusive).

    `interval` is a timedelta or seconds; it must be positive. `start` is the anchor (fire times
    never drift); it defaults to now on this machine's clock.
    """
    delta = interval if isinstance(interval, timedelta) else timedelta(seconds=interval)
    if delta <= timedelta(0):
        raise InvalidArgument("trigger.interval.every", "must be positive")
    begin = datetime.now(UTC) if start is None else _aware(start, "trigger.start")
    return IntervalTrigger(every=delta, start=begin, end=_opt_aware(end, "trigger.end"))


def cron(
    expression: str,
    tz: str = "UTC",
    start: datetime | None = None,
    end: datetime | None = None,
    *,
    dst_gap: DstGap = DstGap.SHIFT_FORWARD,
    dst_repeat: DstRepeat = DstRepeat.ONCE,
) -> CronTrigger:
    """Fires on a 5-field (minute ...) or 6-field (seconds first) cron expression evaluated in
    the IANA time zone `tz`, only within [start, end]. The expression is checked by the server.
    For a fixed local time, `dst_gap` says what happens when a spring-forward jump skips it
    (fire as the gap ends, or skip that day) and `dst_repeat` when a fall-back jump shows it
    twice (fire at the first, or at both)."""
    if not expression.strip():
        raise InvalidArgument("trigger.cron.expression", "must not be empty")
    return CronTrigger(
        expression=expression.strip(),
        timezone=tz or "UTC",
        start=_opt_aware(start, "trigger.start"),
        end=_opt_aware(end, "trigger.end"),
        dst_gap=dst_gap,
        dst_repeat=dst_repeat,
    )


def json_params(obj: object) -> Payload:
    """`obj` as JSON (UTF-8, content type application/json). Raises InvalidArgument("params")
    for an object JSON cannot encode."""
    try:
        data = json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise InvalidArgument("params", f"cannot be encoded as JSON: {error}") from error
    return Payload(data=data.encode(), content_type=JSON)


__all__ = ["cron", "every", "json_params", "once"]
