"""Lateness over the last minutes, from the runs this replica records.

Why from recorded runs and not from the metrics: lateness is measured on the workers, so in a
cluster it is in the workers' registries, not the coordinator's; the run results every worker
streams to a coordinator carry it (started_at - due). Only while the dashboard is on does the
replica count them (WorkerStreams.on_recorded): one bucket increment per finished run, no
per-fire cost when off. Each replica sees the runs of the workers streaming to it, so with
several replicas each chart shows its share (the page says so).
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hourglass_core.models import Run, RunStatus

SLOT_S = 10
KEEP_S = 30 * 60
# Upper bounds of the buckets, in seconds: 1 ms to 60 s (beyond: the last, open bucket).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, slots=True)
class SlotStats:
    """The runs that started in one slot [start, start + SLOT_S): their count and lateness
    quantiles (a quantile is its bucket's upper bound; the maximum is exact)."""

    start: float  # epoch seconds
    count: int
    p50: float
    p99: float
    max: float


def quantile(counts: Sequence[int], q: float) -> float:
    """The upper bound of the bucket holding quantile `q` of the counted values (the open
    last bucket: its lower bound); 0 for no values."""
    total = sum(counts)
    if total == 0:
        return 0.0
    rank = q * total
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank and n:
            return BUCKETS[min(i, len(BUCKETS) - 1)]
    return BUCKETS[-1]


class _Slot:
    __slots__ = ("counts", "max")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)
        self.max = 0.0


class LatenessWindow:
    """Counts of run lateness per namespace and 10 s slot, for the last 30 minutes."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._slots: dict[str, dict[int, _Slot]] = {}

    def add(self, runs: Sequence[Run]) -> None:
        """Runs just recorded: each finished run that started is counted once (its RUNNING
        event, if any, is not)."""
        for run in runs:
            if run.started_at is None or run.status is RunStatus.RUNNING:
                continue
            late = max((run.started_at - run.due).total_seconds(), 0.0)
            slots = self._slots.get(run.namespace)
            if slots is None:
                slots = self._slots[run.namespace] = {}
            index = int(run.started_at.timestamp()) // SLOT_S
            slot = slots.get(index)
            if slot is None:
                slot = slots[index] = _Slot()
                self._forget(slots, index)
            slot.counts[bisect.bisect_left(BUCKETS, late)] += 1
            slot.max = max(slot.max, late)

    @staticmethod
    def _forget(slots: dict[int, _Slot], newest: int) -> None:
        oldest = newest - KEEP_S // SLOT_S
        for index in [i for i in slots if i < oldest]:
            del slots[index]

    def series(self, namespace: str, minutes: int) -> list[SlotStats]:
        """One entry per slot of the last `minutes` (up to now), oldest first; empty slots
        have count 0."""
        now = int(self._clock()) // SLOT_S
        first = now - max(1, min(minutes * 60, KEEP_S)) // SLOT_S + 1
        slots = self._slots.get(namespace, {})
        out = []
        for index in range(first, now + 1):
            slot = slots.get(index)
            if slot is None:
                out.append(SlotStats(float(index * SLOT_S), 0, 0.0, 0.0, 0.0))
            else:
                out.append(SlotStats(float(index * SLOT_S), sum(slot.counts), quantile(slot.counts, 0.5),
                                     quantile(slot.counts, 0.99), slot.max))  # fmt: skip
        return out
