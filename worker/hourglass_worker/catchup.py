"""Catch-up pacing: a worker back from an outage, or one that took over a dead worker's
shards, finds a backlog of late fires. Started all at once they would stampede the executors'
targets (and the store); started at a bounded rate per shard they drain in order. Fires on
time never wait: only those later than `late` are paced."""

from __future__ import annotations

from datetime import timedelta


class CatchupPacer:
    def __init__(self, per_second: float, late: timedelta = timedelta(seconds=5)) -> None:
        self._rate = per_second
        self._late = late
        self._buckets: dict[int, tuple[float, float]] = {}  # shard -> (tokens, at)

    def delay(self, shard: int, lateness: timedelta, now: float) -> float:
        """Seconds a fire of `shard` this late must wait before it starts (0: start it now,
        and it takes its place in the shard's budget). `now`: a monotonic clock."""
        if self._rate <= 0 or lateness <= self._late:
            return 0.0
        tokens, at = self._buckets.get(shard, (self._rate, now))
        tokens = min(self._rate, tokens + (now - at) * self._rate)
        if tokens >= 1.0:
            self._buckets[shard] = (tokens - 1.0, now)
            return 0.0
        self._buckets[shard] = (tokens, now)
        return (1.0 - tokens) / self._rate
