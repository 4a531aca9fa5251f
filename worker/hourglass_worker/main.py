"""Starts a worker process from Settings."""

from __future__ import annotations

import asyncio
import logging
import os
import signal

from hourglass_core import gc_tuning, logs
from hourglass_core.backends import Backends, open_backends
from hourglass_core.config import Settings
from hourglass_core.loop_lag import watch_loop_lag
from hourglass_core.ops_http import OpsServer
from hourglass_core.probe import BackendProbe
from hourglass_worker.executors import load_executors
from hourglass_worker.http_executor import HttpExecutor, HttpPolicy
from hourglass_worker.identity import credential_name, unique_suffix, worker_id_for
from hourglass_worker.worker import Worker

log = logging.getLogger(__name__)


def _health(worker: Worker, probe: BackendProbe) -> tuple[bool, str]:
    """Healthy while its stream to a coordinator is up and the store answers."""
    why = [w for w in ("" if worker.link.connected.is_set() else "no coordinator stream", probe.why()) if w]
    return not why, "; ".join(why)


def new_worker_id(settings: Settings) -> str:
    """An id its credentials allow (see identity), unique to this process where they name a fleet."""
    return worker_id_for(credential_name(settings.token, settings.tls_client_cert_file), unique_suffix())


async def run_worker(
    settings: Settings,
    *,
    backends: Backends | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Runs one worker until SIGINT/SIGTERM or `stop`; then shuts down gracefully."""
    if os.environ.get("HOURGLASS_TRACE") or os.environ.get("HOURGLASS_TRACE_FIRES"):  # every fire's path, for debugging
        logs.trace_fires()
    http = HttpExecutor(HttpPolicy.parse(settings.http_allow_hosts, settings.http_allow_private,
                                         settings.http_max_response_bytes))  # fmt: skip
    executors = load_executors(settings.executors, http)
    owned = backends is None
    store, leases, membership = backends or await open_backends(settings)
    stop = stop or asyncio.Event()
    if owned:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    worker = Worker(settings.worker_id or new_worker_id(settings), settings, store, leases, membership, executors)
    probe, ops = BackendProbe({"store": store.ping}), None
    if settings.metrics_listen:
        ops = OpsServer(settings.metrics_listen, lambda: _health(worker, probe))
        ops.start()
        log.info("metrics on http://%s/metrics, health on /healthz", settings.metrics_listen)
    if owned:  # a process of its own
        gc_tuning.settle()
    log.info("worker %s starting (executors: %s)", worker.worker_id, ", ".join(sorted(executors)))
    probing = asyncio.create_task(probe.run(), name="health-probe") if ops is not None else None
    lag = asyncio.create_task(watch_loop_lag(), name="loop-lag")
    try:
        await worker.run(stop)
    finally:
        lag.cancel()
        if probing is not None:
            probing.cancel()
        if ops is not None:
            ops.stop()
        if owned:
            await membership.close()
            await leases.close()
            await store.close()
