"""A job's lateness SLO (JobOptions.lateness_slo): which runs it judges, and how they kept it.

It judges the first attempt of each scheduled fire, by its lateness as recorded (executor call
minus the schedule's time, jitter included): retries wait for their backoff and manual runs
(TriggerJob, BackfillJob) for no schedule, so neither says anything about the scheduler being on
time. The workers count breaches per namespace as they call executors; GetJob reports a job's
from its latest runs: both by this definition.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from hourglass_core.models import LatenessReport, Run

# GetJob reads this many of a job's latest runs for its report.
RUNS_CHECKED = 100


def judged(manual: bool, attempt: int) -> bool:
    """Whether the SLO judges a run: the first attempt of a scheduled fire."""
    return not manual and attempt == 1


def breached(slo: timedelta | None, manual: bool, attempt: int, due: datetime, started: datetime) -> bool:
    return slo is not None and judged(manual, attempt) and started - due > slo


def lateness_report(runs: Iterable[Run], slo: timedelta) -> LatenessReport:
    """How the judged runs among `runs` that started kept `slo`."""
    late = [run.lateness for run in runs if run.lateness is not None and judged(run.manual, run.attempt)]
    return LatenessReport(checked=len(late), breaches=sum(1 for value in late if value > slo),
                          worst=max(late, default=timedelta(0)))  # fmt: skip
