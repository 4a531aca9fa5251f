"""Session-wide checks: the tests that claim to use Redis and Cassandra get the real ones.

`make test` starts both (scripts/services.sh). If either is unreachable, the tests that need it
fail with the reason; nothing is skipped.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pytest

from benchmarks.cassandra_login import cassandra_ca, password_file
from benchmarks.cluster import free_port
from benchmarks.secured_redis import SecuredRedis, start_secured_redis
from benchmarks.sentinel_set import SentinelSet


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def _require(name: str, host: str, port: int) -> None:
    if not _reachable(host, port):
        pytest.fail(f"{name} is not reachable on {host}:{port}; start it with `make services`", pytrace=False)


@pytest.fixture(scope="session")
def cassandra_up() -> None:
    host = os.environ.get("HOURGLASS_CASSANDRA_HOSTS", "127.0.0.1").split(",")[0]
    _require("Cassandra", host, int(os.environ.get("HOURGLASS_CASSANDRA_PORT", "9042")))
    if not password_file().exists():  # clients log in as `hourglass` (see benchmarks.cassandra_login)
        pytest.fail(f"{password_file()} is missing: this Cassandra was started before it authenticated; "
                    "restart it with `make services-stop services`", pytrace=False)  # fmt: skip


@pytest.fixture(scope="session")
def cassandra_tls(cassandra_up: None) -> str:
    """The store URL option that reaches the local Cassandra over TLS (it offers TLS on its
    one port, verified against the CA scripts/services.sh made)."""
    ca = cassandra_ca()
    if not ca.exists():
        pytest.fail(f"{ca} is missing: this Cassandra was started before it offered TLS; "
                    "restart it with `make services-stop services`", pytrace=False)  # fmt: skip
    return f"tls_ca_file={ca}"


@pytest.fixture(scope="session")
def redis_up() -> None:
    _require("Redis", "127.0.0.1", int(os.environ.get("HOURGLASS_REDIS_PORT", "6379")))


@pytest.fixture(scope="session")
def secured_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredRedis]:
    """A Redis of this run's own, as production runs it: TLS only, an ACL user with a password
    (read from a file), the default user off."""
    server = start_secured_redis(tmp_path_factory.mktemp("secured-redis"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def sentinel_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The coordination URL of a Redis Sentinel set of this run's own (a primary, a replica,
    three sentinels on free loopback ports)."""
    p = [free_port() for _ in range(5)]
    sentinels = SentinelSet(tmp_path_factory.mktemp("sentinel"), servers=(p[0], p[1]), sentinels=(p[2], p[3], p[4]))
    sentinels.start()
    yield sentinels.url
    sentinels.stop()
