"""Judging a firing run: which expected fires ran, how late, and which ran more than once.

Two sources, both complete (no sampling):
- the probe executor's records (benchmarks/probe.py): when the job's code was actually called;
- the store's run records (`runs_by_job`): what Hourglass recorded (status, started_at).
Lateness is measured against the due time the client asked for, so a fire written late (its
submit answered after the due time) counts as late too.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from benchmarks import probe
from benchmarks.loadgen import HIGHEST_US, LOWEST_US, percentiles_ms

Expected = set[tuple[str, int]]  # fires: (job id, due in µs since the epoch)


def wait_for_executions(
    directory: Path, expected: Expected, deadline: float, on_tick: Callable[[int], None] | None = None
) -> int:
    """Polls the probe records until every expected fire ran or `deadline` (monotonic)
    passes; then a second more, so late duplicates are seen. Returns how many fires ran."""
    seen = 0
    while True:
        seen = len({(e.job_id, e.due_us) for e in probe.read_executions(directory)} & expected)
        if on_tick is not None:
            on_tick(seen)
        if seen >= len(expected) or time.monotonic() > deadline:
            break
        time.sleep(1.0)
    time.sleep(1.0)
    return seen


def lateness_histogram(values_us: Iterable[int]) -> dict[str, Any]:
    """Log-spaced buckets (ms) for plotting: edges and counts."""
    values = np.fromiter((max(v, 1) for v in values_us), dtype=np.int64)
    if values.size == 0:
        return {"edges_ms": [], "counts": []}
    hi = max(float(values.max()), 10.0)
    edges = np.geomspace(1.0, hi * 1.01, 60)
    counts, edges = np.histogram(values, bins=edges)
    return {"edges_ms": [round(e / 1000, 4) for e in edges.tolist()], "counts": counts.tolist()}


def judge(
    expected: Expected,
    executions: Iterable[probe.Execution],
    recorded: list[dict[str, Any]],
    window_start_us: int,
) -> dict[str, Any]:
    """Lost, duplicated and late fires of `expected`, from the probe's `executions` and the
    store's `recorded` runs. Lateness timeline seconds are counted from `window_start_us`."""
    runs: dict[tuple[str, int], list[probe.Execution]] = defaultdict(list)
    retries = 0
    for e in executions:
        if (e.job_id, e.due_us) not in expected:
            continue
        if e.attempt == 1:
            runs[(e.job_id, e.due_us)].append(e)
        else:
            retries += 1
    hist = HdrHistogram(LOWEST_US, HIGHEST_US, 3)
    per_second: dict[int, HdrHistogram] = {}
    values: list[int] = []
    early = duplicates = lost = 0
    for job_id, due in expected:
        execs = runs.get((job_id, due))
        if not execs:
            lost += 1
            continue
        duplicates += len(execs) - 1
        first = min(e.called_us for e in execs)
        late = first - due
        if late < 0:
            early += 1
        v = min(HIGHEST_US, max(LOWEST_US, late))
        hist.record_value(v)
        values.append(v)
        sec = (due - window_start_us) // 1_000_000
        h = per_second.get(sec)
        if h is None:
            h = per_second[sec] = HdrHistogram(LOWEST_US, HIGHEST_US, 2)
        h.record_value(v)

    by_fire: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for row in recorded:
        by_fire[(row["job_id"], row["due"])].append(row)
    rec_hist = HdrHistogram(LOWEST_US, HIGHEST_US, 3)
    statuses: Counter[str] = Counter()
    missing_records = 0
    for job_id, due in expected:
        rows = [r for r in by_fire.get((job_id, due), ()) if r["attempt"] == 1]
        if not rows:
            missing_records += 1
            continue
        for r in rows:
            statuses[r["status"] or "?"] += 1
            if r["started_at"] is not None:
                rec_hist.record_value(min(HIGHEST_US, max(LOWEST_US, r["started_at"] - due)))

    timeline = []
    for sec in sorted(per_second):
        h = per_second[sec]
        timeline.append(
            {
                "t": sec,
                "fires": h.get_total_count(),
                "p50": h.get_value_at_percentile(50) / 1000,
                "p99": h.get_value_at_percentile(99) / 1000,
                "max": h.get_max_value() / 1000,
            }
        )
    return {
        "expected": len(expected),
        "ran": len(expected) - lost,
        "lost": lost,
        "duplicates": duplicates,
        "early": early,
        "retries": retries,
        "lateness_ms": percentiles_ms(hist),
        "recorded": {
            "runs": sum(statuses.values()),
            "missing": missing_records,
            "statuses": dict(statuses),
            "lateness_ms": percentiles_ms(rec_hist),
        },
        "lateness_histogram": lateness_histogram(values),
        "timeline": timeline,
    }
