"""How the ring scenarios tell when lateness was back to normal (benchmarks.chaos_ring)."""

from __future__ import annotations

from benchmarks.chaos_ring import late_seconds, late_span

S = 1_000_000


def test_late_seconds_are_counted_from_since_by_due_time_with_their_worst_fire() -> None:
    since = 100 * S
    calls = [
        (99 * S, 99 * S + 5 * S),  # due before `since`: not counted
        (100 * S, 100 * S + 10_000),  # 10 ms: on time
        (126 * S + 1, 126 * S + 1 + 1_100_000),  # 1.1 s late, 26 s after
        (126 * S + 500_000, 126 * S + 500_000 + 2_000_000),  # worse in the same second
        (128 * S, 128 * S + 1_500_000),
        (200 * S, 200 * S + 9 * S),  # due after `until`: not counted
    ]
    assert late_seconds(calls, since, 150 * S, threshold_us=1_000_000) == {26: 2000.0, 28: 1500.0}
    assert late_seconds(calls, since, None, threshold_us=1_000_000) == {26: 2000.0, 28: 1500.0, 100: 9000.0}
    assert late_seconds(calls, since, None, threshold_us=10_000_000) == {}


def test_the_late_span_runs_from_the_first_late_second_to_the_end_of_the_last() -> None:
    assert late_span({}) == 0.0
    assert late_span({56: 1677.0, 57: 1306.4, 58: 2445.1}) == 3.0  # one blip, 40 s after a restart
    assert late_span({56: 1677.0, 94: 1100.0}) == 39.0  # a second blip half a minute later
