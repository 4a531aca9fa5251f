"""The Celery peer of the firing scenario: the same load on Celery 5 with ETA tasks and a Redis
broker, measured the same way, so the two stand side by side in one run.

Once-tasks due `rate` a second for `duration` seconds are sent `lead_s` ahead with an ETA (the
way Celery schedules a task for later); the worker (threads pool, on this machine) runs a probe
task that records when it was called. Lateness = call - due, lost = sent but never called,
duplicates = called more than once. Celery keeps ETA tasks in the worker's memory and the
broker's unacked set: nothing is stored durably the way Hourglass stores a job, so this is the
speed a scheduler without durable state gets here.

    python -m benchmarks.celery_peer --rate 1000 --duration 60
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
from celery import Celery  # type: ignore[import-untyped]
from hdrh.histogram import HdrHistogram  # type: ignore[import-untyped]

from benchmarks.loadgen import HIGHEST_US, LOWEST_US, percentiles_ms

ROOT = Path(__file__).resolve().parents[1]
QUEUE = "hourglass-peer"
OUT_ENV = "HOURGLASS_CELERY_OUT"
BROKER_ENV = "HOURGLASS_CELERY_BROKER"
DEFAULT_BROKER = "redis://127.0.0.1:6379/14"  # a database of its own: flushed before each run

app = Celery("hourglass_peer", broker=os.environ.get(BROKER_ENV, DEFAULT_BROKER))
app.conf.update(
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_prefetch_multiplier=0,  # ETA tasks are held by the worker anyway
    broker_transport_options={"visibility_timeout": 3600},
    worker_hijack_root_logger=False,
)
_out: int | None = None


@app.task(name="hourglass_peer.probe")  # type: ignore[untyped-decorator]
def probe(key: str, due_us: int) -> None:
    """Records the call first thing, like the Hourglass probe executor."""
    global _out
    now_us = time.time_ns() // 1000
    if _out is None:
        directory = Path(os.environ.get(OUT_ENV, "."))
        _out = os.open(directory / f"celery-{os.getpid()}.tsv", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.write(_out, f"{key}\t{due_us}\t{now_us}\n".encode())


def _calls(directory: Path) -> list[tuple[str, int, int]]:
    out = []
    for path in directory.glob("celery-*.tsv"):
        for line in path.read_text().splitlines():
            parts = line.split("\t")
            if len(parts) == 3:
                out.append((parts[0], int(parts[1]), int(parts[2])))
    return out


def run(rate: float, duration: float, lead_s: float = 10.0, grace_s: float = 60.0, broker: str = DEFAULT_BROKER,
        pool: str = "threads", workers: int = 8) -> dict[str, Any]:
    """Runs the peer once: starts a Celery worker, feeds it, waits, judges; stops it."""
    out_dir = Path(tempfile.mkdtemp(prefix="celery-peer-"))
    env = {**os.environ, OUT_ENV: str(out_dir), BROKER_ENV: broker, "PYTHONPATH": f"{ROOT}:{os.environ.get('PYTHONPATH', '')}"}
    app.conf.broker_url = broker
    with app.connection_for_write() as conn:
        conn.default_channel.client.flushdb()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "benchmarks.celery_peer", "worker", "-P", pool, "-c", str(workers),
         "-Q", QUEUE, "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "warning"],
        env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(out_dir / "worker.log").open("w"),
    )
    try:
        time.sleep(3.0)  # the worker connects
        proc = psutil.Process(worker.pid)
        redis = next((p for p in psutil.process_iter(["name"]) if p.info["name"] == "redis-server"), None)
        cpu0 = (sum(proc.cpu_times()[:2]), sum(redis.cpu_times()[:2]) if redis else 0.0, time.process_time())
        total = round(rate * duration)
        start_us = time.time_ns() // 1000 + int(lead_s * 1e6)
        interval_us = 1e6 / rate
        expected: dict[str, int] = {}
        began = time.monotonic()
        for i in range(total):
            due_us = start_us + int(i * interval_us)
            # Sent lead_s ahead of its due time, as the Hourglass feed submits its jobs.
            send_at = began + i / rate
            if (wait := send_at - time.monotonic()) > 0:
                time.sleep(wait)
            key = f"t{i}"
            expected[key] = due_us
            probe.apply_async((key, due_us), eta=datetime.fromtimestamp(due_us / 1e6, UTC))
        deadline = time.time() + (start_us / 1e6 + duration - time.time()) + grace_s
        while time.time() < deadline:
            if len({k for k, _, _ in _calls(out_dir)}) >= len(expected):
                break
            time.sleep(1.0)
        time.sleep(1.0)
        cpu1 = (sum(proc.cpu_times()[:2]), sum(redis.cpu_times()[:2]) if redis else 0.0, time.process_time())
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            worker.kill()
    calls = _calls(out_dir)
    counts = Counter(k for k, _, _ in calls)
    first: dict[str, int] = {}
    for key, due_us, at_us in sorted(calls, key=lambda c: c[2]):
        first.setdefault(key, at_us - due_us)
    hist = HdrHistogram(LOWEST_US, HIGHEST_US, 3)
    for key in expected:
        if key in first:
            hist.record_value(min(HIGHEST_US, max(LOWEST_US, first[key])))
    ran = len(first)
    cpu_ms = {
        "celery worker": round((cpu1[0] - cpu0[0]) * 1000 / max(ran, 1), 3),
        "redis": round((cpu1[1] - cpu0[1]) * 1000 / max(ran, 1), 3),
        "producer": round((cpu1[2] - cpu0[2]) * 1000 / max(ran, 1), 3),
    }
    lateness = percentiles_ms(hist)
    return {
        "figures": {"lateness_p50_ms": lateness.get("p50"), "lateness_p99_ms": lateness.get("p99"),
                    "lateness_p99.9_ms": lateness.get("p99.9"), "lateness_max_ms": lateness.get("max"),
                    "expected": len(expected), "lost": len(expected) - ran,
                    "duplicates": sum(n - 1 for n in counts.values() if n > 1)},
        "peer": f"Celery {__import__('celery').__version__}, ETA tasks, Redis broker, {pool} pool x{workers}",
        "params": {"rate": rate, "duration_s": duration, "lead_s": lead_s},
        "expected": len(expected), "ran": ran, "lost": len(expected) - ran,
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "lateness_ms": lateness, "cpu_ms_per_task": cpu_ms,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--broker", default=DEFAULT_BROKER)
    parser.add_argument("--pool", default="threads", help="the worker's pool (threads, solo, prefork)")
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args(argv)
    print(json.dumps(run(args.rate, args.duration, broker=args.broker, pool=args.pool, workers=args.concurrency), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
