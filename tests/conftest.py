"""Session-wide checks: the tests that claim to use Redis and Cassandra get the real ones.

`make test` starts both (scripts/services.sh). If either is unreachable, the tests that need it
fail with the reason; nothing is skipped.
"""

from __future__ import annotations

import os
import socket

import pytest


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


@pytest.fixture(scope="session")
def redis_up() -> None:
    _require("Redis", "127.0.0.1", int(os.environ.get("HOURGLASS_REDIS_PORT", "6379")))
