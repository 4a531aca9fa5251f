"""Domain objects shared by the SDK, the coordinator and the workers.

Everything here is plain data: frozen dataclasses and enums, no I/O and no protobuf.
Times are timezone-aware UTC datetimes; durations are timedeltas.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Generic, TypeVar

DEFAULT_NAMESPACE = "default"


class JobState(enum.Enum):
    ACTIVE = "active"
    PAUSED = "paused"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class RunStatus(enum.Enum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"
    SKIPPED = "skipped"
    LOST = "lost"  # its worker died mid-run; the job's on_worker_lost decides what follows

    @property
    def finished(self) -> bool:
        return self is not RunStatus.RUNNING


class RunReason(enum.Enum):
    """Why a fire did not run (SKIPPED) or did not finish (LOST): data, not only a message."""

    MISFIRE = "misfire"  # later than its misfire grace, and the job's misfire policy is SKIP
    OVERLAP = "overlap"  # the previous run was still going (overlap policy SKIP or QUEUE_ONE)
    HALTED = "halted"  # the job was paused or cancelled while this fire waited to run
    CATCHUP = "catchup"  # found later than the job's catch-up window (after an outage): not run
    WORKER_LOST = "worker_lost"  # the worker died or lost the shard after the executor began


class WorkerLostPolicy(enum.Enum):
    """What follows a run cut off mid-run by its worker's death (the executor began, no
    result came back). A fire whose executor had not begun is always run, as the same attempt."""

    RETRY = "retry"  # run the fire again as the next attempt, whatever max_attempts says
    RECORD = "record"  # record it LOST; only the retry policy may run it again


class MisfirePolicy(enum.Enum):
    RUN_ONCE = "run_once"  # a fire found later than the grace period runs once, now
    SKIP = "skip"  # ... or is skipped; either way the schedule goes on from now


class OverlapPolicy(enum.Enum):
    ALLOW = "allow"  # a fire runs even while the previous run is still going
    SKIP = "skip"  # ... is recorded as skipped
    QUEUE_ONE = "queue_one"  # ... waits for it; at most one fire waits


@dataclass(frozen=True, slots=True)
class OnceTrigger:
    """Fires once at `at`."""

    at: datetime


@dataclass(frozen=True, slots=True)
class IntervalTrigger:
    """Fires at start, start + every, start + 2*every, ... up to `end` (inclusive).

    `start` is the anchor: fire times never drift, however late a run was.
    """

    every: timedelta
    start: datetime
    end: datetime | None = None


class DstGap(enum.Enum):
    """A fixed local time that a spring-forward jump skips (e.g. 02:30 on the jump day)."""

    SHIFT_FORWARD = "shift_forward"  # fires as the gap ends (at the jump)
    SKIP = "skip"  # does not fire that day


class DstRepeat(enum.Enum):
    """A fixed local time that a fall-back jump shows twice (e.g. 01:30 on the jump day)."""

    ONCE = "once"  # fires at the first
    TWICE = "twice"  # fires at both


@dataclass(frozen=True, slots=True)
class CronTrigger:
    """A 5-field (minute resolution) or 6-field (seconds first) cron expression,
    evaluated in an IANA time zone, fired only within [start, end]. The DST policies apply to
    fixed-time expressions (neither minute nor hour starting with "*"); wildcard ones run on
    real time (a skipped local time never fires, a repeated one fires twice)."""

    expression: str
    timezone: str = "UTC"
    start: datetime | None = None
    end: datetime | None = None
    dst_gap: DstGap = DstGap.SHIFT_FORWARD
    dst_repeat: DstRepeat = DstRepeat.ONCE


Trigger = OnceTrigger | IntervalTrigger | CronTrigger


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """`max_attempts` counts the first run: 1 means no retries."""

    max_attempts: int = 1
    initial_backoff: timedelta = timedelta(seconds=1)
    max_backoff: timedelta = timedelta(minutes=5)
    multiplier: float = 2.0


@dataclass(frozen=True, slots=True)
class JobOptions:
    timeout: timedelta | None = None
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    misfire_policy: MisfirePolicy = MisfirePolicy.RUN_ONCE
    misfire_grace: timedelta = timedelta(seconds=60)
    overlap_policy: OverlapPolicy = OverlapPolicy.ALLOW
    on_worker_lost: WorkerLostPolicy = WorkerLostPolicy.RETRY
    # A scheduled fire found later than this (the cluster was down, or nobody owned its shard)
    # is recorded SKIPPED (reason CATCHUP) instead of run; the schedule goes on from now.
    catchup_window: timedelta = timedelta(hours=1)
    # Each scheduled fire runs up to this much after its time, by a delay fixed per (job,
    # time), so replicas and retries agree; spreads jobs that share a schedule.
    jitter: timedelta = timedelta(0)
    # Stop (COMPLETED) after this many scheduled fires; 0: no limit.
    max_fires: int = 0
    # A run starting later than this after its due time breaches the job's lateness SLO
    # (counted per namespace by the workers, reported per job by GetJob); None: no SLO.
    lateness_slo: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Payload:
    """Opaque bytes with a content type (params of a job, result of a run)."""

    data: bytes = b""
    content_type: str = "application/octet-stream"


@dataclass(frozen=True, slots=True)
class JobSpec:
    """What a client asks for; the server turns it into a Job."""

    name: str
    executor: str
    trigger: Trigger
    namespace: str = DEFAULT_NAMESPACE
    priority: int = 0
    params: Payload = field(default_factory=Payload)
    options: JobOptions = field(default_factory=JobOptions)
    labels: dict[str, str] = field(default_factory=dict)
    idempotency_key: str = ""


@dataclass(frozen=True, slots=True)
class LatenessReport:
    """Of a job's latest runs that started (at most `checked`): how many started later than
    its lateness SLO, and the latest start among them."""

    checked: int
    breaches: int
    worst: timedelta


@dataclass(frozen=True, slots=True)
class Job:
    namespace: str
    id: str
    name: str
    executor: str
    trigger: Trigger
    priority: int
    params: Payload
    options: JobOptions
    labels: dict[str, str]
    idempotency_key: str
    state: JobState
    created_at: datetime
    shard: int
    next_fire_time: datetime | None = None
    running: bool = False
    last_start_time: datetime | None = None
    last_end_time: datetime | None = None
    last_executor: str = ""
    last_status: RunStatus | None = None
    version: int = 1  # counts the updates of the job's spec (UpdateJob): its conflict token
    fired: int = 0  # scheduled fires claimed so far (max_fires counts them)
    note: str = ""  # why it was paused (PauseJob's note); cleared on resume
    # The W3C traceparent of the span that submitted it, when tracing was on: its runs' spans
    # are children of it. Never changed after the submit.
    traceparent: str = ""
    # How the latest runs kept the lateness SLO: filled by GetJob for a job that has one,
    # never stored.
    slo_report: LatenessReport | None = None

    @property
    def spec(self) -> JobSpec:
        """What a client would submit to get this job."""
        return JobSpec(name=self.name, executor=self.executor, trigger=self.trigger, namespace=self.namespace,
                       priority=self.priority, params=self.params, options=self.options, labels=self.labels,
                       idempotency_key=self.idempotency_key)  # fmt: skip


# The fields of a job UpdateJob may change (never its id, namespace, executor or key).
UPDATABLE_FIELDS = ("name", "trigger", "priority", "params", "options", "labels")


@dataclass(frozen=True, slots=True)
class JobChanges:
    """What an update sets: each field that is not None replaces the job's."""

    name: str | None = None
    trigger: Trigger | None = None
    priority: int | None = None
    params: Payload | None = None
    options: JobOptions | None = None
    labels: dict[str, str] | None = None

    def given(self) -> dict[str, object]:
        return {f: getattr(self, f) for f in UPDATABLE_FIELDS if getattr(self, f) is not None}


class FireKind(enum.Enum):
    SCHEDULED = "scheduled"  # an occurrence of the trigger; valid while it is the job's next fire
    RETRY = "retry"  # another attempt of a failed run
    MANUAL = "manual"  # asked for through TriggerJob, beside the schedule (its retries too)
    # Never stored: tells a shard's owner that the job was paused or cancelled, so it drops
    # the job's fires it already prepared (and, if cancelled, stops its runs).
    HALT = "halt"
    # Never stored, never sent to a worker: tells the other coordinator replicas that a job's
    # state changed through the API, so they forget what they cached of it.
    CHANGED = "changed"
    # Never stored, never sent to a worker, between coordinator replicas only (WatchRuns): a
    # replica has watchers of the job (job_id "": of the whole namespace)...
    WATCH = "watch"
    # ... and a run of a watched job just finished: its (due, attempt) name it (run_id_for).
    RAN = "ran"


@dataclass(frozen=True, slots=True, order=True)
class Fire:
    """One due occurrence of a job in a shard's schedule (a row that is never deleted)."""

    due: datetime
    namespace: str
    job_id: str
    shard: int
    attempt: int = 1
    kind: FireKind = FireKind.SCHEDULED
    priority: int = 0
    # A backfilled fire: the occurrence of the trigger it stands for (its identity: run id,
    # claim), while `due` is when it is released to run (backfills run at a bounded rate).
    nominal: datetime | None = None
    # A manual fire's overlap policy in place of its job's (TriggerJob's override).
    overlap: OverlapPolicy | None = None

    @property
    def manual(self) -> bool:
        """Asked for through TriggerJob or BackfillJob (or a retry of such a fire): its runs
        are marked so."""
        return self.kind is FireKind.MANUAL

    @property
    def at(self) -> datetime:
        """The instant the fire stands for: its run's `due` and part of its run id."""
        return self.nominal or self.due


@dataclass(frozen=True, slots=True)
class JobCompletion:
    """A run's fire was its job's last: the job is COMPLETED, with `fired` fires in all, as
    its claimer decided on a read of the job returned at `decided_at` (the write's timestamp,
    so a pause, cancel or resume after that read wins). Written with the run's record, so a
    job says COMPLETED once its last fire ran, and a fire costs a write less."""

    decided_at: datetime
    fired: int


@dataclass(frozen=True, slots=True)
class Run:
    """One attempt to execute a fire."""

    namespace: str
    job_id: str
    run_id: str
    due: datetime
    attempt: int
    status: RunStatus
    worker_id: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None
    result: Payload = field(default_factory=Payload)
    error: str = ""  # a failure's error; for SKIPPED and LOST, why in words
    reason: RunReason | None = None  # SKIPPED and LOST only
    manual: bool = False  # a run of a fire asked for through TriggerJob
    completes: JobCompletion | None = None  # recorded with the run (an event's, not stored)

    @property
    def lateness(self) -> timedelta | None:
        return None if self.started_at is None else self.started_at - self.due


@dataclass(frozen=True, slots=True)
class JobFilter:
    state: JobState | None = None
    name_prefix: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def matches(self, job: Job) -> bool:
        return (
            (self.state is None or job.state is self.state)
            and job.name.startswith(self.name_prefix)
            and all(job.labels.get(k) == v for k, v in self.labels.items())
        )


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class ScheduledFire:
    """A fire time a schedule preview found: the instant, its wall-clock reading in the
    trigger's zone (ISO 8601 with offset) and, where a clock change moved or doubled it, why."""

    at: datetime
    local_time: str
    dst_note: str = ""


@dataclass(frozen=True, slots=True)
class SchedulePreview:
    fires: list[ScheduledFire]
    timezone: str  # the IANA zone of every local_time


class JobEventKind(enum.Enum):
    PAUSED = "paused"
    RESUMED = "resumed"
    CANCELLED = "cancelled"
    UPDATED = "updated"
    TRIGGERED = "triggered"
    BACKFILLED = "backfilled"


@dataclass(frozen=True, slots=True)
class JobEvent:
    """Something done to a job through the API, kept so ExplainJob can say what became of
    the fires its trigger expected. `previous_trigger`: an update's, the trigger it replaced."""

    namespace: str
    job_id: str
    at: datetime
    kind: JobEventKind
    version: int
    detail: str = ""
    previous_trigger: Trigger | None = None


class FireFate(enum.Enum):
    """What became of a fire a job's trigger expected (ExplainJob)."""

    RAN = "ran"  # a run exists: see its status (failed runs ran too)
    SKIPPED = "skipped"  # recorded as skipped (misfire, overlap, halted), or paused/cancelled then
    MISSED = "missed"  # no run and no decision recorded: nobody ran it in time
    PENDING = "pending"  # not due yet, or due just now and not recorded yet


@dataclass(frozen=True, slots=True)
class ExplainedFire:
    at: datetime
    fate: FireFate
    why: str
    run_id: str = ""
    status: RunStatus | None = None
    lateness: timedelta | None = None
    manual: bool = False  # run by TriggerJob or BackfillJob, not by the schedule
    expected: bool = True  # False: a manual run at a time the trigger did not name


@dataclass(frozen=True, slots=True)
class Explanation:
    fires: list[ExplainedFire]
    events: list[JobEvent]
    truncated: bool = False  # more fires than asked for: the earliest are given


@dataclass(frozen=True, slots=True)
class NamespacePolicy:
    """The executors a namespace's jobs may use, as an admin of the namespace set them. None
    given: no limit (every executor the workers load)."""

    namespace: str
    allowed_executors: frozenset[str] = frozenset()

    def allows(self, executor: str) -> bool:
        return not self.allowed_executors or executor in self.allowed_executors

    def refusal(self, executor: str) -> str | None:
        """Why a job of the namespace may not use `executor`; None if it may."""
        if self.allows(executor):
            return None
        allowed = ", ".join(sorted(self.allowed_executors))
        return f"the policy of namespace {self.namespace!r} does not allow executor {executor!r} (allowed: {allowed})"
