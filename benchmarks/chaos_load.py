"""The chaos harness's steady load: recurring jobs (every second, by interval and by cron), a few
long-running jobs (so some run is always mid-execution), and once-jobs submitted as the run
goes, through every coordinator replica, by a client that retries with idempotency keys.
A profile may also be once-jobs only (`COMBINED_FULL`), with the default job options (one
attempt) and a share of them running for a while, so a dead worker cuts some off mid-run.

Every job names the `chaos_probe` executor; what each fire should have been is known exactly
(`expected`), so the judge can tell lost and duplicated fires apart from late ones.
"""

from __future__ import annotations

import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import hourglass
from benchmarks import chaos_probe
from hourglass_core.triggers import fires_between

US = 1_000_000


@dataclass(frozen=True)
class Profile:
    """How much load, and for how long around the fault."""

    interval_jobs: int  # every 1 s
    cron_jobs: int  # "* * * * * *": every second
    long_jobs: int  # every 2 s, each run sleeping `long_sleep`
    once_rate: float  # once-jobs submitted per second, each due a few seconds later
    before_s: float  # steady load before the fault
    after_s: float  # load after the fault has ended
    drain_s: float  # once the load stopped: how long to wait for late fires while none run
    long_sleep: float = 1.5
    workers: int = 3
    coordinators: int = 2
    # Added to every timing target (failover, shards moving): the short versions run in CI,
    # on a box busy with the rest of the suite, where they check correctness strictly and
    # timing loosely; the full versions (`make chaos`) judge the targets exactly.
    timing_slack_s: float = 0.0
    # Once-jobs with the default JobOptions (max_attempts 1, misfire grace 60 s) instead of
    # `OPTIONS`; and the share of them that sleep `long_sleep` (mid-run when a worker dies).
    once_defaults: bool = False
    long_once_share: float = 0.0
    # The steady lateness (the baseline of "back to normal") is taken over this many seconds
    # before the fault (None: all of `before_s`); a longer `before_s` then warms the cluster up
    # first (a freshly started Cassandra ring runs its first minute's load tens of seconds late).
    steady_s: float | None = None

    def steady_since_us(self, start_us: int) -> int:
        """When the steady window before the fault begins, for a load that began at `start_us`."""
        skip = 0.0 if self.steady_s is None else max(0.0, self.before_s - self.steady_s)
        return start_us + int(skip * US)

    def scaled(self, factor: float) -> Profile:
        """The same scenario with `factor` times the jobs and submits."""
        if factor == 1.0:
            return self
        return replace(
            self, interval_jobs=round(self.interval_jobs * factor), cron_jobs=round(self.cron_jobs * factor),
            long_jobs=max(2, round(self.long_jobs * factor)) if self.long_jobs else 0, once_rate=self.once_rate * factor,
        )  # fmt: skip

    @property
    def fire_rate(self) -> float:
        return self.interval_jobs + self.cron_jobs + self.long_jobs / 2 + self.once_rate


FULL = Profile(interval_jobs=180, cron_jobs=60, long_jobs=12, once_rate=60, before_s=15, after_s=20, drain_s=30)
SHORT = Profile(interval_jobs=40, cron_jobs=20, long_jobs=6, once_rate=15, before_s=5, after_s=6, drain_s=20,
                timing_slack_s=2.0)
# Scenario 7 (several faults in one run): once-jobs only, default options, 1 in 10 running 2 s.
COMBINED_FULL = Profile(interval_jobs=0, cron_jobs=0, long_jobs=0, once_rate=250, before_s=15, after_s=20,
                        drain_s=30, long_sleep=2.0, once_defaults=True, long_once_share=0.1)
COMBINED_SHORT = replace(COMBINED_FULL, once_rate=80, before_s=5, after_s=6, drain_s=20, timing_slack_s=2.0)

OPTIONS = hourglass.JobOptions(
    retry=hourglass.RetryPolicy(max_attempts=3, initial_backoff=timedelta(milliseconds=200)),
    # Every occurrence runs however late, so a fault never turns into coalesced (skipped) fires.
    misfire_grace=timedelta(minutes=10),
)


def to_us(t: datetime) -> int:
    return round(t.timestamp() * US)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SubmitStats:
    batches: int = 0
    jobs: int = 0
    unavailable: int = 0  # UNAVAILABLE (or deadline) answers, each retried with the same keys
    gave_up: int = 0  # batches never accepted: lost submits
    max_latency_s: float = 0.0
    unavailable_at: list[float] = field(default_factory=list)  # wall clock of each


class Workload:
    def __init__(self, addresses: list[str], profile: Profile, start: datetime, end: datetime) -> None:
        self.profile = profile
        self.start, self.end = start, end
        # One SDK attempt per call: this harness retries the very same specs (same idempotency
        # keys, as the SDK's own retries do), for as long as it takes, and counts each
        # UNAVAILABLE. The 20 s deadline is longer than the store's 10 s request timeout, so a
        # frozen Cassandra shows as UNAVAILABLE rather than as a deadline.
        self._client = hourglass.Client(",".join(addresses), timeout=20, retry=hourglass.CallRetry(max_attempts=1))
        self.expected: dict[str, set[int]] = {}  # job id -> due times (µs)
        self.shard: dict[str, int] = {}
        self.long: set[str] = set()
        self.stats = SubmitStats()
        self._stop = threading.Event()
        self._feed: threading.Thread | None = None
        self._lock = threading.Lock()

    def close(self) -> None:
        self.stop_feed()
        self._client.close()

    def wait_until_ready(self, timeout: float = 90) -> None:
        """Submits nothing until a worker has registered the probe executor."""
        deadline = time.monotonic() + timeout
        probe = hourglass.JobSpec(name="ready", executor=chaos_probe.NAME,
                                  trigger=hourglass.OnceTrigger(at=now() + timedelta(days=30)))  # fmt: skip
        while True:
            try:
                self._client.submit(probe)
                return
            except (hourglass.InvalidArgument, hourglass.Unavailable):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)

    def _spec(self, name: str, trigger: hourglass.Trigger, params: dict[str, object] | None = None,
              options: hourglass.JobOptions = OPTIONS) -> hourglass.JobSpec:  # fmt: skip
        return hourglass.JobSpec(
            name=name, executor=chaos_probe.NAME, trigger=trigger, options=options,
            params=hourglass.Payload(json.dumps(params or {}).encode(), "application/json"),
            idempotency_key=uuid.uuid4().hex, labels={"suite": "chaos"},
        )  # fmt: skip

    def submit_recurring(self) -> None:
        p, start, end = self.profile, self.start, self.end
        second = timedelta(seconds=1)
        # Interval jobs are spread over the second (a steady stream); cron jobs all fire on the
        # whole second (a burst, as at the top of a minute in real life).
        specs = [self._spec(f"interval-{i}", hourglass.IntervalTrigger(
                     every=second, start=start + i * second / p.interval_jobs, end=end))
                 for i in range(p.interval_jobs)]  # fmt: skip
        specs += [self._spec(f"cron-{i}", hourglass.CronTrigger("* * * * * *", "UTC", start=start, end=end))
                  for i in range(p.cron_jobs)]  # fmt: skip
        long_specs = [
            self._spec(f"long-{i}", hourglass.IntervalTrigger(every=2 * second, start=start + i * second / p.long_jobs, end=end),
                       {"sleep": p.long_sleep})
            for i in range(p.long_jobs)
        ]  # fmt: skip
        for i in range(0, len(specs), 200):
            self._submit(specs[i : i + 200])
        for job in self._submit(long_specs) if long_specs else []:
            self.long.add(job.id)

    def _submit(self, specs: list[hourglass.JobSpec]) -> list[hourglass.Job]:
        began = time.monotonic()
        delay = 0.2
        while True:
            try:
                jobs = self._client.submit_many(specs)
                break
            except hourglass.Unavailable:
                with self._lock:
                    self.stats.unavailable += 1
                    self.stats.unavailable_at.append(time.time())
                if self._stop.is_set() and time.monotonic() - began > 300:
                    with self._lock:
                        self.stats.gave_up += 1
                    return []
                time.sleep(delay * (0.5 + random.random() / 2))
                delay = min(2.0, delay * 2)
        with self._lock:
            self.stats.batches += 1
            self.stats.jobs += len(jobs)
            self.stats.max_latency_s = max(self.stats.max_latency_s, time.monotonic() - began)
            for job in jobs:
                self.expected[job.id] = expected_dues(job)
                self.shard[job.id] = job.shard
        return jobs

    def start_feed(self) -> None:
        self._feed = threading.Thread(target=self._feed_loop, name="once-feed", daemon=True)
        self._feed.start()

    def stop_feed(self) -> None:
        self._stop.set()
        if self._feed is not None:
            self._feed.join(timeout=600)

    def _feed_loop(self) -> None:
        """Twice a second, a batch of once-jobs due 2.5 s later, until the load ends."""
        p = self.profile
        period, n, i = 0.5, max(1, round(p.once_rate * 0.5)), 0
        options = hourglass.JobOptions() if p.once_defaults else OPTIONS
        every = round(1 / p.long_once_share) if p.long_once_share > 0 else 0
        next_at = time.monotonic()
        while not self._stop.is_set() and now() < self.end - timedelta(seconds=3):
            at = now() + timedelta(seconds=2.5)
            long = [every > 0 and (i * n + k) % every == 0 for k in range(n)]
            specs = [self._spec(f"once-{i}-{k}", hourglass.OnceTrigger(at=at), {"sleep": p.long_sleep} if long[k] else None,
                                options) for k in range(n)]  # fmt: skip
            jobs = self._submit(specs)
            with self._lock:
                self.long.update(job.id for job, is_long in zip(jobs, long, strict=False) if is_long)
            i += 1
            next_at += period
            self._stop.wait(max(0.0, next_at - time.monotonic()))


def expected_dues(job: hourglass.Job) -> set[int]:
    """The fires `job` should run: a once-job at its (possibly clamped) first fire time, a
    recurring job at every occurrence between its creation and its end."""
    t = job.trigger
    if isinstance(t, hourglass.OnceTrigger):
        # Its row is due at `at`, or at submit time if that was later; a job returned by a
        # retried submit may already have fired (next_fire_time is cleared then).
        return {to_us(job.next_fire_time or max(t.at, job.created_at))}
    horizon = job.created_at + timedelta(hours=1)
    return {to_us(d) for d in fires_between(t, job.created_at - timedelta(microseconds=1), horizon, 100_000)}
