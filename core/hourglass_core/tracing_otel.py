"""The OpenTelemetry side of `tracing`: imported only once the OTEL_* variables turn tracing on
(it needs the `tracing` extra: opentelemetry-sdk, -exporter-otlp-proto-http and
-instrumentation-grpc)."""

from __future__ import annotations

import os
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from hourglass_core.models import Job, Run, RunStatus

_PROPAGATOR = TraceContextTextMapPropagator()
_FAILED = frozenset({RunStatus.FAILED, RunStatus.TIMED_OUT, RunStatus.LOST})


def _exporter(name: str) -> SpanExporter:
    """The exporter OTEL_TRACES_EXPORTER names. OTLP goes over HTTP (protobuf), to
    OTEL_EXPORTER_OTLP(_TRACES)_ENDPOINT, read by the exporter itself."""
    if name == "console":
        return ConsoleSpanExporter()
    if name != "otlp":
        raise ValueError(f"OTEL_TRACES_EXPORTER: {name!r} is not an exporter here (otlp, console or none)")
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if protocol not in (None, "", "http/protobuf"):
        raise ValueError(f"OTEL_EXPORTER_OTLP_PROTOCOL: {protocol!r} is not served here (http/protobuf)")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()


def install(service: str) -> None:
    """A tracer provider for this process, exporting in batches (OTEL_BSP_* tune them) to the
    exporters OTEL_TRACES_EXPORTER lists (default otlp), unless one is installed already (an
    application that set up OpenTelemetry itself keeps its own)."""
    if isinstance(trace.get_tracer_provider(), TracerProvider):
        return
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    exporters = [_exporter(name) for name in names if name != "none"]
    resource = Resource.create()  # OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service}))
    provider = TracerProvider(resource=resource)  # flushed at exit
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)


def _not_health(details: Any) -> bool:
    """Probes every few seconds are not worth a trace each."""
    method = getattr(details, "method", "") or ""
    if isinstance(method, bytes):
        method = method.decode()
    return not method.startswith("/grpc.health.v1.Health/")


def server_interceptor() -> Any:
    from opentelemetry.instrumentation.grpc import aio_server_interceptor

    return aio_server_interceptor(filter_=_not_health)


def aio_client_interceptors() -> list[Any]:
    from opentelemetry.instrumentation.grpc import aio_client_interceptors

    return list(aio_client_interceptors())


def traced_channel(channel: Any) -> Any:
    # The blocking interceptor is of the instrumentation's own kind, applied its own way.
    from opentelemetry.instrumentation.grpc import client_interceptor
    from opentelemetry.instrumentation.grpc.grpcext import intercept_channel

    return intercept_channel(channel, client_interceptor())


def current_traceparent() -> str:
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def _ns(run_time: Any) -> int | None:
    return None if run_time is None else int(run_time.timestamp() * 1e9)


class RunSpans:
    """A span per run a worker executed, recorded once it ended (its start and end as
    measured, so nothing is added between the due time and the executor's call), as a child of
    the span that submitted the job when the job carries one."""

    def __init__(self, worker_id: str, provider: trace.TracerProvider | None = None) -> None:
        self._worker_id = worker_id
        self._tracer = trace.get_tracer("hourglass_worker", tracer_provider=provider)  # default: the global one

    def record(self, job: Job, run: Run, shard: int, token: int) -> None:
        parent = _PROPAGATOR.extract({"traceparent": job.traceparent}) if job.traceparent else None
        span = self._tracer.start_span(
            f"run {job.executor}",
            context=parent,
            kind=SpanKind.CONSUMER,
            start_time=_ns(run.started_at),
            attributes={
                "hourglass.namespace": job.namespace,
                "hourglass.job.id": job.id,
                "hourglass.job.name": job.name,
                "hourglass.run.id": run.run_id,
                "hourglass.run.attempt": run.attempt,
                "hourglass.run.status": run.status.value,
                "hourglass.run.due": run.due.isoformat(),
                "hourglass.executor": job.executor,
                "hourglass.shard": shard,
                "hourglass.worker.id": self._worker_id,
                "hourglass.fencing_token": token,
            },
        )
        if run.status in _FAILED:
            span.set_status(Status(StatusCode.ERROR, run.error[:200]))
        span.end(end_time=_ns(run.ended_at))
