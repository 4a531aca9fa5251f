"""The chaos judge's steady lateness: the baseline of "back to normal" is taken over the last
seconds before the fault when a profile warms the cluster up first (the ring's cold start)."""

from __future__ import annotations

from benchmarks import chaos_judge
from benchmarks.chaos_load import US, Profile
from benchmarks.chaos_probe import Call

START = 1_000 * US


def _profile(steady_s: float | None) -> Profile:
    return Profile(interval_jobs=1, cron_jobs=0, long_jobs=0, once_rate=0, before_s=90, after_s=10, drain_s=10,
                   steady_s=steady_s)  # fmt: skip


def test_the_steady_window_is_the_last_seconds_before_the_fault() -> None:
    assert _profile(15).steady_since_us(START) == START + 75 * US
    assert _profile(None).steady_since_us(START) == START
    assert _profile(200).steady_since_us(START) == START  # never before the load began


def test_a_late_warm_up_does_not_set_the_baseline() -> None:
    fault = START + 90 * US
    # One fire a second: 20 s late during the first minute (warming up), 5 ms after.
    calls = [Call("S", "job", START + s * US, 1, f"r{s}", START + s * US + (20_000_000 if s < 60 else 5_000), "w1")
             for s in range(90)]  # fmt: skip
    expected = {"job": {c.due_us for c in calls}}
    warm = chaos_judge.judge(expected, calls, [], fault, _profile(15).steady_since_us(START))
    cold = chaos_judge.judge(expected, calls, [], fault)
    assert warm["steady_lateness"]["p99_ms"] == 5.0
    assert cold["steady_lateness"]["p99_ms"] == 20_000.0
