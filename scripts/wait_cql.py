#!/usr/bin/env python3
"""Wait until a Cassandra node answers a real CQL query, then print its release version.

Usage: wait_cql.py [--host 127.0.0.1] [--port 9042] [--timeout 180] [--pid PID] [--password-file F]

It logs in as `hourglass` with the password in --password-file when that file exists. A node
that refuses the login answers all the same (it is up; its roles are scripts/cassandra_roles.py's
business): then "?" stands for the version.

Exit status: 0 when `SELECT release_version FROM system.local` succeeded (the version is printed
on stdout), 1 on timeout, 2 if --pid is given and that process died while we were waiting
(no point waiting for a node that crashed). With --timeout 0 it tries exactly once, which
scripts/services.sh uses to detect an already running node.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _refused_login(error: Exception) -> bool:
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    return isinstance(error, NoHostAvailable) and any(
        isinstance(e, AuthenticationFailed) for e in error.errors.values()
    )


def _query_once(host: str, port: int, password_file: str) -> str:
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    password = Path(password_file).read_text().strip() if password_file and Path(password_file).exists() else None
    cluster = Cluster(
        [host],
        port=port,
        auth_provider=PlainTextAuthProvider("hourglass", password) if password is not None else None,
        connect_timeout=3,
        control_connection_timeout=3,
        # Do not let the driver negotiate down from the newest protocol with warnings.
        protocol_version=5,
    )
    try:
        try:
            session = cluster.connect()
        except Exception as error:
            if _refused_login(error):
                return "?"
            raise
        row = session.execute("SELECT release_version FROM system.local", timeout=5).one()
        return str(row.release_version)
    finally:
        cluster.shutdown()


def wait_for(attempt: Callable[[], str], timeout: float, pid: int | None, what: str) -> int:
    """Calls `attempt` until it returns (printing what it returned: exit status 0), `timeout`
    seconds pass (1) or process `pid` dies (2); once only with timeout 0. Shared with
    scripts/wait_kafka.py."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            print(attempt())
            return 0
        except Exception as exc:  # noqa: BLE001 - NoHostAvailable, OperationTimedOut, ...: all mean "not yet"
            last_error = exc
        if pid is not None and not _alive(pid):
            print(f"{Path(sys.argv[0]).stem}: process {pid} exited before {what} answered", file=sys.stderr)
            return 2
        if time.monotonic() >= deadline:
            if timeout > 0:
                print(f"{Path(sys.argv[0]).stem}: no answer from {what} after {timeout:.0f}s: {last_error}", file=sys.stderr)
            return 1
        time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("HOURGLASS_CASSANDRA_PORT", "9042")))
    parser.add_argument("--timeout", type=float, default=180.0)
    parser.add_argument("--pid", type=int, default=None, help="give up early if this process exits")
    parser.add_argument("--password-file", default="", help="log in as hourglass with this password")
    args = parser.parse_args()

    # The driver logs every failed connection attempt at WARNING/ERROR; while waiting that is noise.
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)
    return wait_for(lambda: _query_once(args.host, args.port, args.password_file), args.timeout, args.pid,
                    f"CQL on {args.host}:{args.port}")


if __name__ == "__main__":
    sys.exit(main())
