"""Opt-in tracing (OpenTelemetry), turned on by the standard OTEL_* variables.

Off unless OTEL_TRACES_EXPORTER names an exporter (`otlp`, `console`) or an OTLP endpoint is set
(OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT); OTEL_SDK_DISABLED=true or
OTEL_TRACES_EXPORTER=none keeps it off. Off, nothing of OpenTelemetry is imported and every
hook here answers "nothing" at the cost of a global read; on, `tracing_otel` does the work.

What is traced: the coordinator's RPCs (server spans, parented by the caller's `traceparent`),
the SDK's calls (client spans), and each run a worker executes, as a child of the span that
submitted its job (the submit's W3C traceparent is stored with the job).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hourglass_core.tracing_otel import RunSpans

log = logging.getLogger(__name__)
_on: bool | None = None  # None: not decided yet in this process


def wanted(environ: Mapping[str, str] | None = None) -> bool:
    """Whether the OTEL_* variables ask for traces (see the module's docstring)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def setup(service: str) -> bool:
    """Turns tracing on in this process if the variables ask for it (once; later calls answer
    the same): a tracer provider named `service` (unless OTEL_SERVICE_NAME names it) with the
    exporters asked for, unless the application installed a provider of its own. Returns
    whether tracing is on. Raises ValueError for an exporter or protocol it cannot serve."""
    global _on
    if _on is None:
        if not wanted():
            _on = False
        else:
            try:
                from hourglass_core import tracing_otel

                tracing_otel.install(service)
                _on = True
            except ImportError as error:
                log.warning("OTEL_* variables ask for traces, but %s: pip install 'hourglass-scheduler[tracing]'", error)
                _on = False
    return _on


def on() -> bool:
    """Whether `setup` turned tracing on in this process."""
    return bool(_on)


def server_interceptors(service: str) -> list[Any]:
    """The grpc.aio server interceptors that trace each call (none while off)."""
    if not setup(service):
        return []
    from hourglass_core import tracing_otel

    return [tracing_otel.server_interceptor()]


def aio_client_interceptors(service: str = "hourglass-client") -> list[Any]:
    """The grpc.aio client interceptors that trace each call of a channel (none while off)."""
    if not setup(service):
        return []
    from hourglass_core import tracing_otel

    return tracing_otel.aio_client_interceptors()


def traced_channel(channel: Any, service: str = "hourglass-client") -> Any:
    """`channel` (a blocking grpc.Channel), tracing each call while tracing is on."""
    if not setup(service):
        return channel
    from hourglass_core import tracing_otel

    return tracing_otel.traced_channel(channel)


def traceparent() -> str:
    """The W3C traceparent of the span current in this context ("" while off or outside one)."""
    if not _on:
        return ""
    from hourglass_core import tracing_otel

    return tracing_otel.current_traceparent()


def run_spans(service: str, worker_id: str) -> RunSpans | None:
    """What records a span per run on this worker; None while off."""
    if not setup(service):
        return None
    from hourglass_core import tracing_otel

    return tracing_otel.RunSpans(worker_id)
