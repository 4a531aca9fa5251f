#!/usr/bin/env python3
"""Make the local Cassandra node's logins: the role `hourglass` (what the tests and local runs
log in as) and a private password for the default superuser `cassandra`.

Usage: cassandra_roles.py --dir .services/cassandra --password-file F [--host 127.0.0.1] [--port 9042]
                          [--timeout 60] [--auth-replication DC:RF]

Idempotent: when `hourglass` logs in with the password in F, nothing is done. Otherwise the
step logs in as `cassandra` (with DIR/superuser.password, or the well-known default on a fresh
node: then that password is replaced by a random one, saved first, since anyone on the
machine knows the default) and creates or resets `hourglass`. Passwords are
random, written 0600, and never printed.

With --auth-replication (a ring: `datacenter1:3`), the keyspace system_auth is replicated with
NetworkTopologyStrategy DC:RF before the roles are written, so every node holds every login
(by default it has one replica: losing that node would lose the roles).

Exit status: 0 when `hourglass` logs in; 1 when it could not be made so within --timeout; 3
when the node lets clients in without a login (a node started before authentication was
configured: restart it with `scripts/services.sh stop && scripts/services.sh start`).
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import sys
import time
from pathlib import Path
from typing import Any

USER = "hourglass"
SUPERUSER = "cassandra"
DEFAULT_SUPERUSER_PASSWORD = "cassandra"


def _secret(path: Path) -> str:
    """The password in `path`, made (random, 0600) if the file is missing."""
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(secrets.token_urlsafe(24) + "\n")
    return path.read_text().strip()


def _session(host: str, port: int, user: str | None, password: str = "") -> Any:
    """A session logged in as `user` (None: no login); raises the driver's error otherwise."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import Cluster

    auth = PlainTextAuthProvider(user, password) if user is not None else None
    cluster = Cluster([host], port=port, auth_provider=auth, protocol_version=5, connect_timeout=5,
                      control_connection_timeout=5)  # fmt: skip
    try:
        return cluster.connect()
    except Exception:
        cluster.shutdown()
        raise


def _logs_in(host: str, port: int, user: str | None, password: str = "") -> bool:
    try:
        session = _session(host, port, user, password)
    except Exception:  # noqa: BLE001 - refused, or not up yet: either way, not logged in
        return False
    session.cluster.shutdown()
    return True


def _superuser(host: str, port: int, saved: Path) -> Any | None:
    """A superuser session: with the saved password, else with the default one (then replaced)."""
    if saved.exists() and _logs_in(host, port, SUPERUSER, saved.read_text().strip()):
        return _session(host, port, SUPERUSER, saved.read_text().strip())
    try:
        session = _session(host, port, SUPERUSER, DEFAULT_SUPERUSER_PASSWORD)
    except Exception:  # noqa: BLE001 - the default role is made a moment after start-up
        return None
    saved.unlink(missing_ok=True)
    new = _secret(saved)  # saved before it is set: a crash in between leaves the default working
    session.execute("ALTER ROLE cassandra WITH PASSWORD = %s", (new,))
    return session


def _replicate_auth(session: Any, auth_replication: str) -> None:
    """Replicates system_auth as `auth_replication` ("DC:RF") says (idempotent)."""
    dc, _, rf = auth_replication.partition(":")
    if not dc.isidentifier() or not rf.isdigit():
        raise SystemExit(f"cassandra_roles: --auth-replication must be DC:RF, not {auth_replication!r}")
    session.execute(
        f"ALTER KEYSPACE system_auth WITH replication = {{'class': 'NetworkTopologyStrategy', '{dc}': {int(rf)}}}"
    )


def ensure(host: str, port: int, directory: Path, password_file: Path, timeout: float, auth_replication: str = "") -> int:
    password = _secret(password_file)
    deadline = time.monotonic() + timeout
    while True:
        if _logs_in(host, port, None):
            print(f"cassandra_roles: the node on {host}:{port} lets clients in without a login "
                  "(started before authentication was configured); restart it: "
                  "scripts/services.sh stop && scripts/services.sh start", file=sys.stderr)  # fmt: skip
            return 3
        if _logs_in(host, port, USER, password):
            return 0
        session = _superuser(host, port, directory / "superuser.password")
        if session is not None:
            try:
                if auth_replication:
                    _replicate_auth(session, auth_replication)
                # Made, or reset when its password file was lost (one change per 5 s at most).
                exists = session.execute("SELECT role FROM system_auth.roles WHERE role = %s", (USER,)).one()
                verb = "ALTER" if exists else "CREATE"
                session.execute(f"{verb} ROLE {USER} WITH PASSWORD = %s AND LOGIN = true", (password,))
            finally:
                session.cluster.shutdown()
            continue  # and check that it logs in
        if time.monotonic() >= deadline:
            print(f"cassandra_roles: could not log in as {USER} or {SUPERUSER} on {host}:{port} "
                  f"within {timeout:.0f}s (passwords in {directory})", file=sys.stderr)  # fmt: skip
            return 1
        time.sleep(1.0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True, help="the node's folder: its superuser's password file")
    parser.add_argument("--password-file", type=Path, required=True, help="the role hourglass's password (made if missing)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=int(os.environ.get("HOURGLASS_CASSANDRA_PORT", "9042")))
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--auth-replication", default="", help="DC:RF: replicate system_auth so (a ring)")
    args = parser.parse_args()
    logging.getLogger("cassandra").setLevel(logging.CRITICAL)  # every refused login logs an error
    return ensure(args.host, args.port, args.dir, args.password_file, args.timeout, args.auth_replication)


if __name__ == "__main__":
    sys.exit(main())
