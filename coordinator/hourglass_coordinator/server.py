"""A coordinator replica: client API, worker streams, and a campaign for leadership."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import uuid
from datetime import UTC, datetime

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2

from hourglass_coordinator.access import AccessInterceptor, unsecured_exposure
from hourglass_coordinator.admission import Admission, method_kinds
from hourglass_coordinator.cluster_api import ClusterApi
from hourglass_coordinator.dashboard.app import Services
from hourglass_coordinator.dashboard.lateness import LatenessWindow
from hourglass_coordinator.dashboard.server import DashboardServer, check_exposure
from hourglass_coordinator.guard import RequestGuard
from hourglass_coordinator.health import Health
from hourglass_coordinator.job_service import JobService
from hourglass_coordinator.jobs import JobsApi
from hourglass_coordinator.leader import Leader
from hourglass_coordinator.metrics import RpcMetrics
from hourglass_coordinator.presence import announce
from hourglass_coordinator.read_cache import ReadCache
from hourglass_coordinator.worker_identity import identify_by
from hourglass_coordinator.worker_streams import WorkerStreams
from hourglass_core import gc_tuning, tracing
from hourglass_core.auth import TrustedKeys, Verifier
from hourglass_core.backends import Backends, open_backends
from hourglass_core.config import Settings
from hourglass_core.credentials import redact
from hourglass_core.leases.base import ReplicaInfo
from hourglass_core.loop_lag import watch_loop_lag
from hourglass_core.ops_http import OpsServer
from hourglass_core.probe import BackendProbe
from hourglass_core.tasks import cancel_all
from hourglass_core.tls import server_credentials
from hourglass_pb.v1 import jobs_pb2, jobs_pb2_grpc, worker_pb2, worker_pb2_grpc

log = logging.getLogger(__name__)
MAX_MESSAGE = 64 * 1024 * 1024
GRACE_S = 5.0


def replica_id() -> str:
    return f"coord-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


async def serve(
    settings: Settings,
    *,
    backends: Backends | None = None,
    ready: asyncio.Event | None = None,
    stop: asyncio.Event | None = None,
) -> None:
    """Runs one replica until SIGINT/SIGTERM (or cancellation). Opens the backends the
    settings name unless `backends` are given (the embedded mode shares its in-process ones)."""
    trusted = TrustedKeys.load(settings.auth_secret_file, settings.auth_public_key_file, settings.auth_jwks_file)
    tls = server_credentials(settings.tls_cert_file, settings.tls_key_file, settings.tls_client_ca_file)
    exposed = unsecured_exposure(settings.listen, tls is not None, trusted is not None)
    if exposed is not None and not settings.insecure:
        raise ValueError(exposed)
    if exposed is not None:
        log.warning("%s; going on (--insecure)", exposed.partition(":")[0])
    check_exposure(settings, trusted is not None)  # the dashboard's address, on the same terms
    rid = replica_id()
    started = datetime.now(UTC)
    owned = backends is None
    store, leases, membership = backends or await open_backends(settings)
    verifier = Verifier(trusted) if trusted is not None else None  # one cache of verified tokens
    cache = ReadCache(settings.read_cache_ttl.total_seconds())
    streams = WorkerStreams(
        rid,
        store,
        membership,
        num_shards=settings.num_shards,
        heartbeat_interval=settings.heartbeat_interval,
        worker_timeout=settings.worker_timeout,
        cache=cache,
        identify=identify_by(verifier, mutual_tls=bool(tls is not None and settings.tls_client_ca_file)),
    )
    api = JobsApi(
        store,
        num_shards=settings.num_shards,
        max_params_bytes=settings.max_params_bytes,
        hint=streams.hint,
        halt=streams.halt,
        announce_change=streams.announce_change,
        cache=cache,
        hint_within=settings.lookahead,
        backfill_max_range=settings.backfill_max_range,
        backfill_max_fires=settings.backfill_max_fires,
        backfill_rate=settings.backfill_rate,
    )
    leader = Leader(
        rid, leases, membership, store,
        num_shards=settings.num_shards, ttl=settings.leader_ttl, settle=settings.worker_timeout,
        known_map=lambda: streams.shard_map, on_publish=streams.adopt,
    )  # fmt: skip
    server = _grpc_server(settings, verifier)
    health = Health()
    await health.start()
    cluster = ClusterApi(store, leases, membership, num_shards=settings.num_shards)
    jobs_pb2_grpc.add_JobServiceServicer_to_server(JobService(api, cluster, streams.watch), server)
    worker_pb2_grpc.add_WorkerServiceServicer_to_server(streams, server)
    health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
    # The schema, for grpcurl and grpcui: behind the same authentication as the API.
    reflection.enable_server_reflection([service.full_name for service in SERVICES], server)
    probe = BackendProbe({"store": store.ping, "coordination": leases.ping}, on_change=health.set)
    port = server.add_secure_port(settings.listen, tls) if tls is not None else server.add_insecure_port(settings.listen)
    if port == 0:
        raise OSError(f"cannot listen on {settings.listen}")
    ops = None
    if settings.metrics_listen:  # before the API opens: a port it cannot have stops the replica first
        ops = OpsServer(settings.metrics_listen, lambda: (health.serving, "shutting down" if health.stopped else probe.why()))
        ops.start()
        log.info("metrics on http://%s/metrics, health on /healthz", settings.metrics_listen)
    dashboard = None
    if settings.http_listen:  # as the metrics port: one it cannot have stops the replica
        dashboard = DashboardServer(settings, Services(api, cluster, streams.watch, LatenessWindow()), verifier)
        await dashboard.start()
        streams.on_recorded = dashboard.recorded
        log.info("dashboard on %s", dashboard.url)
    await server.start()
    log.info("coordinator %s listening on %s (store %s; %s, %s)", rid, settings.listen, redact(settings.store),
             "bearer tokens required" if trusted is not None else "no authentication",
             "plaintext" if tls is None else "mutual TLS" if settings.tls_client_ca_file else "TLS")  # fmt: skip
    loops = [
        asyncio.create_task(leader.run(), name="leader"),
        asyncio.create_task(streams.follow_shard_map(), name="shard-map"),
        asyncio.create_task(streams.relay_hints(), name="hint-relay"),
        asyncio.create_task(announce(membership, lambda: ReplicaInfo(rid, settings.listen, started, leader.since)),
                            name="presence"),
        asyncio.create_task(probe.run(), name="health-probe"),
        asyncio.create_task(watch_loop_lag(), name="loop-lag"),
    ]
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
    if owned:  # a process of its own
        gc_tuning.settle()
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("coordinator %s stopping", rid)
        await health.stopping()  # before the server stops taking calls
        await server.stop(GRACE_S)
        if dashboard is not None:
            await dashboard.stop()
        await cancel_all(loops)  # a lost cancel must not keep the process up
        if owned:
            await membership.close()
            await leases.close()
            await store.close()
        if ops is not None:
            ops.stop()
        log.info("coordinator %s stopped", rid)


SERVICES = [jobs_pb2.DESCRIPTOR.services_by_name["JobService"], worker_pb2.DESCRIPTOR.services_by_name["WorkerService"],
            health_pb2.DESCRIPTOR.services_by_name["Health"], reflection_pb2.DESCRIPTOR.services_by_name["ServerReflection"]]


def _grpc_server(settings: Settings, verifier: Verifier | None) -> grpc.aio.Server:
    return grpc.aio.server(
        # Outermost first: a call is traced (OTEL_* variables) as a whole; every call is timed;
        # calls beyond the limit are refused before anything else is done; the caller is
        # identified before its request is looked at.
        interceptors=[
            *tracing.server_interceptors("hourglass-coordinator"),
            RpcMetrics(),
            Admission(settings.max_concurrent_rpcs, method_kinds(SERVICES)),
            *([AccessInterceptor(verifier)] if verifier is not None else []),
            RequestGuard(),
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.so_reuseport", 1),
            ("grpc.keepalive_time_ms", 10_000),
            ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
