"""Judging a chaos scenario from what the job code saw (the probe's calls) and what Hourglass
recorded (runs_by_job): lost, duplicated, retried and late fires, and when lateness recovered.

- lost: an expected fire (job, due) whose attempt 1 never called the executor, unless its run
  was recorded LOST (cut off) and a later attempt of the job ran;
- duplicated: a call of an attempt (job, due, attempt) beyond its first;
- documented retries: calls of attempt >= 2 after a run was recorded LOST (a cut-off run is
  retried under the job's retry policy: the one duplicate the design allows, and the executor
  is told the attempt so it can be idempotent).

`call_log` judges from the probe's calls alone (no run records): fires never run (no attempt
called their executor), attempts called twice, and fires that ran as a later attempt.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from benchmarks.cassandra_login import cql_cluster
from benchmarks.chaos_probe import Call

US = 1_000_000
# "Before the fault" ends this long before it: fires due just before it may still be waiting
# on the worker about to die, and belong to the recovery.
STEADY_MARGIN_US = 2 * US


def pct(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def lateness_summary(values_ms: Sequence[float]) -> dict[str, Any]:
    return {
        "count": len(values_ms),
        "p50_ms": _r(pct(values_ms, 0.5)),
        "p99_ms": _r(pct(values_ms, 0.99)),
        "max_ms": _r(max(values_ms) if values_ms else None),
    }


def _r(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def checkpoint_tokens(cassandra: str, keyspace: str) -> dict[int, int]:
    cluster = cql_cluster(cassandra)
    try:
        rows = cluster.connect().execute(f"SELECT shard, fencing_token FROM {keyspace}.checkpoints", timeout=30)
        return {row.shard: row.fencing_token for row in rows}
    finally:
        cluster.shutdown()


def drop_keyspace(cassandra: str, keyspace: str) -> None:
    cluster = cql_cluster(cassandra)
    try:
        cluster.connect().execute(f"DROP KEYSPACE IF EXISTS {keyspace}", timeout=120)
    except Exception:  # noqa: BLE001 - a leftover keyspace only costs disk
        pass
    finally:
        cluster.shutdown()


def judge(
    expected: dict[str, set[int]],
    calls: Iterable[Call],
    records: list[dict[str, Any]],
    fault_us: int,
    steady_since_us: int = 0,
) -> dict[str, Any]:
    starts = [c for c in calls if c.kind == "S" and c.job_id in expected]
    by_attempt: dict[tuple[str, int, int], list[Call]] = defaultdict(list)
    for c in starts:
        by_attempt[(c.job_id, c.due_us, c.attempt)].append(c)
    duplicated = sum(len(v) - 1 for v in by_attempt.values())
    retries = Counter(c.job_id for c in starts if c.attempt > 1)
    cut_off = {(r["job_id"], r["due"]) for r in records if r["status"] == "lost" and r["job_id"] in expected}
    cut_off_jobs = Counter(job for job, _ in cut_off)
    statuses = Counter(str(r["status"]) for r in records if r["job_id"] in expected)

    lost: list[tuple[str, int]] = []
    steady: list[float] = []
    late_by_second: dict[int, list[float]] = defaultdict(list)
    for job_id, dues in expected.items():
        for due in dues:
            first = by_attempt.get((job_id, due, 1))
            if not first:
                if (job_id, due) in cut_off and retries[job_id] >= cut_off_jobs[job_id]:
                    continue  # cut off before its executor was called; retried as the next attempt
                lost.append((job_id, due))
                continue
            late_ms = (min(c.at_us for c in first) - due) / 1000
            if steady_since_us <= due < fault_us - STEADY_MARGIN_US:
                steady.append(late_ms)
            late_by_second[(due - fault_us) // US].append(late_ms)
    unexpected = sum(1 for (job, due, attempt) in by_attempt if attempt == 1 and due not in expected[job])
    return {
        "expected": sum(len(d) for d in expected.values()),
        "ran": sum(len(d) for d in expected.values()) - len(lost),
        "lost": len(lost),
        "lost_sample": [f"{job}@{due}" for job, due in sorted(lost)[:10]],
        "duplicated": duplicated,
        "cut_off_recorded_lost": len(cut_off),
        "retried_attempts": sum(retries.values()),
        "unexpected": unexpected,
        "stuck_running": statuses.get("running", 0),
        "statuses": dict(statuses),
        "steady_lateness": lateness_summary(steady),
        "by_second": {s: v for s, v in sorted(late_by_second.items())},
    }


def call_log(expected: dict[str, set[int]], calls: Iterable[Call]) -> dict[str, Any]:
    """Counts from the executor's calls only, per expected fire (job, due):

    - never_run: no attempt of the fire called the executor;
    - duplicated_within_attempt: calls of one run beyond its first (a run id names one attempt
      of one fire: exact, whatever the job's schedule);
    - ran_as_later_attempt: fires with a call of attempt >= 2, split into those whose attempt 1
      had been called (a run cut off mid-run and retried: not a duplicate within an attempt)
      and those whose first call was a later attempt (attempt 1 never called the executor).

    A call is matched to its fire by job: a once-job has one fire, so every call of the job is
    that fire's, whatever due time the attempt carries (a retry is due at its own time). For a
    recurring job, attempt 1 matches by due time, and a later attempt (a retry, due a backoff
    after the fire it retries) the nearest fire due at or before it: the chaos loads' retry
    backoffs (at most 0.6 s over three attempts) are shorter than their jobs' intervals (1 s).
    """
    dues = {job: sorted(d) for job, d in expected.items()}
    attempts: dict[tuple[str, int], Counter[int]] = defaultdict(Counter)
    starts = [c for c in calls if c.kind == "S" and c.job_id in dues]
    for c in sorted(starts, key=lambda c: (c.attempt, c.due_us)):
        fires = dues[c.job_id]
        if len(fires) == 1:
            due = fires[0]
        elif c.attempt <= 1:
            if c.due_us not in expected[c.job_id]:
                continue  # not an expected fire (counted as "unexpected" by `judge`)
            due = c.due_us
        else:
            at = bisect_right(fires, c.due_us)
            if at == 0:
                continue
            due = fires[at - 1]
        attempts[(c.job_id, due)][c.attempt] += 1
    ran = {fire for fire, counts in attempts.items() if counts.total()}
    never = sorted((job, due) for job, ds in expected.items() for due in ds if (job, due) not in ran)
    per_run = Counter(c.run_id for c in starts)
    twice = sorted(f"{run}x{n}" for run, n in per_run.items() if n > 1)
    later = [counts for counts in attempts.values() if any(a > 1 and n for a, n in counts.items())]
    return {
        "never_run": len(never),
        "never_run_sample": [f"{job}@{due}" for job, due in never[:10]],
        "duplicated_within_attempt": sum(n - 1 for n in per_run.values() if n > 1),
        "duplicated_within_attempt_sample": twice[:10],
        "ran_as_later_attempt": len(later),
        "later_attempt_after_attempt_1_ran": sum(1 for counts in later if counts[1]),
        "later_attempt_without_attempt_1": sum(1 for counts in later if not counts[1]),
    }


def late_threshold_ms(steady_p99_ms: float | None) -> float:
    """Lateness that counts as not back to normal: 3 x the steady p99, at least 1 s, at most 10 s."""
    return min(10_000.0, max(1000.0, 3 * (steady_p99_ms or 0.0)))


def recovery(result: dict[str, Any], fault_us: int, until_s: float) -> tuple[float, dict[str, Any]]:
    """When lateness went back to normal after the fault (seconds after it, by due time: the
    end of the last second whose worst fire was late by more than 3 x the steady p99, at least
    1 s and at most 10 s), and the lateness of the fires due from the fault until then."""
    by_second: dict[int, list[float]] = result.pop("by_second")
    threshold = late_threshold_ms(result["steady_lateness"]["p99_ms"])
    bad = [s for s, v in by_second.items() if 0 <= s <= until_s and max(v) > threshold]
    recovered_s = float(max(bad) + 1) if bad else 0.0
    window = [v for s, values in by_second.items() if -STEADY_MARGIN_US // US <= s < max(recovered_s, 1) for v in values]
    timeline = [{"t": s, "n": len(v), "p50_ms": _r(pct(v, 0.5)), "max_ms": _r(max(v))}
                for s, v in by_second.items() if -5 <= s <= until_s]  # fmt: skip
    return recovered_s, {"recovery_lateness": lateness_summary(window), "timeline": timeline}
