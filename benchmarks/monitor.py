"""Watches the processes under test while a scenario runs: CPU share and memory of each
coordinator, worker, Cassandra and Redis process, and the machine's overall CPU use.

Peak RSS comes from two places: the highest RSS sampled during the scenario (every 0.5 s)
and the kernel's own high-water mark (VmHWM in /proc/PID/status, over the process's whole
life), so a short spike between samples is not missed.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]

MIB = 1024 * 1024


def vm_hwm_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MiB, or None if it cannot be read."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError):
        return None
    return None


def find_service_pids(cassandra_port: int = 9042, redis_port: int = 6379) -> dict[str, int]:
    """The Cassandra and Redis processes listening on these ports (a shared machine may run
    several of each), found read-only from the socket table; by command line as a fallback."""
    found: dict[str, int] = {}
    try:
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status != psutil.CONN_LISTEN or conn.pid is None:
                continue
            if conn.laddr.port == cassandra_port:
                found["cassandra"] = conn.pid
            elif conn.laddr.port == redis_port:
                found["redis"] = conn.pid
    except (psutil.Error, OSError):
        pass
    if len(found) == 2:
        return found
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        cmd = " ".join(proc.info.get("cmdline") or [])
        if "org.apache.cassandra.service.CassandraDaemon" in cmd:
            found.setdefault("cassandra", proc.info["pid"])
        elif (proc.info.get("name") or "").startswith("redis-server"):
            found.setdefault("redis", proc.info["pid"])
    return found


@dataclass
class _Track:
    proc: psutil.Process
    cpu0: float
    peak_rss: float = 0.0
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (t, cpu %, rss MiB)
    last_cpu: float = 0.0
    last_t: float = 0.0


class Monitor:
    """Samples the named processes every `interval` seconds in a background thread.
    Use as a context manager; `report()` afterwards."""

    def __init__(self, pids: dict[str, int], interval: float = 0.5) -> None:
        self._pids = pids
        self._interval = interval
        self._tracks: dict[str, _Track] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="monitor", daemon=True)
        self._t0 = 0.0
        self._wall = 0.0
        self._machine0: Any = None
        self._machine: Any = None
        self._harness0 = 0.0
        self._harness = 0.0
        self._all0: dict[int, tuple[float, str]] = {}
        self._others: list[dict[str, Any]] = []

    def __enter__(self) -> Monitor:
        self._t0 = time.monotonic()
        for name, pid in self._pids.items():
            try:
                proc = psutil.Process(pid)
                cpu = sum(proc.cpu_times()[:2])
                self._tracks[name] = _Track(proc, cpu, last_cpu=cpu, last_t=self._t0)
            except psutil.Error:
                continue
        self._machine0 = psutil.cpu_times()
        self._harness0 = _harness_cpu()
        self._all0 = _all_cpu()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()
        self._wall = time.monotonic() - self._t0
        self._machine = psutil.cpu_times()
        self._harness = _harness_cpu() - self._harness0
        mine = {t.proc.pid for t in self._tracks.values()} | {os.getpid()}
        after = _all_cpu()
        shares = sorted(
            ((round(100 * (cpu - self._all0[pid][0]) / self._wall, 1), pid, cmd)
             for pid, (cpu, cmd) in after.items() if pid in self._all0 and pid not in mine),
            reverse=True,
        )
        self._others = [{"pid": pid, "cmd": cmd, "cpu_percent_mean": pct} for pct, pid, cmd in shares if pct >= 5]

    def _sample(self) -> None:
        now = time.monotonic()
        for track in self._tracks.values():
            try:
                cpu = sum(track.proc.cpu_times()[:2])
                rss = track.proc.memory_info().rss / MIB
            except psutil.Error:
                continue
            dt = now - track.last_t
            pct = 100 * (cpu - track.last_cpu) / dt if dt > 0 else 0.0
            track.last_cpu, track.last_t = cpu, now
            track.peak_rss = max(track.peak_rss, rss)
            track.samples.append((round(now - self._t0, 2), round(pct, 1), round(rss, 1)))

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def report(self) -> dict[str, Any]:
        """Per process: mean and peak CPU % (100 = one core), peak RSS sampled here, VmHWM,
        and the samples; plus the whole machine's busy share over the scenario."""
        procs: dict[str, Any] = {}
        for name, track in self._tracks.items():
            cpus = [s[1] for s in track.samples[1:]] or [0.0]
            procs[name] = {
                "pid": track.proc.pid,
                "cpu_percent_mean": round(100 * (track.last_cpu - track.cpu0) / max(self._wall, 1e-9), 1),
                "cpu_percent_peak": max(cpus),
                "peak_rss_mib": round(track.peak_rss, 1),
                "vm_hwm_mib": vm_hwm_mib(track.proc.pid),
                "samples": track.samples,
            }
        machine: dict[str, Any] = {}
        wall = max(self._wall, 1e-9)
        harness = round(100 * self._harness / wall, 1)
        if self._machine0 is not None and self._machine is not None:
            a, b = self._machine0, self._machine
            total = sum(b) - sum(a)
            idle = (b.idle + getattr(b, "iowait", 0)) - (a.idle + getattr(a, "iowait", 0))
            cores = psutil.cpu_count() or 1
            busy = 100 * (1 - idle / total) if total > 0 else 0.0
            tracked = sum(p["cpu_percent_mean"] for p in procs.values())
            machine = {
                "busy_percent": round(busy, 1),
                "cores": cores,
                # In units of one core (100 = a whole core): what the system under test used,
                # what this harness and its load generators used, and everything else.
                "tracked_cpu_percent": round(tracked, 1),
                "harness_cpu_percent": harness,
                "other_cpu_percent": round(max(0.0, busy * cores - tracked - harness), 1),
                "other_busy_processes": self._others[:5],
            }
        return {"wall_s": round(self._wall, 2), "processes": procs, "machine": machine}


def _harness_cpu() -> float:
    """CPU seconds of this process and of its children that have been waited for (the
    load-generator processes, once joined)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def _all_cpu() -> dict[int, tuple[float, str]]:
    out = {}
    for proc in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
        times = proc.info.get("cpu_times")
        if times is not None:
            out[proc.info["pid"]] = (times.user + times.system, " ".join(proc.info.get("cmdline") or [])[:100])
    return out


def idle_rates(report: dict[str, Any]) -> dict[str, float]:
    """Mean CPU % of each process while no load was offered (the cluster's own background
    work: shard polling, heartbeats, checkpoints, other people's keyspaces)."""
    return {name: p["cpu_percent_mean"] for name, p in report.get("processes", {}).items()}


def cpu_cost(report: dict[str, Any], idle: dict[str, float], calls: int) -> dict[str, float]:
    """CPU milliseconds each process spent per call above its idle rate, and their total.
    Robust to a shared machine in a way latency is not: it says what a call costs, and so
    what two idle cores could sustain (2000 ms/s divided by the total)."""
    if calls <= 0:
        return {}
    wall = report.get("wall_s", 0.0)
    out = {}
    for name, p in report.get("processes", {}).items():
        extra_ms = (p["cpu_percent_mean"] - idle.get(name, 0.0)) / 100 * wall * 1000
        out[name] = round(max(0.0, extra_ms) / calls, 3)
    out["total"] = round(sum(out.values()), 3)
    return out


def busiest(report: dict[str, Any]) -> tuple[str, float]:
    """The process with the highest mean CPU % in a monitor report."""
    procs = report.get("processes", {})
    if not procs:
        return ("", 0.0)
    name = max(procs, key=lambda n: procs[n]["cpu_percent_mean"])
    return name, procs[name]["cpu_percent_mean"]


def others_load(exclude: set[int]) -> list[dict[str, Any]]:
    """Processes outside `exclude` that used noticeable CPU over the last second (other
    people's test runs on a shared machine)."""
    procs = []
    for proc in psutil.process_iter(["pid", "name", "cmdline"]):
        if proc.info["pid"] in exclude:
            continue
        try:
            proc.cpu_percent(None)
            procs.append(proc)
        except psutil.Error:
            continue
    time.sleep(1.0)
    busy = []
    for proc in procs:
        try:
            pct = proc.cpu_percent(None)
        except psutil.Error:
            continue
        if pct >= 10:
            busy.append({"pid": proc.pid, "name": proc.info["name"], "cpu_percent": pct,
                         "cmd": " ".join(proc.info.get("cmdline") or [])[:120]})
    return sorted(busy, key=lambda p: -p["cpu_percent"])
