"""`open_store(url)`: a `Store` from the `store` setting.

    cassandra://host1,host2:9042/keyspace?rf=1&run_retention_days=7&bucket_seconds=60
    cassandra://h1,h2,h3/keyspace?replication=NetworkTopologyStrategy:datacenter1=3   (a ring; rf=N
                                            is SimpleStrategy:N, for one node)
    cassandra://user:password@host/keyspace     (or user@host/keyspace?password_file=/path)
    cassandra://host/keyspace?tls=1&tls_ca_file=/ca.pem[&tls_cert_file=..&tls_key_file=..]
    sqlite:///absolute/path/to/file.db      (three slashes: the path starts with '/';
                                             four, as SQLAlchemy writes it, mean the same)
    sqlite://relative/path.db               (relative to the working directory)
    sqlite://:memory:                       (in-process, gone at close)

The Cassandra driver is imported only for cassandra:// URLs, so processes that use SQLite
need not install it.
"""

from __future__ import annotations

import ssl
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from hourglass_core.credentials import login, redact, tls_context
from hourglass_core.store.base import Store
from hourglass_core.store.replication import Replication, parse_replication, simple

_CASSANDRA_TLS_FILES = {"tls_ca_file", "tls_cert_file", "tls_key_file"}
_CASSANDRA_OPTIONS = {"rf", "replication", "run_retention_days", "bucket_seconds", "password_file", "tls", "tls_check_hostname",
                      *_CASSANDRA_TLS_FILES}  # fmt: skip
_SQLITE_OPTIONS = {"run_retention_days"}


async def open_store(url: str, *, migrate: bool = False, replication: str | None = None) -> Store:
    """Connects to the store `url` names; with migrate=True also creates or upgrades its schema
    (otherwise call `migrate()` once per deployment before first use). `replication` (see
    replication.py) overrides the URL's for the keyspace a migration creates; Cassandra only.

    Raises ValueError for a URL this function does not understand (the message says what is
    accepted), Unavailable when the backend cannot be reached."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"store URL {redact(url)!r} has no scheme; {_EXPECTED}")
    if scheme == "cassandra":
        store: Store = await _open_cassandra(url, replication)
    elif replication is not None:
        raise ValueError(f"replication applies to cassandra:// stores, not {scheme}://")
    elif scheme == "sqlite":
        store = _open_sqlite(url, rest)
    else:
        raise ValueError(f"store URL {redact(url)!r}: unknown scheme {scheme!r}; {_EXPECTED}")
    if migrate:
        await store.migrate()
    return store


_EXPECTED = (
    "expected cassandra://[user[:password]@]host[,host...][:port]/keyspace[?rf=N|replication=R&run_retention_days=D"
    "&bucket_seconds=S&password_file=F&tls=1&tls_ca_file=F&tls_cert_file=F&tls_key_file=F&tls_check_hostname=1]"
    " or sqlite:///path/to/file.db or sqlite://:memory:"
)


def _options(url: str, query: str, allowed: set[str]) -> dict[str, str]:
    parsed = parse_qs(query, keep_blank_values=True, strict_parsing=False)
    unknown = set(parsed) - allowed
    if unknown:
        raise ValueError(f"store URL {redact(url)!r}: unknown option(s) {sorted(unknown)}; {_EXPECTED}")
    return {k: v[-1] for k, v in parsed.items()}


def _number(url: str, options: dict[str, str], name: str, default: float) -> float:
    if name not in options:
        return default
    try:
        value = float(options[name])
    except ValueError:
        raise ValueError(f"store URL {redact(url)!r}: {name} must be a number") from None
    if value <= 0:
        raise ValueError(f"store URL {redact(url)!r}: {name} must be positive")
    return value


async def _open_cassandra(url: str, replication: str | None) -> Store:
    parts = urlsplit(url)
    options = _options(url, parts.query, _CASSANDRA_OPTIONS)
    credentials, netloc = login(parts.netloc, options, "store URL")
    path = parts.path.strip("/")
    hosts_text, port = netloc, 9042
    if ":" in netloc.rsplit(",", 1)[-1]:  # the port follows the last host
        hosts_text, _, port_text = netloc.rpartition(":")
        if not port_text.isdigit():
            raise ValueError(f"store URL {redact(url)!r}: port {port_text!r} is not a number")
        port = int(port_text)
    hosts = [h for h in hosts_text.split(",") if h]
    if not hosts or not path or "/" in path:
        raise ValueError(f"store URL {redact(url)!r} needs hosts and one keyspace; {_EXPECTED}")
    chosen = _replication(url, options, replication)

    from hourglass_core.store.cassandra import CassandraStore  # needs cassandra-driver

    return await CassandraStore.connect(
        hosts,
        port,
        path,
        replication=chosen,
        run_retention=timedelta(days=_number(url, options, "run_retention_days", 7)),
        bucket=timedelta(seconds=_number(url, options, "bucket_seconds", 60)),
        login=credentials,
        tls=_cassandra_tls(url, options),
    )


def _replication(url: str, options: dict[str, str], override: str | None) -> Replication:
    """The replication asked for: `override`, else the URL's `replication`, else SimpleStrategy
    with the URL's `rf` (default 1)."""
    if "rf" in options and "replication" in options:
        raise ValueError(f"store URL {redact(url)!r}: give rf or replication, not both")
    if override is not None:
        return parse_replication(override)
    if "replication" in options:
        try:
            return parse_replication(options["replication"])
        except ValueError as exc:
            raise ValueError(f"store URL {redact(url)!r}: {exc}") from None
    rf = _number(url, options, "rf", 1)
    if rf != int(rf):
        raise ValueError(f"store URL {redact(url)!r}: rf must be a whole number")
    return simple(int(rf))


def _flag(url: str, options: dict[str, str], name: str) -> bool:
    value = options.get(name, "0").lower()
    if value not in {"0", "1", "true", "false", "yes", "no", ""}:
        raise ValueError(f"store URL {redact(url)!r}: {name} must be 1 or 0")
    return value in {"1", "true", "yes", ""}


def _cassandra_tls(url: str, options: dict[str, str]) -> ssl.SSLContext | None:
    """TLS when asked for (tls=1) or implied by a TLS file option."""
    if not (_flag(url, options, "tls") or _CASSANDRA_TLS_FILES & options.keys()):
        return None
    try:
        return tls_context(options.get("tls_ca_file", ""), options.get("tls_cert_file", ""),
                           options.get("tls_key_file", ""), check_hostname=_flag(url, options, "tls_check_hostname"))  # fmt: skip
    except (OSError, ValueError) as exc:
        raise ValueError(f"store URL {redact(url)!r}: TLS files: {exc}") from None


def _open_sqlite(url: str, rest: str) -> Store:
    target, _, query = rest.partition("?")
    options = _options(url, query, _SQLITE_OPTIONS)
    if target in (":memory:", "/:memory:"):
        target = ":memory:"
    elif target.startswith("//"):  # sqlite:////abs/path (SQLAlchemy's spelling) = sqlite:///abs/path
        target = "/" + target.lstrip("/")
    if not target:
        raise ValueError(f"store URL {redact(url)!r} names no file; {_EXPECTED}")

    from hourglass_core.store.sqlite import SqliteStore

    retention = timedelta(days=_number(url, options, "run_retention_days", 7))
    return SqliteStore(target, run_retention=retention)
