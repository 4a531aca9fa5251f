"""Row <-> domain conversions shared by the Cassandra and SQLite stores.

Both stores keep the same flat columns, so the mapping lives here once:
- Times are integers: microseconds since the Unix epoch (UTC). Cassandra's `timestamp` type
  keeps milliseconds only, and a fire is identified to the microsecond (run ids, the
  job-next-fire match), so a millisecond column would silently change identities.
- Durations are integer microseconds, so every timedelta round-trips exactly.
- A trigger and the options are flattened to columns (no blobs of pickled data), so an
  operator can read them with cqlsh or sqlite3; Cassandra keeps those columns as one JSON
  cell (`spec`, see NARROW_COLUMNS), readable there too.
"""

from __future__ import annotations

import base64
import binascii
import json
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from hourglass_core.errors import InvalidArgument
from hourglass_core.models import (
    CronTrigger,
    DstGap,
    DstRepeat,
    Fire,
    FireKind,
    IntervalTrigger,
    Job,
    JobEvent,
    JobEventKind,
    JobOptions,
    JobState,
    MisfirePolicy,
    OnceTrigger,
    OverlapPolicy,
    Payload,
    RetryPolicy,
    Run,
    RunReason,
    RunStatus,
    Trigger,
    WorkerLostPolicy,
)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)

# Columns written when a job is created (the run mirror columns running / last_* are written
# only by record_run; absent reads as "never ran").
JOB_COLUMNS: tuple[str, ...] = (
    "namespace", "id", "name", "executor", "priority",
    "params_data", "params_content_type",
    "trigger_kind", "trigger_at", "trigger_every_us", "trigger_cron", "trigger_timezone",
    "trigger_start", "trigger_end",
    "timeout_us", "retry_max_attempts", "retry_initial_backoff_us", "retry_max_backoff_us",
    "retry_multiplier", "misfire_policy", "misfire_grace_us", "overlap_policy",
    "labels", "idempotency_key", "state", "created_at", "shard", "next_fire_time", "on_worker_lost",
    "trigger_dst_gap", "trigger_dst_repeat", "catchup_window_us", "jitter_us", "max_fires", "note", "traceparent",
    "lateness_slo_us",
)  # fmt: skip

RUN_COLUMNS: tuple[str, ...] = (
    "run_id", "namespace", "job_id", "due", "attempt", "status", "worker_id",
    "started_at", "ended_at", "result_data", "result_content_type", "error", "reason", "manual",
)  # fmt: skip


# -- scalars ------------------------------------------------------------------------------
def to_us(value: datetime) -> int:
    """Microseconds since the epoch; `value` must be timezone-aware."""
    return (value - EPOCH) // _MICRO


def opt_us(value: datetime | None) -> int | None:
    return None if value is None else to_us(value)


def from_us(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def opt_dt(value: int | None) -> datetime | None:
    return None if value is None else from_us(value)


_D = TypeVar("_D", timedelta, None)


def _opt_td(us: int | None, default: _D) -> timedelta | _D:
    return default if us is None else timedelta(microseconds=us)


def td_us(value: timedelta) -> int:
    return value // _MICRO


def now_us() -> int:
    return to_us(datetime.now(UTC))


def under_later_transactions_us() -> int:
    """A write timestamp for a new row that any later lightweight transaction on this clock
    sorts above: Cassandra stamps a transaction's cells with its own time in whole
    milliseconds, so a plain write stamped now to the microsecond could win over an update
    made in the same millisecond, or tie with it cell by cell (both seen: 2 in 300). A
    millisecond earlier is under the start of the current one, and keeps the microseconds
    that order two plain writes."""
    return now_us() - 1000


# -- jobs ---------------------------------------------------------------------------------
def _trigger_columns(trigger: Trigger) -> dict[str, Any]:
    cols: dict[str, Any] = dict.fromkeys(
        ("trigger_at", "trigger_every_us", "trigger_cron", "trigger_timezone",
         "trigger_start", "trigger_end", "trigger_dst_gap", "trigger_dst_repeat")
    )  # fmt: skip
    if isinstance(trigger, OnceTrigger):
        cols.update(trigger_kind="once", trigger_at=to_us(trigger.at))
    elif isinstance(trigger, IntervalTrigger):
        cols.update(
            trigger_kind="interval",
            trigger_every_us=td_us(trigger.every),
            trigger_start=to_us(trigger.start),
            trigger_end=opt_us(trigger.end),
        )
    else:
        cols.update(
            trigger_kind="cron",
            trigger_cron=trigger.expression,
            trigger_timezone=trigger.timezone,
            trigger_start=opt_us(trigger.start),
            trigger_end=opt_us(trigger.end),
            # Absent (no cell) for the defaults, which rows written before the policies mean.
            trigger_dst_gap=None if trigger.dst_gap is DstGap.SHIFT_FORWARD else trigger.dst_gap.value,
            trigger_dst_repeat=None if trigger.dst_repeat is DstRepeat.ONCE else trigger.dst_repeat.value,
        )
    return cols


def _trigger_from(row: Mapping[str, Any]) -> Trigger:
    kind = row["trigger_kind"]
    if kind == "once":
        return OnceTrigger(at=from_us(row["trigger_at"]))
    if kind == "interval":
        return IntervalTrigger(
            every=timedelta(microseconds=row["trigger_every_us"]),
            start=from_us(row["trigger_start"]),
            end=opt_dt(row["trigger_end"]),
        )
    if kind == "cron":
        return CronTrigger(
            expression=row["trigger_cron"],
            timezone=row["trigger_timezone"],
            start=opt_dt(row["trigger_start"]),
            end=opt_dt(row["trigger_end"]),
            dst_gap=DstGap(row.get("trigger_dst_gap") or DstGap.SHIFT_FORWARD.value),
            dst_repeat=DstRepeat(row.get("trigger_dst_repeat") or DstRepeat.ONCE.value),
        )
    raise ValueError(f"stored job has unknown trigger kind {kind!r}")


def job_columns(job: Job) -> dict[str, Any]:
    """The columns of JOB_COLUMNS for `job` (None where a value is absent)."""
    opts = job.options
    cols: dict[str, Any] = {
        "namespace": job.namespace,
        "id": job.id,
        "name": job.name,
        "executor": job.executor,
        "priority": job.priority,
        "params_data": job.params.data,
        "params_content_type": job.params.content_type,
        "timeout_us": None if opts.timeout is None else td_us(opts.timeout),
        "retry_max_attempts": opts.retry.max_attempts,
        "retry_initial_backoff_us": td_us(opts.retry.initial_backoff),
        "retry_max_backoff_us": td_us(opts.retry.max_backoff),
        "retry_multiplier": opts.retry.multiplier,
        "misfire_policy": opts.misfire_policy.value,
        "misfire_grace_us": td_us(opts.misfire_grace),
        "overlap_policy": opts.overlap_policy.value,
        "on_worker_lost": opts.on_worker_lost.value,
        # Absent (no cell) for the defaults, which rows written before the options mean.
        "catchup_window_us": None if opts.catchup_window == JobOptions().catchup_window else td_us(opts.catchup_window),
        "jitter_us": td_us(opts.jitter) or None,
        "max_fires": opts.max_fires or None,
        "lateness_slo_us": None if opts.lateness_slo is None else td_us(opts.lateness_slo),
        "note": job.note or None,
        "traceparent": job.traceparent or None,
        "labels": dict(job.labels),
        "idempotency_key": job.idempotency_key,
        "state": job.state.value,
        "created_at": to_us(job.created_at),
        "shard": job.shard,
        "next_fire_time": opt_us(job.next_fire_time),
    }
    cols.update(_trigger_columns(job.trigger))
    cols["version"] = stored_version(job.version)  # for UPDATE_COLUMNS; a create writes none
    return cols


def trigger_json(trigger: Trigger) -> str:
    """A trigger as JSON (its job columns), as job events keep it."""
    return json.dumps(_trigger_columns(trigger), sort_keys=True)


def trigger_from_json(text: str) -> Trigger:
    return _trigger_from(json.loads(text))


def is_complete_job_row(row: Mapping[str, Any]) -> bool:
    """False for a row holding only columns a late update wrote (the job itself is missing)."""
    return row.get("created_at") is not None and (row.get("spec") or row.get("trigger_kind")) is not None


def job_from_columns(row: Mapping[str, Any]) -> Job:
    """The inverse of job_columns, plus the run mirror columns (absent = never ran)."""
    timeout = row["timeout_us"]
    last_status = row.get("last_status")
    return Job(
        namespace=row["namespace"],
        id=row["id"],
        name=row["name"],
        executor=row["executor"],
        trigger=_trigger_from(row),
        priority=row["priority"],
        params=Payload(row["params_data"] or b"", row["params_content_type"]),
        options=JobOptions(
            timeout=None if timeout is None else timedelta(microseconds=timeout),
            retry=RetryPolicy(
                max_attempts=row["retry_max_attempts"],
                initial_backoff=timedelta(microseconds=row["retry_initial_backoff_us"]),
                max_backoff=timedelta(microseconds=row["retry_max_backoff_us"]),
                multiplier=row["retry_multiplier"],
            ),
            misfire_policy=MisfirePolicy(row["misfire_policy"]),
            misfire_grace=timedelta(microseconds=row["misfire_grace_us"]),
            overlap_policy=OverlapPolicy(row["overlap_policy"]),
            # Jobs stored before the option existed have none: the default.
            on_worker_lost=WorkerLostPolicy(row.get("on_worker_lost") or WorkerLostPolicy.RETRY.value),
            catchup_window=_opt_td(row.get("catchup_window_us"), JobOptions().catchup_window),
            jitter=_opt_td(row.get("jitter_us"), timedelta(0)),
            max_fires=row.get("max_fires") or 0,
            lateness_slo=_opt_td(row.get("lateness_slo_us"), None),
        ),
        labels=dict(row["labels"] or {}),
        idempotency_key=row["idempotency_key"] or "",
        state=JobState(row["state"]),
        created_at=from_us(row["created_at"]),
        shard=row["shard"],
        next_fire_time=opt_dt(row["next_fire_time"]),
        running=bool(row.get("running") or False),
        last_start_time=opt_dt(row.get("last_start_time")),
        last_end_time=opt_dt(row.get("last_end_time")),
        last_executor=row.get("last_executor") or "",
        last_status=None if last_status is None else RunStatus(last_status),
        version=row.get("version") or 1,  # no cell: never updated
        fired=row.get("fired") or 0,
        note=row.get("note") or "",
        traceparent=row.get("traceparent") or "",
    )


# Cassandra keeps what only UpdateJob changes and is read only as a whole (name, executor,
# priority, trigger, options, labels) as one JSON cell, `spec`, beside the columns that change
# on their own or are looked at alone: cells are Cassandra's unit of work, and a job row of
# about 9 cells instead of 25 (and no collection tombstone for the labels map) costs it a
# third less per submit and per job read. Rows written before (no spec cell) read as before.
NARROW_COLUMNS: tuple[str, ...] = (
    "namespace", "id", "params_data", "params_content_type", "idempotency_key", "state", "created_at", "shard",
    "next_fire_time", "note", "traceparent",
)  # fmt: skip
SPEC_COLUMNS: tuple[str, ...] = tuple(c for c in JOB_COLUMNS if c not in NARROW_COLUMNS)
# What UpdateJob writes of a narrow row (the version cell too).
NARROW_UPDATE_COLUMNS: tuple[str, ...] = ("spec", "params_data", "params_content_type", "state", "next_fire_time",
                                          "note", "version")  # fmt: skip


def narrow_job_columns(job: Job) -> dict[str, Any]:
    """job_columns in the narrow form: NARROW_COLUMNS, `spec` and `version`."""
    cols = job_columns(job)
    narrow = {c: cols[c] for c in NARROW_COLUMNS}
    narrow["spec"] = json.dumps({c: cols[c] for c in SPEC_COLUMNS if cols[c] is not None}, separators=(",", ":"))
    narrow["version"] = cols["version"]
    return narrow


def job_from_row(row: Mapping[str, Any]) -> Job:
    """A stored job row, narrow (a `spec` cell) or flat (written before the narrow form)."""
    spec = row.get("spec")
    return job_from_columns(row if spec is None else {**row, **json.loads(spec)})


# Set by UpdateJob (the job's id, namespace, executor, key, creation and shard never change).
UPDATE_COLUMNS: tuple[str, ...] = tuple(
    c for c in JOB_COLUMNS
    if c not in ("namespace", "id", "executor", "idempotency_key", "created_at", "shard", "traceparent")
) + ("version",)


def stored_version(version: int) -> int | None:
    """The version cell of a job at `version`: none until its first update."""
    return None if version <= 1 else version


EVENT_COLUMNS: tuple[str, ...] = ("namespace", "job_id", "at", "kind", "version", "detail", "previous_trigger")


def job_event_columns(event: JobEvent) -> dict[str, Any]:
    """The columns of EVENT_COLUMNS for `event`."""
    return {
        "namespace": event.namespace,
        "job_id": event.job_id,
        "at": to_us(event.at),
        "kind": event.kind.value,
        "version": event.version,
        "detail": event.detail,
        "previous_trigger": None if event.previous_trigger is None else trigger_json(event.previous_trigger),
    }


def job_event_from(row: Mapping[str, Any]) -> JobEvent:
    previous = row.get("previous_trigger")
    return JobEvent(
        namespace=row["namespace"],
        job_id=row["job_id"],
        at=from_us(row["at"]),
        kind=JobEventKind(row["kind"]),
        version=row["version"] or 1,
        detail=row["detail"] or "",
        previous_trigger=trigger_from_json(previous) if previous else None,
    )


def list_bucket(job_id: str, buckets: int) -> int:
    """A stable bucket of a job id (crc32: the same in every process and release)."""
    return zlib.crc32(job_id.encode()) % buckets


# -- fires --------------------------------------------------------------------------------
def fire_from_columns(row: Mapping[str, Any], shard: int) -> Fire:
    return Fire(
        due=from_us(row["due"]),
        namespace=row["namespace"],
        job_id=row["job_id"],
        shard=shard,
        attempt=row["attempt"],
        kind=FireKind(row["kind"]),
        priority=row["priority"],
        nominal=opt_dt(row["nominal"]),
        overlap=OverlapPolicy(row["overlap"]) if row["overlap"] else None,
    )


def fire_extras(fire: Fire) -> tuple[int | None, str | None]:
    """The fire columns only backfilled and overridden manual fires have: nominal, overlap."""
    return opt_us(fire.nominal), None if fire.overlap is None else fire.overlap.value


# -- runs ---------------------------------------------------------------------------------
def run_columns(run: Run) -> dict[str, Any]:
    return {
        "run_id": run.run_id,
        "namespace": run.namespace,
        "job_id": run.job_id,
        "due": to_us(run.due),
        "attempt": run.attempt,
        "status": run.status.value,
        "worker_id": run.worker_id,
        "started_at": opt_us(run.started_at),
        "ended_at": opt_us(run.ended_at),
        "result_data": run.result.data,
        "result_content_type": run.result.content_type,
        "error": run.error,
        "reason": None if run.reason is None else run.reason.value,
        "manual": run.manual or None,  # absent unless set: no cell for the common case
    }


def run_from_columns(row: Mapping[str, Any]) -> Run:
    return Run(
        namespace=row["namespace"],
        job_id=row["job_id"],
        run_id=row["run_id"],
        due=from_us(row["due"]),
        attempt=row["attempt"],
        status=RunStatus(row["status"]),
        worker_id=row["worker_id"] or "",
        started_at=opt_dt(row["started_at"]),
        ended_at=opt_dt(row["ended_at"]),
        result=Payload(row["result_data"] or b"", row["result_content_type"]),
        error=row["error"] or "",
        reason=None if row.get("reason") is None else RunReason(row["reason"]),
        manual=bool(row.get("manual")),
    )


def run_write_timestamp(run: Run, now: int) -> int:
    """The version of a run event, used as the Cassandra write timestamp (and compared the same
    way by SQLite) so that events order by the run's own times, not by arrival:

    - RUNNING: started_at (or `now` if missing).
    - finished: one microsecond after the latest of ended_at / started_at (or `now`).

    A finished event therefore always outranks the RUNNING event of the same run, however late
    or often that RUNNING event is delivered, with no read-before-write and no Paxos round.
    """
    if run.status is RunStatus.RUNNING:
        return now if run.started_at is None else to_us(run.started_at)
    times = [to_us(t) for t in (run.ended_at, run.started_at) if t is not None]
    return (max(times) if times else now) + 1


# -- page tokens --------------------------------------------------------------------------
def encode_token(fields: dict[str, Any]) -> str:
    """An opaque page token (url-safe base64 of compact JSON)."""
    raw = json.dumps(fields, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str, types: dict[str, type]) -> dict[str, Any]:
    """Decodes a token made by encode_token holding exactly the keys of `types` with those
    types. Raises InvalidArgument("page_token", ...) for anything else."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        fields = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidArgument("page_token", "is not a token this server handed out") from None
    if (
        not isinstance(fields, dict)
        or set(fields) != set(types)
        or not all(
            isinstance(fields[k], t) and not isinstance(fields[k], bool) for k, t in types.items()
        )
    ):
        raise InvalidArgument("page_token", "is not a token this server handed out")
    return fields
