"""Runs a coordinator and workers in one process on SQLite and in-process leases."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path

from hourglass_coordinator.server import serve
from hourglass_core import logs
from hourglass_core.config import Settings, from_env
from hourglass_core.leases.memory import MemoryLeases, MemoryMembership
from hourglass_core.store.factory import open_store
from hourglass_core.store.measured import measured
from hourglass_core.store.migrate import initialise
from hourglass_worker.main import run_worker

log = logging.getLogger("hourglass.dev")
DEFAULT_DB = ".hourglass/dev.db"
# Prometheus' conventional port for an exporter of one's own; loopback only, as the API.
DEV_METRICS = "127.0.0.1:9464"
DEV_HTTP = "127.0.0.1:7080"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", default=DEFAULT_DB, help=f"SQLite file for jobs and runs (default {DEFAULT_DB})")
    parser.add_argument("--listen", default=None, help="gRPC address (default 127.0.0.1:7070)")
    parser.add_argument("--workers", type=int, default=2, help="worker count (default 2)")
    parser.add_argument("--metrics-listen", default=None,
                        help=f"HTTP address of /metrics and /healthz (default {DEV_METRICS}; '' for none)")
    parser.add_argument("--http", default=None, help=f"address of the web dashboard (default {DEV_HTTP}; '' for none)")
    parser.add_argument("--log-format", choices=["console", "json"], default=None,
                        help="log lines as text or one JSON object per line (default $HOURGLASS_LOG_FORMAT or console)")
    parser.add_argument("--demo", action="store_true", help="schedule sample jobs and show a live view")
    parser.add_argument("--demo-seconds", type=float, default=0, help="stop the demo after this long (0: run until Ctrl-C)")


def dev_settings(args: argparse.Namespace) -> Settings:
    base = from_env(Settings(num_shards=8, metrics_listen=DEV_METRICS, http_listen=DEV_HTTP))
    listen = args.listen or base.listen
    return replace(
        base,
        store=f"sqlite:///{Path(args.db).resolve()}",
        coordination="memory://",
        listen=listen,
        coordinator=listen,
        metrics_listen=base.metrics_listen if args.metrics_listen is None else args.metrics_listen,
        http_listen=base.http_listen if args.http is None else args.http,
        log_format=args.log_format or base.log_format,
        # One process: nothing can pause independently, so leases can be short.
        read_margin=base.read_margin,
    )


@asynccontextmanager
async def embedded(settings: Settings, workers: int, stop: asyncio.Event | None = None) -> AsyncIterator[None]:
    """A coordinator and `workers` workers in this event loop, on the settings' SQLite store
    (migrated first) and in-process leases, serving the API on settings.listen until the block
    ends; then everything stops gracefully (workers first, so their results are written)."""
    store = measured(await open_store(settings.store))
    await initialise(store, settings.num_shards)
    leases, membership = MemoryLeases(), MemoryMembership(dead_retention=settings.dead_worker_retention)
    backends = (store, leases, membership)
    stop = stop or asyncio.Event()
    ready = asyncio.Event()
    coordinator_stop = asyncio.Event()
    coordinator = asyncio.create_task(serve(settings, backends=backends, ready=ready, stop=coordinator_stop), name="coordinator")
    started = asyncio.create_task(ready.wait())
    await asyncio.wait({coordinator, started}, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():  # it refused to start (e.g. asked to listen unsecured beyond loopback)
        started.cancel()
        await asyncio.gather(membership.close(), leases.close(), store.close())
        coordinator.result()
    running = [
        asyncio.create_task(
            # The coordinator's metrics port serves the whole process: the workers' metrics too.
            run_worker(replace(settings, worker_id=f"dev-worker-{i + 1}", metrics_listen=""), backends=backends, stop=stop),
            name=f"worker-{i + 1}",
        )
        for i in range(workers)
    ]
    try:
        yield
    finally:
        stop.set()
        await asyncio.gather(*running, return_exceptions=True)
        coordinator_stop.set()
        await asyncio.gather(coordinator, return_exceptions=True)
        await membership.close()
        await leases.close()
        await store.close()


async def run(args: argparse.Namespace) -> int:
    settings = dev_settings(args)
    Path(args.db).parent.mkdir(parents=True, exist_ok=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with embedded(settings, args.workers, stop):
        print(f"Hourglass dev is running: gRPC API on {settings.listen}, store {args.db}, {args.workers} workers.")
        print(f"  try: hourglass --coordinator {settings.listen} list")
        dashboard = f"http://{settings.http_listen}/" if settings.http_listen else ""
        if dashboard:
            print(f"  dashboard: {dashboard}")
        if settings.metrics_listen:
            print(f"  metrics: http://{settings.metrics_listen}/metrics  health: http://{settings.metrics_listen}/healthz")
        demo: asyncio.Task[None] | None = None
        if args.demo:
            from hourglass_dev.demo import run_demo

            demo = asyncio.create_task(run_demo(settings.listen, args.demo_seconds, stop, dashboard))
        try:
            await stop.wait()
        finally:
            if demo is not None:
                demo.cancel()
                await asyncio.gather(demo, return_exceptions=True)
    return 0


def main(args: argparse.Namespace) -> int:
    try:
        logs.configure("warning" if args.demo else "info", dev_settings(args).log_format)
        return asyncio.run(run(args))
    except (ValueError, OSError) as error:  # a setting it cannot start with, a port it cannot have
        print(f"error: {error}", file=sys.stderr)
        return 2
