"""The benchmark's executor: records every execution, so the harness can count lost and
duplicated fires and measure lateness where the job's code sees it.

Workers load it with ``HOURGLASS_EXECUTORS=bench_probe=benchmarks.probe:probe`` and write to
``$HOURGLASS_BENCH_PROBE_DIR/probe-<pid>.tsv`` (one file per worker process, so no locking
between processes). Each line: job id, due (µs since the epoch), attempt, run id, the wall
clock at the start of the call (µs since the epoch). All processes share one machine and one
clock, so `called - due` is the lateness the job's code observes.

It is a coroutine executor (it runs on the worker's event loop, no thread hop) and it returns
nothing, so the run costs the scheduler only its own bookkeeping.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

ENV_DIR = "HOURGLASS_BENCH_PROBE_DIR"
NAME = "bench_probe"
SPEC = f"{NAME}=benchmarks.probe:probe"

FLUSH_EVERY_S = 0.2
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

_out: IO[str] | None = None


def _flush_periodically(loop: asyncio.AbstractEventLoop) -> None:
    if _out is not None:
        _out.flush()
    loop.call_later(FLUSH_EVERY_S, _flush_periodically, loop)


def _file() -> IO[str]:
    global _out
    if _out is None:
        directory = Path(os.environ.get(ENV_DIR, "."))
        directory.mkdir(parents=True, exist_ok=True)
        # Block-buffered (a write per run would cost a syscall each); flushed every 0.2 s
        # from the worker's loop, so the harness sees every execution shortly after it.
        _out = open(directory / f"probe-{os.getpid()}.tsv", "a", buffering=1 << 16)  # noqa: SIM115
        _flush_periodically(asyncio.get_running_loop())
    return _out


async def probe(ctx: Any) -> None:
    """Records (job id, due, attempt, run id, called at) for this run."""
    called = time.time_ns() // 1000
    due = (ctx.due - _EPOCH) // _US  # exact: a float timestamp can be 1 µs off
    _file().write(f"{ctx.job_id}\t{due}\t{ctx.attempt}\t{ctx.run_id}\t{called}\n")


@dataclass(frozen=True, slots=True)
class Execution:
    job_id: str
    due_us: int
    attempt: int
    run_id: str
    called_us: int

    @property
    def lateness_us(self) -> int:
        return self.called_us - self.due_us


def read_executions(directory: Path) -> Iterator[Execution]:
    """Every execution recorded under `directory` (torn last lines of a killed worker skipped)."""
    for path in sorted(directory.glob("probe-*.tsv")):
        with open(path) as f:
            for line in f:
                parts = line.rstrip("\n").split("\t")
                if len(parts) != 5:
                    continue
                try:
                    yield Execution(parts[0], int(parts[1]), int(parts[2]), parts[3], int(parts[4]))
                except ValueError:
                    continue
