"""The worker's Prometheus metrics (see hourglass_core.metrics for what they share).

Per fire the worker pays one dict look-up for the (namespace, executor) children, one
histogram observation and one counter increment: a few microseconds of the ~1.5 ms a fire
costs in all.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Gauge, Histogram

from hourglass_core.metrics import LEASE_LOSSES, Children
from hourglass_core.models import RunStatus

# Lateness: from 1 ms (on time) to a minute (an outage's backlog).
LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# The ends of a fire on this worker (a run cut off here is recorded LOST by whoever takes its
# shard over: see hourglass_runs_lost_total there).
OUTCOMES = (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.CANCELLED, RunStatus.SKIPPED)

FIRES = Counter(
    "hourglass_fires",
    "Fires this worker finished, by outcome: succeeded, failed, timed_out, cancelled (the executor "
    "ran), skipped (misfire, overlap, catch-up, halted); failed also counts fires refused by their "
    "namespace's executor policy or naming an executor this worker lacks.",
    ["namespace", "executor", "outcome"],
)
FIRE_LATENESS = Histogram(
    "hourglass_fire_lateness_seconds",
    "From a fire's due time (after jitter and retry backoff) to its executor's call.",
    ["namespace", "executor"],
    buckets=LATENESS_BUCKETS,
)
RUNS_LOST = Counter(
    "hourglass_runs_lost",
    "Runs this worker found cut off (their worker died or lost the shard after the executor may "
    "have begun) and recorded LOST.",
    ["namespace"],
)
RUNS_RECOVERED = Counter(
    "hourglass_runs_recovered",
    "Fires another worker claimed and never began (it died, or gave them up) that run here instead.",
    ["namespace"],
)
RUNS_RETRIED = Counter(
    "hourglass_runs_retried",
    "Retries scheduled by this worker, by cause: failed (failed or timed out) or lost (cut off).",
    ["namespace", "cause"],
)
SLO_BREACHES = Counter(
    "hourglass_lateness_slo_breaches",
    "Runs whose executor was called later than their job's lateness SLO after the schedule's "
    "time (first attempts of scheduled fires; see hourglass_core.slo).",
    ["namespace"],
)
PAST_DUE = Gauge(
    "hourglass_fires_pending_past_due",
    "Fires claimed here whose due time has passed and whose executor is not called yet (waiting "
    "for a run slot, the catch-up pace or a lease check); sampled every second.",
)
SHARDS_OWNED = Gauge("hourglass_shards_owned", "Shards whose lease this worker holds.")
SHARD_LEASES_LOST = LEASE_LOSSES.labels("shard")


@dataclass(frozen=True, slots=True)
class FireChildren:
    lateness: Histogram
    outcomes: dict[RunStatus, Counter]
    slo_breaches: Counter


def _children(key: tuple[str, str]) -> FireChildren:
    namespace, executor = key
    outcomes = {status: FIRES.labels(namespace, executor, status.value) for status in OUTCOMES}
    return FireChildren(FIRE_LATENESS.labels(namespace, executor), outcomes, SLO_BREACHES.labels(namespace))


def fire_metrics() -> Children[tuple[str, str], FireChildren]:
    """The fire counters and lateness of each (namespace, executor), made on first use."""
    return Children(_children)
