"""Behaviour of hourglass_core.triggers: validation, next fire times (incl. DST), backoff."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hourglass_core.errors import InvalidTrigger
from hourglass_core.models import CronTrigger, DstGap, DstRepeat, IntervalTrigger, OnceTrigger, RetryPolicy, Trigger
from hourglass_core.triggers import backoff_delay, fires_between, next_fire, validate_trigger

UTC = UTC
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")

# 2026 transitions: US spring 2026-03-08 02:00 EST -> 03:00 EDT, fall 2026-11-01 02:00 EDT ->
# 01:00 EST; UK spring 2026-03-29 01:00 GMT -> 02:00 BST, fall 2026-10-25 02:00 BST -> 01:00 GMT.
US_SPRING, US_FALL = date(2026, 3, 8), date(2026, 11, 1)
UK_SPRING, UK_FALL = date(2026, 3, 29), date(2026, 10, 25)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, us: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, us, tzinfo=UTC)


def local(
    zone: ZoneInfo,
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    *,
    fold: int = 0,
) -> datetime:
    """A wall-clock time in `zone`, returned as UTC.

    Tests compare in UTC on purpose: Python compares two datetimes sharing a tzinfo by wall
    time (ignoring fold), and never finds a repeated-hour time equal to one in another zone.
    """
    return datetime(year, month, day, hour, minute, second, tzinfo=zone, fold=fold).astimezone(UTC)


def fires_around(trigger: CronTrigger, day: date) -> list[datetime]:
    """All fires (UTC) from the start of the day before `day` to the end of the day after it."""
    zone = ZoneInfo(trigger.timezone)
    start = datetime.combine(day - timedelta(days=1), datetime.min.time(), zone)
    end = datetime.combine(day + timedelta(days=2), datetime.min.time(), zone)
    return fires_between(trigger, start - timedelta(microseconds=1), end, limit=10_000)


def local_date(fire: datetime, zone_name: str) -> date:
    return fire.astimezone(ZoneInfo(zone_name)).date()


def fires_per_local_date(trigger: CronTrigger, day: date) -> Counter[date]:
    return Counter(local_date(f, trigger.timezone) for f in fires_around(trigger, day))


def fires_on(trigger: CronTrigger, day: date) -> list[datetime]:
    """The fires (UTC) whose local date in the trigger's zone is `day`."""
    return [f for f in fires_around(trigger, day) if local_date(f, trigger.timezone) == day]


# ------------------------------------------------------------------------------------------
# Once


def test_once_trigger_fires_at_its_time_when_asked_before_it() -> None:
    trigger = OnceTrigger(at=utc(2026, 5, 1, 12))
    assert next_fire(trigger, utc(2026, 5, 1, 11, 59)) == utc(2026, 5, 1, 12)


def test_once_trigger_is_exhausted_at_and_after_its_time() -> None:
    trigger = OnceTrigger(at=utc(2026, 5, 1, 12))
    assert next_fire(trigger, utc(2026, 5, 1, 12)) is None
    assert next_fire(trigger, utc(2027, 1, 1)) is None


def test_once_trigger_result_is_utc_even_for_a_zoned_time() -> None:
    fire = next_fire(OnceTrigger(at=local(NEW_YORK, 2026, 7, 1, 9)), utc(2026, 1, 1))
    assert fire == utc(2026, 7, 1, 13)
    assert fire is not None and fire.tzinfo is UTC


# ------------------------------------------------------------------------------------------
# Interval


def test_interval_trigger_fires_at_start_when_asked_before_start() -> None:
    trigger = IntervalTrigger(every=timedelta(minutes=5), start=utc(2026, 1, 1, 10))
    assert next_fire(trigger, utc(2025, 12, 31)) == utc(2026, 1, 1, 10)


def test_interval_trigger_next_fire_after_start_is_strictly_later() -> None:
    trigger = IntervalTrigger(every=timedelta(minutes=5), start=utc(2026, 1, 1, 10))
    assert next_fire(trigger, utc(2026, 1, 1, 10)) == utc(2026, 1, 1, 10, 5)


def test_interval_trigger_is_anchored_at_start_not_at_the_query_time() -> None:
    trigger = IntervalTrigger(every=timedelta(minutes=5), start=utc(2026, 1, 1, 10, 0, 7))
    assert next_fire(trigger, utc(2026, 1, 1, 13, 33, 59)) == utc(2026, 1, 1, 13, 35, 7)


def test_interval_trigger_does_not_drift_over_years() -> None:
    every = timedelta(seconds=7, milliseconds=3)
    trigger = IntervalTrigger(every=every, start=utc(2026, 1, 1))
    fire = next_fire(trigger, utc(2036, 6, 1))
    assert fire is not None and (fire - utc(2026, 1, 1)) % every == timedelta(0)


def test_interval_trigger_end_is_inclusive() -> None:
    trigger = IntervalTrigger(
        every=timedelta(hours=1), start=utc(2026, 1, 1), end=utc(2026, 1, 1, 3)
    )
    assert fires_between(trigger, utc(2025, 1, 1), utc(2027, 1, 1)) == [
        utc(2026, 1, 1, 0),
        utc(2026, 1, 1, 1),
        utc(2026, 1, 1, 2),
        utc(2026, 1, 1, 3),
    ]


def test_interval_trigger_is_exhausted_after_end() -> None:
    trigger = IntervalTrigger(
        every=timedelta(hours=1), start=utc(2026, 1, 1), end=utc(2026, 1, 1, 2, 30)
    )
    assert next_fire(trigger, utc(2026, 1, 1, 2)) is None


def test_interval_trigger_supports_millisecond_intervals() -> None:
    trigger = IntervalTrigger(every=timedelta(milliseconds=1), start=utc(2026, 1, 1))
    assert next_fire(trigger, utc(2026, 1, 1)) == utc(2026, 1, 1) + timedelta(milliseconds=1)


def test_interval_trigger_with_zoned_start_returns_utc() -> None:
    trigger = IntervalTrigger(every=timedelta(hours=1), start=local(LONDON, 2026, 7, 1, 12))
    fire = next_fire(trigger, utc(2026, 1, 1))
    assert fire == utc(2026, 7, 1, 11)
    assert fire is not None and fire.tzinfo is UTC


# ------------------------------------------------------------------------------------------
# Cron basics


def test_cron_five_fields_fires_on_the_minute() -> None:
    trigger = CronTrigger("*/15 * * * *")
    assert next_fire(trigger, utc(2026, 1, 1, 10, 7, 30)) == utc(2026, 1, 1, 10, 15)


def test_cron_next_fire_is_strictly_after_a_matching_time() -> None:
    assert next_fire(CronTrigger("0 12 * * *"), utc(2026, 1, 1, 12)) == utc(2026, 1, 2, 12)


def test_cron_six_fields_take_seconds_first() -> None:
    trigger = CronTrigger("15 30 2 * * *")  # 02:30:15 every day
    assert next_fire(trigger, utc(2026, 1, 1)) == utc(2026, 1, 1, 2, 30, 15)


def test_cron_every_ten_seconds() -> None:
    trigger = CronTrigger("*/10 * * * * *")
    assert fires_between(trigger, utc(2026, 1, 1, 0, 0, 5), utc(2026, 1, 1, 0, 0, 40)) == [
        utc(2026, 1, 1, 0, 0, 10),
        utc(2026, 1, 1, 0, 0, 20),
        utc(2026, 1, 1, 0, 0, 30),
        utc(2026, 1, 1, 0, 0, 40),
    ]


def test_cron_sub_second_query_time_rounds_up_to_the_next_match() -> None:
    trigger = CronTrigger("* * * * * *")
    after = utc(2026, 1, 1) + timedelta(microseconds=999_999)
    assert next_fire(trigger, after) == utc(2026, 1, 1, 0, 0, 1)


def test_cron_is_evaluated_in_its_time_zone() -> None:
    trigger = CronTrigger("0 9 * * *", timezone="Asia/Tokyo")  # UTC+9, no DST
    assert next_fire(trigger, utc(2026, 6, 1, 1)) == utc(2026, 6, 2, 0)


def test_cron_in_new_york_uses_summer_and_winter_offsets() -> None:
    trigger = CronTrigger("0 9 * * *", timezone="America/New_York")
    assert next_fire(trigger, utc(2026, 1, 10)) == utc(2026, 1, 10, 14)  # EST, UTC-5
    assert next_fire(trigger, utc(2026, 7, 10)) == utc(2026, 7, 10, 13)  # EDT, UTC-4


def test_cron_empty_time_zone_means_utc() -> None:
    assert next_fire(CronTrigger("0 9 * * *", timezone=""), utc(2026, 1, 1)) == utc(2026, 1, 1, 9)


def test_cron_aliases_are_accepted() -> None:
    assert next_fire(CronTrigger("@daily"), utc(2026, 1, 1, 5)) == utc(2026, 1, 2)
    assert next_fire(CronTrigger("@hourly"), utc(2026, 1, 1, 5, 1)) == utc(2026, 1, 1, 6)


def test_cron_day_of_month_and_day_of_week_combine_with_or() -> None:
    # The 13th, or any Friday: 2026-02-06 is a Friday, before the 13th.
    assert next_fire(CronTrigger("0 0 13 * FRI"), utc(2026, 2, 1)) == utc(2026, 2, 6)


def test_cron_leap_day_job_waits_for_the_next_leap_year() -> None:
    assert next_fire(CronTrigger("0 0 29 2 *"), utc(2026, 1, 1)) == utc(2028, 2, 29)


def test_cron_start_is_inclusive() -> None:
    trigger = CronTrigger("0 * * * *", start=utc(2026, 1, 1, 5))
    assert next_fire(trigger, utc(2020, 1, 1)) == utc(2026, 1, 1, 5)


def test_cron_start_between_matches_gives_the_next_match() -> None:
    trigger = CronTrigger("0 * * * *", start=utc(2026, 1, 1, 5, 0, 0, 1))
    assert next_fire(trigger, utc(2020, 1, 1)) == utc(2026, 1, 1, 6)


def test_cron_end_is_inclusive_and_then_the_trigger_is_exhausted() -> None:
    trigger = CronTrigger("0 * * * *", start=utc(2026, 1, 1, 5), end=utc(2026, 1, 1, 7))
    fires = fires_between(trigger, utc(2020, 1, 1), utc(2030, 1, 1))
    assert fires == [utc(2026, 1, 1, 5), utc(2026, 1, 1, 6), utc(2026, 1, 1, 7)]
    assert next_fire(trigger, utc(2026, 1, 1, 7)) is None


def test_cron_result_is_utc() -> None:
    fire = next_fire(CronTrigger("0 9 * * *", timezone="Europe/London"), utc(2026, 7, 1))
    assert fire is not None and fire.tzinfo is UTC


def test_next_fire_rejects_a_naive_query_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        next_fire(CronTrigger("* * * * *"), datetime(2026, 1, 1))


def test_fires_between_stops_at_limit() -> None:
    fires = fires_between(CronTrigger("* * * * *"), utc(2026, 1, 1), utc(2027, 1, 1), limit=3)
    assert fires == [utc(2026, 1, 1, 0, 1), utc(2026, 1, 1, 0, 2), utc(2026, 1, 1, 0, 3)]


def test_fires_between_excludes_after_and_includes_until() -> None:
    fires = fires_between(CronTrigger("0 * * * *"), utc(2026, 1, 1, 1), utc(2026, 1, 1, 3))
    assert fires == [utc(2026, 1, 1, 2), utc(2026, 1, 1, 3)]


# ------------------------------------------------------------------------------------------
# DST: fixed-time jobs fire once per local date


def test_daily_0230_job_fires_once_on_spring_forward_day_new_york() -> None:
    # 02:30 does not exist on 2026-03-08: the job fires when the clock jumps, at 03:00 EDT.
    trigger = CronTrigger("30 2 * * *", timezone="America/New_York")
    assert fires_on(trigger, US_SPRING) == [local(NEW_YORK, 2026, 3, 8, 3, 0)]
    assert fires_per_local_date(trigger, US_SPRING) == {
        date(2026, 3, 7): 1,
        US_SPRING: 1,
        date(2026, 3, 9): 1,
    }


def test_daily_0230_job_fires_once_on_fall_back_day_new_york() -> None:
    trigger = CronTrigger("30 2 * * *", timezone="America/New_York")
    assert fires_on(trigger, US_FALL) == [local(NEW_YORK, 2026, 11, 1, 2, 30)]
    assert fires_on(trigger, US_FALL)[0] == utc(2026, 11, 1, 7, 30)  # EST
    assert set(fires_per_local_date(trigger, US_FALL).values()) == {1}


def test_daily_0230_job_fires_once_on_spring_forward_day_london() -> None:
    trigger = CronTrigger("30 2 * * *", timezone="Europe/London")
    assert fires_on(trigger, UK_SPRING) == [local(LONDON, 2026, 3, 29, 2, 30)]
    assert fires_on(trigger, UK_SPRING)[0] == utc(2026, 3, 29, 1, 30)  # BST
    assert set(fires_per_local_date(trigger, UK_SPRING).values()) == {1}


def test_daily_0230_job_fires_once_on_fall_back_day_london() -> None:
    trigger = CronTrigger("30 2 * * *", timezone="Europe/London")
    assert fires_on(trigger, UK_FALL) == [local(LONDON, 2026, 10, 25, 2, 30)]
    assert fires_on(trigger, UK_FALL)[0] == utc(2026, 10, 25, 2, 30)  # GMT
    assert set(fires_per_local_date(trigger, UK_FALL).values()) == {1}


def test_daily_0130_job_fires_once_on_spring_forward_day_new_york() -> None:
    trigger = CronTrigger("30 1 * * *", timezone="America/New_York")
    assert fires_on(trigger, US_SPRING) == [local(NEW_YORK, 2026, 3, 8, 1, 30)]


def test_daily_0130_job_fires_only_at_first_occurrence_on_fall_back_day_new_york() -> None:
    # 01:30 happens twice (EDT, then EST); only the first one fires.
    trigger = CronTrigger("30 1 * * *", timezone="America/New_York")
    assert fires_on(trigger, US_FALL) == [local(NEW_YORK, 2026, 11, 1, 1, 30, fold=0)]
    assert fires_on(trigger, US_FALL)[0] == utc(2026, 11, 1, 5, 30)
    assert set(fires_per_local_date(trigger, US_FALL).values()) == {1}


def test_daily_0130_job_fires_at_the_jump_on_spring_forward_day_london() -> None:
    # 01:30 does not exist on 2026-03-29 in London: fires at 02:00 BST, when the clock jumps.
    trigger = CronTrigger("30 1 * * *", timezone="Europe/London")
    assert fires_on(trigger, UK_SPRING) == [local(LONDON, 2026, 3, 29, 2, 0)]
    assert fires_on(trigger, UK_SPRING)[0] == utc(2026, 3, 29, 1, 0)
    assert set(fires_per_local_date(trigger, UK_SPRING).values()) == {1}


def test_daily_0130_job_fires_only_at_first_occurrence_on_fall_back_day_london() -> None:
    trigger = CronTrigger("30 1 * * *", timezone="Europe/London")
    assert fires_on(trigger, UK_FALL) == [local(LONDON, 2026, 10, 25, 1, 30, fold=0)]
    assert fires_on(trigger, UK_FALL)[0] == utc(2026, 10, 25, 0, 30)  # BST
    assert set(fires_per_local_date(trigger, UK_FALL).values()) == {1}


def test_asking_during_the_repeated_hour_does_not_refire_a_fixed_time_job() -> None:
    trigger = CronTrigger("30 1 * * *", timezone="America/New_York")
    # 01:15 EST, the second pass through 01:xx, after 01:30 EDT has fired.
    assert next_fire(trigger, utc(2026, 11, 1, 6, 15)) == local(NEW_YORK, 2026, 11, 2, 1, 30)


def test_asking_just_before_the_jump_gives_the_jump_instant() -> None:
    trigger = CronTrigger("30 2 * * *", timezone="America/New_York")
    assert next_fire(trigger, utc(2026, 3, 8, 6, 59, 59)) == utc(2026, 3, 8, 7, 0)
    assert next_fire(trigger, utc(2026, 3, 8, 7, 0)) == local(NEW_YORK, 2026, 3, 9, 2, 30)


def test_several_skipped_fixed_times_collapse_into_one_fire_at_the_jump() -> None:
    trigger = CronTrigger("0,15,30,45 2 * * *", timezone="America/New_York")
    assert fires_on(trigger, US_SPRING) == [local(NEW_YORK, 2026, 3, 8, 3, 0)]


def test_seconds_level_fixed_time_job_fires_once_at_the_jump() -> None:
    trigger = CronTrigger("10 30 2 * * *", timezone="America/New_York")
    assert fires_on(trigger, US_SPRING) == [local(NEW_YORK, 2026, 3, 8, 3, 0)]
    assert fires_on(trigger, US_FALL) == [local(NEW_YORK, 2026, 11, 1, 2, 30, 10)]


ZONES_WITH_ODD_TRANSITIONS = [
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",  # 30-minute DST shift
    "America/Santiago",  # transitions at local midnight
    "Asia/Kolkata",  # no DST, half-hour offset
]


@pytest.mark.parametrize("zone_name", ZONES_WITH_ODD_TRANSITIONS)
@pytest.mark.parametrize("expression", ["30 2 * * *", "30 1 * * *", "0 0 * * *", "45 1 * * *"])
def test_daily_fixed_time_job_fires_once_on_every_local_date_of_2026(
    zone_name: str, expression: str
) -> None:
    zone = ZoneInfo(zone_name)
    trigger = CronTrigger(expression, timezone=zone_name)
    start = datetime(2026, 1, 1, tzinfo=zone)
    end = datetime(2027, 1, 1, tzinfo=zone) - timedelta(microseconds=1)
    fires = fires_between(trigger, start - timedelta(microseconds=1), end, limit=1000)
    per_date = Counter(f.astimezone(zone).date() for f in fires)
    assert len(per_date) == 365
    assert set(per_date.values()) == {1}


# ------------------------------------------------------------------------------------------
# DST: wildcard jobs run on real time


@pytest.mark.parametrize(
    ("zone", "day", "hours"),
    [(NEW_YORK, US_SPRING, 23), (NEW_YORK, US_FALL, 25), (LONDON, UK_SPRING, 23), (LONDON, UK_FALL, 25)],
)
def test_hourly_job_fires_once_per_real_hour_on_transition_days(
    zone: ZoneInfo, day: date, hours: int
) -> None:
    trigger = CronTrigger("0 * * * *", timezone=str(zone))
    fires = fires_on(trigger, day)
    assert len(fires) == hours
    assert all(b - a == timedelta(hours=1) for a, b in pairwise(fires))


@pytest.mark.parametrize("day", [US_SPRING, US_FALL])
def test_every_15_minutes_job_keeps_real_15_minute_spacing_through_transitions(day: date) -> None:
    fires = fires_around(CronTrigger("*/15 * * * *", timezone="America/New_York"), day)
    assert all(b - a == timedelta(minutes=15) for a, b in pairwise(fires))


def test_hourly_at_half_past_fires_twice_at_0130_on_fall_back_day_london() -> None:
    fires = fires_on(CronTrigger("30 * * * *", timezone="Europe/London"), UK_FALL)
    walls = [f.astimezone(LONDON) for f in fires]
    assert [f for f, w in zip(fires, walls, strict=True) if (w.hour, w.minute) == (1, 30)] == [
        local(LONDON, 2026, 10, 25, 1, 30, fold=0),
        local(LONDON, 2026, 10, 25, 1, 30, fold=1),
    ]


def test_wildcard_job_confined_to_a_skipped_hour_does_not_fire_that_day() -> None:
    # "*/15 2 * * *" is a wildcard job (minute starts with "*"): real time, like Vixie cron.
    assert fires_on(CronTrigger("*/15 2 * * *", timezone="America/New_York"), US_SPRING) == []


def test_every_second_job_runs_through_the_repeated_hour() -> None:
    trigger = CronTrigger("* * * * * *", timezone="America/New_York")
    after = utc(2026, 11, 1, 5, 59, 58)  # 01:59:58 EDT
    assert fires_between(trigger, after, utc(2026, 11, 1, 6, 0, 1)) == [
        utc(2026, 11, 1, 5, 59, 59),
        utc(2026, 11, 1, 6, 0, 0),  # 01:00:00 EST
        utc(2026, 11, 1, 6, 0, 1),
    ]


# A brute-force reference for simple minute/hour expressions (day fields "*"), independent of
# croniter and of the module's segment walk: step through real minutes, read the wall clock.


def _field_matches(spec: str, value: int) -> bool:
    for part in spec.split(","):
        if part == "*":
            return True
        if m := re.fullmatch(r"\*/(\d+)", part):
            if value % int(m.group(1)) == 0:
                return True
        elif m := re.fullmatch(r"(\d+)-(\d+)", part):
            if int(m.group(1)) <= value <= int(m.group(2)):
                return True
        elif int(part) == value:
            return True
    return False


def _reference_fires(
    expression: str,
    zone: ZoneInfo,
    start: datetime,
    end: datetime,
    gap: DstGap = DstGap.SHIFT_FORWARD,
    repeat: DstRepeat = DstRepeat.ONCE,
) -> list[datetime]:
    minute_spec, hour_spec, *_ = expression.split()
    wildcard = minute_spec.startswith("*") or hour_spec.startswith("*")

    def matches(wall: datetime) -> bool:
        return _field_matches(minute_spec, wall.minute) and _field_matches(hour_spec, wall.hour)

    fires = []
    reached = start.astimezone(zone).replace(tzinfo=None)  # highest wall time shown so far
    t = start + timedelta(minutes=1)
    while t <= end:
        wall = t.astimezone(zone).replace(tzinfo=None)
        if wildcard:
            if matches(wall):
                fires.append(t)
        elif wall > reached:
            minutes = (wall - reached) // timedelta(minutes=1)
            skipped = (reached + timedelta(minutes=k) for k in range(1, minutes + 1))
            if matches(wall) if gap is DstGap.SKIP else any(matches(w) for w in skipped):
                fires.append(t)
        elif repeat is DstRepeat.TWICE and matches(wall):  # a wall time shown again
            fires.append(t)
        reached = max(reached, wall)
        t += timedelta(minutes=1)
    return fires


@pytest.mark.parametrize("zone", [NEW_YORK, LONDON, ZoneInfo("Australia/Lord_Howe")])
@pytest.mark.parametrize(
    "expression",
    ["30 2 * * *", "0,30 1,2 * * *", "*/20 * * * *", "10 * * * *", "*/7 1-3 * * *", "15-45 2 * * *"],
)
def test_cron_matches_a_brute_force_wall_clock_reference_around_both_transitions(
    zone: ZoneInfo, expression: str
) -> None:
    trigger = CronTrigger(expression, timezone=str(zone))
    year_transitions = {
        "America/New_York": [US_SPRING, US_FALL],
        "Europe/London": [UK_SPRING, UK_FALL],
        "Australia/Lord_Howe": [date(2026, 4, 5), date(2026, 10, 4)],
    }[str(zone)]
    for day in year_transitions:
        start = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC)
        end = start + timedelta(days=3)
        assert fires_between(trigger, start, end, limit=10_000) == _reference_fires(
            expression, zone, start, end
        )


@pytest.mark.parametrize("zone", [NEW_YORK, LONDON, ZoneInfo("Australia/Lord_Howe"), ZoneInfo("America/Santiago")])
@pytest.mark.parametrize("expression", ["30 2 * * *", "0,30 0-2 * * *", "15-45 1 * * *", "0 0 * * *", "*/20 * * * *"])
@pytest.mark.parametrize("gap", list(DstGap))
@pytest.mark.parametrize("repeat", list(DstRepeat))
def test_dst_policies_match_the_brute_force_reference_over_a_year_of_transitions(
    zone: ZoneInfo, expression: str, gap: DstGap, repeat: DstRepeat
) -> None:
    """Every 2026 offset change of the zone, each policy pair: skipped local times fire at the
    jump or not at all, repeated ones once or twice; wildcard expressions are unaffected."""
    trigger = CronTrigger(expression, timezone=str(zone), dst_gap=gap, dst_repeat=repeat)
    days = [d for d in (date(2026, 1, 1) + timedelta(days=i) for i in range(365))
            if datetime(d.year, d.month, d.day, 12, tzinfo=zone).utcoffset()
            != (datetime(d.year, d.month, d.day, 12, tzinfo=zone) - timedelta(days=1)).utcoffset()]  # fmt: skip
    assert len(days) == 2
    for day in days:
        start = datetime.combine(day - timedelta(days=1), datetime.min.time(), UTC)
        end = start + timedelta(days=2)
        assert fires_between(trigger, start, end, limit=10_000) == _reference_fires(
            expression, zone, start, end, gap, repeat
        ), day


def test_the_dst_policies_on_new_york_transition_days() -> None:
    def local(trigger: CronTrigger, day: date) -> list[str]:
        start = datetime.combine(day, datetime.min.time(), NEW_YORK)
        return [f.astimezone(NEW_YORK).strftime("%H:%M%z") for f in fires_between(trigger, start, start + timedelta(days=1))]

    assert local(CronTrigger("30 2 * * *", "America/New_York"), US_SPRING) == ["03:00-0400"]
    assert local(CronTrigger("30 2 * * *", "America/New_York", dst_gap=DstGap.SKIP), US_SPRING) == []
    assert local(CronTrigger("30 1 * * *", "America/New_York"), US_FALL) == ["01:30-0400"]
    assert local(CronTrigger("30 1 * * *", "America/New_York", dst_repeat=DstRepeat.TWICE), US_FALL) == [
        "01:30-0400", "01:30-0500",
    ]  # fmt: skip


# ------------------------------------------------------------------------------------------
# Validation


def _invalid_field(trigger: Trigger, field: str = "trigger") -> str:
    with pytest.raises(InvalidTrigger) as info:
        validate_trigger(trigger, field)
    return info.value.field


@pytest.mark.parametrize(
    "expression",
    [
        "",
        "* * * *",  # 4 fields
        "* * * * * * *",  # 7 fields (croniter would read a year)
        "61 * * * *",
        "* 24 * * *",
        "0 0 32 * *",
        "0 0 * 13 *",
        "70 * * * * *",  # seconds out of range
        "banana * * * *",
        "0 0 30 2 *",  # February 30th never happens
        "0 0 31 4,6 *",
        "H * * * *",  # hashed
        "R * * * *",  # random
        "@reboot",
    ],
)
def test_invalid_cron_expression_is_rejected_naming_the_expression_field(expression: str) -> None:
    assert _invalid_field(CronTrigger(expression)) == "trigger.cron.expression"


@pytest.mark.parametrize(
    "expression",
    ["* * * * *", "0 9 * * MON-FRI", "0 0 1 JAN,MAR *", "0 0 L * *", "*/5 * * * * *", "@weekly"],
)
def test_valid_cron_expressions_are_accepted(expression: str) -> None:
    validate_trigger(CronTrigger(expression))


@pytest.mark.parametrize("zone", ["Mars/Olympus_Mons", "utc", "America/New York", "../etc", "localtime"])
def test_unknown_time_zone_is_rejected_naming_the_timezone_field(zone: str) -> None:
    assert _invalid_field(CronTrigger("* * * * *", timezone=zone)) == "trigger.cron.timezone"


def test_cron_end_before_start_is_rejected_naming_end() -> None:
    trigger = CronTrigger("* * * * *", start=utc(2026, 2, 1), end=utc(2026, 1, 1))
    assert _invalid_field(trigger) == "trigger.end"


def test_cron_end_equal_to_start_is_accepted() -> None:
    validate_trigger(CronTrigger("* * * * *", start=utc(2026, 1, 1), end=utc(2026, 1, 1)))


def test_interval_end_before_start_is_rejected_naming_end() -> None:
    trigger = IntervalTrigger(every=timedelta(seconds=1), start=utc(2026, 2, 1), end=utc(2026, 1, 1))
    assert _invalid_field(trigger) == "trigger.end"


@pytest.mark.parametrize(
    "every",
    [timedelta(0), timedelta(seconds=-1), timedelta(microseconds=999), timedelta(microseconds=1500)],
)
def test_interval_must_be_positive_whole_milliseconds(every: timedelta) -> None:
    assert _invalid_field(IntervalTrigger(every=every, start=utc(2026, 1, 1))) == "trigger.interval.every"


@pytest.mark.parametrize(
    ("trigger", "field"),
    [
        (OnceTrigger(at=datetime(2026, 1, 1)), "trigger.once.at"),
        (IntervalTrigger(every=timedelta(seconds=1), start=datetime(2026, 1, 1)), "trigger.start"),
        (
            IntervalTrigger(every=timedelta(seconds=1), start=utc(2026, 1, 1), end=datetime(2026, 2, 1)),
            "trigger.end",
        ),
        (CronTrigger("* * * * *", start=datetime(2026, 1, 1)), "trigger.start"),
        (CronTrigger("* * * * *", end=datetime(2026, 1, 1)), "trigger.end"),
    ],
)
def test_naive_datetimes_are_rejected_naming_the_field(trigger: Trigger, field: str) -> None:
    assert _invalid_field(trigger) == field


def test_validation_error_fields_use_the_given_prefix() -> None:
    assert _invalid_field(CronTrigger("nope"), "jobs[3].trigger") == "jobs[3].trigger.cron.expression"


def test_next_fire_raises_invalid_trigger_for_an_invalid_trigger() -> None:
    with pytest.raises(InvalidTrigger):
        next_fire(CronTrigger("0 0 30 2 *"), utc(2026, 1, 1))


# ------------------------------------------------------------------------------------------
# Backoff


def test_first_retry_waits_initial_backoff_with_equal_jitter() -> None:
    policy = RetryPolicy(max_attempts=5, initial_backoff=timedelta(seconds=1))
    assert backoff_delay(policy, 1, 0.0) == timedelta(seconds=0.5)
    assert backoff_delay(policy, 1, 0.5) == timedelta(seconds=0.75)


def test_backoff_grows_by_the_multiplier() -> None:
    policy = RetryPolicy(initial_backoff=timedelta(seconds=1), multiplier=3.0)
    assert [backoff_delay(policy, a, 0.0) for a in (1, 2, 3)] == [
        timedelta(seconds=0.5),
        timedelta(seconds=1.5),
        timedelta(seconds=4.5),
    ]


def test_backoff_is_capped_at_max_backoff() -> None:
    policy = RetryPolicy(initial_backoff=timedelta(seconds=1), max_backoff=timedelta(minutes=5))
    assert backoff_delay(policy, 20, 0.0) == timedelta(minutes=2, seconds=30)
    assert backoff_delay(policy, 10_000, 0.999999) <= timedelta(minutes=5)


def test_backoff_with_zero_initial_backoff_is_zero() -> None:
    policy = RetryPolicy(initial_backoff=timedelta(0))
    assert backoff_delay(policy, 10_000, 0.5) == timedelta(0)


@pytest.mark.parametrize(("attempt", "jitter"), [(0, 0.0), (1, 1.0), (1, -0.1)])
def test_backoff_rejects_bad_attempt_or_jitter(attempt: int, jitter: float) -> None:
    with pytest.raises(ValueError):
        backoff_delay(RetryPolicy(), attempt, jitter)


# ------------------------------------------------------------------------------------------
# Properties

PROPERTY = settings(max_examples=150, deadline=None)

instants = st.datetimes(
    min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(UTC)
)
zone_names = st.sampled_from(
    ["UTC", "America/New_York", "Europe/London", "Australia/Lord_Howe", "America/Santiago", "Asia/Kolkata"]
)
expressions = st.sampled_from(
    [
        "* * * * *",
        "*/5 * * * *",
        "30 2 * * *",
        "30 1 * * *",
        "0 0 * * *",
        "0 */3 * * *",
        "0,30 1,2 * * 1-5",
        "15 10 1 * *",
        "0 0 29 2 *",
        "*/10 * * * * *",
        "5 30 2 * * *",
        "0 0 12 13 * FRI",
    ]
)
cron_triggers = st.builds(CronTrigger, expression=expressions, timezone=zone_names)
interval_triggers = st.builds(
    IntervalTrigger,
    every=st.integers(min_value=1, max_value=10**10).map(lambda ms: timedelta(milliseconds=ms)),
    start=instants,
)
triggers = st.one_of(cron_triggers, interval_triggers, st.builds(OnceTrigger, at=instants))


@PROPERTY
@given(trigger=triggers, after=instants)
def test_property_next_fire_is_strictly_after_the_query_time(trigger: Trigger, after: datetime) -> None:
    fire = next_fire(trigger, after)
    assert fire is None or (fire > after and fire.tzinfo is UTC)


@PROPERTY
@given(trigger=triggers, a=instants, b=instants)
def test_property_next_fire_is_monotone_in_the_query_time(
    trigger: Trigger, a: datetime, b: datetime
) -> None:
    a, b = min(a, b), max(a, b)
    fa, fb = next_fire(trigger, a), next_fire(trigger, b)
    if fa is None:
        assert fb is None
    elif fb is not None:
        assert fa <= fb


@PROPERTY
@given(trigger=triggers, after=instants, fraction=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_property_no_fire_is_skipped_between_after_and_next_fire(
    trigger: Trigger, after: datetime, fraction: float
) -> None:
    fire = next_fire(trigger, after)
    if fire is None:
        return
    between = after + (fire - after) * fraction  # anywhere in [after, fire)
    assert next_fire(trigger, min(between, fire - timedelta(microseconds=1))) == fire


@PROPERTY
@given(trigger=interval_triggers, after=instants)
def test_property_interval_fires_are_whole_multiples_of_every_from_start(
    trigger: IntervalTrigger, after: datetime
) -> None:
    fire = next_fire(trigger, after)
    assert fire is not None and fire >= trigger.start
    assert (fire - trigger.start) % trigger.every == timedelta(0)
    assert fire - trigger.every <= after or fire == trigger.start


@PROPERTY
@given(
    n=st.sampled_from([1, 2, 5, 10, 15, 30]),
    zone=st.sampled_from(["UTC", "America/New_York", "Europe/London"]),
    after=instants,
)
def test_property_every_n_seconds_cron_fires_on_second_boundaries(
    n: int, zone: str, after: datetime
) -> None:
    trigger = CronTrigger(f"*/{n} * * * * *", timezone=zone)
    fires = fires_between(trigger, after, after + timedelta(seconds=3 * n))
    assert fires
    assert all(f.microsecond == 0 and f.second % n == 0 for f in fires)
    assert all(b - a == timedelta(seconds=n) for a, b in pairwise(fires))


@PROPERTY
@given(
    initial_ms=st.integers(min_value=0, max_value=10**7),
    max_ms=st.integers(min_value=0, max_value=10**8),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    attempt=st.integers(min_value=1, max_value=2000),
    jitter=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
)
def test_property_backoff_is_monotone_and_capped(
    initial_ms: int, max_ms: int, multiplier: float, attempt: int, jitter: float
) -> None:
    policy = RetryPolicy(
        initial_backoff=timedelta(milliseconds=initial_ms),
        max_backoff=timedelta(milliseconds=max_ms),
        multiplier=multiplier,
    )
    delay = backoff_delay(policy, attempt, jitter)
    assert timedelta(0) <= delay <= policy.max_backoff
    assert backoff_delay(policy, attempt + 1, jitter) >= delay
