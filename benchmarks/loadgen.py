"""Open-loop load generation over gRPC, in several processes, with HDR histograms.

Open loop: request i is *due* at ``t0 + i / rate`` whatever happened to earlier requests, and
its latency is measured from that intended time, not from when it was actually sent. A stall
anywhere (server, network, or this generator) therefore shows up in the latency instead of
silently lowering the offered rate (no coordinated omission). How late the generator itself
sent each request is recorded separately (``send_lag``), together with each process's CPU
use, so a reader can tell whether the generator was the limit.

An *operation* is named "package.module:function": a factory called in each generator process
as ``factory(stubs, params)`` that returns ``call(i) -> awaitable``. ``stubs`` are raw
``JobServiceStub`` objects, one per target address; request ``i`` goes to ``stubs[i % n]``
when the operation wants to spread load. Processes are started with the "spawn" method
(gRPC must not be forked after it started its threads).
"""

from __future__ import annotations

import asyncio
import importlib
import math
import multiprocessing as mp
import os
import queue
import resource
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from benchmarks.cluster import aio_channel
from hourglass_pb.v1 import jobs_pb2_grpc

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: anything slower is clamped
SIG_FIGS = 3  # whole-run histograms: 0.1 % precision
SECOND_SIG_FIGS = 2  # per-second histograms: 1 %, a fraction of the memory
NOT_SENT = "NOT_SENT_IN_FLIGHT_LIMIT"
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", 64 * 1024 * 1024),
    ("grpc.max_send_message_length", 64 * 1024 * 1024),
]
Call = Callable[[int], Awaitable[Any]]


def new_histogram(sig_figs: int = SIG_FIGS) -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, sig_figs)


def record(hist: HdrHistogram, seconds: float) -> None:
    hist.record_value(min(HIGHEST_US, max(LOWEST_US, round(seconds * 1e6))))


def percentiles_ms(hist: HdrHistogram) -> dict[str, float | int]:
    """count, mean, p50, p90, p99, p99.9, max (milliseconds)."""
    if hist.get_total_count() == 0:
        return {"count": 0}
    return {
        "count": hist.get_total_count(),
        "mean": round(hist.get_mean_value() / 1000, 3),
        "p50": hist.get_value_at_percentile(50) / 1000,
        "p90": hist.get_value_at_percentile(90) / 1000,
        "p99": hist.get_value_at_percentile(99) / 1000,
        "p99.9": hist.get_value_at_percentile(99.9) / 1000,
        "max": hist.get_max_value() / 1000,
    }


@dataclass(frozen=True)
class Load:
    """What to offer: `rate` calls/s of `op` for `duration` seconds, from `processes` processes."""

    op: str
    rate: float
    duration: float
    targets: tuple[str, ...]
    params: dict[str, Any] = field(default_factory=dict)
    processes: int = 1
    timeout_s: float = 10.0
    # Per process. Beyond it a due request is not sent and counts as an error (NOT_SENT_...): a
    # cluster that far behind is failing anyway, and a generator holding tens of thousands of
    # pending calls would itself fall behind its schedule.
    max_in_flight: int = 5_000
    collect: bool = False  # keep each call's return value (e.g. the ids of submitted jobs)
    label: str = ""

    @property
    def total(self) -> int:
        return max(1, round(self.rate * self.duration))


@dataclass
class Second:
    """One second of intended send time, merged over processes."""

    sent: int = 0
    ok: int = 0
    errors: int = 0
    latency: HdrHistogram = field(default_factory=lambda: new_histogram(SECOND_SIG_FIGS))


@dataclass
class LoadResult:
    load: Load
    wall_s: float
    ok: int
    errors: Counter[str]
    latency: HdrHistogram
    send_lag: HdrHistogram
    seconds: list[Second]
    cpu: list[dict[str, float]]  # per generator process: cpu_s, wall_s, percent, maxrss_mib
    collected: list[Any]
    last_done_s: float = 0.0  # when the last call completed, from the start of the schedule

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def achieved_rate(self) -> float:
        """Successful calls per second, over the offered window or, if the last answer came
        later (the server fell behind), up to that answer."""
        return self.ok / max(self.load.duration, self.last_done_s)

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures (latency in ms, measured from each call's intended send time)."""
        return {
            "op": self.load.op.rsplit(":", 1)[-1],
            "label": self.load.label,
            "offered_rate": self.load.rate,
            "duration_s": self.load.duration,
            "processes": self.load.processes,
            "requests": self.load.total,
            "ok": self.ok,
            "errors": self.error_count,
            "errors_by_code": dict(self.errors),
            "achieved_rate": round(self.achieved_rate, 1),
            "last_answer_s": round(self.last_done_s, 3),
            "latency_ms": percentiles_ms(self.latency),
            "send_lag_ms": percentiles_ms(self.send_lag),
            "generator_cpu": self.cpu,
            "generator_cpu_percent_total": round(sum(c["percent"] for c in self.cpu), 1),
        }

    def timeline(self) -> list[dict[str, Any]]:
        return [
            {
                "t": t,
                "sent": s.sent,
                "ok": s.ok,
                "errors": s.errors,
                **{k: v for k, v in percentiles_ms(s.latency).items() if k in ("p50", "p99", "max")},
            }
            for t, s in enumerate(self.seconds)
        ]


# -- the generator process -------------------------------------------------------------------


def resolve(name: str) -> Callable[..., Call]:
    module, _, attr = name.partition(":")
    factory: Callable[..., Call] = getattr(importlib.import_module(module), attr)
    return factory


class _Generator:
    """One process's share of the schedule: requests index, index + P, index + 2P, ..."""

    def __init__(self, load: Load, index: int, call: Call) -> None:
        self.load = load
        self.index = index
        self.call = call
        self.ok = 0
        self.errors: Counter[str] = Counter()
        self.latency = new_histogram()
        self.send_lag = new_histogram()
        self.seconds: dict[int, Second] = {}
        self.collected: list[Any] = []
        self.in_flight: set[asyncio.Task[None]] = set()
        self.last_done = 0.0  # perf_counter of the last completion

    def _second(self, i: int) -> Second:
        sec = int(i / self.load.rate)
        s = self.seconds.get(sec)
        if s is None:
            s = self.seconds[sec] = Second()
        return s

    async def _one(self, i: int, intended: float) -> None:
        record(self.send_lag, time.perf_counter() - intended)
        error: str | None = None
        try:
            result = await self.call(i)
            if self.load.collect:
                self.collected.append(result)
        except grpc.aio.AioRpcError as e:
            error = e.code().name
        except Exception as e:  # noqa: BLE001 - every failure is counted, none stops the run
            error = type(e).__name__
        done = time.perf_counter()
        self.last_done = max(self.last_done, done)
        elapsed = done - intended
        s = self._second(i)
        if error is None:
            self.ok += 1
            s.ok += 1
        else:
            self.errors[error] += 1
            s.errors += 1
        record(self.latency, elapsed)
        record(s.latency, elapsed)

    def _done(self, task: asyncio.Task[None]) -> None:
        self.in_flight.discard(task)

    async def run(self, t0: float) -> None:
        load, loop = self.load, asyncio.get_running_loop()
        step, total = load.processes, load.total
        i = self.index
        while i < total:
            now = time.perf_counter()
            while i < total and t0 + i / load.rate <= now:
                s = self._second(i)
                s.sent += 1
                if len(self.in_flight) >= load.max_in_flight:
                    self.errors[NOT_SENT] += 1
                    s.errors += 1
                else:
                    task = loop.create_task(self._one(i, t0 + i / load.rate))
                    self.in_flight.add(task)
                    task.add_done_callback(self._done)
                i += step
            if i < total:
                # Never skip the yield: completions must run even when we are behind.
                await asyncio.sleep(max(0.0, t0 + i / load.rate - time.perf_counter()))
        if self.in_flight:
            await asyncio.wait(set(self.in_flight), timeout=load.timeout_s + 5)


async def _child_main(load: Load, index: int, go: Any, start_wall: Any, out: Any) -> None:
    channels = [aio_channel(t, options=CHANNEL_OPTIONS) for t in load.targets]
    try:
        for channel in channels:
            await asyncio.wait_for(channel.channel_ready(), 30)
        stubs = [jobs_pb2_grpc.JobServiceStub(c) for c in channels]
        call = resolve(load.op)(stubs, {**load.params, "timeout": load.timeout_s})
        gen = _Generator(load, index, call)
        out.put(("ready", index, None))
        await asyncio.get_running_loop().run_in_executor(None, go.wait)
        # Every process converts the one wall-clock start into its own monotonic clock.
        t0 = time.perf_counter() + (start_wall.value - time.time())
        await asyncio.sleep(max(0.0, t0 - time.perf_counter()))
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await gen.run(t0)
        cpu_s, wall_s = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        for channel in channels:
            await channel.close()
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out.put(
        (
            "result",
            index,
            {
                "ok": gen.ok,
                "errors": dict(gen.errors),
                "latency": gen.latency.encode(),
                "send_lag": gen.send_lag.encode(),
                "seconds": {k: (v.sent, v.ok, v.errors, v.latency.encode()) for k, v in gen.seconds.items()},
                "cpu": {
                    "pid": os.getpid(),
                    "cpu_s": round(cpu_s, 3),
                    "wall_s": round(wall_s, 3),
                    "percent": round(100 * cpu_s / wall_s, 1) if wall_s else 0.0,
                    "maxrss_mib": round(maxrss_mib, 1),
                },
                "collected": gen.collected,
                "last_done_s": max(0.0, gen.last_done - t0),
            },
        )
    )


def _child(load: Load, index: int, go: Any, start_wall: Any, out: Any) -> None:
    try:
        asyncio.run(_child_main(load, index, go, start_wall, out))
    except BaseException as e:  # report, so the parent does not wait for nothing
        out.put(("failed", index, f"{type(e).__name__}: {e}"))
        raise


# -- the parent ----------------------------------------------------------------------------


def processes_for(rate: float, per_process: float = 1500.0, limit: int | None = None) -> int:
    """How many generator processes to spread `rate` over (one Python process comfortably
    drives ~1500 unary calls/s; more would make the generator the bottleneck)."""
    limit = limit or max(1, os.cpu_count() or 1) * 2
    return max(1, min(limit, math.ceil(rate / per_process)))


def run_load(load: Load, progress: Callable[[float], None] | None = None) -> LoadResult:
    """Runs `load` in `load.processes` spawned processes and merges what they measured.
    `progress(fraction)` is called about twice a second. Raises RuntimeError if a process fails."""
    ctx = mp.get_context("spawn")
    go, start_wall, out = ctx.Event(), ctx.Value("d", 0.0), ctx.Queue()
    procs = [
        ctx.Process(target=_child, args=(load, i, go, start_wall, out), daemon=True, name=f"loadgen-{i}")
        for i in range(load.processes)
    ]
    for p in procs:
        p.start()
    results: dict[int, dict[str, Any]] = {}
    try:
        ready, ready_by = 0, time.monotonic() + 120
        while ready < load.processes:
            try:
                kind, index, payload = out.get(timeout=0.5)
            except queue.Empty:
                dead = [p.name for p in procs if p.exitcode is not None]
                if dead or time.monotonic() > ready_by:
                    raise RuntimeError(f"load generators not ready (exited: {dead})") from None
                continue
            if kind == "failed":
                raise RuntimeError(f"load generator {index} failed: {payload}")
            ready += kind == "ready"
        start_wall.value = time.time() + 0.3
        go.set()
        begin = time.monotonic()
        deadline = begin + load.duration + load.timeout_s + 60
        while len(results) < load.processes:
            try:
                kind, index, payload = out.get(timeout=0.5)
            except queue.Empty:
                if progress is not None:
                    progress(min(1.0, (time.monotonic() - begin) / max(load.duration, 1e-9)))
                if time.monotonic() > deadline:
                    raise RuntimeError("load generators did not report in time") from None
                continue
            if kind == "failed":
                raise RuntimeError(f"load generator {index} failed: {payload}")
            if kind == "result":
                results[index] = payload
        wall_s = time.monotonic() - begin
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
    return _merge(load, wall_s, results)


def _merge(load: Load, wall_s: float, results: dict[int, dict[str, Any]]) -> LoadResult:
    latency, send_lag = new_histogram(), new_histogram()
    errors: Counter[str] = Counter()
    seconds: dict[int, Second] = {}
    ok = 0
    collected: list[Any] = []
    cpu = []
    last_done_s = 0.0
    for index in sorted(results):
        r = results[index]
        ok += r["ok"]
        errors.update(r["errors"])
        latency.add(HdrHistogram.decode(r["latency"]))
        send_lag.add(HdrHistogram.decode(r["send_lag"]))
        for sec, (sent, n_ok, n_err, enc) in r["seconds"].items():
            s = seconds.setdefault(sec, Second())
            s.sent += sent
            s.ok += n_ok
            s.errors += n_err
            s.latency.add(HdrHistogram.decode(enc))
        cpu.append(r["cpu"])
        collected.extend(r["collected"])
        last_done_s = max(last_done_s, r["last_done_s"])
    n = max(seconds, default=-1) + 1
    return LoadResult(
        load=load,
        wall_s=wall_s,
        ok=ok,
        errors=errors,
        latency=latency,
        send_lag=send_lag,
        seconds=[seconds.get(i, Second()) for i in range(n)],
        cpu=cpu,
        collected=collected,
        last_done_s=last_done_s,
    )
