"""Trigger arithmetic: validation, next fire time, retry backoff.

Everything here is pure: no I/O of our own (zone data is read through `zoneinfo`, which caches
it), no clock reads, no randomness. The current time and any random number are passed in.
All returned datetimes are timezone-aware UTC.

Cron semantics
==============

Expressions have 5 fields (minute hour day-of-month month day-of-week) or 6 fields with
*seconds first* (second minute hour day-of-month month day-of-week). The usual aliases
(``@hourly``, ``@daily``/``@midnight``, ``@weekly``, ``@monthly``, ``@yearly``/``@annually``)
are accepted. When both day-of-month and day-of-week are restricted a day matches if either
does (classic cron OR rule). Hashed/random fields (``H``, ``R``) are rejected: they would make
the schedule depend on something other than the trigger.

An expression is matched against the wall clock of its IANA time zone. Daylight-saving
transitions follow Vixie cron (the cron of most Unix systems), made exact:

* A *fixed-time* expression -- neither the minute nor the hour field starts with ``*`` (e.g.
  ``30 2 * * *``, ``0,30 1 * * 1-5``) -- fires once per matching wall-clock time:

  - a wall time that does not exist (skipped by a spring-forward jump) fires at the instant of
    the jump, i.e. the first instant after the gap (02:30 in America/New_York on 2026-03-08
    fires at 03:00 EDT; several skipped times collapse into that one fire);
  - a wall time that occurs twice (repeated by a fall-back jump) fires only at its first
    occurrence (01:30 in America/New_York on 2026-11-01 fires at 01:30 EDT, not again at
    01:30 EST).

  Formally: it fires at the first instant at which the zone's wall clock has reached or
  passed the scheduled time for the first time.

* A *wildcard* expression -- the minute or the hour field starts with ``*`` (e.g.
  ``*/5 * * * *``, ``0 * * * *``, ``*/10 * * * * *``) -- runs on real time: it fires at every
  instant whose wall-clock reading matches. Skipped wall times never fire and repeated ones
  fire twice, so an every-five-minutes job keeps firing every five real minutes through both
  transitions instead of pausing for an hour in autumn.

A daily job at a fixed time therefore fires exactly once on every local date, including the
transition days.

Zone transitions are found by probing the zone every 6 hours and bisecting to the second; two
transitions less than 6 hours apart that restore the same offset would go unnoticed (checked:
no two transitions of any tz database zone since 1970 are less than 6 hours apart).
"""

from __future__ import annotations

import bisect
import copy
import functools
import math
import re
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

from hourglass_core.errors import InvalidTrigger
from hourglass_core.models import (
    CronTrigger,
    DstGap,
    DstRepeat,
    IntervalTrigger,
    OnceTrigger,
    RetryPolicy,
    Trigger,
)

__all__ = [
    "backoff_delay",
    "dst_note",
    "fires_between",
    "local_zone",
    "next_fire",
    "validate_trigger",
]

UTC = UTC

_ONE_MS = timedelta(milliseconds=1)
_ONE_US = timedelta(microseconds=1)
_ONE_SECOND = timedelta(seconds=1)
_ONE_MINUTE = timedelta(minutes=1)
# Transitions are located by probing at this step; see the module docstring.
_PROBE_STEP = timedelta(hours=6)
# A safety net against an endless segment walk; a real search crosses a handful of transitions
# (a leap-day job crosses about 16 in its 8-year worst case).
_MAX_SEGMENTS = 1000

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# croniter's hashed ("H", "H(0-29)", "H/5") and random ("R") fields. A lone H or R not touching
# other letters, so month and weekday names (MAR, THU, FRI) are not caught.
_HASH_OR_RANDOM = re.compile(r"(?<![A-Za-z])[HhRr](?![A-Za-z])")
# Files that zoneinfo can load but that are not IANA zones: they depend on the host.
_NOT_IANA = frozenset({"localtime", "posixrules", "Factory"})


# --------------------------------------------------------------------------------------------
# Validation


def validate_trigger(trigger: Trigger, field: str = "trigger") -> None:
    """Check that `trigger` can be evaluated; return None if it can.

    Raises `InvalidTrigger` whose `field` is the dotted path of the first offending field,
    prefixed by `field`:

    * ``<field>.once.at`` -- naive datetime;
    * ``<field>.interval.every`` -- not positive, below 1 ms, or not a whole number of
      milliseconds (sub-millisecond precision is almost surely a unit mistake; rejecting it
      keeps every fire time on a millisecond grid anchored at start);
    * ``<field>.cron.expression`` -- not 5 or 6 fields, a field out of range or unparsable, a
      hashed/random field, or an expression that can never fire (``0 0 30 2 *``);
    * ``<field>.cron.timezone`` -- not an IANA zone known to the installed tz database
      (an empty string means UTC, as on the wire);
    * ``<field>.start`` / ``<field>.end`` -- naive datetime; ``<field>.end`` also when end is
      before start.
    """
    if isinstance(trigger, OnceTrigger):
        _require_aware(trigger.at, f"{field}.once.at")
    elif isinstance(trigger, IntervalTrigger):
        _validate_every(trigger.every, f"{field}.interval.every")
        _require_aware(trigger.start, f"{field}.start")
        _validate_end(trigger.start, trigger.end, field)
    elif isinstance(trigger, CronTrigger):
        _compile(trigger.expression, f"{field}.cron.expression")
        _zone(trigger.timezone, f"{field}.cron.timezone")
        if trigger.start is not None:
            _require_aware(trigger.start, f"{field}.start")
        _validate_end(trigger.start, trigger.end, field)
    else:  # pragma: no cover - the union is closed, but callers may not be type-checked
        raise InvalidTrigger(field, f"unknown trigger type {type(trigger).__name__}")


def _is_aware(dt: datetime) -> bool:
    return dt.tzinfo is not None and dt.utcoffset() is not None


def _require_aware(dt: datetime, field: str) -> None:
    if not _is_aware(dt):
        raise InvalidTrigger(field, "must be timezone-aware")


def _validate_end(start: datetime | None, end: datetime | None, field: str) -> None:
    if end is None:
        return
    _require_aware(end, f"{field}.end")
    if start is not None and end < start:
        raise InvalidTrigger(f"{field}.end", "must not be before start")


def _validate_every(every: timedelta, field: str) -> None:
    if every <= timedelta(0):
        raise InvalidTrigger(field, "must be positive")
    if every < _ONE_MS:
        raise InvalidTrigger(field, "must be at least 1 ms")
    if every % _ONE_MS:
        raise InvalidTrigger(field, "must be a whole number of milliseconds")


# --------------------------------------------------------------------------------------------
# Next fire


def next_fire(trigger: Trigger, after: datetime) -> datetime | None:
    """The first fire time strictly after `after`, as an aware UTC datetime.

    None when the trigger will never fire after `after`: a once trigger at or before `after`,
    an interval or cron trigger whose next occurrence is past its `end`, or a cron expression
    with no occurrence left before year 9999. Fires happen within [start, end], both inclusive.

    Interval triggers fire at ``start + k * every`` (k >= 0): anchored, never drifting. Cron
    triggers follow the DST rules of the module docstring.

    Raises `InvalidTrigger` if the trigger is invalid (see `validate_trigger`) and
    `ValueError` if `after` is naive.
    """
    if not _is_aware(after):
        raise ValueError("after must be timezone-aware")
    validate_trigger(trigger)
    after = after.astimezone(UTC)
    try:
        if isinstance(trigger, OnceTrigger):
            at = trigger.at.astimezone(UTC)
            return at if at > after else None
        if isinstance(trigger, IntervalTrigger):
            return _interval_next(trigger, after)
        return _cron_next(trigger, after)
    except OverflowError:
        # The next occurrence would be beyond datetime.max: there is none.
        return None


def fire_times(trigger: Trigger, since: datetime, until: datetime, limit: int) -> tuple[list[datetime], bool]:
    """The trigger's fire times in [since, until), at most `limit`, and whether there are more."""
    times: list[datetime] = []
    cursor = since - timedelta(microseconds=1)
    while (found := next_fire(trigger, cursor)) is not None and found < until:
        if len(times) == limit:
            return times, True
        times.append(found)
        cursor = found
    return times, False


def iso_utc(at: datetime) -> str:
    """An instant as ISO 8601 in UTC with a Z, as messages and records show it."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def fires_between(
    trigger: Trigger, after: datetime, until: datetime, limit: int = 1000
) -> list[datetime]:
    """The fire times in (after, until], ascending, at most `limit` of them (the earliest).

    Built on `next_fire`, so it raises what `next_fire` raises; also `ValueError` if `until`
    is naive or `limit` is negative.
    """
    if not _is_aware(until):
        raise ValueError("until must be timezone-aware")
    if limit < 0:
        raise ValueError("limit must not be negative")
    fires: list[datetime] = []
    cursor = after
    while len(fires) < limit:
        fire = next_fire(trigger, cursor)
        if fire is None or fire > until:
            break
        fires.append(fire)
        cursor = fire
    return fires


def _interval_next(trigger: IntervalTrigger, after: datetime) -> datetime | None:
    start = trigger.start.astimezone(UTC)
    if after < start:
        fire = start
    else:
        # timedelta // timedelta is exact integer arithmetic on microseconds, so the anchor
        # never drifts, however far `after` is from `start`.
        fire = start + ((after - start) // trigger.every + 1) * trigger.every
    if trigger.end is not None and fire > trigger.end:
        return None
    return fire


def _cron_next(trigger: CronTrigger, after: datetime) -> datetime | None:
    spec = _compile(trigger.expression, "trigger.cron.expression")
    zone = _zone(trigger.timezone, "trigger.cron.timezone")
    if trigger.start is not None and after < trigger.start:
        # Fires at exactly `start` count; datetimes are multiples of 1 us, so "> start - 1 us"
        # is ">= start".
        after = trigger.start.astimezone(UTC) - _ONE_US
    fire = _zoned_next(spec, zone, after, trigger.dst_gap, trigger.dst_repeat)
    if fire is None or (trigger.end is not None and fire > trigger.end):
        return None
    return fire


# --------------------------------------------------------------------------------------------
# Cron expressions


@dataclass(frozen=True, slots=True)
class _CronSpec:
    expression: str  # normalised: aliases expanded, single spaces
    with_seconds: bool  # 6 fields, seconds first
    wildcard: bool  # minute or hour field starts with "*": runs on real time (see docstring)
    # A parsed croniter to copy for each search: parsing is half the cost of a search, and a
    # copy keeps the cached one untouched (croniter keeps its cursor in the object).
    template: croniter[datetime] = dataclass_field(compare=False, repr=False)

    @property
    def resolution(self) -> timedelta:
        """Every match is a whole multiple of this (from midnight)."""
        return _ONE_SECOND if self.with_seconds else _ONE_MINUTE


class _Invalid(ValueError):
    """A cron expression or zone name that cannot be used; the caller adds the field path."""


def _compile(expression: str, field: str) -> _CronSpec:
    try:
        return _compile_cached(expression)
    except _Invalid as exc:
        raise InvalidTrigger(field, str(exc)) from exc.__cause__


@functools.lru_cache(maxsize=4096)
def _compile_cached(expression: str) -> _CronSpec:
    text = expression.strip()
    text = _ALIASES.get(text.lower(), text)
    fields = text.split()
    if len(fields) not in (5, 6):
        raise _Invalid(
            f"{expression!r} must have 5 fields (minute hour day month weekday) "
            "or 6 with seconds first"
        )
    if any(_HASH_OR_RANDOM.search(f) for f in fields):
        raise _Invalid(f"{expression!r}: hashed (H) and random (R) fields are not supported")
    with_seconds = len(fields) == 6
    minute, hour = (fields[1], fields[2]) if with_seconds else (fields[0], fields[1])
    # croniter accepts "0 0 30 2 *" and only finds out that it never matches when asked for an
    # occurrence (it gives up after 50 years), so ask for one from a fixed reference. Calendar
    # patterns (weekday of a date, leap days) recur well within 50 years, so an expression that
    # matches at all matches within 50 years of 2000.
    normalised = " ".join(fields)
    try:
        template = croniter(
            normalised,
            datetime(2000, 1, 1, tzinfo=UTC),
            ret_type=datetime,
            second_at_beginning=with_seconds,
        )
        copy.copy(template).get_next(datetime)
    except (ValueError, KeyError, IndexError, TypeError, OverflowError) as exc:
        # CroniterError (bad field, never-matching date) subclasses ValueError; the others
        # are what croniter's parser lets escape on odd input.
        raise _Invalid(f"{expression!r}: {exc}") from exc
    spec = _CronSpec(
        expression=normalised,
        with_seconds=with_seconds,
        wildcard=minute.startswith("*") or hour.startswith("*"),
        template=template,
    )
    return spec


def _zone(name: str, field: str) -> ZoneInfo:
    key = name or "UTC"
    if key in _NOT_IANA:
        raise InvalidTrigger(field, f"{name!r} is not an IANA time zone")
    try:
        # ZoneInfo caches instances by key, so this is a dictionary look-up after the first.
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise InvalidTrigger(field, f"unknown time zone {name!r}") from exc


def _first_match_at_or_after(spec: _CronSpec, wall: datetime) -> datetime | None:
    """The first wall-clock time >= `wall` (naive, aligned to spec.resolution) matching spec.

    croniter is given wall times dressed as UTC so that it does plain calendar arithmetic:
    its own time zone handling is exactly what this module replaces.
    """
    try:
        found = copy.copy(spec.template).get_next(
            datetime, (wall - spec.resolution).replace(tzinfo=UTC)  # get_next is strictly-after
        )
    except (ValueError, OverflowError):
        # No occurrence within croniter's 50-year horizon or before datetime.max.
        return None
    return found.replace(tzinfo=None)


def _floor(wall: datetime, resolution: timedelta) -> datetime:
    if resolution == _ONE_MINUTE:
        return wall.replace(second=0, microsecond=0)
    return wall.replace(microsecond=0)


def _ceil(wall: datetime, resolution: timedelta) -> datetime:
    floor = _floor(wall, resolution)
    return floor if floor == wall else floor + resolution


# --------------------------------------------------------------------------------------------
# Time zone transitions


@dataclass(frozen=True, slots=True)
class _Transition:
    at: datetime  # UTC instant from which `offset_after` applies
    offset_before: timedelta
    offset_after: timedelta


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has an offset for an aware datetime
    return offset


def _wall(zone: ZoneInfo, instant: datetime) -> datetime:
    return instant.astimezone(zone).replace(tzinfo=None)


@functools.lru_cache(maxsize=2048)
def _transitions_in_year(zone: ZoneInfo, year: int) -> tuple[_Transition, ...]:
    """The offset changes of `zone` in (Jan 1 `year`, Jan 1 `year`+1] UTC, ascending.

    zoneinfo does not expose its transition table, so probe every 6 hours and bisect each
    change down to the second (tz database transitions are at whole seconds).
    """
    start = datetime(year, 1, 1, tzinfo=UTC)
    end = datetime(year + 1, 1, 1, tzinfo=UTC) if year < 9999 else datetime.max.replace(tzinfo=UTC)
    found: list[_Transition] = []
    lo, lo_offset = start, _offset(zone, start)
    while lo < end:
        hi = end if end - lo <= _PROBE_STEP else lo + _PROBE_STEP  # no overflow at year 9999
        hi_offset = _offset(zone, hi)
        if hi_offset != lo_offset:
            a, b = lo, hi  # invariant: offset(a) == lo_offset != offset(b)
            while b - a > _ONE_SECOND:
                mid = a + _ONE_SECOND * ((b - a) // _ONE_SECOND // 2)
                if _offset(zone, mid) == lo_offset:
                    a = mid
                else:
                    b = mid
            found.append(_Transition(b, lo_offset, _offset(zone, b)))
        lo, lo_offset = hi, hi_offset
    return tuple(found)


def _year_tables(zone: ZoneInfo, first_year: int, last_year: int) -> list[_Transition]:
    out: list[_Transition] = []
    for year in range(max(first_year, 1), min(last_year, 9999) + 1):
        out.extend(_transitions_in_year(zone, year))
    return out


def _first_transition_after(zone: ZoneInfo, after: datetime, until: datetime) -> _Transition | None:
    """The first transition in (after, until], or None."""
    # A transition at exactly Jan 1 00:00 of a year is filed under the year before.
    year = after.year if after.replace(tzinfo=None) > datetime(after.year, 1, 1) else after.year - 1
    while year <= min(until.year, 9999):
        table = _transitions_in_year(zone, year) if year >= 1 else ()
        index = bisect.bisect_right(table, after, key=lambda t: t.at)
        if index < len(table):
            transition = table[index]
            return transition if transition.at <= until else None
        year += 1
    return None


def _high_water_before(zone: ZoneInfo, instant: datetime) -> datetime | None:
    """The highest wall time shown just before any recent backward jump at or before `instant`.

    Every wall time below it has already been shown. Only the last two years are looked at:
    anything older has long been overtaken by the wall clock (offsets differ by hours).
    """
    best: datetime | None = None
    for transition in _year_tables(zone, instant.year - 2, instant.year):
        if transition.at <= instant:
            wall = transition.at.replace(tzinfo=None) + transition.offset_before
            best = wall if best is None or wall > best else best
    return best


# --------------------------------------------------------------------------------------------
# The zoned cron walk


def _zoned_next(
    spec: _CronSpec,
    zone: ZoneInfo,
    after: datetime,
    gap: DstGap = DstGap.SHIFT_FORWARD,
    repeat: DstRepeat = DstRepeat.ONCE,
) -> datetime | None:
    """The first fire of `spec` in `zone` strictly after the UTC instant `after`.

    Real time is cut into segments of constant UTC offset. Inside one segment the wall clock
    advances with real time, so the first match is a plain croniter search on wall times; the
    walk moves to the next segment when that match lies beyond the segment's end. `unseen`
    tracks the lowest wall time not yet shown by the clock: for fixed-time expressions,
    matches below it were already fired (repeated hour; unless `repeat` is TWICE) and matches
    skipped by a forward jump fire at the jump (unless `gap` is SKIP).
    """
    res = spec.resolution
    refire = spec.wildcard or repeat is DstRepeat.TWICE  # a repeated wall time fires again
    shift = not spec.wildcard and gap is DstGap.SHIFT_FORWARD  # a skipped one fires at the jump
    offset = _offset(zone, after)
    # Matches are aligned to `res`, so "> wall(after)" is ">= floor(wall(after)) + res".
    lower = _floor(_wall(zone, after), res) + res
    unseen = lower
    if not refire:
        high_water = _high_water_before(zone, after)
        if high_water is not None:
            unseen = lower = max(lower, _ceil(high_water, res))
    segment_start = after

    for _ in range(_MAX_SEGMENTS):
        match = _first_match_at_or_after(spec, lower)
        if match is None:
            return None
        instant = match.replace(tzinfo=UTC) - offset
        transition = _first_transition_after(zone, segment_start, instant)
        if transition is None:
            return instant
        # The match lies beyond this segment: no wall time before the segment's end matched.
        segment_end_wall = transition.at.replace(tzinfo=None) + offset
        unseen = max(unseen, _ceil(segment_end_wall, res))
        segment_start, offset = transition.at, transition.offset_after
        start_wall = _ceil(segment_start.replace(tzinfo=None) + offset, res)
        if shift and start_wall > unseen:
            # A forward jump skipped [unseen, start_wall): a fixed time in there fires now.
            skipped = _first_match_at_or_after(spec, unseen)
            if skipped is not None and skipped < start_wall:
                return segment_start
        lower = start_wall if refire else max(unseen, start_wall)
        unseen = max(unseen, start_wall)
    return None  # pragma: no cover - see _MAX_SEGMENTS


# --------------------------------------------------------------------------------------------
# Explaining fire times


def local_zone(trigger: Trigger) -> ZoneInfo:
    """The zone whose wall clock the trigger follows: a cron trigger's, else UTC."""
    if isinstance(trigger, CronTrigger):
        return _zone(trigger.timezone, "trigger.cron.timezone")
    return ZoneInfo("UTC")


def dst_note(trigger: Trigger, fire: datetime) -> str:
    """Why the fire at `fire` (an instant `next_fire` returned) is where it is when a clock
    change moved or doubled it; "" otherwise. Only cron triggers follow a wall clock."""
    if not isinstance(trigger, CronTrigger):
        return ""
    spec = _compile(trigger.expression, "trigger.cron.expression")
    zone = _zone(trigger.timezone, "trigger.cron.timezone")
    local = fire.astimezone(zone)
    wall = local.replace(tzinfo=None)
    at = f"{wall:%H:%M:%S}" if spec.with_seconds else f"{wall:%H:%M}"
    day = f"{wall:%Y-%m-%d}"
    if local.fold == 1:
        return f"the second {at} of {day}: clocks went back ({zone.key})"
    if local.replace(fold=1).utcoffset() != local.utcoffset():
        if spec.wildcard or trigger.dst_repeat is DstRepeat.TWICE:
            return f"the first {at} of {day}: clocks go back and it fires again at the second ({zone.key})"
        return f"{at} happens twice on {day} as clocks go back: fires at the first only ({zone.key})"
    if _first_match_at_or_after(spec, _floor(wall, spec.resolution)) != wall:
        gap = _offset(zone, fire) - _offset(zone, fire - _ONE_US)
        return (f"clocks went forward {_duration(gap)} at {at} on {day} ({zone.key}): "
                f"the scheduled time did not exist, so it fires as the gap ends")  # fmt: skip
    return ""


def _duration(value: timedelta) -> str:
    minutes = int(value.total_seconds()) // 60
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours and minutes else f"{hours} h" if hours else f"{minutes} min"


# --------------------------------------------------------------------------------------------
# Retry backoff


def backoff_delay(policy: RetryPolicy, attempt: int, jitter: float) -> timedelta:
    """The delay before the retry that follows failed attempt `attempt` (1 = the first run).

    The base delay is ``initial_backoff * multiplier ** (attempt - 1)`` capped at
    ``max_backoff``; the result applies "equal jitter": ``base/2 + jitter * base/2``, so it
    lies in [base/2, base] (base only through rounding) and never exceeds max_backoff.
    `jitter` is the caller's random number in [0, 1), which keeps this function pure. For a
    fixed jitter and multiplier >= 1 the delay is non-decreasing in `attempt`. The result is
    rounded to the microsecond.

    Raises `ValueError` if attempt < 1, jitter is outside [0, 1), a duration is negative or
    the multiplier is negative or NaN.
    """
    if attempt < 1:
        raise ValueError("attempt must be >= 1")
    if not 0.0 <= jitter < 1.0:
        raise ValueError("jitter must be in [0, 1)")
    if policy.initial_backoff < timedelta(0) or policy.max_backoff < timedelta(0):
        raise ValueError("backoff durations must not be negative")
    if not policy.multiplier >= 0.0:  # written this way to catch NaN too
        raise ValueError("multiplier must not be negative")
    initial = policy.initial_backoff.total_seconds()
    cap = policy.max_backoff.total_seconds()
    if initial == 0.0:
        base = 0.0  # without this, 0 * inf below would be NaN
    else:
        try:
            factor = math.pow(policy.multiplier, attempt - 1)
        except OverflowError:
            factor = math.inf  # a huge exponent: far past any cap
        base = min(initial * factor, cap)
    return timedelta(seconds=base / 2 + jitter * base / 2)
