"""The `http` executor, guarded: a job's params choose the URL, so by default it may reach only
public addresses (never loopback, private, link-local — cloud metadata endpoints among them —
multicast or reserved ones), checked on the addresses the name resolves to, which are then the
ones connected to (a name cannot resolve to a public address for the check and to a private one
for the call), and again on every redirect. An operator may limit it to a list of hosts, or
open private addresses (a test or an internal deployment). Its answer is capped in size and its
time by the job's timeout."""

from __future__ import annotations

import fnmatch
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from hourglass_worker.executors import ExecutorFailed, RunContext, params_json

MAX_REDIRECTS = 5
DEFAULT_TIMEOUT_S = 10.0
IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class HttpPolicy:
    """`allow_hosts`: host names or patterns ("*.example.com") it may call; empty: any host
    that resolves to allowed addresses. `allow_private`: loopback and private addresses too.
    `max_response_bytes`: a longer answer fails the run."""

    allow_hosts: tuple[str, ...] = ()
    allow_private: bool = False
    max_response_bytes: int = 1024 * 1024

    @classmethod
    def parse(cls, hosts: str, allow_private: bool, max_response_bytes: int) -> HttpPolicy:
        return cls(tuple(h.strip().lower() for h in hosts.split(",") if h.strip()), allow_private, max_response_bytes)

    def refusal(self, host: str, address: IpAddress) -> str | None:
        """Why calling `host` at `address` is refused; None if it is allowed."""
        if self.allow_hosts and not any(fnmatch.fnmatchcase(host.lower(), p) for p in self.allow_hosts):
            return f"host {host} is not in the http executor's allowed hosts"
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not self.allow_private and (not address.is_global or address.is_multicast):  # 224/4 counts as global
            return f"host {host} resolves to {address}, a non-public address"
        return None


def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        raise ExecutorFailed(f"cannot resolve {host}: {error}") from error
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to a checked address, verifying the certificate (and sending SNI) for the name."""

    def __init__(self, address: str, port: int, hostname: str, timeout: float) -> None:
        super().__init__(address, port, timeout=timeout, context=ssl.create_default_context())
        self._hostname = hostname

    def connect(self) -> None:
        sock = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self._hostname)  # type: ignore[attr-defined]


class HttpExecutor:
    """Calls params {"url", "method"="GET", "headers"={}, "body"=null, "timeout"=10}; returns
    {"status", "body", "elapsed_ms"}. A status of 400 or more fails the run."""

    def __init__(self, policy: HttpPolicy | None = None) -> None:
        self.policy = policy or HttpPolicy()

    def __call__(self, ctx: RunContext) -> dict[str, object]:
        p = params_json(ctx)
        url = str(p.get("url", ""))
        method = str(p.get("method", "GET")).upper()
        body = None if p.get("body") is None else str(p.get("body")).encode()
        headers = {str(k): str(v) for k, v in dict(p.get("headers") or {}).items()}  # type: ignore[call-overload]
        limit = float(p.get("timeout", DEFAULT_TIMEOUT_S))  # type: ignore[arg-type]
        if ctx.timeout is not None:
            limit = min(limit, ctx.timeout.total_seconds())
        started = time.monotonic()
        deadline = started + limit
        for _ in range(MAX_REDIRECTS + 1):
            status, location, text = self._once(method, url, headers, body, deadline)
            if status in (301, 302, 303, 307, 308) and location:
                url = urljoin(url, location)
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            if status >= 400:
                raise ExecutorFailed(f"HTTP {status}: {text[:1000]}")
            return {"status": status, "body": text, "elapsed_ms": round((time.monotonic() - started) * 1000, 1)}
        raise ExecutorFailed(f"more than {MAX_REDIRECTS} redirects")

    def _once(
        self, method: str, url: str, headers: dict[str, str], body: bytes | None, deadline: float
    ) -> tuple[int, str, str]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ExecutorFailed(f"params.url must be an http(s) URL, not {url[:200]!r}")
        host = parts.hostname
        port = parts.port or (443 if parts.scheme == "https" else 80)
        addresses = _resolve(host, port)
        for address in addresses:
            if (why := self.policy.refusal(host, address)) is not None:
                raise ExecutorFailed(f"request to {url[:200]} refused: {why}")
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ExecutorFailed("timed out")
        target = str(addresses[0])
        connection: http.client.HTTPConnection = (
            _PinnedHTTPSConnection(target, port, host, remaining) if parts.scheme == "https"
            else http.client.HTTPConnection(target, port, timeout=remaining)
        )  # fmt: skip
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        try:
            connection.request(method, path, body=body, headers={"Host": parts.netloc, **headers})
            response = connection.getresponse()
            data = response.read(self.policy.max_response_bytes + 1)
            if len(data) > self.policy.max_response_bytes:
                raise ExecutorFailed(f"the response is larger than {self.policy.max_response_bytes} bytes")
            if time.monotonic() > deadline:
                raise ExecutorFailed("timed out")
            return response.status, response.getheader("Location") or "", data.decode(errors="replace")
        except (OSError, http.client.HTTPException) as error:
            raise ExecutorFailed(f"request to {url[:200]} failed: {error}") from error
        finally:
            connection.close()

