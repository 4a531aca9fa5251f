"""`hourglass ingest`: one process of a consumer group; run more of them to spread the
topic's partitions. Opens the backends as a coordinator does, submits through the same
JobsApi (validation, namespace policies, batched store writes, hints to the shards' owners),
and serves /metrics and /healthz with --metrics-listen."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Awaitable

from hourglass_coordinator.ingest.kafka import ConsumerThread, Publisher, consumer_config, parse_options, producer_config
from hourglass_coordinator.ingest.loop import Ingest
from hourglass_coordinator.ingest.results import ResultsPublisher
from hourglass_coordinator.jobs import MAX_BATCH, JobsApi
from hourglass_coordinator.server import replica_id
from hourglass_coordinator.worker_streams import WorkerStreams
from hourglass_core.backends import open_backends
from hourglass_core.config import Settings
from hourglass_core.credentials import redact
from hourglass_core.loop_lag import watch_loop_lag
from hourglass_core.ops_http import OpsServer
from hourglass_core.probe import BackendProbe

log = logging.getLogger(__name__)
SHUTDOWN_STEP_S = 10.0


def _names(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def check(settings: Settings) -> None:
    """Raises ValueError naming the setting that cannot work."""
    if not 1 <= settings.kafka_batch <= MAX_BATCH:
        raise ValueError(f"kafka_batch must be between 1 and {MAX_BATCH}")
    if not settings.kafka_topic or not settings.kafka_group or not settings.kafka_dead_letter_topic:
        raise ValueError("kafka_topic, kafka_group and kafka_dead_letter_topic must not be empty")
    if settings.kafka_dead_letter_topic in (settings.kafka_topic, settings.kafka_results_topic):
        raise ValueError("kafka_dead_letter_topic must differ from kafka_topic and kafka_results_topic")
    parse_options(settings.kafka_options)


async def run_ingest(settings: Settings, stop: asyncio.Event | None = None) -> None:
    """Until SIGINT/SIGTERM (or `stop`): the batch in hand is finished and committed, the
    group left, then the backends closed."""
    check(settings)
    extra = parse_options(settings.kafka_options)
    probe = BackendProbe({})
    ops = None
    if settings.metrics_listen:  # first: a port it cannot have stops the process before it reads anything
        ops = OpsServer(settings.metrics_listen, lambda: (probe.ok, probe.why()))
        ops.start()
    store, leases, membership = await open_backends(settings)
    # The coordinator's worker-stream hub, with no stream of its own: it follows the shard map
    # (hints for jobs due soon go to their shard's owner) and the run pointers (results).
    streams = WorkerStreams(replica_id().replace("coord-", "ingest-"), store, membership, num_shards=settings.num_shards,
                            heartbeat_interval=settings.heartbeat_interval, worker_timeout=settings.worker_timeout)  # fmt: skip
    api = JobsApi(store, num_shards=settings.num_shards, max_params_bytes=settings.max_params_bytes,
                  hint=streams.hint, hint_within=settings.lookahead)  # fmt: skip
    consumer = ConsumerThread(consumer_config(settings.kafka_brokers, settings.kafka_group, extra), settings.kafka_topic)
    ingest = Ingest(api, consumer, Publisher(producer_config(settings.kafka_brokers, extra)),
                    dead_letter_topic=settings.kafka_dead_letter_topic, batch=settings.kafka_batch,
                    namespaces=frozenset(_names(settings.kafka_namespaces)))  # fmt: skip
    probe = BackendProbe({"store": store.ping, "coordination": leases.ping})
    loops = [asyncio.create_task(streams.follow_shard_map(), name="shard-map"),
             asyncio.create_task(probe.run(), name="health-probe"),
             asyncio.create_task(watch_loop_lag(), name="loop-lag")]  # fmt: skip
    if settings.kafka_results_topic:
        results = ResultsPublisher(streams.watch, store.get_job, Publisher(producer_config(settings.kafka_brokers, extra)),
                                   settings.kafka_results_topic)  # fmt: skip
        namespaces = _names(settings.kafka_results_namespaces)
        loops += [asyncio.create_task(streams.relay_hints(), name="hint-relay"),
                  asyncio.create_task(results.run(namespaces), name="results")]  # fmt: skip
    own_process = stop is None
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    log.info("ingest: %s -> %s (group %s, dead letters to %s%s; store %s)", settings.kafka_topic, settings.kafka_brokers,
             settings.kafka_group, settings.kafka_dead_letter_topic,
             f", results to {settings.kafka_results_topic}" if settings.kafka_results_topic else "",
             redact(settings.store))  # fmt: skip
    try:
        await ingest.run(stop)
    finally:
        log.info("ingest stopping")
        for task in loops:
            task.cancel()
        steps = [("background loops", asyncio.gather(*loops, return_exceptions=True)), ("leaving the group", consumer.close()),
                 ("membership", membership.close()), ("leases", leases.close()), ("store", store.close())]  # fmt: skip
        clean = [await _bounded(what, step) for what, step in steps]
        if ops is not None:
            ops.stop()
        log.info("ingest stopped")
        if own_process and not all(clean):
            # Everything it wrote is durable and every commit made: asyncio.run would wait on
            # the stuck step for ever, and a supervisor cannot tell a hung shutdown from work.
            logging.shutdown()
            os._exit(1)


async def _bounded(what: str, step: Awaitable[object], timeout: float = SHUTDOWN_STEP_S) -> bool:
    """Awaits one shutdown step for `timeout` at most (without waiting for it to take a
    cancellation, which a stuck step may never do); False, logged, if it did not finish."""
    task = asyncio.ensure_future(step)
    done, _ = await asyncio.wait({task}, timeout=timeout)
    if not done:
        task.cancel()
        log.warning("ingest: %s did not finish within %g s of the stop", what, timeout)
    return bool(done)
