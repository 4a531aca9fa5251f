"""A trigger and a duration in the words the CLI's flags take (`--every 1h30m`,
`--cron '0 9 * * 1-5' --timezone Europe/Paris`): one sentence for the CLI, the dashboard and
anything else that shows a job's schedule to a person."""

from __future__ import annotations

from datetime import datetime, timedelta

from hourglass_core.models import CronTrigger, DstGap, DstRepeat, IntervalTrigger, OnceTrigger, Trigger


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def duration_text(value: timedelta) -> str:
    """500ms, 10s, 1.5s, 2m, 1h30m, 2d."""
    ms = round(value.total_seconds() * 1000)
    if ms % 1000:
        return f"{ms}ms" if ms < 1000 else f"{ms / 1000:g}s"
    out, rest = "", ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out += f"{rest // size}{unit}"
            rest %= size
    return out or "0s"


def trigger_text(trigger: Trigger) -> str:
    match trigger:
        case OnceTrigger(at=at):
            return f"once at {iso(at)}"
        case IntervalTrigger(every=every, start=start, end=end):
            text = f"every {duration_text(every)} from {iso(start)}"
        case CronTrigger(expression=expression, timezone=tz, start=start, end=end):
            text = f"cron '{expression}' {tz}" + (f" from {iso(start)}" if start else "")
            if trigger.dst_gap is not DstGap.SHIFT_FORWARD or trigger.dst_repeat is not DstRepeat.ONCE:
                text += f" (dst: {trigger.dst_gap.value}, {trigger.dst_repeat.value})"
    return text + (f" until {iso(end)}" if end else "")
