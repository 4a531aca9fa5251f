"""Log output of the servers: readable console lines or one JSON object per line.

Every module logs through the standard library (`logging.getLogger(__name__)`); structlog's
ProcessorFormatter renders those records, so nothing else changes where lines are written.
Fields a line carries beyond its message come as `extra={...}` (see `fire_fields`) and show as
keys of the JSON object, or as key=value pairs on the console.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from typing import Any, TextIO

import structlog

from hourglass_core.firing import run_id_for
from hourglass_core.models import Fire

FORMATS = ("console", "json")
# A line per fire at each step (worker: take, prepare, start, finish; coordinator: recorded), at
# DEBUG: off unless turned on (HOURGLASS_TRACE=1), without the driver's debug output that
# --log-level debug would add.
FIRE_LOGGERS = ("hourglass_worker.trace", "hourglass_coordinator.trace")


def _processors(fmt: str, colors: bool) -> list[Any]:
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(colors=colors, pad_event_to=0, pad_level=False, sort_keys=False)
    )
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,  # a traceback as one field, not many lines of JSON
        renderer,
    ]


def formatter(fmt: str, colors: bool = False) -> logging.Formatter:
    """A stdlib formatter rendering records as `fmt` ("console" or "json"): timestamp (UTC,
    ISO 8601), level, logger, event (the message) and the record's extra fields. Raises
    ValueError for another format."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.add_log_level,
            structlog.stdlib.add_logger_name,
            structlog.stdlib.ExtraAdder(),
            structlog.processors.TimeStamper(fmt="iso", utc=True),
        ],
        processors=_processors(fmt, colors),
    )


def configure(level: str, fmt: str, stream: TextIO | None = None) -> None:
    """Routes every logger's records to `stream` (stderr) in `fmt`, at `level` and above; the
    loggers of structlog itself render the same way. Replaces the root logger's handlers."""
    out = stream or sys.stderr
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter(fmt, colors=fmt == "console" and out.isatty()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.stdlib.filter_by_level,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )


def trace_fires() -> None:
    """Turns the per-fire lines of FIRE_LOGGERS on."""
    for name in FIRE_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG)


def fire_fields(job: str, run: str, shard: int, worker: str, token: int, due: datetime | None = None) -> dict[str, Any]:
    """The fields of a line about one fire, for `extra=`: build them only once the logger is
    known to be enabled for the line's level (`isEnabledFor`), since a dict per fire is a cost
    the firing path pays for nothing when the line is off."""
    fields: dict[str, Any] = {"job": job, "run": run, "shard": shard, "worker": worker, "token": token}
    if due is not None:
        fields["due"] = due.isoformat()
    return fields


def of_fire(fire: Fire, worker: str, token: int, run: str = "") -> dict[str, Any]:
    """`fire_fields` of a fire (its run: the attempt's run id, unless given); the same caveat."""
    run = run or run_id_for(fire.namespace, fire.job_id, fire.at, fire.attempt)
    return fire_fields(fire.job_id, run, fire.shard, worker, token, fire.due)
