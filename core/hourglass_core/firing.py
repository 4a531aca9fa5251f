"""Pure decisions about fires: a job's first fire, and what to do with a fire that came due.

No I/O and no clock: `now` is passed in, so the rules can be tested at any instant.
"""

from __future__ import annotations

import enum
import hashlib
import re
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from hourglass_core.models import (
    Fire,
    FireKind,
    Job,
    JobState,
    MisfirePolicy,
    OnceTrigger,
    Trigger,
    WorkerLostPolicy,
)
from hourglass_core.triggers import backoff_delay, next_fire

_RUN_ID = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):([^:]{1,128}):(\d{8}T\d{6}\.\d{6}Z):(\d{1,9})$")
_RUN_DUE_FORMAT = "%Y%m%dT%H%M%S.%fZ"


@dataclass(frozen=True, slots=True)
class RunKey:
    """What a run id names: one attempt of one fire of one job."""

    namespace: str
    job_id: str
    due: datetime
    attempt: int


def run_id_for(namespace: str, job_id: str, due: datetime, attempt: int) -> str:
    """The id of the run of one attempt of one fire: the same on every worker, so a repeated
    event or a second claimer can never create a second run of the same attempt. It spells out
    its key (`namespace:job:due:attempt`, due in UTC to the microsecond), so a run is found by
    its id in the rows kept per job, with no second copy of every run kept by id."""
    return f"{namespace}:{job_id}:{due.astimezone(UTC).strftime(_RUN_DUE_FORMAT)}:{attempt}"


def run_key_of(run_id: str) -> RunKey | None:
    """The key a run id made by run_id_for names; None for any other string (ids of runs
    recorded before ids spelled out their key are random-looking UUIDs)."""
    match = _RUN_ID.match(run_id)
    if match is None:
        return None
    namespace, job_id, due, attempt = match.groups()
    try:
        when = datetime.strptime(due, _RUN_DUE_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return RunKey(namespace, job_id, when, int(attempt))


_JOB_NAMESPACE = uuid.UUID("0b5e2c7e-3f4a-4d21-9a0e-6c1f7d2b8e54")


def job_id_for_key(namespace: str, idempotency_key: str) -> str:
    """The id of the job submitted with an idempotency key: the same on every replica, so
    submits racing on one key (a client retrying a call whose answer it lost) write one job."""
    return str(uuid.uuid5(_JOB_NAMESPACE, f"{namespace}/{idempotency_key}"))


def first_fire_time(trigger: Trigger, now: datetime) -> datetime | None:
    """When a job submitted at `now` first fires. A once-trigger in the past fires now (its
    lateness is then judged against `at` by the misfire policy)."""
    if isinstance(trigger, OnceTrigger):
        return trigger.at
    return next_fire(trigger, now - timedelta(microseconds=1))


def schedule_row_due(due: datetime, now: datetime) -> datetime:
    """Fires written by a client request are never due in the past: the workers' read cursor
    trails real time by a bounded margin, and a row written behind it would never be read."""
    return max(due, now)


def first_fire(job: Job, now: datetime) -> Fire | None:
    """The first fire of a job submitted at `now`, at its next_fire_time: due no earlier than
    now (see schedule_row_due), and standing for that instant wherever its row is moved to
    (`nominal`). So every submit of one idempotency key writes a fire of the same identity
    (claim, run id), however late each is made: two racing submits of a job due in the past
    cannot each make a first fire of its own, and the run's due is the time asked for."""
    if job.next_fire_time is None:
        return None
    fire = scheduled_fire(job, job.next_fire_time)
    if fire.due >= now:
        return fire
    return replace(fire, due=now, nominal=fire.at)


class Action(enum.Enum):
    RUN = "run"
    SKIP_MISFIRE = "skip_misfire"  # recorded as a skipped run
    SKIP_CATCHUP = "skip_catchup"  # later than the catch-up window: recorded as a skipped run
    DROP = "drop"  # stale or not active: nothing to record


@dataclass(frozen=True, slots=True)
class FirePlan:
    action: Action
    # For a scheduled fire that was claimed: the job's following fire (None: no more fires).
    next_fire: Fire | None
    advance: bool  # whether the job's schedule moves on (scheduled fires only)
    reason: str = ""


def scheduled_fire(job: Job, at: datetime) -> Fire:
    """The fire of the job's occurrence `at` (what its next_fire_time names): due at `at`
    plus the job's jitter for that occurrence (fixed per (job, at): every replica and worker
    computes the same), and standing for `at` (its claim, run id and run's due)."""
    jitter = job.options.jitter
    if jitter <= timedelta(0):
        return Fire(due=at, namespace=job.namespace, job_id=job.id, shard=job.shard, priority=job.priority)
    delay = jitter * stable_jitter(run_id_for(job.namespace, job.id, at, 0))
    return Fire(due=at + delay, namespace=job.namespace, job_id=job.id, shard=job.shard, priority=job.priority,
                nominal=at)  # fmt: skip


def plan_fire(job: Job, fire: Fire, now: datetime) -> FirePlan:
    """What to do with `fire` of `job` at `now`, before it is claimed.

    A scheduled fire counts only while it is the job's next fire (older rows left by pause,
    resume or a crash are stale). A fire later than the job's catch-up window is skipped; one
    later than the misfire grace follows the misfire policy; either way the schedule then
    continues from now rather than replaying every missed occurrence (coalescing). After
    max_fires scheduled fires the job has no next one.
    """
    if fire.kind in (FireKind.RETRY, FireKind.MANUAL):  # beside the schedule: never moves it
        if job.state is JobState.CANCELLED:
            return FirePlan(Action.DROP, None, False, "job cancelled")
        return FirePlan(Action.RUN, None, False)
    if job.state is not JobState.ACTIVE:
        return FirePlan(Action.DROP, None, False, f"job {job.state.value}")
    if job.next_fire_time is None or abs(job.next_fire_time - fire.at) > timedelta(microseconds=1):
        return FirePlan(Action.DROP, None, False, "stale fire")
    late = now - fire.due
    misfired = late > job.options.misfire_grace
    resume_from = now if misfired else fire.at
    following = next_fire(job.trigger, resume_from)
    if job.options.max_fires and job.fired + 1 >= job.options.max_fires:
        following = None  # this is its last
    nxt = None if following is None else scheduled_fire(job, following)
    if late > job.options.catchup_window:
        why = f"{late} late, beyond the catch-up window of {job.options.catchup_window}"
        return FirePlan(Action.SKIP_CATCHUP, nxt, True, why)
    if misfired and job.options.misfire_policy is MisfirePolicy.SKIP:
        return FirePlan(Action.SKIP_MISFIRE, nxt, True, f"misfired by {late}")
    return FirePlan(Action.RUN, nxt, True)


def as_run_by(job: Job, fire: Fire) -> Job:
    """The job as `fire` runs it: with the fire's overlap override (TriggerJob's), if any."""
    if fire.overlap is None or fire.overlap is job.options.overlap_policy:
        return job
    return replace(job, options=replace(job.options, overlap_policy=fire.overlap))


def retry_fire(job: Job, fire: Fire, now: datetime, jitter: float) -> Fire | None:
    """The fire for the next attempt after `fire` failed, or None when attempts are used up."""
    if fire.attempt >= job.options.retry.max_attempts:
        return None
    return _next_attempt(fire, now + backoff_delay(job.options.retry, fire.attempt, jitter))


def _next_attempt(fire: Fire, due: datetime) -> Fire:
    return Fire(
        due=due,
        namespace=fire.namespace,
        job_id=fire.job_id,
        shard=fire.shard,
        attempt=fire.attempt + 1,
        kind=FireKind.MANUAL if fire.manual else FireKind.RETRY,
        priority=fire.priority,
        overlap=fire.overlap,  # a retry is its own instant (no nominal), under the same override
    )


# A run that kills its worker every time (a poison job) is not retried for ever: RETRY adds at
# most this many attempts beyond the retry policy's.
WORKER_LOST_EXTRA_ATTEMPTS = 3


def after_worker_lost(job: Job, fire: Fire, jitter: float) -> Fire | None:
    """The fire for the next attempt after `fire`'s run was cut off mid-run, or None.

    on_worker_lost RETRY: the next attempt whatever max_attempts says (up to
    WORKER_LOST_EXTRA_ATTEMPTS more); RECORD: only as the retry policy allows. Its due time
    derives from the fire alone, so every worker that recovers the run writes the same retry."""
    limit = job.options.retry.max_attempts
    if job.options.on_worker_lost is WorkerLostPolicy.RETRY:
        limit += WORKER_LOST_EXTRA_ATTEMPTS
    if fire.attempt >= limit:
        return None
    return _next_attempt(fire, fire.due + backoff_delay(job.options.retry, fire.attempt, jitter))


def stable_jitter(run_id: str) -> float:
    """A jitter in [0, 1) derived from the run id (deterministic, yet spread across runs)."""
    return int(hashlib.blake2b(run_id.encode(), digest_size=4).hexdigest(), 16) / 2**32
