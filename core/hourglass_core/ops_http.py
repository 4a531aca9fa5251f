"""A process's operations port (`metrics_listen`): plain HTTP, read-only.

    GET /metrics   Prometheus text format: this process's registry
    GET /healthz   200 "ok", or 503 with what is wrong (for probes that speak HTTP, not gRPC)

Served from a thread of its own: a scrape neither waits for the event loop nor makes it wait
(beyond the GIL while the text is written).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import REGISTRY, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

Health = Callable[[], tuple[bool, str]]  # (healthy, why not)
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not news


class _Server(ThreadingWSGIServer):  # type: ignore[misc]  # untyped base
    daemon_threads = True


class _Server6(_Server):
    address_family = socket.AF_INET6


def split_address(listen: str, setting: str = "metrics_listen", example: str = "127.0.0.1:9464") -> tuple[str, int]:
    """("host", port) of "host:port" or "[v6]:port"; ValueError naming the setting otherwise."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise ValueError(f"{setting} {listen!r}: expected host:port, e.g. {example}")
    return host.strip("[]"), int(port)


class OpsServer:
    def __init__(self, listen: str, health: Health) -> None:
        self._host, self._port = split_address(listen)
        self._health = health
        self._metrics = make_wsgi_app(REGISTRY)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def _app(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            return self._metrics(environ, start_response)  # type: ignore[no-any-return]
        if path == "/healthz":
            ok, why = self._health()
            start_response("200 OK" if ok else "503 Service Unavailable", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"ok\n" if ok else f"unhealthy: {why}\n".encode()]
        start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
        return [b"not found: try /metrics or /healthz\n"]

    @property
    def port(self) -> int:
        """The port listened on (the one asked for, or the one picked for port 0)."""
        return int(self._server.server_address[1]) if self._server is not None else self._port

    def start(self) -> None:
        """Raises OSError naming the address if it cannot listen there."""
        kind = _Server6 if ":" in self._host else _Server
        try:
            self._server = make_server(self._host, self._port, self._app, kind, _Quiet)
        except OSError as error:
            raise OSError(f"cannot listen on {self._host}:{self._port} for metrics: {error.strerror or error} "
                          "(metrics_listen: another address, or empty for none)") from None
        self._thread = threading.Thread(target=self._server.serve_forever, name="ops-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
