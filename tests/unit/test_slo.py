"""The lateness SLO: which runs it judges and the report GetJob gives."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hourglass_core.models import LatenessReport, Run, RunStatus
from hourglass_core.slo import breached, lateness_report

DUE = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)
SLO = timedelta(milliseconds=250)


def _run(late_ms: float | None, attempt: int = 1, manual: bool = False) -> Run:
    started = None if late_ms is None else DUE + timedelta(milliseconds=late_ms)
    return Run("ns", "job", f"run-{late_ms}-{attempt}-{manual}", DUE, attempt, RunStatus.SUCCEEDED, "w1", started,
               manual=manual)  # fmt: skip


def test_only_first_attempts_of_scheduled_fires_later_than_the_slo_breach_it() -> None:
    later = DUE + timedelta(milliseconds=251)
    assert breached(SLO, False, 1, DUE, later)
    assert not breached(SLO, False, 1, DUE, DUE + SLO)  # exactly on the SLO keeps it
    assert not breached(SLO, False, 2, DUE, later)  # a retry waited for its backoff
    assert not breached(SLO, True, 1, DUE, later)  # a manual run has no schedule to keep
    assert not breached(None, False, 1, DUE, later + timedelta(hours=1))  # no SLO


def test_the_report_counts_judged_runs_that_started_and_the_worst_of_them() -> None:
    runs = [_run(10), _run(300), _run(1200), _run(None), _run(5000, attempt=2), _run(9000, manual=True)]
    assert lateness_report(runs, SLO) == LatenessReport(checked=3, breaches=2, worst=timedelta(milliseconds=1200))
    assert lateness_report([], SLO) == LatenessReport(0, 0, timedelta(0))
