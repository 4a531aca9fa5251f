"""The one place a Redis client is built from a coordination URL (leases, membership, the CLI,
the benchmarks): a standalone Redis or the primary that Redis Sentinel names.

    redis://[user:password@]host:port/db?...        rediss://... (TLS)     unix:///path.sock
    redis+sentinel://[user:password@]host:port[,host:port...]/service_name?db=0&...
    rediss+sentinel://...                                 (TLS to the sentinels and the servers)

Query options: `db`, `protocol`, `password_file`, the TLS files and checks (`ssl_ca_certs`,
`ssl_certfile`, `ssl_keyfile`, `ssl_cert_reqs`, `ssl_check_hostname`; only with TLS), and for
Sentinel `sentinel_username` / `sentinel_password_file` (the sentinels' own login, when they
require one; the URL's user and password are the servers').

Through Sentinel, every new connection asks a sentinel for the current primary; after a
failover, commands on connections to the old primary fail (connection refused, or READONLY
once it comes back as a replica), the client drops them and reconnects to the promoted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlsplit, urlunsplit

import redis
import redis.asyncio
import redis.asyncio.sentinel
import redis.sentinel
from redis.connection import parse_url

from hourglass_core.credentials import Login, login, read_secret, redact

PLAIN_SCHEMES = frozenset({"redis", "rediss", "unix"})
SENTINEL_SCHEMES = frozenset({"redis+sentinel", "rediss+sentinel"})
SCHEMES = PLAIN_SCHEMES | SENTINEL_SCHEMES

OPTIONS = frozenset({"db", "protocol", "ssl_ca_certs", "ssl_certfile", "ssl_keyfile", "ssl_cert_reqs",
                      "ssl_check_hostname", "password_file"})  # fmt: skip
SENTINEL_OPTIONS = frozenset({"sentinel_username", "sentinel_password_file"})


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """A parsed coordination URL. `address`: the URL redis-py connects to, without login
    (for Sentinel: `redis[s]://<service>/<db>?<options>`, only its options matter);
    `sentinels` empty for a standalone Redis."""

    address: str
    login: Login | None
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str = ""
    sentinel_login: Login | None = None


def parse_redis_url(url: str) -> RedisTarget:
    """Raises ValueError naming the URL (password redacted) and what is wrong: an unknown
    scheme or option, TLS options without TLS, a Sentinel URL without hosts or service, an
    unreadable password file."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(f"coordination URL {redact(url)!r}: unsupported scheme {parts.scheme!r}; "
                         f"expected one of {sorted(SCHEMES)}")  # fmt: skip
    sentinel = scheme in SENTINEL_SCHEMES
    options = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = options.keys() - OPTIONS - (SENTINEL_OPTIONS if sentinel else frozenset())
    if unknown:
        accepted = sorted(OPTIONS | (SENTINEL_OPTIONS if sentinel else frozenset()))
        raise ValueError(f"coordination URL {redact(url)!r}: unknown option(s) {sorted(unknown)}; accepted: {accepted}")
    tls = scheme.startswith("rediss")
    tls_options = sorted(k for k in options if k.startswith("ssl_"))
    if tls_options and not tls:
        raise ValueError(f"coordination URL {redact(url)!r}: {tls_options} need TLS: rediss:// or rediss+sentinel://")
    netloc = parts.netloc
    if netloc.startswith(":") or ("password_file" in options and "@" not in netloc):
        netloc = "default" + (netloc if netloc.startswith(":") else "@" + netloc)  # Redis's own user
    login_, hosts = login(netloc, options, "coordination URL")
    server_options = {k: v for k, v in options.items() if k in OPTIONS and k != "password_file"}
    if not sentinel:
        return RedisTarget(urlunsplit(parts._replace(netloc=hosts, query=urlencode(server_options))), login_)
    service = unquote(parts.path.strip("/"))
    if not service or "/" in service:
        raise ValueError(f"coordination URL {redact(url)!r}: name the Sentinel service as the path: "
                         "redis+sentinel://host:port[,host:port...]/service_name")  # fmt: skip
    sentinels = tuple(_host_port(h, url) for h in hosts.split(",") if h)
    if not sentinels:
        raise ValueError(f"coordination URL {redact(url)!r}: no sentinel host:port")
    sentinel_login = None
    if "sentinel_password_file" in options or "sentinel_username" in options:
        password = read_secret(options["sentinel_password_file"], "coordination URL: sentinel_password_file") \
            if "sentinel_password_file" in options else ""  # fmt: skip
        sentinel_login = Login(options.get("sentinel_username") or "default", password)
    db = server_options.pop("db", "0")
    address = urlunsplit(("rediss" if tls else "redis", "sentinel", f"/{db}", urlencode(server_options), ""))
    return RedisTarget(address, login_, sentinels, service, sentinel_login)


def _host_port(text: str, url: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"coordination URL {redact(url)!r}: sentinel {text!r} is not host:port")
    return host.strip("[]"), int(port)


def _login_kwargs(who: Login | None) -> dict[str, Any]:
    if who is None:
        return {}
    return {"username": who.username, "password": who.password} if who.password else {"username": who.username}


def _sentinel_parts(target: RedisTarget, kwargs: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the servers' connection options, the sentinels') for redis-py's `Sentinel`."""
    parsed: dict[str, Any] = parse_url(target.address)  # type: ignore[no-untyped-call]
    server = {k: v for k, v in parsed.items() if k not in ("host", "port", "path", "connection_class")}
    tls = target.address.startswith("rediss")
    if tls:
        server["ssl"] = True
    server.update(_login_kwargs(target.login), **kwargs)
    # The sentinels: the servers' timeouts and TLS, their own login.
    sentinel = {k: v for k, v in server.items() if k.startswith(("socket_", "ssl"))}
    sentinel.update(_login_kwargs(target.sentinel_login))
    return server, sentinel


class AsyncRedis:
    """An asyncio client of the URL's Redis (the current primary, through Sentinel), and what
    must be closed with it."""

    def __init__(self, url: str, **kwargs: Any) -> None:
        """`kwargs`: redis-py connection options (timeouts, retry, decode_responses, ...)."""
        target = parse_redis_url(url)
        self.sentinel: redis.asyncio.sentinel.Sentinel | None = None
        if not target.sentinels:
            self.client: redis.asyncio.Redis = redis.asyncio.Redis.from_url(
                target.address, **_login_kwargs(target.login), **kwargs
            )
            return
        server, sentinel_kwargs = _sentinel_parts(target, kwargs)
        self.sentinel = redis.asyncio.sentinel.Sentinel(target.sentinels, sentinel_kwargs=sentinel_kwargs)
        self.client = self.sentinel.master_for(target.service, redis_class=redis.asyncio.Redis, **server)

    async def aclose(self) -> None:
        await self.client.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()


def sync_client(url: str, **kwargs: Any) -> redis.Redis:
    """A blocking client of the URL's Redis (the primary, through Sentinel): for tools and
    benchmarks. Closing it leaves the sentinels' connections to the garbage collector."""
    target = parse_redis_url(url)
    if not target.sentinels:
        return redis.Redis.from_url(target.address, **_login_kwargs(target.login), **kwargs)
    server, sentinel_kwargs = _sentinel_parts(target, kwargs)
    sentinels = redis.sentinel.Sentinel(target.sentinels, sentinel_kwargs=sentinel_kwargs)
    client: redis.Redis = sentinels.master_for(target.service, redis_class=redis.Redis, **server)
    return client
