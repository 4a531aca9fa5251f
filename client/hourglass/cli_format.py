"""How the CLI reads and writes values: durations, times and labels in (argparse types, with
clear errors); jobs and runs out, as aligned text for people or JSON for scripts.

JSON output uses ISO 8601 times (UTC, or null), durations in seconds (`*_s` keys) except
lateness in milliseconds (`lateness_ms`), enum values in lower case, and payloads as
{"content_type", and one of "json" (parsed), "text" (UTF-8) or "base64"}.
"""

from __future__ import annotations

import argparse
import base64
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from hourglass_core.config import parse_duration
from hourglass_core.models import (
    CronTrigger,
    ExplainedFire,
    Explanation,
    IntervalTrigger,
    Job,
    LatenessReport,
    NamespacePolicy,
    OnceTrigger,
    Payload,
    Run,
    SchedulePreview,
    Trigger,
)
from hourglass_core.trigger_words import duration_text, iso, trigger_text

MAX_CELL = 48
DURATION_HELP = "e.g. 500ms, 10s, 1.5m, 2h, or plain seconds"

# -- reading: argparse types ---------------------------------------------------------------


def duration(text: str) -> timedelta:
    """An argparse type: a non-negative duration ('500ms', '10s', '1m', '2h', '30')."""
    try:
        value = parse_duration(text)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r} ({DURATION_HELP})") from None
    if value < timedelta(0):
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must not be negative")
    return value


def timeout_seconds(text: str) -> float:
    value = duration(text).total_seconds()
    if value <= 0:
        raise argparse.ArgumentTypeError(f"invalid timeout {text!r}: must be positive")
    return value


@dataclass(frozen=True, slots=True)
class TimeArg:
    """An absolute time, or an offset from the moment the command builds its request."""

    at: datetime | None = None
    offset: timedelta | None = None

    def resolve(self, now: datetime) -> datetime:
        return self.at if self.at is not None else now + (self.offset or timedelta(0))


def time_arg(text: str) -> TimeArg:
    """An argparse type: ISO 8601 with a UTC offset ('2026-12-01T09:00:00Z') or '+DURATION'."""
    if text.startswith("+"):
        return TimeArg(offset=duration(text[1:]))
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid time {text!r}: expected ISO 8601 like 2026-12-01T09:00:00Z, or +DURATION like +30s"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"invalid time {text!r}: add a UTC offset, e.g. {text}Z or {text}+01:00")
    return TimeArg(at=value.astimezone(UTC))


def since_arg(text: str) -> TimeArg:
    """An argparse type: a time in the past, as ISO 8601, or DURATION (or -DURATION) ago."""
    bare = text[1:] if text.startswith("-") else text
    try:
        ago = parse_duration(bare)
    except (ValueError, OverflowError):
        return time_arg(text)
    return TimeArg(offset=-ago)


def label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid label {text!r}: expected KEY=VALUE")
    return key, value


def executor_names(text: str) -> list[str]:
    """An argparse type: executor names, comma-separated ('http,echo')."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("names no executor (to lift the limit: --clear)")
    return names


# -- writing: scalars ----------------------------------------------------------------------


def seconds(value: timedelta | None) -> float | None:
    return None if value is None else value.total_seconds()


def slo_text(slo: timedelta | None, report: LatenessReport | None) -> str | None:
    """"250ms: 3 of the latest 100 runs later (worst 1.2s)"; None without an SLO."""
    if slo is None:
        return None
    if report is None or not report.checked:
        return f"{duration_text(slo)}: no run judged yet"
    return (f"{duration_text(slo)}: {report.breaches} of the latest {report.checked} runs later "
            f"(worst {duration_text(report.worst)})")


def lateness_ms(run: Run) -> float | None:
    late = run.lateness
    return None if late is None else round(late.total_seconds() * 1000, 1)


def payload_json(payload: Payload) -> dict[str, Any]:
    out: dict[str, Any] = {"content_type": payload.content_type}
    if not payload.data:
        return out
    if "json" in payload.content_type:
        try:
            out["json"] = json.loads(payload.data)
            return out
        except ValueError:
            pass
    try:
        out["text"] = payload.data.decode()
    except UnicodeDecodeError:
        out["base64"] = base64.b64encode(payload.data).decode()
    return out


def payload_text(payload: Payload, limit: int = 200) -> str:
    if not payload.data:
        return "-"
    text = payload.data.decode(errors="replace")
    return text if len(text) <= limit else text[: limit - 1] + "…"


# -- JSON ----------------------------------------------------------------------------------


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    match trigger:
        case OnceTrigger(at=at):
            return {"once": {"at": iso(at)}}
        case IntervalTrigger(every=every, start=start, end=end):
            return {"interval": {"every_s": seconds(every)}, "start": iso(start), "end": iso(end)}
        case CronTrigger(expression=expression, timezone=tz, start=start, end=end):
            cron = {"expression": expression, "timezone": tz, "dst_gap": trigger.dst_gap.value,
                    "dst_repeat": trigger.dst_repeat.value}  # fmt: skip
            return {"cron": cron, "start": iso(start), "end": iso(end)}
    raise TypeError(f"unknown trigger {trigger!r}")


def job_json(job: Job) -> dict[str, Any]:
    o = job.options
    return {
        "namespace": job.namespace,
        "id": job.id,
        "name": job.name,
        "executor": job.executor,
        "state": job.state.value,
        "trigger": trigger_json(job.trigger),
        "next_fire_time": iso(job.next_fire_time),
        "priority": job.priority,
        "params": payload_json(job.params),
        "options": {
            "timeout_s": seconds(o.timeout),
            "retry": {
                "max_attempts": o.retry.max_attempts,
                "initial_backoff_s": seconds(o.retry.initial_backoff),
                "max_backoff_s": seconds(o.retry.max_backoff),
                "multiplier": o.retry.multiplier,
            },
            "misfire_policy": o.misfire_policy.value,
            "misfire_grace_s": seconds(o.misfire_grace),
            "overlap_policy": o.overlap_policy.value,
            "on_worker_lost": o.on_worker_lost.value,
            "catchup_window_s": seconds(o.catchup_window),
            "jitter_s": seconds(o.jitter),
            "max_fires": o.max_fires,
            "lateness_slo_s": seconds(o.lateness_slo),
        },
        "slo_report": None if job.slo_report is None else {
            "checked": job.slo_report.checked,
            "breaches": job.slo_report.breaches,
            "worst_s": seconds(job.slo_report.worst),
        },
        "version": job.version,
        "fired": job.fired,
        "note": job.note or None,
        "labels": dict(job.labels),
        "idempotency_key": job.idempotency_key,
        "created_at": iso(job.created_at),
        "shard": job.shard,
        "running": job.running,
        "last_start_time": iso(job.last_start_time),
        "last_end_time": iso(job.last_end_time),
        "last_executor": job.last_executor,
        "last_status": None if job.last_status is None else job.last_status.value,
    }


def run_json(run: Run) -> dict[str, Any]:
    return {
        "namespace": run.namespace,
        "job_id": run.job_id,
        "run_id": run.run_id,
        "due": iso(run.due),
        "attempt": run.attempt,
        "status": run.status.value,
        "worker_id": run.worker_id,
        "started_at": iso(run.started_at),
        "ended_at": iso(run.ended_at),
        "lateness_ms": lateness_ms(run),
        "result": payload_json(run.result),
        "error": run.error,
        "reason": None if run.reason is None else run.reason.value,
        "manual": run.manual,
    }


def dumps(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


# -- text ----------------------------------------------------------------------------------


def _cell(value: object) -> str:
    text = "-" if value is None or value == "" else str(value)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Left-aligned columns, two spaces apart; empty values shown as '-'."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]
    lines = [list(headers), *cells]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def fields_text(pairs: Sequence[tuple[str, object]]) -> str:
    width = max(len(k) for k, _ in pairs)
    return "\n".join(f"{k + ':':<{width + 1}} {'-' if v is None or v == '' else v}" for k, v in pairs)


def job_text(job: Job) -> str:
    o = job.options
    retry = f"{o.retry.max_attempts} attempt(s)"
    if o.retry.max_attempts > 1:
        retry += f", backoff {duration_text(o.retry.initial_backoff)} x{o.retry.multiplier:g} " \
                 f"up to {duration_text(o.retry.max_backoff)}"
    return fields_text([
        ("id", job.id),
        ("namespace", job.namespace),
        ("name", job.name),
        ("executor", job.executor),
        ("state", job.state.value + (" (running)" if job.running else "")),
        ("note", job.note),
        ("version", job.version),
        ("trigger", trigger_text(job.trigger)),
        ("next fire", iso(job.next_fire_time)),
        ("priority", job.priority),
        ("params", f"{payload_text(job.params)} ({job.params.content_type})" if job.params.data else None),
        ("timeout", duration_text(o.timeout) if o.timeout else None),
        ("retry", retry),
        ("misfire", f"{o.misfire_policy.value}, grace {duration_text(o.misfire_grace)}"),
        ("overlap", o.overlap_policy.value),
        ("on worker lost", o.on_worker_lost.value),
        ("catch-up window", duration_text(o.catchup_window)),
        ("jitter", duration_text(o.jitter) if o.jitter else None),
        ("fires", f"{job.fired} of {o.max_fires}" if o.max_fires else job.fired),
        ("lateness SLO", slo_text(o.lateness_slo, job.slo_report)),
        ("labels", ", ".join(f"{k}={v}" for k, v in sorted(job.labels.items()))),
        ("idempotency key", job.idempotency_key),
        ("created", iso(job.created_at)),
        ("shard", job.shard),
        ("last start", iso(job.last_start_time)),
        ("last end", iso(job.last_end_time)),
        ("last status", None if job.last_status is None else job.last_status.value),
        ("last worker", job.last_executor),
    ])


def jobs_table(jobs: Sequence[Job]) -> str:
    return table(
        ["ID", "NAME", "STATE", "NEXT FIRE"],
        [[j.id, j.name, j.state.value + ("*" if j.running else ""), iso(j.next_fire_time)] for j in jobs],
    )


def run_text(run: Run) -> str:
    late = lateness_ms(run)
    return fields_text([
        ("run id", run.run_id),
        ("job id", run.job_id),
        ("namespace", run.namespace),
        ("status", run.status.value + (" (manual)" if run.manual else "")),
        ("due", iso(run.due)),
        ("attempt", run.attempt),
        ("worker", run.worker_id),
        ("started", iso(run.started_at)),
        ("ended", iso(run.ended_at)),
        ("lateness", None if late is None else f"{late:g} ms"),
        ("result", f"{payload_text(run.result)} ({run.result.content_type})" if run.result.data else None),
        ("reason", None if run.reason is None else run.reason.value),
        ("error" if run.reason is None else "why", run.error),
    ])


def runs_table(runs: Sequence[Run]) -> str:
    return table(
        ["RUN ID", "STATUS", "REASON", "DUE", "ATTEMPT", "LATENESS MS", "WORKER"],
        [[r.run_id, r.status.value, r.reason and r.reason.value, iso(r.due), r.attempt, lateness_ms(r), r.worker_id]
         for r in runs],
    )


def preview_json(preview: SchedulePreview) -> dict[str, Any]:
    return {
        "timezone": preview.timezone,
        "fires": [{"at": iso(f.at), "local_time": f.local_time, "dst_note": f.dst_note or None} for f in preview.fires],
    }


def preview_text(preview: SchedulePreview) -> str:
    """One line per fire: wall time in the zone, the UTC instant, and a note where a clock
    change moved it (notes are never cut short)."""
    if not preview.fires:
        return "no fires to come"
    width = max(len(f.local_time) for f in preview.fires)
    lines = [f"time zone {preview.timezone}"]
    for f in preview.fires:
        note = f"  {f.dst_note}" if f.dst_note else ""
        lines.append(f"{f.local_time:<{width}}  {iso(f.at)}{note}")
    return "\n".join(lines)


def explain_json(found: Explanation) -> dict[str, Any]:
    return {
        "fires": [
            {"at": iso(f.at), "fate": f.fate.value, "why": f.why, "run_id": f.run_id or None,
             "status": f.status and f.status.value, "lateness_ms": f.lateness and f.lateness.total_seconds() * 1000,
             "manual": f.manual, "expected": f.expected}
            for f in found.fires
        ],
        "events": [{"at": iso(e.at), "kind": e.kind.value, "version": e.version, "detail": e.detail} for e in found.events],
        "truncated": found.truncated,
    }  # fmt: skip


def explain_text(found: Explanation) -> str:
    """A table of the fires, then the job's events; `why` is never cut short."""
    def late_ms(f: ExplainedFire) -> float | None:
        return None if f.lateness is None else round(f.lateness.total_seconds() * 1000, 1)

    rows = [[iso(f.at), f.fate.value, f.run_id or "-", late_ms(f), f.why] for f in found.fires]
    out = table(["AT", "FATE", "RUN ID", "LATENESS MS", "WHY"], rows) if rows else "no fires expected in this range"
    if found.truncated:
        out += "\n(more fires: narrow the range or raise --max-fires)"
    if found.events:
        out += "\n\nevents:\n" + "\n".join(
            f"  {iso(e.at)}  {e.kind.value} (v{e.version}){': ' + e.detail if e.detail else ''}" for e in found.events
        )
    return out


def policy_json(policy: NamespacePolicy) -> dict[str, Any]:
    return {"namespace": policy.namespace, "allowed_executors": sorted(policy.allowed_executors)}


def policy_text(policy: NamespacePolicy) -> str:
    if not policy.allowed_executors:
        return f"namespace {policy.namespace}: no executor policy (every executor the workers load)"
    return f"namespace {policy.namespace}: executors limited to {', '.join(sorted(policy.allowed_executors))}"
