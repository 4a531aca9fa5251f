"""Tracing: off unless the OTEL_* variables ask, and a run's span as a child of its submit's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hourglass_core import tracing
from hourglass_core.firing import run_id_for
from hourglass_core.models import Job, JobOptions, JobState, OnceTrigger, Payload, Run, RunStatus
from hourglass_core.tracing_otel import RunSpans

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
DUE = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


def test_tracing_is_wanted_only_when_the_variables_ask_for_it() -> None:
    assert not tracing.wanted({})
    assert not tracing.wanted({"OTEL_SERVICE_NAME": "x"})
    assert not tracing.wanted({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"})
    assert not tracing.wanted({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.wanted({"OTEL_TRACES_EXPORTER": "otlp"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"})
    assert tracing.wanted({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"})


def _job(traceparent: str) -> Job:
    return Job("default", "job-1", "nightly", "echo", OnceTrigger(at=DUE), 0, Payload(), JobOptions(), {}, "",
               JobState.ACTIVE, DUE, 3, traceparent=traceparent)  # fmt: skip


def _run(status: RunStatus, error: str = "") -> Run:
    started = DUE + timedelta(milliseconds=2)
    return Run("default", "job-1", run_id_for("default", "job-1", DUE, 1), DUE, 1, status, "w-1", started,
               started + timedelta(milliseconds=40), error=error)  # fmt: skip


def _recorded(job: Job, run: Run) -> tuple[InMemorySpanExporter, RunSpans]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    spans = RunSpans("w-1", provider)
    spans.record(job, run, shard=3, token=9)
    return exporter, spans


def test_a_run_span_is_a_child_of_the_submit_with_the_run_as_measured() -> None:
    run = _run(RunStatus.SUCCEEDED)
    exporter, _ = _recorded(_job(f"00-{TRACE_ID}-{PARENT}-01"), run)
    [span] = exporter.get_finished_spans()
    assert span.name == "run echo" and span.kind is SpanKind.CONSUMER
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT and span.parent.is_remote
    assert span.attributes is not None
    assert span.attributes["hourglass.job.id"] == "job-1" and span.attributes["hourglass.run.id"] == run.run_id
    assert (span.attributes["hourglass.shard"], span.attributes["hourglass.fencing_token"]) == (3, 9)
    assert run.started_at is not None and run.ended_at is not None
    assert span.start_time == int(run.started_at.timestamp() * 1e9)
    assert span.end_time == int(run.ended_at.timestamp() * 1e9)
    assert span.status.status_code is StatusCode.UNSET


def test_a_job_submitted_untraced_gets_a_root_span_and_a_failure_an_error_status() -> None:
    exporter, _ = _recorded(_job(""), _run(RunStatus.FAILED, "boom"))
    [span] = exporter.get_finished_spans()
    assert span.parent is None
    assert span.status.status_code is StatusCode.ERROR and span.status.description == "boom"
