"""The replica's grpc.health.v1 service: SERVING only while the store and Redis answer and the
replica is not shutting down.

The overall service ("") and the JobService report the same status: a replica whose backends
are away can refuse or fail every call, so load balancers and probes should pass it by.
"""

from __future__ import annotations

from grpc_health.v1 import health_pb2
from grpc_health.v1.health import aio as health_aio

from hourglass_coordinator.access import JOB_SERVICE

SERVICES = ("", JOB_SERVICE)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    def __init__(self) -> None:
        self.servicer = health_aio.HealthServicer()
        self.serving = False
        self.stopped = False

    async def start(self) -> None:
        """NOT_SERVING until the first probe found every backend answering (the servicer
        starts out SERVING)."""
        await self.set(False)

    async def set(self, ok: bool) -> None:
        """The probe's verdict (ignored once shutting down)."""
        if self.stopped:
            return
        self.serving = ok
        for service in SERVICES:
            await self.servicer.set(service, SERVING if ok else NOT_SERVING)

    async def stopping(self) -> None:
        """NOT_SERVING for good, before the server stops taking calls: watchers hear it while
        their streams are still open."""
        self.stopped = True
        self.serving = False
        await self.servicer.enter_graceful_shutdown()
