"""Conversions between protobuf messages and domain objects, and errors to gRPC status codes.

The only module of the core package that imports generated code: servicers and the SDK convert
here on the way in and out, and nothing below them sees protobuf.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import grpc
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from hourglass_core import errors
from hourglass_core.models import (
    DEFAULT_NAMESPACE,
    UPDATABLE_FIELDS,
    CronTrigger,
    DstGap,
    DstRepeat,
    ExplainedFire,
    Fire,
    FireFate,
    FireKind,
    IntervalTrigger,
    Job,
    JobChanges,
    JobCompletion,
    JobEvent,
    JobEventKind,
    JobOptions,
    JobSpec,
    JobState,
    LatenessReport,
    MisfirePolicy,
    NamespacePolicy,
    OnceTrigger,
    OverlapPolicy,
    Payload,
    RetryPolicy,
    Run,
    RunReason,
    RunStatus,
    ScheduledFire,
    Trigger,
    WorkerLostPolicy,
)
from hourglass_pb.v1 import jobs_pb2 as pb
from hourglass_pb.v1 import worker_pb2 as wpb

# -- scalars ------------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)


def ts(value: datetime) -> Timestamp:
    """By integer arithmetic: a third of the cost of Timestamp.FromDatetime, paid a few times
    per fire."""
    if value.tzinfo is None:
        value = value.astimezone(UTC)  # as FromDatetime would: a naive time is local
    seconds, micros = divmod((value - _EPOCH) // _MICRO, 1_000_000)
    return Timestamp(seconds=seconds, nanos=micros * 1000)


def from_ts(message: Timestamp, present: bool = True, field: str = "timestamp") -> datetime | None:
    """Raises InvalidArgument naming `field` for a time outside the years 1 to 9999."""
    if not present:
        return None
    try:
        return _EPOCH + timedelta(seconds=message.seconds, microseconds=message.nanos // 1000)
    except OverflowError:
        raise errors.InvalidArgument(field, "is outside the years 1 to 9999") from None


def dur(value: timedelta) -> Duration:
    out = Duration()
    out.FromTimedelta(value)
    return out


def from_dur(message: Duration, field: str = "duration") -> timedelta:
    """Raises InvalidArgument naming `field` for a duration beyond 999,999,999 days."""
    try:
        return message.ToTimedelta()
    except (OverflowError, ValueError):
        raise errors.InvalidArgument(field, "is out of range") from None


def _opt_ts(parent: object, name: str, field: str = "") -> datetime | None:
    return from_ts(getattr(parent, name), parent.HasField(name), field or name)  # type: ignore[attr-defined]


def _opt_dur(parent: object, name: str, field: str = "") -> timedelta | None:
    if not parent.HasField(name):  # type: ignore[attr-defined]
        return None
    return from_dur(getattr(parent, name), field or name)


# -- enums --------------------------------------------------------------------------------

_JOB_STATES = {
    JobState.ACTIVE: pb.JOB_STATE_ACTIVE,
    JobState.PAUSED: pb.JOB_STATE_PAUSED,
    JobState.COMPLETED: pb.JOB_STATE_COMPLETED,
    JobState.CANCELLED: pb.JOB_STATE_CANCELLED,
}
_RUN_STATUSES = {
    RunStatus.RUNNING: pb.RUN_STATUS_RUNNING,
    RunStatus.SUCCEEDED: pb.RUN_STATUS_SUCCEEDED,
    RunStatus.FAILED: pb.RUN_STATUS_FAILED,
    RunStatus.TIMED_OUT: pb.RUN_STATUS_TIMED_OUT,
    RunStatus.CANCELLED: pb.RUN_STATUS_CANCELLED,
    RunStatus.SKIPPED: pb.RUN_STATUS_SKIPPED,
    RunStatus.LOST: pb.RUN_STATUS_LOST,
}
_MISFIRE = {MisfirePolicy.RUN_ONCE: pb.MISFIRE_POLICY_RUN_ONCE, MisfirePolicy.SKIP: pb.MISFIRE_POLICY_SKIP}
_OVERLAP = {
    OverlapPolicy.ALLOW: pb.OVERLAP_POLICY_ALLOW,
    OverlapPolicy.SKIP: pb.OVERLAP_POLICY_SKIP,
    OverlapPolicy.QUEUE_ONE: pb.OVERLAP_POLICY_QUEUE_ONE,
}
_WORKER_LOST = {
    WorkerLostPolicy.RETRY: pb.WORKER_LOST_POLICY_RETRY,
    WorkerLostPolicy.RECORD: pb.WORKER_LOST_POLICY_RECORD,
}
_DST_GAP = {DstGap.SHIFT_FORWARD: pb.DST_GAP_POLICY_SHIFT_FORWARD, DstGap.SKIP: pb.DST_GAP_POLICY_SKIP}
_DST_REPEAT = {DstRepeat.ONCE: pb.DST_REPEAT_POLICY_ONCE, DstRepeat.TWICE: pb.DST_REPEAT_POLICY_TWICE}
_REASONS = {
    RunReason.MISFIRE: pb.RUN_REASON_MISFIRE,
    RunReason.OVERLAP: pb.RUN_REASON_OVERLAP,
    RunReason.HALTED: pb.RUN_REASON_HALTED,
    RunReason.WORKER_LOST: pb.RUN_REASON_WORKER_LOST,
    RunReason.CATCHUP: pb.RUN_REASON_CATCHUP,
}
E = TypeVar("E", bound=enum.Enum)


def _enum_from_pb(codes: Mapping[E, int], value: int, default: E, field: str) -> E:
    """The enum member sent as `value` (0, unspecified: `default`). Raises InvalidArgument
    naming `field` for a number this server does not know, rather than guessing."""
    if value == 0:
        return default
    for member, code in codes.items():
        if code == value:
            return member
    names = ", ".join(m.name for m in codes)
    raise errors.InvalidArgument(field, f"unknown value {value}; expected one of {names}")


def overlap_from_pb(value: int, field: str = "overlap_policy") -> OverlapPolicy | None:
    """An overlap override: None when unspecified (the job's own policy applies)."""
    return None if value == 0 else _enum_from_pb(_OVERLAP, value, OverlapPolicy.ALLOW, field)


def overlap_to_pb(policy: OverlapPolicy | None) -> pb.OverlapPolicy.ValueType:
    return pb.OVERLAP_POLICY_UNSPECIFIED if policy is None else _OVERLAP[policy]


def run_reason_to_pb(reason: RunReason | None) -> pb.RunReason.ValueType:
    return pb.RUN_REASON_UNSPECIFIED if reason is None else _REASONS[reason]


def run_reason_from_pb(value: int) -> RunReason | None:
    return None if value == 0 else _enum_from_pb(_REASONS, value, RunReason.MISFIRE, "reason")


def job_state_to_pb(state: JobState) -> pb.JobState.ValueType:
    return _JOB_STATES[state]


def job_state_from_pb(value: int) -> JobState | None:
    for state, code in _JOB_STATES.items():
        if code == value:
            return state
    return None


def run_status_to_pb(status: RunStatus) -> pb.RunStatus.ValueType:
    return _RUN_STATUSES[status]


def run_status_from_pb(value: int) -> RunStatus:
    for status, code in _RUN_STATUSES.items():
        if code == value:
            return status
    raise errors.InvalidArgument("status", f"unknown run status {value}")


# -- triggers and specs -------------------------------------------------------------------


def trigger_to_pb(trigger: Trigger) -> pb.Trigger:
    out = pb.Trigger()
    match trigger:
        case OnceTrigger(at=at):
            out.once.at.CopyFrom(ts(at))
        case IntervalTrigger(every=every, start=start, end=end):
            out.interval.every.CopyFrom(dur(every))
            out.start.CopyFrom(ts(start))
            if end is not None:
                out.end.CopyFrom(ts(end))
        case CronTrigger(expression=expression, timezone=tz, start=start, end=end):
            out.cron.expression = expression
            out.cron.timezone = tz
            out.cron.dst_gap = _DST_GAP[trigger.dst_gap]
            out.cron.dst_repeat = _DST_REPEAT[trigger.dst_repeat]
            if start is not None:
                out.start.CopyFrom(ts(start))
            if end is not None:
                out.end.CopyFrom(ts(end))
    return out


def trigger_from_pb(message: pb.Trigger, now: datetime, field: str = "trigger") -> Trigger:
    """Raises InvalidArgument when no kind is set. An interval without start is anchored at now."""
    start = _opt_ts(message, "start", f"{field}.start")
    end = _opt_ts(message, "end", f"{field}.end")
    kind = message.WhichOneof("kind")
    if kind == "once":
        if not message.once.HasField("at"):
            raise errors.InvalidArgument(f"{field}.once.at", "is required")
        return OnceTrigger(at=from_ts(message.once.at, field=f"{field}.once.at") or now)
    if kind == "interval":
        if not message.interval.HasField("every"):
            raise errors.InvalidArgument(f"{field}.interval.every", "is required")
        return IntervalTrigger(every=from_dur(message.interval.every, f"{field}.interval.every"), start=start or now,
                               end=end)  # fmt: skip
    if kind == "cron":
        return CronTrigger(
            expression=message.cron.expression,
            timezone=message.cron.timezone or "UTC",
            start=start,
            end=end,
            dst_gap=_enum_from_pb(_DST_GAP, message.cron.dst_gap, DstGap.SHIFT_FORWARD, f"{field}.cron.dst_gap"),
            dst_repeat=_enum_from_pb(_DST_REPEAT, message.cron.dst_repeat, DstRepeat.ONCE, f"{field}.cron.dst_repeat"),
        )
    raise errors.InvalidArgument(field, "one of once, interval or cron is required")


def scheduled_fire_to_pb(fire: ScheduledFire) -> pb.ScheduledFire:
    return pb.ScheduledFire(at=ts(fire.at), local_time=fire.local_time, dst_note=fire.dst_note)


def scheduled_fire_from_pb(message: pb.ScheduledFire) -> ScheduledFire:
    return ScheduledFire(from_ts(message.at) or _EPOCH, message.local_time, message.dst_note)


def options_to_pb(options: JobOptions) -> pb.JobOptions:
    out = pb.JobOptions(
        retry=pb.RetryPolicy(
            max_attempts=options.retry.max_attempts,
            initial_backoff=dur(options.retry.initial_backoff),
            max_backoff=dur(options.retry.max_backoff),
            multiplier=options.retry.multiplier,
        ),
        misfire_policy=_MISFIRE[options.misfire_policy],
        misfire_grace=dur(options.misfire_grace),
        overlap_policy=_OVERLAP[options.overlap_policy],
        on_worker_lost=_WORKER_LOST[options.on_worker_lost],
        catchup_window=dur(options.catchup_window),
        max_fires=options.max_fires,
    )
    if options.timeout is not None:
        out.timeout.CopyFrom(dur(options.timeout))
    if options.jitter:
        out.jitter.CopyFrom(dur(options.jitter))
    if options.lateness_slo is not None:
        out.lateness_slo.CopyFrom(dur(options.lateness_slo))
    return out


def options_from_pb(message: pb.JobOptions, field: str = "job.options") -> JobOptions:
    default = JobOptions()
    retry = message.retry
    return JobOptions(
        timeout=_opt_dur(message, "timeout", f"{field}.timeout"),
        retry=RetryPolicy(
            max_attempts=max(1, retry.max_attempts),
            initial_backoff=_opt_dur(retry, "initial_backoff", f"{field}.retry.initial_backoff") or default.retry.initial_backoff,
            max_backoff=_opt_dur(retry, "max_backoff", f"{field}.retry.max_backoff") or default.retry.max_backoff,
            multiplier=retry.multiplier or default.retry.multiplier,
        ),
        misfire_policy=_enum_from_pb(
            _MISFIRE, message.misfire_policy, default.misfire_policy, f"{field}.misfire_policy"
        ),
        misfire_grace=_opt_dur(message, "misfire_grace", f"{field}.misfire_grace") or default.misfire_grace,
        overlap_policy=_enum_from_pb(
            _OVERLAP, message.overlap_policy, default.overlap_policy, f"{field}.overlap_policy"
        ),
        on_worker_lost=_enum_from_pb(
            _WORKER_LOST, message.on_worker_lost, default.on_worker_lost, f"{field}.on_worker_lost"
        ),
        catchup_window=_opt_dur(message, "catchup_window", f"{field}.catchup_window") or default.catchup_window,
        jitter=_opt_dur(message, "jitter", f"{field}.jitter") or default.jitter,
        max_fires=message.max_fires,
        lateness_slo=_opt_dur(message, "lateness_slo", f"{field}.lateness_slo"),
    )


def payload_to_pb(payload: Payload) -> pb.Payload:
    return pb.Payload(data=payload.data, content_type=payload.content_type)


def payload_from_pb(message: pb.Payload) -> Payload:
    return Payload(data=message.data, content_type=message.content_type or Payload().content_type)


def spec_to_pb(spec: JobSpec) -> pb.JobSpec:
    return pb.JobSpec(
        namespace=spec.namespace,
        name=spec.name,
        executor=spec.executor,
        trigger=trigger_to_pb(spec.trigger),
        priority=spec.priority,
        params=payload_to_pb(spec.params),
        options=options_to_pb(spec.options),
        labels=spec.labels,
        idempotency_key=spec.idempotency_key,
    )


def spec_from_pb(message: pb.JobSpec, now: datetime, field: str = "job") -> JobSpec:
    if not message.HasField("trigger"):
        raise errors.InvalidArgument(f"{field}.trigger", "is required")
    return JobSpec(
        namespace=message.namespace or DEFAULT_NAMESPACE,
        name=message.name,
        executor=message.executor,
        trigger=trigger_from_pb(message.trigger, now, f"{field}.trigger"),
        priority=message.priority,
        params=payload_from_pb(message.params),
        options=options_from_pb(message.options, f"{field}.options"),
        labels=dict(message.labels),
        idempotency_key=message.idempotency_key,
    )


# -- jobs and runs ------------------------------------------------------------------------


def job_to_pb(job: Job) -> pb.Job:
    out = pb.Job(
        namespace=job.namespace,
        id=job.id,
        spec=spec_to_pb(job.spec),
        state=_JOB_STATES[job.state],
        created_at=ts(job.created_at),
        running=job.running,
        last_executor=job.last_executor,
        shard=job.shard,
        version=job.version,
        fired=job.fired,
        note=job.note,
    )
    for name, value in (
        ("next_fire_time", job.next_fire_time),
        ("last_start_time", job.last_start_time),
        ("last_end_time", job.last_end_time),
    ):
        if value is not None:
            getattr(out, name).CopyFrom(ts(value))
    if job.last_status is not None:
        out.last_status = _RUN_STATUSES[job.last_status]
    if job.slo_report is not None:
        report = job.slo_report
        out.slo_report.CopyFrom(pb.LatenessReport(checked=report.checked, breaches=report.breaches, worst=dur(report.worst)))
    return out


def job_from_pb(message: pb.Job) -> Job:
    spec = spec_from_pb(message.spec, now=from_ts(message.created_at) or datetime.now(UTC))
    return Job(
        namespace=message.namespace,
        id=message.id,
        name=spec.name,
        executor=spec.executor,
        trigger=spec.trigger,
        priority=spec.priority,
        params=spec.params,
        options=spec.options,
        labels=spec.labels,
        idempotency_key=spec.idempotency_key,
        state=job_state_from_pb(message.state) or JobState.ACTIVE,
        created_at=from_ts(message.created_at) or datetime.now(UTC),
        shard=message.shard,
        next_fire_time=_opt_ts(message, "next_fire_time"),
        running=message.running,
        last_start_time=_opt_ts(message, "last_start_time"),
        last_end_time=_opt_ts(message, "last_end_time"),
        last_executor=message.last_executor,
        last_status=run_status_from_pb(message.last_status) if message.last_status else None,
        version=message.version or 1,
        fired=message.fired,
        note=message.note,
        slo_report=_slo_report_from_pb(message.slo_report) if message.HasField("slo_report") else None,
    )


def _slo_report_from_pb(message: pb.LatenessReport) -> LatenessReport:
    return LatenessReport(message.checked, message.breaches, from_dur(message.worst, "slo_report.worst"))


def run_to_pb(run: Run) -> pb.Run:
    out = pb.Run(
        namespace=run.namespace,
        job_id=run.job_id,
        run_id=run.run_id,
        due=ts(run.due),
        attempt=run.attempt,
        status=_RUN_STATUSES[run.status],
        worker_id=run.worker_id,
        result=payload_to_pb(run.result),
        error=run.error,
        reason=run_reason_to_pb(run.reason),
        manual=run.manual,
    )
    if run.started_at is not None:
        out.started_at.CopyFrom(ts(run.started_at))
    if run.ended_at is not None:
        out.ended_at.CopyFrom(ts(run.ended_at))
    if run.lateness is not None:
        out.lateness.CopyFrom(dur(run.lateness))
    return out


def run_from_pb(message: pb.Run) -> Run:
    return Run(
        namespace=message.namespace,
        job_id=message.job_id,
        run_id=message.run_id,
        due=from_ts(message.due) or datetime.now(UTC),
        attempt=message.attempt,
        status=run_status_from_pb(message.status),
        worker_id=message.worker_id,
        started_at=_opt_ts(message, "started_at"),
        ended_at=_opt_ts(message, "ended_at"),
        result=payload_from_pb(message.result),
        error=message.error,
        reason=run_reason_from_pb(message.reason),
        manual=message.manual,
    )


# -- worker protocol ----------------------------------------------------------------------


def fire_to_hint(fire: Fire) -> wpb.FireHint:
    return wpb.FireHint(
        shard=fire.shard,
        namespace=fire.namespace,
        job_id=fire.job_id,
        due=ts(fire.due),
        attempt=fire.attempt,
        priority=fire.priority,
        manual=fire.manual,
        nominal=None if fire.nominal is None else ts(fire.nominal),
        overlap=overlap_to_pb(fire.overlap),
    )


def fire_from_hint(hint: wpb.FireHint) -> Fire:
    return Fire(
        due=from_ts(hint.due) or datetime.now(UTC),
        namespace=hint.namespace,
        job_id=hint.job_id,
        shard=hint.shard,
        attempt=hint.attempt or 1,
        kind=FireKind.MANUAL if hint.manual else FireKind.SCHEDULED if hint.attempt <= 1 else FireKind.RETRY,
        priority=hint.priority,
        nominal=_opt_ts(hint, "nominal"),
        overlap=overlap_from_pb(hint.overlap),
    )


def run_finished_to_pb(run: Run, seq: int, token: int = 0) -> wpb.RunFinished:
    out = wpb.RunFinished(
        seq=seq,
        fencing_token=token,
        namespace=run.namespace,
        job_id=run.job_id,
        run_id=run.run_id,
        due=ts(run.due),
        attempt=run.attempt,
        status=_RUN_STATUSES[run.status],
        result=payload_to_pb(run.result),
        error=run.error,
        reason=run_reason_to_pb(run.reason),
        worker_id=run.worker_id,
        manual=run.manual,
    )
    if run.ended_at is not None:
        out.ended_at.CopyFrom(ts(run.ended_at))
    if run.started_at is not None:
        out.started_at.CopyFrom(ts(run.started_at))
    if run.completes is not None:
        out.completes_job.decided_at.CopyFrom(ts(run.completes.decided_at))
        out.completes_job.fired = run.completes.fired
    return out


def run_from_event(event: wpb.RunFinished, worker_id: str, field: str = "") -> Run:
    """The run a worker reported; raises InvalidArgument naming the field (prefixed `field`)."""
    try:
        status = run_status_from_pb(event.status)
        reason = run_reason_from_pb(event.reason)
    except errors.InvalidArgument as error:
        raise errors.InvalidArgument(f"{field}{error.field}", str(error).removeprefix(f"{error.field}: ")) from None
    return Run(
        namespace=event.namespace,
        job_id=event.job_id,
        run_id=event.run_id,
        due=from_ts(event.due, True, f"{field}due") or datetime.now(UTC),
        attempt=event.attempt,
        status=status,
        worker_id=event.worker_id or worker_id,
        started_at=_opt_ts(event, "started_at", f"{field}started_at"),
        ended_at=_opt_ts(event, "ended_at", f"{field}ended_at"),
        result=payload_from_pb(event.result),
        error=event.error,
        reason=reason,
        manual=event.manual,
        completes=_completion(event, field),
    )


def _completion(event: wpb.RunFinished, field: str) -> JobCompletion | None:
    if not event.HasField("completes_job"):
        return None
    done = event.completes_job
    return JobCompletion(from_ts(done.decided_at, True, f"{field}completes_job.decided_at") or datetime.now(UTC), done.fired)


# -- errors -------------------------------------------------------------------------------


def status_code(error: errors.HourglassError) -> grpc.StatusCode:
    """The one place domain errors meet gRPC status codes."""
    if isinstance(error, errors.InvalidArgument):
        return grpc.StatusCode.INVALID_ARGUMENT
    if isinstance(error, errors.NotFound):
        return grpc.StatusCode.NOT_FOUND
    if isinstance(error, errors.FailedPrecondition):
        return grpc.StatusCode.FAILED_PRECONDITION
    if isinstance(error, errors.Unavailable):
        return grpc.StatusCode.UNAVAILABLE
    if isinstance(error, errors.Unauthenticated):
        return grpc.StatusCode.UNAUTHENTICATED
    if isinstance(error, errors.PermissionDenied):
        return grpc.StatusCode.PERMISSION_DENIED
    return grpc.StatusCode.INTERNAL


# -- schedule control ---------------------------------------------------------------------

_FATES = {
    FireFate.RAN: pb.FIRE_FATE_RAN,
    FireFate.SKIPPED: pb.FIRE_FATE_SKIPPED,
    FireFate.MISSED: pb.FIRE_FATE_MISSED,
    FireFate.PENDING: pb.FIRE_FATE_PENDING,
}


def changes_from_pb(request: pb.UpdateJobRequest, now: datetime) -> JobChanges:
    """The fields an UpdateJobRequest changes: those its mask names (all six if empty), as
    its job spec gives them. Raises InvalidArgument naming the field."""
    paths = list(request.update_mask.paths) or list(UPDATABLE_FIELDS)
    for path in paths:
        if path not in UPDATABLE_FIELDS:
            raise errors.InvalidArgument("update_mask", f"{path!r} cannot be updated; one of {', '.join(UPDATABLE_FIELDS)}")
    spec = request.job
    if "trigger" in paths and not spec.HasField("trigger"):
        raise errors.InvalidArgument("job.trigger", "is required when the update changes it")
    return JobChanges(
        name=spec.name if "name" in paths else None,
        trigger=trigger_from_pb(spec.trigger, now, "job.trigger") if "trigger" in paths else None,
        priority=spec.priority if "priority" in paths else None,
        params=payload_from_pb(spec.params) if "params" in paths else None,
        options=options_from_pb(spec.options, "job.options") if "options" in paths else None,
        labels=dict(spec.labels) if "labels" in paths else None,
    )


def changes_to_pb(changes: JobChanges) -> tuple[pb.JobSpec, list[str]]:
    """The spec and mask paths an UpdateJobRequest carries for `changes`."""
    spec = pb.JobSpec()
    given = changes.given()
    if changes.name is not None:
        spec.name = changes.name
    if changes.trigger is not None:
        spec.trigger.CopyFrom(trigger_to_pb(changes.trigger))
    if changes.priority is not None:
        spec.priority = changes.priority
    if changes.params is not None:
        spec.params.CopyFrom(payload_to_pb(changes.params))
    if changes.options is not None:
        spec.options.CopyFrom(options_to_pb(changes.options))
    if changes.labels is not None:
        spec.labels.update(changes.labels)
    return spec, list(given)


def explained_fire_to_pb(fire: ExplainedFire) -> pb.ExplainedFire:
    out = pb.ExplainedFire(at=ts(fire.at), fate=_FATES[fire.fate], why=fire.why, run_id=fire.run_id,
                           manual=fire.manual, expected=fire.expected)  # fmt: skip
    if fire.status is not None:
        out.status = _RUN_STATUSES[fire.status]
    if fire.lateness is not None:
        out.lateness.CopyFrom(dur(fire.lateness))
    return out


def explained_fire_from_pb(message: pb.ExplainedFire) -> ExplainedFire:
    return ExplainedFire(
        at=from_ts(message.at) or datetime.now(UTC),
        fate=_enum_from_pb(_FATES, message.fate, FireFate.PENDING, "fate"),
        why=message.why,
        run_id=message.run_id,
        status=run_status_from_pb(message.status) if message.status else None,
        lateness=from_dur(message.lateness) if message.HasField("lateness") else None,
        manual=message.manual,
        expected=message.expected,
    )


def job_event_to_pb(event: JobEvent) -> pb.JobEvent:
    return pb.JobEvent(at=ts(event.at), kind=event.kind.value, version=event.version, detail=event.detail)


def job_event_from_pb(message: pb.JobEvent, namespace: str, job_id: str) -> JobEvent:
    return JobEvent(namespace, job_id, from_ts(message.at) or datetime.now(UTC), JobEventKind(message.kind),
                    message.version or 1, message.detail)  # fmt: skip


# -- namespace policies -------------------------------------------------------------------


def policy_to_pb(policy: NamespacePolicy) -> pb.NamespacePolicy:
    return pb.NamespacePolicy(namespace=policy.namespace, allowed_executors=sorted(policy.allowed_executors))


def policy_from_pb(message: pb.NamespacePolicy) -> NamespacePolicy:
    return NamespacePolicy(message.namespace, frozenset(message.allowed_executors))
