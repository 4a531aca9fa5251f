"""Schedule previews (hourglass_core.preview): which fire times, their wall-clock readings and
the notes on daylight-saving changes, checked against a brute-force scan of the zone's wall
clock with zoneinfo in zones with unusual rules."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from hourglass_core.errors import InvalidArgument
from hourglass_core.models import CronTrigger, DstGap, DstRepeat, IntervalTrigger, OnceTrigger
from hourglass_core.preview import DEFAULT_COUNT, MAX_COUNT, preview, preview_count

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


def test_count_zero_means_the_default_and_out_of_range_names_the_field() -> None:
    assert preview_count(0) == DEFAULT_COUNT
    assert preview_count(MAX_COUNT) == MAX_COUNT
    for bad in (-1, MAX_COUNT + 1):
        with pytest.raises(InvalidArgument) as caught:
            preview_count(bad)
        assert caught.value.field == "count"


def test_an_interval_previews_its_next_fires_in_utc() -> None:
    found = preview(IntervalTrigger(every=timedelta(minutes=5), start=T0), T0, 3)
    assert [f.at for f in found.fires] == [T0 + timedelta(minutes=m) for m in (5, 10, 15)]
    assert found.timezone == "UTC" and found.fires[0].local_time == "2026-06-01T12:05:00+00:00"
    assert not any(f.dst_note for f in found.fires)


def test_a_stored_schedule_starts_at_its_next_fire_and_a_once_trigger_has_one() -> None:
    nxt = T0 + timedelta(minutes=5)
    found = preview(IntervalTrigger(every=timedelta(minutes=5), start=T0), nxt, 2, first=nxt)
    assert [f.at for f in found.fires] == [nxt, nxt + timedelta(minutes=5)]
    assert [f.at for f in preview(OnceTrigger(at=nxt), T0, 10).fires] == [nxt]
    assert preview(OnceTrigger(at=T0), T0, 10).fires == []


def test_local_times_carry_the_zone_offset_including_odd_ones() -> None:
    found = preview(CronTrigger(expression="0 9 * * *", timezone="Asia/Kathmandu"), T0, 1)
    assert found.timezone == "Asia/Kathmandu"
    assert found.fires[0].local_time == "2026-06-02T09:00:00+05:45" and found.fires[0].dst_note == ""


def test_spring_forward_moves_a_fixed_time_to_the_end_of_the_gap_and_says_so() -> None:
    trigger = CronTrigger(expression="30 2 * * *", timezone="America/New_York")
    fires = preview(trigger, datetime(2026, 3, 7, tzinfo=UTC), 3).fires
    assert [f.local_time for f in fires] == [
        "2026-03-07T02:30:00-05:00", "2026-03-08T03:00:00-04:00", "2026-03-09T02:30:00-04:00",
    ]  # fmt: skip
    assert [bool(f.dst_note) for f in fires] == [False, True, False]
    assert "forward 1 h" in fires[1].dst_note and "did not exist" in fires[1].dst_note


def test_lord_howe_moves_its_clocks_by_half_an_hour() -> None:
    trigger = CronTrigger(expression="15 2 * * *", timezone="Australia/Lord_Howe")
    fires = preview(trigger, datetime(2026, 10, 2, tzinfo=UTC), 3).fires
    assert fires[1].local_time == "2026-10-04T02:30:00+11:00" and "forward 30 min" in fires[1].dst_note


def test_fall_back_fires_a_fixed_time_once_and_a_wildcard_twice_with_notes() -> None:
    fixed = preview(CronTrigger(expression="30 1 * * *", timezone="America/New_York"), datetime(2026, 11, 1, tzinfo=UTC), 1)
    assert fixed.fires[0].local_time == "2026-11-01T01:30:00-04:00"
    assert "twice" in fixed.fires[0].dst_note and "first only" in fixed.fires[0].dst_note
    wild = preview(CronTrigger(expression="30 * * * *", timezone="America/New_York"), datetime(2026, 11, 1, 4, 45, tzinfo=UTC), 3)
    assert [f.local_time for f in wild.fires] == [
        "2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00", "2026-11-01T02:30:00-05:00",
    ]  # fmt: skip
    assert "first 01:30" in wild.fires[0].dst_note and "second 01:30" in wild.fires[1].dst_note
    assert wild.fires[2].dst_note == ""


def _wall_counts(zone: ZoneInfo, around: datetime) -> Counter[datetime]:
    """How many instants (minute by minute, over two days) read each wall-clock minute."""
    start = around.replace(hour=0, minute=0) - timedelta(days=1)
    return Counter((start + timedelta(minutes=m)).astimezone(zone).replace(tzinfo=None) for m in range(3 * 24 * 60))


@pytest.mark.parametrize(
    ("zone", "expression", "year"),
    [
        ("Australia/Lord_Howe", "15 2 * * *", 2026),  # 30-minute shifts
        ("Asia/Kathmandu", "0 9 * * *", 2026),  # +05:45, no DST at all
        ("America/Santiago", "0 0 * * *", 2026),  # changes at midnight: 00:00 is skipped
        ("America/Santiago", "30 23 * * *", 2026),  # ... and 23:30 repeated
        ("Europe/London", "30 1 * * *", 2026),
        ("America/Sao_Paulo", "0 0 * * *", 2018),  # DST until 2019 ...
        ("America/Sao_Paulo", "0 0 * * *", 2020),  # ... and none since: the rules changed
        ("America/New_York", "*/30 * * * *", 2026),
    ],
)
def test_dst_notes_match_a_brute_force_scan_of_the_wall_clock(zone: str, expression: str, year: int) -> None:
    """Over the days of `year` with an offset change (and a day without), every fire's note
    says what a minute-by-minute scan of the zone's wall clock says about its wall time."""
    tz = ZoneInfo(zone)
    days = [date(year, 1, 15)] + [
        d for d in (date(year, 1, 1) + timedelta(days=i) for i in range(366))
        if d.year == year and datetime(d.year, d.month, d.day, 12, tzinfo=tz).utcoffset()
        != (datetime(d.year, d.month, d.day, 12, tzinfo=tz) - timedelta(days=1)).utcoffset()
    ]  # fmt: skip
    trigger = CronTrigger(expression=expression, timezone=zone)
    checked = 0
    for day in days:
        noon = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        counts = _wall_counts(tz, noon)
        for fire in preview(trigger, noon - timedelta(days=1, hours=6), 60).fires:
            if fire.at > noon + timedelta(days=1):
                break
            local = fire.at.astimezone(tz)
            wall = local.replace(tzinfo=None)
            scheduled = expression.split()[0] == f"{wall.minute}" or expression.split()[0].startswith("*")
            if counts[wall] == 2:
                assert ("second" if local.fold else "first") in fire.dst_note or "twice" in fire.dst_note, fire
            elif not scheduled or (expression.split()[1] not in ("*",) and str(wall.hour) != expression.split()[1]):
                assert "did not exist" in fire.dst_note, fire  # moved to the end of a gap
            else:
                assert fire.dst_note == "", fire
            checked += 1
    assert checked > len(days)


def test_a_twice_policy_fires_both_repeated_wall_times_and_notes_them() -> None:
    trigger = CronTrigger(expression="30 1 * * *", timezone="America/New_York", dst_repeat=DstRepeat.TWICE)
    fires = preview(trigger, datetime(2026, 11, 1, tzinfo=UTC), 2).fires
    assert [f.local_time for f in fires] == ["2026-11-01T01:30:00-04:00", "2026-11-01T01:30:00-05:00"]
    assert "first 01:30" in fires[0].dst_note and "second 01:30" in fires[1].dst_note
    skip = CronTrigger(expression="30 2 * * *", timezone="America/New_York", dst_gap=DstGap.SKIP)
    assert [f.local_time[:10] for f in preview(skip, datetime(2026, 3, 7, tzinfo=UTC), 2).fires] == [
        "2026-03-07", "2026-03-09",
    ]  # fmt: skip
