"""The loop-lag watch: a callback that holds the loop is seen as a stall, with the CPU its
thread spent; a loop left alone is not."""

from __future__ import annotations

import asyncio
import logging
import re
import time

import pytest

from hourglass_core import loop_lag
from hourglass_core.backoff import RateLimitedLog
from hourglass_core.loop_lag import LOOP_LAG_SECONDS, stall, watch_loop_lag


def _observed() -> tuple[float, float]:
    """(count, sum) of the lag histogram so far."""
    samples = {s.name: s.value for m in LOOP_LAG_SECONDS.collect() for s in m.samples}
    return samples["hourglass_event_loop_lag_seconds_count"], samples["hourglass_event_loop_lag_seconds_sum"]


def test_a_stall_is_the_time_slept_beyond_the_time_asked() -> None:
    found = stall(0.1, 0.35, 0.2)
    assert found.lag_s == pytest.approx(0.25) and found.on_cpu_s == 0.2
    assert stall(0.1, 0.099, 0.0) == loop_lag.Stall(lag_s=0.0, on_cpu_s=0.0)  # clocks differ by a hair


async def _watched(hold: float, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> tuple[float, float]:
    monkeypatch.setattr(loop_lag, "warn", RateLimitedLog(loop_lag.log))
    before = _observed()
    watch = asyncio.create_task(watch_loop_lag(every=0.05, warn_over=0.2))
    with caplog.at_level(logging.WARNING, logger=loop_lag.__name__):
        await asyncio.sleep(0.12)
        if hold:
            time.sleep(hold)  # a callback that does not yield
        await asyncio.sleep(0.12)
    watch.cancel()
    after = _observed()
    return after[0] - before[0], after[1] - before[1]


async def test_a_callback_holding_the_loop_is_logged_with_the_cpu_its_thread_had(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    count, total = await _watched(0.4, caplog, monkeypatch)
    assert count >= 3 and total >= 0.3
    [line] = [r.getMessage() for r in caplog.records if r.name == loop_lag.__name__]
    lag, cpu = (float(x) for x in re.findall(r"(\d+\.\d+) s", line)[:2])
    assert lag >= 0.3, line
    assert cpu < 0.1, line  # time.sleep holds the loop without using the CPU: the thread was waiting


async def test_a_loop_left_alone_logs_nothing(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    count, total = await _watched(0.0, caplog, monkeypatch)
    assert count >= 3 and total < 0.2
    assert [r for r in caplog.records if r.name == loop_lag.__name__] == []
