"""The chaos harness's executor: records every call, so the harness counts lost and duplicated
fires where the job's code sees them (not only in Hourglass's own run records).

Workers load it with ``HOURGLASS_EXECUTORS=chaos_probe=benchmarks.chaos_probe:probe`` and append
to ``$HOURGLASS_CHAOS_DIR/exec-<pid>.tsv``. Each call writes one "S" (started) line before
anything else, with one unbuffered write, so a worker killed right after the call began has
still recorded it; a job with params {"sleep": s} then sleeps and writes an "E" (ended) line.
Fields: kind, job id, due (µs since the epoch), attempt, run id, wall clock (µs), worker id.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ENV_DIR = "HOURGLASS_CHAOS_DIR"
NAME = "chaos_probe"
SPEC = f"{NAME}=benchmarks.chaos_probe:probe"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_fd: int | None = None


def _out() -> int:
    global _fd
    if _fd is None:
        directory = Path(os.environ.get(ENV_DIR, "."))
        directory.mkdir(parents=True, exist_ok=True)
        _fd = os.open(directory / f"exec-{os.getpid()}.tsv", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    return _fd


def _line(kind: str, ctx: Any) -> None:
    due = (ctx.due - _EPOCH) // _US  # exact: a float timestamp can be 1 µs off
    worker = os.environ.get("HOURGLASS_WORKER_ID", str(os.getpid()))
    os.write(_out(), f"{kind}\t{ctx.job_id}\t{due}\t{ctx.attempt}\t{ctx.run_id}\t{time.time_ns() // 1000}\t{worker}\n".encode())


async def probe(ctx: Any) -> None:
    _line("S", ctx)
    if ctx.params.data:
        seconds = float(json.loads(ctx.params.data).get("sleep", 0))
        if seconds > 0:
            await asyncio.sleep(seconds)
            _line("E", ctx)


@dataclass(frozen=True, slots=True)
class Call:
    kind: str  # "S" started, "E" ended (sleeping jobs only)
    job_id: str
    due_us: int
    attempt: int
    run_id: str
    at_us: int
    worker: str


def read_calls(directory: Path) -> Iterator[Call]:
    """Every line under `directory` (a torn last line of a killed worker is skipped)."""
    for path in sorted(directory.glob("exec-*.tsv")):
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) != 7:
                continue
            try:
                yield Call(parts[0], parts[1], int(parts[2]), int(parts[3]), parts[4], int(parts[5]), parts[6])
            except ValueError:
                continue
