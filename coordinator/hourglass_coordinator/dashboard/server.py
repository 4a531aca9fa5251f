"""Serving the dashboard on `http_listen`, in the coordinator's event loop.

HTTPS with the coordinator's certificate when it has one (browsers do not present client
certificates, so the dashboard asks for none: its callers prove who they are with tokens). An
address beyond loopback needs TLS and tokens, as the gRPC listener does, unless --insecure.
"""

from __future__ import annotations

import logging
import ssl
from collections.abc import Sequence

from aiohttp import web

from hourglass_coordinator.access import unsecured_exposure
from hourglass_coordinator.dashboard.app import Dashboard, Services
from hourglass_coordinator.dashboard.pages import ROUTES
from hourglass_coordinator.dashboard.session import Sessions
from hourglass_core.auth import Verifier
from hourglass_core.config import Settings
from hourglass_core.models import Run
from hourglass_core.ops_http import split_address

log = logging.getLogger(__name__)
# Open streams (the runs tail) are cut after this long when the coordinator stops.
SHUTDOWN_S = 1.0


def _ssl(settings: Settings) -> ssl.SSLContext | None:
    if not settings.tls_cert_file:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


def check_exposure(settings: Settings, tokens: bool) -> None:
    """Raises ValueError when the dashboard may not listen on settings.http_listen: beyond
    loopback without TLS and tokens (as the gRPC listener), unless settings.insecure, which
    only warns."""
    if not settings.http_listen:
        return
    split_address(settings.http_listen, "http_listen", "127.0.0.1:7080")
    exposed = unsecured_exposure(settings.http_listen, bool(settings.tls_cert_file), tokens)
    if exposed is not None and not settings.insecure:
        raise ValueError(f"dashboard: {exposed}")
    if exposed is not None:
        log.warning("dashboard: %s; going on (--insecure)", exposed.partition(":")[0])


class DashboardServer:
    def __init__(self, settings: Settings, services: Services, verifier: Verifier | None) -> None:
        self._host, self._port = split_address(settings.http_listen, "http_listen", "127.0.0.1:7080")
        self._ssl = _ssl(settings)
        self._lateness = services.lateness
        self._app = Dashboard(services, Sessions(verifier), tls=self._ssl is not None).app(ROUTES)
        self._runner = web.AppRunner(self._app, access_log=None, handle_signals=False)
        self.url = f"{'https' if self._ssl else 'http'}://{settings.http_listen}/"

    def recorded(self, runs: Sequence[Run]) -> None:
        """Runs this replica just made durable: counted for the lateness chart."""
        self._lateness.add(runs)

    async def start(self) -> None:
        """Raises OSError naming the address if it cannot listen there."""
        await self._runner.setup()
        site = web.TCPSite(self._runner, self._host, self._port, ssl_context=self._ssl, shutdown_timeout=SHUTDOWN_S)
        try:
            await site.start()
        except OSError as error:
            await self._runner.cleanup()
            raise OSError(f"cannot listen on {self._host}:{self._port} for the dashboard: {error.strerror or error} "
                          "(http_listen: another address, or empty for none)") from None

    async def stop(self) -> None:
        await self._runner.cleanup()
